internal import CPruneKernels

/// A pruned weight (rows × cols) kept in dense `blockRows` × `blockCols` blocks (block compressed
/// rows, as torch.sparse_bsr_tensor): per block-row the kept blocks' columns and their values, plus
/// a transposed index for the input gradient. `values` (blocks × blockRows × blockCols) is the live
/// weight: optimizer steps update it in place, with state of the same layout.
public final class BlockSparseMatrix: CompressedWeight, @unchecked Sendable {
    public var format: CompressedFormat { .block(rows: blockRows, cols: blockCols) }
    public let rows: Int
    public let cols: Int
    /// Rows of every block: 1...64, a divisor of `rows`.
    public let blockRows: Int
    /// Columns of every block: 1...64, a divisor of `cols`.
    public let blockCols: Int
    /// Kept blocks.
    public let blocks: Int
    public let values: FloatStorage
    private let ptr: AlignedStorage<Int64>, tptr: AlignedStorage<Int64>
    private let bcol: Int32Storage, tblk: Int32Storage, trow: Int32Storage

    /// The blocked form of `weight` where `mask` keeps entries (all of them when nil). A weight of
    /// rank above 2 is viewed as shape[0] × the rest. Throws `StructureError` when the blocks do not
    /// tile the weight or a block is partly pruned.
    public init(weight: Tensor, mask: Mask?, blockRows br: Int, blockCols bc: Int) throws {
        guard weight.rank >= 2, weight.shape[0] > 0 else { throw TensorError.invalidShape(weight.shape) }
        if let mask, mask.shape != weight.shape { throw TensorError.shapeMismatch(expected: weight.shape, got: mask.shape) }
        rows = weight.shape[0]
        cols = weight.count / rows
        guard br >= 1, bc >= 1, br <= 64, bc <= 64 else { throw StructureError(rule: "block \(br)×\(bc): sides must be in 1...64") }
        guard rows % br == 0, cols % bc == 0 else {
            throw StructureError(rule: "\(br)×\(bc) blocks do not tile a \(rows)×\(cols) weight")
        }
        blockRows = br
        blockCols = bc
        let keep = mask?.storage ?? ByteStorage(count: weight.count, repeating: 1)
        var nb: Int64 = 0, whole: Int32 = 0
        try Kernels.check(pk_bsr_count(Int64(rows), Int64(cols), Int64(br), Int64(bc), keep.base, Int64(cols), &nb, &whole),
                          "bsr_count")
        guard whole != 0 else { throw StructureError(rule: "the mask is not \(br)×\(bc)-block structured: a block is partly pruned") }
        blocks = Int(nb)
        values = FloatStorage(uninitializedCount: blocks * br * bc)
        ptr = AlignedStorage(uninitializedCount: rows / br + 1)
        tptr = AlignedStorage(uninitializedCount: cols / bc + 1)
        bcol = Int32Storage(uninitializedCount: blocks)
        tblk = Int32Storage(uninitializedCount: blocks)
        trow = Int32Storage(uninitializedCount: blocks)
        var a = raw
        try Kernels.check(pk_bsr_pack_f32(&a, weight.storage.base, Int64(cols), keep.base, Int64(cols)), "bsr_pack")
    }

    var raw: pk_bsr {
        pk_bsr(rows: Int64(rows), cols: Int64(cols), br: Int64(blockRows), bc: Int64(blockCols), nblocks: Int64(blocks),
               ptr: ptr.base, bcol: bcol.base, val: values.base, tptr: tptr.base, tblk: tblk.base, trow: trow.base)
    }

    /// Kept entries (values and optimizer state entries).
    public var nnz: Int { values.count }
    public var stateCount: Int { values.count }

    /// The dense weight (zeros outside kept blocks) and its mask.
    public func dense() throws -> (weight: Tensor, mask: Mask) {
        let w = FloatStorage(uninitializedCount: rows * cols), mk = ByteStorage(uninitializedCount: rows * cols)
        var a = raw
        try Kernels.check(pk_bsr_unpack_f32(&a, w.base, Int64(cols), mk.base, Int64(cols)), "bsr_unpack")
        return (try Tensor(shape: [rows, cols], storage: w), Mask(shape: [rows, cols], storage: mk))
    }

    /// Bytes held: values, block columns of both orientations and their starts.
    public var bytes: Int { values.count * 4 + blocks * 12 + (ptr.count + tptr.count) * 8 }

    /// y (b × rows) = x (b × cols) · Wᵀ + bias; features: yt (rows × b) = W · xt (cols × b) + bias.
    public func forward(_ x: FloatStorage, batch: Int, bias: FloatStorage?, into y: FloatStorage, features: Bool) throws {
        var a = raw
        let l = features ? Int32(PK_LAYOUT_FEATURES) : 0
        try Kernels.check(pk_bsr_forward_f32(&a, l, Int64(batch), x.base, Int64(features ? batch : cols),
                                             bias.map { UnsafePointer($0.base) }, y.base, Int64(features ? batch : rows)),
                          "bsr_forward")
    }

    /// dx (b × cols) = dy (b × rows) · W; features: dxt (cols × b) = Wᵀ · dyt (rows × b).
    public func inputGradient(_ dy: FloatStorage, batch: Int, into dx: FloatStorage, features: Bool) throws {
        var a = raw
        let l = features ? Int32(PK_LAYOUT_FEATURES) : 0
        try Kernels.check(pk_bsr_input_grad_f32(&a, l, Int64(batch), dy.base, Int64(features ? batch : rows), dx.base,
                                                Int64(features ? batch : cols)), "bsr_input_grad")
    }

