import Foundation

/// A BERT-architecture model folder: a sentence-transformers folder (all-MiniLM-L6-v2, MiniLM-L12,
/// BGE, E5, paraphrase and multi-qa models) or a plain HuggingFace BertModel folder.
///
/// - config.json gives the sizes and options (`BertConfig.init(huggingFace:file:)`); a `model_type`
///   other than "bert" is refused.
/// - model.safetensors holds the weights under BertModel's names; every name and shape is checked
///   against the config before anything is built.
/// - vocab.txt and tokenizer_config.json give the WordPiece tokenizer (lower-casing, accent
///   stripping, CJK spacing, special tokens, maximum length; sentence_bert_config.json's
///   `max_seq_length` and `do_lower_case` first, as sentence-transformers reads them).
/// - modules.json and the Pooling module's config.json give the pooling (mean, [CLS] or max) and
///   whether a Normalize module follows. A folder without modules.json needs the pooling named.
public enum SentenceEncoderFolder {
    static let copiedFiles = ["config.json", "vocab.txt", "sentence_bert_config.json", "tokenizer_config.json", "special_tokens_map.json",
                              "tokenizer.json", "modules.json", "config_sentence_transformers.json"]

    /// Writes `encoder` as a folder loadable by `load`: model.safetensors (HuggingFace names, shrunk
    /// shapes after head / neuron removal, zeros where masked) and the other files of `source`
    /// (config, vocabulary, tokenizer and module files) copied over. When `source` does not describe
    /// the encoder's pooling (a plain BertModel folder, or another pooling chosen), modules.json and
    /// the Pooling module's config are written for it, so the folder loads the same in PruneKit and
    /// sentence-transformers. The files are written atomically.
    ///
    /// `layout` `.plain` (the default) writes every weight dense under its HuggingFace name, as
    /// transformers and sentence-transformers read it. `.compressed` writes each pruned Linear weight
    /// in its compressed arrays instead (CSR, packed N:M or blocks, as `ModelFile`'s compressed
    /// layout: `<name>.values` and its indices, the shape and format in the metadata), so the file
    /// grows with the kept weights; only PruneKit reads that folder back. `.pytorchPruned` is
    /// refused: a folder has no `_orig` names.
    public static func save(_ encoder: BertEncoder, to dir: String, copyingFrom source: String, metadata: [String: String] = [:],
                            layout: ModelFile.Layout = .plain) throws {
        guard layout != .pytorchPruned else {
            throw IOError(file: dir, reason: "layout pytorch-pruned: an encoder folder is written plain (HuggingFace names) or compressed")
        }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var names = copiedFiles
        let sourceModules = try? modules(source)
        if let m = sourceModules, let path = m.poolingPath { names.append(path + "/config.json") }
        for name in names {
            let from = source + "/" + name, to = dir + "/" + name
            guard let data = FileManager.default.contents(atPath: from) else { continue }
            if name.contains("/") {
                try FileManager.default.createDirectory(atPath: (to as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            }
            try AtomicFile.write(data, to: to)
        }
        if (try? pooling(source)) != encoder.pooling { try writeModules(encoder.pooling, hidden: encoder.config.hidden, to: dir) }
        var meta = metadata
        meta["format"] = "pt"
        // the zeros of a pruned model's Linear weights are its masks: `load` masks them again, so the
        // folder runs on the compressed kernels and fine-tunes with the same entries pruned
        let pruned = encoder.linears.contains(where: { ($0.weight.mask?.prunedCount ?? 0) > 0 })
        if layout == .compressed && pruned {
            // the masks travel as the compressed arrays' positions: explicit, not zeros
            var seen = Set<String>(), named: [(name: String, parameter: Parameter)] = []
            for (name, p) in encoder.model.namedParameters where seen.insert(BertEncoder.huggingFaceName(name)).inserted {
                named.append((BertEncoder.huggingFaceName(name), p))
            }
            var tensors: [String: Tensor] = [:]
            let (integers, bytes) = try ModelFile.compressedEntries(named, tensors: &tensors, metadata: &meta)
            meta[compressedLayoutKey] = "compressed"
            try SafeTensors.write(tensors, integers: integers, bytes: bytes, metadata: meta, to: dir + "/model.safetensors")
            return
        }
        if pruned { meta[maskedZerosKey] = "zeros" }
        try SafeTensors.write(encoder.stateDict, metadata: meta, to: dir + "/model.safetensors")
    }

    /// The model.safetensors metadata key (value "compressed") of a folder written in the compressed layout.
    public static let compressedLayoutKey = ModelFile.layoutKey

    /// modules.json (Transformer, Pooling, and Normalize when `pooling.normalize`) and 1_Pooling/config.json.
    static func writeModules(_ pooling: SentencePooling, hidden: Int, to dir: String) throws {
        var list: [[String: Any]] = [["idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"],
                                     ["idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"]]
        if pooling.normalize {
            list.append(["idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"])
            try FileManager.default.createDirectory(atPath: dir + "/2_Normalize", withIntermediateDirectories: true)
        }
        let config: [String: Any] = ["word_embedding_dimension": hidden, "pooling_mode_cls_token": pooling.mode == .cls,
                                     "pooling_mode_mean_tokens": pooling.mode == .mean, "pooling_mode_max_tokens": pooling.mode == .max,
                                     "pooling_mode_mean_sqrt_len_tokens": false]
        try FileManager.default.createDirectory(atPath: dir + "/1_Pooling", withIntermediateDirectories: true)
        try AtomicFile.write(JSONSerialization.data(withJSONObject: list, options: [.prettyPrinted, .sortedKeys]), to: dir + "/modules.json")
        try AtomicFile.write(JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys]),
                             to: dir + "/1_Pooling/config.json")
    }

