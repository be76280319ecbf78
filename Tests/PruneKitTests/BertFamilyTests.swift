import Foundation
import XCTest
@testable import PruneKit

/// BERT-architecture folders of other sizes and options than all-MiniLM-L6-v2, against
/// transformers / sentence-transformers (scripts/make_bert_family_fixtures.py). The fixtures hold
/// the small files and the reference ids and embeddings; the weights are rebuilt here from the
/// configuration's seed by the script's generator, so nothing large is committed.
final class BertFamilyTests: XCTestCase {
    static let names = ["l12_h384_mean", "l4_h768_max", "l3_h256_cls_cased"]

    struct Expected: Decodable {
        struct Sentence: Decodable { let text: String; let ids: [Int32]; let embedding: [Float] }
        let seed: UInt64
        let sentences: [Sentence]
    }

    static func fixtureDir(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/bert_family/" + name).path
    }

    static func expected(_ name: String) throws -> Expected {
        try JSONDecoder().decode(Expected.self, from: Data(contentsOf: URL(fileURLWithPath: fixtureDir(name) + "/expected.json")))
    }

    // MARK: the script's weight generator

    static func fnv1a(_ s: String) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        return h
    }

    /// n values in [-1, 1), exactly k / 2²³ (splitmix64 of seed + (i + 1)·golden, top 24 bits).
    static func uniform(seed: UInt64, count n: Int) -> [Float] {
        (0..<n).map { i in
            var z = seed &+ UInt64(i + 1) &* 0x9E37_79B9_7F4A_7C15
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            return Float((Double(z >> 40) - 8_388_608) / 8_388_608)
        }
    }

    static func weights(seed: UInt64, name: String, shape: [Int]) throws -> Tensor {
        let v = uniform(seed: fnv1a(name) ^ seed, count: shape.reduce(1, *))
        let scaled: [Float]
        if name.hasSuffix("LayerNorm.weight") { scaled = v.map { 1 + $0 * 0.25 } }
        else if name.hasSuffix("LayerNorm.bias") { scaled = v.map { $0 * 0.125 } }
        else if name.hasPrefix("embeddings.") { scaled = v.map { $0 * 0.5 } }
        else { scaled = v.map { $0 * 0.0625 } }
        return try Tensor(shape: shape, scalars: scaled)
    }

    /// The HuggingFace tensors of `config` (every layer full size), generated from `seed`.
    static func stateDict(_ c: BertConfig, seed: UInt64) throws -> [String: Tensor] {
        let h = c.hidden, f = c.intermediate
        var shapes: [String: [Int]] = ["embeddings.word_embeddings.weight": [c.vocab, h], "embeddings.position_embeddings.weight": [c.maxPositions, h],
                                       "embeddings.token_type_embeddings.weight": [c.typeVocab, h],
                                       "embeddings.LayerNorm.weight": [h], "embeddings.LayerNorm.bias": [h]]
        for i in 0..<c.layers {
            let p = "encoder.layer.\(i)."
            for (m, out, inp) in [("attention.self.query", h, h), ("attention.self.key", h, h), ("attention.self.value", h, h),
                                  ("attention.output.dense", h, h), ("intermediate.dense", f, h), ("output.dense", h, f)] {
                shapes[p + m + ".weight"] = [out, inp]
                shapes[p + m + ".bias"] = [out]
            }
            for m in ["attention.output.LayerNorm", "output.LayerNorm"] { shapes[p + m + ".weight"] = [h]; shapes[p + m + ".bias"] = [h] }
        }
        var out: [String: Tensor] = [:]
        for (k, shape) in shapes { out[k] = try weights(seed: seed, name: k, shape: shape) }
        return out
    }

    /// The fixture folder, complete: its files copied to a new temporary folder and model.safetensors generated.
    static func materialise(_ name: String) throws -> String {
        let dir = NSTemporaryDirectory() + "bertfam-\(name)-\(UUID().uuidString)"
        try FileManager.default.copyItem(atPath: fixtureDir(name), toPath: dir)
        let configFile = dir + "/config.json"
        let config = try BertConfig(huggingFace: SentenceEncoderFolder.json(configFile), file: configFile)
        try SafeTensors.write(stateDict(config, seed: expected(name).seed), metadata: ["format": "pt"], to: dir + "/model.safetensors")
        return dir
    }

    static func cosine(_ a: [Float], _ b: [Float]) -> Double {
        let dot = zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        let n1 = a.reduce(0.0) { $0 + Double($1) * Double($1) }, n2 = b.reduce(0.0) { $0 + Double($1) * Double($1) }
        return dot / (n1.squareRoot() * n2.squareRoot())
    }

    // MARK: agreement with sentence-transformers

    func testGeneratorMatchesTheScript() throws {
        // values printed by the script's functions: fnv1a("a"), uniform(0, 3), and
        // tensor(3, "encoder.layer.0.output.LayerNorm.weight", (3,)) (bit-exact, as hexadecimal floats)
        XCTAssertEqual(Self.fnv1a("a"), 0xAF63_DC4C_8601_EC8C)
        XCTAssertEqual(Self.uniform(seed: 0, count: 3), [0x1.8882a0p-1, -0x1.187620p-3, -0x1.e4ee8cp-1])
        XCTAssertEqual(try Self.weights(seed: 3, name: "encoder.layer.0.output.LayerNorm.weight", shape: [3]).scalars,
                       [0x1.c2e180p-1, 0x1.bd8146p-1, 0x1.a01110p-1])
    }

    func testEveryConfigurationMatchesSentenceTransformers() throws {
        for name in Self.names {
            let dir = try Self.materialise(name)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let (encoder, tok) = try SentenceEncoderFolder.load(dir)
            let e = try Self.expected(name)
            var worst = 1.0
            for s in e.sentences { XCTAssertEqual(tok.encode(s.text), s.ids, "\(name): «\(s.text.prefix(50))»") }
            let vectors = try encoder.embed(texts: e.sentences.map(\.text), tokenizer: tok, batch: 4)
            for (v, s) in zip(vectors, e.sentences) {
                let c = Self.cosine(v, s.embedding)
                worst = min(worst, c)
                XCTAssertGreaterThanOrEqual(c, 0.99999, "\(name): «\(s.text.prefix(50))»")
                if encoder.pooling.normalize { XCTAssertEqual(Self.cosine(v, v), 1, accuracy: 1e-6) }
            }
            print("\(name): \(encoder.config.layers) layers × \(encoder.config.hidden), \(encoder.pooling), "
                  + "lowest cosine to sentence-transformers \(worst)")
        }
    }

    /// A pruned encoder's folder loads with its zeros masked again and its Linear layers on
    /// `.automatic` (the compressed kernels where the crossover favours them), computing what the
    /// pruned encoder in memory computed, on the dense GEMM and on CSR alike; an unpruned folder
    /// saved the same way stays dense and unmasked. The compressed layout loads to the same masks,
    /// weights and embeddings from a file that many kept weights smaller.
    func testPrunedFolderLoadsMaskedAndRunsSparse() throws {
        let dir = try Self.materialise("l3_h256_cls_cased")
        let out = dir + "-pruned", plain = dir + "-plain"
        defer { for d in [dir, out, plain] { try? FileManager.default.removeItem(atPath: d) } }
        let (encoder, tok) = try SentenceEncoderFolder.load(dir)
        try SentenceEncoderFolder.save(encoder, to: plain, copyingFrom: dir)
        let (unpruned, _) = try SentenceEncoderFolder.load(plain)
        XCTAssertTrue(unpruned.linears.allSatisfy { $0.weight.mask == nil && $0.execution == .dense })
        XCTAssertNil(try SafeTensors.read(plain + "/model.safetensors").metadata[SentenceEncoderFolder.maskedZerosKey])

        _ = try encoder.prune(PruningRequest(method: .l1, structure: .unstructured, scope: .row, amount: .fraction(0.9)),
                              calibration: nil, compensate: false)
        let texts = try Self.expected("l3_h256_cls_cased").sentences.map(\.text)
        let want = try encoder.embed(texts: texts, tokenizer: tok, batch: 4)
        try SentenceEncoderFolder.save(encoder, to: out, copyingFrom: dir)
        XCTAssertEqual(try SafeTensors.read(out + "/model.safetensors").metadata[SentenceEncoderFolder.maskedZerosKey], "zeros")
        let (loaded, ltok) = try SentenceEncoderFolder.load(out)
        for (a, b) in zip(encoder.linears, loaded.linears) {
            XCTAssertEqual(b.weight.mask, a.weight.mask, "the saved zeros are the masks")
            XCTAssertEqual(b.execution, .automatic)
        }
        for execution in [Execution.automatic, .dense, .sparse] {
            for l in loaded.linears { l.execution = execution }
            let got = try loaded.embed(texts: texts, tokenizer: ltok, batch: 4)
            for (g, w) in zip(got, want) { XCTAssertGreaterThanOrEqual(Self.cosine(g, w), 0.99999, "\(execution)") }
        }

        // the compressed layout: pruned Linear weights as CSR arrays, masks explicit, a smaller file
        // whose blocks' share grows with the kept weights; it loads to the same masks and embeddings
        let compressed = dir + "-compressed"
        defer { try? FileManager.default.removeItem(atPath: compressed) }
        XCTAssertThrowsError(try SentenceEncoderFolder.save(encoder, to: compressed + "-refused", copyingFrom: dir, layout: .pytorchPruned))
        XCTAssertFalse(FileManager.default.fileExists(atPath: compressed + "-refused"))
        try SentenceEncoderFolder.save(encoder, to: compressed, copyingFrom: dir, layout: .compressed)
        let file = try SafeTensors.readAll(compressed + "/model.safetensors")
        XCTAssertEqual(file.metadata[SentenceEncoderFolder.compressedLayoutKey], "compressed")
        XCTAssertNotNil(file.tensors["encoder.layer.0.attention.self.query.weight.values"])
        XCTAssertNil(file.tensors["encoder.layer.0.attention.self.query.weight"])
        func size(_ d: String) throws -> Int { try FileManager.default.attributesOfItem(atPath: d + "/model.safetensors")[.size] as! Int }
        let linearFloats = encoder.linears.reduce(0) { $0 + $1.weight.count }
        let kept = encoder.linears.reduce(0) { $0 + $1.weight.count - ($1.weight.mask?.prunedCount ?? 0) }
        // CSR: 4 + 4 bytes per kept weight and 4 per row pointer, against 4 per weight dense (the
        // metadata adds a few hundred bytes per weight)
        let rowPointers = encoder.linears.reduce(0) { $0 + 4 * ($1.weight.shape[0] + 1) }
        let (plainSize, compressedSize) = (try size(out), try size(compressed))
        XCTAssertGreaterThan(plainSize - compressedSize, 4 * linearFloats - 8 * kept - rowPointers - 512 * encoder.linears.count,
                             "sizes \(plainSize) → \(compressedSize)")
        let (reloaded, rtok) = try SentenceEncoderFolder.load(compressed)
        for (a, b) in zip(encoder.linears, reloaded.linears) {
            XCTAssertEqual(b.weight.mask, a.weight.mask, "the compressed arrays' positions are the masks")
            XCTAssertEqual(b.weight.value.scalars, a.weight.value.scalars)
            XCTAssertEqual(b.execution, .automatic)
        }
        let got = try reloaded.embed(texts: texts, tokenizer: rtok, batch: 4)
        for (g, w) in zip(got, want) { XCTAssertGreaterThanOrEqual(Self.cosine(g, w), 0.99999, "compressed folder") }
    }

    /// A plain BertModel folder (no sentence-transformers files) needs `--pooling`; with it, it
    /// embeds as the sentence-transformers folder does, and saving writes the modules for it.
    func testPlainFolderWithPoolingOverride() throws {
        let name = "l3_h256_cls_cased"
        let dir = try Self.materialise(name)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for f in ["modules.json", "1_Pooling", "sentence_bert_config.json"] { try FileManager.default.removeItem(atPath: dir + "/" + f) }
        XCTAssertThrowsError(try SentenceEncoderFolder.load(dir)) { XCTAssertTrue("\($0)".contains("--pooling"), "\($0)") }
        let text = dir + "-s.txt", out0 = dir + "-e.jsonl"
        defer { for f in [text, out0] { try? FileManager.default.removeItem(atPath: f) } }
        try "Hello, world!\nA second line.\n".write(toFile: text, atomically: true, encoding: .utf8)
        let refused = try runPrunekit(["embed", "--model", dir, "--input", text, "--output", out0])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.err.contains("--pooling"), refused.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out0))
        let embedded = try runPrunekit(["embed", "--model", dir, "--pooling", "cls+normalize", "--input", text, "--output", out0])
        XCTAssertEqual(embedded.status, 0, embedded.err)
        XCTAssertEqual(try String(contentsOfFile: out0, encoding: .utf8).split(separator: "\n").count, 2)
        let (encoder, tok) = try SentenceEncoderFolder.load(dir, pooling: SentencePooling(parsing: "cls+normalize"))
        XCTAssertEqual(tok.maxLength, 64) // no max_seq_length: the smaller of the positions and model_max_length
        let short = try Self.expected(name).sentences.filter { $0.ids.count < 24 }
        XCTAssertGreaterThan(short.count, 8)
        for (v, s) in zip(try encoder.embed(texts: short.map(\.text), tokenizer: tok), short) {
            XCTAssertGreaterThanOrEqual(Self.cosine(v, s.embedding), 0.99999, s.text)
        }
        let out = dir + "-saved"
        defer { try? FileManager.default.removeItem(atPath: out) }
        try SentenceEncoderFolder.save(encoder, to: out, copyingFrom: dir)
        XCTAssertEqual(try SentenceEncoderFolder.pooling(out), SentencePooling(.cls, normalize: true))
        // another pooling over a sentence-transformers folder
        let (maxed, _) = try SentenceEncoderFolder.load(out, pooling: SentencePooling(.max, normalize: false))
        try SentenceEncoderFolder.save(maxed, to: out + "2", copyingFrom: out)
        defer { try? FileManager.default.removeItem(atPath: out + "2") }
        XCTAssertEqual(try SentenceEncoderFolder.pooling(out + "2"), SentencePooling(.max, normalize: false))
    }

    /// Pooling layers' backward against central differences (cls, max, mean; normalised or not).
    func testPoolingGradients() throws {
        var g = TestRNG(11)
        let (b, t, n) = (2, 3, 4)
        for mode in SentencePooling.Mode.allCases {
            for normalize in [false, true] {
                let context = SequenceContext()
                let layer = TokenPooling(SentencePooling(mode, normalize: normalize), context: context)
                let mask: [Float] = [1, 1, 0, 1, 1, 1]
                let x = try Tensor(shape: [b * t, n], scalars: g.floats(b * t * n))
                let w = try Tensor(shape: [b, n], scalars: g.floats(b * n))
                func loss(_ x: Tensor) throws -> Double {
                    try context.set(batch: b, length: t, mask: mask)
                    let y = try layer.forward(x, training: true)
                    return zip(y.scalars, w.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                }
                _ = try loss(x)
                let dx = try XCTUnwrap(layer.backward(w, needInputGradient: true)).scalars
                for i in 0..<x.count {
                    var plus = x.scalars, minus = x.scalars
                    plus[i] += 1e-2; minus[i] -= 1e-2
                    let num = (try loss(Tensor(shape: x.shape, scalars: plus)) - loss(Tensor(shape: x.shape, scalars: minus))) / 2e-2
                    XCTAssertEqual(Double(dx[i]), num, accuracy: 2e-3, "\(mode) normalize \(normalize) entry \(i)")
                }
                // padding never receives a gradient
                for j in 0..<n { XCTAssertEqual(dx[2 * n + j], 0) }
            }
        }
    }

    // MARK: the commands on every configuration

    /// The zero fraction of the block Linear weights of a saved folder, and whether the zeros
    /// form whole groups: all-zero `rows × cols` blocks, or at most n nonzeros in every m along
    /// a row. Entries that are zero in `dense` already (the generator makes a few) are left out.
    static func zeros(_ dir: String, dense: [String: Tensor], rows: Int = 1, cols: Int = 1, nm: (Int, Int)? = nil) throws
        -> (fraction: Double, shaped: Bool) {
        let tensors = try SafeTensors.read(dir + "/model.safetensors").tensors
        var z = 0, total = 0, shaped = true
        for (name, t) in tensors where name.hasPrefix("encoder.layer.") && name.hasSuffix(".weight") && t.rank == 2 {
            let d = dense[name]!.scalars, v = t.scalars, (r, c) = (t.shape[0], t.shape[1])
            for i in v.indices where d[i] != 0 { total += 1; if v[i] == 0 { z += 1 } }
            if let (n, m) = nm {
                for i in 0..<r {
                    for g in stride(from: 0, to: c, by: m) where v[(i * c + g)..<(i * c + g + m)].filter({ $0 != 0 }).count > n { shaped = false }
                }
            } else if rows * cols > 1 {
                for bi in stride(from: 0, to: r, by: rows) {
                    for bj in stride(from: 0, to: c, by: cols) {
                        var zero = 0, live = 0
                        for i in bi..<min(bi + rows, r) {
                            for j in bj..<min(bj + cols, c) where d[i * c + j] != 0 { live += 1; if v[i * c + j] == 0 { zero += 1 } }
                        }
                        if zero != 0 && zero != live { shaped = false }
                    }
                }
            }
        }
        return (Double(z) / Double(max(total, 1)), shaped)
    }

    /// embed, prune (every structure, every method it takes: all of them on the 3-layer model,
    /// fewer on the larger ones, which a debug build runs slowly), eval against the dense folder,
    /// and finetune, through the CLI.
    func testCommandsOnEveryConfiguration() throws {
        let work = NSTemporaryDirectory() + "bertfam-cli-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let all: [(String, [String])] = [("heads", ["l1", "taylor", "wanda"]), ("neurons", ["l1", "taylor", "wanda"]),
                                          ("unstructured", ["l1", "wanda", "taylor", "sparsegpt"]), ("2:4", ["l1", "wanda", "sparsegpt"]),
                                          ("block:4x4", ["l1", "wanda", "taylor"])]
        let plan: [String: [(String, String)]] = [
            "l3_h256_cls_cased": all.flatMap { s, ms in ms.map { (s, $0) } },
            "l4_h768_max": [("block:4x4", "l1")],
            "l12_h384_mean": [("heads", "taylor")], // the slowest in a debug build: one run
        ]
        for name in Self.names {
            let dir = try Self.materialise(name)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let e = try Self.expected(name)
            let text = work + "/\(name).txt"
            try (e.sentences.map { $0.text.replacingOccurrences(of: "\n", with: " ") }.joined(separator: "\n") + "\n")
                .write(toFile: text, atomically: true, encoding: .utf8)
            // embed
            let out = work + "/\(name).jsonl"
            let r = try runPrunekit(["embed", "--model", dir, "--input", text, "--output", out, "--json"])
            XCTAssertEqual(r.status, 0, r.err)
            let lines = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n")
            XCTAssertEqual(lines.count, e.sentences.count)
            let first = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
            let v = try XCTUnwrap(first["embedding"] as? [Double]).map(Float.init)
            XCTAssertGreaterThanOrEqual(Self.cosine(v, e.sentences[0].embedding), 0.99999, name)
            // prune
            let (dense, _) = try SentenceEncoderFolder.load(dir)
            let denseState = dense.stateDict
            var lastPruned = ""
            for (k, (structure, method)) in plan[name]!.enumerated() {
                let pruned = work + "/\(name)-p\(k)"
                var args = ["prune", "--model", dir, "--structure", structure, "--method", method, "--amount", "0.5", "--out", pruned, "--json"]
                if method != "l1" { args += ["--calibration", text] }
                let p = try runPrunekit(args)
                XCTAssertEqual(p.status, 0, "\(name) \(structure) \(method): \(p.err)")
                guard p.status == 0 else { continue }
                let (small, _) = try SentenceEncoderFolder.load(pruned)
                XCTAssertEqual(small.pooling, dense.pooling)
                switch structure {
                case "heads": XCTAssertLessThan(small.heads.reduce(0, +), dense.heads.reduce(0, +), "\(name) \(method)")
                case "neurons": XCTAssertLessThan(small.intermediateSizes.reduce(0, +), dense.intermediateSizes.reduce(0, +), "\(name) \(method)")
                case "2:4":
                    let z = try Self.zeros(pruned, dense: denseState, nm: (2, 4))
                    XCTAssertTrue(z.shaped, "\(name) 2:4 \(method)")
                    XCTAssertEqual(z.fraction, 0.5, accuracy: 0.01)
                case "block:4x4":
                    let z = try Self.zeros(pruned, dense: denseState, rows: 4, cols: 4)
                    XCTAssertTrue(z.shaped, "\(name) block \(method)")
                    XCTAssertEqual(z.fraction, 0.5, accuracy: 0.02)
                default:
                    XCTAssertEqual(try Self.zeros(pruned, dense: denseState).fraction, 0.5, accuracy: 0.01, "\(name) unstructured \(method)")
                }
                lastPruned = pruned
            }
            // distil the last pruned folder for two epochs, then eval against the dense folder
            let tuned = work + "/\(name)-tuned"
            let ft = try runPrunekit(["finetune", "--model", lastPruned, "--teacher", dir, "--input", text, "--epochs", "2", "--batch", "4",
                                      "--lr", "3e-4", "--out", tuned, "--json"])
            XCTAssertEqual(ft.status, 0, ft.err)
            let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(ft.out.split(separator: "\n").last!.utf8)) as? [String: Any])
            let losses = try XCTUnwrap(report["epoch_losses"] as? [Double])
            XCTAssertLessThan(losses[1], losses[0], "\(name): distillation loss \(losses)")
            let ev = try runPrunekit(["eval", "--model", tuned, "--teacher", dir, "--input", text, "--json"])
            XCTAssertEqual(ev.status, 0, ev.err)
            let after = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(ev.out.split(separator: "\n").last!.utf8)) as? [String: Any])
            let cos = try XCTUnwrap(after["mean_cosine"] as? Double)
            print("\(name): distillation losses \(losses), mean cosine to the dense model \(cos)")
            XCTAssertGreaterThan(cos, 0.5, name)
        }
    }

    // MARK: refusals

    func testRefusalsNameWhatIsWrong() throws {
        let name = "l3_h256_cls_cased"
        let dir = try Self.materialise(name)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let configFile = dir + "/config.json"
        let original = try Data(contentsOf: URL(fileURLWithPath: configFile))
        func withConfig(_ edit: (inout [String: Any]) -> Void, expect: [String]) throws {
            var c = try XCTUnwrap(JSONSerialization.jsonObject(with: original) as? [String: Any])
            edit(&c)
            try JSONSerialization.data(withJSONObject: c).write(to: URL(fileURLWithPath: configFile))
            XCTAssertThrowsError(try SentenceEncoderFolder.load(dir)) { error in
                let line = "\(error)"
                XCTAssertFalse(line.contains("\n"), line)
                for e in expect { XCTAssertTrue(line.contains(e), "«\(line)» lacks «\(e)»") }
            }
        }
        for type in ["roberta", "distilbert", "gpt2"] {
            try withConfig({ $0["model_type"] = type }, expect: ["model_type '\(type)' is not supported"])
        }
        // through the CLI: one line, nothing written
        let out = dir + "-out"
        let r = try runPrunekit(["prune", "--model", dir, "--structure", "heads", "--amount", "0.5", "--out", out])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertEqual(r.err.split(separator: "\n").count, 1, r.err)
        XCTAssertTrue(r.err.contains("model_type 'gpt2'"), r.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        try withConfig({ $0["hidden_size"] = 384 }, expect: ["hidden_size = 384", "embeddings.word_embeddings.weight"])
        try withConfig({ $0["vocab_size"] = 99 }, expect: ["vocab_size = 99", "embeddings.word_embeddings.weight"])
        try withConfig({ $0["max_position_embeddings"] = 128 }, expect: ["max_position_embeddings = 128", "position_embeddings"])
        try withConfig({ $0["type_vocab_size"] = 1 }, expect: ["type_vocab_size = 1", "token_type_embeddings"])
        try withConfig({ $0["num_hidden_layers"] = 4 }, expect: ["num_hidden_layers = 4", "encoder.layer.3."])
        try withConfig({ $0["num_hidden_layers"] = 2 }, expect: ["num_hidden_layers = 2", "encoder.layer.2."])
        try withConfig({ $0["num_attention_heads"] = 3 }, expect: ["hidden_size 256 is not a multiple of num_attention_heads 3"])
        // a pruned folder keeps fewer FFN neurons than the config says, never more
        try withConfig({ $0["intermediate_size"] = 512 }, expect: ["intermediate_size = 512", "intermediate.dense.weight"])
        try withConfig({ $0["hidden_act"] = "quick_gelu" }, expect: ["hidden_act 'quick_gelu'"])
        try withConfig({ $0["position_embedding_type"] = "relative_key" }, expect: ["position_embedding_type"])
        try original.write(to: URL(fileURLWithPath: configFile))
        _ = try SentenceEncoderFolder.load(dir)
        // pooling modules PruneKit does not implement
        let poolFile = dir + "/1_Pooling/config.json"
        let pool = try Data(contentsOf: URL(fileURLWithPath: poolFile))
        try Data(#"{"pooling_mode_mean_tokens": true, "pooling_mode_max_tokens": true}"#.utf8).write(to: URL(fileURLWithPath: poolFile))
        XCTAssertThrowsError(try SentenceEncoderFolder.load(dir)) { XCTAssertTrue("\($0)".contains("combined"), "\($0)") }
        try Data(#"{"pooling_mode_mean_sqrt_len_tokens": true}"#.utf8).write(to: URL(fileURLWithPath: poolFile))
        XCTAssertThrowsError(try SentenceEncoderFolder.load(dir)) { XCTAssertTrue("\($0)".contains("mean_sqrt_len"), "\($0)") }
        try pool.write(to: URL(fileURLWithPath: poolFile))
        let modulesFile = dir + "/modules.json"
        try Data(#"[{"idx": 0, "path": "", "type": "sentence_transformers.models.Transformer"}, {"idx": 1, "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}, {"idx": 2, "path": "2_Dense", "type": "sentence_transformers.models.Dense"}]"#.utf8)
            .write(to: URL(fileURLWithPath: modulesFile))
        XCTAssertThrowsError(try SentenceEncoderFolder.load(dir)) { XCTAssertTrue("\($0)".contains("models.Dense"), "\($0)") }
    }
}
