/// Fully connected layer y = x·(W ⊙ M)ᵀ + b, W out×in (PyTorch's layout and init).
public final class Linear: Layer {
    /// Input features (columns of W).
    public let inFeatures: Int
    /// Output features (rows of W).
    public let outFeatures: Int
    /// W, out × in; prunable.
    public let weight: Parameter
    /// b (out); nil when the layer has none. Never pruned.
    public let bias: Parameter?
    private var input: Tensor?
    /// Observers of each forward pass (calibration statistics are gathered through them).
    public let forwardHooks: ForwardHooks? = ForwardHooks()
    /// Observers of each backward pass (Taylor importance of the units this layer reads).
    public let backwardHooks: BackwardHooks? = BackwardHooks()
    /// How the weight is executed: dense-masked GEMM, sparse kernels on the compressed kept
    /// entries, or (the default) whichever the measured crossover picks from the weight's density.
    public var execution: Execution = .automatic

    /// PyTorch's default init: U(−1/√in, 1/√in) for weight and bias.
    /// Throws on a size below 1.
    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, rng: inout SeededGenerator) throws {
        guard inFeatures > 0, outFeatures > 0 else {
            throw LayerError.badInput(layer: "Linear", expected: "in and out features ≥ 1", got: [inFeatures, outFeatures])
        }
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        let bound = 1 / Float(inFeatures).squareRoot()
        weight = Parameter(Tensor.uniform([outFeatures, inFeatures], -bound, bound, rng: &rng), prunable: true)
        self.bias = bias ? Parameter(Tensor.uniform([outFeatures], -bound, bound, rng: &rng), prunable: false) : nil
    }

    /// A layer with the given weight (out×in) and optional bias (out).
    public init(weight w: Tensor, bias b: Tensor?) throws {
        guard w.rank == 2, w.shape[0] > 0, w.shape[1] > 0 else {
            throw LayerError.badInput(layer: "Linear", expected: "a weight of shape [out ≥ 1, in ≥ 1]", got: w.shape)
        }
        if let b { try b.expectShape([w.shape[0]]) }
        inFeatures = w.shape[1]
        outFeatures = w.shape[0]
        weight = Parameter(w, prunable: true)
        bias = b.map { Parameter($0, prunable: false) }
    }

    public var summary: String { "Linear(\(inFeatures) → \(outFeatures))" }

    public var namedParameters: [(name: String, parameter: Parameter)] {
        var p: [(name: String, parameter: Parameter)] = [("weight", weight)]
        if let bias { p.append(("bias", bias)) }
        return p
    }

    public func forward(_ x: Tensor, training: Bool) throws -> Tensor {
        guard x.rank == 2, x.shape[1] == inFeatures else {
            throw LayerError.badInput(layer: summary, expected: "[batch, \(inFeatures)]", got: x.shape)
        }
        let m = x.shape[0]
        let y = Tensor(uninitialized: [m, outFeatures])
        if let c = try execution.prepare(weight, layer: summary) {
            try c.forward(x.storage, batch: m, bias: bias?.value.storage, into: y.storage, features: false)
        } else {
            try Kernels.linearForward(m: m, n: outFeatures, k: inFeatures, x: x.storage, w: weight.value.storage,
                                      mask: weight.maskStorage, bias: bias?.value.storage, y: y.storage)
        }
        input = training ? x : nil
        if let h = forwardHooks, !h.isEmpty { try h.run(input: x, output: y) }
        return y
    }

    public func backward(_ dy: Tensor, needInputGradient: Bool) throws -> Tensor? {
        guard let hooks = backwardHooks, !hooks.isEmpty else { return try backwardPass(dy, needInputGradient: needInputGradient) }
        let dx = try backwardPass(dy, needInputGradient: true)!
        try hooks.run(outputGradient: dy, inputGradient: dx)
        return needInputGradient ? dx : nil
    }

    private func backwardPass(_ dy: Tensor, needInputGradient: Bool) throws -> Tensor? {
        guard let x = input else { throw LayerError.backwardBeforeForward(summary) }
        let m = x.shape[0]
        try dy.expectShape([m, outFeatures])
        // dX = dY·(W ⊙ M) first: a fused optimizer step below changes W
        var dx: Tensor? = nil
        if let c = weight.compressed {
            // compressed form: dX = dY·W and dW at the kept entries (fused with the step when armed)
            if needInputGradient {
                let t = Tensor(uninitialized: [m, inFeatures])
                try c.inputGradient(dy.storage, batch: m, into: t.storage, features: false)
                dx = t
            }
            try biasGradient(dy, m)
            if let step = weight.takePendingStep() {
                try c.weightGradient(dy: dy.storage, x: x.storage, batch: m, step: step, grad: nil, features: false)
                weight.touch()
            } else {
                let g = FloatStorage(uninitializedCount: c.stateCount)
                try c.weightGradient(dy: dy.storage, x: x.storage, batch: m, step: nil, grad: g, features: false)
                weight.compressedGrad = g
            }
            return dx
        }
        if needInputGradient {
            let t = Tensor(uninitialized: [m, inFeatures])
            try Kernels.gemmNN(m: m, n: inFeatures, k: outFeatures, a: dy.storage, w: weight.value.storage,
                               mask: weight.maskStorage, c: t.storage)
            dx = t
        }
        try biasGradient(dy, m)
        // dW (out×in) = dYᵀ·X ⊙ M, or the optimizer step fused into that product
        if let step = weight.takePendingStep() {
            try Kernels.linearWeightUpdate(o: outFeatures, i: inFeatures, b: m, dy: dy.storage, x: x.storage,
                                           mask: weight.maskStorage, update: step, weight: weight.value.storage, dw: nil)
        } else {
            let dw = Tensor(uninitialized: [outFeatures, inFeatures])
            try Kernels.gemmTN(m: outFeatures, n: inFeatures, k: m, a: dy.storage, b: x.storage,
                               mask: weight.maskStorage, c: dw.storage)
            weight.grad = dw
        }
        return dx
    }
}

