import Foundation

/// Gradual pruning during training (Zhu & Gupta 2017): the sparsity of a set of weights rises from
/// where it starts to `target` over the first `steps` optimizer steps, following a cubic (or linear)
/// curve, and every `every` steps the masks are selected again by the current weights' importance
/// — magnitude, or Wanda scores from the inputs the training batches carried since the last update.
/// Pruned weights are zero, so they rank last and stay pruned: the masks only grow.
///
/// Structures:
/// - unstructured, per layer, per output row (Wanda's comparison group) or globally;
/// - N:M: the schedule prunes only the M − N least important entries of each group of M, the
///   lowest first across the layer, so that at the target (which must be 1 − N/M) every group holds
///   exactly N;
/// - block R×C: whole blocks per layer (or globally), ranked by the L2 norm of their entries'
///   scores.
public struct GradualPruning: Sendable, Equatable {
    /// How the sparsity rises from the initial level to the target.
    public enum Curve: String, Sendable, CaseIterable {
        /// Zhu & Gupta's s_t = s_f + (s_i − s_f)(1 − t/n)³: fast at first, gentle near the target.
        case cubic
        /// s_t = s_i + (s_f − s_i)·t/n.
        case linear
    }

    /// The final sparsity of the weights (for N:M it must be 1 − N/M).
    public var target: Double
    /// Unstructured, N:M or block.
    public var structure: PruningRequest.Structure
    /// `l1` (magnitude) or `wanda` (input norms gathered from the training batches).
    public var method: PruningRequest.Method
    /// Unstructured: layer, row or global; block: layer or global; N:M: layer.
    public var scope: PruningRequest.Scope
    /// The curve from the initial sparsity to the target.
    public var curve: Curve
    /// Optimizer steps over which the sparsity rises (the target holds from this step on).
    public var steps: Int
    /// Optimizer steps between mask updates (the last update falls on step `steps`).
    public var every: Int

    /// A plan; `GradualPruner` checks it against the weights.
    public init(target: Double, structure: PruningRequest.Structure = .unstructured, method: PruningRequest.Method = .l1,
                scope: PruningRequest.Scope = .row, curve: Curve = .cubic, steps: Int, every: Int) {
        self.target = target
        self.structure = structure
        self.method = method
        self.scope = scope
        self.curve = curve
        self.steps = steps
        self.every = every
    }

    /// The scheduled sparsity after `step` optimizer steps, starting from `initial`.
    public func sparsity(atStep step: Int, initial: Double) -> Double {
        if step >= steps { return target }
        if step <= 0 { return initial }
        switch curve {
        case .cubic: return PruningSchedule.cubicSparsity(step: step, start: 0, steps: steps, initial: initial, final: target)
        case .linear: return initial + (target - initial) * Double(step) / Double(steps)
        }
    }

    /// Whether the masks are selected again after `step` optimizer steps.
    public func updates(atStep step: Int) -> Bool {
        step >= 1 && step <= steps && (step % every == 0 || step == steps)
    }
}

/// Carries out a `GradualPruning` plan on `weights` during a training run: call `step(_:)` after
/// every optimizer step (e.g. from `Trainer.fit`'s `stepHook`). With `wanda`, run the training
/// forward passes inside `recording(_:)` so that the inputs of the weights' layers are measured.
public final class GradualPruner {
    /// The plan being carried out.
    public let plan: GradualPruning
    /// The weights' sparsity when the pruner was made (the curve starts there).
    public let initialSparsity: Double
    /// (step, sparsity reached) of every mask update so far.
    public private(set) var history: [(step: Int, sparsity: Double)] = []
    private let weights: [Parameter]
    private let statistics: ActivationStatistics?

