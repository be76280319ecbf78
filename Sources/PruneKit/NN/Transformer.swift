/// The layers of a transformer encoder: token embeddings, layer normalisation, multi-head
/// self-attention with a head mask, and token pooling (mean, [CLS] or max). Activations between them are token
/// rows (B·T × features: sequence b's token t is row b·T + t), so Linear, GELU, Add and Dropout
/// work on them unchanged; the layers that need to know where sequences start and which tokens are
/// padding read one shared `SequenceContext`, which the embedding layer fills from its ids.

/// The batch shape and padding mask of the sequences now running through an encoder: written by
/// `BertEmbeddings.forward`, read by `MultiHeadAttention` and `TokenPooling` built with the same
/// context. A context belongs to one model: two encoders never share one.
public final class SequenceContext {
    /// Sequences in the current batch (B) and tokens per sequence (T); 0 until the first forward or `set`.
    public private(set) var batch = 0, length = 0
    /// 1 for a real token, 0 for padding (B·T); nil when every token is real.
    public private(set) var mask: FloatStorage?
    /// A mask for the next `BertEmbeddings.forward` to use instead of deriving it from the padding
    /// id (sentence-transformers passes the tokenizer's attention mask).
    public var pendingMask: [Float]?

    /// An empty context (batch and length 0, no mask), filled by the first `BertEmbeddings.forward`.
    public init() {}

    /// Sets the shape and mask directly (running blocks on rows captured earlier).
    public func set(batch: Int, length: Int, mask: [Float]?) throws {
        guard batch >= 0, length >= 0, mask.map({ $0.count == batch * length }) ?? true else {
            throw TensorError.invalidShape([batch, length])
        }
        (self.batch, self.length) = (batch, length)
        self.mask = mask.flatMap { m in m.allSatisfy { $0 == 1 } ? nil : FloatStorage(m) }
    }

    /// Throws unless `rows` token rows are the current batch.
    func expect(rows: Int, in layer: String) throws {
        guard rows == batch * length else {
            throw LayerError.badInput(layer: layer, expected: "\(batch * length) token rows (\(batch) sequences of \(length), as the "
                                      + "sequence context says)", got: [rows])
        }
    }
}

/// Layer normalisation over the last dimension of rows × n: (x − mean)/√(var + ε)·γ + β, γ and β
/// trained (statistics in double, biased variance, as PyTorch).
public final class LayerNorm: Layer {
    /// Size n of the normalised last dimension.
    public let features: Int
    /// ε added to the variance before the square root.
    public let eps: Float
    /// γ (initially ones) and β (initially zeros), n each; trained, never pruned.
    public let weight: Parameter, bias: Parameter
    private var input: Tensor?
    public let forwardHooks: ForwardHooks? = ForwardHooks()

    /// γ = 1, β = 0 over `features` values. Throws `LayerError.badInput` unless features ≥ 1 and eps is
    /// finite and ≥ 0.
    public init(_ features: Int, eps: Float = 1e-5) throws {
        guard features > 0, eps >= 0, eps.isFinite else {
            throw LayerError.badInput(layer: "LayerNorm", expected: "features ≥ 1 and a finite eps ≥ 0", got: [features])
        }
        self.features = features
        self.eps = eps
        weight = Parameter(try Tensor(shape: [features], scalars: [Float](repeating: 1, count: features)), prunable: false)
        bias = Parameter(Tensor(zeroed: [features]), prunable: false)
    }

    /// A layer with the given γ and β (n each).
    public convenience init(weight w: Tensor, bias b: Tensor, eps: Float) throws {
        guard w.rank == 1 else { throw LayerError.badInput(layer: "LayerNorm", expected: "a weight of shape [n]", got: w.shape) }
        try b.expectShape(w.shape)
        try self.init(w.shape[0], eps: eps)
        try weight.assign(w)
        try bias.assign(b)
    }

    public var summary: String { "LayerNorm(\(features))" }
    public var namedParameters: [(name: String, parameter: Parameter)] { [("weight", weight), ("bias", bias)] }

    public func forward(_ x: Tensor, training: Bool) throws -> Tensor {
        guard x.rank >= 1, x.shape.last == features else {
            throw LayerError.badInput(layer: summary, expected: "[..., \(features)]", got: x.shape)
        }
        let y = Tensor(uninitialized: x.shape)
        try Kernels.layerNorm(rows: x.count / features, n: features, x: x.storage, gamma: weight.value.storage,
                              beta: bias.value.storage, eps: eps, y: y.storage)
        input = training ? x : nil
        if let h = forwardHooks, !h.isEmpty { try h.run(input: x, output: y) }
        return y
    }

