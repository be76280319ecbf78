internal import CPruneKernels

// Swift entry points of the transformer kernels (src/transformer.c). Callers validate shapes.
extension Kernels {
    static func bertEmbeddings(b: Int, t: Int, n: Int, ids: [Int32], word: FloatStorage, vocab: Int, pos: FloatStorage,
                               positions: Int, type0: FloatStorage, out: FloatStorage) throws {
        let st = ids.withUnsafeBufferPointer {
            pk_bert_embeddings_f32(Int64(b), Int64(t), Int64(n), $0.baseAddress, Int64(vocab), word.base, Int64(positions),
                                   pos.base, type0.base, out.base)
        }
        try check(st, "bert_embeddings")
    }

    static func layerNorm(rows: Int, n: Int, x: FloatStorage, gamma: FloatStorage, beta: FloatStorage, eps: Float,
                          y: FloatStorage) throws {
        try check(pk_layernorm_f32(Int64(rows), Int64(n), x.base, Int64(n), gamma.base, beta.base, eps, y.base, Int64(n)), "layernorm")
    }

    static func gelu(_ x: FloatStorage, into y: FloatStorage) throws {
        try check(pk_gelu_f32(Int64(x.count), x.base, y.base), "gelu")
    }

    /// q, k, v, out: B·T × H·D rows.
    static func attention(b: Int, t: Int, heads: Int, headDim: Int, q: FloatStorage, k: FloatStorage, v: FloatStorage,
                          mask: FloatStorage?, headMask: [Float]?, out: FloatStorage) throws {
        let w = Int64(heads * headDim)
        let st = (headMask ?? []).withUnsafeBufferPointer { hm in
            pk_attention_f32(Int64(b), Int64(t), Int64(heads), Int64(headDim), q.base, k.base, v.base, w, mask.map { UnsafePointer($0.base) },
                             headMask == nil ? nil : hm.baseAddress, out.base, w)
        }
        try check(st, "attention")
    }

    static func meanPool(b: Int, t: Int, n: Int, x: FloatStorage, mask: FloatStorage?, normalize: Bool, out: FloatStorage) throws {
        try check(pk_mean_pool_f32(Int64(b), Int64(t), Int64(n), x.base, mask.map { UnsafePointer($0.base) }, normalize ? 1 : 0,
                                   out.base), "mean_pool")
    }

    static func layerNormBackward(rows: Int, n: Int, x: FloatStorage, gamma: FloatStorage, eps: Float, dy: FloatStorage,
                                  dx: FloatStorage) throws {
        try check(pk_layernorm_backward_f32(Int64(rows), Int64(n), x.base, gamma.base, eps, dy.base, dx.base), "layernorm_backward")
    }

    static func layerNormParamGrad(rows: Int, n: Int, x: FloatStorage, eps: Float, dy: FloatStorage, dgamma: FloatStorage,
                                   dbeta: FloatStorage) throws {
        try check(pk_layernorm_param_grad_f32(Int64(rows), Int64(n), x.base, eps, dy.base, dgamma.base, dbeta.base),
                  "layernorm_param_grad")
    }

    static func geluBackward(x: FloatStorage, dy: FloatStorage, dx: FloatStorage) throws {
        try check(pk_gelu_backward_f32(Int64(x.count), x.base, dy.base, dx.base), "gelu_backward")
    }

    static func attentionBackward(b: Int, t: Int, heads: Int, headDim: Int, q: FloatStorage, k: FloatStorage, v: FloatStorage,
                                  mask: FloatStorage?, headMask: [Float]?, dout: FloatStorage,
                                  dq: FloatStorage, dk: FloatStorage, dv: FloatStorage) throws {
        let w = Int64(heads * headDim)
        let st = (headMask ?? []).withUnsafeBufferPointer { hm in
            pk_attention_backward_f32(Int64(b), Int64(t), Int64(heads), Int64(headDim), q.base, k.base, v.base, w,
                                      mask.map { UnsafePointer($0.base) }, headMask == nil ? nil : hm.baseAddress, dout.base,
                                      dq.base, dk.base, dv.base)
        }
        try check(st, "attention_backward")
    }

    /// out[j] = Σ over rows of a[r, j]·b[r, j] (a, b rows × cols).
    static func columnDots(rows: Int, cols: Int, a: FloatStorage, b: FloatStorage) throws -> [Float] {
        var out = [Float](repeating: 0, count: cols)
        let st = out.withUnsafeMutableBufferPointer { pk_col_dot_f32(Int64(rows), Int64(cols), a.base, b.base, $0.baseAddress) }
        try check(st, "col_dot")
        return out
    }

    /// out[c] = Σ over images and positions of a[n, c, s]·b[n, c, s] (a, b N × C × S).
    static func channelDots(n: Int, c: Int, s: Int, a: FloatStorage, b: FloatStorage) throws -> [Float] {
        var out = [Float](repeating: 0, count: c)
        let st = out.withUnsafeMutableBufferPointer { pk_channel_dot_f32(Int64(n), Int64(c), Int64(s), a.base, b.base, $0.baseAddress) }
        try check(st, "channel_dot")
        return out
    }

    /// Token-row distillation term of b sequences of t rows (see pk_token_mse_f32); returns the loss
    /// summed over the sequences and writes the gradient.
    static func tokenMSE(b: Int, t: Int, n: Int, student: FloatStorage, teacher: FloatStorage, mask: FloatStorage, weight: Float,
                         grad: FloatStorage) throws -> Double {
        var loss = 0.0
        try check(pk_token_mse_f32(Int64(b), Int64(t), Int64(n), student.base, teacher.base, mask.base, weight, &loss, grad.base),
                  "token_mse")
        return loss
    }

    static func meanPoolBackward(b: Int, t: Int, n: Int, x: FloatStorage, mask: FloatStorage?, dout: FloatStorage,
                                 dx: FloatStorage) throws {
        try check(pk_mean_pool_backward_f32(Int64(b), Int64(t), Int64(n), x.base, mask.map { UnsafePointer($0.base) }, dout.base,
                                            dx.base), "mean_pool_backward")
    }
}
