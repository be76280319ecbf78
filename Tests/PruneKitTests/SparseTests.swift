import XCTest
import CPruneKernels
@testable import PruneKit

/// Sparse execution (issue 6): the compressed form, sparse products against the naive reference,
/// the fused weight-gradient + update, and Linear layers that give the dense-masked results.
final class SparseTests: XCTestCase {
    func randomSparse(_ rows: Int, _ cols: Int, keep: Double, _ rng: inout TestRNG) throws -> (SparseMatrix, Tensor, Mask) {
        let w = try Tensor(shape: [rows, cols], scalars: rng.floats(rows * cols))
        let m = try Mask(shape: [rows, cols], kept: rng.mask(rows * cols, keep: keep).map { $0 != 0 })
        return (try SparseMatrix(weight: w, mask: m), w, m)
    }

    func testCompressedFormRoundTrip() throws {
        var rng = TestRNG(60)
        for (r, c, keep) in [(37, 53, 0.3), (1, 1, 1.0), (5, 7, 0.0), (64, 16, 0.9)] {
            let (s, w, m) = try randomSparse(r, c, keep: keep, &rng)
            XCTAssertEqual(s.nnz, m.keptCount)
            let (dw, dm) = try s.dense()
            XCTAssertEqual(dm.kept, m.kept)
            XCTAssertEqual(dw.scalars, try w.masked(by: m).scalars)
            XCTAssertEqual(s.keptValues, zip(w.scalars, m.kept).filter { $0.1 }.map { $0.0 })
        }
    }

    func testProductsAgainstReference() throws {
        var rng = TestRNG(61)
        // 24 × 2100 and 2100 × 24: over 2048 inputs (a 32-sample panel over 256 KiB) the AVX2 product
        // prefetches ahead, forward for the first and input gradient for the second
        for (rows, cols, batch, keep) in [(37, 53, 1, 0.3), (37, 53, 17, 0.1), (64, 40, 64, 0.5), (33, 129, 130, 0.2),
                                          (16, 16, 3, 0.0), (24, 2100, 40, 0.1), (2100, 24, 33, 0.1)] {
            let (s, w0, m0) = try randomSparse(rows, cols, keep: keep, &rng)
            let x = rng.floats(batch * cols), dy = rng.floats(batch * rows), bias = rng.floats(rows)
            var a = s.csr
            var want = [Float](repeating: 0, count: batch * rows), wantT = [Float](repeating: 0, count: batch * cols)
            var wantG = [Float](repeating: 0, count: max(s.nnz, 1))
            XCTAssertEqual(pk_ref_spmm_f32(&a, 0, Int64(batch), x, Int64(cols), bias, &want, Int64(rows)), PK_OK)
            XCTAssertEqual(pk_ref_spmm_f32(&a, 1, Int64(batch), dy, Int64(rows), nil, &wantT, Int64(cols)), PK_OK)
            XCTAssertEqual(pk_ref_sddmm_f32(&a, Int64(batch), dy, Int64(rows), x, Int64(cols), &wantG), PK_OK)
            try forEachISA { isa in
                let label = "\(isa) \(rows)×\(cols) batch \(batch) keep \(keep)"
                var y = [Float](repeating: .nan, count: batch * rows), yt = [Float](repeating: .nan, count: batch * cols)
                var g = [Float](repeating: .nan, count: max(s.nnz, 1))
                XCTAssertEqual(pk_spmm_f32(&a, 0, Int64(batch), x, Int64(cols), bias, &y, Int64(rows)), PK_OK)
                XCTAssertEqual(pk_spmm_f32(&a, 1, Int64(batch), dy, Int64(rows), nil, &yt, Int64(cols)), PK_OK)
                XCTAssertEqual(pk_sddmm_update_f32(&a, Int64(batch), dy, Int64(rows), x, Int64(cols), nil, &g), PK_OK)
                assertClose(y, want, rtol: 1e-5, atol: 1e-5, "\(label): forward")
                assertClose(yt, wantT, rtol: 1e-5, atol: 1e-5, "\(label): input gradient")
                assertClose(Array(g.prefix(s.nnz)), Array(wantG.prefix(s.nnz)), rtol: 1e-5, atol: 1e-5, "\(label): weight gradient")
                XCTAssertEqual(try s.dense().weight.scalars, try w0.masked(by: m0).scalars, "\(label): the products left the weights as they were")
            }
        }
        // zero extents with NULL pointers are fine
        var empty = pk_csr(rows: 0, cols: 0, nnz: 0, ptr: nil, idx: nil, val: nil, tptr: nil, tidx: nil, tperm: nil)
        XCTAssertEqual(pk_spmm_f32(&empty, 0, 5, nil, 0, nil, nil, 0), PK_OK)
        XCTAssertEqual(pk_spmm_f32(nil, 0, 5, nil, 0, nil, nil, 0), PK_ERR_NULL)
        XCTAssertEqual(pk_sddmm_update_f32(&empty, 5, nil, 0, nil, 0, nil, nil), PK_OK)
    }

