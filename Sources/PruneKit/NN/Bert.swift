/// Sizes and options of a BERT encoder (config.json of a HuggingFace BertModel).
public struct BertConfig: Sendable, Equatable {
    /// Sizes from config.json: hidden size (hidden_size), encoder blocks (num_hidden_layers), heads per
    /// block (num_attention_heads), feed-forward width (intermediate_size), vocabulary size (vocab_size)
    /// and the longest sequence (max_position_embeddings).
    public var hidden: Int, layers: Int, heads: Int, intermediate: Int, vocab: Int, maxPositions: Int
    /// ε of every LayerNorm (layer_norm_eps).
    public var layerNormEps: Float
    /// Rows of the token-type table (type_vocab_size); sentence encoders read row 0.
    public var typeVocab: Int
    /// The feed-forward activation (hidden_act).
    public var activation: BertActivation
    /// The padding id (pad_token_id).
    public var padTokenID: Int
    /// Features per attention head: hidden / heads (integer division).
    public var headDim: Int { hidden / heads }
    /// Sizes and options as config.json gives them; the defaults are BERT's (type_vocab_size 2, hidden_act
    /// "gelu", pad_token_id 0). Nothing is checked here; `BertEncoder.init` compares hidden, vocab,
    /// maxPositions, typeVocab and layers with its layers.
    public init(hidden: Int, layers: Int, heads: Int, intermediate: Int, vocab: Int, maxPositions: Int, layerNormEps: Float,
                typeVocab: Int = 2, activation: BertActivation = .gelu, padTokenID: Int = 0) {
        (self.hidden, self.layers, self.heads, self.intermediate, self.vocab, self.maxPositions, self.layerNormEps) =
            (hidden, layers, heads, intermediate, vocab, maxPositions, layerNormEps)
        (self.typeVocab, self.activation, self.padTokenID) = (typeVocab, activation, padTokenID)
    }
}

/// The feed-forward activations of BERT-architecture models, by their config.json `hidden_act`
/// names: GELU's erf form ("gelu", "gelu_python"), its tanh form ("gelu_new", "gelu_pytorch_tanh",
/// "gelu_fast"), "relu", SiLU ("silu", "swish"), "tanh" and "sigmoid".
public enum BertActivation: String, Sendable, CaseIterable {
    /// The activations; the raw value is a config.json name for each ("gelu_new" for `geluTanh`, the case
    /// name otherwise).
    case gelu, geluTanh = "gelu_new", relu, silu, tanh, sigmoid

    /// The activation a config.json `hidden_act` names, nil for one PruneKit does not implement.
    public init?(huggingFaceName name: String) {
        switch name {
        case "gelu", "gelu_python": self = .gelu
        case "gelu_new", "gelu_pytorch_tanh", "gelu_fast": self = .geluTanh
        case "relu": self = .relu
        case "silu", "swish": self = .silu
        case "tanh": self = .tanh
        case "sigmoid": self = .sigmoid
        default: return nil
        }
    }

    /// A new layer computing it.
    public func layer() -> any Layer {
        switch self {
        case .gelu: return Activation(.gelu)
        case .geluTanh: return Activation(.geluTanh)
        case .relu: return ReLU()
        case .silu: return Activation(.silu)
        case .tanh: return Activation(.tanh)
        case .sigmoid: return Activation(.sigmoid)
        }
    }
}

/// A BERT sentence encoder (all-MiniLM-L6-v2 and its family) as one graph of general layers:
///
/// ```
/// embeddings (BertEmbeddings) → encoder.layer.0 … encoder.layer.N-1 (blocks) → tokens (Tap)
///   → pooling (TokenPooling: mean, [CLS] or max, L2-normalised or not)
/// ```
///
/// Each block is a `Graph` in BERT's post-norm order: attention (MultiHeadAttention) →
/// attention_add (+ block input) → attention_norm (LayerNorm) → intermediate (Linear) → activation (GELU
/// for most models; `BertConfig.activation`) →
/// output (Linear) → output_add (+ attention_norm) → output_norm (LayerNorm). The model is a
/// `Model` like any other: pruning (dependency-aware heads and FFN neurons included), surgery,
/// training and hooks see ordinary layers. Input: ids (B × T, whole numbers, padding id 0).
public final class BertEncoder {
    /// The sizes and options given at construction; `heads` and `intermediateSizes` give the per-block
    /// sizes after pruning.
    public let config: BertConfig
    /// The whole network as a `Model` (architecture "bert", a `Graph`): what pruning, training and saving act on.
    public let model: Model
    /// The shape and padding mask of the batch running through the model (shared by its layers).
    public let context: SequenceContext

