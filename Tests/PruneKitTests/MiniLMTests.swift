import XCTest
import CPruneKernels
@testable import PruneKit

/// The transformer pieces against their references, and all-MiniLM-L6-v2 against
/// sentence-transformers (fixtures from scripts/make_minilm_fixtures.py; the model folder comes
/// from scripts/get-minilm.sh, which the test command runs).
final class MiniLMTests: XCTestCase {
    func testTransformerKernelsAgainstReference() throws {
        var rng = TestRNG(80)
        let (rows, n) = (37, 48)
        let x = rng.floats(rows * n, -3, 3), gamma = rng.floats(n), beta = rng.floats(n)
        var y = [Float](repeating: .nan, count: rows * n), want = y
        XCTAssertEqual(pk_layernorm_f32(Int64(rows), Int64(n), x, Int64(n), gamma, beta, 1e-12, &y, Int64(n)), PK_OK)
        XCTAssertEqual(pk_ref_layernorm_f32(Int64(rows), Int64(n), x, Int64(n), gamma, beta, 1e-12, &want, Int64(n)), PK_OK)
        assertClose(y, want, rtol: 1e-5, atol: 1e-5, "layernorm")
        XCTAssertEqual(pk_gelu_f32(Int64(x.count), x, &y), PK_OK)
        XCTAssertEqual(pk_ref_gelu_f32(Int64(x.count), x, &want), PK_OK)
        assertClose(y, want, rtol: 1e-5, atol: 1e-6, "gelu")
        // attention: 3 sequences of 11 tokens, 4 heads of 8, padding in two of them, one head off
        let (b, t, h, d) = (3, 11, 4, 8)
        let q = rng.floats(b * t * h * d), k = rng.floats(b * t * h * d), v = rng.floats(b * t * h * d)
        var mask = [Float](repeating: 1, count: b * t)
        for s in 7..<t { mask[t + s] = 0 }
        for s in 2..<t { mask[2 * t + s] = 0 }
        let heads: [Float] = [1, 0, 1, 0.5]
        for (m, hm) in [(mask, heads), ([Float](repeating: 1, count: b * t), [Float](repeating: 1, count: h))] {
            var o1 = [Float](repeating: .nan, count: b * t * h * d), o2 = o1
            let w = Int64(h * d)
            XCTAssertEqual(pk_attention_f32(Int64(b), Int64(t), Int64(h), Int64(d), q, k, v, w, m, hm, &o1, w), PK_OK)
            XCTAssertEqual(pk_ref_attention_f32(Int64(b), Int64(t), Int64(h), Int64(d), q, k, v, w, m, hm, &o2, w), PK_OK)
            assertClose(o1, o2, rtol: 1e-5, atol: 1e-6, "attention")
            // 1 and 3 threads explicitly (the default may be 1), output poisoned, status asserted
            for threads in [1, 3] {
                let one = withThreads(threads) { () -> [Float] in
                    var o = [Float](repeating: .nan, count: b * t * h * d)
                    XCTAssertEqual(pk_attention_f32(Int64(b), Int64(t), Int64(h), Int64(d), q, k, v, w, m, hm, &o, w), PK_OK)
                    return o
                }
                XCTAssertEqual(one.map(\.bitPattern), o1.map(\.bitPattern), "attention: \(threads) threads")
            }
        }
        XCTAssertEqual(pk_attention_f32(1, 5000, 1, 1, q, k, v, 1, nil, nil, &y, 1), PK_ERR_SHAPE)
        var ids: [Int32] = [0, 7]
        XCTAssertEqual(pk_bert_embeddings_f32(1, 2, 1, &ids, 5, x, 4, x, x, &y), PK_ERR_ARG, "id outside the vocabulary")
    }