    /// Sizes around the 16-row vectors and 32/64-row tiles, masks 0 %, 100 %, random and 2:4,
    /// padded leading dimensions, both layouts, one and two threads (bitwise equal).
    func testSweepAgainstReference() throws {
        var rng = TestRNG(68)
        for batch in [1, 2, 15, 16, 17, 31, 32, 33, 63, 64, 65, 97] {
            for (rows, cols) in [(1, 1), (17, 33), (40, 8)] {
                for pattern in ["none", "all", "random", "2:4"] {
                    let w = try Tensor(shape: [rows, cols], scalars: rng.floats(rows * cols))
                    let kept: [Bool] = (0..<(rows * cols)).map { i in
                        switch pattern {
                        case "none": return false
                        case "all": return true
                        case "2:4": return (i % cols) % 4 < 2
                        default: return rng.int(3) == 0
                        }
                    }
                    let s = try SparseMatrix(weight: w, mask: Mask(shape: [rows, cols], kept: kept))
                    var a = s.csr
                    let ldx = cols + 3, ldy = rows + 2
                    let x = rng.floats(batch * ldx), bias = rng.floats(rows)
                    var want = [Float](repeating: 0, count: batch * ldy)
                    XCTAssertEqual(pk_ref_spmm_f32(&a, 0, Int64(batch), x, Int64(ldx), bias, &want, Int64(ldy)), PK_OK)
                    var got = [[Float]]()
                    for t in [1, 2] {
                        var y = [Float](repeating: .nan, count: batch * ldy)
                        XCTAssertEqual(withThreads(t) { pk_spmm_f32(&a, 0, Int64(batch), x, Int64(ldx), bias, &y, Int64(ldy)) }, PK_OK)
                        got.append(y)
                    }
                    XCTAssertEqual(got[0].map(\.bitPattern), got[1].map(\.bitPattern), "threads \(batch) \(rows)×\(cols) \(pattern)")
                    let label = "batch \(batch) \(rows)×\(cols) \(pattern)"
                    for b in 0..<batch {
                        assertClose(Array(got[0][(b * ldy)..<(b * ldy + rows)]), Array(want[(b * ldy)..<(b * ldy + rows)]),
                                    rtol: 1e-5, atol: 1e-5, label)
                        XCTAssertTrue(got[0][(b * ldy + rows)..<(b * ldy + ldy)].allSatisfy(\.isNaN), "\(label): padding written")
                    }
                    // feature-major activations give the same numbers
                    var xt = [Float](repeating: 0, count: cols * batch), yt = [Float](repeating: 0, count: rows * batch)
                    for b in 0..<batch { for c in 0..<cols { xt[c * batch + b] = x[b * ldx + c] } }
                    XCTAssertEqual(pk_spmm_layout_f32(&a, 0, Int32(PK_LAYOUT_FEATURES), Int64(batch), xt, Int64(batch), bias,
                                                      &yt, Int64(batch)), PK_OK)
                    for b in 0..<batch { for r in 0..<rows { XCTAssertEqual(yt[r * batch + b], got[0][b * ldy + r], "\(label) fm") } }
                }
            }
        }
    }

    func testArgumentChecks() throws {
        var rng = TestRNG(69)
        let (rows, cols) = (6, 5)
        let (s, _, _) = try randomSparse(rows, cols, keep: 0.5, &rng)
        var a = s.csr
        let x = rng.floats(2 * cols), dy = rng.floats(2 * rows), bias = rng.floats(rows)
        var want = [Float](repeating: 0, count: 2 * rows), wantT = [Float](repeating: 0, count: 2 * cols)
        // argument checks
        XCTAssertEqual(pk_spmm_f32(&a, 1, 1, dy, Int64(rows), bias, &wantT, Int64(cols)), PK_ERR_ARG)
        XCTAssertEqual(pk_spmm_f32(&a, 0, 1, x, Int64(cols) - 1, nil, &want, Int64(rows)), PK_ERR_SHAPE)
        XCTAssertEqual(pk_spmm_f32(&a, 0, -1, x, Int64(cols), nil, &want, Int64(rows)), PK_ERR_SHAPE)
        XCTAssertEqual(pk_spmm_layout_f32(&a, 0, 7, 1, x, Int64(cols), nil, &want, Int64(rows)), PK_ERR_ARG)
        XCTAssertEqual(pk_sddmm_update_layout_f32(&a, 1, 2, dy, Int64(rows), x, Int64(cols), nil, &want), PK_ERR_ARG)
        // an update whose weight is not the compressed values, or with bad hyper-parameters
        var u = pk_update_desc()
        u.kind = PK_UPDATE_SGD; u.lr = 0.1; u.w = s.values.base
        var other = [Float](repeating: 0, count: s.nnz)
        other.withUnsafeMutableBufferPointer { u.w = $0.baseAddress }
        XCTAssertEqual(pk_sddmm_update_f32(&a, 2, dy, Int64(rows), x, Int64(cols), &u, nil), PK_ERR_ARG)
        u.w = s.values.base; u.lr = .nan
        XCTAssertEqual(pk_sddmm_update_f32(&a, 2, dy, Int64(rows), x, Int64(cols), &u, nil), PK_ERR_ARG)
        // the mask's count must match the declared nnz
        let w = [Float](repeating: 1, count: rows * cols), m = [UInt8](repeating: 1, count: rows * cols)
        var ptr = [Int64](repeating: 0, count: rows + 1), tptr = [Int64](repeating: 0, count: cols + 1)
        var idx = [Int32](repeating: 0, count: 3), tidx = idx, tperm = idx
        var val = [Float](repeating: 0, count: 3)
        let st = ptr.withUnsafeMutableBufferPointer { p in tptr.withUnsafeMutableBufferPointer { tp in
            idx.withUnsafeMutableBufferPointer { i in tidx.withUnsafeMutableBufferPointer { ti in
                tperm.withUnsafeMutableBufferPointer { pe in val.withUnsafeMutableBufferPointer { v in
                    var small = pk_csr(rows: Int64(rows), cols: Int64(cols), nnz: 3, ptr: p.baseAddress, idx: i.baseAddress,
                                       val: v.baseAddress, tptr: tp.baseAddress, tidx: ti.baseAddress, tperm: pe.baseAddress)
                    return pk_csr_build_f32(&small, w, Int64(cols), m, Int64(cols)) // 30 kept, room for 3
                } } } } } }
        XCTAssertEqual(st, PK_ERR_SHAPE)
    }

