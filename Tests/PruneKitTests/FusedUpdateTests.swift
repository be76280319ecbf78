import XCTest
import CPruneKernels
@testable import PruneKit

/// The fused weight-gradient + optimizer kernels against the unfused composition
/// (gradient GEMM, then pk_update_f32), and the masking invariants of both.
final class FusedUpdateTests: XCTestCase {
    func describe(_ kind: pk_update_kind, decoupled: Bool = false) -> pk_update_desc {
        var u = pk_update_desc()
        u.kind = kind; u.lr = 0.01; u.weight_decay = 0.02; u.momentum = 0.9; u.nesterov = 1
        u.beta1 = 0.9; u.beta2 = 0.999; u.eps = 1e-8; u.step = 3; u.decoupled = decoupled ? 1 : 0
        return u
    }

    func testLinearFusedEqualsUnfused() {
        var rng = TestRNG(31)
        for (o, i, b) in [(23, 37, 5), (300, 784, 128), (64, 100, 600), (40, 30, 2000)] {
            for (kind, dec) in [(PK_UPDATE_SGD, false), (PK_UPDATE_ADAM, false), (PK_UPDATE_ADAM, true)] {
                let dy = rng.floats(b * o), x = rng.floats(b * i), mask = rng.mask(o * i, keep: 0.3)
                var w0 = rng.floats(o * i)
                for k in 0..<(o * i) where mask[k] == 0 { w0[k] = 0 }
                let m0 = rng.floats(o * i, -0.1, 0.1), v0 = rng.floats(o * i, 0, 0.1)
                // fused
                var w1 = w0, m1 = m0, v1 = v0
                var g1 = [Float](repeating: .nan, count: o * i)
                let s1 = w1.withUnsafeMutableBufferPointer { W in m1.withUnsafeMutableBufferPointer { M in v1.withUnsafeMutableBufferPointer { V in
                    var u = describe(kind, decoupled: dec)
                    u.w = W.baseAddress; u.m = M.baseAddress; u.v = V.baseAddress; u.ld = Int64(i)
                    return pk_linear_weight_update_f32(Int64(o), Int64(i), Int64(b), dy, Int64(o), x, Int64(i), mask, Int64(i), &u, &g1, Int64(i))
                } } }
                XCTAssertEqual(s1, PK_OK)
                // unfused
                var g2 = [Float](repeating: .nan, count: o * i)
                XCTAssertEqual(pk_gemm_masked_tn_f32(Int64(o), Int64(i), Int64(b), 1, dy, Int64(o), x, Int64(i), mask, Int64(i), 0, &g2, Int64(i)), PK_OK)
                var w2 = w0, m2 = m0, v2 = v0
                let s2 = w2.withUnsafeMutableBufferPointer { W in m2.withUnsafeMutableBufferPointer { M in v2.withUnsafeMutableBufferPointer { V in
                    var u = describe(kind, decoupled: dec)
                    u.w = W.baseAddress; u.m = M.baseAddress; u.v = V.baseAddress
                    return pk_update_f32(Int64(o * i), &u, mask, g2)
                } } }
                XCTAssertEqual(s2, PK_OK)
                let label = "\(o)×\(i) batch \(b) kind \(kind.rawValue) decoupled \(dec)"
                if b <= 256 {
                    // same blocking: the very same bits (up to the sign of zero gradients)
                    assertClose(w1, w2, rtol: 0, atol: 0, label + " weights")
                    assertClose(m1, m2, rtol: 0, atol: 0, label + " first moment")
                    assertClose(v1, v2, rtol: 0, atol: 0, label + " second moment")
                } else {
                    assertClose(w1, w2, rtol: 1e-5, atol: 1e-6, label + " weights")
                    assertClose(m1, m2, rtol: 1e-4, atol: 2e-6 * Float(b).squareRoot(), label + " first moment")
                    assertClose(v1, v2, rtol: 1e-4, atol: 1e-7 * Float(b), label + " second moment")
                }
                assertClose(g1, g2, rtol: 1e-5, atol: 1e-5 * Float(b).squareRoot(), label + " gradient")
                for k in 0..<(o * i) where mask[k] == 0 {
                    XCTAssertEqual(w1[k].bitPattern, 0, label + " masked weight")
                    XCTAssertEqual(m1[k].bitPattern, m0[k].bitPattern, label + " masked first moment")
                    XCTAssertEqual(v1[k].bitPattern, v0[k].bitPattern, label + " masked second moment")
                    XCTAssertEqual(g1[k].bitPattern, 0, label + " masked gradient")
                }
            }
        }
    }

    func testFusedUpdateIsThreadCountIndependent() {
        var rng = TestRNG(32)
        let (o, i, b) = (130, 257, 300)
        let dy = rng.floats(b * o), x = rng.floats(b * i), mask = rng.mask(o * i, keep: 0.5)
        func run(_ t: Int) -> [Float] {
            var w = [Float](repeating: 0.5, count: o * i), m = [Float](repeating: 0, count: o * i), v = m
            withThreads(t) {
                w.withUnsafeMutableBufferPointer { W in m.withUnsafeMutableBufferPointer { M in v.withUnsafeMutableBufferPointer { V in
                    var u = describe(PK_UPDATE_ADAM)
                    u.w = W.baseAddress; u.m = M.baseAddress; u.v = V.baseAddress; u.ld = Int64(i)
                    XCTAssertEqual(pk_linear_weight_update_f32(Int64(o), Int64(i), Int64(b), dy, Int64(o), x, Int64(i), mask, Int64(i), &u, nil, 0), PK_OK)
                } } }
            }
            return w
        }
        XCTAssertEqual(run(1).map(\.bitPattern), run(2).map(\.bitPattern))
    }

