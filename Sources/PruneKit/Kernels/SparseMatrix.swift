internal import CPruneKernels

/// A pruned weight matrix (rows × cols, a Linear's out × in) that holds only its kept entries:
/// compressed sparse rows plus a transposed index, so that the forward product (x·Wᵀ), the input
/// gradient (dy·W) and the weight gradient at kept entries all run from this one form. `values` is
/// the live weight: optimizer steps update it in place, with optimizer state of the same size.
public final class SparseMatrix: CompressedWeight, @unchecked Sendable {
    public var format: CompressedFormat { .csr }
    public let rows: Int
    public let cols: Int
    /// Number of kept entries.
    public let nnz: Int
    /// The kept weights, row by row (columns increasing).
    public let values: FloatStorage
    public var stateCount: Int { nnz }
    private let ptr: AlignedStorage<Int64>, tptr: AlignedStorage<Int64>
    private let idx: AlignedStorage<Int32>, tidx: AlignedStorage<Int32>, tperm: AlignedStorage<Int32>

    /// The compressed form of `weight` where `mask` keeps entries (all of them when nil). A weight
    /// of rank above 2 (a convolution's OC × C × KH × KW) is viewed as shape[0] × the rest.
    public init(weight: Tensor, mask: Mask?) throws {
        guard weight.rank >= 2, weight.shape[0] > 0 else { throw TensorError.invalidShape(weight.shape) }
        if let mask, mask.shape != weight.shape { throw TensorError.shapeMismatch(expected: weight.shape, got: mask.shape) }
        rows = weight.shape[0]
        cols = weight.count / rows
        let m = mask?.storage ?? ByteStorage(count: weight.count, repeating: 1)
        nnz = try Kernels.countNonzero(m)
        values = FloatStorage(count: nnz)
        ptr = AlignedStorage(count: rows + 1)
        tptr = AlignedStorage(count: cols + 1)
        idx = AlignedStorage(count: nnz)
        tidx = AlignedStorage(count: nnz)
        tperm = AlignedStorage(count: nnz)
        var a = csr
        try Kernels.check(pk_csr_build_f32(&a, weight.storage.base, Int64(cols), m.base, Int64(cols)), "csr_build")
    }

    var csr: pk_csr {
        pk_csr(rows: Int64(rows), cols: Int64(cols), nnz: Int64(nnz), ptr: ptr.base, idx: idx.base, val: values.base,
               tptr: tptr.base, tidx: tidx.base, tperm: tperm.base)
    }

    /// The dense weight (zeros where pruned) and its mask.
    public func dense() throws -> (weight: Tensor, mask: Mask) {
        let w = FloatStorage(uninitializedCount: rows * cols), m = ByteStorage(uninitializedCount: rows * cols)
        var a = csr
        let st = pk_csr_to_dense_f32(&a, w.base, Int64(cols), m.base, Int64(cols))
        precondition(st == PK_OK, "csr_to_dense: \(st)")
        return (try Tensor(shape: [rows, cols], storage: w), Mask(shape: [rows, cols], storage: m))
    }

    /// Bytes held: values, indices of both orientations, row and column starts.
    public var bytes: Int { nnz * (4 + 4 + 4 + 4) + (rows + cols + 2) * 8 }

    /// The kept weights as a flat array (row-major order of the kept entries).
    public var keptValues: [Float] { values.toArray() }

    public func forward(_ x: FloatStorage, batch: Int, bias: FloatStorage?, into y: FloatStorage, features: Bool) throws {
        try product(trans: false, features: features, x, batch: batch, bias: bias, into: y)
    }

    public func inputGradient(_ dy: FloatStorage, batch: Int, into dx: FloatStorage, features: Bool) throws {
        try product(trans: true, features: features, dy, batch: batch, bias: nil, into: dx)
    }

    public func weightGradient(dy: FloatStorage, x: FloatStorage, batch: Int, step: UpdateStep?, grad: FloatStorage?,
                               features: Bool) throws {
        try sampledGradient(features: features, dy: dy, x: x, batch: batch, step: step, grad: grad)
    }