extension Linear {
    private func biasGradient(_ dy: Tensor, _ m: Int) throws {
        guard let bias else { return }
        let db = Tensor(uninitialized: [outFeatures])
        try Kernels.sumRows(m: m, n: outFeatures, x: dy.storage, out: db.storage)
        bias.grad = db
    }

    /// Forgets the input kept for backward.
    func dropInput() { input = nil }
}

extension Linear {
    /// A Linear with only the given output rows (weights and biases copied; masks too).
    func keepingOutputs(_ rows: [Int]) throws -> Linear {
        let w = weight.value.scalars, m = weight.mask?.kept
        let nw = rows.flatMap { r in w[(r * inFeatures)..<((r + 1) * inFeatures)] }
        let l = try Linear(weight: Tensor(shape: [rows.count, inFeatures], scalars: nw),
                           bias: bias.map { b in try Tensor(shape: [rows.count], scalars: rows.map { b.value.scalars[$0] }) })
        if let m { try l.weight.setMask(Mask(shape: [rows.count, inFeatures], kept: rows.flatMap { r in m[(r * inFeatures)..<((r + 1) * inFeatures)] })) }
        l.execution = execution
        return l
    }

    /// A Linear reading only the given input columns.
    func keepingInputs(_ cols: [Int]) throws -> Linear {
        let w = weight.value.scalars, m = weight.mask?.kept
        let nw = (0..<outFeatures).flatMap { r in cols.map { w[r * inFeatures + $0] } }
        let l = try Linear(weight: Tensor(shape: [outFeatures, cols.count], scalars: nw), bias: bias?.value)
        if let m { try l.weight.setMask(Mask(shape: [outFeatures, cols.count], kept: (0..<outFeatures).flatMap { r in cols.map { m[r * inFeatures + $0] } })) }
        l.execution = execution
        return l
    }
}