    func testFusedUpdateEqualsGradientThenStep() throws {
        var rng = TestRNG(62)
        let (rows, cols, batch) = (48, 70, 100)
        let x = rng.floats(batch * cols), dy = rng.floats(batch * rows)
        for kind in ["sgd", "momentum", "adam", "adamw"] {
            let (s1, w, m) = try randomSparse(rows, cols, keep: 0.25, &rng)
            let s2 = try SparseMatrix(weight: w, mask: m)
            let n = s1.nnz
            let m1 = FloatStorage(rng.floats(n, 0, 0.1)), v1 = FloatStorage(rng.floats(n, 0, 0.1))
            let m2 = m1.copy(), v2 = v1.copy(), mStart = m1.toArray(), vStart = v1.toArray()
            var step = UpdateStep(kind: kind.hasPrefix("adam") ? .adam : .sgd, learningRate: 0.01)
            step.weightDecay = 0.01
            step.decoupled = kind == "adamw"
            step.step = 3
            if kind == "momentum" { step.momentum = 0.9; step.nesterov = true }
            var s1step = step, s2step = step
            s1step.first = kind == "sgd" ? nil : m1
            s1step.second = kind.hasPrefix("adam") ? v1 : nil
            s2step.first = kind == "sgd" ? nil : m2
            s2step.second = kind.hasPrefix("adam") ? v2 : nil
            // fused, then gradient + separate update
            try s1.weightGradient(dy: FloatStorage(dy), x: FloatStorage(x), batch: batch, step: s1step, grad: nil)
            let g = FloatStorage(count: n)
            try s2.weightGradient(dy: FloatStorage(dy), x: FloatStorage(x), batch: batch, step: nil, grad: g)
            try Kernels.applyUpdate(s2step, mask: nil, grad: g, weight: s2.values)
            XCTAssertEqual(s1.keptValues, s2.keptValues, "\(kind): weights")
            // only the kinds that use a state slot compare it (the others would compare two untouched copies)
            if kind != "sgd" {
                XCTAssertEqual(m1.toArray(), m2.toArray(), "\(kind): first moment")
                XCTAssertNotEqual(m1.toArray(), mStart, "\(kind): the step updated the first moment")
            }
            if kind.hasPrefix("adam") {
                XCTAssertEqual(v1.toArray(), v2.toArray(), "\(kind): second moment")
                XCTAssertNotEqual(v1.toArray(), vStart, "\(kind): the step updated the second moment")
            }
            XCTAssertNotEqual(s1.keptValues, zip(w.scalars, m.kept).filter { $0.1 }.map { $0.0 }, "\(kind): the step did something")
        }
    }

    func testThreadCountNeverChangesResults() throws {
        var rng = TestRNG(63)
        let (s, _, _) = try randomSparse(300, 200, keep: 0.15, &rng)
        let batch = 90
        let x = FloatStorage(rng.floats(batch * 200)), dy = FloatStorage(rng.floats(batch * 300))
        func run() throws -> [[Float]] {
            let y = FloatStorage(count: batch * 300), dx = FloatStorage(count: batch * 200), g = FloatStorage(count: s.nnz)
            try s.forward(x, batch: batch, bias: nil, into: y)
            try s.inputGradient(dy, batch: batch, into: dx)
            try s.weightGradient(dy: dy, x: x, batch: batch, step: nil, grad: g)
            return [y.toArray(), dx.toArray(), g.toArray()]
        }
        let one = try withThreads(1) { try run() }, two = try withThreads(2) { try run() }
        XCTAssertEqual(one, two)
    }