    public func backward(_ dy: Tensor, needInputGradient: Bool) throws -> Tensor? {
        guard let x = input else { throw LayerError.backwardBeforeForward(summary) }
        try dy.expectShape(x.shape)
        let rows = x.count / features
        let dg = Tensor(uninitialized: [features]), db = Tensor(uninitialized: [features])
        try Kernels.layerNormParamGrad(rows: rows, n: features, x: x.storage, eps: eps, dy: dy.storage, dgamma: dg.storage,
                                       dbeta: db.storage)
        weight.grad = dg
        bias.grad = db
        guard needInputGradient else { return nil }
        let dx = Tensor(uninitialized: x.shape)
        try Kernels.layerNormBackward(rows: rows, n: features, x: x.storage, gamma: weight.value.storage, eps: eps, dy: dy.storage,
                                      dx: dx.storage)
        return dx
    }
}

/// BERT's embeddings: word + position + token type 0 for each id, then LayerNorm. Input: ids as
/// a B × T tensor of whole numbers (padding id `padID`); output B·T token rows. It fills its
/// `SequenceContext`: the shape, and the mask (the context's pending mask when set, else 0 where
/// the id is `padID`). The three tables are fixed (`isTrainable` false, no gradient); the
/// LayerNorm's γ and β train. Parameter names are HuggingFace's (word_embeddings.weight, ...).
public final class BertEmbeddings: Layer {
    /// Rows of the word table (vocab), rows of the position table (the longest sequence T) and the
    /// hidden size n.
    public let vocabulary: Int, positions: Int, hidden: Int
    /// The id whose tokens are masked as padding when the context has no pending mask.
    public let padID: Int
    /// The word (vocab × n), position (positions × n) and token-type (types × n) tables; fixed, never pruned.
    public let word: Parameter, position: Parameter, tokenType: Parameter
    /// The LayerNorm applied to the summed embeddings.
    public let norm: LayerNorm
    /// The context each forward pass fills with the batch shape and padding mask.
    public let context: SequenceContext

    /// Tables vocab × n, positions × n, types × n (row 0 is used), LayerNorm γ, β (n), ε.
    public init(word w: Tensor, position p: Tensor, tokenType t: Tensor, normWeight: Tensor, normBias: Tensor, eps: Float,
                padID: Int = 0, context: SequenceContext) throws {
        guard w.rank == 2, w.shape[0] > 0, w.shape[1] > 0 else {
            throw LayerError.badInput(layer: "BertEmbeddings", expected: "a word table [vocab ≥ 1, n ≥ 1]", got: w.shape)
        }
        let n = w.shape[1]
        guard p.rank == 2, p.shape[1] == n, p.shape[0] > 0 else {
            throw LayerError.badInput(layer: "BertEmbeddings", expected: "a position table [positions, \(n)]", got: p.shape)
        }
        guard t.rank == 2, t.shape[1] == n, t.shape[0] > 0 else {
            throw LayerError.badInput(layer: "BertEmbeddings", expected: "a token type table [types, \(n)]", got: t.shape)
        }
        (vocabulary, positions, hidden, self.padID, self.context) = (w.shape[0], p.shape[0], n, padID, context)
        word = Parameter(w, prunable: false, trainable: false)
        position = Parameter(p, prunable: false, trainable: false)
        tokenType = Parameter(t, prunable: false, trainable: false)
        norm = try LayerNorm(weight: normWeight, bias: normBias, eps: eps)
    }

    public var summary: String { "BertEmbeddings(\(vocabulary) ids, \(positions) positions → \(hidden))" }
    public var namedParameters: [(name: String, parameter: Parameter)] {
        [("word_embeddings.weight", word), ("position_embeddings.weight", position), ("token_type_embeddings.weight", tokenType),
         ("LayerNorm.weight", norm.weight), ("LayerNorm.bias", norm.bias)]
    }