    /// y (b × rows) = x (b × cols) · Wᵀ + bias.
    func forward(_ x: FloatStorage, batch: Int, bias: FloatStorage?, into y: FloatStorage) throws {
        try product(trans: false, features: false, x, batch: batch, bias: bias, into: y)
    }

    /// dx (b × cols) = dy (b × rows) · W.
    func inputGradient(_ dy: FloatStorage, batch: Int, into dx: FloatStorage) throws {
        try product(trans: true, features: false, dy, batch: batch, bias: nil, into: dx)
    }

    /// The weight gradient at the kept entries (nnz), and, when `step` is given, that step applied to
    /// `values` with compressed state (fused: no gradient pass of its own). `grad` receives the
    /// gradient when given.
    func weightGradient(dy: FloatStorage, x: FloatStorage, batch: Int, step: UpdateStep?, grad: FloatStorage?) throws {
        try sampledGradient(features: false, dy: dy, x: x, batch: batch, step: step, grad: grad)
    }

    // Feature-major activations (features as rows, the b samples as columns), as convolutions hold
    // their im2col columns.

    /// yt (rows × b) = W · xt (cols × b) + bias per row.
    func forwardFeatures(_ xt: FloatStorage, batch: Int, bias: FloatStorage?, into yt: FloatStorage) throws {
        try product(trans: false, features: true, xt, batch: batch, bias: bias, into: yt)
    }

    /// dxt (cols × b) = Wᵀ · dyt (rows × b).
    func inputGradientFeatures(_ dyt: FloatStorage, batch: Int, into dxt: FloatStorage) throws {
        try product(trans: true, features: true, dyt, batch: batch, bias: nil, into: dxt)
    }

    /// As `weightGradient`, from feature-major dyt (rows × b) and xt (cols × b).
    func weightGradientFeatures(dyt: FloatStorage, xt: FloatStorage, batch: Int, step: UpdateStep?, grad: FloatStorage?) throws {
        try sampledGradient(features: true, dy: dyt, x: xt, batch: batch, step: step, grad: grad)
    }

    /// y (n × rows × OH × OW) := act(scale ⊙ conv(x̃, W) + shift) for an unpadded NCHW input x, this
    /// matrix being a convolution's weight (rows = output channels, cols = c·kernel·kernel): the
    /// sparse direct convolution, no column matrix (inference; training keeps im2col for backward).
    func convolutionForward(n: Int, c: Int, h: Int, w: Int, kernel k: Int, stride: Int, padding: Int, dilation: Int,
                            relu: Bool, x: FloatStorage, scale: FloatStorage?, shift: FloatStorage?, into y: FloatStorage) throws {
        var a = csr
        try Kernels.check(pk_conv2d_sparse_forward_f32(&a, Int64(n), Int64(c), Int64(h), Int64(w), Int64(k), Int64(k),
                                                       Int64(stride), Int64(padding), Int64(dilation), relu ? 1 : 0, x.base,
                                                       Kernels.ptr(scale), Kernels.ptr(shift), y.base), "conv2d_sparse_forward")
    }

    private func product(trans: Bool, features: Bool, _ x: FloatStorage, batch: Int, bias: FloatStorage?,
                         into y: FloatStorage) throws {
        var a = csr
        let (inDim, outDim) = trans ? (rows, cols) : (cols, rows)
        let st = pk_spmm_layout_f32(&a, trans ? 1 : 0, features ? Int32(PK_LAYOUT_FEATURES) : 0, Int64(batch), x.base,
                                    Int64(features ? batch : inDim), bias.map { UnsafePointer($0.base) }, y.base,
                                    Int64(features ? batch : outDim))
        try Kernels.check(st, "spmm")
    }

