import XCTest
import CPruneKernels
@testable import PruneKit

/// Packed N:M and block-sparse kernels (issue 16): the forward, input gradient and fused weight
/// update against the naive references of the packed formats and against the dense-masked
/// references (independent of the packing), on every ISA path, at 1 and 2 threads (bitwise equal),
/// on ragged sizes and padded leading dimensions, plus the refusals of bad input.
final class StructuredSparseTests: XCTestCase {
    enum Structure: CustomStringConvertible {
        case nm(Int, Int), block(Int, Int)
        var description: String {
            switch self {
            case let .nm(n, m): return "\(n):\(m)"
            case let .block(r, c): return "block \(r)×\(c)"
            }
        }
    }

    /// A mask of the structure: N:M groups keeping n of m (some groups fewer, so padding occurs), or
    /// blocks kept with probability `keep`.
    func structuredMask(_ s: Structure, _ rows: Int, _ cols: Int, keep: Double, _ rng: inout TestRNG) -> [Bool] {
        var kept = [Bool](repeating: false, count: rows * cols)
        switch s {
        case let .nm(n, m):
            for r in 0..<rows {
                for g in 0..<(cols / m) {
                    var pos = Array(0..<m)
                    for i in stride(from: m - 1, to: 0, by: -1) { pos.swapAt(i, rng.int(i + 1)) }
                    let k = rng.int(4) == 0 ? rng.int(n + 1) : n // a quarter of the groups under-filled
                    for j in pos.prefix(k) { kept[r * cols + g * m + j] = true }
                }
            }
        case let .block(br, bc):
            for i in 0..<(rows / br) {
                for c in 0..<(cols / bc) where Double(rng.int(1000)) / 1000 < keep {
                    for a in 0..<br { for b in 0..<bc { kept[(i * br + a) * cols + c * bc + b] = true } }
                }
            }
        }
        return kept
    }

    /// The packed matrix behind one set of closures over the C kernels (optimised and reference).
    struct Packed {
        let stateCount: Int
        let values: FloatStorage
        let fwd: (Bool, Int32, Int, [Float], Int, [Float], inout [Float], Int) -> pk_status
        let bwd: (Bool, Int32, Int, [Float], Int, inout [Float], Int) -> pk_status
        let upd: (Int32, Int, [Float], Int, [Float], Int, UnsafeMutablePointer<pk_update_desc>?, inout [Float]) -> pk_status
        let refGrad: (Int32, Int, [Float], Int, [Float], Int, inout [Float]) -> pk_status
        let gather: (FloatStorage) -> FloatStorage
        let dense: () throws -> (weight: Tensor, mask: Mask)
    }

