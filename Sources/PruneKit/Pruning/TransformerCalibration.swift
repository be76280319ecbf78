/// Calibration of a BERT encoder for pruning: input statistics of every Linear (Wanda's Σx², and
/// Σx for bias compensation) and, on request, Taylor importance of heads, FFN neurons and weights.
extension TransformerPruner {
    /// What a pass over calibration sentences measured.
    public struct Calibration {
        /// Σx² and Σx of every Linear's inputs (padding rows never enter: one sentence at a time).
        public let statistics: ActivationStatistics
        /// Taylor importance of each block's heads and FFN neurons (nil unless asked for).
        public let sensitivity: (heads: [[Double]], neurons: [[Double]])?
        /// Σ|w·∂L/∂w| of every Linear weight over the sentences (taylor on weights).
        let weightTaylor: TaylorImportance?
        public let sentences: Int
    }

    /// Runs `sentences` one at a time through `e` and records what the pruning methods need.
    ///
    /// With `taylor`, each sentence also runs backward: a sentence encoder has no task loss, so
    /// the loss is a random projection L = vᵀ·e(x) of its embedding (v ~ N(0, I), a new v per
    /// sentence, from `seed`). Then E_v[(∂L/∂m)²] = ‖∂e/∂m‖², so the mean over sentences of the
    /// squared mask gradient estimates how far the embedding moves, to first order, when a head or
    /// neuron mask m goes from 1 to 0 (the diagonal Gauss–Newton of the distillation loss around
    /// the dense model). Heads use Michel et al.'s head mask; a neuron's mask multiplies its GELU
    /// output; weights accumulate |w·∂L/∂w| as `Importance.taylor` does. The weights' `grad` then
    /// holds the last sentence's gradients; nothing else of the pass is kept.
    public static func calibrate(_ e: BertEncoder, tokenizer: WordPieceTokenizer, sentences: [String],
                                 taylor: Bool = false, seed: UInt64 = 0) throws -> Calibration {
        guard !sentences.isEmpty else { throw PruneError.missingStatistics("no calibration sentences") }
        let stats = ActivationStatistics()
        let ls = linears(e)
        let savedRecording = e.layers.map(\.recordMaskGradients)
        for layer in e.layers { layer.recordMaskGradients = taylor }
        defer {
            for (layer, r) in zip(e.layers, savedRecording) { layer.recordMaskGradients = r; layer.maskGradients = nil; layer.cache = nil }
            e.dropTrainingCaches()
        }
        let weightTaylor = taylor ? TaylorImportance(parameters: ls.map(\.weight)) : nil
        var heads = e.layers.map { [Double](repeating: 0, count: $0.heads) }
        var neurons = e.layers.map { [Double](repeating: 0, count: $0.intermediate.outFeatures) }
        var rng = SeededGenerator(seed: seed)
        try stats.recording(ls) {
            for s in sentences {
                let (ids, mask) = tokenizer.pad([tokenizer.encode(s)])
                let out = try e.embed(ids: ids, mask: mask, training: taylor)
                guard taylor else { continue }
                let v = Tensor.normal(out.shape, rng: &rng)
                try e.backward(v)
                try weightTaylor!.accumulate()
                for (i, layer) in e.layers.enumerated() {
                    guard let g = layer.maskGradients else { throw PruneError.missingStatistics("no mask gradients in block \(i)") }
                    for h in g.heads.indices { heads[i][h] += g.heads[h] * g.heads[h] / Double(sentences.count) }
                    for j in g.neurons.indices { neurons[i][j] += g.neurons[j] * g.neurons[j] / Double(sentences.count) }
                }
            }
        }
        return Calibration(statistics: stats, sensitivity: taylor ? (heads, neurons) : nil, weightTaylor: weightTaylor,
                           sentences: sentences.count)
    }

    /// Unstructured or 2:4 pruning block by block, in the order of Wanda's implementation: the
    /// statistics of block i come from the calibration sentences after they ran through the
    /// already pruned blocks before it; then block i is pruned (and its biases compensated) and
    /// the sentences move on through it. `e` itself is pruned and returned (an error part-way leaves
    /// the blocks before it pruned). Methods l1, wanda and sparsegpt (which also reconstructs
    /// the kept weights from the Gram matrix of each Linear's inputs, dampening 1 % of its mean
    /// diagonal; columns in blocks of 128).
    public static func pruneSequentially(_ e: BertEncoder, structure: Structure, method: Method, amount: Double,
                                         tokenizer: WordPieceTokenizer, sentences: [String],
                                         compensate: Bool = true) throws -> BertEncoder {
        guard structure == .unstructured || structure == .nm24 else {
            throw PruneError.unsupported("sequential pruning is for unstructured and 2:4 masks")
        }
        guard method != .taylor else { throw PruneError.unsupported("sequential pruning takes l1, wanda or sparsegpt") }
        guard amount >= 0, amount < 1 || structure == .nm24 else {
            throw PruneError.amountOutOfRange("fraction \(amount) must be in [0, 1)")
        }
        guard !sentences.isEmpty else { throw PruneError.missingStatistics("no calibration sentences") }
        var states = try sentences.map { s -> (x: Tensor, t: Int) in
            let ids = tokenizer.encode(s)
            return (try e.tokenEmbeddings(ids: [ids]), ids.count)
        }
        let eps = e.config.layerNormEps
        for layer in e.layers {
            let stats = ActivationStatistics()
            stats.recordsGram = method == .sparsegpt
            try stats.recording(layer.linears) {
                for s in states { _ = try layer.forward(s.x, b: 1, t: s.t, mask: nil, eps: eps) }
            }
            let calibration = Calibration(statistics: stats, sensitivity: nil, weightTaylor: nil, sentences: sentences.count)
            for l in layer.linears {
                if method == .sparsegpt {
                    let before = l.weight.value.scalars
                    let w = try Tensor(shape: l.weight.shape, scalars: before)
                    let kept = try Kernels.sparseGPT(rows: l.outFeatures, cols: l.inFeatures, w: w.storage, gram: stats.gram(for: l.weight),
                                                     damp: 0.01, sparsity: amount, nm: structure == .nm24 ? (2, 4) : nil)
                    l.weight.value = w
                    try l.weight.setMask(Mask(shape: l.weight.shape, kept: kept.map { $0 != 0 }))
                    try compensateBias(l, before: before, means: compensate ? stats : nil)
                } else {
                    try pruneWeights(l, structure: structure, amount: amount,
                                     scores: weightScores(l, method: method, calibration: calibration),
                                     means: compensate ? stats : nil)
                }
            }
            states = try states.map { (try layer.forward($0.x, b: 1, t: $0.t, mask: nil, eps: eps), $0.t) }
        }
        return e
    }
}