    public func forward(_ x: Tensor, training: Bool) throws -> Tensor {
        guard x.rank == 2, x.shape[1] <= positions else {
            throw LayerError.badInput(layer: summary, expected: "ids [batch, length ≤ \(positions)]", got: x.shape)
        }
        let b = x.shape[0], t = x.shape[1]
        var ids = [Int32](repeating: 0, count: b * t)
        let v = x.scalars
        for i in ids.indices {
            guard v[i] >= 0, v[i] < Float(vocabulary), v[i] == v[i].rounded() else {
                throw LayerError.badInput(layer: summary, expected: "whole ids in 0..<\(vocabulary) (id \(v[i]) at row \(i / max(t, 1)))",
                                          got: x.shape)
            }
            ids[i] = Int32(v[i])
        }
        let mask = context.pendingMask ?? ids.map { Int($0) == padID ? 0 : 1 }
        context.pendingMask = nil
        try context.set(batch: b, length: t, mask: mask)
        let e = Tensor(uninitialized: [b * t, hidden])
        try Kernels.bertEmbeddings(b: b, t: t, n: hidden, ids: ids, word: word.value.storage, vocab: vocabulary,
                                   pos: position.value.storage, positions: positions, type0: tokenType.value.storage, out: e.storage)
        return try norm.forward(e, training: training)
    }

    public func backward(_ dy: Tensor, needInputGradient: Bool) throws -> Tensor? {
        _ = try norm.backward(dy, needInputGradient: false) // γ, β; the tables are fixed and ids have no gradient
        return nil
    }
}

/// Multi-head self-attention over token rows: query, key, value (hidden → heads·d), scaled
/// dot-product attention within each sequence (padding keys excluded), each head's output times its
/// `headMask` entry (Michel et al.), then the output projection (heads·d → hidden). Children are
/// the four Linear layers ("query", "key", "value", "output"); dependency-aware pruning removes
/// heads as units (their d query, key and value rows and d output columns).
public final class MultiHeadAttention: Layer {
    /// The projections: query, key and value hidden → heads·d, output heads·d → hidden.
    public let query: Linear, key: Linear, value: Linear, output: Linear
    /// Number of heads (after head pruning, the heads kept).
    public let heads: Int
    /// Features per head, d = query.outFeatures / heads.
    public var headDim: Int { query.outFeatures / heads }
    /// Multiplies each head's output (1 on, 0 off).
    public var headMask: [Float]
    /// The batch shape and padding mask of the token rows, written by the model's `BertEmbeddings`.
    public let context: SequenceContext
    public let forwardHooks: ForwardHooks? = ForwardHooks()
    private struct Cache { let q, k, v: Tensor; let b, t: Int; let mask: FloatStorage? }
    private var cache: Cache?

    /// Attention over the given projections, every head on. Throws `LayerError.badInput` unless query,
    /// key and value are each heads·d × hidden (heads ≥ 1 dividing their width) and `output` reads heads·d features.
    public init(query: Linear, key: Linear, value: Linear, output: Linear, heads: Int, context: SequenceContext) throws {
        let width = query.outFeatures, hidden = query.inFeatures
        guard heads > 0, width % heads == 0, key.outFeatures == width, value.outFeatures == width, key.inFeatures == hidden,
              value.inFeatures == hidden, output.inFeatures == width else {
            throw LayerError.badInput(layer: "MultiHeadAttention", expected: "query, key and value of one shape [heads·d, hidden] and an "
                                      + "output projection reading heads·d (\(heads) heads)", got: [width, hidden, output.inFeatures])
        }
        (self.query, self.key, self.value, self.output, self.heads, self.context) = (query, key, value, output, heads, context)
        headMask = [Float](repeating: 1, count: heads)
    }

    /// Fresh layers (PyTorch's Linear init) for `hidden` features and `heads` heads.
    public convenience init(hidden: Int, heads: Int, context: SequenceContext, rng: inout SeededGenerator) throws {
        guard hidden > 0, heads > 0, hidden % heads == 0 else {
            throw LayerError.badInput(layer: "MultiHeadAttention", expected: "hidden a positive multiple of heads", got: [hidden, heads])
        }
        try self.init(query: Linear(hidden, hidden, rng: &rng), key: Linear(hidden, hidden, rng: &rng),
                      value: Linear(hidden, hidden, rng: &rng), output: Linear(hidden, hidden, rng: &rng), heads: heads, context: context)
    }

    public var summary: String { "MultiHeadAttention(\(query.inFeatures), \(heads) heads of \(headDim))" }
    public var children: [(name: String, layer: any Layer)] { [("query", query), ("key", key), ("value", value), ("output", output)] }
    public var namedParameters: [(name: String, parameter: Parameter)] {
        children.flatMap { c in c.layer.namedParameters.map { (name: c.name + "." + $0.name, parameter: $0.parameter) } }
    }