    func pack(_ s: Structure, _ w: Tensor, _ mask: Mask) throws -> Packed {
        switch s {
        case let .nm(n, m):
            let p = try NMSparseMatrix(weight: w, mask: mask, n: n, m: m)
            return Packed(
                stateCount: p.stateCount, values: p.values,
                fwd: { opt, l, b, x, ldx, bias, y, ldy in
                    var a = p.raw
                    return opt ? pk_nm_forward_f32(&a, l, Int64(b), x, Int64(ldx), bias, &y, Int64(ldy))
                        : pk_ref_nm_forward_f32(&a, l, Int64(b), x, Int64(ldx), bias, &y, Int64(ldy))
                },
                bwd: { opt, l, b, dy, lddy, dx, lddx in
                    var a = p.raw
                    return opt ? pk_nm_input_grad_f32(&a, l, Int64(b), dy, Int64(lddy), &dx, Int64(lddx))
                        : pk_ref_nm_input_grad_f32(&a, l, Int64(b), dy, Int64(lddy), &dx, Int64(lddx))
                },
                upd: { l, b, dy, lddy, x, ldx, u, g in
                    var a = p.raw
                    return pk_nm_weight_update_f32(&a, l, Int64(b), dy, Int64(lddy), x, Int64(ldx), u, &g)
                },
                refGrad: { l, b, dy, lddy, x, ldx, g in
                    var a = p.raw
                    return pk_ref_nm_weight_grad_f32(&a, l, Int64(b), dy, Int64(lddy), x, Int64(ldx), &g)
                },
                gather: { p.gather($0) }, dense: { try p.dense() })
        case let .block(br, bc):
            let p = try BlockSparseMatrix(weight: w, mask: mask, blockRows: br, blockCols: bc)
            return Packed(
                stateCount: p.stateCount, values: p.values,
                fwd: { opt, l, b, x, ldx, bias, y, ldy in
                    var a = p.raw
                    return opt ? pk_bsr_forward_f32(&a, l, Int64(b), x, Int64(ldx), bias, &y, Int64(ldy))
                        : pk_ref_bsr_forward_f32(&a, l, Int64(b), x, Int64(ldx), bias, &y, Int64(ldy))
                },
                bwd: { opt, l, b, dy, lddy, dx, lddx in
                    var a = p.raw
                    return opt ? pk_bsr_input_grad_f32(&a, l, Int64(b), dy, Int64(lddy), &dx, Int64(lddx))
                        : pk_ref_bsr_input_grad_f32(&a, l, Int64(b), dy, Int64(lddy), &dx, Int64(lddx))
                },
                upd: { l, b, dy, lddy, x, ldx, u, g in
                    var a = p.raw
                    return pk_bsr_weight_update_f32(&a, l, Int64(b), dy, Int64(lddy), x, Int64(ldx), u, &g)
                },
                refGrad: { l, b, dy, lddy, x, ldx, g in
                    var a = p.raw
                    return pk_ref_bsr_weight_grad_f32(&a, l, Int64(b), dy, Int64(lddy), x, Int64(ldx), &g)
                },
                gather: { p.gather($0) }, dense: { try p.dense() })
        }
    }

    static let structures: [Structure] = [.nm(2, 4), .nm(1, 4), .nm(2, 8), .nm(4, 8), .nm(3, 5),
                                          .block(4, 4), .block(8, 8), .block(16, 1), .block(1, 16), .block(2, 2), .block(3, 5)]

