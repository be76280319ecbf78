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

    /// When set, each training `backward` leaves ∂L/∂(head mask) and ∂L/∂(FFN neuron mask) of its
    /// batch in `maskGradients` (a neuron's mask multiplies its GELU output): Taylor importance.
    public var recordMaskGradients = false
    public internal(set) var maskGradients: (heads: [Double], neurons: [Double])?

    /// What backward needs from the last training forward pass (ctx0: the heads' outputs before the
    /// head mask, h: the GELU outputs; both only while mask gradients are recorded).
    struct Cache { let x, q, k, v, aPre, hPre, oPre: Tensor; let ctx0, h: Tensor?; let b, t: Int; let mask: FloatStorage? }
    var cache: Cache?

    /// x: B·T × hidden token rows → the block's output rows.
    func forward(_ x: Tensor, b: Int, t: Int, mask: FloatStorage?, eps: Float, training: Bool = false) throws -> Tensor {
        let rows = b * t, hidden = x.shape[1], d = query.outFeatures / heads
        let q = try query.forward(x, training: training), k = try key.forward(x, training: training)
        let v = try value.forward(x, training: training)
        let ctx = Tensor(uninitialized: [rows, heads * d])
        let record = training && recordMaskGradients
        try Kernels.attention(b: b, t: t, heads: heads, headDim: d, q: q.storage, k: k.storage, v: v.storage, mask: mask,
                              headMask: record ? nil : headMask, out: ctx.storage)
        var ctx0: Tensor?
        if record { // the unmasked head outputs are kept; the masked ones come from the kernel again
            ctx0 = try Tensor(shape: ctx.shape, storage: ctx.storage.copy())
            if headMask.contains(where: { $0 != 1 }) {
                try Kernels.attention(b: b, t: t, heads: heads, headDim: d, q: q.storage, k: k.storage, v: v.storage, mask: mask,
                                      headMask: headMask, out: ctx.storage)
            }
        }
        let aPre = try attentionOutput.forward(ctx, training: training)
        try Kernels.axpby(alpha: 1, x: aPre.storage, beta: 1, y: x.storage, out: aPre.storage)
        let a = Tensor(uninitialized: [rows, hidden])
        try Kernels.layerNorm(rows: rows, n: hidden, x: aPre.storage, gamma: attentionNorm.gamma.storage,
                              beta: attentionNorm.beta.storage, eps: eps, y: a.storage)
        let hPre = try intermediate.forward(a, training: training)
        let h = Tensor(uninitialized: hPre.shape)
        try Kernels.gelu(hPre.storage, into: h.storage)
        let oPre = try output.forward(h, training: training)
        try Kernels.axpby(alpha: 1, x: oPre.storage, beta: 1, y: a.storage, out: oPre.storage)
        let o = Tensor(uninitialized: [rows, hidden])
        try Kernels.layerNorm(rows: rows, n: hidden, x: oPre.storage, gamma: outputNorm.gamma.storage, beta: outputNorm.beta.storage,
                              eps: eps, y: o.storage)
        cache = training ? Cache(x: x, q: q, k: k, v: v, aPre: aPre, hPre: hPre, oPre: oPre, ctx0: ctx0, h: record ? h : nil,
                                 b: b, t: t, mask: mask) : nil
        return o
    }

    /// Gradients of the block's Linear layers (their optimizer steps fused when armed) from ∂L/∂output;
    /// returns ∂L/∂input when asked. LayerNorm parameters stay fixed.
    func backward(_ dy: Tensor, eps: Float, needInputGradient: Bool) throws -> Tensor? {
        guard let c = cache else { throw LayerError.backwardBeforeForward("BertLayer") }
        let rows = c.b * c.t, hidden = dy.shape[1], d = query.outFeatures / heads
        let dOPre = Tensor(uninitialized: [rows, hidden])
        try Kernels.layerNormBackward(rows: rows, n: hidden, x: c.oPre.storage, gamma: outputNorm.gamma.storage, eps: eps,
                                      dy: dy.storage, dx: dOPre.storage)
        let dh = try output.backward(dOPre, needInputGradient: true)!
        var neuronGradient: [Double] = []
        if let h = c.h { neuronGradient = try Kernels.columnDots(rows: rows, cols: h.shape[1], a: h.storage, b: dh.storage).map(Double.init) }
        try Kernels.geluBackward(x: c.hPre.storage, dy: dh.storage, dx: dh.storage)
        let da = try intermediate.backward(dh, needInputGradient: true)!
        try Kernels.axpby(alpha: 1, x: da.storage, beta: 1, y: dOPre.storage, out: da.storage)
        let dAPre = Tensor(uninitialized: [rows, hidden])
        try Kernels.layerNormBackward(rows: rows, n: hidden, x: c.aPre.storage, gamma: attentionNorm.gamma.storage, eps: eps,
                                      dy: da.storage, dx: dAPre.storage)
        let dctx = try attentionOutput.backward(dAPre, needInputGradient: true)!
        maskGradients = nil
        if let ctx0 = c.ctx0 {
            let perColumn = try Kernels.columnDots(rows: rows, cols: heads * d, a: ctx0.storage, b: dctx.storage)
            let perHead = (0..<heads).map { h in perColumn[(h * d)..<((h + 1) * d)].reduce(0.0) { $0 + Double($1) } }
            maskGradients = (perHead, neuronGradient)
        }
        let dq = Tensor(uninitialized: c.q.shape), dk = Tensor(uninitialized: c.k.shape), dv = Tensor(uninitialized: c.v.shape)
        try Kernels.attentionBackward(b: c.b, t: c.t, heads: heads, headDim: d, q: c.q.storage, k: c.k.storage, v: c.v.storage,
                                      mask: c.mask, headMask: headMask, dout: dctx.storage, dq: dq.storage, dk: dk.storage,
                                      dv: dv.storage)
        cache = nil
        let gq = try query.backward(dq, needInputGradient: needInputGradient)
        let gk = try key.backward(dk, needInputGradient: needInputGradient)
        let gv = try value.backward(dv, needInputGradient: needInputGradient)
        guard needInputGradient, let gq, let gk, let gv else { return nil }
        for g in [gk, gv, dAPre] { try Kernels.axpby(alpha: 1, x: gq.storage, beta: 1, y: g.storage, out: gq.storage) }
        return gq
    }

    /// The Linear layers of the block.
    public var linears: [Linear] { [query, key, value, attentionOutput, intermediate, output] }
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
    public func encode(ids: [[Int32]], mask: [[Float]], training: Bool = false) throws -> Tensor {
        let b = ids.count, t = ids.first?.count ?? 0
        guard ids.allSatisfy({ $0.count == t }), mask.count == b, mask.allSatisfy({ $0.count == t }) else {
            throw TensorError.invalidShape([b, t])
        }
        let m = FloatStorage(mask.flatMap { $0 })
        var h = try tokenEmbeddings(ids: ids)
        for layer in layers { h = try layer.forward(h, b: b, t: t, mask: m, eps: config.layerNormEps, training: training) }
        return h
    }

    /// The rows entering the first block (word + position + type embeddings, LayerNorm) for
    /// equally long id sequences.
    func tokenEmbeddings(ids: [[Int32]]) throws -> Tensor {
        let b = ids.count, t = ids.first?.count ?? 0
        guard t <= config.maxPositions, ids.allSatisfy({ $0.count == t }) else { throw TensorError.invalidShape([b, t]) }
        let x = Tensor(uninitialized: [b * t, config.hidden])
        do {
            try Kernels.bertEmbeddings(b: b, t: t, n: config.hidden, ids: ids.flatMap { $0 }, word: wordEmbeddings.storage,
                                       vocab: config.vocab, pos: positionEmbeddings.storage, positions: config.maxPositions,
                                       type0: tokenType0.storage, out: x.storage)
        } catch { throw TensorError.invalidShape([b, t]) } // an id outside the vocabulary
        try Kernels.layerNorm(rows: b * t, n: config.hidden, x: x.storage, gamma: embeddingNorm.gamma.storage,
                              beta: embeddingNorm.beta.storage, eps: config.layerNormEps, y: x.storage)
        return x
    }

    /// Sentence embeddings (B × hidden): mean of the real tokens' rows, L2-normalised.
    public func embed(ids: [[Int32]], mask: [[Float]]) throws -> Tensor {
        try embed(ids: ids, mask: mask, training: false)
    }

    private var poolCache: (h: Tensor, mask: FloatStorage, b: Int, t: Int)?

    /// As `embed`; with `training`, every block keeps what `backward` needs.
    public func embed(ids: [[Int32]], mask: [[Float]], training: Bool) throws -> Tensor {
        try embedWithTokens(ids: ids, mask: mask, training: training).embedding
    }

    /// Sentence embeddings and the last layer's token rows (B·T × hidden) they were pooled from.
    public func embedWithTokens(ids: [[Int32]], mask: [[Float]], training: Bool) throws -> (embedding: Tensor, tokens: Tensor) {
        let h = try encode(ids: ids, mask: mask, training: training)
        let b = ids.count, t = ids.first?.count ?? 0
        let out = Tensor(uninitialized: [b, config.hidden])
        let m = FloatStorage(mask.flatMap { $0 })
        try Kernels.meanPool(b: b, t: t, n: config.hidden, x: h.storage, mask: m, normalize: true, out: out.storage)
        poolCache = training ? (h, m, b, t) : nil
        return (out, h)
    }

    /// Gradients of every block's Linear layers from ∂L/∂embeddings (B × hidden) of the last training
    /// `embed`, plus ∂L/∂(token rows) (B·T × hidden) when the loss also reads those; embeddings and
    /// LayerNorm parameters stay fixed.
    public func backward(_ dEmbedding: Tensor, tokenGradient: Tensor? = nil) throws {
        guard let p = poolCache else { throw LayerError.backwardBeforeForward("BertEncoder") }
        try dEmbedding.expectShape([p.b, config.hidden])
        var g = Tensor(uninitialized: [p.b * p.t, config.hidden])
        try Kernels.meanPoolBackward(b: p.b, t: p.t, n: config.hidden, x: p.h.storage, mask: p.mask, dout: dEmbedding.storage,
                                     dx: g.storage)
        if let tokenGradient {
            try tokenGradient.expectShape([p.b * p.t, config.hidden])
            try Kernels.axpby(alpha: 1, x: tokenGradient.storage, beta: 1, y: g.storage, out: g.storage)
        }
        for (i, layer) in layers.enumerated().reversed() {
            guard let next = try layer.backward(g, eps: config.layerNormEps, needInputGradient: i > 0) else { break }
            g = next
        }
        poolCache = nil
    }

    /// Forgets what the last training pass kept for backward (activations of every block and
    /// Linear, the pooling input).
    func dropTrainingCaches() {
        poolCache = nil
        for l in layers {
            l.cache = nil
            for lin in l.linears { lin.dropInput() }
        }
    }

    /// Every Linear of every block (the trainable and prunable part).
    public var parameters: [Parameter] { layers.flatMap { $0.linears.flatMap(\.parameters) } }
}