    public func forward(_ x: Tensor, training: Bool) throws -> Tensor {
        guard x.rank == 2, x.shape[1] == query.inFeatures else {
            throw LayerError.badInput(layer: summary, expected: "token rows [B·T, \(query.inFeatures)]", got: x.shape)
        }
        try context.expect(rows: x.shape[0], in: summary)
        guard headMask.count == heads else {
            throw LayerError.badInput(layer: summary, expected: "a head mask of \(heads) entries", got: [headMask.count])
        }
        let (b, t) = (context.batch, context.length)
        let q = try query.forward(x, training: training), k = try key.forward(x, training: training)
        let v = try value.forward(x, training: training)
        let ctx = Tensor(uninitialized: [x.shape[0], query.outFeatures])
        let hm: [Float]? = headMask.allSatisfy { $0 == 1 } ? nil : headMask
        try Kernels.attention(b: b, t: t, heads: heads, headDim: headDim, q: q.storage, k: k.storage, v: v.storage, mask: context.mask,
                              headMask: hm, out: ctx.storage)
        let y = try output.forward(ctx, training: training)
        cache = training ? Cache(q: q, k: k, v: v, b: b, t: t, mask: context.mask) : nil
        if let h = forwardHooks, !h.isEmpty { try h.run(input: x, output: y) }
        return y
    }

    public func backward(_ dy: Tensor, needInputGradient: Bool) throws -> Tensor? {
        guard let c = cache else { throw LayerError.backwardBeforeForward(summary) }
        cache = nil
        let dctx = try output.backward(dy, needInputGradient: true)!
        let dq = Tensor(uninitialized: c.q.shape), dk = Tensor(uninitialized: c.k.shape), dv = Tensor(uninitialized: c.v.shape)
        let hm: [Float]? = headMask.allSatisfy { $0 == 1 } ? nil : headMask
        try Kernels.attentionBackward(b: c.b, t: c.t, heads: heads, headDim: headDim, q: c.q.storage, k: c.k.storage, v: c.v.storage,
                                      mask: c.mask, headMask: hm, dout: dctx.storage, dq: dq.storage, dk: dk.storage, dv: dv.storage)
        let gq = try query.backward(dq, needInputGradient: needInputGradient)
        let gk = try key.backward(dk, needInputGradient: needInputGradient)
        let gv = try value.backward(dv, needInputGradient: needInputGradient)
        guard needInputGradient, let gq, let gk, let gv else { return nil }
        let dx = Tensor(uninitialized: gq.shape)
        try Kernels.axpby(alpha: 1, x: gq.storage, beta: 1, y: gk.storage, out: dx.storage)
        try Kernels.axpby(alpha: 1, x: gv.storage, beta: 1, y: dx.storage, out: dx.storage)
        return dx
    }

    /// The same attention with only the heads `keep` (in that order): their query, key and value
    /// rows and output columns (masks and execution too).
    func keepingHeads(_ keep: [Int]) throws -> MultiHeadAttention {
        let d = headDim
        let rows = keep.flatMap { h in (h * d)..<((h + 1) * d) }
        let out = try MultiHeadAttention(query: query.keepingOutputs(rows), key: key.keepingOutputs(rows), value: value.keepingOutputs(rows),
                                         output: output.keepingInputs(rows), heads: keep.count, context: context)
        out.headMask = keep.map { headMask[$0] }
        return out
    }
}

/// How a sentence encoder turns its token rows into one vector per sentence: sentence-transformers'
/// Pooling module (mean of the real tokens, the [CLS] token, or the feature-wise maximum over the
/// real tokens) and whether a Normalize module divides the result by its L2 norm.
public struct SentencePooling: Sendable, Equatable, CustomStringConvertible {
    /// Which rows make the sentence vector: the mean of the real tokens, the first ([CLS]) token, or the
    /// feature-wise maximum over the real tokens. The raw value is the case name (`--pooling`'s spelling).
    public enum Mode: String, Sendable, CaseIterable {
        /// Mean of the real tokens; the first ([CLS]) token; feature-wise maximum over the real tokens.
        case mean, cls, max
    }
    /// How the token rows are reduced to one vector per sentence.
    public var mode: Mode
    /// Whether the pooled vector is divided by its L2 norm.
    public var normalize: Bool