    /// Rows and columns around the tiles (3/6-row and 24-row blocks, 16/32-row blocks, 128-column
    /// blocks, 128-row transposed blocks), batches around the 32-sample panels and the 16-sample
    /// vectors, padded leading dimensions; each result checked against both references, at 1 and 2
    /// threads with identical bits, and feature-major activations giving the same numbers.
    func testProductsAgainstReferences() throws {
        var rng = TestRNG(160)
        for s in Self.structures {
            let (mr, mc): (Int, Int) = { switch s { case let .nm(_, m): return (1, m); case let .block(r, c): return (r, c) } }()
            for (rows0, cols0, batch) in [(1, 8, 1), (25, 40, 33), (131, 264, 17), (48, 130, 64), (7, 16, 97)] {
                let rows = max(mr, rows0 / mr * mr), cols = max(mc, cols0 / mc * mc)
                let kept = structuredMask(s, rows, cols, keep: 0.3, &rng)
                var wv = rng.floats(rows * cols)
                for i in 0..<wv.count where !kept[i] { wv[i] = 0 }
                let w = try Tensor(shape: [rows, cols], scalars: wv), mask = try Mask(shape: [rows, cols], kept: kept)
                let p = try pack(s, w, mask)
                let (dw, dm) = try p.dense()
                XCTAssertEqual(dw.scalars, wv, "\(s): unpacked weight")
                XCTAssertEqual(dm.kept, kept, "\(s): unpacked mask")
                let label = "\(s) \(rows)×\(cols) batch \(batch)"
                let ldx = cols + 3, ldy = rows + 2
                let x = rng.floats(batch * ldx), dy = rng.floats(batch * ldy), bias = rng.floats(rows)
                let mbytes = kept.map { UInt8($0 ? 1 : 0) }
                // dense-masked references (the packing plays no part) and the packed-format references
                var yD = [Float](repeating: 0, count: batch * ldy), dxD = [Float](repeating: 0, count: batch * ldx)
                var gD = [Float](repeating: 0, count: rows * cols)
                XCTAssertEqual(pk_ref_linear_forward_f32(Int64(batch), Int64(rows), Int64(cols), x, Int64(ldx), wv, Int64(cols),
                                                         mbytes, Int64(cols), bias, &yD, Int64(ldy)), PK_OK)
                XCTAssertEqual(pk_ref_gemm_masked_nn_f32(Int64(batch), Int64(cols), Int64(rows), 1, dy, Int64(ldy), wv, Int64(cols),
                                                         mbytes, Int64(cols), 0, &dxD, Int64(ldx)), PK_OK)
                XCTAssertEqual(pk_ref_gemm_masked_tn_f32(Int64(rows), Int64(cols), Int64(batch), 1, dy, Int64(ldy), x, Int64(ldx),
                                                         mbytes, Int64(cols), 0, &gD, Int64(cols)), PK_OK)
                let gDslots = p.gather(FloatStorage(gD)).toArray()
                var yR = [Float](repeating: 0, count: batch * ldy), dxR = [Float](repeating: 0, count: batch * ldx)
                var gR = [Float](repeating: 0, count: p.stateCount)
                XCTAssertEqual(p.fwd(false, 0, batch, x, ldx, bias, &yR, ldy), PK_OK)
                XCTAssertEqual(p.bwd(false, 0, batch, dy, ldy, &dxR, ldx), PK_OK)
                XCTAssertEqual(p.refGrad(0, batch, dy, ldy, x, ldx, &gR), PK_OK)
                let tol: Float = 2e-6 * Float(max(cols, rows, batch)).squareRoot()
                forEachISA { isa in
                    var outs: [[[Float]]] = []
                    for t in [1, 2] {
                        var y = [Float](repeating: .nan, count: batch * ldy), dx = [Float](repeating: .nan, count: batch * ldx)
                        var g = [Float](repeating: .nan, count: p.stateCount)
                        withThreads(t) {
                            XCTAssertEqual(p.fwd(true, 0, batch, x, ldx, bias, &y, ldy), PK_OK)
                            XCTAssertEqual(p.bwd(true, 0, batch, dy, ldy, &dx, ldx), PK_OK)
                            XCTAssertEqual(p.upd(0, batch, dy, ldy, x, ldx, nil, &g), PK_OK)
                        }
                        outs.append([y, dx, g])
                    }
                    let l = "\(label) \(isa)"
                    for k in 0..<3 { XCTAssertEqual(outs[0][k].map(\.bitPattern), outs[1][k].map(\.bitPattern), "\(l): threads, output \(k)") }
                    let (y, dx, g) = (outs[0][0], outs[0][1], outs[0][2])
                    for b in 0..<batch {
                        let yr = (b * ldy)..<(b * ldy + rows), xr = (b * ldx)..<(b * ldx + cols)
                        assertClose(Array(y[yr]), Array(yR[yr]), rtol: tol, atol: tol, "\(l): forward vs packed reference")
                        assertClose(Array(y[yr]), Array(yD[yr]), rtol: tol, atol: tol, "\(l): forward vs dense reference")
                        assertClose(Array(dx[xr]), Array(dxR[xr]), rtol: tol, atol: tol, "\(l): input gradient vs packed reference")
                        assertClose(Array(dx[xr]), Array(dxD[xr]), rtol: tol, atol: tol, "\(l): input gradient vs dense reference")
                        XCTAssertTrue(y[(b * ldy + rows)..<(b * ldy + ldy)].allSatisfy(\.isNaN), "\(l): forward wrote past its rows")
                        XCTAssertTrue(dx[(b * ldx + cols)..<(b * ldx + ldx)].allSatisfy(\.isNaN), "\(l): input gradient wrote past its rows")
                    }
                    assertClose(g, gR, rtol: tol, atol: tol, "\(l): weight gradient vs packed reference")
                    assertClose(g, gDslots, rtol: tol, atol: tol, "\(l): weight gradient vs dense reference")
                    // feature-major activations: the same numbers
                    var xt = [Float](repeating: 0, count: cols * batch), dyt = [Float](repeating: 0, count: rows * batch)
                    for b in 0..<batch {
                        for c in 0..<cols { xt[c * batch + b] = x[b * ldx + c] }
                        for r in 0..<rows { dyt[r * batch + b] = dy[b * ldy + r] }
                    }
                    var yt = [Float](repeating: .nan, count: rows * batch), dxt = [Float](repeating: .nan, count: cols * batch)
                    var gt = [Float](repeating: .nan, count: p.stateCount)
                    let f = Int32(PK_LAYOUT_FEATURES)
                    XCTAssertEqual(p.fwd(true, f, batch, xt, batch, bias, &yt, batch), PK_OK)
                    XCTAssertEqual(p.bwd(true, f, batch, dyt, batch, &dxt, batch), PK_OK)
                    XCTAssertEqual(p.upd(f, batch, dyt, batch, xt, batch, nil, &gt), PK_OK)
                    for b in 0..<batch {
                        for r in 0..<rows { XCTAssertEqual(yt[r * batch + b], y[b * ldy + r], "\(l): feature-major forward") }
                        for c in 0..<cols { XCTAssertEqual(dxt[c * batch + b], dx[b * ldx + c], "\(l): feature-major input gradient") }
                    }
                    XCTAssertEqual(gt, g, "\(l): feature-major weight gradient")
                }
            }
        }
    }

