/// 2-D convolution, NCHW, weight out×in×kh×kw (PyTorch's layout and init), stride s, zero padding p
/// (folded into the kernels: no padded copy of the input is made, except on the grouped path) and
/// dilation d (kernel taps d pixels apart, PyTorch's and ONNX's `dilation`).
/// Forward runs as an implicit GEMM: y = (W ⊙ M)·X̂ with W viewed as out × (in·k·k) and the patches X̂
/// gathered straight into the GEMM's packed panels, so pruning a filter masks a row of that matrix
/// exactly as it does for Linear, and the product lands in NCHW. Backward runs im2col + the masked GEMM.
///
/// Inference folding: when a model builder links this convolution to the BatchNorm that alone
/// consumes its output (`foldNorm`), a forward pass with `training == false` applies that BatchNorm's
/// running statistics in the GEMM epilogue, and the BatchNorm passes the result through untouched.
/// Either side falls back to the unfused computation whenever the link does not hold both ways, a
/// hook observes either layer, or the BatchNorm receives any other tensor. When the graph also links
/// the ReLU that alone reads that BatchNorm (`foldedActivation`), the epilogue rectifies too (NaN
/// kept, as `ReLU` does) and the ReLU passes the result through.
public final class Conv2d: Layer, ActivationFolding {
    /// Input channels (dimension 1 of the input).
    public let inChannels: Int
    /// Output channels (filters).
    public let outChannels: Int
    /// Kernel side k (square k × k kernels).
    public let kernelSize: Int
    /// Step s between kernel positions, in both directions.
    public let stride: Int
    /// Zero padding p on each side, in both directions.
    public let padding: Int
    /// Spacing of the kernel taps (1: adjacent); the window spans d·(k − 1) + 1 pixels.
    public let dilation: Int
    /// Channel groups: the weight is out × in/groups × k × k and each group of outputs reads its
    /// own group of inputs (depthwise when groups = in = out). Grouped convolutions run a direct
    /// kernel (dense execution only).
    public let groups: Int
    /// The filters, out × in/groups × k × k; prunable.
    public let weight: Parameter
    /// One value per output channel; nil when the layer has none. Never pruned.
    public let bias: Parameter?
    private var input: Tensor?
    /// Zero padding still to apply to `input` (0 when `input` is already padded: grouped path).
    private var inputPadding = 0
    /// The BatchNorm folded into this convolution at inference (see the type's comment).
    weak var foldedNorm: BatchNorm?
    /// The storage of the last inference output with `foldedNorm` already applied, until that BatchNorm takes it.
    weak var foldedOutput: FloatStorage?
    /// The ReLU that alone reads `foldedNorm`'s output, applied in the same epilogue at inference.
    weak var foldedActivation: ReLU?
    /// The storage of the last inference output with `foldedActivation` applied too, until that ReLU takes it.
    weak var activatedOutput: FloatStorage?
    /// im2col columns of the last training forward pass on the sparse path (backward reuses them).
    private var columns: FloatStorage?
    /// Observers of each forward pass (calibration statistics are gathered through them).
    public let forwardHooks: ForwardHooks? = ForwardHooks()
    /// Observers of each backward pass (Taylor importance of the channels this layer reads).
    public let backwardHooks: BackwardHooks? = BackwardHooks()

