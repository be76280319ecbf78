import XCTest
import CPruneKernels
@testable import PruneKit

/// Element-wise, convolution, pooling, loss and optimizer kernels against their references.
final class KernelReferenceTests: XCTestCase {
    func testReLUMatchesReference() {
        var rng = TestRNG(1)
        var x = rng.floats(10_001)
        x[5] = .nan
        var y1 = [Float](repeating: 0, count: x.count), y2 = y1
        XCTAssertEqual(pk_relu_forward_f32(Int64(x.count), x, &y1), PK_OK)
        XCTAssertEqual(pk_ref_relu_forward_f32(Int64(x.count), x, &y2), PK_OK)
        XCTAssertEqual(y1.map(\.bitPattern), y2.map(\.bitPattern))
        XCTAssertTrue(y1[5].isNaN, "NaN propagates through ReLU")
        let dy = rng.floats(x.count)
        var d1 = y1, d2 = y1
        XCTAssertEqual(pk_relu_backward_f32(Int64(x.count), y1, dy, &d1), PK_OK)
        XCTAssertEqual(pk_ref_relu_backward_f32(Int64(x.count), y1, dy, &d2), PK_OK)
        XCTAssertEqual(d1.map(\.bitPattern), d2.map(\.bitPattern))
    }

    /// The fused residual add + ReLU of inference against its reference and against the two passes it
    /// replaces (axpby, then ReLU): bitwise, NaN kept, in place on either input, 1 and 2 threads,
    /// lengths around the parallel grain.
    func testAddReLUMatchesReferenceAndTheTwoPasses() {
        var rng = TestRNG(11)
        let saved = pk_get_num_threads()
        defer { pk_set_num_threads(saved) }
        for n in [0, 1, 7, 32_768, 100_003] {
            var x = rng.floats(n), y = rng.floats(n)
            if n > 3 { x[3] = .nan; y[2] = .infinity; x[1] = -.infinity }
            var ref = [Float](repeating: 0, count: n), sum = ref, twoPass = ref
            XCTAssertEqual(pk_ref_add_relu_f32(Int64(n), x, y, &ref), PK_OK)
            XCTAssertEqual(pk_axpby_f32(Int64(n), 1, x, 1, y, &sum), PK_OK)
            XCTAssertEqual(pk_relu_forward_f32(Int64(n), sum, &twoPass), PK_OK)
            XCTAssertEqual(ref.map(\.bitPattern), twoPass.map(\.bitPattern), "reference = axpby + ReLU, n \(n)")
            for threads in [1, 2] {
                pk_set_num_threads(Int32(threads))
                var out = [Float](repeating: -1, count: n)
                XCTAssertEqual(pk_add_relu_f32(Int64(n), x, y, &out), PK_OK)
                XCTAssertEqual(out.map(\.bitPattern), ref.map(\.bitPattern), "n \(n), \(threads) threads")
                var inPlace = x
                XCTAssertEqual(inPlace.withUnsafeMutableBufferPointer { pk_add_relu_f32(Int64(n), $0.baseAddress, y, $0.baseAddress) }, PK_OK)
                XCTAssertEqual(inPlace.map(\.bitPattern), ref.map(\.bitPattern), "in place, n \(n)")
            }
        }
        var one: Float = 0
        XCTAssertEqual(pk_add_relu_f32(-1, nil, nil, nil), PK_ERR_SHAPE)
        XCTAssertEqual(pk_add_relu_f32(1, nil, [1], &one), PK_ERR_NULL)
    }

    /// The element-by-element product against its reference: bitwise, in place, 1 and 2 threads.
    func testMulMatchesReference() {
        var rng = TestRNG(12)
        let saved = pk_get_num_threads()
        defer { pk_set_num_threads(saved) }
        for n in [0, 1, 33, 100_003] {
            let x = rng.floats(n), y = rng.floats(n)
            var ref = [Float](repeating: 0, count: n)
            XCTAssertEqual(pk_ref_mul_f32(Int64(n), x, y, &ref), PK_OK)
            XCTAssertEqual(ref, zip(x, y).map { $0 * $1 }, "reference, n \(n)")
            for threads in [1, 2] {
                pk_set_num_threads(Int32(threads))
                var out = [Float](repeating: -1, count: n)
                XCTAssertEqual(pk_mul_f32(Int64(n), x, y, &out), PK_OK)
                XCTAssertEqual(out.map(\.bitPattern), ref.map(\.bitPattern), "n \(n), \(threads) threads")
                var inPlace = y
                XCTAssertEqual(inPlace.withUnsafeMutableBufferPointer { pk_mul_f32(Int64(n), x, $0.baseAddress, $0.baseAddress) }, PK_OK)
                XCTAssertEqual(inPlace.map(\.bitPattern), ref.map(\.bitPattern), "in place, n \(n)")
            }
        }
        XCTAssertEqual(pk_mul_f32(-1, nil, nil, nil), PK_ERR_SHAPE)
    }

    func testSumRowsMatchesReference() {
        var rng = TestRNG(2)
        for (m, n) in [(0, 5), (1, 1), (7, 300), (513, 33)] {
            let x = rng.floats(m * n)
            var o1 = rng.floats(n), o2 = o1
            XCTAssertEqual(pk_sum_rows_f32(Int64(m), Int64(n), 0.5, x, Int64(n), &o1), PK_OK)
            XCTAssertEqual(pk_ref_sum_rows_f32(Int64(m), Int64(n), 0.5, x, Int64(n), &o2), PK_OK)
            assertClose(o1, o2, rtol: 1e-5, atol: Float(m) * 1e-6, "sum_rows \(m)×\(n)")
        }
    }

