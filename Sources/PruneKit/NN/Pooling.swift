/// Average pooling of N×C×H×W over k×k windows with stride (default k) and zero padding counted in
/// the divisor (PyTorch's AvgPool2d defaults).
public final class AvgPool2d: Layer {
    /// Window side k (k × k windows).
    public let kernelSize: Int
    /// Step between windows, in both directions (the kernel size unless given).
    public let stride: Int
    /// Zero padding on each side, counted in the divisor.
    public let padding: Int
    private var inputShape: [Int]?

    /// k × k average pooling with `stride` (default k) and `padding`. Throws `LayerError.badInput`
    /// unless k ≥ 1, stride ≥ 1 and 0 ≤ 2·padding ≤ k.
    public init(_ kernelSize: Int, stride: Int? = nil, padding: Int = 0) throws {
        let s = stride ?? kernelSize
        guard kernelSize > 0, s > 0, padding >= 0, 2 * padding <= kernelSize else {
            throw LayerError.badInput(layer: "AvgPool2d(\(kernelSize))", expected: "kernel > 0, stride > 0, 0 ≤ 2·padding ≤ kernel", got: [])
        }
        self.kernelSize = kernelSize
        self.stride = s
        self.padding = padding
    }

    public var summary: String { "AvgPool2d(\(kernelSize), stride \(stride), padding \(padding))" }

    func outputShape(_ s: [Int]) throws -> [Int] {
        guard s.count == 4, s[2] + 2 * padding >= kernelSize, s[3] + 2 * padding >= kernelSize, s[2] > 0, s[3] > 0 else {
            throw LayerError.badInput(layer: summary, expected: "[batch, C, H, W] with H, W + 2·padding ≥ \(kernelSize)", got: s)
        }
        return [s[0], s[1], (s[2] + 2 * padding - kernelSize) / stride + 1, (s[3] + 2 * padding - kernelSize) / stride + 1]
    }

    public func forward(_ x: Tensor, training: Bool) throws -> Tensor {
        let y = Tensor(uninitialized: try outputShape(x.shape))
        try Kernels.avgPoolForward(n: x.shape[0], c: x.shape[1], h: x.shape[2], w: x.shape[3], kh: kernelSize, kw: kernelSize,
                                   stride: stride, padding: padding, x: x.storage, y: y.storage)
        inputShape = training ? x.shape : nil
        return y
    }

    public func backward(_ dy: Tensor, needInputGradient: Bool) throws -> Tensor? {
        guard let s = inputShape else { throw LayerError.backwardBeforeForward(summary) }
        try dy.expectShape(try outputShape(s))
        guard needInputGradient else { return nil }
        let dx = Tensor(uninitialized: s)
        try Kernels.avgPoolBackward(n: s[0], c: s[1], h: s[2], w: s[3], kh: kernelSize, kw: kernelSize, stride: stride,
                                    padding: padding, dy: dy.storage, dx: dx.storage)
        return dx
    }
}

/// Mean over each channel's H×W values: N×C×H×W → N×C (torchvision's adaptive average pool to 1×1
/// followed by flatten).
public final class GlobalAvgPool2d: Layer {
    private var inputShape: [Int]?
    /// A GlobalAvgPool2d layer (no parameters).
    public init() {}
    public var summary: String { "GlobalAvgPool2d" }

    public func forward(_ x: Tensor, training: Bool) throws -> Tensor {
        guard x.rank == 4, x.shape[2] > 0, x.shape[3] > 0 else {
            throw LayerError.badInput(layer: summary, expected: "[batch, C, H, W]", got: x.shape)
        }
        let y = Tensor(uninitialized: [x.shape[0], x.shape[1]])
        try Kernels.avgPoolForward(n: x.shape[0], c: x.shape[1], h: x.shape[2], w: x.shape[3], kh: x.shape[2], kw: x.shape[3],
                                   stride: 1, padding: 0, x: x.storage, y: y.storage)
        inputShape = training ? x.shape : nil
        return y
    }

    public func backward(_ dy: Tensor, needInputGradient: Bool) throws -> Tensor? {
        guard let s = inputShape else { throw LayerError.backwardBeforeForward(summary) }
        try dy.expectShape([s[0], s[1]])
        guard needInputGradient else { return nil }
        let dx = Tensor(uninitialized: s)
        try Kernels.avgPoolBackward(n: s[0], c: s[1], h: s[2], w: s[3], kh: s[2], kw: s[3], stride: 1, padding: 0,
                                    dy: dy.storage, dx: dx.storage)
        return dx
    }
}
