internal import CPruneKernels

/// The storage format of a compressed weight.
public enum CompressedFormat: Sendable, Hashable, CustomStringConvertible {
    /// Compressed sparse rows: any mask.
    case csr
    /// Packed N:M: at most `n` kept in every `m` consecutive inputs.
    case nm(n: Int, m: Int)
    /// Dense `rows` × `cols` blocks, kept or pruned whole.
    case block(rows: Int, cols: Int)

    /// "csr", "2:4", "block:4x4".
    public var description: String {
        switch self {
        case .csr: return "csr"
        case let .nm(n, m): return "\(n):\(m)"
        case let .block(r, c): return "block:\(r)x\(c)"
        }
    }

    /// Parses `description` ("unstructured" is CSR; "×" is accepted for "x").
    public init?(_ text: String) {
        let t = text.lowercased().replacingOccurrences(of: "×", with: "x")
        if t == "csr" || t == "unstructured" { self = .csr; return }
        if t.hasPrefix("block:") {
            let p = t.dropFirst(6).split(separator: "x").compactMap { Int($0) }
            guard p.count == 2, p[0] >= 1, p[1] >= 1 else { return nil }
            self = .block(rows: p[0], cols: p[1])
            return
        }
        let p = t.split(separator: ":").compactMap { Int($0) }
        guard p.count == 2, p[0] >= 1, p[0] <= p[1] else { return nil }
        self = .nm(n: p[0], m: p[1])
    }

    /// The compressed form of `weight` (rank ≥ 2, viewed as shape[0] × the rest) where `mask` keeps
    /// entries. Throws `StructureError` when the mask lacks the format's structure.
    public func compress(_ weight: Tensor, mask: Mask?) throws -> any CompressedWeight {
        switch self {
        case .csr: return try SparseMatrix(weight: weight, mask: mask)
        case let .nm(n, m): return try NMSparseMatrix(weight: weight, mask: mask ?? Mask(ones: weight.shape), n: n, m: m)
        case let .block(r, c): return try BlockSparseMatrix(weight: weight, mask: mask, blockRows: r, blockCols: c)
        }
    }
}

extension CompressedFormat {
    /// The structured formats PruneKit looks for in a mask, larger blocks and sparser patterns first.
    public static let structuredCandidates: [CompressedFormat] = [
        .block(rows: 8, cols: 8), .block(rows: 4, cols: 4), .block(rows: 16, cols: 1), .block(rows: 1, cols: 16),
        .nm(n: 1, m: 4), .nm(n: 2, m: 8), .nm(n: 2, m: 4), .nm(n: 4, m: 8),
    ]

    /// The formats a rows × cols mask allows: the structured candidates it satisfies (an N:M pattern
    /// keeping at most half, blocks kept whole), then CSR (any mask).
    public static func allowed(by mask: ByteStorage, rows: Int, cols: Int) throws -> [CompressedFormat] {
        precondition(mask.count == rows * cols)
        var out: [CompressedFormat] = [], maxKept: [Int: Int] = [:]
        for f in structuredCandidates {
            switch f {
            case .csr: break
            case let .nm(n, m):
                guard cols % m == 0 else { continue }
                if maxKept[m] == nil {
                    var k: Int64 = 0
                    try Kernels.check(pk_nm_max_kept(Int64(rows), Int64(cols), Int64(m), mask.base, Int64(cols), &k), "nm_max_kept")
                    maxKept[m] = Int(k)
                }
                // the sparsest pattern of this m that fits (1:4 before 2:4), once
                if maxKept[m]! <= n && !out.contains(where: { if case let .nm(_, mm) = $0 { return mm == m }; return false }) {
                    out.append(f)
                }
            case let .block(r, c):
                guard r <= 64, c <= 64, rows % r == 0, cols % c == 0 else { continue }
                var nb: Int64 = 0, whole: Int32 = 0
                try Kernels.check(pk_bsr_count(Int64(rows), Int64(cols), Int64(r), Int64(c), mask.base, Int64(cols), &nb, &whole),
                                  "bsr_count")
                if whole != 0 { out.append(f) }
            }
        }
        return out + [.csr]
    }
}

