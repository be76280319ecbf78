import XCTest
import CPruneKernels
@testable import PruneKit

/// Backward passes of the encoder pieces against finite differences and references.
final class BertGradientTests: XCTestCase {
    /// loss = Σ r ⊙ embed(ids): every Linear weight and bias against central differences.
    func testEncoderGradientsByFiniteDifferences() throws {
        let e = try tinyEncoder(seed: 3)
        e.attention(1).headMask = [1, 0.5]
        let ids: [[Int32]] = [[1, 5, 7, 2, 0, 0], [1, 9, 3, 11, 4, 2]]
        let mask: [[Float]] = [[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]]
        var rng = TestRNG(90)
        let r = rng.floats(2 * 8)
        func loss() throws -> Double {
            zip(try e.embed(ids: ids, mask: mask).scalars, r).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        _ = try e.embed(ids: ids, mask: mask, training: true)
        try e.backward(try Tensor(shape: [2, 8], scalars: r))
        let eps: Float = 1e-2
        var checked = 0
        let trainable = e.model.parameters.filter(\.isTrainable)
        XCTAssertEqual(trainable.count, 24 + 10, "the Linear layers and the five LayerNorms; the tables are fixed")
        for p in trainable {
            let analytic = p.grad.scalars
            for _ in 0..<4 {
                let i = rng.int(p.count)
                let numeric = try centralDifference(p, i, eps: eps, loss)
                XCTAssertEqual(Double(analytic[i]), numeric, accuracy: 2e-3 + 2e-2 * abs(numeric), "parameter of shape \(p.shape) [\(i)]")
                checked += 1
            }
        }
        XCTAssertEqual(checked, 4 * 34)
    }

    func testBackwardKernelsAgainstReferencePieces() throws {
        var rng = TestRNG(91)
        // GELU derivative against central differences of pk_gelu_f32
        let x = rng.floats(64, -4, 4), ones = [Float](repeating: 1, count: 64)
        var dx = [Float](repeating: 0, count: 64)
        XCTAssertEqual(pk_gelu_backward_f32(64, x, ones, &dx), PK_OK)
        for i in 0..<64 {
            var yp: Float = 0, ym: Float = 0
            var xp = x[i] + 1e-2, xm = x[i] - 1e-2
            XCTAssertEqual(pk_gelu_f32(1, &xp, &yp), PK_OK)
            XCTAssertEqual(pk_gelu_f32(1, &xm, &ym), PK_OK)
            XCTAssertEqual(dx[i], (yp - ym) / 2e-2, accuracy: 1e-3, "gelu'(\(x[i]))")
        }
        // layer norm: Σ dy·y changes like dx predicts
        let (rows, n) = (3, 10)
        let v = rng.floats(rows * n, -2, 2), gamma = rng.floats(n, 0.5, 1.5), beta = rng.floats(n), dy = rng.floats(rows * n)
        var g = [Float](repeating: 0, count: rows * n)
        XCTAssertEqual(pk_layernorm_backward_f32(Int64(rows), Int64(n), v, gamma, 1e-12, dy, &g), PK_OK)
        func f(_ x: [Float]) -> Double {
            var y = [Float](repeating: 0, count: rows * n)
            XCTAssertEqual(pk_ref_layernorm_f32(Int64(rows), Int64(n), x, Int64(n), gamma, beta, 1e-12, &y, Int64(n)), PK_OK)
            return zip(y, dy).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        for i in [0, 7, 15, 29] {
            var p = v, m = v
            p[i] += 1e-2
            m[i] -= 1e-2
            XCTAssertEqual(Double(g[i]), (f(p) - f(m)) / 2e-2, accuracy: 2e-3, "layernorm dx[\(i)]")
        }
        var d1 = dx, d2 = dx, d3 = dx
        XCTAssertEqual(pk_attention_backward_f32(1, 5000, 1, 1, x, x, x, 1, nil, nil, x, &d1, &d2, &d3), PK_ERR_SHAPE)
    }

    /// Distillation lowers the student's loss and keeps its masks.
    func testDistillationLowersTheLossWithMasksFixed() throws {
        let teacher = try tinyEncoder(seed: 5), student = try tinyEncoder(seed: 5)
        try student.prune(PruningRequest(method: .l1, structure: .unstructured, scope: .row, amount: 0.5), calibration: nil)
        let masks = student.linears.map { $0.weight.mask!.kept }
        let (tok, sentences) = try tinySentences(48, seed: 6)
        let r = try SentenceDistillation.fineTune(student: student, teacher: teacher, tokenizer: tok, sentences: sentences,
                                                  config: .init(epochs: 12, batchSize: 8, learningRate: 3e-3, cosineDecay: false))
        XCTAssertLessThan(r.epochLosses.last!, 0.5 * r.epochLosses.first!, "losses \(r.epochLosses)")
        for (l, m) in zip(student.linears, masks) {
            XCTAssertEqual(l.weight.mask!.kept, m)
            XCTAssertTrue(zip(l.weight.value.scalars, m).allSatisfy { $0.1 || $0.0 == 0 }, "masked weights stay 0")
        }
    }
}