    /// A new encoder from its pieces (blocks from `BertEncoder.block`, built on `context`), pooling
    /// its last block's token rows as `pooling` says.
    public init(config: BertConfig, embeddings: BertEmbeddings, blocks: [Graph], context: SequenceContext,
                pooling: SentencePooling = .meanNormalized) throws {
        guard embeddings.context === context else {
            throw GraphError("the embeddings write another sequence context than the encoder's")
        }
        let sizes = [(config.hidden, embeddings.hidden, "hidden"), (config.vocab, embeddings.vocabulary, "vocab"),
                     (config.maxPositions, embeddings.positions, "maxPositions"), (config.typeVocab, embeddings.tokenType.value.shape[0], "typeVocab"),
                     (config.layers, blocks.count, "layers")]
        if let (want, got, name) = sizes.first(where: { $0.0 != $0.1 }) {
            throw GraphError("the config's \(name) is \(want), the embeddings and blocks have \(got)")
        }
        self.config = config
        self.context = context
        let stack = Sequential([("layer", Sequential(blocks.enumerated().map { (String($0.offset), $0.element as any Layer) }))])
        let graph = try Graph([("embeddings", embeddings, [Graph.inputName]), ("encoder", stack, ["embeddings"]),
                               ("tokens", Tap(), ["encoder"]), ("pooling", TokenPooling(pooling, context: context), ["tokens"])])
        model = Model(architecture: "bert", network: graph, inputShape: [8])
    }

    /// One post-norm encoder block as a graph (see the type's description).
    public static func block(attention: MultiHeadAttention, attentionNorm: LayerNorm, intermediate: Linear, output: Linear,
                             outputNorm: LayerNorm, activation: BertActivation = .gelu) throws -> Graph {
        try Graph([
            ("attention", attention, [Graph.inputName]), ("attention_add", Add(), ["attention", Graph.inputName]),
            ("attention_norm", attentionNorm, ["attention_add"]), ("intermediate", intermediate, ["attention_norm"]),
            ("activation", activation.layer(), ["intermediate"]), ("output", output, ["activation"]),
            ("output_add", Add(), ["output", "attention_norm"]), ("output_norm", outputNorm, ["output_add"]),
        ])
    }

    var graph: Graph { model.network as! Graph }
    /// The embedding layer (graph node "embeddings").
    public var embeddings: BertEmbeddings { graph.node(named: "embeddings")!.layer as! BertEmbeddings }
    var tap: Tap { graph.node(named: "tokens")!.layer as! Tap }
    /// How token rows become the sentence embedding.
    public var pooling: SentencePooling { (graph.node(named: "pooling")!.layer as! TokenPooling).pooling }
    /// The encoder blocks, first to last (each a Graph; see `block`).
    public var blocks: [Graph] {
        let stack = (graph.node(named: "encoder")!.layer as! Sequential).child(named: "layer") as! Sequential
        return stack.layers.map { $0.layer as! Graph }
    }
    /// The attention layer of block `i`.
    public func attention(_ i: Int) -> MultiHeadAttention { blocks[i].node(named: "attention")!.layer as! MultiHeadAttention }
    /// The feed-forward layers of block `i`.
    public func feedForward(_ i: Int) -> (intermediate: Linear, output: Linear) {
        (blocks[i].node(named: "intermediate")!.layer as! Linear, blocks[i].node(named: "output")!.layer as! Linear)
    }
    /// Heads per block (fewer than the config's after head pruning).
    public var heads: [Int] { blocks.indices.map { attention($0).heads } }
    /// FFN neurons per block.
    public var intermediateSizes: [Int] { blocks.indices.map { feedForward($0).intermediate.outFeatures } }
    /// The Linear layers of every block (query, key, value, attention output, intermediate, output).
    public var linears: [Linear] {
        blocks.indices.flatMap { i -> [Linear] in
            let a = attention(i), f = feedForward(i)
            return [a.query, a.key, a.value, a.output, f.intermediate, f.output]
        }
    }

    /// Number of scalar parameters (embedding tables included).
    public var parameterCount: Int { model.parameterCount }

    // MARK: running it

    /// The ids as a B × T tensor (all sequences of one length), with `mask` for the next forward.
    func input(ids: [[Int32]], mask: [[Float]]) throws -> Tensor {
        let b = ids.count, t = ids.first?.count ?? 0
        guard ids.allSatisfy({ $0.count == t }), mask.count == b, mask.allSatisfy({ $0.count == t }) else {
            throw TensorError.invalidShape([b, t])
        }
        context.pendingMask = mask.flatMap { $0 }
        return try Tensor(shape: [b, t], scalars: ids.flatMap { $0.map(Float.init) })
    }

