/// Pruning of parameters, by the names torch.nn.utils.prune uses, and beyond it.
///
/// Every function computes a new mask from the entries (or units) still kept and composes it with
/// the current one (new mask = old mask AND the policy's mask). Amounts follow `Amount`. Exactly the
/// requested number is pruned; among equal scores the lower flat index goes first, so a mask never
/// depends on the thread count. Non-finite scores throw and nothing changes.
public enum Prune {
    // MARK: torch.nn.utils.prune

    /// prune.identity: attaches an all-ones mask (the parameter counts as pruned, nothing is removed).
    public static func identity(_ p: Parameter) throws {
        if p.mask == nil { try p.setMask(Mask(ones: p.shape)) }
    }

    /// prune.random_unstructured.
    public static func randomUnstructured(_ p: Parameter, amount: Amount, seed: UInt64 = 0) throws {
        try unstructured(p, amount: amount, importance: .random(seed: seed))
    }

    /// prune.l1_unstructured: the smallest |w| of the kept entries.
    public static func l1Unstructured(_ p: Parameter, amount: Amount) throws {
        try unstructured(p, amount: amount, importance: .magnitude)
    }

    /// Unstructured pruning of one parameter by any importance.
    public static func unstructured(_ p: Parameter, amount: Amount, importance: Importance) throws {
        try global([p], amount: amount, importance: importance)
    }

    /// prune.global_unstructured: one threshold across all `parameters` together (no concatenation).
    public static func globalUnstructured(_ parameters: [Parameter], amount: Amount,
                                          importance: Importance = .magnitude) throws {
        try global(parameters, amount: amount, importance: importance)
    }

    /// prune.random_structured: random slices along `dim`.
    public static func randomStructured(_ p: Parameter, amount: Amount, dim: Int, seed: UInt64 = 0) throws {
        try structured(p, amount: amount, dim: dim) { units, _ in
            var g = SeededGenerator(seed: seed)
            return (0..<units).map { _ in g.nextUnitFloat() }
        }
    }

    /// prune.ln_structured: the slices along `dim` with the smallest Ln norm (`n` = 1, 2, any p > 0,
    /// .infinity, or 0 for the count of nonzeros).
    public static func lnStructured(_ p: Parameter, amount: Amount, n: Double, dim: Int) throws {
        try structured(p, amount: amount, dim: dim) { _, dims in
            do {
                return try Kernels.unitNorms(a: dims.0, d: dims.1, b: dims.2, p: n, x: p.value.storage, mask: p.maskStorage)
            } catch Kernels.SelectionFailure.nonFinite {
                throw PruneError.nonFiniteScores("weights")
            } catch { throw PruneError.invalidPattern("norm order \(n)") }
        }
    }

    /// prune.custom_from_mask: composes `mask` (same shape) with the current mask.
    public static func customFromMask(_ p: Parameter, mask: Mask) throws {
        guard mask.shape == p.shape else { throw TensorError.shapeMismatch(expected: p.shape, got: mask.shape) }
        try p.setMask(p.mask.map { try $0.and(mask) } ?? mask)
    }

    /// prune.remove: makes the pruning permanent (drops the mask, keeps the zeros).
    public static func remove(_ p: Parameter) { p.removeMask() }

    /// prune.is_pruned: whether any parameter of the layer carries a mask.
    public static func isPruned(_ layer: any Layer) -> Bool { layer.parameters.contains { $0.isPruned } }

    // MARK: beyond torch

    /// N:M sparsity: at most `n` nonzeros in every group of `m` consecutive weights along the input
    /// dimension (2:4 is what sparse tensor cores run), keeping the most important.
    public static func nm(_ p: Parameter, n: Int, m: Int, importance: Importance = .magnitude) throws {
        guard m >= 1, n >= 0, n <= m else { throw PruneError.invalidPattern("\(n):\(m) needs 0 ≤ N ≤ M and M ≥ 1") }
        guard p.value.rank >= 2 else { throw PruneError.invalidPattern("N:M needs a weight of rank ≥ 2, got \(p.shape)") }
        let scores = try scoresOf(p, importance, 0)
        let mask = (p.mask ?? Mask(ones: p.shape))
        var newMask = mask
        newMask.makeUnique()
        let rows = p.shape[0], cols = p.count / rows
        do {
            try Kernels.nmMask(rows: rows, cols: cols, n: n, m: m, scores: scores ?? p.value.storage,
                               useAbs: scores == nil || importance.useAbs, mask: newMask.storage)
        } catch Kernels.SelectionFailure.nonFinite { throw PruneError.nonFiniteScores("\(importance.name) scores") }
        try p.setMask(newMask)
    }