    /// The fused step against the reference gradient followed by the reference optimizer step on the
    /// kept entries, for SGD, momentum (Nesterov), Adam and AdamW; padding slots never move.
    func testFusedUpdatesAgainstReference() throws {
        var rng = TestRNG(161)
        for s in [Structure.nm(2, 4), .nm(1, 4), .nm(2, 8), .block(4, 4), .block(16, 1), .block(1, 16)] {
            let (rows, cols, batch) = (48, 160, 150) // two chunks of samples
            let kept = structuredMask(s, rows, cols, keep: 0.4, &rng)
            var wv = rng.floats(rows * cols)
            for i in 0..<wv.count where !kept[i] { wv[i] = 0 }
            let x = rng.floats(batch * cols), dy = rng.floats(batch * rows)
            for kind in ["sgd", "momentum", "adam", "adamw"] {
                let p = try pack(s, try Tensor(shape: [rows, cols], scalars: wv), try Mask(shape: [rows, cols], kept: kept))
                let n = p.stateCount
                let keepSlot: [UInt8] = {
                    // kept slots: where the dense mask gathered into slot order is 1
                    let km = FloatStorage(kept.map { $0 ? 1 : 0 })
                    return p.gather(km).toArray().map { $0 != 0 ? 1 : 0 }
                }()
                let w0 = p.values.toArray(), m0 = rng.floats(n, -0.1, 0.1), v0 = rng.floats(n, 0, 0.1)
                var mF = m0, vF = v0, g = [Float](repeating: .nan, count: n)
                var u = pk_update_desc()
                u.kind = kind.hasPrefix("adam") ? PK_UPDATE_ADAM : PK_UPDATE_SGD
                u.lr = 0.05; u.weight_decay = 0.01; u.beta1 = 0.9; u.beta2 = 0.99; u.eps = 1e-8; u.step = 4
                u.decoupled = kind == "adamw" ? 1 : 0
                if kind == "momentum" { u.momentum = 0.9; u.nesterov = 1 }
                u.w = p.values.base
                let st = mF.withUnsafeMutableBufferPointer { M in vF.withUnsafeMutableBufferPointer { V in
                    u.m = M.baseAddress; u.v = V.baseAddress
                    return p.upd(0, batch, dy, rows, x, cols, &u, &g)
                } }
                XCTAssertEqual(st, PK_OK)
                // reference: the gradient, then the textbook step on kept slots
                var gR = [Float](repeating: 0, count: n)
                XCTAssertEqual(p.refGrad(0, batch, dy, rows, x, cols, &gR), PK_OK)
                var wR = w0, mR = m0, vR = v0
                if kind.hasPrefix("adam") {
                    XCTAssertEqual(pk_ref_adam_step_f32(Int64(n), u.lr, u.beta1, u.beta2, u.eps, u.weight_decay, u.decoupled, u.step,
                                                        keepSlot, gR, &wR, &mR, &vR), PK_OK)
                } else {
                    XCTAssertEqual(pk_ref_sgd_step_f32(Int64(n), u.lr, u.momentum, u.weight_decay, u.nesterov, keepSlot, gR, &wR,
                                                       &mR), PK_OK)
                }
                let label = "\(s) \(kind)"
                assertClose(g, gR, rtol: 1e-5, atol: 1e-5, "\(label): gradient")
                assertClose(p.values.toArray(), wR, rtol: 1e-5, atol: 1e-6, "\(label): weights")
                if kind != "sgd" { assertClose(mF, mR, rtol: 1e-5, atol: 1e-6, "\(label): first moment") }
                if kind.hasPrefix("adam") { assertClose(vF, vR, rtol: 1e-4, atol: 1e-7, "\(label): second moment") }
                XCTAssertNotEqual(p.values.toArray(), w0, "\(label): the step moved the weights")
                for i in 0..<n where keepSlot[i] == 0 {
                    XCTAssertEqual(p.values[i].bitPattern, 0, "\(label): padding weight")
                    XCTAssertEqual(mF[i].bitPattern, m0[i].bitPattern, "\(label): padding state")
                    XCTAssertEqual(vF[i].bitPattern, v0[i].bitPattern, "\(label): padding state")
                    XCTAssertEqual(g[i], 0, "\(label): padding gradient")
                }
                // the dense view keeps the mask: pruned entries are still exactly zero
                let (dw, dm) = try p.dense()
                XCTAssertEqual(dm.kept, kept, "\(label): mask after the step")
                XCTAssertTrue(zip(dw.scalars, kept).allSatisfy { $0.1 || $0.0.bitPattern == 0 }, "\(label): pruned entries stay 0")
            }
        }
    }