    private func sampledGradient(features: Bool, dy: FloatStorage, x: FloatStorage, batch: Int, step: UpdateStep?,
                                 grad: FloatStorage?) throws {
        var a = csr
        let layout = features ? Int32(PK_LAYOUT_FEATURES) : 0
        let (lddy, ldx) = (Int64(features ? batch : rows), Int64(features ? batch : cols))
        let st: pk_status
        if let step {
            precondition(step.fits(nnz), "optimizer state of another form")
            var d = Kernels.describe(step, weight: values, ld: 0)
            st = pk_sddmm_update_layout_f32(&a, layout, Int64(batch), dy.base, lddy, x.base, ldx, &d, grad?.base)
        } else {
            st = pk_sddmm_update_layout_f32(&a, layout, Int64(batch), dy.base, lddy, x.base, ldx, nil, grad?.base)
        }
        try Kernels.check(st, "sddmm")
    }
}

extension SparseMatrix {
    /// torch.sparse_csr_tensor's arrays: ".crow_indices", ".col_indices" (I32) and ".values".
    public var fileArrays: CompressedArrays {
        let (crow, col, v) = csrArrays
        var a = CompressedArrays()
        a.integers[".crow_indices"] = ([crow.count], crow)
        a.integers[".col_indices"] = ([col.count], col)
        a.floats[".values"] = ([v.count], v)
        return a
    }

    /// The dense weight and mask from CSR arrays, validated (sizes, monotone rows, columns in range
    /// and increasing within a row).
    static func expand(rows: Int, cols: Int, floats: [String: [Float]], integers: [String: [Int64]]) throws
        -> (weight: [Float], kept: [Bool]) {
        guard let crow = integers[".crow_indices"], let col = integers[".col_indices"], let values = floats[".values"] else {
            throw StructureError(rule: "needs crow_indices, col_indices and values")
        }
        guard crow.count == rows + 1, crow.first == 0, crow.last == Int64(values.count), col.count == values.count else {
            throw StructureError(rule: "index sizes do not match \(rows)×\(cols) and \(values.count) values")
        }
        for r in 0..<rows where !(crow[r] <= crow[r + 1]) { throw StructureError(rule: "crow_indices decrease at row \(r)") }
        var dense = [Float](repeating: 0, count: rows * cols), kept = [Bool](repeating: false, count: rows * cols)
        for r in 0..<rows {
            var last = -1
            for j in Int(crow[r])..<Int(crow[r + 1]) {
                let c = Int(col[j])
                guard c > last, c < cols else { throw StructureError(rule: "column \(c) in row \(r) out of order or range") }
                last = c
                dense[r * cols + c] = values[j]
                kept[r * cols + c] = true
            }
        }
        return (dense, kept)
    }

    /// The compressed-sparse-row arrays (PyTorch's crow_indices, col_indices, values).
    public var csrArrays: (crow: [Int32], col: [Int32], values: [Float]) {
        ((0...rows).map { Int32(ptr.base[$0]) }, (0..<nnz).map { idx.base[$0] }, values.toArray())
    }

    /// The entries of a dense array (rows × cols) at this matrix's kept positions, in its order
    /// (optimizer state following a parameter into compressed form).
    public func gather(_ dense: FloatStorage) -> FloatStorage {
        precondition(dense.count == rows * cols)
        let out = FloatStorage(count: nnz)
        for r in 0..<rows {
            for j in Int(ptr.base[r])..<Int(ptr.base[r + 1]) { out.base[j] = dense.base[r * cols + Int(idx.base[j])] }
        }
        return out
    }

    /// The mask of the kept positions.
    public func keptMask() -> Mask {
        let m = ByteStorage(count: rows * cols)
        for r in 0..<rows {
            for j in Int(ptr.base[r])..<Int(ptr.base[r + 1]) { m.base[r * cols + Int(idx.base[j])] = 1 }
        }
        return Mask(shape: [rows, cols], storage: m)
    }

    /// A dense array (rows × cols, zeros elsewhere) from entries in this matrix's order.
    public func scatter(_ kept: FloatStorage) -> FloatStorage {
        precondition(kept.count == nnz)
        let out = FloatStorage(count: rows * cols)
        for r in 0..<rows {
            for j in Int(ptr.base[r])..<Int(ptr.base[r + 1]) { out.base[r * cols + Int(idx.base[j])] = kept.base[j] }
        }
        return out
    }
}