    /// Sentence embeddings (B × hidden): the last block's token rows pooled as `pooling` says.
    public func embed(ids: [[Int32]], mask: [[Float]], training: Bool = false) throws -> Tensor {
        try embedWithTokens(ids: ids, mask: mask, training: training).embedding
    }

    /// Sentence embeddings and the last block's token rows (B·T × hidden) they were pooled from.
    public func embedWithTokens(ids: [[Int32]], mask: [[Float]], training: Bool) throws -> (embedding: Tensor, tokens: Tensor) {
        let x = try input(ids: ids, mask: mask)
        let tap = self.tap
        tap.keepsOutput = true
        defer { tap.keepsOutput = false; if !training { tap.forget() } }
        let e = try model.network.forward(x, training: training)
        return (e, tap.output!)
    }

    /// Embeddings of `texts` in input order, `batch` at a time; batches of similar length (sorted
    /// by token count, as sentence-transformers does) so padding stays small.
    public func embed(texts: [String], tokenizer: WordPieceTokenizer, batch: Int = 32) throws -> [[Float]] {
        guard batch >= 1 else { throw TensorError.invalidShape([batch]) }
        let encoded = texts.map(tokenizer.encode) // once: for the length order and the batches
        let order = texts.indices.sorted { encoded[$0].count > encoded[$1].count }
        var out = [[Float]](repeating: [], count: texts.count)
        let h = config.hidden
        for start in stride(from: 0, to: order.count, by: batch) {
            let idx = Array(order[start..<min(start + batch, order.count)])
            let (ids, mask) = tokenizer.pad(idx.map { encoded[$0] })
            let e = try embed(ids: ids, mask: mask).scalars
            for (k, i) in idx.enumerated() { out[i] = Array(e[(k * h)..<((k + 1) * h)]) }
        }
        return out
    }

    /// Token rows (B·T × hidden) of the last block.
    public func encode(ids: [[Int32]], mask: [[Float]]) throws -> Tensor {
        try embedWithTokens(ids: ids, mask: mask, training: false).tokens
    }

    /// Gradients of every trainable parameter from ∂L/∂embeddings (B × hidden) of the last training
    /// `embed`, plus ∂L/∂(token rows) (B·T × hidden) when the loss also reads those.
    public func backward(_ dEmbedding: Tensor, tokenGradient: Tensor? = nil) throws {
        tap.extraGradient = tokenGradient
        _ = try model.network.backward(dEmbedding, needInputGradient: false)
    }

    // MARK: names

    /// The state_dict under HuggingFace BertModel names (weights dense, zeros where pruned).
    public var stateDict: [String: Tensor] {
        Dictionary(model.namedParameters.map { (Self.huggingFaceName($0.name), $0.parameter.value) }) { a, _ in a }
    }

    /// The HuggingFace BertModel names of one block's tensors (after "encoder.layer.N.").
    public static let huggingFaceBlockNames: [String] = ["attention.self.query", "attention.self.key", "attention.self.value",
        "attention.output.dense", "attention.output.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm"]
        .flatMap { [$0 + ".weight", $0 + ".bias"] }
    /// The HuggingFace BertModel names of the embedding tensors.
    public static let huggingFaceEmbeddingNames: [String] = ["embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
        "embeddings.token_type_embeddings.weight", "embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias"]

    /// PruneKit's parameter name → HuggingFace BertModel's ("encoder.layer.0.attention.query.weight"
    /// → "encoder.layer.0.attention.self.query.weight"); other names are the same.
    public static func huggingFaceName(_ name: String) -> String {
        let parts = name.split(separator: ".").map(String.init)
        guard parts.count >= 5, parts[0] == "encoder", parts[1] == "layer" else { return name }
        let head = parts[0...2].joined(separator: "."), rest = Array(parts[3...])
        let table: [String: String] = ["attention.query": "attention.self.query", "attention.key": "attention.self.key",
                                       "attention.value": "attention.self.value", "attention.output": "attention.output.dense",
                                       "attention_norm": "attention.output.LayerNorm", "intermediate": "intermediate.dense",
                                       "output": "output.dense", "output_norm": "output.LayerNorm"]
        let module = rest.dropLast().joined(separator: ".")
        guard let hf = table[module] else { return name }
        return head + "." + hf + "." + rest.last!
    }
}
