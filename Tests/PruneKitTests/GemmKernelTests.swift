import XCTest
import CPruneKernels
@testable import PruneKit

/// Optimised masked GEMM against the naive reference, and the C contract (STYLE.md levels 1–2).
final class GemmKernelTests: XCTestCase {
    enum Variant: CaseIterable { case nt, nn, tn, linear }

    /// Runs one variant through `fn` (optimised or reference) on the given operands.
    func run(_ v: Variant, ref: Bool, m: Int, n: Int, k: Int, alpha: Float, beta: Float, a: [Float], lda: Int,
             w: [Float], ldw: Int, mask: [UInt8]?, ldm: Int, bias: [Float]?, c: inout [Float], ldc: Int) -> pk_status {
        let (M, N, K) = (Int64(m), Int64(n), Int64(k))
        return a.withUnsafeBufferPointer { A in
            w.withUnsafeBufferPointer { W in
                c.withUnsafeMutableBufferPointer { C in
                    let mp: [UInt8] = mask ?? []
                    return mp.withUnsafeBufferPointer { Mb in
                        let Mp = mask == nil ? nil : Mb.baseAddress
                        let bp: [Float] = bias ?? []
                        return bp.withUnsafeBufferPointer { Bb in
                            let Bp = bias == nil ? nil : Bb.baseAddress
                            switch (v, ref) {
                            case (.nt, false): return pk_gemm_masked_f32(M, N, K, alpha, A.baseAddress, Int64(lda), W.baseAddress, Int64(ldw), Mp, Int64(ldm), beta, C.baseAddress, Int64(ldc))
                            case (.nt, true): return pk_ref_gemm_masked_f32(M, N, K, alpha, A.baseAddress, Int64(lda), W.baseAddress, Int64(ldw), Mp, Int64(ldm), beta, C.baseAddress, Int64(ldc))
                            case (.nn, false): return pk_gemm_masked_nn_f32(M, N, K, alpha, A.baseAddress, Int64(lda), W.baseAddress, Int64(ldw), Mp, Int64(ldm), beta, C.baseAddress, Int64(ldc))
                            case (.nn, true): return pk_ref_gemm_masked_nn_f32(M, N, K, alpha, A.baseAddress, Int64(lda), W.baseAddress, Int64(ldw), Mp, Int64(ldm), beta, C.baseAddress, Int64(ldc))
                            case (.tn, false): return pk_gemm_masked_tn_f32(M, N, K, alpha, A.baseAddress, Int64(lda), W.baseAddress, Int64(ldw), Mp, Int64(ldm), beta, C.baseAddress, Int64(ldc))
                            case (.tn, true): return pk_ref_gemm_masked_tn_f32(M, N, K, alpha, A.baseAddress, Int64(lda), W.baseAddress, Int64(ldw), Mp, Int64(ldm), beta, C.baseAddress, Int64(ldc))
                            case (.linear, false): return pk_linear_forward_f32(M, N, K, A.baseAddress, Int64(lda), W.baseAddress, Int64(ldw), Mp, Int64(ldm), Bp, C.baseAddress, Int64(ldc))
                            case (.linear, true): return pk_ref_linear_forward_f32(M, N, K, A.baseAddress, Int64(lda), W.baseAddress, Int64(ldw), Mp, Int64(ldm), Bp, C.baseAddress, Int64(ldc))
                            }
                        }
                    }
                }
            }
        }
    }

    /// Operand sizes for a variant: (A rows, A cols), (W rows, W cols), mask rows/cols.
    func dims(_ v: Variant, m: Int, n: Int, k: Int) -> (ar: Int, ac: Int, wr: Int, wc: Int, mr: Int, mc: Int) {
        switch v {
        case .nt, .linear: return (m, k, n, k, n, k)
        case .nn: return (m, k, k, n, k, n)
        case .tn: return (k, m, k, n, m, n)
        }
    }

    enum MaskKind: CaseIterable { case none, allKept, allPruned, random, twoFour }