    /// A Linear layer gives the same outputs, gradients and training steps in both forms.
    func testLinearSparseMatchesDenseMasked() throws {
        var rng = TestRNG(64)
        var g = SeededGenerator(seed: 5)
        let dense = try Linear(120, 50, rng: &g), sparse = try Linear(weight: dense.weight.value, bias: dense.bias!.value)
        let mask = try Mask(shape: [50, 120], kept: rng.mask(6000, keep: 0.1).map { $0 != 0 })
        try dense.weight.setMask(mask)
        try sparse.weight.setMask(mask)
        dense.execution = .dense
        sparse.execution = .sparse
        let optD = try Adam(learningRate: 0.01), optS = try Adam(learningRate: 0.01)
        for step in 0..<3 {
            let x = try Tensor(shape: [33, 120], scalars: rng.floats(33 * 120))
            let dy = try Tensor(shape: [33, 50], scalars: rng.floats(33 * 50))
            let yd = try dense.forward(x, training: true), ys = try sparse.forward(x, training: true)
            XCTAssertNotNil(sparse.weight.compressed)
            assertClose(ys.scalars, yd.scalars, rtol: 1e-5, atol: 1e-5, "forward \(step)")
            // fused step on even iterations, gradient then optimizer.step on odd ones
            if step % 2 == 0 { optD.prepareFusedStep(dense.parameters); optS.prepareFusedStep(sparse.parameters) }
            let dxd = try dense.backward(dy, needInputGradient: true)!, dxs = try sparse.backward(dy, needInputGradient: true)!
            assertClose(dxs.scalars, dxd.scalars, rtol: 1e-5, atol: 1e-5, "input gradient \(step)")
            try optD.step(dense.parameters)
            try optS.step(sparse.parameters)
            assertClose(sparse.weight.value.scalars, dense.weight.value.scalars, rtol: 1e-4, atol: 1e-5, "weights after step \(step)")
        }
        XCTAssertTrue(zip(sparse.weight.value.scalars, mask.kept).allSatisfy { $0.1 || $0.0 == 0 }, "pruned entries stay 0")
        // back to dense: the optimizer's moments follow the parameter
        let (mS, _) = optS.moments(of: sparse.weight)!, (mD, _) = optD.moments(of: dense.weight)!
        assertClose(mS.scalars, mD.scalars, rtol: 1e-4, atol: 1e-6, "first moments")
        sparse.execution = .dense
        let x = try Tensor(shape: [4, 120], scalars: rng.floats(480))
        assertClose(try sparse(x).scalars, try dense(x).scalars, rtol: 1e-4, atol: 1e-5, "after decompressing")
        XCTAssertNil(sparse.weight.compressed)
        // one more step on both, the formerly sparse layer now dense: its moments were scattered
        // back, not reset, so both layers still agree
        let dy = try Tensor(shape: [4, 50], scalars: rng.floats(200))
        for (layer, opt) in [(sparse, optS), (dense, optD)] {
            _ = try layer.forward(x, training: true)
            opt.prepareFusedStep(layer.parameters)
            _ = try layer.backward(dy, needInputGradient: false)
            try opt.step(layer.parameters)
        }
        XCTAssertNil(sparse.weight.compressed)
        assertClose(optS.moments(of: sparse.weight)!.v.scalars, optD.moments(of: dense.weight)!.v.scalars, rtol: 1e-4, atol: 1e-9,
                    "second moments after returning to dense")
        assertClose(sparse.weight.value.scalars, dense.weight.value.scalars, rtol: 1e-4, atol: 1e-5, "weights after returning to dense")
        // a step armed before the forward pass that changes the form is refused, not misapplied
        let late = try Adam(learningRate: 0.01)
        late.prepareFusedStep(sparse.parameters)
        sparse.execution = .sparse
        _ = try sparse.forward(x, training: true)
        _ = try sparse.backward(dy, needInputGradient: false)
        XCTAssertThrowsError(try late.step(sparse.parameters))
    }

    func testCompressedParameterHoldsAFractionOfTheMemory() throws {
        var rng = TestRNG(65)
        var g = SeededGenerator(seed: 6)
        let layer = try Linear(1000, 400, rng: &g)
        try layer.weight.setMask(try Mask(shape: [400, 1000], kept: rng.mask(400_000, keep: 0.1).map { $0 != 0 }))
        let denseBytes = layer.weight.residentBytes
        layer.execution = .sparse
        _ = try layer(try Tensor(shape: [2, 1000], scalars: rng.floats(2000)))
        XCTAssertLessThan(Double(layer.weight.residentBytes), 0.2 * Double(denseBytes))
        XCTAssertEqual(layer.weight.value.shape, [400, 1000], "the dense view stays available")
    }

    func testAutomaticExecutionFollowsTheCrossover() throws {
        var rng = TestRNG(66)
        var g = SeededGenerator(seed: 9)
        let layer = try Linear(256, 128, rng: &g)
        let x = try Tensor(shape: [8, 256], scalars: rng.floats(2048))
        _ = try layer(x)
        XCTAssertNil(layer.weight.compressed, "unpruned layers stay dense")
        let d = SparseCrossover.density
        XCTAssertTrue(d >= 0 && d <= 1)
        let keep = max(0.0, d - 0.05)
        try layer.weight.setMask(try Mask(shape: [128, 256], kept: rng.mask(128 * 256, keep: keep).map { $0 != 0 }))
        _ = try layer(x)
        XCTAssertEqual(layer.weight.compressed != nil, layer.weight.keptFraction <= d)
    }

    /// A mask that keeps every entry (what surgery leaves on a layer it made smaller) allows every
    /// block shape, but nothing is pruned: `.automatic` must run the dense GEMM, never a block or CSR
    /// form doing the same work plus its indexing. A regression: resnet18 after channel surgery ran
    /// every convolution in 4×4 blocks at density 1, 2.6× slower than dense.
    func testAutomaticExecutionKeepsFullMasksDense() throws {
        var g = SeededGenerator(seed: 10)
        let layer = try Linear(64, 32, rng: &g)
        try layer.weight.setMask(Mask(ones: [32, 64]))
        let conv = try Conv2d(8, 16, kernelSize: 3, padding: 1, rng: &g)
        try conv.weight.setMask(Mask(ones: [16, 8, 3, 3]))
        _ = try layer(Tensor.uniform([4, 64], -1, 1, rng: &g))
        _ = try conv.forward(Tensor.uniform([2, 8, 6, 6], -1, 1, rng: &g), training: false)
        XCTAssertNil(layer.weight.compressed, "a full mask runs dense")
        XCTAssertNil(conv.weight.compressed, "a full mask runs dense")
        for f in [CompressedFormat.csr, .block(rows: 4, cols: 4), .block(rows: 8, cols: 8), .block(rows: 16, cols: 1)] {
            XCTAssertNil(SparseCrossover.choose(density: 1, among: [f], allowDense: true), "\(f) at density 1")
        }
    }

