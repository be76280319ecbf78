import XCTest
import CPruneKernels
@testable import PruneKit

/// The layers graphs are built from (issue 14): C kernels against their naive references at 1 and
/// 2 threads, and every layer's backward against central finite differences.
final class GraphLayerTests: XCTestCase {
    // MARK: kernels against references

    func testBatchNormKernelsMatchReference() {
        var rng = TestRNG(21)
        for (n, c, s) in [(4, 3, 1), (5, 7, 9), (3, 16, 64), (2, 1, 1)] {
            let count = n * c * s
            let x = rng.floats(count, -2, 3), gamma = rng.floats(c, 0.5, 1.5), beta = rng.floats(c), dy = rng.floats(count)
            for training in [1, 0] as [Int32] {
                for threads in [1, 2] {
                    var rm1 = rng.floats(c, -0.1, 0.1), rv1 = rng.floats(c, 0.5, 2)
                    var rm2 = rm1, rv2 = rv1
                    var y1 = [Float](repeating: .nan, count: count), y2 = y1
                    var m1 = [Float](repeating: .nan, count: c), i1 = m1, m2 = m1, i2 = m1
                    withThreads(threads) {
                        XCTAssertEqual(pk_batchnorm_forward_f32(Int64(n), Int64(c), Int64(s), x, gamma, beta, 1e-5, training, 0.1,
                                                                &rm1, &rv1, &y1, &m1, &i1), PK_OK)
                    }
                    XCTAssertEqual(pk_ref_batchnorm_forward_f32(Int64(n), Int64(c), Int64(s), x, gamma, beta, 1e-5, training, 0.1,
                                                                &rm2, &rv2, &y2, &m2, &i2), PK_OK)
                    let label = "bn \(n)×\(c)×\(s) training \(training) threads \(threads)"
                    assertClose(y1, y2, rtol: 1e-5, atol: 1e-5, label + " y")
                    assertClose(rm1, rm2, rtol: 1e-6, atol: 1e-7, label + " running mean")
                    assertClose(rv1, rv2, rtol: 1e-6, atol: 1e-7, label + " running var")
                    var dx1 = [Float](repeating: .nan, count: count), dx2 = dx1
                    var dg1 = [Float](repeating: .nan, count: c), db1 = dg1, dg2 = dg1, db2 = dg1
                    withThreads(threads) {
                        XCTAssertEqual(pk_batchnorm_backward_f32(Int64(n), Int64(c), Int64(s), x, gamma, m1, i1, dy, training,
                                                                 &dx1, &dg1, &db1), PK_OK)
                    }
                    XCTAssertEqual(pk_ref_batchnorm_backward_f32(Int64(n), Int64(c), Int64(s), x, gamma, m2, i2, dy, training,
                                                                 &dx2, &dg2, &db2), PK_OK)
                    assertClose(dx1, dx2, rtol: 1e-4, atol: 1e-5, label + " dx")
                    assertClose(dg1, dg2, rtol: 1e-4, atol: 1e-5, label + " dgamma")
                    assertClose(db1, db2, rtol: 1e-5, atol: 1e-5, label + " dbeta")
                }
            }
        }
        // the running statistics move as PyTorch's: mean by momentum, variance unbiased
        let x: [Float] = [1, 2, 3, 6]
        var rm: [Float] = [0], rv: [Float] = [1], y = [Float](repeating: 0, count: 4), m: [Float] = [0], i: [Float] = [0]
        XCTAssertEqual(pk_batchnorm_forward_f32(4, 1, 1, x, nil, nil, 1e-5, 1, 0.1, &rm, &rv, &y, &m, &i), PK_OK)
        XCTAssertEqual(rm[0], 0.3, accuracy: 1e-6)                       // 0.9·0 + 0.1·3
        XCTAssertEqual(rv[0], 0.9 + 0.1 * 14.0 / 3.0, accuracy: 1e-6)    // Σ(x−3)² = 14, unbiased 14/3
        XCTAssertEqual(y[3], 3 / (3.5 as Float + 1e-5).squareRoot(), accuracy: 1e-5) // biased var 14/4
        // bad arguments: statuses, nothing written
        let (yBefore, rmBefore, rvBefore) = (y, rm, rv)
        XCTAssertEqual(pk_batchnorm_forward_f32(4, 1, 1, x, nil, nil, 0, 1, 0.1, &rm, &rv, &y, &m, &i), PK_ERR_ARG)
        XCTAssertEqual(pk_batchnorm_forward_f32(4, 1, 1, x, nil, nil, 1e-5, 0, 0.1, nil, nil, &y, nil, nil), PK_ERR_NULL)
        XCTAssertEqual(y, yBefore)
        XCTAssertEqual(rm, rmBefore)
        XCTAssertEqual(rv, rvBefore)
    }

