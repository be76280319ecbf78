/// Batch normalisation over the channel dimension 1 of N×C (features) or N×C×H×W (images), PyTorch's
/// BatchNorm1d/BatchNorm2d: in training, batch statistics (biased variance) normalise and the
/// running statistics move by `momentum` (unbiased variance); in evaluation, the running statistics
/// normalise. weight (γ) and bias (β) are trained; running_mean, running_var and
/// num_batches_tracked are buffers, saved under PyTorch's names.
public final class BatchNorm: Layer {
    /// Channels C (the size of dimension 1).
    public let features: Int
    /// ε added to the variance before the square root.
    public let eps: Float
    /// Weight of the batch statistic in each running update: running = (1 − momentum)·running + momentum·batch.
    public let momentum: Float
    /// γ (C), initially ones; nil when the layer is not affine. Trained, never pruned.
    public let weight: Parameter?
    /// β (C), initially zeros; nil when the layer is not affine. Trained, never pruned.
    public let bias: Parameter?
    /// Running mean per channel (C): updated in training, used in evaluation (running_mean).
    public let runningMean: Buffer
    /// Running unbiased variance per channel (C): updated in training, used in evaluation (running_var).
    public let runningVar: Buffer
    /// Training forward passes so far, a scalar tensor (num_batches_tracked); saved, not used in the arithmetic.
    public let batchesTracked: Buffer
    public let forwardHooks: ForwardHooks? = ForwardHooks()
    private var cache: (x: Tensor, mean: FloatStorage, invstd: FloatStorage, training: Bool, count: Int)?
    /// The convolution this layer is folded into at inference (see `Conv2d`), set by model builders.
    weak var foldSource: Conv2d?
    /// Synchronised batch statistics (PyTorch's SyncBatchNorm) in a data-parallel run. In training,
    /// the mean and variance come from the whole global batch, and the input gradient uses the
    /// global batch's sums, so the ranks together compute what one process does on the whole batch.
    /// nil: this process's batch alone. Set by `Trainer` for data-parallel runs.
    public var synchronization: StatisticsSync?

    /// How a BatchNorm reaches the other ranks: this rank, their number, and a sum over them that
    /// every rank receives bitwise the same (`Collective.sumInRankOrder`).
    public struct StatisticsSync {
        /// This process's rank (0..<size) and the number of ranks.
        public let rank: Int, size: Int
        /// Replaces the storage's contents, on every rank, with their element-wise sum over all ranks;
        /// throws when the exchange fails.
        public let sum: (FloatStorage) throws -> Void
        /// Synchronisation as rank `rank` of `size`, exchanging through `sum`.
        public init(rank: Int, size: Int, sum: @escaping (FloatStorage) throws -> Void) {
            self.rank = rank
            self.size = size
            self.sum = sum
        }
    }

    /// γ = 1, β = 0, running statistics 0 and 1 (PyTorch's initialisation).
    public init(_ features: Int, eps: Float = 1e-5, momentum: Float = 0.1, affine: Bool = true) throws {
        guard features > 0 else { throw TensorError.invalidShape([features]) }
        guard eps > 0, eps.isFinite, momentum >= 0, momentum <= 1 else {
            throw LayerError.badInput(layer: "BatchNorm(\(features))", expected: "eps > 0 and momentum in [0, 1]", got: [])
        }
        self.features = features
        self.eps = eps
        self.momentum = momentum
        weight = affine ? Parameter(try Tensor(shape: [features], repeating: 1), prunable: false) : nil
        bias = affine ? Parameter(Tensor(zeroed: [features]), prunable: false) : nil
        runningMean = Buffer(Tensor(zeroed: [features]))
        runningVar = Buffer(try Tensor(shape: [features], repeating: 1))
        batchesTracked = Buffer(Tensor(zeroed: []))
    }

    public var summary: String { "BatchNorm(\(features))" }

    public var namedParameters: [(name: String, parameter: Parameter)] {
        guard let weight, let bias else { return [] }
        return [("weight", weight), ("bias", bias)]
    }

    public var namedBuffers: [(name: String, buffer: Buffer)] {
        [("running_mean", runningMean), ("running_var", runningVar), ("num_batches_tracked", batchesTracked)]
    }

