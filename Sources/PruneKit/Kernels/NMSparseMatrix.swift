internal import CPruneKernels

/// A weight refused by a compressed format because its mask lacks the structure the format stores
/// (a group with more than N kept, a block partly pruned, an input dimension that is not a multiple
/// of M, blocks that do not tile the weight). `layer` names the layer when a layer asked.
public struct StructureError: Error, CustomStringConvertible, Equatable {
    /// The layer that asked for the format; nil when no layer is named.
    public var layer: String?
    /// The structure the weight lacks, one phrase.
    public let rule: String
    /// `description` is "layer: rule", or `rule` alone when `layer` is nil.
    public init(layer: String? = nil, rule: String) { self.layer = layer; self.rule = rule }
    public var description: String { (layer.map { "\($0): " } ?? "") + rule }
    /// The same refusal, naming `layer`.
    public func naming(_ layer: String) -> StructureError { StructureError(layer: layer, rule: rule) }
}

/// A pruned weight (rows × cols, a Linear's out × in) with at most `n` kept entries in every group
/// of `m` consecutive inputs, packed: per row, cols/m groups of n slots, each slot a value and a
/// one-byte column within its group (groups with fewer kept entries are padded with zeros that are
/// never weights). A transposed index (two bytes per kept entry) serves the input gradient. `values`
/// is the live weight (one entry per slot): optimizer steps update it in place, with state of the
/// same size (`stateCount`).
public final class NMSparseMatrix: CompressedWeight, @unchecked Sendable {
    public var format: CompressedFormat { .nm(n: n, m: m) }
    public let rows: Int
    public let cols: Int
    /// Most kept entries per group: 1 ≤ n ≤ m.
    public let n: Int
    /// Inputs per group: n ≤ m ≤ 127, a divisor of `cols`.
    public let m: Int
    /// Number of kept entries (padding excluded).
    public let nnz: Int
    /// Values, padding slots included.
    public let values: FloatStorage
    private let idx: ByteStorage, tptr: AlignedStorage<Int64>, tent: AlignedStorage<UInt16>

    /// The packed form of `weight` where `mask` keeps entries (the nonzeros of `weight` when nil). A
    /// weight of rank above 2 is viewed as shape[0] × the rest. Throws `StructureError` when the
    /// mask is not n:m along the input dimension or that dimension is not a multiple of m.
    public init(weight: Tensor, mask: Mask?, n: Int, m: Int) throws {
        guard weight.rank >= 2, weight.shape[0] > 0 else { throw TensorError.invalidShape(weight.shape) }
        if let mask, mask.shape != weight.shape { throw TensorError.shapeMismatch(expected: weight.shape, got: mask.shape) }
        guard n >= 1, n <= m, m <= 127 else { throw StructureError(rule: "\(n):\(m) needs 1 ≤ N ≤ M ≤ 127") }
        rows = weight.shape[0]
        cols = weight.count / rows
        guard cols % m == 0 else {
            throw StructureError(rule: "\(n):\(m) needs the input dimension (\(cols)) to be a multiple of \(m)")
        }
        self.n = n
        self.m = m
        let keep = mask?.storage ?? ByteStorage(count: weight.count, repeating: 1)
        if mask == nil { keep.update { i, _ in weight.storage[i] != 0 ? 1 : 0 } }
        nnz = try Kernels.countNonzero(keep)
        let slots = rows * (cols / m) * n
        values = FloatStorage(uninitializedCount: slots)
        idx = ByteStorage(uninitializedCount: slots)
        tptr = AlignedStorage(uninitializedCount: (rows + Int(PK_NM_TBLOCK) - 1) / Int(PK_NM_TBLOCK) * cols + 1)
        tent = AlignedStorage(uninitializedCount: nnz)
        var a = raw
        let st = pk_nm_pack_f32(&a, weight.storage.base, Int64(cols), keep.base, Int64(cols))
        if st == PK_ERR_ARG { throw StructureError(rule: "the mask is not \(n):\(m): a group of \(m) inputs keeps more than \(n)") }
        try Kernels.check(st, "nm_pack")
    }

