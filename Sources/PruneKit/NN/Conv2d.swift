/// 2-D convolution without padding, NCHW, weight out×in×kh×kw (PyTorch's layout and init).
/// Runs as im2col + the masked GEMM: y = (W ⊙ M)·cols with W viewed as out × (in·k·k), so pruning
/// a filter masks a row of that matrix exactly as it does for Linear, and the product lands in NCHW.
public final class Conv2d: Layer {
    public let inChannels: Int
    public let outChannels: Int
    public let kernelSize: Int
    public let stride: Int
    public let weight: Parameter
    public let bias: Parameter?
    private var cols: Tensor?
    private var inputShape: [Int] = []

    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, bias: Bool = true,
                rng: inout SeededGenerator) {
        precondition(inChannels > 0 && outChannels > 0 && kernelSize > 0 && stride > 0, "Conv2d needs positive sizes")
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernelSize = kernelSize
        self.stride = stride
        let fanIn = inChannels * kernelSize * kernelSize
        let bound = 1 / Float(fanIn).squareRoot()
        weight = Parameter(Tensor.uniform([outChannels, inChannels, kernelSize, kernelSize], -bound, bound, rng: &rng),
                           prunable: true)
        self.bias = bias ? Parameter(Tensor.uniform([outChannels], -bound, bound, rng: &rng), prunable: false) : nil
    }

    /// A layer with the given weight (out×in×k×k) and optional bias.
    public init(weight w: Tensor, bias b: Tensor?, stride: Int = 1) throws {
        guard w.rank == 4, w.shape[2] == w.shape[3], w.shape.allSatisfy({ $0 > 0 }), stride > 0 else {
            throw TensorError.invalidShape(w.shape)
        }
        if let b { try b.expectShape([w.shape[0]]) }
        outChannels = w.shape[0]
        inChannels = w.shape[1]
        kernelSize = w.shape[2]
        self.stride = stride
        weight = Parameter(w, prunable: true)
        bias = b.map { Parameter($0, prunable: false) }
    }

    public var summary: String { "Conv2d(\(inChannels) → \(outChannels), \(kernelSize)×\(kernelSize), stride \(stride))" }

    public var namedParameters: [(name: String, parameter: Parameter)] {
        var p: [(name: String, parameter: Parameter)] = [("weight", weight)]
        if let bias { p.append(("bias", bias)) }
        return p
    }

    private var patch: Int { inChannels * kernelSize * kernelSize }

    func outputSize(_ h: Int, _ w: Int) -> (Int, Int) { ((h - kernelSize) / stride + 1, (w - kernelSize) / stride + 1) }

    public func forward(_ x: Tensor, training: Bool) throws -> Tensor {
        guard x.rank == 4, x.shape[1] == inChannels, x.shape[2] >= kernelSize, x.shape[3] >= kernelSize else {
            throw LayerError.badInput(layer: summary, expected: "[batch, \(inChannels), H ≥ \(kernelSize), W ≥ \(kernelSize)]",
                                      got: x.shape)
        }
        let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3])
        let (oh, ow) = outputSize(h, w)
        // cols: one row per (c, kh, kw), one column per output pixel (n, oh, ow)
        let c = Tensor(uninitialized: [patch, n * oh * ow])
        try Kernels.im2col(n: n, c: inChannels, h: h, w: w, kh: kernelSize, kw: kernelSize, stride: stride,
                           x: x.storage, cols: c.storage)
        let y = Tensor(uninitialized: [n, outChannels, oh, ow])
        try Kernels.convForward(images: n, outChannels: outChannels, patch: patch, positions: oh * ow,
                                w: weight.value.storage, mask: weight.maskStorage, cols: c.storage,
                                bias: bias?.value.storage, y: y.storage)
        cols = training ? c : nil
        inputShape = x.shape
        return y
    }

    public func backward(_ dy: Tensor, needInputGradient: Bool) throws -> Tensor? {
        guard let cols else { throw LayerError.backwardBeforeForward(summary) }
        let (n, h, w) = (inputShape[0], inputShape[2], inputShape[3])
        let (oh, ow) = outputSize(h, w)
        try dy.expectShape([n, outChannels, oh, ow])
        let np = n * oh * ow
        // dY as channels × pixels, the GEMMs' layout
        let dyc = Tensor(uninitialized: [outChannels, np])
        try Kernels.nchwToCnhw(n: n, c: outChannels, positions: oh * ow, x: dy.storage, y: dyc.storage)
        let dw = Tensor(uninitialized: weight.shape)
        try Kernels.convWeightGradient(outChannels: outChannels, patch: patch, columns: np, dyc: dyc.storage,
                                       cols: cols.storage, mask: weight.maskStorage, dw: dw.storage)
        weight.grad = dw
        if let bias {
            let db = Tensor(uninitialized: [outChannels])
            try Kernels.biasGradNCHW(n: n, c: outChannels, positions: oh * ow, dy: dy.storage, db: db.storage)
            bias.grad = db
        }
        guard needInputGradient else { return nil }
        let dcols = Tensor(uninitialized: [patch, np])
        try Kernels.convInputGradient(outChannels: outChannels, patch: patch, columns: np, w: weight.value.storage,
                                      mask: weight.maskStorage, dyc: dyc.storage, dcols: dcols.storage)
        let dx = Tensor(uninitialized: inputShape)
        try Kernels.col2im(n: n, c: inChannels, h: h, w: w, kh: kernelSize, kw: kernelSize, stride: stride,
                           dcols: dcols.storage, dx: dx.storage)
        return dx
    }
}
