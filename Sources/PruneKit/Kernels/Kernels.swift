// Swift entry points over the C kernels. Callers validate shapes first (and throw typed errors);
// a failed status here is a bug in PruneKit and surfaces as `KernelError`, never a crash.
internal import CPruneKernels

/// A C kernel returned a failure status. Seeing one means PruneKit passed it bad arguments.
public struct KernelError: Error, CustomStringConvertible, Equatable {
    public let kernel: String
    public let status: Int
    public let message: String
    public var description: String { "kernel \(kernel) failed: \(message) (status \(status))" }
}

enum Kernels {
    @inline(__always)
    static func check(_ s: pk_status, _ kernel: String) throws {
        if s != PK_OK {
            throw KernelError(kernel: kernel, status: Int(s.rawValue), message: String(cString: pk_status_string(s)))
        }
    }

    static func ptr(_ s: FloatStorage?) -> UnsafeMutablePointer<Float>? { s?.base }
    static func ptr(_ s: ByteStorage?) -> UnsafeMutablePointer<UInt8>? { s?.base }

    // MARK: GEMM family (row-major; leading dimension = row length unless given)

    /// Y (m×n) := X (m×k) · (W ⊙ M)ᵀ + bias, W n×k.
    static func linearForward(m: Int, n: Int, k: Int, x: FloatStorage, w: FloatStorage, mask: ByteStorage?,
                              bias: FloatStorage?, y: FloatStorage) throws {
        try check(pk_linear_forward_f32(Int64(m), Int64(n), Int64(k), x.base, Int64(k), w.base, Int64(k),
                                        ptr(mask), Int64(k), ptr(bias), y.base, Int64(n)), "linear_forward")
    }

    /// C (m×n) := alpha · A (m×k) · (W ⊙ M)ᵀ + beta · C, W n×k.
    static func gemmNT(m: Int, n: Int, k: Int, alpha: Float = 1, a: FloatStorage, lda: Int? = nil,
                       w: FloatStorage, ldw: Int? = nil, mask: ByteStorage?, beta: Float = 0,
                       c: FloatStorage, ldc: Int? = nil) throws {
        try check(pk_gemm_masked_f32(Int64(m), Int64(n), Int64(k), alpha, a.base, Int64(lda ?? k), w.base,
                                     Int64(ldw ?? k), ptr(mask), Int64(ldw ?? k), beta, c.base, Int64(ldc ?? n)),
                  "gemm_masked")
    }

    /// C (m×n) := alpha · A (m×k) · (W ⊙ M) + beta · C, W k×n.
    static func gemmNN(m: Int, n: Int, k: Int, alpha: Float = 1, a: FloatStorage, w: FloatStorage,
                       mask: ByteStorage?, beta: Float = 0, c: FloatStorage) throws {
        try check(pk_gemm_masked_nn_f32(Int64(m), Int64(n), Int64(k), alpha, a.base, Int64(k), w.base, Int64(n),
                                        ptr(mask), Int64(n), beta, c.base, Int64(n)), "gemm_masked_nn")
    }

    /// C (m×n) := (alpha · Aᵀ · B + beta · C) ⊙ M, A k×m, B k×n.
    static func gemmTN(m: Int, n: Int, k: Int, alpha: Float = 1, a: FloatStorage, b: FloatStorage,
                       mask: ByteStorage?, beta: Float = 0, c: FloatStorage) throws {
        try check(pk_gemm_masked_tn_f32(Int64(m), Int64(n), Int64(k), alpha, a.base, Int64(m), b.base, Int64(n),
                                        ptr(mask), Int64(n), beta, c.base, Int64(n)), "gemm_masked_tn")
    }

    // MARK: element-wise

    static func reluForward(n: Int, x: FloatStorage, y: FloatStorage) throws {
        try check(pk_relu_forward_f32(Int64(n), x.base, y.base), "relu_forward")
    }

    static func reluBackward(n: Int, y: FloatStorage, dy: FloatStorage, dx: FloatStorage) throws {
        try check(pk_relu_backward_f32(Int64(n), y.base, dy.base, dx.base), "relu_backward")
    }

    /// out[j] := beta·out[j] + Σ_i X[i, j], X m×n.
    static func sumRows(m: Int, n: Int, beta: Float = 0, x: FloatStorage, out: FloatStorage) throws {
        try check(pk_sum_rows_f32(Int64(m), Int64(n), beta, x.base, Int64(n), out.base), "sum_rows")
    }

    static func maskApply(mask: ByteStorage, w: FloatStorage) throws {
        precondition(mask.count == w.count)
        try check(pk_mask_apply_f32(Int64(w.count), mask.base, w.base), "mask_apply")
    }