    /// A convolution from `inChannels` to `outChannels` channels, weight and bias drawn from `rng` with
    /// PyTorch's default init U(−1/√fan_in, 1/√fan_in), fan_in = in/groups·k·k. Throws
    /// `LayerError.badInput` unless every size is ≥ 1 (padding ≥ 0) and `groups` divides both channel counts.
    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0, dilation: Int = 1,
                groups: Int = 1, bias: Bool = true, rng: inout SeededGenerator) throws {
        // sizes often come from files or a user's input: a bad one throws instead of trapping
        guard inChannels > 0, outChannels > 0, kernelSize > 0, stride > 0, padding >= 0, dilation > 0, groups > 0,
              inChannels % groups == 0, outChannels % groups == 0 else {
            throw LayerError.badInput(layer: "Conv2d",
                                      expected: "in, out, kernel, stride, dilation, groups ≥ 1, padding ≥ 0, groups dividing in and out "
                                          + "(given as [in, out, kernel, stride, padding, dilation, groups])",
                                      got: [inChannels, outChannels, kernelSize, stride, padding, dilation, groups])
        }
        self.dilation = dilation
        self.groups = groups
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernelSize = kernelSize
        self.stride = stride
        self.padding = padding
        let fanIn = inChannels / groups * kernelSize * kernelSize
        let bound = 1 / Float(fanIn).squareRoot()
        weight = Parameter(Tensor.uniform([outChannels, inChannels / groups, kernelSize, kernelSize], -bound, bound, rng: &rng),
                           prunable: true)
        self.bias = bias ? Parameter(Tensor.uniform([outChannels], -bound, bound, rng: &rng), prunable: false) : nil
    }

    /// A layer with the given weight (out×in×k×k) and optional bias.
    public init(weight w: Tensor, bias b: Tensor?, stride: Int = 1, padding: Int = 0, dilation: Int = 1, groups: Int = 1) throws {
        guard w.rank == 4, w.shape[2] == w.shape[3], w.shape.allSatisfy({ $0 > 0 }), stride > 0, padding >= 0, groups > 0,
              dilation > 0, dilation <= 1 << 16, w.shape[0] % groups == 0 else {
            throw LayerError.badInput(layer: "Conv2d", expected: "a weight of shape [out, in/groups, k, k] (all ≥ 1, out a multiple of groups \(groups)), stride ≥ 1, padding ≥ 0, dilation ≥ 1",
                                      got: w.shape)
        }
        self.dilation = dilation
        if let b { try b.expectShape([w.shape[0]]) }
        outChannels = w.shape[0]
        inChannels = w.shape[1] * groups
        self.groups = groups
        kernelSize = w.shape[2]
        self.stride = stride
        self.padding = padding
        weight = Parameter(w, prunable: true)
        bias = b.map { Parameter($0, prunable: false) }
    }

    public var summary: String {
        "Conv2d(\(inChannels) → \(outChannels), \(kernelSize)×\(kernelSize), stride \(stride)" + (padding > 0 ? ", padding \(padding)" : "")
            + (dilation > 1 ? ", dilation \(dilation)" : "") + (groups > 1 ? ", groups \(groups))" : ")")
    }

    /// A convolution with this one's stride, padding, dilation and execution and the given weight
    /// (out × in/groups × k × k), bias and groups (structural surgery).
    public func rebuilt(weight w: Tensor, bias b: Tensor?, groups g: Int = 1) throws -> Conv2d {
        let c = try Conv2d(weight: w, bias: b, stride: stride, padding: padding, dilation: dilation, groups: g)
        c.execution = execution
        return c
    }

    public var namedParameters: [(name: String, parameter: Parameter)] {
        var p: [(name: String, parameter: Parameter)] = [("weight", weight)]
        if let bias { p.append(("bias", bias)) }
        return p
    }

    private var patch: Int { inChannels / groups * kernelSize * kernelSize }

    /// Pixels one window spans along each axis.
    public var extent: Int { dilation * (kernelSize - 1) + 1 }

    /// Output size for an unpadded (already padded) input of h × w.
    func outputSize(_ h: Int, _ w: Int) -> (Int, Int) { ((h - extent) / stride + 1, (w - extent) / stride + 1) }

    /// The input with its border of zeros (the input itself without padding).
    private func padded(_ x: Tensor) throws -> Tensor {
        guard padding > 0 else { return x }
        let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3])
        let y = Tensor(uninitialized: [n, inChannels, h + 2 * padding, w + 2 * padding])
        try Kernels.pad2d(n: n, c: inChannels, h: h, w: w, p: padding, x: x.storage, y: y.storage)
        return y
    }

    /// The gradient of the unpadded input from that of the padded one.
    private func cropped(_ g: Tensor?) throws -> Tensor? {
        guard padding > 0, let g else { return g }
        let (n, h, w) = (g.shape[0], g.shape[2] - 2 * padding, g.shape[3] - 2 * padding)
        let y = Tensor(uninitialized: [n, inChannels, h, w])
        try Kernels.crop2d(n: n, c: inChannels, h: h, w: w, p: padding, x: g.storage, y: y.storage)
        return y
    }

    /// How the weight (viewed as OC × C·KH·KW) is executed: dense-masked, sparse on its compressed
    /// kept entries through im2col, or (default) by the measured crossover (see `Execution`).
    public var execution: Execution = .automatic

    /// Links this convolution and the BatchNorm that alone consumes its output, for folding at inference.
    func foldNorm(_ bn: BatchNorm) {
        foldedNorm = bn
        bn.foldSource = self
    }

    /// Links the ReLU that alone consumes the output of `foldedNorm`, for the same folding.
    func foldActivation(_ relu: ReLU) {
        foldedActivation = relu
        relu.foldSource = self
    }

    /// Whether this inference pass, whose BatchNorm is folded, also applies the linked ReLU.
    private var rectifies: Bool {
        guard let act = foldedActivation else { return false }
        return act.foldSource === self
    }

    /// Per-output-channel scale and shift of the linked BatchNorm in evaluation mode (the conv bias
    /// included), when folding applies to this forward pass; nil otherwise.
    private func foldedAffine(training: Bool) throws -> (scale: FloatStorage, shift: FloatStorage)? {
        guard !training, let bn = foldedNorm, bn.foldSource === self, bn.features == outChannels,
              forwardHooks?.isEmpty ?? true, bn.forwardHooks?.isEmpty ?? true else { return nil }
        let (scale, shift) = try bn.inferenceAffine()
        guard let bias else { return (scale.storage, shift.storage) }
        // BN(conv + b) = scale·conv + (scale·b + shift)
        let b = bias.value.scalars, sc = scale.scalars, sh = shift.scalars
        let folded = try Tensor(shape: [outChannels], scalars: (0..<outChannels).map { sc[$0] * b[$0] + sh[$0] })
        return (scale.storage, folded.storage)
    }

    public func forward(_ original: Tensor, training: Bool) throws -> Tensor {
        let least = extent - 2 * padding
        guard original.rank == 4, original.shape[1] == inChannels, original.shape[2] >= max(least, 1),
              original.shape[3] >= max(least, 1) else {
            throw LayerError.badInput(layer: summary, expected: "[batch, \(inChannels), H ≥ \(max(least, 1)), W ≥ \(max(least, 1))]",
                                      got: original.shape)
        }
        foldedOutput = nil
        activatedOutput = nil
        if groups > 1 {
            let x = try padded(original)
            let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3])
            let (oh, ow) = outputSize(h, w)
            let y = Tensor(uninitialized: [n, outChannels, oh, ow])
            try Kernels.groupedConvForward(n: n, c: inChannels, h: h, w: w, oc: outChannels, k: kernelSize, stride: stride,
                                           dilation: dilation, groups: groups, x: x.storage, weight: weight.value.storage, mask: weight.maskStorage,
                                           bias: bias?.value.storage, y: y.storage)
            input = training ? x : nil
            inputPadding = 0
            columns = nil
            if let hk = forwardHooks, !hk.isEmpty { try hk.run(input: original, output: y) }
            return y
        }
        let (n, h, w) = (original.shape[0], original.shape[2], original.shape[3])
        let (oh, ow) = outputSize(h + 2 * padding, w + 2 * padding)
        let y = Tensor(uninitialized: [n, outChannels, oh, ow])
        if let c = try execution.prepare(weight, layer: summary, path: training ? .convolutionTraining : .product) {
            if !training, let csr = c as? SparseMatrix {
                // inference in CSR: the sparse direct convolution (no column matrix), a linked BatchNorm
                // folded in as on the dense path
                columns = nil
                let folded = try foldedAffine(training: false), relu = folded != nil && rectifies
                try csr.convolutionForward(n: n, c: inChannels, h: h, w: w, kernel: kernelSize, stride: stride, padding: padding,
                                           dilation: dilation, relu: relu, x: original.storage, scale: folded?.scale,
                                           shift: folded?.shift ?? bias?.value.storage, into: y.storage)
                input = nil
                inputPadding = padding
                if folded != nil { foldedOutput = y.storage }
                if relu { activatedOutput = y.storage }
                if let h = forwardHooks, !h.isEmpty { try h.run(input: original, output: y) }
                return y
            }
            // training, and the structured formats: im2col columns (K × N·OH·OW, padding folded in)
            // times the compressed weight, then back to NCHW; backward reuses the columns
            let np = n * oh * ow
            let cols = FloatStorage(uninitializedCount: patch * np), yt = FloatStorage(uninitializedCount: outChannels * np)
            try Kernels.im2colPadded(n: n, c: inChannels, h: h, w: w, kernel: kernelSize, stride: stride, padding: padding,
                                     dilation: dilation, x: original.storage, cols: cols)
            try c.forward(cols, batch: np, bias: bias?.value.storage, into: yt, features: true)
            try Kernels.nchwToCnhw(n: outChannels, c: n, p: oh * ow, x: yt, y: y.storage)
            input = training ? original : nil
            inputPadding = padding
            columns = training ? cols : nil
            if let h = forwardHooks, !h.isEmpty { try h.run(input: original, output: y) }
            return y
        }
        columns = nil
        let folded = try foldedAffine(training: training), relu = folded != nil && rectifies
        try Kernels.convPaddedForward(n: n, c: inChannels, h: h, w: w, outChannels: outChannels, kernel: kernelSize,
                                        stride: stride, padding: padding, dilation: dilation, relu: relu, x: original.storage,
                                        weight: weight.value.storage, mask: weight.maskStorage, scale: folded?.scale,
                                        shift: folded?.shift ?? bias?.value.storage, y: y.storage)
        input = training ? original : nil
        inputPadding = padding
        if folded != nil { foldedOutput = y.storage }
        if relu { activatedOutput = y.storage }
        if let h = forwardHooks, !h.isEmpty { try h.run(input: original, output: y) }
        return y
    }

    /// Hands the folded output to the linked BatchNorm: true when `x` is exactly that output (once).
    func takeFoldedOutput(_ x: Tensor, by bn: BatchNorm) -> Bool {
        guard foldedNorm === bn, let s = foldedOutput, s === x.storage else { return false }
        foldedOutput = nil
        return true
    }

    /// Hands the rectified output to the linked ReLU: true when `x` is exactly that output, passed
    /// through by the BatchNorm (once).
    func takeActivatedOutput(_ x: Tensor, by act: ReLU) -> Bool {
        guard foldedActivation === act, let s = activatedOutput, s === x.storage else { return false }
        activatedOutput = nil
        return true
    }

    public func backward(_ dy: Tensor, needInputGradient: Bool) throws -> Tensor? {
        guard let hooks = backwardHooks, !hooks.isEmpty else { return try backwardPass(dy, needInputGradient: needInputGradient) }
        let dx = try backwardPass(dy, needInputGradient: true)!
        try hooks.run(outputGradient: dy, inputGradient: dx)
        return needInputGradient ? dx : nil
    }

    private func backwardPass(_ dy: Tensor, needInputGradient: Bool) throws -> Tensor? {
        guard let x = input else { throw LayerError.backwardBeforeForward(summary) }
        let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3])
        let (oh, ow) = outputSize(h + 2 * inputPadding, w + 2 * inputPadding)
        try dy.expectShape([n, outChannels, oh, ow])
        if groups > 1 {
            // the optimizer applies its step from `grad` (no fused update on this path)
            let dw = Tensor(uninitialized: weight.shape), dx = needInputGradient ? Tensor(uninitialized: x.shape) : nil
            try Kernels.groupedConvBackward(n: n, c: inChannels, h: h, w: w, oc: outChannels, k: kernelSize, stride: stride,
                                            dilation: dilation, groups: groups, x: x.storage, weight: weight.value.storage, mask: weight.maskStorage,
                                            dy: dy.storage, dw: dw.storage, dx: dx?.storage)
            weight.grad = dw
            if let bias {
                let db = Tensor(uninitialized: [outChannels])
                try Kernels.biasGradNCHW(n: n, c: outChannels, p: oh * ow, dy: dy.storage, db: db.storage)
                bias.grad = db
            }
            return try cropped(dx)
        }
        if let c = weight.compressed, let cols = columns {
            let np = n * oh * ow
            let dyt = FloatStorage(uninitializedCount: outChannels * np)
            try Kernels.nchwToCnhw(n: n, c: outChannels, p: oh * ow, x: dy.storage, y: dyt)
            var dx: Tensor? = nil
            if needInputGradient {
                let dcols = FloatStorage(uninitializedCount: patch * np), t = Tensor(uninitialized: x.shape)
                try c.inputGradient(dyt, batch: np, into: dcols, features: true)
                try Kernels.col2imPadded(n: n, c: inChannels, h: h, w: w, kernel: kernelSize, stride: stride,
                                         padding: inputPadding, dilation: dilation, dcols: dcols, dx: t.storage)
                dx = t
            }
            if let bias {
                let db = Tensor(uninitialized: [outChannels])
                try Kernels.biasGradNCHW(n: n, c: outChannels, p: oh * ow, dy: dy.storage, db: db.storage)
                bias.grad = db
            }
            if let step = weight.takePendingStep() {
                try c.weightGradient(dy: dyt, x: cols, batch: np, step: step, grad: nil, features: true)
                weight.touch()
            } else {
                let g = FloatStorage(uninitializedCount: c.stateCount)
                try c.weightGradient(dy: dyt, x: cols, batch: np, step: nil, grad: g, features: true)
                weight.compressedGrad = g
            }
            return dx
        }
        let step = weight.takePendingStep()
        let dw = step == nil ? Tensor(uninitialized: weight.shape) : nil
        let db = bias.map { _ in Tensor(uninitialized: [outChannels]) }
        let dx = needInputGradient ? Tensor(uninitialized: x.shape) : nil
        try Kernels.convPaddedBackward(n: n, c: inChannels, h: h, w: w, outChannels: outChannels, kernel: kernelSize,
                                       stride: stride, padding: inputPadding, dilation: dilation, x: x.storage, weight: weight.value.storage,
                                       mask: weight.maskStorage, dy: dy.storage, dw: dw?.storage, db: db?.storage,
                                       dx: dx?.storage, update: step)
        if let dw { weight.grad = dw }
        if let bias, let db { bias.grad = db }
        return dx
    }
}