/// A pruned weight matrix (rows × cols: a Linear's out × in, or a convolution's out × the rest) that
/// holds only what its format needs of the kept entries. One interface serves every format (CSR,
/// packed N:M, block-sparse): the three products of training (forward, input gradient, weight
/// gradient at the kept entries fused with an optimizer step), the moves of optimizer state between
/// the dense layout and the format's, and the dense view. Layers, parameters and optimizers use only
/// this interface. `values` is the live weight (`stateCount` entries, updated in place by the
/// optimizer); optimizer state for it has the same layout.
public protocol CompressedWeight: AnyObject, Sendable {
    /// The format, with its N:M or block sizes.
    var format: CompressedFormat { get }
    /// Output dimension: a Linear's out features, a convolution's out channels.
    var rows: Int { get }
    /// Input dimension: a Linear's in features, or the product of a convolution weight's other dimensions.
    var cols: Int { get }
    /// Kept entries.
    var nnz: Int { get }
    /// Entries of `values` and of each optimizer-state buffer (≥ nnz: N:M counts its padding slots).
    var stateCount: Int { get }
    /// Bytes held by the compressed form (values and indices).
    var bytes: Int { get }
    /// The live values in the format's order.
    var values: FloatStorage { get }
    /// The dense weight (zeros where pruned) and its mask, rows × cols.
    func dense() throws -> (weight: Tensor, mask: Mask)
    /// The mask of the kept positions, rows × cols.
    func keptMask() -> Mask
    /// The entries of a dense rows × cols array in the format's order (0 where no weight is kept).
    func gather(_ dense: FloatStorage) -> FloatStorage
    /// A dense rows × cols array (zeros elsewhere) from entries in the format's order.
    func scatter(_ state: FloatStorage) -> FloatStorage
    /// y (b × rows) = x (b × cols) · Wᵀ + bias; features: yt (rows × b) = W · xt (cols × b) + bias.
    func forward(_ x: FloatStorage, batch: Int, bias: FloatStorage?, into y: FloatStorage, features: Bool) throws
    /// dx (b × cols) = dy (b × rows) · W; features: dxt (cols × b) = Wᵀ · dyt (rows × b).
    func inputGradient(_ dy: FloatStorage, batch: Int, into dx: FloatStorage, features: Bool) throws
    /// The weight gradient in the format's order (`stateCount` entries) and, when `step` is given,
    /// that step applied to `values` with state in the same layout, fused. `grad` receives the gradient.
    func weightGradient(dy: FloatStorage, x: FloatStorage, batch: Int, step: UpdateStep?, grad: FloatStorage?,
                        features: Bool) throws
    /// The optimizer step from a gradient in the format's order (the unfused path); entries that are
    /// not weights (N:M padding) are left alone.
    func applyStep(_ step: UpdateStep, grad: FloatStorage) throws
    /// The arrays a model file stores for this weight (see `CompressedArrays`).
    var fileArrays: CompressedArrays { get }
}

/// The arrays a model file stores for one compressed weight, keyed by the suffix appended to the
/// parameter's name (".values", ".crow_indices", …): 32-bit floats, 32-bit integers and bytes.
public struct CompressedArrays {
    /// 32-bit float arrays (values) by suffix, each with its shape.
    public var floats: [String: (shape: [Int], values: [Float])] = [:]
    /// 32-bit integer arrays (CSR and block indices) by suffix, each with its shape.
    public var integers: [String: (shape: [Int], values: [Int32])] = [:]
    /// Byte arrays (N:M's `.nm_indices`) by suffix, each with its shape.
    public var bytes: [String: (shape: [Int], values: [UInt8])] = [:]
    /// No arrays.
    public init() {}
}

extension CompressedFormat {
    /// The dense weight and its kept positions (rows × cols, row-major) from a file's arrays for a
    /// weight in this format (`floats` and `integers` by suffix; integers of any width), every size
    /// and index validated. Throws `StructureError` naming what is wrong.
    public func expand(rows: Int, cols: Int, floats: [String: [Float]], integers: [String: [Int64]]) throws
        -> (weight: [Float], kept: [Bool]) {
        switch self {
        case .csr: return try SparseMatrix.expand(rows: rows, cols: cols, floats: floats, integers: integers)
        case let .nm(n, m): return try NMSparseMatrix.expand(rows: rows, cols: cols, n: n, m: m, floats: floats, integers: integers)
        case let .block(r, c):
            return try BlockSparseMatrix.expand(rows: rows, cols: cols, blockRows: r, blockCols: c, floats: floats, integers: integers)
        }
    }

    /// The suffixes of the arrays this format writes.
    public var fileSuffixes: [String] {
        switch self {
        case .csr, .block: return [".crow_indices", ".col_indices", ".values"]
        case .nm: return [".values", ".nm_indices"]
        }
    }
}

extension CompressedWeight {
    public func applyStep(_ step: UpdateStep, grad: FloatStorage) throws {
        precondition(step.fits(stateCount) && grad.count == stateCount, "optimizer state of another form")
        try Kernels.applyUpdate(step, mask: nil, grad: grad, weight: values)
    }

    /// Bytes of the compressed form per kept weight.
    public var bytesPerKeptWeight: Double { Double(bytes) / Double(max(nnz, 1)) }

    /// y = x · Wᵀ + bias for x of shape [batch, cols].
    public func forward(_ x: Tensor, bias: Tensor? = nil) throws -> Tensor {
        guard x.rank == 2, x.shape[1] == cols else { throw TensorError.shapeMismatch(expected: [x.shape.first ?? 0, cols], got: x.shape) }
        if let bias { try bias.expectShape([rows]) }
        let y = Tensor(uninitialized: [x.shape[0], rows])
        try forward(x.storage, batch: x.shape[0], bias: bias?.storage, into: y.storage, features: false)
        return y
    }

    /// dx = dy · W for dy of shape [batch, rows].
    public func inputGradient(_ dy: Tensor) throws -> Tensor {
        guard dy.rank == 2, dy.shape[1] == rows else { throw TensorError.shapeMismatch(expected: [dy.shape.first ?? 0, rows], got: dy.shape) }
        let dx = Tensor(uninitialized: [dy.shape[0], cols])
        try inputGradient(dy.storage, batch: dy.shape[0], into: dx.storage, features: false)
        return dx
    }

    /// The weight gradient dyᵀ·x at the kept entries, as a dense rows × cols tensor (zeros elsewhere).
    public func weightGradient(dy: Tensor, x: Tensor) throws -> Tensor {
        guard dy.rank == 2, dy.shape[1] == rows else { throw TensorError.shapeMismatch(expected: [dy.shape.first ?? 0, rows], got: dy.shape) }
        try x.expectShape([dy.shape[0], cols])
        let g = FloatStorage(uninitializedCount: stateCount)
        try weightGradient(dy: dy.storage, x: x.storage, batch: dy.shape[0], step: nil, grad: g, features: false)
        return try Tensor(shape: [rows, cols], storage: scatter(g))
    }
}
