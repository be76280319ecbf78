/// Batch normalisation over the channel dimension 1 of N×C (features) or N×C×H×W (images), PyTorch's
/// BatchNorm1d/BatchNorm2d: in training, batch statistics (biased variance) normalise and the
/// running statistics move by `momentum` (unbiased variance); in evaluation, the running statistics
/// normalise. weight (γ) and bias (β) are trained; running_mean, running_var and
/// num_batches_tracked are buffers, saved under PyTorch's names.
public final class BatchNorm: Layer {
    public let features: Int
    public let eps: Float
    public let momentum: Float
    public let weight: Parameter?
    public let bias: Parameter?
    public let runningMean: Buffer
    public let runningVar: Buffer
    public let batchesTracked: Buffer
    public let forwardHooks: ForwardHooks? = ForwardHooks()
    private var cache: (x: Tensor, mean: FloatStorage, invstd: FloatStorage, training: Bool)?
    /// The convolution this layer is folded into at inference (see `Conv2d`), set by model builders.
    weak var foldSource: Conv2d?

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
        if training {
            runningMean.value.makeUnique()
            runningVar.value.makeUnique()
        }
        try Kernels.batchNormForward(n: n, c: features, s: s, x: x.storage, gamma: weight?.value.storage, beta: bias?.value.storage,
                                     eps: eps, training: training, momentum: momentum, runningMean: runningMean.value.storage,
                                     runningVar: runningVar.value.storage, y: y.storage, saveMean: mean, saveInvstd: invstd)
        if training { batchesTracked.value = try Tensor(shape: [], scalars: [batchesTracked.value.scalars[0] + 1]) }
        cache = (x, mean, invstd, training)
        if let h = forwardHooks, !h.isEmpty { try h.run(input: x, output: y) }
        return y
    }

    public func backward(_ dy: Tensor, needInputGradient: Bool) throws -> Tensor? {
        guard let c = cache else { throw LayerError.backwardBeforeForward(summary) }
        try dy.expectShape(c.x.shape)
        let (n, s) = try dims(c.x)
        let dx = needInputGradient ? Tensor(uninitialized: c.x.shape) : nil
        let dg = weight.map { _ in Tensor(uninitialized: [features]) }, db = bias.map { _ in Tensor(uninitialized: [features]) }
        try Kernels.batchNormBackward(n: n, c: features, s: s, x: c.x.storage, gamma: weight?.value.storage, saveMean: c.mean,
                                      saveInvstd: c.invstd, dy: dy.storage, training: c.training, dx: dx?.storage,
                                      dgamma: dg?.storage, dbeta: db?.storage)
        if let weight, let dg { weight.grad = dg }
        if let bias, let db { bias.grad = db }
        return dx
    }
}
