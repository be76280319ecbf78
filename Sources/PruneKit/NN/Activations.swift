/// A layer that can apply the ReLU reading its output (directly or through a folded BatchNorm) in
/// its own pass at inference; the ReLU then passes that output through.
protocol ActivationFolding: AnyObject {
    /// True when `x` is exactly the output this layer produced with `act` applied (each output once).
    func takeActivatedOutput(_ x: Tensor, by act: ReLU) -> Bool
}

/// max(x, 0), element-wise (NaN kept).
public final class ReLU: Layer {
    private var output: Tensor?
    /// The layer this ReLU is fused into at inference, linked by the containing graph: the residual
    /// Add it alone reads, or the convolution whose folded BatchNorm it alone reads.
    weak var foldSource: (any ActivationFolding)?
    /// A ReLU layer (no parameters).
    public init() {}
    public var summary: String { "ReLU" }

    public func forward(_ x: Tensor, training: Bool) throws -> Tensor {
        if !training, let source = foldSource, source.takeActivatedOutput(x, by: self) {
            // the Add or the convolution already rectified its output
            output = nil
            return x
        }
        let y = Tensor(uninitialized: x.shape)
        try Kernels.reluForward(n: x.count, x: x.storage, y: y.storage)
        output = training ? y : nil
        return y
    }

    public func backward(_ dy: Tensor, needInputGradient: Bool) throws -> Tensor? {
        guard let y = output else { throw LayerError.backwardBeforeForward(summary) }
        try dy.expectShape(y.shape)
        guard needInputGradient else { return nil }
        let dx = Tensor(uninitialized: y.shape)
        try Kernels.reluBackward(n: y.count, y: y.storage, dy: dy.storage, dx: dx.storage)
        return dx
    }
}

/// Collapses every dimension after the first: N×C×H×W → N×(C·H·W) (PyTorch's order).
public final class Flatten: Layer {
    private var inputShape: [Int]?
    /// A Flatten layer (no parameters).
    public init() {}
    public var summary: String { "Flatten" }

    public func forward(_ x: Tensor, training: Bool) throws -> Tensor {
        guard x.rank >= 1 else { throw LayerError.badInput(layer: summary, expected: "[batch, ...]", got: x.shape) }
        inputShape = x.shape
        return try x.reshaped([x.shape[0], x.shape.dropFirst().reduce(1, *)])
    }

    public func backward(_ dy: Tensor, needInputGradient: Bool) throws -> Tensor? {
        guard let s = inputShape else { throw LayerError.backwardBeforeForward(summary) }
        return needInputGradient ? try dy.reshaped(s) : nil
    }
}

/// k×k max pooling with stride s (default k) and implicit padding p that never wins (PyTorch's
/// MaxPool2d(k, s, p) and ONNX's MaxPool, floor mode): the output is (H + 2p − k)/s + 1 high.
public final class MaxPool2d: Layer {
    /// Window side k (k × k windows).
    public let kernelSize: Int
    /// Step s between windows, in both directions (the kernel size unless given).
    public let stride: Int
    /// Implicit padding p on each side; padded positions never win the maximum.
    public let padding: Int
    private var indices: Int32Storage?
    private var inputShape: [Int] = []

    /// Throws on a kernel or stride below 1, a negative padding, or a padding above half the kernel.
    public init(_ kernelSize: Int, stride: Int? = nil, padding: Int = 0) throws {
        let s = stride ?? kernelSize
        guard kernelSize > 0, s > 0, padding >= 0, 2 * padding <= kernelSize else {
            throw LayerError.badInput(layer: "MaxPool2d", expected: "a kernel size ≥ 1, stride ≥ 1, 0 ≤ 2·padding ≤ kernel size",
                                      got: [kernelSize, s, padding])
        }
        self.kernelSize = kernelSize
        self.stride = s
        self.padding = padding
    }

    public var summary: String {
        stride == kernelSize && padding == 0 ? "MaxPool2d(\(kernelSize))" : "MaxPool2d(\(kernelSize), stride \(stride), padding \(padding))"
    }

    func outputShape(_ s: [Int]) throws -> [Int] {
        guard s.count == 4, s[2] > 0, s[3] > 0, s[2] + 2 * padding >= kernelSize, s[3] + 2 * padding >= kernelSize else {
            let least = max(kernelSize - 2 * padding, 1)
            throw LayerError.badInput(layer: summary, expected: "[batch, C, H ≥ \(least), W ≥ \(least)]", got: s)
        }
        return [s[0], s[1], (s[2] + 2 * padding - kernelSize) / stride + 1, (s[3] + 2 * padding - kernelSize) / stride + 1]
    }

    public func forward(_ x: Tensor, training: Bool) throws -> Tensor {
        let outShape = try outputShape(x.shape)
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let y = Tensor(uninitialized: outShape)
        let idx = Int32Storage(count: y.count)
        try Kernels.maxPoolForward(n: n, c: c, h: h, w: w, k: kernelSize, stride: stride, padding: padding, x: x.storage,
                                   y: y.storage, idx: idx)
        indices = training ? idx : nil
        inputShape = x.shape
        return y
    }

