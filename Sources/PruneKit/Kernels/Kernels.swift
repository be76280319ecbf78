// Swift entry points over the C kernels. Callers validate shapes first (and throw typed errors);
// a failed status here is a bug in PruneKit and surfaces as `KernelError`, never a crash.
internal import CPruneKernels

/// A C kernel returned a failure status. Seeing one means PruneKit passed it bad arguments.
public struct KernelError: Error, CustomStringConvertible, Equatable {
    /// The kernel's name without `pk_` and dtype suffix ("gemm_masked").
    public let kernel: String
    /// The `pk_status` value returned: 1 (NULL pointer) to 6 (out of memory).
    public let status: Int
    /// The C library's description of `status`.
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

    /// Number of nonzero bytes. Throws when the kernel fails (it allocates for large masks), so a
    /// failure never reads as "nothing kept".
    static func countNonzero(_ m: ByteStorage) throws -> Int {
        var c: Int64 = 0
        try check(pk_count_nonzero_u8(Int64(m.count), m.base, &c), "count_nonzero")
        return Int(c)
    }

    /// Whether every element is finite. Throws when the kernel fails (a negative count or a NULL
    /// buffer), so a failure never reads as "not finite".
    static func allFinite(_ x: FloatStorage) throws -> Bool {
        var ok: Int32 = 0
        try check(pk_all_finite_f32(Int64(x.count), x.base, &ok), "all_finite")
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

    /// y[c, n, p] := x[n, c, p] (x N×C×P).
    static func nchwToCnhw(n: Int, c: Int, p: Int, x: FloatStorage, y: FloatStorage) throws {
        try check(pk_nchw_to_cnhw_f32(Int64(n), Int64(c), Int64(p), x.base, y.base), "nchw_to_cnhw")
    }

    /// db[c] := Σ dy[n, c, p].
    static func biasGradNCHW(n: Int, c: Int, p: Int, dy: FloatStorage, db: FloatStorage) throws {
        try check(pk_bias_grad_nchw_f32(Int64(n), Int64(c), Int64(p), dy.base, db.base), "bias_grad_nchw")
    }

    /// y (N×OC×OH×OW) := conv(x, W ⊙ M) + bias, no padding.
    static func convForward(n: Int, c: Int, h: Int, w: Int, outChannels oc: Int, kernel k: Int, stride: Int,
                            x: FloatStorage, weight: FloatStorage, mask: ByteStorage?, bias: FloatStorage?,
                            y: FloatStorage) throws {
        try check(pk_conv2d_forward_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(oc), Int64(k), Int64(k),
                                        Int64(stride), x.base, weight.base, ptr(mask), ptr(bias), y.base),
                  "conv2d_forward")
    }