    func makeMask(_ kind: MaskKind, rows: Int, cols: Int, ld: Int, rng: inout TestRNG) -> [UInt8]? {
        switch kind {
        case .none: return nil
        case .allKept: return [UInt8](repeating: 1, count: rows * ld)
        case .allPruned: return [UInt8](repeating: 0, count: rows * ld)
        case .random: return rng.mask(rows * ld, keep: 0.5)
        case .twoFour:
            // 2 of every 4 consecutive entries along the row kept
            var out = [UInt8](repeating: 0, count: rows * ld)
            for r in 0..<rows {
                var c = 0
                while c < cols {
                    let picks = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)][rng.int(6)]
                    for p in [picks.0, picks.1] where c + p < cols { out[r * ld + c + p] = 1 }
                    c += 4
                }
            }
            return out
        }
    }

    /// Compares against the reference; tolerance from the GEMM error bound γ_k·Σ|a||w|.
    func check(_ v: Variant, m: Int, n: Int, k: Int, maskKind: MaskKind, pad: Int, alpha: Float, beta: Float,
               rng: inout TestRNG, label: String) {
        let d = dims(v, m: m, n: n, k: k)
        let lda = d.ac + pad, ldw = d.wc + pad, ldm = d.mc + pad, ldc = n + pad
        let a = rng.floats(max(d.ar * lda, 1)), w = rng.floats(max(d.wr * ldw, 1))
        let mask = makeMask(maskKind, rows: d.mr, cols: d.mc, ld: ldm, rng: &rng)
        let bias: [Float]? = v == .linear ? rng.floats(n) : nil
        let c0 = rng.floats(max(m * ldc, 1))
        var c1 = c0, c2 = c0
        let s1 = run(v, ref: false, m: m, n: n, k: k, alpha: alpha, beta: beta, a: a, lda: lda, w: w, ldw: ldw,
                     mask: mask, ldm: ldm, bias: bias, c: &c1, ldc: ldc)
        let s2 = run(v, ref: true, m: m, n: n, k: k, alpha: alpha, beta: beta, a: a, lda: lda, w: w, ldw: ldw,
                     mask: mask, ldm: ldm, bias: bias, c: &c2, ldc: ldc)
        XCTAssertEqual(s1, PK_OK, label)
        XCTAssertEqual(s2, PK_OK, label)
        // |a|,|w| ≤ 1: the error bound is ~k·u·|alpha|·k plus the beta and bias terms
        let tol = Float(max(k, 1)) * 2.4e-7 * (abs(alpha) * Float(max(k, 1)) + abs(beta) + 2) + 1e-6
        for i in 0..<m {
            for j in 0..<ldc {
                let x = c1[i * ldc + j], y = c2[i * ldc + j]
                if j >= n {
                    XCTAssertEqual(x.bitPattern, c0[i * ldc + j].bitPattern, "\(label): padding column written")
                    continue
                }
                if !(abs(x - y) <= tol) {
                    XCTFail("\(label): C[\(i),\(j)] = \(x), reference \(y), tolerance \(tol)")
                    return
                }
            }
        }
    }

    func testAgainstReferenceSweep() {
        var rng = TestRNG(42)
        let sizes = [0, 1, 2, 11, 12, 13, 17, 31, 32, 33, 257]
        forEachISA { isa in
            for v in Variant.allCases {
                for (si, m) in sizes.enumerated() {
                    // a diagonal-ish walk through (m, n, k) keeps the sweep fast while covering every size
                    for n in [sizes[(si + 3) % sizes.count], sizes[(si + 7) % sizes.count]] {
                        for k in [sizes[(si + 5) % sizes.count], 257] {
                            let kind = MaskKind.allCases[(si + n + k) % MaskKind.allCases.count]
                            let pad = (m + n) % 3 == 0 ? 3 : 0
                            check(v, m: m, n: n, k: k, maskKind: kind, pad: pad, alpha: 1.5, beta: v == .linear ? 0 : 0.5,
                                  rng: &rng, label: "\(isa) \(v) m\(m) n\(n) k\(k) \(kind) pad\(pad)")
                        }
                    }
                }
                for kind in MaskKind.allCases {
                    check(v, m: 67, n: 45, k: 300, maskKind: kind, pad: 5, alpha: 1, beta: 0, rng: &rng,
                          label: "\(isa) \(v) 67×45×300 \(kind)")
                }
            }
        }
    }

    func testLargeBlockedShapes() {
        // crosses the KC, MC and NR block edges of every micro-kernel
        var rng = TestRNG(7)
        for v in Variant.allCases {
            check(v, m: 500, n: 130, k: 600, maskKind: .random, pad: 1, alpha: 1, beta: 0, rng: &rng, label: "\(v) 500×130×600")
        }
        // C += A·B (alpha 1, beta 1, no mask: the micro-kernel adds to C from the first k block, the
        // Gram accumulation's path), on every ISA, full and edge tiles
        forEachISA { isa in
            for v in [Variant.nt, .nn, .tn] {
                check(v, m: 301, n: 203, k: 517, maskKind: .none, pad: 0, alpha: 1, beta: 1, rng: &rng, label: "\(isa) \(v) beta 1")
            }
        }
    }

    func testBitwiseIdenticalAcrossThreadCounts() {
        var rng = TestRNG(3)
        for v in Variant.allCases {
            let (m, n, k) = (301, 203, 517)
            let d = dims(v, m: m, n: n, k: k)
            let a = rng.floats(d.ar * d.ac), w = rng.floats(d.wr * d.wc)
            let mask = rng.mask(d.mr * d.mc, keep: 0.3)
            var outs: [[Float]] = []
            for t in [1, 2, 3] {
                var c = [Float](repeating: .nan, count: m * n) // beta = 0: every entry must be written
                XCTAssertEqual(withThreads(t) {
                    run(v, ref: false, m: m, n: n, k: k, alpha: 1, beta: 0, a: a, lda: d.ac, w: w, ldw: d.wc, mask: mask,
                        ldm: d.mc, bias: nil, c: &c, ldc: n)
                }, PK_OK, "\(v), \(t) threads")
                outs.append(c)
            }
            XCTAssertTrue(outs[0].allSatisfy(\.isFinite), "\(v): every entry written")
            XCTAssertEqual(outs[0].map(\.bitPattern), outs[1].map(\.bitPattern), "\(v): 1 vs 2 threads differ")
            XCTAssertEqual(outs[0].map(\.bitPattern), outs[2].map(\.bitPattern), "\(v): 1 vs 3 threads differ")
        }
    }

    func testBetaZeroNeverReadsC() {
        var rng = TestRNG(5)
        forEachISA { isa in
            for v in Variant.allCases {
                let (m, n, k) = (19, 37, 23)
                let d = dims(v, m: m, n: n, k: k)
                let a = rng.floats(d.ar * d.ac), w = rng.floats(d.wr * d.wc)
                var c = [Float](repeating: .nan, count: m * n)
                let s = run(v, ref: false, m: m, n: n, k: k, alpha: 1, beta: 0, a: a, lda: d.ac, w: w, ldw: d.wc,
                            mask: nil, ldm: d.mc, bias: nil, c: &c, ldc: n)
                XCTAssertEqual(s, PK_OK)
                XCTAssertTrue(c.allSatisfy { $0.isFinite }, "\(isa) \(v): NaN in C leaked with beta = 0")
                // k == 0: C := beta·C, NaN must not survive beta = 0 either
                var z = [Float](repeating: .nan, count: m * n)
                XCTAssertEqual(run(v, ref: false, m: m, n: n, k: 0, alpha: 1, beta: 0, a: a, lda: d.ac, w: w, ldw: d.wc,
                                   mask: nil, ldm: d.mc, bias: nil, c: &z, ldc: n), PK_OK)
                XCTAssertTrue(z.allSatisfy { $0 == 0 }, "\(v): k = 0 with beta = 0 must write zeros")
            }
        }
    }

    func testMaskedWeightsAreIgnoredEvenIfNaN() {
        // A pruned weight holding NaN contributes nothing: the mask selects, it does not multiply.
        let a: [Float] = [1, 2, 3, 4], w: [Float] = [.nan, 1, 1, 1], mask: [UInt8] = [0, 1, 1, 1]
        var c: [Float] = [0]
        XCTAssertEqual(run(.nt, ref: false, m: 1, n: 1, k: 4, alpha: 1, beta: 0, a: a, lda: 4, w: w, ldw: 4, mask: mask,
                           ldm: 4, bias: nil, c: &c, ldc: 1), PK_OK)
        XCTAssertEqual(c[0], 9)
    }

    func testTNWritesExactZerosWhereMasked() {
        var rng = TestRNG(11)
        let (m, n, k) = (40, 50, 30)
        let a = rng.floats(k * m), b = rng.floats(k * n), mask = rng.mask(m * n, keep: 0.2)
        var c = [Float](repeating: .nan, count: m * n)
        XCTAssertEqual(run(.tn, ref: false, m: m, n: n, k: k, alpha: 1, beta: 0, a: a, lda: m, w: b, ldw: n, mask: mask,
                           ldm: n, bias: nil, c: &c, ldc: n), PK_OK)
        for i in 0..<(m * n) where mask[i] == 0 { XCTAssertEqual(c[i].bitPattern, Float(0).bitPattern) }
    }

    func testErrorStatuses() {
        var c = [Float](repeating: 0, count: 16)
        let a = [Float](repeating: 1, count: 16)
        // negative sizes
        XCTAssertEqual(pk_gemm_masked_f32(-1, 2, 2, 1, a, 2, a, 2, nil, 0, 0, &c, 2), PK_ERR_SHAPE)
        XCTAssertEqual(pk_gemm_masked_nn_f32(2, -2, 2, 1, a, 2, a, 2, nil, 0, 0, &c, 2), PK_ERR_SHAPE)
        XCTAssertEqual(pk_gemm_masked_tn_f32(2, 2, -1, 1, a, 2, a, 2, nil, 0, 0, &c, 2), PK_ERR_SHAPE)
        // leading dimension too small
        XCTAssertEqual(pk_gemm_masked_f32(2, 2, 3, 1, a, 2, a, 3, nil, 0, 0, &c, 2), PK_ERR_SHAPE)
        XCTAssertEqual(pk_gemm_masked_f32(2, 3, 2, 1, a, 2, a, 2, nil, 0, 0, &c, 2), PK_ERR_SHAPE)
        // NULL operands
        XCTAssertEqual(pk_gemm_masked_f32(2, 2, 2, 1, nil, 2, a, 2, nil, 0, 0, &c, 2), PK_ERR_NULL)
        XCTAssertEqual(pk_linear_forward_f32(2, 2, 2, a, 2, nil, 2, nil, 0, nil, &c, 2), PK_ERR_NULL)
        // zero extents accept NULL everywhere
        XCTAssertEqual(pk_gemm_masked_f32(0, 5, 5, 1, nil, 0, nil, 0, nil, 0, 0, nil, 0), PK_OK)
        XCTAssertEqual(pk_gemm_masked_nn_f32(5, 0, 5, 1, nil, 0, nil, 0, nil, 0, 0, nil, 0), PK_OK)
        XCTAssertEqual(pk_gemm_masked_tn_f32(0, 0, 5, 1, nil, 0, nil, 0, nil, 0, 0, nil, 0), PK_OK)
        // aliasing C with an input
        var buf = [Float](repeating: 1, count: 16)
        buf.withUnsafeMutableBufferPointer { p in
            XCTAssertEqual(pk_gemm_masked_f32(2, 2, 2, 1, p.baseAddress, 2, a, 2, nil, 0, 0, p.baseAddress! + 1, 2), PK_ERR_ALIAS)
        }
        // every status has a message
        for s in 0..<Int(PK_STATUS_COUNT.rawValue) {
            XCTAssertFalse(String(cString: pk_status_string(pk_status(UInt32(s)))).isEmpty)
        }
    }
}