    public func backward(_ dy: Tensor, needInputGradient: Bool) throws -> Tensor? {
        guard let idx = indices else { throw LayerError.backwardBeforeForward(summary) }
        let (n, c, h, w) = (inputShape[0], inputShape[1], inputShape[2], inputShape[3])
        try dy.expectShape(try outputShape(inputShape))
        guard needInputGradient else { return nil }
        let dx = Tensor(uninitialized: inputShape)
        try Kernels.maxPoolBackward(n: n, c: c, h: h, w: w, k: kernelSize, stride: stride, padding: padding, dy: dy.storage,
                                    idx: idx, dx: dx.storage)
        return dx
    }
}

/// Element-wise activations computed by C kernels: sigmoid, SiLU (swish), hard-swish, hard-sigmoid,
/// tanh and ReLU6 (PyTorch's formulas), GELU (erf form, as BERT's) and GELU's tanh approximation
/// (`geluTanh`: PyTorch's `approximate="tanh"`, HuggingFace's gelu_new / gelu_pytorch_tanh).
public final class Activation: Layer {
    /// Which function the layer computes; the raw value is the case name.
    public enum Kind: String, Sendable, CaseIterable {
        /// σ(x); x·σ(x); x·relu6(x+3)/6; relu6(x+3)/6; tanh(x); min(max(x, 0), 6); GELU (erf); GELU (tanh form).
        case sigmoid, silu, hardswish, hardsigmoid, tanh, relu6, gelu, geluTanh
    }
    /// The function this layer computes.
    public let kind: Kind
    private var input: Tensor?

    /// A layer computing `kind` element-wise.
    public init(_ kind: Kind) { self.kind = kind }
    public var summary: String { kind.rawValue.capitalized }

    private var code: Int32 {
        switch kind {
        case .sigmoid: return 1
        case .silu: return 2
        case .hardswish: return 3
        case .hardsigmoid: return 4
        case .tanh: return 5
        case .relu6: return 6
        case .geluTanh: return 7
        case .gelu: return 0
        }
    }

    public func forward(_ x: Tensor, training: Bool) throws -> Tensor {
        let y = Tensor(uninitialized: x.shape)
        if kind == .gelu { try Kernels.gelu(x.storage, into: y.storage) } else {
            try Kernels.activationForward(kind: code, x: x.storage, y: y.storage)
        }
        input = training ? x : nil
        return y
    }

    public func backward(_ dy: Tensor, needInputGradient: Bool) throws -> Tensor? {
        guard let x = input else { throw LayerError.backwardBeforeForward(summary) }
        try dy.expectShape(x.shape)
        guard needInputGradient else { return nil }
        let dx = Tensor(uninitialized: x.shape)
        if kind == .gelu { try Kernels.geluBackward(x: x.storage, dy: dy.storage, dx: dx.storage) } else {
            try Kernels.activationBackward(kind: code, x: x.storage, dy: dy.storage, dx: dx.storage)
        }
        return dx
    }
}

/// y = x (torchvision's `maxpool = Identity()`, a placeholder left by surgery).
public final class Identity: Layer {
    /// An Identity layer (no parameters).
    public init() {}
    public var summary: String { "Identity" }
    public func forward(_ x: Tensor, training: Bool) throws -> Tensor { x }
    public func backward(_ dy: Tensor, needInputGradient: Bool) throws -> Tensor? { needInputGradient ? dy : nil }
}

/// Inverted dropout: in training each value is zeroed with probability p and the rest scaled by
/// 1/(1 − p); in evaluation y = x. The masks come from a seeded generator (same seed, same masks).
public final class Dropout: Layer {
    /// Probability p in [0, 1) that a value is zeroed in training.
    public let probability: Float
    private var rng: SeededGenerator
    private var keep: Tensor?
    private var passthrough = false

    /// Dropout with probability p (throws `LayerError.badInput` unless 0 ≤ p < 1), its masks drawn from a
    /// generator seeded with `seed`.
    public init(_ probability: Float, seed: UInt64 = 0) throws {
        guard probability >= 0, probability < 1 else {
            throw LayerError.badInput(layer: "Dropout(\(probability))", expected: "a probability in [0, 1)", got: [])
        }
        self.probability = probability
        self.rng = SeededGenerator(seed: seed)
    }

    public var summary: String { "Dropout(\(probability))" }

    public func forward(_ x: Tensor, training: Bool) throws -> Tensor {
        passthrough = !training || probability == 0
        guard !passthrough else { keep = nil; return x }
        let scale = 1 / (1 - probability)
        let k = try Tensor(shape: x.shape, scalars: (0..<x.count).map { _ in rng.nextUnitFloat() < probability ? 0 : scale })
        keep = k
        return try Tensor(shape: x.shape, scalars: zip(x.scalars, k.scalars).map(*))
    }

    public func backward(_ dy: Tensor, needInputGradient: Bool) throws -> Tensor? {
        guard needInputGradient else { return nil }
        if passthrough { return dy }
        guard let k = keep else { throw LayerError.backwardBeforeForward(summary) }
        try dy.expectShape(k.shape)
        return try Tensor(shape: k.shape, scalars: zip(dy.scalars, k.scalars).map(*))
    }
}
