/// How important each weight is; pruning removes the least important first.
///
/// `magnitude` (|w|, PyTorch's L1), `random`, `custom` scores, `taylor` (|w·∂L/∂w| accumulated over
/// batches) and `wanda` (|w|·‖x‖ over a calibration set). Scores must be finite; higher means
/// more important.
public struct Importance {
    /// Label in error messages ("l1", "random", "custom", "taylor", "wanda" for the built-in ones);
    /// `ModelPruner.prune` checks it against the request's method.
    public let name: String
    /// Scores for the parameter at `index` of a pruning call, or nil for |w| itself (no copy).
    let scores: (Parameter, Int) throws -> Tensor?
    /// Compare |score| instead of the score.
    let useAbs: Bool

    /// `scores(p, i)` returns the scores of `p`, the parameter at position `i` of the pruning call (same
    /// shape as `p`), or nil to rank by |w|; with `useAbs` entries are ranked by |score|.
    public init(name: String, useAbs: Bool = false, scores: @escaping (Parameter, Int) throws -> Tensor?) {
        self.name = name
        self.useAbs = useAbs
        self.scores = scores
    }

    /// |w|: PyTorch's l1_unstructured / global_unstructured with L1Unstructured.
    public static var magnitude: Importance { Importance(name: "l1", useAbs: true) { _, _ in nil } }

    /// Uniform random scores from `seed` (PyTorch's random_unstructured; a different generator, so
    /// the same counts but not the same entries).
    public static func random(seed: UInt64) -> Importance {
        Importance(name: "random") { p, i in
            var g = SeededGenerator(seed: seed &+ UInt64(i) &* 0x9E37_79B9_7F4A_7C15)
            return Tensor.uniform(p.shape, 0, 1, rng: &g)
        }
    }

    /// Scores from a function (same shape as the parameter).
    public static func custom(_ f: @escaping (Parameter) throws -> Tensor) -> Importance {
        Importance(name: "custom") { p, _ in
            let t = try f(p)
            try t.expectShape(p.shape)
            return t
        }
    }

    /// Taylor importance accumulated by `accumulator` (Molchanov et al.: |w·g| summed over batches).
    public static func taylor(_ accumulator: TaylorImportance) -> Importance {
        Importance(name: "taylor") { p, _ in try accumulator.scores(for: p) }
    }

    /// Wanda (Sun et al. 2023): |w_ij|·‖x_j‖₂ with input norms from a calibration pass.
    public static func wanda(_ statistics: ActivationStatistics) -> Importance {
        Importance(name: "wanda") { p, _ in try statistics.wandaScores(for: p) }
    }
}

/// Accumulates |w ⊙ ∂L/∂w| over batches for Taylor importance. Call `accumulate()` after each
/// backward pass of a training run with `fusedUpdates: false` (the gradients must exist).
public final class TaylorImportance {
    private var sums: [ObjectIdentifier: FloatStorage] = [:]
    /// Number of `accumulate()` calls so far.
    public private(set) var batches = 0
    let parameters: [Parameter]

    /// Zeroed sums for `parameters`; only these get scores.
    public init(parameters: [Parameter]) {
        self.parameters = parameters
        for p in parameters { sums[ObjectIdentifier(p)] = FloatStorage(count: p.count) }
    }

    /// Adds |w·g| of the current gradients.
    public func accumulate() throws {
        for p in parameters {
            guard p.grad.shape == p.shape else { throw PruneError.missingStatistics("gradient of shape \(p.shape)") }
            try Kernels.absMulAccumulate(a: p.value.storage, b: p.grad.storage, acc: sums[ObjectIdentifier(p)]!)
        }
        batches += 1
    }

    /// Taylor statistics of `model`'s prunable weights over the first `batches` batches of
    /// `batchSize` rows of `images` (N × features) with their `labels`: cross-entropy, forward in
    /// training mode, an unfused backward (so the gradients exist), |w·∂L/∂w| accumulated.
    public static func calibrate(_ model: Model, images: Tensor, labels: [Int32], batches: Int,
                                 batchSize: Int = 128) throws -> TaylorImportance {
        guard batches >= 1, batchSize >= 1 else { throw PruneError.missingStatistics("taylor needs at least one batch") }
        guard images.shape.first == labels.count, !labels.isEmpty else {
            throw PruneError.missingStatistics("taylor: \(labels.count) labels for \(images.shape.first ?? 0) images")
        }
        let t = TaylorImportance(parameters: model.prunableWeights.map(\.parameter))
        for b in 0..<batches {
            let n = min(batchSize, labels.count - b * batchSize)
            guard n > 0 else { break }
            let logits = try model.forward(images.rows(b * batchSize, n), training: true)
            let r = try SoftmaxCrossEntropy.compute(logits: logits, labels: Array(labels[(b * batchSize)..<(b * batchSize + n)]))
            _ = try model.network.backward(r.gradient, needInputGradient: false)
            try t.accumulate()
        }
        return t
    }