    private func dims(_ x: Tensor) throws -> (n: Int, s: Int) {
        guard x.rank >= 2, x.shape[1] == features else {
            throw LayerError.badInput(layer: summary, expected: "[batch, \(features), ...]", got: x.shape)
        }
        return (x.shape[0], x.shape.dropFirst(2).reduce(1, *))
    }

    /// Evaluation-mode normalisation as y = scale·x + shift per channel, with the kernel's arithmetic:
    /// invstd = 1/√(running_var + eps) in double, scale = γ·invstd, shift = β − running_mean·scale.
    func inferenceAffine() throws -> (scale: Tensor, shift: Tensor) {
        let mean = runningMean.value.scalars, variance = runningVar.value.scalars
        let g = weight?.value.scalars, b = bias?.value.scalars
        var scale = [Float](repeating: 0, count: features), shift = [Float](repeating: 0, count: features)
        for c in 0..<features {
            let invstd = Float(1.0 / (Double(variance[c]) + Double(eps)).squareRoot())
            scale[c] = (g?[c] ?? 1) * invstd
            shift[c] = (b?[c] ?? 0) - mean[c] * scale[c]
        }
        return (try Tensor(shape: [features], scalars: scale), try Tensor(shape: [features], scalars: shift))
    }

    public func forward(_ x: Tensor, training: Bool) throws -> Tensor {
        if !training, let conv = foldSource, conv.takeFoldedOutput(x, by: self) {
            // the convolution already applied this normalisation in its epilogue
            cache = nil
            return x
        }
        let (n, s) = try dims(x)
        if training && n * s < 2 {
            throw LayerError.badInput(layer: summary, expected: "more than one value per channel in training", got: x.shape)
        }
        let y = Tensor(uninitialized: x.shape)
        let mean = FloatStorage(uninitializedCount: features), invstd = FloatStorage(uninitializedCount: features)
        if training, let sync = synchronization { return try synchronizedForward(x, n: n, s: s, sync: sync, y: y, mean: mean, invstd: invstd) }
        if training {
            runningMean.value.makeUnique()
            runningVar.value.makeUnique()
        }
        try Kernels.batchNormForward(n: n, c: features, s: s, x: x.storage, gamma: weight?.value.storage, beta: bias?.value.storage,
                                     eps: eps, training: training, momentum: momentum, runningMean: runningMean.value.storage,
                                     runningVar: runningVar.value.storage, y: y.storage, saveMean: mean, saveInvstd: invstd)
        if training { batchesTracked.value = try Tensor(shape: [], scalars: [batchesTracked.value.scalars[0] + 1]) }
        cache = (x, mean, invstd, training, 0)
        if let h = forwardHooks, !h.isEmpty { try h.run(input: x, output: y) }
        return y
    }

    /// Training forward with the global batch's statistics, in the kernel's arithmetic: the mean is
    /// the ranks' Σx (double) over the global count, the variance the ranks' Σ(x − mean)² (double)
    /// over it; each rank's double sums travel exactly (`exchangeExactly`) and are added in rank order.
    private func synchronizedForward(_ x: Tensor, n: Int, s: Int, sync: StatisticsSync, y: Tensor,
                                     mean: FloatStorage, invstd: FloatStorage) throws -> Tensor {
        let c = features
        let local = try Kernels.channelSums(n: n, c: c, s: s, x: x.storage, center: nil)
        let sums = try BatchNorm.exchangeExactly(local + [Double(n * s)], sync)
        let total = sums[c]
        guard total >= 2 else {
            throw LayerError.badInput(layer: summary, expected: "more than one value per channel in the global batch", got: x.shape)
        }
        let mu = (0..<c).map { sums[$0] / total }
        let m2 = try BatchNorm.exchangeExactly(try Kernels.channelSums(n: n, c: c, s: s, x: x.storage, center: mu), sync)
        let batchMean = FloatStorage(count: c), batchVar = FloatStorage(count: c)
        runningMean.value.makeUnique()
        runningVar.value.makeUnique()
        let rm = runningMean.value.storage, rv = runningVar.value.storage
        for ch in 0..<c {
            batchMean[ch] = Float(mu[ch])
            batchVar[ch] = Float(m2[ch] / total)
            // PyTorch: the running variance takes the unbiased estimate
            rm[ch] = Float((1 - Double(momentum)) * Double(rm[ch]) + Double(momentum) * mu[ch])
            rv[ch] = Float((1 - Double(momentum)) * Double(rv[ch]) + Double(momentum) * m2[ch] / (total - 1))
        }
        // normalise with the global statistics: the evaluation kernel with them as its "running" ones
        // (it computes invstd from them in double, as the training kernel does)
        try Kernels.batchNormForward(n: n, c: c, s: s, x: x.storage, gamma: weight?.value.storage, beta: bias?.value.storage,
                                     eps: eps, training: false, momentum: 0, runningMean: batchMean, runningVar: batchVar,
                                     y: y.storage, saveMean: mean, saveInvstd: invstd)
        // (the variance reaches it rounded to float, so invstd can differ from the training kernel's
        // in the last bit)
        batchesTracked.value = try Tensor(shape: [], scalars: [batchesTracked.value.scalars[0] + 1])
        cache = (x, mean, invstd, true, Int(total))
        if let h = forwardHooks, !h.isEmpty { try h.run(input: x, output: y) }
        return y
    }