    func testIm2colCol2imMatchReference() {
        var rng = TestRNG(3)
        for (n, c, h, w, k, s) in [(1, 1, 5, 5, 5, 1), (2, 3, 9, 7, 3, 1), (3, 2, 12, 12, 5, 2), (2, 32, 12, 12, 5, 1)] {
            let x = rng.floats(n * c * h * w)
            let oh = (h - k) / s + 1, ow = (w - k) / s + 1
            let rows = c * k * k, cols = n * oh * ow
            var a = [Float](repeating: 0, count: rows * cols), b = a
            XCTAssertEqual(pk_im2col_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(k), Int64(k), Int64(s), x, &a), PK_OK)
            XCTAssertEqual(pk_ref_im2col_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(k), Int64(k), Int64(s), x, &b), PK_OK)
            XCTAssertEqual(a, b, "im2col \(n),\(c),\(h),\(w),\(k),\(s)")
            let d = rng.floats(rows * cols)
            var dx1 = [Float](repeating: .nan, count: x.count), dx2 = dx1
            XCTAssertEqual(pk_col2im_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(k), Int64(k), Int64(s), d, &dx1), PK_OK)
            XCTAssertEqual(pk_ref_col2im_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(k), Int64(k), Int64(s), d, &dx2), PK_OK)
            assertClose(dx1, dx2, rtol: 1e-5, atol: 1e-5, "col2im")
        }
        var out = [Float](repeating: 0, count: 4)
        XCTAssertEqual(pk_im2col_f32(1, 1, 3, 3, 4, 4, 1, [Float](repeating: 0, count: 9), &out), PK_ERR_SHAPE, "kernel larger than image")
    }

    /// Padding folded into im2col / col2im, and the padded backward, against the naive references:
    /// paddings wider than the kernel's reach, strides, rectangular images, masks.
    func testPaddedIm2colCol2imAndBackwardMatchReference() {
        var rng = TestRNG(31)
        for (n, c, h, w, k, s, p) in [(1, 1, 1, 1, 1, 1, 0), (1, 1, 1, 1, 3, 1, 1), (2, 3, 5, 7, 3, 1, 1), (2, 3, 6, 5, 3, 2, 1),
                                      (1, 2, 4, 4, 5, 1, 2), (2, 2, 7, 9, 3, 3, 2), (3, 4, 8, 8, 1, 2, 0), (1, 2, 3, 3, 3, 1, 3),
                                      (2, 5, 29, 23, 3, 1, 1)] {
            let oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1, oc = 3
            let x = rng.floats(n * c * h * w)
            let rows = c * k * k, cols = n * oh * ow
            var a = [Float](repeating: .nan, count: rows * cols), b = a
            XCTAssertEqual(pk_im2col_padded_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(k), Int64(k), Int64(s), Int64(p), x, &a), PK_OK)
            XCTAssertEqual(pk_ref_im2col_padded_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(k), Int64(k), Int64(s), Int64(p), x, &b), PK_OK)
            XCTAssertEqual(a.map(\.bitPattern), b.map(\.bitPattern), "im2col padded \(n),\(c),\(h),\(w),\(k),\(s),\(p)")
            let d = rng.floats(rows * cols)
            var dx1 = [Float](repeating: .nan, count: x.count), dx2 = dx1
            XCTAssertEqual(pk_col2im_padded_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(k), Int64(k), Int64(s), Int64(p), d, &dx1), PK_OK)
            XCTAssertEqual(pk_ref_col2im_padded_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(k), Int64(k), Int64(s), Int64(p), d, &dx2), PK_OK)
            assertClose(dx1, dx2, rtol: 1e-5, atol: 1e-5, "col2im padded \(n),\(c),\(h),\(w),\(k),\(s),\(p)")
            // backward: dw (masked), db, dx
            let wt = rng.floats(oc * rows), dy = rng.floats(n * oc * oh * ow)
            for mask in [nil, rng.mask(oc * rows, keep: 0.5)] {
                var dw1 = [Float](repeating: .nan, count: wt.count), dw2 = dw1, db1 = [Float](repeating: .nan, count: oc), db2 = db1
                var gx1 = [Float](repeating: .nan, count: x.count), gx2 = gx1
                XCTAssertEqual(pk_conv2d_padded_backward_update_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(oc), Int64(k), Int64(k),
                                                                    Int64(s), Int64(p), x, wt, mask, dy, &dw1, &db1, &gx1, nil), PK_OK)
                XCTAssertEqual(pk_ref_conv2d_padded_backward_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(oc), Int64(k), Int64(k),
                                                                 Int64(s), Int64(p), x, wt, mask, dy, &dw2, &db2, &gx2), PK_OK)
                let what = "padded backward \(n),\(c),\(h),\(w),\(k),\(s),\(p) mask \(mask != nil)"
                assertClose(dw1, dw2, rtol: 1e-4, atol: 1e-4, what + " dw")
                assertClose(db1, db2, rtol: 1e-4, atol: 1e-4, what + " db")
                assertClose(gx1, gx2, rtol: 1e-4, atol: 1e-4, what + " dx")
                if let mask { XCTAssertTrue(zip(dw1, mask).allSatisfy { $1 != 0 || $0 == 0 }, what + ": masked dw is exactly 0") }
            }
        }
        var out = [Float](repeating: 0, count: 4)
        XCTAssertEqual(pk_im2col_padded_f32(1, 1, 2, 2, 5, 5, 1, 1, [Float](repeating: 0, count: 4), &out), PK_ERR_SHAPE,
                       "kernel larger than the padded image")
        XCTAssertEqual(pk_im2col_padded_f32(1, 1, 2, 2, 1, 1, 1, -1, [Float](repeating: 0, count: 4), &out), PK_ERR_SHAPE, "negative padding")
    }

    /// The padded forward with its per-channel epilogue (scale, shift, ReLU), by both methods
    /// (implicit GEMM, and the dispatching entry point that picks im2col or the implicit GEMM by shape), against the
    /// direct reference: kernels 1/3/5, strides 1-3, paddings 0-3, masks, every epilogue combination,
    /// channel counts around the micro-tile sizes, and identical bits for 1 and 2 threads.
    func testPaddedForwardWithEpilogueMatchesReference() {
        var rng = TestRNG(32)
        let shapes: [(Int, Int, Int, Int, Int, Int, Int, Int)] = [
            (1, 1, 1, 1, 1, 1, 1, 0), (2, 3, 5, 7, 4, 3, 1, 1), (2, 3, 6, 5, 7, 3, 2, 1), (1, 2, 4, 4, 13, 5, 1, 2),
            (3, 5, 7, 9, 17, 3, 3, 2), (2, 4, 8, 8, 6, 1, 2, 0), (1, 2, 3, 3, 5, 3, 1, 3), (5, 7, 4, 4, 33, 3, 1, 1),
            (2, 40, 7, 7, 12, 3, 1, 1), (2, 3, 28, 22, 9, 3, 1, 1), (2, 3, 30, 30, 5, 3, 1, 1), (9, 2, 4, 4, 3, 3, 2, 1),
            (2, 64, 5, 5, 65, 3, 1, 1), // enough weights for the dispatching entry point to pick the implicit GEMM
        ]
        let saved = pk_get_num_threads()
        defer { pk_set_num_threads(saved) }
        for (n, c, h, w, oc, k, s, p) in shapes {
            let oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1
            let x = rng.floats(n * c * h * w), wt = rng.floats(oc * c * k * k)
            let scale = rng.floats(oc, 0.5, 2), shift = rng.floats(oc)
            for (mask, sc, sh, relu) in [(nil, nil, nil, Int32(0)), (rng.mask(wt.count, keep: 0.5), nil, shift, 0),
                                         (nil, scale, shift, 1), (rng.mask(wt.count, keep: 0.3), scale, nil, 1)] as [([UInt8]?, [Float]?, [Float]?, Int32)] {
                let what = "conv \(n),\(c),\(h),\(w)→\(oc) k\(k) s\(s) p\(p) mask \(mask != nil) scale \(sc != nil) shift \(sh != nil) relu \(relu)"
                var want = [Float](repeating: .nan, count: n * oc * oh * ow)
                XCTAssertEqual(pk_ref_conv2d_implicit_forward_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(oc), Int64(k), Int64(k),
                                                                  Int64(s), Int64(p), relu, x, wt, mask, sc, sh, &want), PK_OK)
                var bits: [[UInt32]] = []
                for threads in [1, 2] {
                    pk_set_num_threads(Int32(threads))
                    var y1 = [Float](repeating: .nan, count: want.count), y2 = y1
                    XCTAssertEqual(pk_conv2d_implicit_forward_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(oc), Int64(k), Int64(k),
                                                                  Int64(s), Int64(p), relu, x, wt, mask, sc, sh, &y1), PK_OK)
                    XCTAssertEqual(pk_conv2d_padded_forward_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(oc), Int64(k), Int64(k),
                                                                Int64(s), Int64(p), relu, x, wt, mask, sc, sh, &y2), PK_OK)
                    let tol = Float(c * k * k) * 2e-6
                    assertClose(y1, want, rtol: 1e-4, atol: tol, what + " implicit, \(threads) threads")
                    assertClose(y2, want, rtol: 1e-4, atol: tol, what + " dispatch, \(threads) threads")
                    if relu != 0 { XCTAssertTrue(y1.allSatisfy { $0 >= 0 } && y2.allSatisfy { $0 >= 0 }, what + ": ReLU output") }
                    bits.append(y1.map(\.bitPattern) + y2.map(\.bitPattern))
                }
                XCTAssertEqual(bits[0], bits[1], what + ": same bits for 1 and 2 threads")
            }
        }
        // contract: shape errors, NULL operands, aliasing, empty extents
        var y = [Float](repeating: 0, count: 16)
        let x = [Float](repeating: 1, count: 16), wt = [Float](repeating: 1, count: 9)
        XCTAssertEqual(pk_conv2d_implicit_forward_f32(1, 1, 1, 1, 1, 5, 5, 1, 1, 0, x, wt, nil, nil, nil, &y), PK_ERR_SHAPE)
        XCTAssertEqual(pk_conv2d_implicit_forward_f32(1, 1, 4, 4, 1, 3, 3, 0, 1, 0, x, wt, nil, nil, nil, &y), PK_ERR_SHAPE)
        XCTAssertEqual(pk_conv2d_padded_forward_f32(1, 1, 4, 4, 1, 3, 3, 1, -1, 0, x, wt, nil, nil, nil, &y), PK_ERR_SHAPE)
        XCTAssertEqual(pk_conv2d_implicit_forward_f32(1, 1, 4, 4, 1, 3, 3, 1, 1, 0, nil, wt, nil, nil, nil, &y), PK_ERR_NULL)
        XCTAssertEqual(pk_conv2d_implicit_forward_f32(0, 1, 4, 4, 1, 3, 3, 1, 1, 0, nil, nil, nil, nil, nil, nil), PK_OK)
        y.withUnsafeMutableBufferPointer { b in
            XCTAssertEqual(pk_conv2d_implicit_forward_f32(1, 1, 4, 4, 1, 3, 3, 1, 1, 0, b.baseAddress, wt, nil, nil, nil, b.baseAddress),
                           PK_ERR_ALIAS)
        }
    }

    /// The direct stride-1 kernels (conv_direct.c) called directly, against the references: forward with
    /// every epilogue, dx, and dW summed from its chunk partials; kernels 2×2, 3×3, 3×5, 5×5, paddings
    /// 0 to KH−1, widths that leave partial vectors, one channel, channel counts off the 6-row tile
    /// (last blocks of 1 to 5 rows, the 1- and 2-row ones on their wide tiles too, 3×3 and general);
    /// identical bits for 1 and 2 threads; and the dispatching entry points agree with the im2col path
    /// (direct kernels switched off) on the same shapes.
    func testDirectConvolutionMatchesReferenceAndIm2colPath() throws {
        guard pk_cpu_isa().rawValue >= PK_ISA_AVX2.rawValue else { throw XCTSkip("the direct kernels need AVX2") }
        var rng = TestRNG(33)
        let shapes: [(Int, Int, Int, Int, Int, Int, Int, Int)] = [  // n, c, h, w, oc, kh, kw, p
            (1, 1, 28, 28, 16, 3, 3, 1), (2, 3, 7, 9, 5, 3, 3, 1), (3, 16, 14, 14, 16, 3, 3, 1), (2, 5, 6, 5, 7, 3, 3, 0),
            (2, 4, 11, 13, 9, 5, 5, 2), (2, 3, 8, 8, 6, 3, 5, 1), (4, 13, 7, 7, 13, 3, 3, 1), (3, 2, 1, 1, 3, 3, 3, 1),
            (2, 8, 5, 5, 4, 2, 2, 0), (2, 8, 5, 5, 4, 2, 2, 1), (11, 6, 4, 4, 8, 3, 3, 2), (2, 7, 30, 3, 12, 3, 3, 1),
            (2, 6, 12, 10, 10, 3, 3, 1), (2, 32, 28, 28, 32, 3, 3, 1), (2, 3, 12, 12, 8, 5, 5, 2), (2, 7, 9, 9, 7, 2, 2, 1),
            // batches of 15 or more images: chunks of several images summed in registers, the last one shorter
            (17, 3, 7, 7, 5, 3, 5, 1), (20, 4, 6, 6, 9, 3, 3, 1),
        ]
        let saved = pk_get_num_threads()
        defer { pk_set_num_threads(saved); pk_conv2d_set_direct(1) }
        for (n, c, h, w, oc, kh, kw, p) in shapes {
            let oh = h + 2 * p - kh + 1, ow = w + 2 * p - kw + 1
            let x = rng.floats(n * c * h * w), wt = rng.floats(oc * c * kh * kw), dy = rng.floats(n * oc * oh * ow)
            let scale = rng.floats(oc, 0.5, 2), shift = rng.floats(oc), mask = rng.mask(wt.count, keep: 0.6)
            let what = "direct \(n),\(c),\(h)x\(w)→\(oc) k\(kh)x\(kw) p\(p)"
            var want = [Float](repeating: .nan, count: n * oc * oh * ow)
            XCTAssertEqual(pk_ref_conv2d_implicit_forward_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(oc), Int64(kh), Int64(kw),
                                                              1, Int64(p), 1, x, wt, mask, scale, shift, &want), PK_OK)
            var dwWant = [Float](repeating: .nan, count: wt.count), dbWant = [Float](repeating: .nan, count: oc)
            var dxWant = [Float](repeating: .nan, count: x.count)
            XCTAssertEqual(pk_ref_conv2d_padded_backward_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(oc), Int64(kh), Int64(kw),
                                                             1, Int64(p), x, wt, nil, dy, &dwWant, &dbWant, &dxWant), PK_OK)
            var dxMaskedWant = [Float](repeating: .nan, count: x.count), dwMasked = dwWant, dbMasked = dbWant
            XCTAssertEqual(pk_ref_conv2d_padded_backward_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(oc), Int64(kh), Int64(kw),
                                                             1, Int64(p), x, wt, mask, dy, &dwMasked, &dbMasked, &dxMaskedWant), PK_OK)
            let per = pk_conv2d_direct_wgrad_chunks(Int64(n), Int64(c), Int64(h), Int64(w), Int64(kh), Int64(kw), Int64(p))
            let chunks = (n + Int(per) - 1) / Int(per)
            var bits: [[UInt32]] = []
            for threads in [1, 2] {
                pk_set_num_threads(Int32(threads))
                var y = [Float](repeating: .nan, count: want.count), dx = [Float](repeating: .nan, count: x.count)
                var partials = [Float](repeating: .nan, count: chunks * wt.count)
                XCTAssertEqual(pk_conv2d_direct_forward_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(oc), Int64(kh), Int64(kw),
                                                            Int64(p), 1, x, wt, mask, scale, shift, &y), PK_OK)
                XCTAssertEqual(pk_conv2d_direct_input_grad_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(oc), Int64(kh), Int64(kw),
                                                               Int64(p), wt, mask, dy, &dx), PK_OK)
                XCTAssertEqual(pk_conv2d_direct_weight_grad_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(oc), Int64(kh), Int64(kw),
                                                                Int64(p), x, dy, per, &partials), PK_OK)
                var dw = [Float](repeating: 0, count: wt.count)
                for q in 0..<chunks { for i in 0..<wt.count { dw[i] += partials[q * wt.count + i] } }
                let tol = Float(c * kh * kw) * 2e-6
                assertClose(y, want, rtol: 1e-4, atol: tol, what + " forward, \(threads) threads")
                assertClose(dx, dxMaskedWant, rtol: 1e-4, atol: Float(oc * kh * kw) * 2e-6, what + " dx, \(threads) threads")
                assertClose(dw, dwWant, rtol: 1e-4, atol: Float(n * oh * ow) * 2e-6, what + " dw, \(threads) threads")
                bits.append(y.map(\.bitPattern) + dx.map(\.bitPattern) + partials.map(\.bitPattern))
            }
            XCTAssertEqual(bits[0], bits[1], what + ": same bits for 1 and 2 threads")
            // the dispatching entry points, direct kernels on and off
            var outs: [[Float]] = []
            for on in [Int32(1), 0] {
                pk_conv2d_set_direct(on)
                var y = [Float](repeating: .nan, count: want.count), dx = [Float](repeating: .nan, count: x.count)
                var dw = [Float](repeating: .nan, count: wt.count), db = [Float](repeating: .nan, count: oc)
                XCTAssertEqual(pk_conv2d_padded_forward_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(oc), Int64(kh), Int64(kw),
                                                            1, Int64(p), 1, x, wt, mask, scale, shift, &y), PK_OK)
                XCTAssertEqual(pk_conv2d_padded_backward_update_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(oc), Int64(kh), Int64(kw),
                                                                    1, Int64(p), x, wt, mask, dy, &dw, &db, &dx, nil), PK_OK)
                XCTAssertTrue(zip(dw, mask).allSatisfy { $1 != 0 || $0 == 0 }, what + ": masked dw is exactly 0")
                outs.append(y + dx + dw + db)
            }
            assertClose(outs[0], outs[1], rtol: 1e-4, atol: Float(max(c, oc) * kh * kw + n * oh * ow) * 2e-6, what + ": direct vs im2col")
        }
    }

    /// The ReLU epilogue of every dense convolution path keeps NaN, as the ReLU layer does (inference
    /// folds conv → BatchNorm → ReLU into it): direct (28-wide rows), implicit GEMM (7-wide rows,
    /// 64·64·9 weights) and chunked im2col (stride 2, few weights), each against the reference.
    func testConvolutionReluEpilogueKeepsNaN() {
        var rng = TestRNG(35)
        for (n, c, h, oc, s) in [(2, 8, 28, 8, 1), (2, 64, 7, 64, 1), (2, 8, 9, 8, 2)] {
            var x = rng.floats(n * c * h * h)
            x[c * h * h + 5 * h + 4] = .nan  // image 1, channel 1, pixel (5, 4)
            let wt = rng.floats(oc * c * 9), scale = rng.floats(oc, 0.5, 2), shift = rng.floats(oc)
            let oh = (h + 2 - 3) / s + 1, what = "conv \(n),\(c),\(h)x\(h)→\(oc) s\(s)"
            var want = [Float](repeating: 0, count: n * oc * oh * oh), y = want
            XCTAssertEqual(pk_ref_conv2d_implicit_forward_f32(Int64(n), Int64(c), Int64(h), Int64(h), Int64(oc), 3, 3, Int64(s), 1, 1,
                                                              x, wt, nil, scale, shift, &want), PK_OK)
            XCTAssertEqual(pk_conv2d_padded_forward_f32(Int64(n), Int64(c), Int64(h), Int64(h), Int64(oc), 3, 3, Int64(s), 1, 1,
                                                        x, wt, nil, scale, shift, &y), PK_OK)
            XCTAssertTrue(want.contains { $0.isNaN } && want.contains { $0 == 0 }, what + ": the reference has NaN and clamped outputs")
            XCTAssertEqual(y.map(\.isNaN), want.map(\.isNaN), what + ": NaN where the reference has it")
            XCTAssertTrue(y.allSatisfy { $0.isNaN || $0 >= 0 }, what + ": rectified")
            let keep = want.indices.filter { !want[$0].isNaN }
            assertClose(keep.map { y[$0] }, keep.map { want[$0] }, rtol: 1e-4, atol: Float(c * 9) * 2e-6, what)
        }
    }

    func testNCHWToCNHW() {
        var rng = TestRNG(4)
        let (n, c, p) = (3, 45, 37)
        let x = rng.floats(n * c * p)
        var y = [Float](repeating: 0, count: x.count)
        XCTAssertEqual(pk_nchw_to_cnhw_f32(Int64(n), Int64(c), Int64(p), x, &y), PK_OK)
        for i in 0..<n { for ch in 0..<c { for q in 0..<p { XCTAssertEqual(y[(ch * n + i) * p + q], x[(i * c + ch) * p + q]) } } }
        var db = [Float](repeating: 0, count: c)
        XCTAssertEqual(pk_bias_grad_nchw_f32(Int64(n), Int64(c), Int64(p), x, &db), PK_OK)
        for ch in 0..<c {
            var s = 0.0
            for i in 0..<n { for q in 0..<p { s += Double(x[(i * c + ch) * p + q]) } }
            XCTAssertEqual(Double(db[ch]), s, accuracy: 1e-4)
        }
    }

    /// Max pooling with stride = kernel (the 2×2 fast path and the general loop) and with strides and
    /// paddings of their own (torchvision's 3×3/2 pad-1 stem pool, overlapping windows whose argmax
    /// is shared), against the reference; NaN propagates and ties go to the first in scan order.
    func testMaxPoolMatchesReference() {
        var rng = TestRNG(5)
        for (n, c, h, w, k, s, p) in [(1, 1, 2, 2, 2, 2, 0), (2, 3, 7, 9, 2, 2, 0), (4, 32, 24, 24, 2, 2, 0), (1, 2, 9, 9, 3, 3, 0),
                                      (2, 3, 16, 16, 3, 2, 1), (2, 3, 15, 11, 3, 2, 1), (1, 2, 5, 5, 3, 1, 1), (1, 1, 1, 1, 3, 2, 1),
                                      (2, 2, 8, 7, 2, 1, 1), (1, 3, 9, 6, 4, 3, 2), (1, 1, 3, 3, 1, 2, 0)] {
            var x = rng.floats(n * c * h * w)
            if x.count > 1 { x[0] = x[1] } // a tie: the first in scan order wins
            if x.count > 7 { x[7] = .nan }
            let oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1
            var y1 = [Float](repeating: 0, count: n * c * oh * ow), y2 = y1
            var i1 = [Int32](repeating: 0, count: y1.count), i2 = i1
            let what = "maxpool \(n),\(c),\(h),\(w) k\(k) s\(s) p\(p)"
            XCTAssertEqual(pk_maxpool2d_forward_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(k), Int64(s), Int64(p), x, &y1, &i1), PK_OK)
            XCTAssertEqual(pk_ref_maxpool2d_forward_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(k), Int64(s), Int64(p), x, &y2, &i2), PK_OK)
            XCTAssertEqual(y1.map(\.bitPattern), y2.map(\.bitPattern), what)
            XCTAssertEqual(i1, i2, what)
            if x.count > 7, s <= k { XCTAssertTrue(y1.contains { $0.isNaN }, what + ": NaN propagates") } // every pixel in some window
            let dy = rng.floats(y1.count)
            var d1 = [Float](repeating: .nan, count: x.count), d2 = d1
            XCTAssertEqual(pk_maxpool2d_backward_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(k), Int64(s), Int64(p), dy, i1, &d1), PK_OK)
            XCTAssertEqual(pk_ref_maxpool2d_backward_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(k), Int64(s), Int64(p), dy, i1, &d2), PK_OK)
            XCTAssertEqual(d1.map(\.bitPattern), d2.map(\.bitPattern), what + " backward")
        }
        // contract: padding above half the kernel, a window wider than the padded image, stride 0
        var y = [Float](repeating: 0, count: 16), idx = [Int32](repeating: 0, count: 16)
        let x = [Float](repeating: 1, count: 16)
        XCTAssertEqual(pk_maxpool2d_forward_f32(1, 1, 4, 4, 3, 1, 2, x, &y, &idx), PK_ERR_SHAPE, "2p > k")
        XCTAssertEqual(pk_maxpool2d_forward_f32(1, 1, 2, 2, 5, 1, 1, x, &y, &idx), PK_ERR_SHAPE, "k > H + 2p")
        XCTAssertEqual(pk_maxpool2d_forward_f32(1, 1, 4, 4, 2, 0, 0, x, &y, &idx), PK_ERR_SHAPE, "stride 0")
        XCTAssertEqual(pk_maxpool2d_forward_f32(0, 1, 4, 4, 3, 2, 1, nil, nil, nil), PK_OK, "empty batch")
    }

    /// Dilated convolution (taps d apart): im2col / col2im, the forward with its epilogue and the
    /// backward (dw masked, db, dx) against the naive references, for dilations 1-3 with paddings,
    /// strides, rectangular images and masks; identical bits for 1 and 2 threads; contract errors.
    func testDilatedConvolutionMatchesReference() {
        var rng = TestRNG(33)
        let saved = pk_get_num_threads()
        defer { pk_set_num_threads(saved) }
        // (n, c, h, w, oc, k, s, p, d)
        let shapes: [(Int, Int, Int, Int, Int, Int, Int, Int, Int)] = [
            (1, 1, 5, 5, 1, 3, 1, 0, 2), (2, 3, 9, 7, 4, 3, 1, 2, 2), (2, 3, 11, 10, 5, 3, 2, 1, 2), (1, 2, 7, 7, 3, 2, 1, 0, 3),
            (2, 4, 8, 9, 7, 3, 1, 3, 3), (1, 2, 3, 3, 2, 3, 1, 2, 2), (3, 5, 12, 12, 17, 3, 2, 2, 2), (2, 3, 6, 6, 4, 3, 1, 1, 1),
            (2, 64, 6, 6, 65, 3, 1, 2, 2), (1, 2, 30, 26, 3, 5, 1, 4, 2),
        ]
        for (n, c, h, w, oc, k, s, p, d) in shapes {
            let e = d * (k - 1) + 1
            let oh = (h + 2 * p - e) / s + 1, ow = (w + 2 * p - e) / s + 1
            let x = rng.floats(n * c * h * w), wt = rng.floats(oc * c * k * k)
            let rows = c * k * k, cols = n * oh * ow
            let what = "dilated \(n),\(c),\(h),\(w)→\(oc) k\(k) s\(s) p\(p) d\(d)"
            var a = [Float](repeating: .nan, count: rows * cols), b = a
            XCTAssertEqual(pk_im2col_dilated_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(k), Int64(k), Int64(s), Int64(p), Int64(d), x, &a), PK_OK)
            XCTAssertEqual(pk_ref_im2col_dilated_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(k), Int64(k), Int64(s), Int64(p), Int64(d), x, &b), PK_OK)
            XCTAssertEqual(a.map(\.bitPattern), b.map(\.bitPattern), what + " im2col")
            let dc = rng.floats(rows * cols)
            var dx1 = [Float](repeating: .nan, count: x.count), dx2 = dx1
            XCTAssertEqual(pk_col2im_dilated_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(k), Int64(k), Int64(s), Int64(p), Int64(d), dc, &dx1), PK_OK)
            XCTAssertEqual(pk_ref_col2im_dilated_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(k), Int64(k), Int64(s), Int64(p), Int64(d), dc, &dx2), PK_OK)
            assertClose(dx1, dx2, rtol: 1e-5, atol: 1e-5, what + " col2im")
            // forward with the epilogue
            let scale = rng.floats(oc, 0.5, 2), shift = rng.floats(oc)
            for (mask, sc, sh, relu) in [(nil, nil, shift, Int32(0)), (rng.mask(wt.count, keep: 0.5), scale, shift, 1)] as [([UInt8]?, [Float]?, [Float]?, Int32)] {
                var want = [Float](repeating: .nan, count: n * oc * oh * ow)
                XCTAssertEqual(pk_ref_conv2d_dilated_forward_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(oc), Int64(k), Int64(k),
                                                                 Int64(s), Int64(p), Int64(d), relu, x, wt, mask, sc, sh, &want), PK_OK)
                var bits: [[UInt32]] = []
                for threads in [1, 2] {
                    pk_set_num_threads(Int32(threads))
                    var y = [Float](repeating: .nan, count: want.count)
                    XCTAssertEqual(pk_conv2d_dilated_forward_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(oc), Int64(k), Int64(k),
                                                                 Int64(s), Int64(p), Int64(d), relu, x, wt, mask, sc, sh, &y), PK_OK)
                    assertClose(y, want, rtol: 1e-4, atol: Float(c * k * k) * 2e-6, what + " forward mask \(mask != nil), \(threads) threads")
                    bits.append(y.map(\.bitPattern))
                }
                XCTAssertEqual(bits[0], bits[1], what + ": same bits for 1 and 2 threads")
            }
            // backward
            let dy = rng.floats(n * oc * oh * ow)
            for mask in [nil, rng.mask(oc * rows, keep: 0.5)] {
                var dw1 = [Float](repeating: .nan, count: wt.count), dw2 = dw1, db1 = [Float](repeating: .nan, count: oc), db2 = db1
                var gx1 = [Float](repeating: .nan, count: x.count), gx2 = gx1
                XCTAssertEqual(pk_conv2d_dilated_backward_update_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(oc), Int64(k), Int64(k),
                                                                     Int64(s), Int64(p), Int64(d), x, wt, mask, dy, &dw1, &db1, &gx1, nil), PK_OK)
                XCTAssertEqual(pk_ref_conv2d_dilated_backward_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(oc), Int64(k), Int64(k),
                                                                  Int64(s), Int64(p), Int64(d), x, wt, mask, dy, &dw2, &db2, &gx2), PK_OK)
                let tol = Float(max(cols, oc * k * k)) * 2e-6
                assertClose(dw1, dw2, rtol: 1e-4, atol: tol, what + " dw mask \(mask != nil)")
                assertClose(db1, db2, rtol: 1e-4, atol: tol, what + " db")
                assertClose(gx1, gx2, rtol: 1e-4, atol: tol, what + " dx")
                if let mask { XCTAssertTrue(zip(dw1, mask).allSatisfy { $1 != 0 || $0 == 0 }, what + ": masked dw is exactly 0") }
            }
        }
        var y = [Float](repeating: 0, count: 64)
        let x = [Float](repeating: 1, count: 16), wt = [Float](repeating: 1, count: 9)
        XCTAssertEqual(pk_conv2d_dilated_forward_f32(1, 1, 4, 4, 1, 3, 3, 1, 0, 2, 0, x, wt, nil, nil, nil, &y), PK_ERR_SHAPE,
                       "a dilated window (5) wider than the image (4)")
        XCTAssertEqual(pk_conv2d_dilated_forward_f32(1, 1, 4, 4, 1, 3, 3, 1, 1, 0, 0, x, wt, nil, nil, nil, &y), PK_ERR_SHAPE, "dilation 0")
        XCTAssertEqual(pk_im2col_dilated_f32(1, 1, 4, 4, 3, 3, 1, 0, 2, x, &y), PK_ERR_SHAPE)
        XCTAssertEqual(pk_conv2d_dilated_forward_f32(1, 1, 4, 4, 1, 3, 3, 1, 1, 2, 0, nil, wt, nil, nil, nil, &y), PK_ERR_NULL)
        XCTAssertEqual(pk_conv2d_dilated_forward_f32(0, 1, 4, 4, 1, 3, 3, 1, 1, 2, 0, nil, nil, nil, nil, nil, nil), PK_OK, "empty batch")
    }

    func testSoftmaxCrossEntropyMatchesReference() {
        var rng = TestRNG(6)
        let (m, n) = (257, 10)
        var z = rng.floats(m * n, -20, 20)
        z[3] = 80 // large logits stay finite
        let labels = (0..<m).map { _ in Int32(rng.int(n)) }
        var l1: Float = 0, l2: Float = 0
        var d1 = [Float](repeating: 0, count: m * n), d2 = d1
        var c1: Int64 = 0, c2: Int64 = 0
        XCTAssertEqual(pk_softmax_xent_f32(Int64(m), Int64(n), z, labels, &l1, &d1, &c1), PK_OK)
        XCTAssertEqual(pk_ref_softmax_xent_f32(Int64(m), Int64(n), z, labels, &l2, &d2, &c2), PK_OK)
        XCTAssertEqual(l1, l2, accuracy: 1e-5 * abs(l2))
        XCTAssertEqual(c1, c2)
        assertClose(d1, d2, rtol: 1e-5, atol: 1e-8, "dlogits")
        var bad = labels
        bad[7] = 10
        var untouched = [Float](repeating: 42, count: m * n)
        XCTAssertEqual(pk_softmax_xent_f32(Int64(m), Int64(n), z, bad, &l1, &untouched, nil), PK_ERR_ARG)
        XCTAssertTrue(untouched.allSatisfy { $0 == 42 }, "nothing written on a bad label")
    }

    func testOptimizersMatchReferenceAndSkipMaskedEntries() {
        var rng = TestRNG(7)
        let n = 40_000
        let mask = rng.mask(n, keep: 0.3)
        for (momentum, nesterov, wd) in [(Float(0), false, Float(0)), (0.9, false, 1e-2), (0.9, true, 5e-4)] {
            let g = rng.floats(n)
            var w = rng.floats(n)
            for i in 0..<n where mask[i] == 0 { w[i] = 0 }
            var v = rng.floats(n)
            var w2 = w, v2 = v
            let v0 = v
            for _ in 0..<3 {
                XCTAssertEqual(pk_sgd_step_f32(Int64(n), 0.1, momentum, wd, nesterov ? 1 : 0, mask, g, &w, &v), PK_OK)
                XCTAssertEqual(pk_ref_sgd_step_f32(Int64(n), 0.1, momentum, wd, nesterov ? 1 : 0, mask, g, &w2, &v2), PK_OK)
            }
            assertClose(w, w2, rtol: 1e-5, atol: 1e-6, "sgd weights m=\(momentum)")
            for i in 0..<n where mask[i] == 0 {
                XCTAssertEqual(w[i].bitPattern, 0, "masked weight moved")
                XCTAssertEqual(v[i].bitPattern, v0[i].bitPattern, "masked momentum moved")
            }
        }
        for (wd, decoupled) in [(Float(0), false), (0.01, false), (0.01, true)] {
            var w = rng.floats(n)
            for i in 0..<n where mask[i] == 0 { w[i] = 0 }
            // non-zero state: a kernel that decays masked state instead of skipping it must show
            var m = rng.floats(n, -0.1, 0.1), v = rng.floats(n, 0, 0.1)
            let m0 = m, v0 = v
            var w2 = w, m2 = m, v2 = v
            for t in 1...4 {
                let g = rng.floats(n)
                XCTAssertEqual(pk_adam_step_f32(Int64(n), 1e-2, 0.9, 0.999, 1e-8, wd, decoupled ? 1 : 0, Int64(t), mask, g, &w, &m, &v), PK_OK)
                XCTAssertEqual(pk_ref_adam_step_f32(Int64(n), 1e-2, 0.9, 0.999, 1e-8, wd, decoupled ? 1 : 0, Int64(t), mask, g, &w2, &m2, &v2), PK_OK)
            }
            assertClose(w, w2, rtol: 1e-5, atol: 1e-6, "adam weights wd=\(wd) decoupled=\(decoupled)")
            assertClose(m, m2, rtol: 1e-5, atol: 1e-7, "adam m")
            assertClose(v, v2, rtol: 1e-5, atol: 1e-8, "adam v")
            for i in 0..<n where mask[i] == 0 {
                XCTAssertEqual(w[i].bitPattern, 0)
                XCTAssertEqual(m[i].bitPattern, m0[i].bitPattern, "masked first moment moved")
                XCTAssertEqual(v[i].bitPattern, v0[i].bitPattern, "masked second moment moved")
            }
        }
        var w: [Float] = [1], m: [Float] = [0], v: [Float] = [0]
        XCTAssertEqual(pk_adam_step_f32(1, 1e-3, 1.5, 0.999, 1e-8, 0, 0, 1, nil, [1], &w, &m, &v), PK_ERR_ARG)
        XCTAssertEqual(pk_adam_step_f32(1, 1e-3, 0.9, 0.999, 1e-8, 0, 0, 0, nil, [1], &w, &m, &v), PK_ERR_ARG)
    }

    /// Taylor, Wanda, block-norm and distillation kernels against their references.
    func testImportanceAndDistillationKernelsMatchReference() {
        var rng = TestRNG(8)
        for n in [1, 17, 4099, 100_003] {
            let a = rng.floats(n), b = rng.floats(n), acc = rng.floats(n, 0, 1)
            var o1 = acc, o2 = acc
            XCTAssertEqual(pk_abs_mul_acc_f32(Int64(n), a, b, &o1), PK_OK)
            XCTAssertEqual(pk_ref_abs_mul_acc_f32(Int64(n), a, b, &o2), PK_OK)
            assertClose(o1, o2, rtol: 1e-6, atol: 0, "abs_mul_acc n=\(n)")
        }
        for (m, n, ld, group) in [(1, 1, 1, 1), (64, 784, 790, 1), (37, 75, 75, 25)] {
            let x = rng.floats(m * ld), acc = rng.floats(n, 0, 1)
            var s1 = acc, s2 = acc
            XCTAssertEqual(pk_col_sumsq_acc_f32(Int64(m), Int64(n), x, Int64(ld), &s1), PK_OK)
            XCTAssertEqual(pk_ref_col_sumsq_acc_f32(Int64(m), Int64(n), x, Int64(ld), &s2), PK_OK)
            assertClose(s1, s2, rtol: 1e-5, atol: 1e-6, "col_sumsq_acc \(m)×\(n)")
            let rows = 9, w = rng.floats(rows * n), sumsq = Array(s2.prefix((n + group - 1) / group))
            var o1 = [Float](repeating: .nan, count: rows * n), o2 = o1
            XCTAssertEqual(pk_wanda_scores_f32(Int64(rows), Int64(n), Int64(group), w, sumsq, &o1), PK_OK)
            XCTAssertEqual(pk_ref_wanda_scores_f32(Int64(rows), Int64(n), Int64(group), w, sumsq, &o2), PK_OK)
            assertClose(o1, o2, rtol: 1e-6, atol: 0, "wanda_scores group \(group)")
        }
        for (rows, cols, bh, bw) in [(8, 8, 4, 1), (13, 30, 4, 4), (300, 784, 4, 4)] {
            let x = rng.floats(rows * cols), mk = rng.mask(rows * cols, keep: 0.5)
            let nb = ((rows + bh - 1) / bh) * ((cols + bw - 1) / bw)
            var o1 = [Float](repeating: .nan, count: nb), o2 = o1
            XCTAssertEqual(pk_block_norms_f32(Int64(rows), Int64(cols), Int64(bh), Int64(bw), x, mk, &o1), PK_OK)
            XCTAssertEqual(pk_ref_block_norms_f32(Int64(rows), Int64(cols), Int64(bh), Int64(bw), x, mk, &o2), PK_OK)
            assertClose(o1, o2, rtol: 1e-5, atol: 1e-7, "block_norms \(rows)×\(cols) \(bh)×\(bw)")
        }
        let (m, n) = (33, 10)
        let s = rng.floats(m * n, -5, 5), t = rng.floats(m * n, -5, 5)
        var l1: Float = 0, l2: Float = 0
        var d1 = [Float](repeating: .nan, count: m * n), d2 = d1
        XCTAssertEqual(pk_distill_kl_f32(Int64(m), Int64(n), 2, s, t, &l1, &d1), PK_OK)
        XCTAssertEqual(pk_ref_distill_kl_f32(Int64(m), Int64(n), 2, s, t, &l2, &d2), PK_OK)
        XCTAssertEqual(l1, l2, accuracy: 1e-5 * max(1, abs(l2)))
        assertClose(d1, d2, rtol: 1e-5, atol: 1e-7, "distill_kl gradient")
    }

    func testDenormalsFlushedInsideKernelsOnly() {
        // 1e-39 is subnormal: with DAZ inside the kernel it reads as 0, so ReLU writes 0.
        let tiny: [Float] = [1e-39]
        var y: [Float] = [1]
        XCTAssertEqual(pk_relu_forward_f32(1, tiny, &y), PK_OK)
        XCTAssertEqual(y[0], 0)
        // the caller's floating-point mode is restored afterwards
        let x = tiny[0] * 1
        XCTAssertNotEqual(x, 0, "caller still sees subnormals")
    }

    func testRuntimeReportsISAAndThreads() {
        XCTAssertTrue(["avx512", "avx2", "scalar"].contains(Runtime.isa))
        XCTAssertGreaterThanOrEqual(Runtime.threads, 1)
        withThreads(3) { XCTAssertEqual(Runtime.threads, 3) }
        // built from the repository the kernels use OpenMP, unless PRUNEKIT_OPENMP=0 chose the pthread pool
        XCTAssertEqual(Runtime.openMP, ProcessInfo.processInfo.environment["PRUNEKIT_OPENMP"] != "0")
        XCTAssertFalse(Runtime.openBLASCoreName.isEmpty)
    }

    func testOpenBLASWarningNamesTheRemedy() {
        let w = Runtime.openBLASWarning(coreName: "Prescott", cpuISA: "avx512")
        XCTAssertNotNil(w)
        XCTAssertTrue(w!.contains("OPENBLAS_CORETYPE=SkylakeX"))
        XCTAssertNil(Runtime.openBLASWarning(coreName: "SkylakeX", cpuISA: "avx512"))
        XCTAssertNil(Runtime.openBLASWarning(coreName: "Prescott", cpuISA: "scalar"))
    }
}