    /// y (N×OC×OH×OW) := act(scale ⊙ conv(x̃, W ⊙ M) + shift) with x̃ = x zero-padded by `padding`
    /// (never materialised) and kernel taps `dilation` apart; scale/shift per output channel (nil: 1
    /// and 0), act = ReLU when `relu`.
    static func convPaddedForward(n: Int, c: Int, h: Int, w: Int, outChannels oc: Int, kernel k: Int, stride: Int,
                                  padding: Int, dilation: Int = 1, relu: Bool, x: FloatStorage, weight: FloatStorage,
                                  mask: ByteStorage?, scale: FloatStorage?, shift: FloatStorage?, y: FloatStorage) throws {
        try check(pk_conv2d_dilated_forward_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(oc), Int64(k), Int64(k),
                                                Int64(stride), Int64(padding), Int64(dilation), relu ? 1 : 0, x.base, weight.base,
                                                ptr(mask), ptr(scale), ptr(shift), y.base), "conv2d_dilated_forward")
    }

    /// im2col / col2im of an unpadded image for a convolution with zero padding `padding` and
    /// kernel taps `dilation` apart.
    static func im2colPadded(n: Int, c: Int, h: Int, w: Int, kernel k: Int, stride: Int, padding: Int, dilation: Int = 1,
                             x: FloatStorage, cols: FloatStorage) throws {
        try check(pk_im2col_dilated_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(k), Int64(k), Int64(stride),
                                        Int64(padding), Int64(dilation), x.base, cols.base), "im2col_dilated")
    }

    static func col2imPadded(n: Int, c: Int, h: Int, w: Int, kernel k: Int, stride: Int, padding: Int, dilation: Int = 1,
                             dcols: FloatStorage, dx: FloatStorage) throws {
        try check(pk_col2im_dilated_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(k), Int64(k), Int64(stride),
                                        Int64(padding), Int64(dilation), dcols.base, dx.base), "col2im_dilated")
    }

    /// Backward of a convolution with zero padding `padding` (and dilation) on the unpadded input x (dx unpadded).
    static func convPaddedBackward(n: Int, c: Int, h: Int, w: Int, outChannels oc: Int, kernel k: Int, stride: Int,
                                   padding: Int, dilation: Int = 1, x: FloatStorage, weight: FloatStorage, mask: ByteStorage?,
                                   dy: FloatStorage, dw: FloatStorage?, db: FloatStorage?, dx: FloatStorage?,
                                   update: UpdateStep? = nil) throws {
        if let update {
            var d = describe(update, weight: weight, ld: c * k * k)
            try check(pk_conv2d_dilated_backward_update_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(oc), Int64(k), Int64(k),
                                                            Int64(stride), Int64(padding), Int64(dilation), x.base, weight.base,
                                                            ptr(mask), dy.base, ptr(dw), ptr(db), ptr(dx), &d),
                      "conv2d_dilated_backward_update")
        } else {
            try check(pk_conv2d_dilated_backward_update_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(oc), Int64(k), Int64(k),
                                                            Int64(stride), Int64(padding), Int64(dilation), x.base, weight.base,
                                                            ptr(mask), dy.base, ptr(dw), ptr(db), ptr(dx), nil),
                      "conv2d_dilated_backward")
        }
    }

    /// dW (masked), db and, when dx is given, dx of a convolution.
    /// With `update`, the optimizer step is applied to `weight` while the gradient is summed (dx first).
    static func convBackward(n: Int, c: Int, h: Int, w: Int, outChannels oc: Int, kernel k: Int, stride: Int,
                             x: FloatStorage, weight: FloatStorage, mask: ByteStorage?, dy: FloatStorage,
                             dw: FloatStorage?, db: FloatStorage?, dx: FloatStorage?, update: UpdateStep? = nil) throws {
        if let update {
            var d = describe(update, weight: weight, ld: c * k * k)
            try check(pk_conv2d_backward_update_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(oc), Int64(k), Int64(k),
                                                    Int64(stride), x.base, weight.base, ptr(mask), dy.base, ptr(dw),
                                                    ptr(db), ptr(dx), &d), "conv2d_backward_update")
        } else {
            try check(pk_conv2d_backward_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(oc), Int64(k), Int64(k),
                                             Int64(stride), x.base, weight.base, ptr(mask), dy.base, ptr(dw), ptr(db),
                                             ptr(dx)), "conv2d_backward")
        }
    }

    // MARK: pooling

    static func maxPoolForward(n: Int, c: Int, h: Int, w: Int, k: Int, stride: Int, padding: Int, x: FloatStorage,
                               y: FloatStorage, idx: Int32Storage) throws {
        try check(pk_maxpool2d_forward_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(k), Int64(stride), Int64(padding),
                                           x.base, y.base, idx.base), "maxpool2d_forward")
    }

    static func maxPoolBackward(n: Int, c: Int, h: Int, w: Int, k: Int, stride: Int, padding: Int, dy: FloatStorage,
                                idx: Int32Storage, dx: FloatStorage) throws {
        try check(pk_maxpool2d_backward_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(k), Int64(stride), Int64(padding),
                                            dy.base, idx.base, dx.base), "maxpool2d_backward")
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

    /// T²·KL(softmax(teacher/T) ‖ softmax(student/T)) averaged over m rows, and its gradient.
    static func distillKL(m: Int, n: Int, temperature: Float, student: FloatStorage, teacher: FloatStorage,
                          gradient: FloatStorage) throws -> Float {
        var loss: Float = 0
        try check(pk_distill_kl_f32(Int64(m), Int64(n), temperature, student.base, teacher.base, &loss, gradient.base),
                  "distill_kl")
        return loss
    }

    /// out := alpha·x + beta·y (element-wise).
    static func axpby(alpha: Float, x: FloatStorage, beta: Float, y: FloatStorage, out: FloatStorage) throws {
        try check(pk_axpby_f32(Int64(x.count), alpha, x.base, beta, y.base, out.base), "axpby")
    }

    /// out = x ⊙ y (element by element).
    static func mul(x: FloatStorage, y: FloatStorage, out: FloatStorage) throws {
        try check(pk_mul_f32(Int64(x.count), x.base, y.base, out.base), "mul")
    }

    /// out = max(x + y, 0) in one pass (a residual add and its ReLU at inference).
    static func addRelu(x: FloatStorage, y: FloatStorage, out: FloatStorage) throws {
        try check(pk_add_relu_f32(Int64(x.count), x.base, y.base, out.base), "add_relu")
    }

    // MARK: optimizers

    /// Builds the C description of an update on `weight`.
    static func describe(_ u: UpdateStep, weight: FloatStorage, ld: Int) -> pk_update_desc {
        var d = pk_update_desc()
        switch u.kind {
        case .sgd: d.kind = PK_UPDATE_SGD
        case .adam: d.kind = PK_UPDATE_ADAM
        }
        d.lr = u.learningRate; d.momentum = u.momentum; d.weight_decay = u.weightDecay
        d.beta1 = u.beta1; d.beta2 = u.beta2; d.eps = u.epsilon
        d.nesterov = u.nesterov ? 1 : 0; d.decoupled = u.decoupled ? 1 : 0
        d.step = Int64(u.step)
        d.w = weight.base; d.m = ptr(u.first); d.v = ptr(u.second)
        d.ld = Int64(ld)
        return d
    }

    /// One optimizer step on `weight` from `grad`, skipping masked entries.
    static func applyUpdate(_ u: UpdateStep, mask: ByteStorage?, grad: FloatStorage, weight: FloatStorage) throws {
        var d = describe(u, weight: weight, ld: 0)
        try check(pk_update_f32(Int64(weight.count), &d, ptr(mask), grad.base), "update")
    }

    /// Fused weight gradient (dYᵀ·X ⊙ M, O×I) and optimizer step; `dw` receives the gradient when given.
    static func linearWeightUpdate(o: Int, i: Int, b: Int, dy: FloatStorage, x: FloatStorage, mask: ByteStorage?,
                                   update: UpdateStep, weight: FloatStorage, dw: FloatStorage?) throws {
        var d = describe(update, weight: weight, ld: i)
        try check(pk_linear_weight_update_f32(Int64(o), Int64(i), Int64(b), dy.base, Int64(o), x.base, Int64(i),
                                              ptr(mask), Int64(i), &d, ptr(dw), Int64(i)), "linear_weight_update")
    }

    // MARK: selection

    enum SelectionFailure: Error { case nonFinite, tooMany }

    /// Prunes (in place) exactly k kept entries over all `masks` together, smallest score first,
    /// ties by lowest (tensor, index). Returns the peak extra bytes. Nothing changes on error.
    static func pruneSmallest(scores: [FloatStorage], masks: [ByteStorage], useAbs: Bool, k: Int) throws -> Int {
        precondition(scores.count == masks.count)
        var sizes = scores.map { Int64($0.count) }
        var sp: [UnsafePointer<Float>?] = scores.map { UnsafePointer($0.base) }
        var mp: [UnsafeMutablePointer<UInt8>?] = masks.map { $0.base }
        var extra: Int64 = 0
        let st = sizes.withUnsafeMutableBufferPointer { sz in
            sp.withUnsafeMutableBufferPointer { s in
                mp.withUnsafeMutableBufferPointer { m in
                    pk_prune_smallest_f32(Int64(scores.count), sz.baseAddress, s.baseAddress, m.baseAddress, useAbs ? 1 : 0,
                                          Int64(k), &extra)
                }
            }
        }
        if st == PK_ERR_NONFINITE { throw SelectionFailure.nonFinite }
        if st == PK_ERR_ARG { throw SelectionFailure.tooMany }
        try check(st, "prune_smallest")
        return Int(extra)
    }

    /// Prunes round-half-to-even(fraction × kept) entries, the kept count taken by the kernel's own
    /// pass. Returns (pruned count, peak extra bytes).
    static func pruneFraction(scores: [FloatStorage], masks: [ByteStorage], useAbs: Bool, fraction: Double) throws -> (Int, Int) {
        precondition(scores.count == masks.count)
        var sizes = scores.map { Int64($0.count) }
        var sp: [UnsafePointer<Float>?] = scores.map { UnsafePointer($0.base) }
        var mp: [UnsafeMutablePointer<UInt8>?] = masks.map { $0.base }
        var extra: Int64 = 0, pruned: Int64 = 0
        let st = sizes.withUnsafeMutableBufferPointer { sz in
            sp.withUnsafeMutableBufferPointer { s in
                mp.withUnsafeMutableBufferPointer { m in
                    pk_prune_fraction_f32(Int64(scores.count), sz.baseAddress, s.baseAddress, m.baseAddress, useAbs ? 1 : 0,
                                          fraction, &pruned, &extra)
                }
            }
        }
        if st == PK_ERR_NONFINITE { throw SelectionFailure.nonFinite }
        if st == PK_ERR_ARG { throw SelectionFailure.tooMany }
        try check(st, "prune_fraction")
        return (Int(pruned), Int(extra))
    }

    /// N:M: in every group of m consecutive entries of each row keep at most n (largest scores).
    static func nmMask(rows: Int, cols: Int, n: Int, m: Int, scores: FloatStorage, useAbs: Bool, mask: ByteStorage) throws {
        let st = pk_nm_mask_f32(Int64(rows), Int64(cols), Int64(n), Int64(m), scores.base, Int64(cols), useAbs ? 1 : 0, mask.base)
        if st == PK_ERR_NONFINITE { throw SelectionFailure.nonFinite }
        try check(st, "nm_mask")
    }

    /// ‖x[:, d, :]‖_p for x viewed as a×d×b, kept entries only when a mask is given.
    static func unitNorms(a: Int, d: Int, b: Int, p: Double, x: FloatStorage, mask: ByteStorage?) throws -> [Float] {
        let out = FloatStorage(count: d)
        let st = pk_unit_norms_f32(Int64(a), Int64(d), Int64(b), p, x.base, ptr(mask), out.base)
        if st == PK_ERR_NONFINITE { throw SelectionFailure.nonFinite }
        try check(st, "unit_norms")
        return out.toArray()
    }

    // MARK: importance

    static func absMulAccumulate(a: FloatStorage, b: FloatStorage, acc: FloatStorage) throws {
        precondition(a.count == b.count && a.count == acc.count)
        try check(pk_abs_mul_acc_f32(Int64(a.count), a.base, b.base, acc.base), "abs_mul_acc")
    }

    /// g (n×n) += xᵀx over the m rows of x (m×n).
    static func gramAccumulate(rows: Int, cols: Int, x: FloatStorage, acc: FloatStorage) throws {
        precondition(acc.count == cols * cols)
        try check(pk_gram_acc_f32(Int64(rows), Int64(cols), x.base, Int64(cols), acc.base), "gram_acc")
    }

    /// SparseGPT on w (rows×cols, in place) from the Gram matrix of its inputs; returns the mask
    /// (1 kept). `nm`: keep n of every m; otherwise `sparsity` of each row.
    static func sparseGPT(rows: Int, cols: Int, w: FloatStorage, gram: FloatStorage, damp: Float, sparsity: Double,
                          nm: (n: Int, m: Int)?, block: Int = 128) throws -> [UInt8] {
        var mask = [UInt8](repeating: 0, count: rows * cols)
        let st = mask.withUnsafeMutableBufferPointer { mk in
            pk_sparsegpt_f32(Int64(rows), Int64(cols), w.base, gram.base, damp, sparsity, Int64(nm?.n ?? 0), Int64(nm?.m ?? 0),
                             Int64(block), mk.baseAddress)
        }
        try check(st, "sparsegpt")
        return mask
    }

    static func columnSumSquaresAccumulate(rows: Int, cols: Int, x: FloatStorage, acc: FloatStorage) throws {
        try check(pk_col_sumsq_acc_f32(Int64(rows), Int64(cols), x.base, Int64(cols), acc.base), "col_sumsq_acc")
    }

    static func wandaScores(rows: Int, cols: Int, group: Int, w: FloatStorage, sumsq: FloatStorage) throws -> FloatStorage {
        let out = FloatStorage(uninitializedCount: rows * cols)
        try check(pk_wanda_scores_f32(Int64(rows), Int64(cols), Int64(group), w.base, sumsq.base, out.base), "wanda_scores")
        return out
    }

    static func blockNorms(rows: Int, cols: Int, bh: Int, bw: Int, x: FloatStorage, mask: ByteStorage?) throws -> FloatStorage {
        let out = FloatStorage(count: ((rows + bh - 1) / bh) * ((cols + bw - 1) / bw))
        try check(pk_block_norms_f32(Int64(rows), Int64(cols), Int64(bh), Int64(bw), x.base, ptr(mask), out.base), "block_norms")
        return out
    }
}