    var raw: pk_nm {
        pk_nm(rows: Int64(rows), cols: Int64(cols), n: Int64(n), m: Int64(m), nnz: Int64(nnz), val: values.base,
              idx: idx.base, tptr: tptr.base, tent: tent.base)
    }

    /// Slots (values and optimizer state entries): rows · cols/m · n.
    public var stateCount: Int { values.count }

    /// The dense weight (zeros where pruned) and its mask.
    public func dense() throws -> (weight: Tensor, mask: Mask) {
        let w = FloatStorage(uninitializedCount: rows * cols), mk = ByteStorage(uninitializedCount: rows * cols)
        var a = raw
        try Kernels.check(pk_nm_unpack_f32(&a, w.base, Int64(cols), mk.base, Int64(cols)), "nm_unpack")
        return (try Tensor(shape: [rows, cols], storage: w), Mask(shape: [rows, cols], storage: mk))
    }

    /// Bytes held: values and group indices per slot, the transposed index and its starts.
    public var bytes: Int { values.count * 5 + tent.count * 2 + tptr.count * 8 }

    /// The column of slot s, or nil for padding.
    private func column(_ s: Int) -> Int? {
        let ix = idx.base[s]
        return ix & UInt8(PK_NM_PAD) != 0 ? nil : (s % (stateCount / rows)) / n * m + Int(ix)
    }

    /// The kept weights as a flat array (row-major order).
    public var keptValues: [Float] { (0..<stateCount).compactMap { column($0) == nil ? nil : values.base[$0] } }

    /// y (b × rows) = x (b × cols) · Wᵀ + bias; features: yt (rows × b) = W · xt (cols × b) + bias.
    public func forward(_ x: FloatStorage, batch: Int, bias: FloatStorage?, into y: FloatStorage, features: Bool) throws {
        var a = raw
        let l = features ? Int32(PK_LAYOUT_FEATURES) : 0
        try Kernels.check(pk_nm_forward_f32(&a, l, Int64(batch), x.base, Int64(features ? batch : cols),
                                            bias.map { UnsafePointer($0.base) }, y.base, Int64(features ? batch : rows)),
                          "nm_forward")
    }

    /// dx (b × cols) = dy (b × rows) · W; features: dxt (cols × b) = Wᵀ · dyt (rows × b).
    public func inputGradient(_ dy: FloatStorage, batch: Int, into dx: FloatStorage, features: Bool) throws {
        var a = raw
        let l = features ? Int32(PK_LAYOUT_FEATURES) : 0
        try Kernels.check(pk_nm_input_grad_f32(&a, l, Int64(batch), dy.base, Int64(features ? batch : rows), dx.base,
                                               Int64(features ? batch : cols)), "nm_input_grad")
    }

    /// The weight gradient at the slots (`stateCount`, 0 at padding), and, when `step` is given, that
    /// step applied to `values` with state of the same layout (fused). `grad` receives the gradient.
    public func weightGradient(dy: FloatStorage, x: FloatStorage, batch: Int, step: UpdateStep?, grad: FloatStorage?,
                               features: Bool) throws {
        var a = raw
        let l = features ? Int32(PK_LAYOUT_FEATURES) : 0
        let (lddy, ldx) = (Int64(features ? batch : rows), Int64(features ? batch : cols))
        let st: pk_status
        if let step {
            precondition(step.fits(stateCount), "optimizer state of another form")
            var d = Kernels.describe(step, weight: values, ld: 0)
            st = pk_nm_weight_update_f32(&a, l, Int64(batch), dy.base, lddy, x.base, ldx, &d, grad?.base)
        } else {
            st = pk_nm_weight_update_f32(&a, l, Int64(batch), dy.base, lddy, x.base, ldx, nil, grad?.base)
        }
        try Kernels.check(st, "nm_weight_update")
    }