    /// Attention on every ISA path against the reference at the shapes its fast path specialises
    /// (head widths 32 and 64 with the sums in registers, other multiples of 8, widths that are not,
    /// sequences shorter and longer than a 32-key block, one sequence wholly padded, a head off),
    /// and the same bits for 1 and 2 threads.
    func testAttentionEveryPathAgainstReference() throws {
        var rng = TestRNG(81)
        for (b, t, h, d) in [(2, 5, 2, 32), (3, 40, 3, 32), (2, 70, 2, 64), (2, 33, 2, 16), (2, 9, 3, 12), (1, 100, 1, 7)] {
            let n = b * t * h * d, w = Int64(h * d)
            let q = rng.floats(n, -2, 2), k = rng.floats(n, -2, 2), v = rng.floats(n)
            var mask = [Float](repeating: 1, count: b * t)
            for s in (t / 2)..<t { mask[s] = 0 } // the first sequence half padded
            if b > 2 { for s in 0..<t { mask[2 * t + s] = 0 } } // the third wholly padded
            var hm = [Float](repeating: 1, count: h)
            if h > 1 { hm[1] = 0.25 }
            var want = [Float](repeating: .nan, count: n)
            XCTAssertEqual(pk_ref_attention_f32(Int64(b), Int64(t), Int64(h), Int64(d), q, k, v, w, mask, hm, &want, w), PK_OK)
            try forEachISA { isa in
                var got: [[Float]] = []
                for threads in [1, 2] {
                    got.append(withThreads(threads) { () -> [Float] in
                        var o = [Float](repeating: .nan, count: n)
                        XCTAssertEqual(pk_attention_f32(Int64(b), Int64(t), Int64(h), Int64(d), q, k, v, w, mask, hm, &o, w), PK_OK)
                        return o
                    })
                }
                let label = "\(isa) b \(b) t \(t) h \(h) d \(d)"
                assertClose(got[0], want, rtol: 1e-5, atol: 2e-6, label)
                XCTAssertEqual(got[0].map(\.bitPattern), got[1].map(\.bitPattern), "\(label): 1 vs 2 threads")
            }
        }
        // padding keys whose scores lie far above every real key's (q·k/√d ≈ 141): still ignored
        let (t, d) = (9, 8)
        let q = [Float](repeating: 1, count: t * d), v = rng.floats(t * d)
        var k = rng.floats(t * d, -0.1, 0.1)
        var mask = [Float](repeating: 1, count: t)
        for s in 6..<t { mask[s] = 0; for j in 0..<d { k[s * d + j] = 50 } }
        var want = [Float](repeating: .nan, count: t * d)
        XCTAssertEqual(pk_ref_attention_f32(1, Int64(t), 1, Int64(d), q, k, v, Int64(d), mask, nil, &want, Int64(d)), PK_OK)
        try forEachISA { isa in
            var o = [Float](repeating: .nan, count: t * d)
            XCTAssertEqual(pk_attention_f32(1, Int64(t), 1, Int64(d), q, k, v, Int64(d), mask, nil, &o, Int64(d)), PK_OK)
            assertClose(o, want, rtol: 1e-5, atol: 2e-6, "\(isa): large masked scores")
        }
    }

    func modelFolder() throws -> String {
        let env = ProcessInfo.processInfo.environment["PRUNEKIT_MINILM"]
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let dir = env ?? repo.appendingPathComponent("models/all-MiniLM-L6-v2").path
        guard FileManager.default.fileExists(atPath: dir + "/model.safetensors") else {
            throw XCTSkip("no MiniLM model in \(dir): run scripts/get-minilm.sh")
        }
        return dir
    }

    struct Fixture: Decodable {
        struct Sentence: Decodable { let text: String; let ids: [Int32]; let embedding: [Float] }
        let sentences: [Sentence]
    }

    func fixture() throws -> Fixture {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/minilm_sentences.json")
        return try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
    }

    func testTokenizerMatchesHuggingFace() throws {
        let dir = try modelFolder()
        let tok = try WordPieceTokenizer(vocabularyFile: dir + "/vocab.txt", maxLength: 256)
        let f = try fixture()
        XCTAssertGreaterThanOrEqual(f.sentences.count, 50)
        for s in f.sentences { XCTAssertEqual(tok.encode(s.text), s.ids, "«\(s.text.prefix(60))»") }
    }