    func scores(for p: Parameter) throws -> Tensor {
        guard batches > 0, let s = sums[ObjectIdentifier(p)] else {
            throw PruneError.missingStatistics("no Taylor statistics for a parameter of shape \(p.shape)")
        }
        return try Tensor(shape: p.shape, storage: s.copy())
    }
}

/// Input-feature energies Σx² of every Linear and Conv2d, gathered during forward passes over a
/// calibration set, for Wanda importance.
public final class ActivationStatistics {
    private var energy: [ObjectIdentifier: (storage: FloatStorage, group: Int)] = [:]
    /// Σx per input feature and the rows seen, for Linear layers (means for bias compensation).
    private var sums: [ObjectIdentifier: (storage: FloatStorage, rows: Int)] = [:]
    /// Examples seen by `collect` (the first dimension of each batch); `recording` does not count them.
    public private(set) var samples = 0

    /// Empty statistics; `collect`, `calibrate` or `recording` fill them.
    public init() {}

    /// Runs `batches` through the model (inference) and records the input energies of every
    /// Linear and Conv2d in it, at any depth.
    public func collect(model: Model, batches: [Tensor]) throws {
        try recording([model.network]) {
            for x in batches {
                _ = try model.forward(x, training: false)
                samples += x.shape.first ?? 0
            }
        }
    }

    /// Wanda statistics of `model` over the first `batches` batches of `batchSize` rows of `images`.
    public static func calibrate(_ model: Model, images: Tensor, batches: Int, batchSize: Int = 128) throws -> ActivationStatistics {
        guard batches >= 1, batchSize >= 1, let count = images.shape.first, count > 0 else {
            throw PruneError.missingStatistics("wanda needs at least one calibration batch")
        }
        let s = ActivationStatistics()
        let xs = try (0..<batches).compactMap { b -> Tensor? in
            let n = min(batchSize, count - b * batchSize)
            return n > 0 ? try images.rows(b * batchSize, n) : nil
        }
        try s.collect(model: model, batches: xs)
        return s
    }

    /// Runs `body` while forward hooks record the inputs of every Linear and Conv2d in `roots`
    /// and below them (each layer once); the hooks are removed afterwards, on error too.
    public func recording<T>(_ roots: [any Layer], _ body: () throws -> T) throws -> T {
        var handles: [HookHandle] = [], seen = Set<ObjectIdentifier>()
        defer { for h in handles { h.remove() } }
        for root in roots {
            for (_, layer) in root.namedLayers where seen.insert(ObjectIdentifier(layer)).inserted {
                if let l = layer as? Linear {
                    handles.append(try l.addForwardHook { [unowned self, unowned l] x, _ in try self.recordLinear(l, x) })
                } else if let c = layer as? Conv2d, c.groups == 1 {
                    handles.append(try c.addForwardHook { [unowned self, unowned c] x, _ in try self.recordConv(c, x) })
                }
            }
        }
        return try body()
    }

    /// Which rows of the inputs being recorded are real (nonzero) and which are padding (0), asked
    /// for at every Linear input recorded: a sequence model's token mask, so padded token rows
    /// count in no statistic. Nil, or a closure that returns nil or a count other than the input's
    /// rows: every row counts.
    public var rowMask: (() -> FloatStorage?)?

    /// Σx² and Σx per input feature of a Linear (and XᵀX when `recordsGram`), padded rows left out.
    func recordLinear(_ l: Linear, _ x0: Tensor) throws {
        let n = l.inFeatures
        var x = x0
        if let m = rowMask?(), m.count == x0.shape[0] {
            let keep = (0..<m.count).filter { m[$0] != 0 }
            if keep.count < x0.shape[0] {
                let src = x0.scalars
                var rows = [Float]()
                rows.reserveCapacity(keep.count * n)
                for r in keep { rows.append(contentsOf: src[(r * n)..<((r + 1) * n)]) }
                x = try Tensor(shape: [keep.count, n], scalars: rows)
            }
        }
        try record(weight: l.weight, columns: n, group: 1) { acc in
            try Kernels.columnSumSquaresAccumulate(rows: x.shape[0], cols: n, x: x.storage, acc: acc)
        }
        try recordSums(weight: l.weight, rows: x.shape[0], columns: n) { acc in
            try Kernels.sumRows(m: x.shape[0], n: n, beta: 1, x: x.storage, out: acc)
        }
        try recordGram(weight: l.weight, x: x)
    }