    /// Pooling by `mode`, L2-normalised when `normalize`.
    public init(_ mode: Mode, normalize: Bool) { (self.mode, self.normalize) = (mode, normalize) }

    /// all-MiniLM-L6-v2's: mean pooling, L2-normalised.
    public static let meanNormalized = SentencePooling(.mean, normalize: true)

    /// "mean", "cls" or "max", optionally followed by "+normalize" (the CLI's `--pooling`).
    public init(parsing text: String) throws {
        var parts = text.split(separator: "+").map(String.init)
        let normalize = parts.count == 2 && parts[1] == "normalize"
        if normalize { parts.removeLast() }
        guard parts.count == 1, let mode = Mode(rawValue: parts[0]) else {
            throw IOError(file: "--pooling", reason: "'\(text)' is not mean, cls or max (optionally followed by +normalize)")
        }
        self.init(mode, normalize: normalize)
    }

    public var description: String { mode.rawValue + (normalize ? "+normalize" : "") }
}

/// One vector per sequence from its token rows (B·T × n → B × n), as `pooling` says: the mean of
/// the real tokens (padding excluded, as sentence-transformers divides by the clamped token count),
/// the first ([CLS]) token, or the feature-wise maximum over the real tokens (padding counts as
/// −10⁹, as sentence-transformers fills it); then, when `pooling.normalize`, divided by the L2 norm
/// (at least 10⁻¹², as torch's `F.normalize`). Reads the `SequenceContext`.
public final class TokenPooling: Layer {
    /// The pooling mode and whether the result is L2-normalised.
    public let pooling: SentencePooling
    /// The batch shape and padding mask of the token rows this layer reads.
    public let context: SequenceContext
    private var cache: (x: Tensor, mask: FloatStorage?, b: Int, t: Int, pooled: [Float], argmax: [Int32])?

    /// Pooling as `pooling` says (default: mean, L2-normalised) over token rows described by `context`.
    public init(_ pooling: SentencePooling = .meanNormalized, context: SequenceContext) {
        (self.pooling, self.context) = (pooling, context)
    }

    public var summary: String {
        let name = ["mean": "MeanPooling", "cls": "CLSPooling", "max": "MaxPooling"][pooling.mode.rawValue]!
        return pooling.normalize ? name + "(L2-normalised)" : name
    }

    public func forward(_ x: Tensor, training: Bool) throws -> Tensor {
        guard x.rank == 2 else { throw LayerError.badInput(layer: summary, expected: "token rows [B·T, n]", got: x.shape) }
        try context.expect(rows: x.shape[0], in: summary)
        let (b, t, n) = (context.batch, context.length, x.shape[1])
        if pooling.mode == .mean {
            // the C kernel, normalising or not
            let y = Tensor(uninitialized: [b, n])
            try Kernels.meanPool(b: b, t: t, n: n, x: x.storage, mask: context.mask, normalize: pooling.normalize, out: y.storage)
            cache = training ? (x, context.mask, b, t, [], []) : nil
            return y
        }
        let v = x.scalars, mask = context.mask?.toArray()
        var p = [Float](repeating: 0, count: b * n), arg = [Int32](repeating: 0, count: pooling.mode == .max ? b * n : 0)
        for s in 0..<b {
            switch pooling.mode {
            case .cls:
                for j in 0..<n { p[s * n + j] = v[s * t * n + j] }
            case .max:
                for j in 0..<n { p[s * n + j] = -.infinity }
                for k in 0..<t {
                    let real = mask.map { $0[s * t + k] != 0 } ?? true
                    for j in 0..<n {
                        let e = real ? v[(s * t + k) * n + j] : -1e9
                        if e > p[s * n + j] || k == 0 { p[s * n + j] = e; arg[s * n + j] = Int32(k) }
                    }
                }
            case .mean: break
            }
        }
        let y = try Tensor(shape: [b, n], scalars: pooling.normalize ? Self.normalized(p, rows: b, n: n) : p)
        cache = training ? (x, context.mask, b, t, p, arg) : nil
        return y
    }

    /// Each row of `p` (rows × n) divided by max(‖row‖₂, 10⁻¹²).
    static func normalized(_ p: [Float], rows: Int, n: Int) -> [Float] {
        var out = p
        for r in 0..<rows {
            var ss: Double = 0
            for j in 0..<n { ss += Double(p[r * n + j]) * Double(p[r * n + j]) }
            let inv = Float(1 / max(ss.squareRoot(), 1e-12))
            for j in 0..<n { out[r * n + j] = p[r * n + j] * inv }
        }
        return out
    }