    /// The gradient of every kept block entry, and, when `step` is given, that step applied to
    /// `values` (fused). `grad` receives the gradient.
    public func weightGradient(dy: FloatStorage, x: FloatStorage, batch: Int, step: UpdateStep?, grad: FloatStorage?,
                               features: Bool) throws {
        var a = raw
        let l = features ? Int32(PK_LAYOUT_FEATURES) : 0
        let (lddy, ldx) = (Int64(features ? batch : rows), Int64(features ? batch : cols))
        let st: pk_status
        if let step {
            precondition(step.fits(stateCount), "optimizer state of another form")
            var d = Kernels.describe(step, weight: values, ld: 0)
            st = pk_bsr_weight_update_f32(&a, l, Int64(batch), dy.base, lddy, x.base, ldx, &d, grad?.base)
        } else {
            st = pk_bsr_weight_update_f32(&a, l, Int64(batch), dy.base, lddy, x.base, ldx, nil, grad?.base)
        }
        try Kernels.check(st, "bsr_weight_update")
    }

    /// Calls body(entry, dense index) for every kept entry, in the values' order.
    private func forEachEntry(_ body: (Int, Int) -> Void) {
        let (br, bc) = (blockRows, blockCols)
        for i in 0..<(rows / br) {
            for j in Int(ptr.base[i])..<Int(ptr.base[i + 1]) {
                let c0 = Int(bcol.base[j]) * bc
                for a in 0..<br { for b in 0..<bc { body((j * br + a) * bc + b, (i * br + a) * cols + c0 + b) } }
            }
        }
    }

    /// The entries of a dense array (rows × cols) at the kept positions, in the values' order.
    public func gather(_ dense: FloatStorage) -> FloatStorage {
        precondition(dense.count == rows * cols)
        let out = FloatStorage(count: stateCount)
        forEachEntry { e, d in out.base[e] = dense.base[d] }
        return out
    }

    /// A dense array (rows × cols, zeros elsewhere) from entries in the values' order.
    public func scatter(_ kept: FloatStorage) -> FloatStorage {
        precondition(kept.count == stateCount)
        let out = FloatStorage(count: rows * cols)
        forEachEntry { e, d in out.base[d] = kept.base[e] }
        return out
    }

    /// The mask of the kept positions.
    public func keptMask() -> Mask {
        let mk = ByteStorage(count: rows * cols)
        forEachEntry { _, d in mk.base[d] = 1 }
        return Mask(shape: [rows, cols], storage: mk)
    }

    /// torch.sparse_bsr_tensor's arrays: ".crow_indices", ".col_indices" (I32) and ".values" (blocks
    /// × blockRows × blockCols).
    public var fileArrays: CompressedArrays {
        let (crow, col, v) = bsrArrays
        var a = CompressedArrays()
        a.integers[".crow_indices"] = ([crow.count], crow)
        a.integers[".col_indices"] = ([col.count], col)
        a.floats[".values"] = ([blocks, blockRows, blockCols], v)
        return a
    }

    /// The dense weight and mask from BSR arrays, validated (sizes, monotone block-rows, block-columns
    /// in range and increasing within a block-row).
    static func expand(rows: Int, cols: Int, blockRows br: Int, blockCols bc: Int, floats: [String: [Float]],
                       integers: [String: [Int64]]) throws -> (weight: [Float], kept: [Bool]) {
        guard let crow = integers[".crow_indices"], let col = integers[".col_indices"], let values = floats[".values"] else {
            throw StructureError(rule: "needs crow_indices, col_indices and values")
        }
        guard br >= 1, bc >= 1, rows % br == 0, cols % bc == 0 else { throw StructureError(rule: "\(br)×\(bc) blocks do not tile \(rows)×\(cols)") }
        let nbr = rows / br, nbc = cols / bc
        guard crow.count == nbr + 1, crow.first == 0, crow.last == Int64(col.count), values.count == col.count * br * bc else {
            throw StructureError(rule: "index sizes do not match \(rows)×\(cols) in \(br)×\(bc) blocks and \(values.count) values")
        }
        for i in 0..<nbr where !(crow[i] <= crow[i + 1]) { throw StructureError(rule: "crow_indices decrease at block-row \(i)") }
        var dense = [Float](repeating: 0, count: rows * cols), kept = [Bool](repeating: false, count: rows * cols)
        for i in 0..<nbr {
            var last = -1
            for j in Int(crow[i])..<Int(crow[i + 1]) {
                let c = Int(col[j])
                guard c > last, c < nbc else { throw StructureError(rule: "block-column \(c) in block-row \(i) out of order or range") }
                last = c
                for a in 0..<br {
                    for b in 0..<bc {
                        dense[(i * br + a) * cols + c * bc + b] = values[(j * br + a) * bc + b]
                        kept[(i * br + a) * cols + c * bc + b] = true
                    }
                }
            }
        }
        return (dense, kept)
    }

    /// torch.sparse_bsr_tensor's arrays: crow_indices (block-rows + 1), col_indices (blocks), values
    /// (blocks × blockRows × blockCols).
    public var bsrArrays: (crow: [Int32], col: [Int32], values: [Float]) {
        ((0...(rows / blockRows)).map { Int32(ptr.base[$0]) }, bcol.toArray(), values.toArray())
    }
}
