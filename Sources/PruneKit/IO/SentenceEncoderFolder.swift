import Foundation

/// A sentence-transformers model folder (all-MiniLM-L6-v2 and other BERT encoders): config.json,
/// model.safetensors (HuggingFace BertModel names), vocab.txt and sentence_bert_config.json.
public enum SentenceEncoderFolder {
    /// Writes `encoder` as a folder loadable by `load`: model.safetensors (HuggingFace names, shrunk
    /// shapes after head / neuron removal, zeros where masked) and the other files of `source`
    /// (config, vocabulary, pooling) copied over. The files are written atomically.
    public static func save(_ encoder: BertEncoder, to dir: String, copyingFrom source: String, metadata: [String: String] = [:]) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for name in ["config.json", "vocab.txt", "sentence_bert_config.json", "tokenizer_config.json", "special_tokens_map.json",
                     "tokenizer.json", "modules.json", "config_sentence_transformers.json", "1_Pooling/config.json"] {
            let from = source + "/" + name, to = dir + "/" + name
            guard let data = FileManager.default.contents(atPath: from) else { continue }
            if name.contains("/") {
                try FileManager.default.createDirectory(atPath: (to as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            }
            try AtomicFile.write(data, to: to)
        }
        var meta = metadata
        meta["format"] = "pt"
        try SafeTensors.write(encoder.stateDict, metadata: meta, to: dir + "/model.safetensors")
    }

    /// Loads the encoder and its tokenizer, validating every name and shape first.
    public static func load(_ dir: String) throws -> (encoder: BertEncoder, tokenizer: WordPieceTokenizer) {
        func json(_ name: String) throws -> [String: Any] {
            let path = dir + "/" + name
            guard let data = FileManager.default.contents(atPath: path) else { throw IOError(file: path, reason: "file not found") }
            guard let o = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw IOError(file: path, reason: "not a JSON object")
            }
            return o
        }
        let c = try json("config.json")
        func int(_ k: String) throws -> Int {
            guard let v = (c[k] as? NSNumber)?.intValue, v > 0 else { throw IOError(file: dir + "/config.json", reason: "missing or invalid \(k)") }
            return v
        }
        let config = BertConfig(hidden: try int("hidden_size"), layers: try int("num_hidden_layers"), heads: try int("num_attention_heads"),
                                intermediate: try int("intermediate_size"), vocab: try int("vocab_size"),
                                maxPositions: try int("max_position_embeddings"),
                                layerNormEps: Float((c["layer_norm_eps"] as? NSNumber)?.doubleValue ?? 1e-12))
        guard config.hidden % config.heads == 0 else {
            throw IOError(file: dir + "/config.json", reason: "hidden size \(config.hidden) is not a multiple of \(config.heads) heads")
        }
        let maxLength = ((try? json("sentence_bert_config.json"))?["max_seq_length"] as? NSNumber)?.intValue ?? 256
        let tokenizer = try WordPieceTokenizer(vocabularyFile: dir + "/vocab.txt", maxLength: min(maxLength, config.maxPositions))
        let file = dir + "/model.safetensors"
        return (try encoder(config: config, tensors: SafeTensors.read(file).tensors, file: file), tokenizer)
    }

    /// An encoder of `config` from HuggingFace-named tensors (`file` names them in errors): head
    /// and neuron counts per block from the shapes (pruned folders), every name and shape checked
    /// first, a tensor without a place refused.
    public static func encoder(config: BertConfig, tensors: [String: Tensor], file: String) throws -> BertEncoder {
        func t(_ name: String, _ shape: [Int]) throws -> Tensor {
            guard let v = tensors[name] else { throw IOError(file: file, reason: "missing tensor '\(name)'") }
            guard v.shape == shape else { throw IOError(file: file, reason: "'\(name)' has shape \(v.shape), expected \(shape)") }
            guard v.isFinite else { throw IOError(file: file, reason: "'\(name)' contains NaN or infinite values") }
            return v
        }
        func linear(_ prefix: String, _ out: Int, _ inp: Int) throws -> Linear {
            let l = try Linear(weight: t(prefix + ".weight", [out, inp]), bias: t(prefix + ".bias", [out]))
            l.execution = .dense
            return l
        }
        func norm(_ prefix: String) throws -> LayerNorm {
            try LayerNorm(weight: t(prefix + ".weight", [config.hidden]), bias: t(prefix + ".bias", [config.hidden]), eps: config.layerNormEps)
        }
        let h = config.hidden
        let context = SequenceContext()
        var blocks: [Graph] = []
        for i in 0..<config.layers {
            let p = "encoder.layer.\(i)."
            // a pruned folder may keep fewer heads per layer: the query rows say how many
            let qRows = tensors[p + "attention.self.query.weight"]?.shape.first ?? h
            guard qRows % config.headDim == 0, qRows > 0 else {
                throw IOError(file: file, reason: "layer \(i): \(qRows) query rows is not a whole number of heads")
            }
            let inter = tensors[p + "intermediate.dense.weight"]?.shape.first ?? config.intermediate
            let attention = try MultiHeadAttention(
                query: linear(p + "attention.self.query", qRows, h), key: linear(p + "attention.self.key", qRows, h),
                value: linear(p + "attention.self.value", qRows, h), output: linear(p + "attention.output.dense", h, qRows),
                heads: qRows / config.headDim, context: context)
            blocks.append(try BertEncoder.block(attention: attention, attentionNorm: norm(p + "attention.output.LayerNorm"),
                                                intermediate: linear(p + "intermediate.dense", inter, h),
                                                output: linear(p + "output.dense", h, inter), outputNorm: norm(p + "output.LayerNorm")))
        }
        let types = tensors["embeddings.token_type_embeddings.weight"]?.shape.first ?? 2
        let embeddings = try BertEmbeddings(
            word: t("embeddings.word_embeddings.weight", [config.vocab, h]),
            position: t("embeddings.position_embeddings.weight", [config.maxPositions, h]),
            tokenType: t("embeddings.token_type_embeddings.weight", [max(types, 1), h]),
            normWeight: t("embeddings.LayerNorm.weight", [h]), normBias: t("embeddings.LayerNorm.bias", [h]),
            eps: config.layerNormEps, context: context)
        let encoder = try BertEncoder(config: config, embeddings: embeddings, blocks: blocks, context: context)
        // every tensor of the file has a place (HuggingFace's unused pooler and position ids aside)
        let used = Set(encoder.model.namedParameters.map { BertEncoder.huggingFaceName($0.name) })
        if let extra = tensors.keys.sorted().first(where: { !used.contains($0) && !$0.hasPrefix("pooler.") && $0 != "embeddings.position_ids" }) {
            throw IOError(file: file, reason: "tensor '\(extra)' is not part of a BERT encoder")
        }
        return encoder
    }
}

extension BertEncoder {
    /// A deep copy: the same shapes, values, masks, head masks and execution in new layers.
    public func copy() throws -> BertEncoder {
        let tensors = try stateDict.mapValues { try Tensor(shape: $0.shape, scalars: $0.scalars) }
        let out = try SentenceEncoderFolder.encoder(config: config, tensors: tensors, file: "(copy)")
        for ((_, a), (_, b)) in zip(model.namedParameters, out.model.namedParameters) {
            if let m = a.mask { try b.setMask(m) }
        }
        for i in blocks.indices { out.attention(i).headMask = attention(i).headMask }
        for (a, b) in zip(linears, out.linears) { b.execution = a.execution }
        return out
    }
}