    /// `.automatic` decides a convolution's training form on the convolution's own training path
    /// (im2col, compressed product, input and weight gradients), its inference form on the product
    /// alone; switching between them keeps the values, and every form computes what dense does.
    func testAutomaticConvolutionChoosesTrainingFormOnItsOwnPath() throws {
        var g = SeededGenerator(seed: 11)
        let conv = try Conv2d(16, 16, kernelSize: 3, padding: 1, rng: &g)
        let kept = (0..<conv.weight.count).map { _ in g.nextUnitFloat() < 0.1 }
        try conv.weight.setMask(Mask(shape: conv.weight.shape, kept: kept))
        let twin = try Conv2d(weight: conv.weight.value, bias: conv.bias!.value, padding: 1)
        try twin.weight.setMask(conv.weight.mask!)
        twin.execution = .dense
        let x = Tensor.uniform([4, 16, 8, 8], -1, 1, rng: &g), dy = Tensor.uniform([4, 16, 8, 8], -1, 1, rng: &g)
        let density = conv.weight.keptFraction
        let allowed = try CompressedFormat.allowed(by: conv.weight.effectiveMask.storage, rows: 16, cols: 16 * 9)
        let trainingChoice = ConvolutionTrainingCrossover.choose(density: density, among: allowed, allowDense: true)
        let inferenceChoice = SparseCrossover.choose(density: density, among: allowed, allowDense: true)
        for round in 0..<2 {
            let y = try conv.forward(x, training: true), yRef = try twin.forward(x, training: true)
            XCTAssertEqual(conv.weight.compressed?.format, trainingChoice, "training form, round \(round)")
            assertClose(y.scalars, yRef.scalars, rtol: 1e-4, atol: 1e-5, "training forward, round \(round)")
            let dx = try conv.backward(dy, needInputGradient: true)!, dxRef = try twin.backward(dy, needInputGradient: true)!
            assertClose(dx.scalars, dxRef.scalars, rtol: 1e-4, atol: 1e-4, "input gradient, round \(round)")
            assertClose(conv.weight.grad.scalars, twin.weight.grad.scalars, rtol: 1e-4, atol: 1e-3, "weight gradient, round \(round)")
            let z = try conv.forward(x, training: false), zRef = try twin.forward(x, training: false)
            XCTAssertEqual(conv.weight.compressed?.format, inferenceChoice, "inference form, round \(round)")
            assertClose(z.scalars, zRef.scalars, rtol: 1e-4, atol: 1e-5, "inference forward, round \(round)")
            XCTAssertEqual(conv.weight.value.scalars, twin.weight.value.scalars, "values kept across the switch")
            XCTAssertEqual(conv.weight.mask?.kept, kept, "mask kept across the switch")
        }
        // the measurements behind the choice exist and are positive
        XCTAssertGreaterThan(ConvolutionTrainingCrossover.predicted(.csr, density: 0.1) ?? 0, 0)
    }

    func testCompressedExportRoundTripAndValidation() throws {
        let m = Model.mlp(seed: 3)
        try ModelPruner.prune(m, PruningRequest(method: .l1, scope: .global, amount: 0.9))
        m.setExecution(.sparse)
        var g = SeededGenerator(seed: 4)
        let x = Tensor.uniform([5, 784], -1, 1, rng: &g)
        let logits = try m.forward(x)
        XCTAssertTrue(m.parameters.filter(\.isPrunable).allSatisfy { $0.compressed != nil })
        let dir = NSTemporaryDirectory() + "compressed-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ModelFile.save(m, to: dir + "/c.safetensors", layout: .compressed)
        try ModelFile.save(m, to: dir + "/p.safetensors", layout: .plain)
        let (c, _) = try ModelFile.load(dir + "/c.safetensors"), (p, _) = try ModelFile.load(dir + "/p.safetensors")
        for ((name, a), (_, b)) in zip(c.namedParameters, p.namedParameters) {
            XCTAssertEqual(a.value.scalars, b.value.scalars, name)
            XCTAssertEqual(a.mask?.kept, b.mask?.kept, name)
        }
        c.setExecution(.dense)
        assertClose(try c.forward(x).scalars, logits.scalars, rtol: 1e-4, atol: 1e-5, "reloaded logits")
        let size = { (f: String) in (try FileManager.default.attributesOfItem(atPath: dir + f)[.size] as! NSNumber).doubleValue }
        XCTAssertLessThan(try size("/c.safetensors"), 0.3 * (try size("/p.safetensors")))
        // a column index out of range is rejected with a clear error, not a crash
        var (tensors, ints, meta) = try SafeTensors.readAll(dir + "/c.safetensors")
        var col = ints["fc2.weight.col_indices"]!.map { Int32($0) }
        col[0] = 100_000
        var integers: [String: (shape: [Int], values: [Int32])] = [:]
        for (k, v) in ints { integers[k] = ([v.count], v.map { Int32($0) }) }
        integers["fc2.weight.col_indices"] = ([col.count], col)
        for k in ints.keys { tensors[k] = nil }
        meta["unused"] = "1"
        try SafeTensors.write(tensors, integers: integers, metadata: meta, to: dir + "/bad.safetensors")
        XCTAssertThrowsError(try ModelFile.load(dir + "/bad.safetensors")) { e in
            XCTAssertTrue("\(e)".contains("fc2.weight"), "\(e)")
        }
    }