    func testActivationKernelsMatchReference() {
        var rng = TestRNG(5)
        // random values plus the kinks and saturation of every kind
        let x = rng.floats(10_000, -8, 8) + [-3, 3, 0, -0, 6, 40, -40, 2.9999, -3.0001, 88, -88]
        let dy = rng.floats(x.count)
        for kind in [PK_ACT_SIGMOID, PK_ACT_SILU, PK_ACT_HARDSWISH, PK_ACT_HARDSIGMOID, PK_ACT_TANH, PK_ACT_RELU6, PK_ACT_GELU_TANH] {
            // GELU's tanh form loses to cancellation in 1 + tanh(·) for x ≪ 0, in float as in PyTorch
            let atol: Float = kind == PK_ACT_GELU_TANH ? 1e-6 : 1e-7
            var y1 = [Float](repeating: .nan, count: x.count), y2 = y1, d1 = y1, d2 = y1
            for threads in [1, 2] {
                withThreads(threads) {
                    XCTAssertEqual(pk_activation_forward_f32(Int64(x.count), Int32(kind), x, &y1), PK_OK)
                    XCTAssertEqual(pk_activation_backward_f32(Int64(x.count), Int32(kind), x, dy, &d1), PK_OK)
                }
                XCTAssertEqual(pk_ref_activation_forward_f32(Int64(x.count), Int32(kind), x, &y2), PK_OK)
                XCTAssertEqual(pk_ref_activation_backward_f32(Int64(x.count), Int32(kind), x, dy, &d2), PK_OK)
                assertClose(y1, y2, rtol: 2e-6, atol: atol, "activation \(kind) forward")
                assertClose(d1, d2, rtol: 2e-5, atol: atol, "activation \(kind) backward")
            }
        }
        var y = [Float](repeating: 0, count: 1)
        XCTAssertEqual(pk_activation_forward_f32(1, 99, [1], &y), PK_ERR_ARG)
    }