    func testConvFusedEqualsUnfused() {
        var rng = TestRNG(33)
        for n in [4, 1300] {
            let (c, h, w, oc, k) = (3, 10, 10, 8, 3)
            let x = rng.floats(n * c * h * w), wt = rng.floats(oc * c * k * k), dy = rng.floats(n * oc * 64)
            let mask = rng.mask(oc * c * k * k, keep: 0.5)
            var w0 = wt
            for q in 0..<w0.count where mask[q] == 0 { w0[q] = 0 }
            // non-zero state: compared with the unfused run, and masked entries must keep it
            let m0 = rng.floats(wt.count, -0.1, 0.1), v0 = rng.floats(wt.count, 0, 0.1)
            var w1 = w0, m1 = m0, v1 = v0
            var dx1 = [Float](repeating: 0, count: x.count)
            let s1 = w1.withUnsafeMutableBufferPointer { W in m1.withUnsafeMutableBufferPointer { M in v1.withUnsafeMutableBufferPointer { V in
                var u = describe(PK_UPDATE_ADAM)
                u.w = W.baseAddress; u.m = M.baseAddress; u.v = V.baseAddress; u.ld = Int64(c * k * k)
                return pk_conv2d_backward_update_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(oc), Int64(k), Int64(k), 1,
                                                     x, W.baseAddress, mask, dy, nil, nil, &dx1, &u)
            } } }
            XCTAssertEqual(s1, PK_OK)
            var g = [Float](repeating: 0, count: wt.count), dx2 = dx1
            XCTAssertEqual(pk_conv2d_backward_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(oc), Int64(k), Int64(k), 1, x, w0, mask, dy, &g, nil, &dx2), PK_OK)
            var w2 = w0, m2 = m0, v2 = v0
            w2.withUnsafeMutableBufferPointer { W in m2.withUnsafeMutableBufferPointer { M in v2.withUnsafeMutableBufferPointer { V in
                var u = describe(PK_UPDATE_ADAM)
                u.w = W.baseAddress; u.m = M.baseAddress; u.v = V.baseAddress
                XCTAssertEqual(pk_update_f32(Int64(wt.count), &u, mask, g), PK_OK)
            } } }
            assertClose(w1, w2, rtol: 0, atol: 0, "conv weights n=\(n)")
            XCTAssertEqual(dx1.map(\.bitPattern), dx2.map(\.bitPattern), "dx uses the weights before the step")
            assertClose(m1, m2, rtol: 0, atol: 0, "conv first moment n=\(n)")
            assertClose(v1, v2, rtol: 0, atol: 0, "conv second moment n=\(n)")
            for q in 0..<mask.count where mask[q] == 0 {
                XCTAssertEqual(w1[q].bitPattern, 0, "masked weight n=\(n)")
                XCTAssertEqual(m1[q].bitPattern, m0[q].bitPattern, "masked first moment n=\(n)")
                XCTAssertEqual(v1[q].bitPattern, v0[q].bitPattern, "masked second moment n=\(n)")
            }
        }
    }

    func testTrainingWithAndWithoutFusionAgrees() throws {
        var g = SeededGenerator(seed: 8)
        let x = Tensor.uniform([64, 784], -1, 1, rng: &g)
        let labels = (0..<64).map { Int32($0 % 10) }
        let data = try LabeledImages(images: x, labels: labels)
        for arch in ["mlp", "cnn"] {
            var finals: [[Tensor]] = []
            for fused in [true, false] {
                let m = try Model.make(arch, seed: 3)
                let p0 = m.parameters[0]
                try p0.setMask(Mask(shape: p0.shape, kept: (0..<p0.count).map { $0 % 3 != 0 }))
                _ = try Trainer.train(m, data: data, optimizer: try AdamW(weightDecay: 0.05),
                                      config: TrainingConfig(epochs: 2, batchSize: 16, seed: 1, fusedUpdates: fused))
                // the flag is really honoured: only the unfused run writes weight gradients
                let weightGrads = m.prunableWeights.map { $0.parameter.grad.scalars }
                if fused { XCTAssertTrue(weightGrads.allSatisfy { $0.allSatisfy { $0 == 0 } }, "\(arch): fused, no gradient written") }
                else { XCTAssertTrue(weightGrads.allSatisfy { $0.contains { $0 != 0 } }, "\(arch): unfused, gradients written") }
                finals.append(m.parameters.map(\.value))
            }
            for (a, b) in zip(finals[0], finals[1]) { assertClose(a.scalars, b.scalars, rtol: 1e-5, atol: 1e-6, "\(arch) fused vs unfused") }
        }
    }
}
