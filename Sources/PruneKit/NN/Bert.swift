/// Sizes of a BERT encoder (config.json of a HuggingFace BertModel).
public struct BertConfig: Sendable, Equatable {
    public var hidden: Int, layers: Int, heads: Int, intermediate: Int, vocab: Int, maxPositions: Int
    public var layerNormEps: Float
    public var headDim: Int { hidden / heads }
}

/// One encoder block: self-attention (per-head mask), residual + LayerNorm, GELU feed-forward,
/// residual + LayerNorm (BERT's post-norm order). Heads may be fewer than the config's after
/// pruning: `heads` is this block's own count (query/key/value have heads·headDim outputs).
public final class BertLayer {
    public let query: Linear, key: Linear, value: Linear, attentionOutput: Linear
    public let attentionNorm: (gamma: Tensor, beta: Tensor)
    public let intermediate: Linear, output: Linear
    public let outputNorm: (gamma: Tensor, beta: Tensor)
    public let heads: Int
    /// Multiplies each head's attention output (1 = on, 0 = off); Michel et al.'s head mask.
    public var headMask: [Float]

    init(query: Linear, key: Linear, value: Linear, attentionOutput: Linear, attentionNorm: (Tensor, Tensor),
         intermediate: Linear, output: Linear, outputNorm: (Tensor, Tensor), heads: Int) {
        (self.query, self.key, self.value, self.attentionOutput) = (query, key, value, attentionOutput)
        (self.attentionNorm, self.intermediate, self.output, self.outputNorm) = (attentionNorm, intermediate, output, outputNorm)
        self.heads = heads
        headMask = [Float](repeating: 1, count: heads)
    }

    /// x: B·T × hidden token rows → the block's output rows.
    func forward(_ x: Tensor, b: Int, t: Int, mask: FloatStorage?, eps: Float) throws -> Tensor {
        let rows = b * t, hidden = x.shape[1], d = query.outFeatures / heads
        let q = try query(x), k = try key(x), v = try value(x)
        let ctx = Tensor(uninitialized: [rows, heads * d])
        try Kernels.attention(b: b, t: t, heads: heads, headDim: d, q: q.storage, k: k.storage, v: v.storage, mask: mask,
                              headMask: headMask, out: ctx.storage)
        let a = try attentionOutput(ctx)
        try Kernels.axpby(alpha: 1, x: a.storage, beta: 1, y: x.storage, out: a.storage)
        try Kernels.layerNorm(rows: rows, n: hidden, x: a.storage, gamma: attentionNorm.gamma.storage,
                              beta: attentionNorm.beta.storage, eps: eps, y: a.storage)
        let h = try intermediate(a)
        try Kernels.gelu(h.storage, into: h.storage)
        let o = try output(h)
        try Kernels.axpby(alpha: 1, x: o.storage, beta: 1, y: a.storage, out: o.storage)
        try Kernels.layerNorm(rows: rows, n: hidden, x: o.storage, gamma: outputNorm.gamma.storage, beta: outputNorm.beta.storage,
                              eps: eps, y: o.storage)
        return o
    }
}

/// A BERT encoder with sentence-transformers' mean pooling and L2 normalisation (all-MiniLM-L6-v2).
public final class BertEncoder {
    public let config: BertConfig
    let wordEmbeddings: Tensor, positionEmbeddings: Tensor, tokenType0: Tensor
    let embeddingNorm: (gamma: Tensor, beta: Tensor)
    public let layers: [BertLayer]

    init(config: BertConfig, word: Tensor, position: Tensor, tokenType0: Tensor, embeddingNorm: (Tensor, Tensor), layers: [BertLayer]) {
        self.config = config
        (wordEmbeddings, positionEmbeddings, self.tokenType0, self.embeddingNorm, self.layers) =
            (word, position, tokenType0, embeddingNorm, layers)
    }

    /// The same embeddings with other blocks (after structural pruning).
    public func replacingLayers(_ layers: [BertLayer]) -> BertEncoder {
        BertEncoder(config: config, word: wordEmbeddings, position: positionEmbeddings, tokenType0: tokenType0,
                    embeddingNorm: embeddingNorm, layers: layers)
    }