    /// Σx² per input channel of a Conv2d (shared by the k×k weights of that channel).
    func recordConv(_ c: Conv2d, _ x: Tensor) throws {
        let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3])
        let norms = try Kernels.unitNorms(a: n, d: c.inChannels, b: h * w, p: 2, x: x.storage, mask: nil)
        record(weight: c.weight, columns: c.inChannels, group: c.kernelSize * c.kernelSize) { acc in
            acc.update { i, old in old + norms[i] * norms[i] }
        }
    }

    func record(weight: Parameter, columns: Int, group: Int, add: (FloatStorage) throws -> Void) rethrows {
        let key = ObjectIdentifier(weight)
        if energy[key] == nil { energy[key] = (FloatStorage(count: columns), group) }
        try add(energy[key]!.storage)
    }

    func recordSums(weight: Parameter, rows: Int, columns: Int, add: (FloatStorage) throws -> Void) rethrows {
        let key = ObjectIdentifier(weight)
        if sums[key] == nil { sums[key] = (FloatStorage(count: columns), 0) }
        try add(sums[key]!.storage)
        sums[key]!.rows += rows
    }

    /// Forgets everything recorded so far (the hooks of a running `recording` stay).
    public func reset() {
        energy = [:]
        sums = [:]
        grams = [:]
        pendingGramRows = [:]
        samples = 0
    }

    /// When set before a pass, Linear layers also accumulate the Gram matrix XᵀX of their inputs
    /// (in × in floats each: SparseGPT's statistics).
    public var recordsGram = false
    private var grams: [ObjectIdentifier: FloatStorage] = [:]

    /// Input rows waiting to enter a Gram matrix: calibration examples are often a sentence of a few
    /// dozen tokens, and adding each one's XᵀX alone would read and write the whole n × n matrix per
    /// example, so rows are gathered and added 512 at a time (and when the matrix is asked for).
    private var pendingGramRows: [ObjectIdentifier: [Float]] = [:]
    private static let gramRowsPerProduct = 512

    func recordGram(weight: Parameter, x: Tensor) throws {
        guard recordsGram else { return }
        let key = ObjectIdentifier(weight), n = x.shape[1]
        if grams[key] == nil { grams[key] = FloatStorage(count: n * n) }
        x.storage.withUnsafeMutableBufferPointer { pendingGramRows[key, default: []].append(contentsOf: $0) }
        if pendingGramRows[key]!.count >= Self.gramRowsPerProduct * n { try flushGram(key, columns: n) }
    }

    private func flushGram(_ key: ObjectIdentifier, columns n: Int) throws {
        guard let rows = pendingGramRows[key], !rows.isEmpty, let acc = grams[key] else { return }
        try Kernels.gramAccumulate(rows: rows.count / n, cols: n, x: FloatStorage(rows), acc: acc)
        pendingGramRows[key] = nil
    }

    /// The accumulated XᵀX of the Linear whose weight is `p`.
    func gram(for p: Parameter) throws -> FloatStorage {
        try flushGram(ObjectIdentifier(p), columns: p.count / p.shape[0])
        guard let g = grams[ObjectIdentifier(p)] else {
            throw PruneError.missingStatistics("no Gram matrix for a parameter of shape \(p.shape) (set recordsGram)")
        }
        return g
    }

    /// Mean of each input feature of the Linear whose weight is `p` over the recorded rows.
    public func inputMeans(for p: Parameter) throws -> [Float] {
        guard let s = sums[ObjectIdentifier(p)], s.rows > 0 else {
            throw PruneError.missingStatistics("no calibration means for a parameter of shape \(p.shape)")
        }
        let inv = 1 / Float(s.rows)
        return s.storage.toArray().map { $0 * inv }
    }

    func wandaScores(for p: Parameter) throws -> Tensor {
        guard let e = energy[ObjectIdentifier(p)] else {
            throw PruneError.missingStatistics("no calibration statistics for a parameter of shape \(p.shape)")
        }
        let rows = p.shape[0], cols = p.count / max(rows, 1)
        return try Tensor(shape: p.shape, storage: Kernels.wandaScores(rows: rows, cols: cols, group: e.group,
                                                                        w: p.value.storage, sumsq: e.storage))
    }
}