    static func json(_ path: String) throws -> [String: Any] {
        guard let data = FileManager.default.contents(atPath: path) else { throw IOError(file: path, reason: "file not found") }
        guard let o = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw IOError(file: path, reason: "not a JSON object")
        }
        return o
    }

    /// The sentence-transformers modules of a folder: where its Pooling module lives and whether a
    /// Normalize module follows. Nil when the folder has no modules.json.
    static func modules(_ dir: String) throws -> (poolingPath: String?, normalize: Bool)? {
        let path = dir + "/modules.json"
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        guard let list = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]] else {
            throw IOError(file: path, reason: "not a JSON list of modules")
        }
        var pooling: String? = nil, normalize = false
        for (i, m) in list.enumerated() {
            let type = m["type"] as? String ?? "", where_ = m["path"] as? String ?? ""
            switch type.split(separator: ".").last.map(String.init) ?? "" {
            case "Transformer" where i == 0: continue
            case "Pooling" where pooling == nil: pooling = where_
            case "Normalize" where pooling != nil && i == list.count - 1: normalize = true
            default:
                throw IOError(file: path, reason: "module \(i) '\(type)' is not supported (PruneKit reads Transformer, Pooling, Normalize)")
            }
        }
        return (pooling, normalize)
    }

    /// The pooling a sentence-transformers folder declares (modules.json and the Pooling module's
    /// config.json). Throws for a folder without modules.json, a pooling mode PruneKit does not
    /// implement (mean_sqrt_len, weighted mean, last token) or several modes combined.
    public static func pooling(_ dir: String) throws -> SentencePooling {
        guard let m = try modules(dir) else {
            throw IOError(file: dir + "/modules.json", reason: "file not found: a plain BertModel folder needs its pooling named "
                          + "(--pooling mean, cls or max, optionally +normalize)")
        }
        guard let path = m.poolingPath else { throw IOError(file: dir + "/modules.json", reason: "no Pooling module") }
        let file = dir + "/" + path + "/config.json"
        let c = try json(file)
        let on = c.keys.filter { $0.hasPrefix("pooling_mode_") && (c[$0] as? Bool ?? false) }.sorted()
        let known: [String: SentencePooling.Mode] = ["pooling_mode_mean_tokens": .mean, "pooling_mode_cls_token": .cls,
                                                     "pooling_mode_max_tokens": .max]
        guard on.count == 1 else {
            throw IOError(file: file, reason: on.isEmpty ? "no pooling mode is on" : "pooling modes combined (\(on.joined(separator: ", "))): "
                          + "PruneKit pools one way")
        }
        guard let mode = known[on[0]] else { throw IOError(file: file, reason: "\(on[0]) is not supported (mean, cls or max tokens)") }
        return SentencePooling(mode, normalize: m.normalize)
    }

    /// Loads the encoder and its tokenizer, validating every file, name and shape first. `pooling`
    /// overrides the folder's modules (and is required for a folder without modules.json).
    /// The model.safetensors metadata key of a folder whose zero Linear weights are pruned entries.
    public static let maskedZerosKey = "prunekit.masks"

    /// Loads a folder. When its model.safetensors says (metadata `prunekit.masks` = "zeros", written
    /// by `save` for a pruned encoder, or a `prunekit.pruned` note) that its zero Linear weights are
    /// pruned, the blocks' Linear weights are masked where they are zero and run with
    /// `Execution.automatic`: the compressed kernels where the measured crossover favours them. A
    /// folder in the compressed layout (`compressedLayoutKey`) carries its masks explicitly and
    /// runs the same way. A folder from elsewhere is taken as dense (its Linear layers run the dense GEMM).
    public static func load(_ dir: String, pooling override: SentencePooling? = nil) throws -> (encoder: BertEncoder, tokenizer: WordPieceTokenizer) {
        let configFile = dir + "/config.json"
        let config = try BertConfig(huggingFace: json(configFile), file: configFile)
        let pool = try override ?? pooling(dir)
        let file = dir + "/model.safetensors"
        let all = try SafeTensors.readAll(file)
        let metadata = all.metadata
        var tensors = all.tensors, masks: [String: Tensor] = [:]
        if metadata[compressedLayoutKey] == "compressed" {
            do { tensors = try ModelFile.expandCompressed(all.tensors, all.integers, metadata) } catch let e as IOError {
                throw IOError(file: file, reason: "\(e.file): \(e.reason)")
            }
            for key in tensors.keys where key.hasSuffix("_mask") { masks[key] = tensors.removeValue(forKey: key) }
        }
        let model = try encoder(config: config, tensors: tensors, file: file, pooling: pool)
        if !masks.isEmpty {
            for (name, p) in model.model.namedParameters {
                guard let m = masks.removeValue(forKey: BertEncoder.huggingFaceName(name) + "_mask") else { continue }
                try p.setMask(Mask(shape: p.shape, kept: m.scalars.map { $0 != 0 }))
            }
            if let extra = masks.keys.sorted().first {
                throw IOError(file: file, reason: "compressed weight '\(extra.dropLast("_mask".count))' has no place in the encoder")
            }
            for l in model.linears where l.weight.mask != nil { l.execution = .automatic }
        } else if metadata[maskedZerosKey] == "zeros" || metadata["prunekit.pruned"] != nil {
            _ = try model.model.maskZeroWeights()
            for l in model.linears where l.weight.mask != nil { l.execution = .automatic }
        }
        let tokenizer = try WordPieceTokenizer(folder: dir, maxPositions: config.maxPositions)
        guard tokenizer.vocabulary.values.allSatisfy({ Int($0) < config.vocab }) else {
            throw IOError(file: dir + "/vocab.txt", reason: "\(tokenizer.vocabulary.count) tokens: ids beyond config.json vocab_size = \(config.vocab)")
        }
        return (model, tokenizer)
    }

    /// An encoder of `config` from HuggingFace-named tensors (`file` names them in errors): head
    /// and neuron counts per block from the shapes (pruned folders), every name and shape checked
    /// first against the config field it follows, a tensor without a place refused.
    public static func encoder(config: BertConfig, tensors: [String: Tensor], file: String,
                               pooling: SentencePooling = .meanNormalized) throws -> BertEncoder {
        let fieldValue: [String: Int] = ["hidden_size": config.hidden, "vocab_size": config.vocab, "type_vocab_size": config.typeVocab,
                                         "max_position_embeddings": config.maxPositions]
        /// `shape[i]` from config field `fields[i]` (nil: read from the file, as pruned sizes are)
        func t(_ name: String, _ shape: [Int], _ fields: [String?]) throws -> Tensor {
            guard let v = tensors[name] else {
                if name.hasPrefix("encoder.layer.") {
                    throw IOError(file: file, reason: "missing tensor '\(name)' (config.json num_hidden_layers = \(config.layers))")
                }
                throw IOError(file: file, reason: "missing tensor '\(name)'")
            }
            if v.shape != shape {
                if v.rank == shape.count, let i = shape.indices.first(where: { v.shape[$0] != shape[$0] && fields[$0] != nil }) {
                    let f = fields[i]!
                    throw IOError(file: file, reason: "config.json \(f) = \(fieldValue[f]!) disagrees with '\(name)' of shape \(v.shape)")
                }
                throw IOError(file: file, reason: "'\(name)' has shape \(v.shape), expected \(shape)")
            }
            guard v.isFinite else { throw IOError(file: file, reason: "'\(name)' contains NaN or infinite values") }
            return v
        }
        let hs = "hidden_size"
        func linear(_ prefix: String, _ out: Int, _ inp: Int, _ outField: String?, _ inField: String?) throws -> Linear {
            let l = try Linear(weight: t(prefix + ".weight", [out, inp], [outField, inField]), bias: t(prefix + ".bias", [out], [outField]))
            l.execution = .dense
            return l
        }
        func norm(_ prefix: String) throws -> LayerNorm {
            try LayerNorm(weight: t(prefix + ".weight", [config.hidden], [hs]), bias: t(prefix + ".bias", [config.hidden], [hs]),
                          eps: config.layerNormEps)
        }
        let h = config.hidden
        let context = SequenceContext()
        // the embeddings first: their tables name the sizes (hidden_size, vocab_size, ...) before the blocks' shapes do
        let embeddings = try BertEmbeddings(
            word: t("embeddings.word_embeddings.weight", [config.vocab, h], ["vocab_size", hs]),
            position: t("embeddings.position_embeddings.weight", [config.maxPositions, h], ["max_position_embeddings", hs]),
            tokenType: t("embeddings.token_type_embeddings.weight", [config.typeVocab, h], ["type_vocab_size", hs]),
            normWeight: t("embeddings.LayerNorm.weight", [h], [hs]), normBias: t("embeddings.LayerNorm.bias", [h], [hs]),
            eps: config.layerNormEps, padID: config.padTokenID, context: context)
        var blocks: [Graph] = []
        for i in 0..<config.layers {
            let p = "encoder.layer.\(i)."
            // a pruned folder may keep fewer heads per layer: the query rows say how many
            let q = p + "attention.self.query.weight"
            let qRows = tensors[q]?.shape.first ?? h
            guard qRows % config.headDim == 0, qRows > 0, qRows <= h else {
                throw IOError(file: file, reason: "config.json num_attention_heads = \(config.heads) disagrees with '\(q)' of "
                              + "shape \(tensors[q]?.shape ?? []): \(qRows) rows is not a whole number of heads of \(config.headDim)")
            }
            let interName = p + "intermediate.dense.weight"
            let inter = tensors[interName]?.shape.first ?? config.intermediate
            guard inter <= config.intermediate else {
                throw IOError(file: file, reason: "config.json intermediate_size = \(config.intermediate) disagrees with '\(interName)' of "
                              + "shape \(tensors[interName]!.shape)")
            }
            let attention = try MultiHeadAttention(
                query: linear(p + "attention.self.query", qRows, h, nil, hs), key: linear(p + "attention.self.key", qRows, h, nil, hs),
                value: linear(p + "attention.self.value", qRows, h, nil, hs), output: linear(p + "attention.output.dense", h, qRows, hs, nil),
                heads: qRows / config.headDim, context: context)
            blocks.append(try BertEncoder.block(attention: attention, attentionNorm: norm(p + "attention.output.LayerNorm"),
                                                intermediate: linear(p + "intermediate.dense", inter, h, nil, hs),
                                                output: linear(p + "output.dense", h, inter, hs, nil), outputNorm: norm(p + "output.LayerNorm"),
                                                activation: config.activation))
        }
        // every tensor of the file has a place (HuggingFace's unused pooler and position ids aside)
        let expected = Set((0..<config.layers).flatMap { i in BertEncoder.huggingFaceBlockNames.map { "encoder.layer.\(i)." + $0 } }
            + BertEncoder.huggingFaceEmbeddingNames)
        if let extra = tensors.keys.sorted().first(where: { !expected.contains($0) && !$0.hasPrefix("pooler.") && !$0.hasSuffix("position_ids") }) {
            if extra.hasPrefix("encoder.layer."), let i = Int(extra.split(separator: ".")[2]), i >= config.layers {
                throw IOError(file: file, reason: "tensor '\(extra)' lies beyond config.json num_hidden_layers = \(config.layers)")
            }
            throw IOError(file: file, reason: "tensor '\(extra)' is not part of a BERT encoder")
        }
        return try BertEncoder(config: config, embeddings: embeddings, blocks: blocks, context: context, pooling: pooling)
    }
}