    /// Block pruning: the weight (viewed as rows × the rest) is cut into `blockRows`×`blockCols`
    /// blocks and the blocks with the smallest mean |w| are pruned whole. Layer or global scope.
    public static func block(_ parameters: [Parameter], blockRows: Int, blockCols: Int, amount: Amount,
                             importance: Importance = .magnitude) throws {
        guard blockRows >= 1, blockCols >= 1 else { throw PruneError.invalidPattern("block \(blockRows)×\(blockCols)") }
        var scores: [FloatStorage] = [], unitMasks: [ByteStorage] = []
        for (index, p) in parameters.enumerated() {
            // a block's score is the L2 norm of its entries' scores (the weights' for magnitude)
            let entry = try importance.scores(p, index) ?? p.value
            guard entry.isFinite else { throw PruneError.nonFiniteScores("\(importance.name) scores of shape \(p.shape)") }
            let rows = p.shape[0], cols = p.count / max(rows, 1)
            let s = try Kernels.blockNorms(rows: rows, cols: cols, bh: blockRows, bw: blockCols, x: entry.storage,
                                           mask: p.maskStorage)
            // a block still counts while any of its entries is kept
            let kept = ByteStorage(count: s.count)
            let nbc = (cols + blockCols - 1) / blockCols
            let m = p.effectiveMask
            for i in 0..<p.count where m[flat: i] {
                kept[(i / cols / blockRows) * nbc + (i % cols) / blockCols] = 1
            }
            scores.append(s)
            unitMasks.append(kept)
        }
        let remaining = try unitMasks.reduce(0) { $0 + (try Kernels.countNonzero($1)) }
        let k = try amount.count(of: remaining)
        _ = try select(scores: scores, masks: unitMasks, useAbs: false, k: k, what: "block scores")
        var newMasks: [Mask] = []
        for (p, kept) in zip(parameters, unitMasks) {
            let rows = p.shape[0], cols = p.count / max(rows, 1), nbc = (cols + blockCols - 1) / blockCols
            let old = p.effectiveMask
            let out = ByteStorage(count: p.count)
            out.update { i, _ in old[flat: i] && kept[(i / cols / blockRows) * nbc + (i % cols) / blockCols] != 0 ? 1 : 0 }
            newMasks.append(Mask(shape: p.shape, storage: out))
        }
        for (p, m) in zip(parameters, newMasks) { try p.setMask(m) }
    }

    /// For benchmarks: global magnitude selection of `amount` of the entries kept in `masks`
    /// (updated in place, the parameters untouched). Returns the kernel's peak extra bytes.
    public static func selectionOnly(_ parameters: [Parameter], masks: [ByteStorage], amount: Double) throws -> Int {
        try select(scores: parameters.map(\.value.storage), masks: masks, useAbs: true, amount: .fraction(amount), what: "weights")
    }

    // MARK: shared machinery

    static func scoresOf(_ p: Parameter, _ importance: Importance, _ index: Int) throws -> FloatStorage? {
        guard let t = try importance.scores(p, index) else { return nil }
        try t.expectShape(p.shape)
        return t.storage
    }

    /// Prunes k entries over all masks (copies); returns the new masks. Maps kernel failures.
    static func select(scores: [FloatStorage], masks: [ByteStorage], useAbs: Bool, k: Int, what: String) throws -> Int {
        do { return try Kernels.pruneSmallest(scores: scores, masks: masks, useAbs: useAbs, k: k) } catch Kernels.SelectionFailure.nonFinite {
            throw PruneError.nonFiniteScores(what)
        } catch Kernels.SelectionFailure.tooMany {
            throw PruneError.amountOutOfRange("\(k) exceeds the entries still unpruned")
        }
    }

    /// Prunes `amount` of the entries kept in `masks` (updated in place); a fraction is counted by the
    /// kernel in its own pass. Returns the kernel's peak extra bytes.
    static func select(scores: [FloatStorage], masks: [ByteStorage], useAbs: Bool, amount: Amount, what: String) throws -> Int {
        guard case let .fraction(f) = amount else {
            let remaining = try masks.reduce(0) { $0 + (try Kernels.countNonzero($1)) }
            return try select(scores: scores, masks: masks, useAbs: useAbs, k: amount.count(of: remaining), what: what)
        }
        _ = try amount.count(of: 0) // range check before anything changes
        do { return try Kernels.pruneFraction(scores: scores, masks: masks, useAbs: useAbs, fraction: f).1 } catch Kernels.SelectionFailure.nonFinite {
            throw PruneError.nonFiniteScores(what)
        }
    }

    static func global(_ parameters: [Parameter], amount: Amount, importance: Importance) throws {
        guard !parameters.isEmpty else { return }
        var scores: [FloatStorage] = [], masks: [ByteStorage] = []
        var useAbs = importance.useAbs
        for (i, p) in parameters.enumerated() {
            let s = try scoresOf(p, importance, i)
            if s == nil { useAbs = true }
            scores.append(s ?? p.value.storage)
            masks.append(p.mask?.storage.copy() ?? ByteStorage(count: p.count, repeating: 1))
        }
        _ = try select(scores: scores, masks: masks, useAbs: useAbs, amount: amount, what: "\(importance.name) scores")
        scores = [] // drop the references to the weights' storage, or setMask would copy them
        for (p, m) in zip(parameters, masks) { try p.setMask(Mask(shape: p.shape, storage: m)) }
    }

    /// Structured pruning of slices along `dim`: `unitScores(units, (a, d, b))` scores each slice.
    static func structured(_ p: Parameter, amount: Amount, dim: Int,
                           unitScores: (Int, (Int, Int, Int)) throws -> [Float]) throws {
        let shape = p.shape
        let d = dim < 0 ? dim + shape.count : dim
        guard d >= 0 && d < shape.count else { throw PruneError.invalidDimension(dim: dim, shape: shape) }
        let a = shape[..<d].reduce(1, *), units = shape[d], b = shape[(d + 1)...].reduce(1, *)
        // a slice is still unpruned while any of its entries is kept
        let mask = p.effectiveMask
        var alive = [Bool](repeating: false, count: units)
        for i in 0..<p.count where mask[flat: i] { alive[(i / b) % units] = true }
        let remaining = alive.filter { $0 }.count
        let k = try amount.count(of: remaining)
        let s = try unitScores(units, (a, units, b))
        let unitMask = ByteStorage(alive.map { $0 ? 1 : 0 })
        _ = try select(scores: [FloatStorage(s)], masks: [unitMask], useAbs: false, k: k, what: "unit scores")
        let out = ByteStorage(count: p.count)
        out.update { i, _ in mask[flat: i] && unitMask[(i / b) % units] != 0 ? 1 : 0 }
        try p.setMask(Mask(shape: shape, storage: out))
    }
}
