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

    /// Per-channel sums over N×C×S in double: Σx, or Σ(x − center)² when `center` is given.
    static func channelSums(n: Int, c: Int, s: Int, x: FloatStorage, center: [Double]?) throws -> [Double] {
        guard x.count == n * c * s, center.map({ $0.count == c }) ?? true else {
            throw KernelError(kernel: "channel sums", status: -1, message: "sizes do not match")
        }
        var out = [Double](repeating: 0, count: c)
        for ch in 0..<c {
            var t = 0.0
            for i in 0..<n {
                let p = x.base + (i * c + ch) * s
                if let m = center?[ch] {
                    for j in 0..<s { let d = Double(p[j]) - m; t += d * d }
                } else {
                    for j in 0..<s { t += Double(p[j]) }
                }
            }
            out[ch] = t
        }
        return out
    }

    /// BatchNorm's per-channel Σ dy·x̂ (first c entries) and Σ dy (next c) in double, x̂ = (x − mean)·invstd
    /// in float as the backward kernel forms it.
    static func channelGradientSums(n: Int, c: Int, s: Int, x: FloatStorage, dy: FloatStorage, mean: FloatStorage,
                                    invstd: FloatStorage) throws -> [Double] {
        guard x.count == n * c * s, dy.count == x.count, mean.count >= c, invstd.count >= c else {
            throw KernelError(kernel: "batchnorm gradient sums", status: -1, message: "sizes do not match")
        }
        var out = [Double](repeating: 0, count: 2 * c)
        for ch in 0..<c {
            let mu = mean.base[ch], inv = invstd.base[ch]
            var sdy = 0.0, sdyx = 0.0
            for i in 0..<n {
                let o = (i * c + ch) * s
                let p = x.base + o, d = dy.base + o
                for j in 0..<s {
                    sdy += Double(d[j])
                    sdyx += Double(d[j]) * Double((p[j] - mu) * inv)
                }
            }
            out[ch] = sdyx
            out[c + ch] = sdy
        }
        return out
    }

    /// BatchNorm's training input gradient from the global batch's sums (synchronised BatchNorm):
    /// dx = γ·invstd·(dy − Σdy/count − x̂·Σdy·x̂/count), x̂ = (x − mean)·invstd, with `sums` holding
    /// Σdy·x̂ per channel then Σdy per channel, over all ranks; float arithmetic as the kernel's.
    static func batchNormInputGradient(n: Int, c: Int, s: Int, x: FloatStorage, dy: FloatStorage, gamma: FloatStorage?,
                                       mean: FloatStorage, invstd: FloatStorage, sums: [Double], count: Int,
                                       dx: FloatStorage) throws {
        guard x.count == n * c * s, dy.count == x.count, dx.count == x.count, sums.count == 2 * c, mean.count >= c,
              invstd.count >= c, count > 0, gamma.map({ $0.count >= c }) ?? true else {
            throw KernelError(kernel: "batchnorm input gradient", status: -1, message: "sizes do not match")
        }
        for ch in 0..<c {
            let mu = mean.base[ch], inv = invstd.base[ch], k = (gamma?.base[ch] ?? 1) * inv
            let a = Float(sums[c + ch] / Double(count)), b = Float(sums[ch] / Double(count))
            for i in 0..<n {
                let o = (i * c + ch) * s
                let p = x.base + o, d = dy.base + o, q = dx.base + o
                for j in 0..<s { q[j] = k * (d[j] - a - (p[j] - mu) * inv * b) }
            }
        }
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