    /// 1 at the slots holding a weight, 0 at padding (built on first use).
    private lazy var weightSlots: ByteStorage = {
        let k = ByteStorage(uninitializedCount: stateCount)
        k.update { s, _ in idx.base[s] & UInt8(PK_NM_PAD) == 0 ? 1 : 0 }
        return k
    }()

    public func applyStep(_ step: UpdateStep, grad: FloatStorage) throws {
        precondition(step.fits(stateCount) && grad.count == stateCount, "optimizer state of another form")
        try Kernels.applyUpdate(step, mask: weightSlots, grad: grad, weight: values)
    }

    /// The entries of a dense array (rows × cols) at the slots (0 at padding).
    public func gather(_ dense: FloatStorage) -> FloatStorage {
        precondition(dense.count == rows * cols)
        let out = FloatStorage(count: stateCount), per = stateCount / rows
        for s in 0..<stateCount { if let c = column(s) { out.base[s] = dense.base[(s / per) * cols + c] } }
        return out
    }

    /// A dense array (rows × cols, zeros elsewhere) from slot entries.
    public func scatter(_ kept: FloatStorage) -> FloatStorage {
        precondition(kept.count == stateCount)
        let out = FloatStorage(count: rows * cols), per = stateCount / rows
        for s in 0..<stateCount { if let c = column(s) { out.base[(s / per) * cols + c] = kept.base[s] } }
        return out
    }

    /// The mask of the kept positions.
    public func keptMask() -> Mask {
        let mk = ByteStorage(count: rows * cols), per = stateCount / rows
        for s in 0..<stateCount { if let c = column(s) { mk.base[(s / per) * cols + c] = 1 } }
        return Mask(shape: [rows, cols], storage: mk)
    }

    /// The packed arrays: values and group columns per slot (padding: column | 0x80, value 0).
    public var packedArrays: (values: [Float], indices: [UInt8]) { (values.toArray(), idx.toArray()) }

    /// ".values" (rows × slots per row, F32) and ".nm_indices" (the same, U8: the column within the
    /// group, 0x80 set on padding).
    public var fileArrays: CompressedArrays {
        var a = CompressedArrays()
        a.floats[".values"] = ([rows, stateCount / rows], values.toArray())
        a.bytes[".nm_indices"] = ([rows, stateCount / rows], idx.toArray())
        return a
    }

    /// The dense weight and mask from packed arrays, validated: sizes, indices inside their group and
    /// increasing within it, padding holding 0.
    static func expand(rows: Int, cols: Int, n: Int, m: Int, floats: [String: [Float]], integers: [String: [Int64]]) throws
        -> (weight: [Float], kept: [Bool]) {
        guard let values = floats[".values"], let idx = integers[".nm_indices"] else {
            throw StructureError(rule: "needs values and nm_indices")
        }
        guard n >= 1, n <= m, m <= 127, cols % m == 0 else { throw StructureError(rule: "\(n):\(m) does not fit \(cols) inputs") }
        let per = cols / m * n
        guard values.count == rows * per, idx.count == values.count else {
            throw StructureError(rule: "\(values.count) values and \(idx.count) indices, \(n):\(m) of \(rows)×\(cols) needs \(rows * per)")
        }
        var dense = [Float](repeating: 0, count: rows * cols), kept = [Bool](repeating: false, count: rows * cols)
        for r in 0..<rows {
            for g in 0..<(cols / m) {
                var last = -1
                for t in 0..<n {
                    let s = r * per + g * n + t, ix = idx[s]
                    if ix & Int64(PK_NM_PAD) != 0 {
                        guard ix >= 0, ix < Int64(PK_NM_PAD) + Int64(m), values[s] == 0 else {
                            throw StructureError(rule: "padding slot \(s) holds an index \(ix) or a value")
                        }
                        last = m
                        continue
                    }
                    guard ix > Int64(last), ix < Int64(m) else { throw StructureError(rule: "index \(ix) of slot \(s) out of order or range") }
                    last = Int(ix)
                    dense[r * cols + g * m + Int(ix)] = values[s]
                    kept[r * cols + g * m + Int(ix)] = true
                }
            }
        }
        return (dense, kept)
    }
}