extension BertConfig {
    /// The sizes and options of a HuggingFace config.json (`file` names it in errors). Refuses a
    /// `model_type` other than "bert" (RoBERTa, DistilBERT, GPT-2, ... differ in embeddings, blocks
    /// or attention), relative position embeddings, decoders, and an unknown `hidden_act`.
    public init(huggingFace c: [String: Any], file: String) throws {
        if let type = c["model_type"] as? String, type != "bert" {
            throw IOError(file: file, reason: "model_type '\(type)' is not supported: PruneKit reads BERT-architecture models (model_type bert)")
        }
        if c["model_type"] == nil, let arch = (c["architectures"] as? [String])?.first, !arch.hasPrefix("Bert") {
            throw IOError(file: file, reason: "architecture '\(arch)' is not supported: PruneKit reads BERT-architecture models")
        }
        if let pe = c["position_embedding_type"] as? String, pe != "absolute" {
            throw IOError(file: file, reason: "position_embedding_type '\(pe)' is not supported (absolute only)")
        }
        if c["is_decoder"] as? Bool == true { throw IOError(file: file, reason: "is_decoder true is not supported (encoders only)") }
        func int(_ k: String, default d: Int? = nil, min: Int = 1) throws -> Int {
            guard let raw = c[k] else {
                if let d { return d }
                throw IOError(file: file, reason: "missing \(k)")
            }
            guard let n = raw as? NSNumber, n.doubleValue == n.doubleValue.rounded(),
                  n.intValue >= min else {
                throw IOError(file: file, reason: "\(k) must be a whole number ≥ \(min), got \(raw)")
            }
            return n.intValue
        }
        let actName = c["hidden_act"] as? String ?? "gelu"
        guard let activation = BertActivation(huggingFaceName: actName) else {
            throw IOError(file: file, reason: "hidden_act '\(actName)' is not supported (gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, relu, "
                          + "silu, swish, tanh, sigmoid)")
        }
        let eps = (c["layer_norm_eps"] as? NSNumber)?.doubleValue ?? 1e-12
        guard eps > 0, eps < 1 else { throw IOError(file: file, reason: "layer_norm_eps must lie in (0, 1), got \(eps)") }
        self.init(hidden: try int("hidden_size"), layers: try int("num_hidden_layers"), heads: try int("num_attention_heads"),
                  intermediate: try int("intermediate_size"), vocab: try int("vocab_size"), maxPositions: try int("max_position_embeddings"),
                  layerNormEps: Float(eps), typeVocab: try int("type_vocab_size", default: 2),
                  activation: activation, padTokenID: try int("pad_token_id", default: 0, min: 0))
        guard hidden % heads == 0 else {
            throw IOError(file: file, reason: "hidden_size \(hidden) is not a multiple of num_attention_heads \(heads)")
        }
        guard padTokenID < vocab else { throw IOError(file: file, reason: "pad_token_id \(padTokenID) is not below vocab_size \(vocab)") }
    }
}

extension BertEncoder {
    /// A deep copy: the same shapes, values, masks, head masks and execution in new layers.
    public func copy() throws -> BertEncoder {
        let tensors = try stateDict.mapValues { try Tensor(shape: $0.shape, scalars: $0.scalars) }
        let out = try SentenceEncoderFolder.encoder(config: config, tensors: tensors, file: "(copy)", pooling: pooling)
        for ((_, a), (_, b)) in zip(model.namedParameters, out.model.namedParameters) {
            if let m = a.mask { try b.setMask(m) }
        }
        for i in blocks.indices { out.attention(i).headMask = attention(i).headMask }
        for (a, b) in zip(linears, out.linears) { b.execution = a.execution }
        return out
    }
}