    /// Bad input: one refusal per rule, nothing packed; C statuses for every argument check.
    func testBadInputIsRefused() throws {
        var rng = TestRNG(162)
        let w = try Tensor(shape: [8, 30], scalars: rng.floats(240))
        // N:M: the input dimension not a multiple of m; a group keeping more than n; an impossible pattern
        XCTAssertThrowsError(try NMSparseMatrix(weight: w, mask: nil, n: 2, m: 4)) { e in
            XCTAssertTrue("\(e)".contains("multiple of 4"), "\(e)")
        }
        let w32 = try Tensor(shape: [8, 32], scalars: rng.floats(256))
        var dense = [Bool](repeating: false, count: 256)
        for r in 0..<8 { for g in 0..<8 { dense[r * 32 + g * 4] = true; dense[r * 32 + g * 4 + 1] = true } }
        dense[5 * 32 + 14] = true // row 5, group 3 keeps three
        XCTAssertThrowsError(try NMSparseMatrix(weight: w32, mask: Mask(shape: [8, 32], kept: dense), n: 2, m: 4)) { e in
            XCTAssertTrue(e is StructureError && "\(e)".contains("not 2:4"), "\(e)")
        }
        XCTAssertThrowsError(try NMSparseMatrix(weight: w32, mask: nil, n: 5, m: 4))
        XCTAssertThrowsError(try NMSparseMatrix(weight: w32, mask: nil, n: 2, m: 128))
        // blocks: not tiling; a block partly pruned
        XCTAssertThrowsError(try BlockSparseMatrix(weight: w, mask: nil, blockRows: 4, blockCols: 4)) { e in
            XCTAssertTrue("\(e)".contains("do not tile"), "\(e)")
        }
        var blocks = [Bool](repeating: false, count: 256)
        for a in 0..<4 { for b in 0..<4 { blocks[a * 32 + 8 + b] = true } }
        blocks[4 * 32 + 20] = true
        XCTAssertThrowsError(try BlockSparseMatrix(weight: w32, mask: Mask(shape: [8, 32], kept: blocks), blockRows: 4, blockCols: 4)) { e in
            XCTAssertTrue(e is StructureError && "\(e)".contains("partly pruned"), "\(e)")
        }
        XCTAssertThrowsError(try BlockSparseMatrix(weight: w32, mask: nil, blockRows: 0, blockCols: 4))
        // C statuses of the packed kernels
        let nm = try NMSparseMatrix(weight: w32, mask: Mask(shape: [8, 32], kept: dense.enumerated().map { $0.offset == 5 * 32 + 14 ? false : $0.element }),
                                    n: 2, m: 4)
        let bs = try BlockSparseMatrix(weight: w32, mask: Mask(shape: [8, 32], kept: blocks.enumerated().map { $0.offset == 4 * 32 + 20 ? false : $0.element }),
                                       blockRows: 4, blockCols: 4)
        var a = nm.raw, b = bs.raw
        let x = rng.floats(2 * 32), dy = rng.floats(2 * 8)
        var y = [Float](repeating: 0, count: 2 * 8), dx = [Float](repeating: 0, count: 2 * 32), g = [Float](repeating: 0, count: 512)
        XCTAssertEqual(pk_nm_forward_f32(&a, 0, 2, x, 31, nil, &y, 8), PK_ERR_SHAPE)
        XCTAssertEqual(pk_bsr_forward_f32(&b, 0, 2, x, 32, nil, &y, 7), PK_ERR_SHAPE)
        XCTAssertEqual(pk_nm_forward_f32(&a, 4, 2, x, 32, nil, &y, 8), PK_ERR_ARG)
        XCTAssertEqual(pk_bsr_input_grad_f32(&b, -1, 2, dy, 8, &dx, 32), PK_ERR_ARG)
        XCTAssertEqual(pk_nm_forward_f32(&a, 0, -1, x, 32, nil, &y, 8), PK_ERR_SHAPE)
        XCTAssertEqual(pk_nm_forward_f32(nil, 0, 2, x, 32, nil, &y, 8), PK_ERR_NULL)
        XCTAssertEqual(pk_nm_weight_update_f32(&a, Int32(PK_LAYOUT_X_FEATURES), 2, dy, 8, x, 32, nil, &g), PK_ERR_ARG)
        // X and Y overlapping
        var buf = [Float](repeating: 0, count: 64)
        let st = buf.withUnsafeMutableBufferPointer { p in pk_nm_forward_f32(&a, 0, 2, p.baseAddress, 32, nil, p.baseAddress! + 4, 8) }
        XCTAssertEqual(st, PK_ERR_ALIAS)
        // an update whose weight is not the packed values, or with a bad learning rate
        var u = pk_update_desc()
        u.kind = PK_UPDATE_SGD; u.lr = 0.1
        var other = [Float](repeating: 0, count: 512)
        let s1 = other.withUnsafeMutableBufferPointer { o in u.w = o.baseAddress; return pk_bsr_weight_update_f32(&b, 0, 2, dy, 8, x, 32, &u, nil) }
        XCTAssertEqual(s1, PK_ERR_ARG)
        u.w = nm.values.base; u.lr = .nan
        XCTAssertEqual(pk_nm_weight_update_f32(&a, 0, 2, dy, 8, x, 32, &u, nil), PK_ERR_ARG)
        // the gradient output overlapping the values
        u.lr = 0.1
        XCTAssertEqual(pk_nm_weight_update_f32(&a, 0, 2, dy, 8, x, 32, &u, nm.values.base), PK_ERR_ALIAS)
        // packing: a group over n, a wrong kept count, cols not a multiple of m (C statuses)
        var val = [Float](repeating: 0, count: 128), idx = [UInt8](repeating: 0, count: 128)
        var tptr = [Int64](repeating: 0, count: 33), tent = [UInt16](repeating: 0, count: 130)
        let m3 = dense.map { UInt8($0 ? 1 : 0) }
        func packStatus(nnz: Int64, cols: Int64, _ mk: [UInt8]) -> pk_status {
            val.withUnsafeMutableBufferPointer { v in idx.withUnsafeMutableBufferPointer { i in
                tptr.withUnsafeMutableBufferPointer { t in tent.withUnsafeMutableBufferPointer { e in
                    var p = pk_nm(rows: 8, cols: cols, n: 2, m: 4, nnz: nnz, val: v.baseAddress, idx: i.baseAddress,
                                  tptr: t.baseAddress, tent: e.baseAddress)
                    return pk_nm_pack_f32(&p, w32.storage.base, 32, mk, 32)
                } } } }
        }
        XCTAssertEqual(packStatus(nnz: 129, cols: 32, m3), PK_ERR_ARG)
        var m2 = m3
        m2[5 * 32 + 14] = 0
        XCTAssertEqual(packStatus(nnz: 127, cols: 32, m2), PK_ERR_SHAPE)
        XCTAssertEqual(packStatus(nnz: 128, cols: 32, m2), PK_OK)
        XCTAssertEqual(packStatus(nnz: 128, cols: 30, m2), PK_ERR_SHAPE)
        var nb: Int64 = 0, whole: Int32 = 0
        XCTAssertEqual(pk_bsr_count(8, 32, 3, 4, blocks.map { UInt8($0 ? 1 : 0) }, 32, &nb, &whole), PK_ERR_SHAPE)
        XCTAssertEqual(pk_bsr_count(8, 32, 4, 4, blocks.map { UInt8($0 ? 1 : 0) }, 32, &nb, &whole), PK_OK)
        XCTAssertEqual(nb, 2)
        XCTAssertEqual(whole, 0)
        XCTAssertEqual(pk_bsr_count(8, 32, 4, 65, blocks.map { UInt8($0 ? 1 : 0) }, 32, &nb, &whole), PK_ERR_ARG)
    }