    func testAveragePoolAndPaddingKernelsMatchReference() {
        var rng = TestRNG(9)
        for (n, c, h, w, k, s, p) in [(2, 3, 8, 8, 2, 2, 0), (1, 4, 7, 5, 3, 2, 1), (3, 2, 5, 5, 5, 1, 0), (2, 2, 6, 6, 3, 1, 1),
                                      (1, 1, 4, 6, 4, 3, 2)] {
            let oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1
            let x = rng.floats(n * c * h * w), dy = rng.floats(n * c * oh * ow)
            var y1 = [Float](repeating: .nan, count: dy.count), y2 = y1
            var dx1 = [Float](repeating: .nan, count: x.count), dx2 = dx1
            for threads in [1, 2] {
                withThreads(threads) {
                    XCTAssertEqual(pk_avgpool2d_forward_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(k), Int64(k), Int64(s), Int64(p),
                                                            x, &y1), PK_OK)
                    XCTAssertEqual(pk_avgpool2d_backward_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(k), Int64(k), Int64(s),
                                                             Int64(p), dy, &dx1), PK_OK)
                }
                XCTAssertEqual(pk_ref_avgpool2d_forward_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(k), Int64(k), Int64(s), Int64(p),
                                                            x, &y2), PK_OK)
                XCTAssertEqual(pk_ref_avgpool2d_backward_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(k), Int64(k), Int64(s),
                                                             Int64(p), dy, &dx2), PK_OK)
                assertClose(y1, y2, rtol: 1e-5, atol: 1e-6, "avgpool \(h)×\(w) k\(k) s\(s) p\(p)")
                assertClose(dx1, dx2, rtol: 1e-5, atol: 1e-6, "avgpool backward \(h)×\(w) k\(k) s\(s) p\(p)")
            }
            let ph = h + 2 * p, pw = w + 2 * p
            var pad1 = [Float](repeating: .nan, count: n * c * ph * pw), pad2 = pad1
            XCTAssertEqual(pk_pad2d_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(p), x, &pad1), PK_OK)
            XCTAssertEqual(pk_ref_pad2d_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(p), x, &pad2), PK_OK)
            XCTAssertEqual(pad1, pad2)
            var back = [Float](repeating: .nan, count: x.count)
            XCTAssertEqual(pk_crop2d_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(p), pad1, &back), PK_OK)
            XCTAssertEqual(back, x)
        }
        var y = [Float](repeating: 0, count: 4)
        XCTAssertEqual(pk_avgpool2d_forward_f32(1, 1, 2, 2, 3, 3, 1, 0, [1, 2, 3, 4], &y), PK_ERR_SHAPE)
    }

    // MARK: layers against finite differences

    /// ∂L/∂x and ∂L/∂every parameter of `layer` by central differences, L = Σ y ⊙ R in double;
    /// `mode` is the training flag of the compared forward passes.
    func checkGradients(_ layer: any Layer, _ x: Tensor, training: Bool = true, eps: Float = 1e-3, tol: Double = 3e-3,
                        file: StaticString = #filePath, line: UInt = #line) throws {
        var rng = TestRNG(77)
        let y = try layer.forward(x, training: training)
        let r = tensor(y.shape, rng.floats(y.count))
        let snapshot = layer.namedBuffers.map { $0.buffer.value.scalars }
        func restore() { for ((_, b), v) in zip(layer.namedBuffers, snapshot) { b.value = try! Tensor(shape: b.value.shape, scalars: v) } }
        func loss(_ input: Tensor) throws -> Double {
            defer { restore() }
            return zip(try layer.forward(input, training: training).scalars, r.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        _ = try layer.forward(x, training: training)
        restore()
        let dx = try XCTUnwrap(try layer.backward(r, needInputGradient: true), file: file, line: line)
        let grads = layer.parameters.map(\.grad)
        XCTAssertEqual(dx.shape, x.shape, file: file, line: line)
        func compare(_ a: Float, _ num: Double, _ what: String) {
            XCTAssertEqual(Double(a), num, accuracy: tol * max(1, abs(num)), "\(layer.summary) \(what)", file: file, line: line)
        }
        for i in Set((0..<16).map { _ in rng.int(x.count) }) {
            var xp = x, xm = x
            xp[flat: i] += eps
            xm[flat: i] -= eps
            compare(dx[flat: i], (try loss(xp) - loss(xm)) / Double(2 * eps), "∂/∂x[\(i)]")
        }
        for (pi, p) in layer.parameters.enumerated() {
            for i in Set((0..<8).map { _ in rng.int(p.count) }) {
                compare(grads[pi][flat: i], try centralDifference(p, i, eps: eps) { try loss(x) }, "∂/∂param\(pi)[\(i)]")
            }
        }
    }

    func testBatchNormGradientsTrainAndEval() throws {
        var g = SeededGenerator(seed: 2)
        let bn = try BatchNorm(5)
        bn.weight!.value = Tensor.uniform([5], 0.5, 1.5, rng: &g)
        bn.bias!.value = Tensor.uniform([5], -0.5, 0.5, rng: &g)
        try checkGradients(bn, .uniform([4, 5, 3, 3], -1, 2, rng: &g))
        try checkGradients(bn, .uniform([6, 5], -1, 2, rng: &g))              // BatchNorm1d shape
        bn.runningMean.value = Tensor.uniform([5], -0.2, 0.2, rng: &g)
        bn.runningVar.value = Tensor.uniform([5], 0.5, 2, rng: &g)
        try checkGradients(bn, .uniform([3, 5, 2, 2], -1, 2, rng: &g), training: false)
        // evaluation normalises by the running statistics, element by element
        let x = Tensor.uniform([2, 5, 2, 2], -1, 1, rng: &g)
        let y = try bn.forward(x, training: false)
        for i in 0..<x.count {
            let ch = (i / 4) % 5
            let want = (x[flat: i] - bn.runningMean.value[flat: ch]) / (bn.runningVar.value[flat: ch] + 1e-5).squareRoot()
                * bn.weight!.value[flat: ch] + bn.bias!.value[flat: ch]
            XCTAssertEqual(y[flat: i], want, accuracy: 1e-5)
        }
        // training moves the running statistics and counts batches; evaluation leaves them alone
        let before = bn.runningMean.value.scalars
        _ = try bn.forward(x, training: false)
        XCTAssertEqual(bn.runningMean.value.scalars, before)
        _ = try bn.forward(x, training: true)
        XCTAssertNotEqual(bn.runningMean.value.scalars, before)
        XCTAssertEqual(bn.namedBuffers.map(\.name), ["running_mean", "running_var", "num_batches_tracked"])
        XCTAssertThrowsError(try bn.forward(.uniform([1, 5], 0, 1, rng: &g), training: true), "one value per channel")
        XCTAssertThrowsError(try bn.forward(.uniform([2, 4], 0, 1, rng: &g), training: false))
    }

    func testActivationGradients() throws {
        var g = SeededGenerator(seed: 4)
        for kind in Activation.Kind.allCases {
            // values kept away from the kinks of the hard variants (±3)
            let x = Tensor.uniform([3, 17], -2.5, 2.5, rng: &g)
            try checkGradients(Activation(kind), x)
            let y = try Activation(kind)(x)
            let f: (Float) -> Float
            switch kind {
            case .sigmoid: f = { 1 / (1 + exp(-$0)) }
            case .silu: f = { $0 / (1 + exp(-$0)) }
            case .hardswish: f = { $0 * min(max($0 + 3, 0), 6) / 6 }
            case .hardsigmoid: f = { min(max($0 + 3, 0), 6) / 6 }
            case .tanh: f = { Float(Foundation.tanh(Double($0))) }
            case .relu6: f = { min(max($0, 0), 6) }
            case .gelu: f = { Float(0.5 * Double($0) * (1 + erf(Double($0) / 2.0.squareRoot()))) }
            case .geluTanh:
                f = { x in let v = Double(x); return Float(0.5 * v * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * (v + 0.044715 * v * v * v)))) }
            }
            assertClose(y.scalars, x.scalars.map(f), rtol: 1e-5, atol: 1e-6, "\(kind) forward")
        }
    }

    func testPoolingAndPaddedConvolutionGradients() throws {
        var g = SeededGenerator(seed: 6)
        try checkGradients(try AvgPool2d(2), .uniform([2, 3, 6, 6], -1, 1, rng: &g))
        try checkGradients(try AvgPool2d(3, stride: 2, padding: 1), .uniform([2, 2, 7, 5], -1, 1, rng: &g))
        try checkGradients(GlobalAvgPool2d(), .uniform([3, 4, 5, 3], -1, 1, rng: &g))
        try checkGradients(Identity(), .uniform([3, 4], -1, 1, rng: &g))
        for (k, s, p) in [(3, 1, 1), (3, 2, 1), (5, 1, 2), (1, 1, 0)] {
            let conv = try Conv2d(3, 4, kernelSize: k, stride: s, padding: p, rng: &g)
            conv.execution = .dense
            try checkGradients(conv, .uniform([2, 3, 6, 7], -1, 1, rng: &g), tol: 5e-3)
        }
    }

    /// A padded convolution equals the unpadded reference convolution of the explicitly padded image.
    func testPaddedConvolutionMatchesTheReferenceOnAPaddedImage() throws {
        var g = SeededGenerator(seed: 8), rng = TestRNG(8)
        for execution in [Execution.dense, .sparse] {
            let conv = try Conv2d(3, 5, kernelSize: 3, stride: 2, padding: 1, rng: &g)
            try conv.weight.setMask(Mask(shape: conv.weight.shape, kept: rng.mask(conv.weight.count, keep: 0.4).map { $0 != 0 }))
            conv.execution = execution
            let x = Tensor.uniform([2, 3, 9, 8], -1, 1, rng: &g)
            let y = try conv(x)
            var padded = [Float](repeating: .nan, count: 2 * 3 * 11 * 10)
            XCTAssertEqual(pk_ref_pad2d_f32(2, 3, 9, 8, 1, x.scalars, &padded), PK_OK)
            var want = [Float](repeating: .nan, count: y.count)
            let m = conv.weight.mask!.kept.map { UInt8($0 ? 1 : 0) }
            XCTAssertEqual(pk_ref_conv2d_forward_f32(2, 3, 11, 10, 5, 3, 3, 2, padded, conv.weight.value.scalars, m,
                                                     conv.bias!.value.scalars, &want), PK_OK)
            XCTAssertEqual(y.shape, [2, 5, 5, 4])
            assertClose(y.scalars, want, rtol: 1e-5, atol: 1e-5, "padded conv \(execution)")
        }
    }

    /// Inference folding of BatchNorm into the preceding convolution: a linked conv + BatchNorm pair
    /// (with and without conv bias, padded and strided, masked) equals the same pair unlinked within
    /// 1e-4 relative; hooks, training mode and a foreign input all fall back to the unfused path.
    func testConvBatchNormFoldingEqualsTheUnfusedPath() throws {
        var g = SeededGenerator(seed: 41), rng = TestRNG(41)
        for (c, oc, k, s, p, bias, h) in [(3, 5, 3, 1, 1, false, 9), (4, 7, 3, 2, 1, true, 8), (2, 6, 1, 2, 0, false, 7),
                                          (3, 4, 3, 1, 1, true, 30)] {
            let conv = try Conv2d(c, oc, kernelSize: k, stride: s, padding: p, bias: bias, rng: &g)
            try conv.weight.setMask(Mask(shape: conv.weight.shape, kept: rng.mask(conv.weight.count, keep: 0.7).map { $0 != 0 }))
            conv.execution = .dense
            let bn = try BatchNorm(oc)
            bn.runningMean.value = try Tensor(shape: [oc], scalars: rng.floats(oc))
            bn.runningVar.value = try Tensor(shape: [oc], scalars: rng.floats(oc, 0.2, 3))
            bn.weight!.value = try Tensor(shape: [oc], scalars: rng.floats(oc, -2, 2))
            bn.bias!.value = try Tensor(shape: [oc], scalars: rng.floats(oc))
            let x = Tensor.uniform([3, c, h, h], -1, 1, rng: &g)
            let want = try bn.forward(try conv.forward(x, training: false), training: false)
            conv.foldNorm(bn)
            let mid = try conv.forward(x, training: false)
            let got = try bn.forward(mid, training: false)
            XCTAssertTrue(got.storage === mid.storage, "the BatchNorm passes the folded output through")
            let scaleOf = want.scalars.map { abs($0) }.max()!
            assertClose(got.scalars, want.scalars, rtol: 1e-4, atol: 1e-4 * scaleOf, "folded conv+bn \(c)→\(oc) k\(k) s\(s) p\(p)")
            // the same tensor a second time, or any other tensor: normalised normally
            let again = try bn.forward(mid, training: false)
            XCTAssertFalse(again.storage === mid.storage, "a folded output is handed over once")
            // training mode never folds (batch statistics)
            _ = try conv.forward(x, training: true)
            XCTAssertNil(conv.foldedOutput)
            // a hook on either layer sees the unfused tensors
            conv.foldNorm(bn)
            var seen: Tensor?
            let handle = conv.forwardHooks!.add { _, y in seen = y }
            let hooked = try bn.forward(try conv.forward(x, training: false), training: false)
            handle.remove()
            assertClose(hooked.scalars, want.scalars, rtol: 1e-4, atol: 1e-4 * scaleOf, "hooked conv+bn")
            conv.foldedNorm = nil
            let raw = try conv.forward(x, training: false)
            XCTAssertEqual(seen?.scalars.map(\.bitPattern), raw.scalars.map(\.bitPattern), "the hook saw the raw convolution")
        }
    }

    /// A whole ResNet-20 at inference: folded (as built) and unfolded give the same logits within 1e-4.
    func testResNetInferenceFoldingMatchesUnfolded() throws {
        var rng = TestRNG(42)
        let model = try Model.resnet20(seed: 3)
        for (name, b) in model.namedBuffers where name.hasSuffix("running_mean") || name.hasSuffix("running_var") {
            let v = name.hasSuffix("running_var") ? rng.floats(b.value.count, 0.5, 2) : rng.floats(b.value.count, -0.2, 0.2)
            b.value = try Tensor(shape: b.value.shape, scalars: v)
        }
        var g = SeededGenerator(seed: 5)
        let x = Tensor.uniform([4, 1, 28, 28], -1, 1, rng: &g)
        let folded = try model.forward(x, training: false)
        let convs = model.network.namedLayers.compactMap { $0.layer as? Conv2d }
        XCTAssertEqual(convs.filter { $0.foldedNorm != nil }.count, convs.count, "every ResNet convolution is linked to its BatchNorm")
        for c in convs { c.foldedNorm = nil }
        let unfolded = try model.forward(x, training: false)
        let scaleOf = unfolded.scalars.map { abs($0) }.max()!
        assertClose(folded.scalars, unfolded.scalars, rtol: 1e-4, atol: 1e-4 * scaleOf, "resnet20 logits")
    }

    /// Any Graph or Sequential links a convolution to the BatchNorm that alone reads its output (not
    /// only the ResNet builder), and inference with the fold equals inference without it; a convolution
    /// whose output has a second reader is left unlinked.
    func testContainersLinkFoldableConvolutionNorms() throws {
        var rng = TestRNG(43)
        var g = SeededGenerator(seed: 7)
        func randomStats(_ layers: [BatchNorm]) throws {
            for bn in layers {
                for (name, b) in bn.namedBuffers where name.hasSuffix("running_mean") || name.hasSuffix("running_var") {
                    let v = name.hasSuffix("running_var") ? rng.floats(b.value.count, 0.5, 2) : rng.floats(b.value.count, -0.2, 0.2)
                    b.value = try Tensor(shape: b.value.shape, scalars: v)
                }
            }
        }
        let c1 = try Conv2d(3, 8, kernelSize: 3, padding: 1, rng: &g), b1 = try BatchNorm(8)
        let c2 = try Conv2d(8, 8, kernelSize: 3, padding: 1, rng: &g), b2 = try BatchNorm(8)
        let c3 = try Conv2d(8, 8, kernelSize: 3, padding: 1, rng: &g), b3 = try BatchNorm(8)
        // c3's output feeds b3 and the Add: no fold
        let graph = try Graph([("c1", c1, [Graph.inputName]), ("b1", b1, ["c1"]), ("r1", ReLU(), ["b1"]),
                               ("c2", c2, ["r1"]), ("b2", b2, ["c2"]), ("c3", c3, ["b2"]), ("b3", b3, ["c3"]),
                               ("add", Add(), ["b3", "c3"])])
        let c4 = try Conv2d(8, 4, kernelSize: 3, padding: 1, rng: &g), b4 = try BatchNorm(4)
        let r4 = ReLU()
        let seq = Sequential([("g", graph), ("c4", c4), ("b4", b4), ("r4", r4), ("pool", GlobalAvgPool2d())])
        try randomStats([b1, b2, b3, b4])
        XCTAssertTrue(c1.foldedNorm === b1 && c2.foldedNorm === b2 && c4.foldedNorm === b4, "conv → its only reader BatchNorm")
        XCTAssertNil(c3.foldedNorm, "a convolution with a second reader is not folded")
        XCTAssertTrue(c1.foldedActivation === graph.node(named: "r1")?.layer as? ReLU && c4.foldedActivation === r4,
                      "conv → BatchNorm → its only reader ReLU: the epilogue rectifies")
        XCTAssertNil(c2.foldedActivation, "no ReLU after b2")
        let x = Tensor.uniform([3, 3, 9, 7], -1, 1, rng: &g)
        // a NaN pixel in the second image: it reaches that image's outputs through the fused ReLUs
        // exactly as through the separate ones (the epilogue keeps NaN), and no other image's
        var xs = x.scalars
        xs[3 * 9 * 7 + 20] = .nan
        let xn = try Tensor(shape: x.shape, scalars: xs)
        let folded = try seq.forward(x, training: false), foldedNaN = try seq.forward(xn, training: false)
        for c in [c1, c2, c4] { c.foldedNorm = nil }
        let unfolded = try seq.forward(x, training: false), unfoldedNaN = try seq.forward(xn, training: false)
        let scaleOf = unfolded.scalars.map { abs($0) }.max()!
        assertClose(folded.scalars, unfolded.scalars, rtol: 1e-4, atol: 1e-4 * scaleOf, "folded = unfolded")
        XCTAssertEqual(foldedNaN.scalars.map(\.isNaN), unfoldedNaN.scalars.map(\.isNaN), "NaN reaches the same outputs")
        XCTAssertTrue(foldedNaN.scalars[4..<8].allSatisfy(\.isNaN) && !foldedNaN.scalars[0..<4].contains { $0.isNaN },
                      "the NaN image's outputs are NaN, the others are not")
        // replacing a layer re-links it
        let c5 = try Conv2d(8, 4, kernelSize: 3, padding: 1, rng: &g)
        seq.replace(at: 1, with: c5)
        XCTAssertTrue(c5.foldedNorm === b4, "Sequential.replace links the new convolution")
        let c6 = try Conv2d(8, 8, kernelSize: 3, padding: 1, rng: &g)
        try graph.replace("c2", with: c6)
        XCTAssertTrue(c6.foldedNorm === b2, "Graph.replace links the new convolution")
    }

    /// A residual Add read only by a ReLU runs both as one pass at inference (pk_add_relu_f32); the
    /// result equals the separate passes bit for bit. An Add with a second reader is not fused, and
    /// replacing either layer of a pair (here the BatchNorm and the ReLU, while the old objects stay
    /// alive) drops the link, so the old layer's effect never leaks into the new one's place.
    func testResidualAddAndReLUFuseAtInference() throws {
        var g = SeededGenerator(seed: 21)
        let a = try Linear(6, 5, rng: &g), b = try Linear(6, 5, rng: &g), head = try Linear(5, 3, rng: &g)
        let relu = ReLU(), add = Add()
        let graph = try Graph([("a", a, [Graph.inputName]), ("b", b, [Graph.inputName]), ("add", add, ["a", "b"]),
                               ("relu", relu, ["add"]), ("head", head, ["relu"])])
        XCTAssertTrue(add.foldedActivation === relu, "Add → its only reader ReLU is linked")
        let x = Tensor.uniform([7, 6], -1, 1, rng: &g)
        // the reference: the same layers run one by one, the sum and max(·, 0) written out here
        let ya = try a.forward(x, training: false).scalars, yb = try b.forward(x, training: false).scalars
        let hidden = try Tensor(shape: [7, 5], scalars: zip(ya, yb).map { max($0 + $1, 0) })
        let expected = try head.forward(hidden, training: false).scalars
        XCTAssertEqual(try graph.forward(x, training: false).scalars, expected, "fused = separate passes, bitwise")
        XCTAssertEqual(try graph.forward(x, training: true).scalars, expected, "training runs them separately")
        // the linked Add itself rectifies at inference (the fused path ran), and not in training
        let sa = try a.forward(x, training: false), sb = try b.forward(x, training: false)
        XCTAssertEqual(try add.forward([sa, sb], training: false).scalars, zip(ya, yb).map { max($0 + $1, 0) })
        XCTAssertEqual(try add.forward([sa, sb], training: true).scalars, zip(ya, yb).map { $0 + $1 })
        // the ReLU replaced while the old one lives on: the sum must reach the head unrectified
        try graph.replace("relu", with: Identity())
        XCTAssertNil(add.foldedActivation)
        let raw = try Tensor(shape: [7, 5], scalars: zip(ya, yb).map { $0 + $1 })
        XCTAssertEqual(try graph.forward(x, training: false).scalars, try head.forward(raw, training: false).scalars)
        _ = relu
        // a second reader of the sum: no fusion, both readers see the plain sum
        let add2 = Add(), relu2 = ReLU()
        let shared = try Graph([("a", a, [Graph.inputName]), ("b", b, [Graph.inputName]), ("add", add2, ["a", "b"]),
                                ("relu", relu2, ["add"]), ("skip", Add(), ["relu", "add"])])
        XCTAssertNil(add2.foldedActivation)
        let sum = zip(ya, yb).map { $0 + $1 }
        XCTAssertEqual(try shared.forward(x, training: false).scalars, sum.map { max($0, 0) + $0 })
        // a BatchNorm replaced by Identity while the old one lives on: its affine no longer applies
        let conv = try Conv2d(2, 3, kernelSize: 3, padding: 1, rng: &g), bn = try BatchNorm(3)
        bn.runningMean.value = try Tensor(shape: [3], scalars: [0.5, -0.5, 1])
        let cg = try Graph([("conv", conv, [Graph.inputName]), ("bn", bn, ["conv"]), ("relu", ReLU(), ["bn"])])
        XCTAssertTrue(conv.foldedNorm === bn)
        try cg.replace("bn", with: Identity())
        XCTAssertNil(conv.foldedNorm)
        let xi = Tensor.uniform([2, 2, 5, 5], -1, 1, rng: &g)
        let plain = try conv.forward(xi, training: false).scalars.map { max($0, 0) }
        XCTAssertEqual(try cg.forward(xi, training: false).scalars, plain)
        _ = bn
    }

    func testDropout() throws {
        var g = SeededGenerator(seed: 12)
        let d = try Dropout(0.3, seed: 4)
        let x = Tensor.uniform([100, 50], 0.5, 1, rng: &g)
        XCTAssertEqual(try d.forward(x, training: false).scalars, x.scalars, "evaluation is the identity")
        let y = try d.forward(x, training: true)
        let zeros = y.scalars.filter { $0 == 0 }.count
        XCTAssertEqual(Double(zeros) / Double(x.count), 0.3, accuracy: 0.02)
        for (a, b) in zip(y.scalars, x.scalars) where a != 0 { XCTAssertEqual(a, b / 0.7, accuracy: 1e-6) }
        let r = Tensor.uniform([100, 50], -1, 1, rng: &g)
        let dx = try XCTUnwrap(try d.backward(r, needInputGradient: true))
        for i in 0..<x.count { XCTAssertEqual(dx[flat: i], y[flat: i] == 0 ? 0 : r[flat: i] / 0.7, accuracy: 1e-6) }
        XCTAssertThrowsError(try Dropout(1))
        XCTAssertThrowsError(try Dropout(-0.1))
    }

    func testGroupedConvolutionKernelsMatchReference() {
        var rng = TestRNG(31)
        for (n, c, h, w, oc, k, s, d, g) in [(2, 6, 7, 7, 6, 3, 1, 1, 6), (3, 8, 9, 8, 8, 3, 2, 1, 8), (2, 6, 6, 6, 9, 3, 1, 1, 3),
                                             (1, 4, 5, 5, 8, 1, 1, 1, 2), (2, 4, 8, 8, 4, 5, 2, 1, 4), (2, 6, 9, 8, 6, 3, 1, 2, 6),
                                             (2, 6, 11, 11, 9, 3, 2, 3, 3), (1, 4, 7, 9, 8, 2, 1, 4, 2)] {
            let e = d * (k - 1) + 1
            let oh = (h - e) / s + 1, ow = (w - e) / s + 1
            let x = rng.floats(n * c * h * w), wt = rng.floats(oc * c / g * k * k), b = rng.floats(oc), dy = rng.floats(n * oc * oh * ow)
            let mask = rng.mask(wt.count, keep: 0.7)
            var y1 = [Float](repeating: .nan, count: n * oc * oh * ow), y2 = y1
            var dw1 = [Float](repeating: .nan, count: wt.count), dw2 = dw1, dx1 = [Float](repeating: .nan, count: x.count), dx2 = dx1
            for threads in [1, 2] {
                withThreads(threads) {
                    XCTAssertEqual(pk_conv2d_grouped_forward_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(oc), Int64(k), Int64(s),
                                                                 Int64(d), Int64(g), x, wt, mask, b, &y1), PK_OK)
                    XCTAssertEqual(pk_conv2d_grouped_backward_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(oc), Int64(k), Int64(s),
                                                                  Int64(d), Int64(g), x, wt, mask, dy, &dw1, &dx1), PK_OK)
                }
                XCTAssertEqual(pk_ref_conv2d_grouped_forward_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(oc), Int64(k), Int64(s),
                                                                 Int64(d), Int64(g), x, wt, mask, b, &y2), PK_OK)
                XCTAssertEqual(pk_ref_conv2d_grouped_backward_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(oc), Int64(k), Int64(s),
                                                                  Int64(d), Int64(g), x, wt, mask, dy, &dw2, &dx2), PK_OK)
                let label = "grouped \(c)→\(oc) k\(k) s\(s) d\(d) g\(g) threads \(threads)"
                assertClose(y1, y2, rtol: 1e-5, atol: 1e-5, label)
                assertClose(dw1, dw2, rtol: 1e-4, atol: 1e-5, label + " dW")
                assertClose(dx1, dx2, rtol: 1e-4, atol: 1e-5, label + " dx")
                XCTAssertTrue(zip(dw1, mask).allSatisfy { $1 != 0 || $0 == 0 }, "masked dW is 0")
            }
        }
        var y = [Float](repeating: 0, count: 4)
        XCTAssertEqual(pk_conv2d_grouped_forward_f32(1, 3, 3, 3, 4, 3, 1, 1, 2, [Float](repeating: 0, count: 27),
                                                     [Float](repeating: 0, count: 18), nil, nil, &y), PK_ERR_SHAPE)
        XCTAssertEqual(pk_conv2d_grouped_forward_f32(1, 2, 4, 4, 2, 3, 1, 2, 2, [Float](repeating: 0, count: 32),
                                                     [Float](repeating: 0, count: 18), nil, nil, &y), PK_ERR_SHAPE,
                       "a dilated window (5) wider than the padded input (4)")
        XCTAssertEqual(pk_conv2d_grouped_forward_f32(1, 2, 4, 4, 2, 3, 1, 0, 2, [Float](repeating: 0, count: 32),
                                                     [Float](repeating: 0, count: 18), nil, nil, &y), PK_ERR_SHAPE, "dilation 0")
    }

    func testGroupedAndDepthwiseConvolutionGradients() throws {
        var g = SeededGenerator(seed: 13)
        for (c, o, k, s, p, groups) in [(6, 6, 3, 1, 1, 6), (6, 6, 3, 2, 1, 6), (4, 8, 3, 1, 1, 2), (6, 12, 1, 1, 0, 3)] {
            let conv = try Conv2d(c, o, kernelSize: k, stride: s, padding: p, groups: groups, rng: &g)
            XCTAssertEqual(conv.weight.shape, [o, c / groups, k, k])
            try checkGradients(conv, .uniform([2, c, 6, 5], -1, 1, rng: &g), tol: 5e-3)
        }
    }

    /// Dilated convolutions against central differences: dense (implicit-GEMM-free im2col path),
    /// strided, grouped and depthwise (direct path), and executed sparsely on masked weights.
    func testDilatedConvolutionGradients() throws {
        var g = SeededGenerator(seed: 14)
        for (c, o, k, s, p, d, groups) in [(3, 4, 3, 1, 2, 2, 1), (3, 5, 3, 2, 1, 2, 1), (2, 3, 2, 1, 0, 3, 1), (6, 6, 3, 1, 2, 2, 6),
                                           (4, 8, 3, 2, 3, 3, 2)] {
            let conv = try Conv2d(c, o, kernelSize: k, stride: s, padding: p, dilation: d, groups: groups, rng: &g)
            let x = Tensor.uniform([2, c, 9, 8], -1, 1, rng: &g)
            let e = d * (k - 1) + 1
            let y = try conv.forward(x, training: false)
            XCTAssertEqual(y.shape, [2, o, (9 + 2 * p - e) / s + 1, (8 + 2 * p - e) / s + 1], conv.summary)
            try checkGradients(conv, x, tol: 5e-3)
        }
        // sparse execution of a masked dilated convolution: the same function and gradients
        let conv = try Conv2d(4, 6, kernelSize: 3, padding: 2, dilation: 2, rng: &g)
        var mrng = TestRNG(5)
        try conv.weight.setMask(Mask(shape: conv.weight.shape, kept: mrng.mask(conv.weight.count, keep: 0.2).map { $0 != 0 }))
        let x = Tensor.uniform([2, 4, 7, 7], -1, 1, rng: &g)
        conv.execution = .dense
        let dense = try conv.forward(x, training: false)
        conv.execution = .sparse
        let sparse = try conv.forward(x, training: false)
        assertClose(sparse.scalars, dense.scalars, rtol: 1e-5, atol: 1e-5, "sparse vs dense dilated forward")
        // the input gradient of the sparse path (im2col / col2im with the dilation) equals the dense one,
        // whose gradients the loop above checks against finite differences
        var rrng = TestRNG(6)
        let r = tensor(dense.shape, rrng.floats(dense.count))
        _ = try conv.forward(x, training: true)
        let dxSparse = try XCTUnwrap(try conv.backward(r, needInputGradient: true))
        conv.execution = .dense
        _ = try conv.forward(x, training: true)
        let dxDense = try XCTUnwrap(try conv.backward(r, needInputGradient: true))
        assertClose(dxSparse.scalars, dxDense.scalars, rtol: 1e-5, atol: 1e-5, "sparse vs dense dilated input gradient")
        try checkGradients(conv, x, tol: 5e-3)
    }

    /// torchvision's stem pool (3×3, stride 2, padding 1: overlapping windows, a padded border)
    /// against central differences; distinct inputs keep every argmax still under ±eps.
    func testMaxPoolWithStrideAndPaddingGradients() throws {
        var g = SeededGenerator(seed: 15)
        var vals: [Float] = (0..<(2 * 3 * 7 * 8)).map { (i: Int) -> Float in Float(i) * 0.05 - 4 }
        vals.shuffle(using: &g)
        let pool = try MaxPool2d(3, stride: 2, padding: 1)
        let x = tensor([2, 3, 7, 8], vals)
        XCTAssertEqual(try pool.forward(x, training: false).shape, [2, 3, 4, 4])
        try checkGradients(pool, x, eps: 1e-3)
        XCTAssertThrowsError(try MaxPool2d(3, stride: 2, padding: 2), "padding above half the kernel")
        XCTAssertThrowsError(try MaxPool2d(3, stride: 0))
    }
}