    func testEmbeddingsMatchSentenceTransformers() throws {
        let dir = try modelFolder()
        let (encoder, tok) = try SentenceEncoderFolder.load(dir)
        let f = try fixture()
        var worst = 1.0
        for chunk in stride(from: 0, to: f.sentences.count, by: 8) {
            let part = Array(f.sentences[chunk..<min(chunk + 8, f.sentences.count)])
            let (ids, mask) = tok.batch(part.map(\.text))
            let e = try encoder.embed(ids: ids, mask: mask)
            for (i, s) in part.enumerated() {
                let row = Array(e.scalars[(i * 384)..<((i + 1) * 384)])
                let dot = zip(row, s.embedding).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                let n1 = row.reduce(0.0) { $0 + Double($1) * Double($1) }, n2 = s.embedding.reduce(0.0) { $0 + Double($1) * Double($1) }
                let cos = dot / (n1.squareRoot() * n2.squareRoot())
                worst = min(worst, cos)
                XCTAssertGreaterThanOrEqual(cos, 0.99999, "«\(s.text.prefix(60))»")
            }
        }
        print("MiniLM: lowest cosine to sentence-transformers over \(f.sentences.count) sentences: \(worst)")
    }

    /// Removing heads physically computes what masking them (head mask 0) computes; the pruned
    /// folder saves and loads back with its smaller shapes; 2:4 masks hold 2 of every 4.
    func testPruningHeadsNeuronsAndNM() throws {
        let dir = try modelFolder()
        let (encoder, tok) = try SentenceEncoderFolder.load(dir)
        let (ids, mask) = tok.batch(["Pruning heads should not change what the kept heads compute.", "Short one."])
        let small = try encoder.copy()
        try small.prune(PruningRequest(method: .l1, structure: .heads, scope: .global, amount: 0.5), calibration: nil)
        XCTAssertEqual(small.heads.reduce(0, +), 36)
        XCTAssertTrue(small.heads.allSatisfy { $0 >= 1 })
        // the same heads masked in the dense encoder
        let (masked, _) = try SentenceEncoderFolder.load(dir)
        for i in 0..<6 {
            let l = masked.attention(i), s = small.attention(i)
            let keptRows = Set((0..<s.query.outFeatures).map { r in
                // which original head each kept row came from: match rows of the query weight
                let row = Array(s.query.weight.value.scalars[(r * 384)..<((r + 1) * 384)])
                return (0..<l.query.outFeatures).first { Array(l.query.weight.value.scalars[($0 * 384)..<(($0 + 1) * 384)]) == row }! / 32
            })
            l.headMask = (0..<l.heads).map { keptRows.contains($0) ? 1 : 0 }
        }
        assertClose(try small.embed(ids: ids, mask: mask).scalars, try masked.embed(ids: ids, mask: mask).scalars,
                    rtol: 1e-4, atol: 1e-5, "removed heads = masked heads")
        let out = NSTemporaryDirectory() + "minilm-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: out) }
        try SentenceEncoderFolder.save(small, to: out, copyingFrom: dir)
        let (back, _) = try SentenceEncoderFolder.load(out)
        XCTAssertEqual(back.heads, small.heads)
        XCTAssertEqual(try back.embed(ids: ids, mask: mask).scalars, try small.embed(ids: ids, mask: mask).scalars)
        try back.prune(PruningRequest(method: .l1, structure: .neurons, scope: .layer, amount: 0.5), calibration: nil)
        XCTAssertEqual(back.intermediateSizes, [Int](repeating: 768, count: 6))
        let stats = try encoder.calibrate(tokenizer: tok, sentences: ["Calibration text one.", "And two."])
        try encoder.prune(PruningRequest(method: .wanda, structure: .nm(2, 4), scope: .layer, amount: 0.5), calibration: stats)
        for l in encoder.linears {
            let k = l.weight.mask!.kept
            for g in stride(from: 0, to: k.count, by: 4) { XCTAssertLessThanOrEqual(k[g..<(g + 4)].filter { $0 }.count, 2) }
        }
        XCTAssertThrowsError(try encoder.prune(PruningRequest(method: .wanda, structure: .unstructured, scope: .row, amount: 0.5),
                                               calibration: nil))
    }
}