    public func backward(_ dy: Tensor, needInputGradient: Bool) throws -> Tensor? {
        guard let c = cache else { throw LayerError.backwardBeforeForward(summary) }
        let n = c.x.shape[1]
        try dy.expectShape([c.b, n])
        guard needInputGradient else { return nil }
        if pooling.mode == .mean && pooling.normalize {
            let dx = Tensor(uninitialized: c.x.shape)
            try Kernels.meanPoolBackward(b: c.b, t: c.t, n: n, x: c.x.storage, mask: c.mask, dout: dy.storage, dx: dx.storage)
            return dx
        }
        let pooled = c.pooled, mask = c.mask?.toArray() // pooled: cls and max only (the mean here is unnormalised)
        var g = dy.scalars // ∂L/∂(pooled, before normalising)
        if pooling.normalize {
            for r in 0..<c.b {
                var ss: Double = 0, dot: Double = 0
                for j in 0..<n { ss += Double(pooled[r * n + j]) * Double(pooled[r * n + j]) }
                let norm = max(ss.squareRoot(), 1e-12)
                for j in 0..<n { dot += Double(pooled[r * n + j]) / norm * Double(g[r * n + j]) }
                for j in 0..<n {
                    // ∂(p/‖p‖) = (dy − y·(y·dy)) / ‖p‖ (the clamp's branch has gradient dy/ε, never met in practice)
                    let y = Double(pooled[r * n + j]) / norm
                    g[r * n + j] = Float((Double(g[r * n + j]) - y * dot) / norm)
                }
            }
        }
        var d = [Float](repeating: 0, count: c.b * c.t * n)
        for s in 0..<c.b {
            switch pooling.mode {
            case .cls:
                for j in 0..<n { d[s * c.t * n + j] = g[s * n + j] }
            case .max:
                for j in 0..<n {
                    let k = Int(c.argmax[s * n + j])
                    if mask.map({ $0[s * c.t + k] != 0 }) ?? true { d[(s * c.t + k) * n + j] = g[s * n + j] }
                }
            case .mean:
                let count = mask.map { m in (0..<c.t).reduce(Float(0)) { $0 + m[s * c.t + $1] } } ?? Float(c.t)
                let inv = 1 / max(count, 1e-9)
                for k in 0..<c.t {
                    let w = (mask?[s * c.t + k] ?? 1) * inv
                    if w == 0 { continue }
                    for j in 0..<n { d[(s * c.t + k) * n + j] = g[s * n + j] * w }
                }
            }
        }
        return try Tensor(shape: c.x.shape, scalars: d)
    }
}

/// The identity, with a window on the activation and its gradient: it keeps its last output
/// (`output`, in training or while `keepsOutput`) and adds `extraGradient` (when set, then cleared)
/// to the gradient flowing back through it — a loss term on an intermediate activation
/// (distillation of token rows) enters the one backward pass.
public final class Tap: Layer {
    /// The last forward pass's input (the output too), kept in training or while `keepsOutput`; nil
    /// otherwise, and after `backward` or `forget`.
    public private(set) var output: Tensor?
    /// Whether inference passes keep `output` too (default false).
    public var keepsOutput = false
    /// A tensor of the output's shape added to ∂L/∂output in the next backward, then cleared; nil adds nothing.
    public var extraGradient: Tensor?
    /// A tap keeping nothing yet: no output, no extra gradient.
    public init() {}
    public var summary: String { "Tap" }

    public func forward(_ x: Tensor, training: Bool) throws -> Tensor {
        output = training || keepsOutput ? x : nil
        return x
    }

    /// Drops the kept output.
    public func forget() { output = nil }

    public func backward(_ dy: Tensor, needInputGradient: Bool) throws -> Tensor? {
        defer { extraGradient = nil; output = nil }
        guard output != nil else { throw LayerError.backwardBeforeForward(summary) }
        guard needInputGradient else { return nil }
        guard let e = extraGradient else { return dy }
        try e.expectShape(dy.shape)
        let g = Tensor(uninitialized: dy.shape)
        try Kernels.axpby(alpha: 1, x: dy.storage, beta: 1, y: e.storage, out: g.storage)
        return g
    }
}