    static func countNonzero(_ m: ByteStorage) -> Int {
        var c: Int64 = 0
        _ = pk_count_nonzero_u8(Int64(m.count), m.base, &c)
        return Int(c)
    }

    static func allFinite(_ x: FloatStorage) -> Bool {
        var ok: Int32 = 0
        _ = pk_all_finite_f32(Int64(x.count), x.base, &ok)
        return ok != 0
    }

    // MARK: convolution (patch-major columns: cols is K × NP, K = C·KH·KW, NP = N·OH·OW)

    static func im2col(n: Int, c: Int, h: Int, w: Int, kh: Int, kw: Int, stride: Int,
                       x: FloatStorage, cols: FloatStorage) throws {
        try check(pk_im2col_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(kh), Int64(kw), Int64(stride),
                                x.base, cols.base), "im2col")
    }

    static func col2im(n: Int, c: Int, h: Int, w: Int, kh: Int, kw: Int, stride: Int,
                       dcols: FloatStorage, dx: FloatStorage) throws {
        try check(pk_col2im_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(kh), Int64(kw), Int64(stride),
                                dcols.base, dx.base), "col2im")
    }

    /// y (N×OC×OH×OW) := conv(x, W ⊙ M) + bias, no padding.
    static func convForward(n: Int, c: Int, h: Int, w: Int, outChannels oc: Int, kernel k: Int, stride: Int,
                            x: FloatStorage, weight: FloatStorage, mask: ByteStorage?, bias: FloatStorage?,
                            y: FloatStorage) throws {
        try check(pk_conv2d_forward_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(oc), Int64(k), Int64(k),
                                        Int64(stride), x.base, weight.base, ptr(mask), ptr(bias), y.base),
                  "conv2d_forward")
    }

    /// dW (masked), db and, when dx is given, dx of a convolution.
    static func convBackward(n: Int, c: Int, h: Int, w: Int, outChannels oc: Int, kernel k: Int, stride: Int,
                             x: FloatStorage, weight: FloatStorage, mask: ByteStorage?, dy: FloatStorage,
                             dw: FloatStorage, db: FloatStorage?, dx: FloatStorage?) throws {
        try check(pk_conv2d_backward_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(oc), Int64(k), Int64(k),
                                         Int64(stride), x.base, weight.base, ptr(mask), dy.base, dw.base, ptr(db),
                                         ptr(dx)), "conv2d_backward")
    }

    // MARK: pooling

    static func maxPoolForward(n: Int, c: Int, h: Int, w: Int, k: Int, x: FloatStorage, y: FloatStorage,
                               idx: Int32Storage) throws {
        try check(pk_maxpool2d_forward_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(k), x.base, y.base,
                                           idx.base), "maxpool2d_forward")
    }

    static func maxPoolBackward(n: Int, c: Int, h: Int, w: Int, k: Int, dy: FloatStorage, idx: Int32Storage,
                                dx: FloatStorage) throws {
        try check(pk_maxpool2d_backward_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(k), dy.base, idx.base,
                                            dx.base), "maxpool2d_backward")
    }

    // MARK: loss

    /// Mean softmax cross-entropy of m rows of n logits; writes the gradient when `dlogits` is given.
    static func softmaxCrossEntropy(m: Int, n: Int, logits: FloatStorage, labels: Int32Storage,
                                    dlogits: FloatStorage?) throws -> (loss: Float, correct: Int) {
        var loss: Float = 0
        var correct: Int64 = 0
        try check(pk_softmax_xent_f32(Int64(m), Int64(n), logits.base, labels.base, &loss, ptr(dlogits), &correct),
                  "softmax_xent")
        return (loss, Int(correct))
    }

    // MARK: optimizers

    static func sgdStep(lr: Float, momentum: Float, weightDecay: Float, nesterov: Bool, mask: ByteStorage?,
                        grad: FloatStorage, weight: FloatStorage, velocity: FloatStorage?) throws {
        try check(pk_sgd_step_f32(Int64(weight.count), lr, momentum, weightDecay, nesterov ? 1 : 0, ptr(mask),
                                  grad.base, weight.base, ptr(velocity)), "sgd_step")
    }

    static func adamStep(lr: Float, beta1: Float, beta2: Float, eps: Float, weightDecay: Float, decoupled: Bool,
                         step: Int, mask: ByteStorage?, grad: FloatStorage, weight: FloatStorage,
                         m: FloatStorage, v: FloatStorage) throws {
        try check(pk_adam_step_f32(Int64(weight.count), lr, beta1, beta2, eps, weightDecay, decoupled ? 1 : 0,
                                   Int64(step), ptr(mask), grad.base, weight.base, m.base, v.base), "adam_step")
    }
}