    /// Zero extents: nothing read, outputs written where they have elements.
    func testZeroExtents() throws {
        var rng = TestRNG(163)
        let w = try Tensor(shape: [4, 8], scalars: rng.floats(32))
        let nm = try NMSparseMatrix(weight: w, mask: Mask(shape: [4, 8], kept: (0..<32).map { $0 % 4 < 2 }), n: 2, m: 4)
        var a = nm.raw
        XCTAssertEqual(pk_nm_forward_f32(&a, 0, 0, nil, 8, nil, nil, 4), PK_OK)
        XCTAssertEqual(pk_nm_input_grad_f32(&a, 0, 0, nil, 4, nil, 8), PK_OK)
        // no samples: the gradient is zero and the step still applies weight decay
        var g = [Float](repeating: .nan, count: nm.stateCount)
        var u = pk_update_desc()
        u.kind = PK_UPDATE_SGD; u.lr = 0.5; u.weight_decay = 0.5; u.w = nm.values.base
        let before = nm.values.toArray()
        XCTAssertEqual(pk_nm_weight_update_f32(&a, 0, 0, nil, 4, nil, 8, &u, &g), PK_OK)
        XCTAssertEqual(g, [Float](repeating: 0, count: nm.stateCount))
        XCTAssertEqual(nm.values.toArray(), before.map { $0 - 0.5 * (0.5 * $0) })
        // a weight with nothing kept
        let none = try BlockSparseMatrix(weight: w, mask: Mask(shape: [4, 8], kept: [Bool](repeating: false, count: 32)), blockRows: 2, blockCols: 2)
        var b = none.raw
        let x = rng.floats(3 * 8)
        var y = [Float](repeating: .nan, count: 3 * 4), dx = [Float](repeating: .nan, count: 3 * 8)
        XCTAssertEqual(pk_bsr_forward_f32(&b, 0, 3, x, 8, [1, 2, 3, 4], &y, 4), PK_OK)
        XCTAssertEqual(y, [1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4])
        XCTAssertEqual(pk_bsr_input_grad_f32(&b, 0, 3, y, 4, &dx, 8), PK_OK)
        XCTAssertEqual(dx, [Float](repeating: 0, count: 24))
    }
}