    /// Checks the plan against `weights` (each the weight of a Linear or Conv2d: rank ≥ 2, rows
    /// first) and records their sparsity. `names` label the weights in errors. Throws, naming the
    /// argument or the weight and the rule, when the target is not in [initial sparsity, 1), the
    /// structure does not tile a weight, the N:M target is not 1 − N/M, the scope does not apply to
    /// the structure, or the schedule has no steps.
    public init(plan: GradualPruning, weights: [Parameter], names: [String]) throws {
        guard !weights.isEmpty, names.count == weights.count else {
            throw PruneError.unsupported("gradual pruning needs weights, one name each")
        }
        guard plan.target.isFinite, plan.target >= 0, plan.target < 1 else {
            throw PruneError.amountOutOfRange("target sparsity \(plan.target) must be in [0, 1)")
        }
        guard plan.steps >= 1 else { throw PruneError.amountOutOfRange("the schedule needs at least one step, got \(plan.steps)") }
        guard plan.every >= 1 else { throw PruneError.amountOutOfRange("steps between mask updates must be at least 1, got \(plan.every)") }
        guard [.l1, .wanda].contains(plan.method) else {
            throw PruneError.unsupported("gradual pruning ranks by l1 (magnitude) or wanda, not \(plan.method.rawValue)")
        }
        for (p, name) in zip(weights, names) where p.shape.count < 2 {
            throw PruneError.invalidPattern("\(name) of shape \(p.shape) is not a weight matrix")
        }
        switch plan.structure {
        case .unstructured: break
        case let .nm(n, m):
            guard m >= 1, n >= 1, n < m else { throw PruneError.invalidPattern("\(n):\(m) needs 1 ≤ N < M") }
            guard plan.scope == .layer || plan.scope == .row else {
                throw PruneError.unsupported("N:M masks are chosen per layer, not with scope \(plan.scope.rawValue)")
            }
            let want = Double(m - n) / Double(m)
            guard abs(plan.target - want) < 1e-9 else {
                throw PruneError.amountOutOfRange("target sparsity \(plan.target) is not \(n):\(m)'s \(want)")
            }
            for (p, name) in zip(weights, names) where (p.count / p.shape[0]) % m != 0 {
                throw PruneError.invalidPattern("\(name) has \(p.count / p.shape[0]) inputs per row, not a multiple of \(m) (\(n):\(m) groups run along the input dimension)")
            }
        case let .block(r, c):
            guard r >= 1, c >= 1 else { throw PruneError.invalidPattern("block \(r)×\(c)") }
            guard plan.scope != .row else { throw PruneError.unsupported("blocks are chosen per layer or globally, not per row") }
            for (p, name) in zip(weights, names) where p.shape[0] % r != 0 || (p.count / p.shape[0]) % c != 0 {
                throw PruneError.invalidPattern("\(name) of shape \(p.shape) is not tiled by \(r)×\(c) blocks")
            }
        default:
            throw PruneError.unsupported("gradual pruning masks unstructured, N:M or block weights, not \(plan.structure)")
        }
        let total = weights.reduce(0) { $0 + $1.count }
        let pruned = weights.reduce(0) { $0 + $1.effectiveMask.prunedCount }
        let initial = Double(pruned) / Double(total)
        guard plan.target >= initial else {
            throw PruneError.amountOutOfRange("target sparsity \(plan.target) is below the weights' current sparsity \(String(format: "%.4f", initial))")
        }
        self.plan = plan
        self.weights = weights
        self.initialSparsity = initial
        statistics = plan.method == .wanda ? ActivationStatistics() : nil
    }

    /// Runs `body` (the training run) while the inputs of the weights' layers in `roots` are measured
    /// for Wanda scores; with `l1` it just runs `body`. `rowMask` (see `ActivationStatistics.rowMask`)
    /// leaves padded token rows out of the statistics.
    public func recording<T>(_ roots: [any Layer], rowMask: (() -> FloatStorage?)? = nil, _ body: () throws -> T) throws -> T {
        guard let statistics else { return try body() }
        statistics.rowMask = rowMask
        defer { statistics.rowMask = nil }
        return try statistics.recording(roots, body)
    }

    /// The weights' current sparsity (the fraction of their entries masked).
    public var sparsity: Double {
        Double(weights.reduce(0) { $0 + $1.effectiveMask.prunedCount }) / Double(weights.reduce(0) { $0 + $1.count })
    }

