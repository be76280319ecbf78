internal import CPruneKernels

/// Wrappers of the kernels behind the graph layers: batch normalisation, smooth activations,
/// average pooling and zero padding.
extension Kernels {
    static func batchNormForward(n: Int, c: Int, s: Int, x: FloatStorage, gamma: FloatStorage?, beta: FloatStorage?, eps: Float,
                                 training: Bool, momentum: Float, runningMean: FloatStorage?, runningVar: FloatStorage?,
                                 y: FloatStorage, saveMean: FloatStorage?, saveInvstd: FloatStorage?) throws {
        try check(pk_batchnorm_forward_f32(Int64(n), Int64(c), Int64(s), x.base, gamma?.base, beta?.base, eps, training ? 1 : 0,
                                           momentum, runningMean?.base, runningVar?.base, y.base, saveMean?.base, saveInvstd?.base),
                  "batchnorm")
    }

    static func batchNormBackward(n: Int, c: Int, s: Int, x: FloatStorage, gamma: FloatStorage?, saveMean: FloatStorage,
                                  saveInvstd: FloatStorage, dy: FloatStorage, training: Bool, dx: FloatStorage?,
                                  dgamma: FloatStorage?, dbeta: FloatStorage?) throws {
        try check(pk_batchnorm_backward_f32(Int64(n), Int64(c), Int64(s), x.base, gamma?.base, saveMean.base, saveInvstd.base,
                                            dy.base, training ? 1 : 0, dx?.base, dgamma?.base, dbeta?.base), "batchnorm backward")
    }

    static func activationForward(kind: Int32, x: FloatStorage, y: FloatStorage) throws {
        try check(pk_activation_forward_f32(Int64(x.count), kind, x.base, y.base), "activation")
    }

    static func activationBackward(kind: Int32, x: FloatStorage, dy: FloatStorage, dx: FloatStorage) throws {
        try check(pk_activation_backward_f32(Int64(x.count), kind, x.base, dy.base, dx.base), "activation backward")
    }

    static func avgPoolForward(n: Int, c: Int, h: Int, w: Int, kh: Int, kw: Int, stride: Int, padding: Int,
                               x: FloatStorage, y: FloatStorage) throws {
        try check(pk_avgpool2d_forward_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(kh), Int64(kw), Int64(stride),
                                           Int64(padding), x.base, y.base), "avgpool")
    }

    static func avgPoolBackward(n: Int, c: Int, h: Int, w: Int, kh: Int, kw: Int, stride: Int, padding: Int,
                                dy: FloatStorage, dx: FloatStorage) throws {
        try check(pk_avgpool2d_backward_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(kh), Int64(kw), Int64(stride),
                                            Int64(padding), dy.base, dx.base), "avgpool backward")
    }

    static func groupedConvForward(n: Int, c: Int, h: Int, w: Int, oc: Int, k: Int, stride: Int, dilation: Int = 1, groups: Int,
                                   x: FloatStorage, weight: FloatStorage, mask: ByteStorage?, bias: FloatStorage?,
                                   y: FloatStorage) throws {
        try check(pk_conv2d_grouped_forward_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(oc), Int64(k), Int64(stride),
                                                Int64(dilation), Int64(groups), x.base, weight.base, mask?.base, bias?.base, y.base), "grouped conv")
    }

    static func groupedConvBackward(n: Int, c: Int, h: Int, w: Int, oc: Int, k: Int, stride: Int, dilation: Int = 1,
                                    groups: Int, x: FloatStorage, weight: FloatStorage, mask: ByteStorage?, dy: FloatStorage,
                                    dw: FloatStorage?, dx: FloatStorage?) throws {
        try check(pk_conv2d_grouped_backward_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(oc), Int64(k), Int64(stride),
                                                 Int64(dilation), Int64(groups), x.base, weight.base, mask?.base, dy.base, dw?.base, dx?.base),
                  "grouped conv backward")
    }

    static func pad2d(n: Int, c: Int, h: Int, w: Int, p: Int, x: FloatStorage, y: FloatStorage) throws {
        try check(pk_pad2d_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(p), x.base, y.base), "pad2d")
    }

    static func crop2d(n: Int, c: Int, h: Int, w: Int, p: Int, x: FloatStorage, y: FloatStorage) throws {
        try check(pk_crop2d_f32(Int64(n), Int64(c), Int64(h), Int64(w), Int64(p), x.base, y.base), "crop2d")
    }
}