    /// Conv2d through im2col: the same outputs, gradients and steps in both forms.
    func testConv2dSparseMatchesDenseMasked() throws {
        var rng = TestRNG(67)
        var g = SeededGenerator(seed: 8)
        let dense = try Conv2d(3, 8, kernelSize: 3, stride: 1, rng: &g)
        let sparse = try Conv2d(weight: dense.weight.value, bias: dense.bias!.value, stride: 1)
        let mask = try Mask(shape: dense.weight.shape, kept: rng.mask(dense.weight.count, keep: 0.2).map { $0 != 0 })
        try dense.weight.setMask(mask)
        try sparse.weight.setMask(mask)
        dense.execution = .dense
        sparse.execution = .sparse
        let optD = try SGD(learningRate: 0.05, momentum: 0.9), optS = try SGD(learningRate: 0.05, momentum: 0.9)
        for step in 0..<2 {
            let x = try Tensor(shape: [2, 3, 9, 7], scalars: rng.floats(2 * 3 * 9 * 7))
            let yd = try dense.forward(x, training: true), ys = try sparse.forward(x, training: true)
            XCTAssertNotNil(sparse.weight.compressed)
            assertClose(ys.scalars, yd.scalars, rtol: 1e-5, atol: 1e-5, "conv forward \(step)")
            let dy = try Tensor(shape: yd.shape, scalars: rng.floats(yd.count))
            if step == 0 { optD.prepareFusedStep(dense.parameters); optS.prepareFusedStep(sparse.parameters) }
            let dxd = try dense.backward(dy, needInputGradient: true)!, dxs = try sparse.backward(dy, needInputGradient: true)!
            assertClose(dxs.scalars, dxd.scalars, rtol: 1e-5, atol: 1e-5, "conv input gradient \(step)")
            if step == 1 { assertClose(sparse.weight.grad.scalars, dense.weight.grad.scalars, rtol: 1e-5, atol: 1e-5, "conv dW") }
            try optD.step(dense.parameters)
            try optS.step(sparse.parameters)
            assertClose(sparse.weight.value.scalars, dense.weight.value.scalars, rtol: 1e-5, atol: 1e-6, "conv weights \(step)")
        }
        XCTAssertEqual(sparse.weight.mask?.kept, mask.kept)
    }

    // MARK: the sparse direct convolution (inference)