    /// After optimizer step `step` (1-based): selects the masks again when the plan says so.
    public func step(_ step: Int) throws {
        guard plan.updates(atStep: step) else { return }
        try update(to: plan.sparsity(atStep: step, initial: initialSparsity), final: step >= plan.steps)
        history.append((step, sparsity))
        statistics?.reset() // the next update ranks by the inputs seen since this one
    }

    /// Masks every weight (or all together, globally) to sparsity `s`, never unmasking an entry.
    func update(to s: Double, final: Bool) throws {
        let importance: Importance = statistics.map { .wanda($0) } ?? .magnitude
        // the number masked in a group of `count` entries of which `pruned` are masked already
        func more(_ count: Int, _ pruned: Int) throws -> Int { max(0, try Amount.fraction(s).count(of: count) - pruned) }
        switch plan.structure {
        case .unstructured:
            switch plan.scope {
            case .row:
                // every row to sparsity s of all its entries: masked entries score 0 and go first,
                // and the old mask is kept (a row that already holds more masked entries keeps them)
                try ModelPruner.forEachLayer(weights) { try ModelPruner.pruneRows($0, amount: .fraction(s), importance: importance) }
            case .layer:
                try ModelPruner.forEachLayer(weights) { p in
                    try Prune.unstructured(p, amount: .count(try more(p.count, p.effectiveMask.prunedCount)), importance: importance)
                }
            case .global:
                let total = weights.reduce(0) { $0 + $1.count }, pruned = weights.reduce(0) { $0 + $1.effectiveMask.prunedCount }
                try Prune.globalUnstructured(weights, amount: .count(try more(total, pruned)), importance: importance)
            }
        case let .nm(n, m):
            try ModelPruner.forEachLayer(weights) { p in
                if final { try Prune.nm(p, n: n, m: m, importance: importance); return }
                // candidates: the M − N least important of each group; the N most important score
                // above every candidate, so the lowest-k selection takes candidates only
                let scores = try Prune.scoresOf(p, importance, 0).map { try Tensor(shape: p.shape, storage: $0) } ?? p.value
                let absScores = scores.scalars.map { Swift.abs($0) }
                var topMask = Mask(ones: p.shape)
                topMask.makeUnique()
                try Kernels.nmMask(rows: p.shape[0], cols: p.count / p.shape[0], n: n, m: m,
                                   scores: FloatStorage(absScores), useAbs: false, mask: topMask.storage)
                let above = Float.greatestFiniteMagnitude
                let ranked = try Tensor(shape: p.shape, scalars: absScores.enumerated().map { topMask[flat: $0.offset] ? above : $0.element })
                let k = try more(p.count, p.effectiveMask.prunedCount)
                try Prune.unstructured(p, amount: .count(min(k, p.count - p.effectiveMask.prunedCount)),
                                       importance: .custom { _ in ranked })
            }
        case let .block(r, c):
            // blocks tile every weight (checked at init), so a block is masked when its entries are
            func blockCounts(_ p: Parameter) -> (total: Int, pruned: Int) {
                let rows = p.shape[0], cols = p.count / rows, nbc = cols / c
                let m = p.effectiveMask
                var kept = [Bool](repeating: false, count: (rows / r) * nbc)
                for i in 0..<p.count where m[flat: i] { kept[(i / cols / r) * nbc + (i % cols) / c] = true }
                return (kept.count, kept.filter { !$0 }.count)
            }
            if plan.scope == .global {
                let counts = weights.map(blockCounts)
                let k = try more(counts.reduce(0) { $0 + $1.total }, counts.reduce(0) { $0 + $1.pruned })
                try Prune.block(weights, blockRows: r, blockCols: c, amount: .count(k), importance: importance)
            } else {
                try ModelPruner.forEachLayer(weights) { p in
                    let (t, pr) = blockCounts(p)
                    try Prune.block([p], blockRows: r, blockCols: c, amount: .count(try more(t, pr)), importance: importance)
                }
            }
        default: break // refused at init
        }
    }
}