    /// The sum over the ranks of each rank's `values`, added in rank order in double. Each double
    /// travels as two floats (high and low part) in the rank's own slot of the vector the ranks sum,
    /// so every rank receives every other's values to about 48 bits, whatever `sync.sum` adds in.
    static func exchangeExactly(_ values: [Double], _ sync: StatisticsSync) throws -> [Double] {
        let w = 2 * values.count
        let slots = FloatStorage(count: sync.size * w)
        for (i, v) in values.enumerated() {
            let hi = Float(v)
            slots[sync.rank * w + 2 * i] = hi
            slots[sync.rank * w + 2 * i + 1] = Float(v - Double(hi))
        }
        try sync.sum(slots)
        return (0..<values.count).map { i in
            var t = 0.0
            for r in 0..<sync.size { t += Double(slots[r * w + 2 * i]) + Double(slots[r * w + 2 * i + 1]) }
            return t
        }
    }

    public func backward(_ dy: Tensor, needInputGradient: Bool) throws -> Tensor? {
        guard let c = cache else { throw LayerError.backwardBeforeForward(summary) }
        try dy.expectShape(c.x.shape)
        let (n, s) = try dims(c.x)
        let dx = needInputGradient ? Tensor(uninitialized: c.x.shape) : nil
        let dg = weight.map { _ in Tensor(uninitialized: [features]) }, db = bias.map { _ in Tensor(uninitialized: [features]) }
        if c.training, let sync = synchronization, c.count > 0 {
            // this rank's Σ dy·x̂ and Σ dy in double: its share of γ's and β's gradients (summed with
            // the other gradients later), and, summed over the ranks, the input gradient's sums
            let local = try Kernels.channelGradientSums(n: n, c: features, s: s, x: c.x.storage, dy: dy.storage,
                                                        mean: c.mean, invstd: c.invstd)
            if let dg { for ch in 0..<features { dg.storage[ch] = Float(local[ch]) } }
            if let db { for ch in 0..<features { db.storage[ch] = Float(local[features + ch]) } }
            if let dx {
                let global = try BatchNorm.exchangeExactly(local, sync)
                try Kernels.batchNormInputGradient(n: n, c: features, s: s, x: c.x.storage, dy: dy.storage, gamma: weight?.value.storage,
                                                   mean: c.mean, invstd: c.invstd, sums: global, count: c.count, dx: dx.storage)
            }
        } else {
            try Kernels.batchNormBackward(n: n, c: features, s: s, x: c.x.storage, gamma: weight?.value.storage, saveMean: c.mean,
                                          saveInvstd: c.invstd, dy: dy.storage, training: c.training, dx: dx?.storage,
                                          dgamma: dg?.storage, dbeta: db?.storage)
        }
        if let weight, let dg { weight.grad = dg }
        if let bias, let db { bias.grad = db }
        return dx
    }
}
