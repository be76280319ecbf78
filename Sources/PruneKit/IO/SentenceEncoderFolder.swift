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
        let tensors = try SafeTensors.read(file).tensors
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
        let h = config.hidden
        var layers: [BertLayer] = []
        for i in 0..<config.layers {
            let p = "encoder.layer.\(i)."
            // a pruned folder may keep fewer heads per layer: the query rows say how many
            let qRows = tensors[p + "attention.self.query.weight"]?.shape.first ?? h
            guard qRows % config.headDim == 0, qRows > 0 else {
                throw IOError(file: file, reason: "layer \(i): \(qRows) query rows is not a whole number of heads")
            }
            let inter = tensors[p + "intermediate.dense.weight"]?.shape.first ?? config.intermediate
            layers.append(BertLayer(
                query: try linear(p + "attention.self.query", qRows, h), key: try linear(p + "attention.self.key", qRows, h),
                value: try linear(p + "attention.self.value", qRows, h),
                attentionOutput: try linear(p + "attention.output.dense", h, qRows),
                attentionNorm: (try t(p + "attention.output.LayerNorm.weight", [h]), try t(p + "attention.output.LayerNorm.bias", [h])),
                intermediate: try linear(p + "intermediate.dense", inter, h), output: try linear(p + "output.dense", h, inter),
                outputNorm: (try t(p + "output.LayerNorm.weight", [h]), try t(p + "output.LayerNorm.bias", [h])),
                heads: qRows / config.headDim))
        }
        let types = try t("embeddings.token_type_embeddings.weight", [tensors["embeddings.token_type_embeddings.weight"]?.shape.first ?? 2, h])
        let encoder = BertEncoder(
            config: config, word: try t("embeddings.word_embeddings.weight", [config.vocab, h]),
            position: try t("embeddings.position_embeddings.weight", [config.maxPositions, h]),
            tokenType0: try Tensor(shape: [h], scalars: Array(types.scalars.prefix(h))),
            embeddingNorm: (try t("embeddings.LayerNorm.weight", [h]), try t("embeddings.LayerNorm.bias", [h])), layers: layers)
        return (encoder, tokenizer)
    }
}