    /// The state_dict of the encoder under HuggingFace BertModel names (weights dense, zeros where pruned).
    public var stateDict: [String: Tensor] {
        var t: [String: Tensor] = ["embeddings.word_embeddings.weight": wordEmbeddings,
                                   "embeddings.position_embeddings.weight": positionEmbeddings,
                                   "embeddings.token_type_embeddings.weight": try! Tensor(shape: [1, config.hidden], scalars: tokenType0.scalars),
                                   "embeddings.LayerNorm.weight": embeddingNorm.gamma, "embeddings.LayerNorm.bias": embeddingNorm.beta]
        for (i, l) in layers.enumerated() {
            let p = "encoder.layer.\(i)."
            for (name, lin) in [("attention.self.query", l.query), ("attention.self.key", l.key), ("attention.self.value", l.value),
                                ("attention.output.dense", l.attentionOutput), ("intermediate.dense", l.intermediate),
                                ("output.dense", l.output)] {
                t[p + name + ".weight"] = lin.weight.value
                t[p + name + ".bias"] = lin.bias?.value
            }
            t[p + "attention.output.LayerNorm.weight"] = l.attentionNorm.gamma
            t[p + "attention.output.LayerNorm.bias"] = l.attentionNorm.beta
            t[p + "output.LayerNorm.weight"] = l.outputNorm.gamma
            t[p + "output.LayerNorm.bias"] = l.outputNorm.beta
        }
        return t
    }

    /// Number of scalar parameters (embeddings, layers; not the unused pooler).
    public var parameterCount: Int {
        let emb = wordEmbeddings.count + positionEmbeddings.count + tokenType0.count + 2 * config.hidden
        return emb + layers.reduce(0) { acc, l in
            acc + [l.query, l.key, l.value, l.attentionOutput, l.intermediate, l.output].reduce(0) { $0 + $1.parameters.reduce(0) { $0 + $1.count } }
                + 4 * config.hidden
        }
    }

    /// Token rows (B·T × hidden) of the last layer for padded ids (B × T) and their attention mask.
    public func encode(ids: [[Int32]], mask: [[Float]]) throws -> Tensor {
        let b = ids.count, t = ids.first?.count ?? 0
        guard ids.allSatisfy({ $0.count == t }), mask.count == b, mask.allSatisfy({ $0.count == t }) else {
            throw TensorError.invalidShape([b, t])
        }
        guard t <= config.maxPositions else { throw TensorError.invalidShape([b, t]) }
        let x = Tensor(uninitialized: [b * t, config.hidden])
        do {
            try Kernels.bertEmbeddings(b: b, t: t, n: config.hidden, ids: ids.flatMap { $0 }, word: wordEmbeddings.storage,
                                       vocab: config.vocab, pos: positionEmbeddings.storage, positions: config.maxPositions,
                                       type0: tokenType0.storage, out: x.storage)
        } catch { throw TensorError.invalidShape([b, t]) } // an id outside the vocabulary
        try Kernels.layerNorm(rows: b * t, n: config.hidden, x: x.storage, gamma: embeddingNorm.gamma.storage,
                              beta: embeddingNorm.beta.storage, eps: config.layerNormEps, y: x.storage)
        let m = FloatStorage(mask.flatMap { $0 })
        var h = x
        for layer in layers { h = try layer.forward(h, b: b, t: t, mask: m, eps: config.layerNormEps) }
        return h
    }

    /// Sentence embeddings (B × hidden): mean of the real tokens' rows, L2-normalised.
    public func embed(ids: [[Int32]], mask: [[Float]]) throws -> Tensor {
        let h = try encode(ids: ids, mask: mask)
        let b = ids.count, t = ids.first?.count ?? 0
        let out = Tensor(uninitialized: [b, config.hidden])
        try Kernels.meanPool(b: b, t: t, n: config.hidden, x: h.storage, mask: FloatStorage(mask.flatMap { $0 }), normalize: true,
                             out: out.storage)
        return out
    }
}