    /// pk_conv2d_sparse_forward_f32 against its reference over strides, padding, dilation, kernels
    /// that are not square, planes narrower and wider than a register chunk, densities 0 to 1, with
    /// and without the epilogue (scale, shift, ReLU), every ISA, and bitwise equal for 1 and 2 threads.
    func testSparseConvolutionAgainstReference() throws {
        var rng = TestRNG(70)
        // (N, C, H, W, OC, KH, KW, stride, padding, dilation)
        let shapes = [(2, 3, 9, 7, 8, 3, 3, 1, 1, 1), (1, 5, 11, 13, 6, 3, 3, 2, 1, 1), (3, 4, 8, 8, 5, 1, 1, 2, 0, 1),
                      (2, 3, 10, 9, 4, 3, 3, 1, 2, 2), (1, 2, 7, 7, 3, 5, 3, 3, 2, 1), (2, 16, 4, 4, 33, 3, 3, 1, 1, 1),
                      (1, 1, 28, 28, 4, 3, 3, 1, 1, 1), (1, 3, 5, 5, 2, 3, 3, 1, 0, 1), (2, 2, 6, 6, 3, 2, 2, 2, 1, 3),
                      (1, 2, 3, 3, 2, 3, 3, 1, 1, 1)]
        for (n, c, h, w, oc, kh, kw, st, pd, dl) in shapes {
            let oh = (h + 2 * pd - dl * (kh - 1) - 1) / st + 1, ow = (w + 2 * pd - dl * (kw - 1) - 1) / st + 1
            let x = rng.floats(n * c * h * w), ylen = n * oc * oh * ow
            for keep in [0.0, 0.1, 0.5, 1.0] {
                let weight = try Tensor(shape: [oc, c, kh, kw], scalars: rng.floats(oc * c * kh * kw))
                let mask = try Mask(shape: weight.shape, kept: rng.mask(weight.count, keep: keep).map { $0 != 0 })
                let sm = try SparseMatrix(weight: weight, mask: mask)
                var a = sm.csr
                for (relu, affine) in [(0, false), (1, true)] {
                    let scale = affine ? rng.floats(oc, 0.5, 2) : nil, shift = affine ? rng.floats(oc) : nil
                    let label = "\(n)×\(c)×\(h)×\(w) → \(oc), \(kh)×\(kw) s\(st) p\(pd) d\(dl), keep \(keep), relu \(relu)"
                    var want = [Float](repeating: .nan, count: ylen)
                    XCTAssertEqual(pk_ref_conv2d_sparse_forward_f32(&a, Int64(n), Int64(c), Int64(h), Int64(w), Int64(kh), Int64(kw),
                                                                    Int64(st), Int64(pd), Int64(dl), Int32(relu), x, scale, shift, &want), PK_OK)
                    // the reference against the dense reference on the masked weight
                    var dense = [Float](repeating: .nan, count: ylen)
                    XCTAssertEqual(pk_ref_conv2d_dilated_forward_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(oc), Int64(kh),
                                                                     Int64(kw), Int64(st), Int64(pd), Int64(dl), Int32(relu), x,
                                                                     weight.scalars, mask.storage.toArray(), scale, shift, &dense), PK_OK)
                    assertClose(want, dense, rtol: 1e-6, atol: 1e-6, "\(label): references")
                    let tol = Float(c * kh * kw) * 2e-7 + 1e-6
                    try forEachISA { isa in
                        var got = [[Float]]()
                        for t in [1, 2] {
                            var y = [Float](repeating: .nan, count: ylen)
                            XCTAssertEqual(withThreads(t) {
                                pk_conv2d_sparse_forward_f32(&a, Int64(n), Int64(c), Int64(h), Int64(w), Int64(kh), Int64(kw),
                                                             Int64(st), Int64(pd), Int64(dl), Int32(relu), x, scale, shift, &y)
                            }, PK_OK, "\(isa) \(label)")
                            got.append(y)
                        }
                        XCTAssertEqual(got[0].map(\.bitPattern), got[1].map(\.bitPattern), "\(isa) \(label): 1 vs 2 threads")
                        XCTAssertFalse(got[0].contains { $0.isNaN }, "\(isa) \(label): every output written")
                        assertClose(got[0], want, rtol: 1e-5, atol: tol, "\(isa) \(label)")
                    }
                }
            }
        }
    }

    /// The sparse direct convolution's ReLU epilogue keeps NaN, as the ReLU layer and the dense
    /// convolutions do: a NaN input pixel reaches the outputs whose windows hold it through a kept
    /// weight, those stay NaN on every ISA, and the rest match the reference and are rectified.
    func testSparseConvolutionReluKeepsNaN() throws {
        var rng = TestRNG(72)
        for (n, c, h, oc, st) in [(2, 4, 12, 40, 1), (1, 3, 11, 9, 2)] {
            var x = rng.floats(n * c * h * h)
            x[(n - 1) * c * h * h + c / 2 * h * h + 5 * h + 4] = .nan  // last image, a middle channel, pixel (5, 4)
            let weight = try Tensor(shape: [oc, c, 3, 3], scalars: rng.floats(oc * c * 9))
            let mask = try Mask(shape: weight.shape, kept: rng.mask(weight.count, keep: 0.5).map { $0 != 0 })
            let sm = try SparseMatrix(weight: weight, mask: mask)  // owns the arrays `a` points into
            defer { withExtendedLifetime(sm) {} }
            var a = sm.csr
            let oh = (h + 2 - 3) / st + 1, scale = rng.floats(oc, 0.5, 2), shift = rng.floats(oc)
            var want = [Float](repeating: 0, count: n * oc * oh * oh)
            XCTAssertEqual(pk_ref_conv2d_sparse_forward_f32(&a, Int64(n), Int64(c), Int64(h), Int64(h), 3, 3, Int64(st), 1, 1, 1, x,
                                                            scale, shift, &want), PK_OK)
            XCTAssertTrue(want.contains { $0.isNaN } && want.contains { $0 == 0 }, "the reference has NaN and clamped outputs")
            try forEachISA { isa in
                var y = [Float](repeating: 0, count: want.count)
                XCTAssertEqual(pk_conv2d_sparse_forward_f32(&a, Int64(n), Int64(c), Int64(h), Int64(h), 3, 3, Int64(st), 1, 1, 1, x,
                                                            scale, shift, &y), PK_OK)
                XCTAssertEqual(y.map(\.isNaN), want.map(\.isNaN), "\(isa) s\(st): NaN where the reference has it")
                XCTAssertTrue(y.allSatisfy { $0.isNaN || $0 >= 0 }, "\(isa) s\(st): rectified")
                let keep = want.indices.filter { !want[$0].isNaN }
                assertClose(keep.map { y[$0] }, keep.map { want[$0] }, rtol: 1e-5, atol: Float(c * 9) * 2e-7 + 1e-6, "\(isa) s\(st)")
            }
        }
    }

    func testSparseConvolutionContract() throws {
        var rng = TestRNG(71)
        let (n, c, h, w, oc) = (2, 3, 6, 5, 4)
        let weight = try Tensor(shape: [oc, c, 3, 3], scalars: rng.floats(oc * c * 9))
        let sm = try SparseMatrix(weight: weight, mask: Mask(shape: weight.shape, kept: rng.mask(weight.count, keep: 0.3).map { $0 != 0 }))
        var a = sm.csr
        let x = rng.floats(n * c * h * w)
        var y = [Float](repeating: 0, count: n * oc * h * w)
        func run(_ a: UnsafePointer<pk_csr>?, n: Int = 2, c: Int = 3, kh: Int = 3, s: Int = 1, p: Int = 1, d: Int = 1) -> pk_status {
            pk_conv2d_sparse_forward_f32(a, Int64(n), Int64(c), Int64(h), Int64(w), Int64(kh), 3, Int64(s), Int64(p), Int64(d), 0,
                                         x, nil, nil, &y)
        }
        XCTAssertEqual(run(&a), PK_OK)
        XCTAssertEqual(run(nil), PK_ERR_NULL)
        XCTAssertEqual(run(&a, c: 2), PK_ERR_SHAPE, "A->cols is not C·KH·KW")
        XCTAssertEqual(run(&a, s: 0), PK_ERR_SHAPE)
        XCTAssertEqual(run(&a, p: -1), PK_ERR_SHAPE)
        XCTAssertEqual(run(&a, d: 0), PK_ERR_SHAPE)
        XCTAssertEqual(run(&a, n: -1), PK_ERR_SHAPE)
        XCTAssertEqual(run(&a, p: 0, d: 4), PK_ERR_SHAPE, "a dilated window wider than the padded image")
        // zero extents with NULL pointers; x and y overlapping
        XCTAssertEqual(pk_conv2d_sparse_forward_f32(&a, 0, Int64(c), Int64(h), Int64(w), 3, 3, 1, 1, 1, 0, nil, nil, nil, nil), PK_OK)
        XCTAssertEqual(pk_conv2d_sparse_forward_f32(&a, 2, Int64(c), Int64(h), Int64(w), 3, 3, 1, 1, 1, 0, nil, nil, nil, &y), PK_ERR_NULL)
        var buf = rng.floats(max(n * c * h * w, n * oc * h * w))
        let st = buf.withUnsafeMutableBufferPointer { b in
            pk_conv2d_sparse_forward_f32(&a, 2, Int64(c), Int64(h), Int64(w), 3, 3, 1, 1, 1, 0, b.baseAddress, nil, nil, b.baseAddress)
        }
        XCTAssertEqual(st, PK_ERR_ALIAS)
        // no kept entry: y = act(shift)
        let empty = try SparseMatrix(weight: weight, mask: Mask(shape: weight.shape, kept: [Bool](repeating: false, count: weight.count)))
        var e = empty.csr
        let shift: [Float] = [-1, 2, 0.5, -0.25]
        XCTAssertEqual(pk_conv2d_sparse_forward_f32(&e, 2, Int64(c), Int64(h), Int64(w), 3, 3, 1, 1, 1, 1, x, nil, shift, &y), PK_OK)
        for i in 0..<y.count { XCTAssertEqual(y[i], max(shift[(i / (h * w)) % oc], 0)) }
    }

    /// Conv2d at inference runs the sparse direct convolution; it gives the dense-masked outputs for
    /// strides, padding and dilation, and a pruned ResNet-20 (BatchNorm folded into the epilogue)
    /// gives the same logits sparse and dense.
    func testConv2dSparseInferenceMatchesDense() throws {
        var rng = TestRNG(72)
        var g = SeededGenerator(seed: 9)
        for (k, st, pd, dl) in [(3, 1, 1, 1), (3, 2, 1, 1), (1, 2, 0, 1), (3, 1, 2, 2), (5, 1, 2, 1)] {
            let dense = try Conv2d(6, 10, kernelSize: k, stride: st, padding: pd, dilation: dl, rng: &g)
            let sparse = try Conv2d(weight: dense.weight.value, bias: dense.bias!.value, stride: st, padding: pd, dilation: dl)
            let mask = try Mask(shape: dense.weight.shape, kept: rng.mask(dense.weight.count, keep: 0.15).map { $0 != 0 })
            try dense.weight.setMask(mask)
            try sparse.weight.setMask(mask)
            dense.execution = .dense
            sparse.execution = .format(.csr)
            let x = try Tensor(shape: [3, 6, 12, 11], scalars: rng.floats(3 * 6 * 12 * 11))
            let yd = try dense.forward(x, training: false), ys = try sparse.forward(x, training: false)
            XCTAssertTrue(sparse.weight.compressed is SparseMatrix)
            XCTAssertEqual(ys.shape, yd.shape)
            assertClose(ys.scalars, yd.scalars, rtol: 1e-5, atol: 1e-5, "k\(k) s\(st) p\(pd) d\(dl)")
            XCTAssertThrowsError(try sparse.backward(ys, needInputGradient: true), "no backward after an inference forward")
        }
        let model = try Model.resnet20(seed: 4)
        for (name, b) in model.namedBuffers where name.hasSuffix("running_mean") || name.hasSuffix("running_var") {
            let v = name.hasSuffix("running_var") ? rng.floats(b.value.count, 0.5, 2) : rng.floats(b.value.count, -0.2, 0.2)
            b.value = try Tensor(shape: b.value.shape, scalars: v)
        }
        try Prune.globalUnstructured(model.prunableWeights.map(\.parameter), amount: .fraction(0.9))
        let x = Tensor.uniform([3, 1, 28, 28], -1, 1, rng: &g)
        model.setExecution(.dense)
        let yd = try model.forward(x, training: false)
        model.setExecution(.format(.csr))
        let ys = try model.forward(x, training: false)
        let convs = model.network.namedLayers.compactMap { $0.layer as? Conv2d }
        XCTAssertTrue(convs.allSatisfy { $0.weight.compressed is SparseMatrix })
        let scaleOf = yd.scalars.map { abs($0) }.max()!
        assertClose(ys.scalars, yd.scalars, rtol: 1e-4, atol: 1e-4 * scaleOf, "pruned resnet20 logits, sparse vs dense")
    }
}
