/// A binary pruning mask: 1 keeps a weight, 0 prunes it. Same shape as the weight it masks.
/// A value type with copy-on-write storage (one byte per entry).
public struct Mask: Sendable, Equatable, CustomStringConvertible {
    /// Dimensions, outermost first: the shape of the weight it masks.
    public private(set) var shape: [Int]
    var storage: ByteStorage

    /// Number of entries, kept and pruned.
    public var count: Int { storage.count }

    /// All-ones mask (nothing pruned).
    public init(ones shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "invalid shape \(shape)")
        self.shape = shape
        self.storage = ByteStorage(count: shape.reduce(1, *), repeating: 1)
    }

    /// A mask from booleans (row-major).
    public init(shape: [Int], kept: [Bool]) throws {
        guard shape.allSatisfy({ $0 >= 0 }) else { throw TensorError.invalidShape(shape) }
        guard shape.reduce(1, *) == kept.count else { throw TensorError.countMismatch(shape: shape, count: kept.count) }
        self.shape = shape
        self.storage = ByteStorage(kept.map { $0 ? 1 : 0 })
    }

    /// A mask from 0/1 floats (PyTorch's `weight_mask`); any nonzero value keeps.
    public init(shape: [Int], values: [Float]) throws {
        try self.init(shape: shape, kept: values.map { $0 != 0 })
    }

    init(shape: [Int], storage: ByteStorage) {
        precondition(shape.reduce(1, *) == storage.count)
        self.shape = shape
        self.storage = storage
    }

    /// Copies the storage when another mask shares it, so that a write changes only this one.
    public mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
    }

    /// Whether entry `i` (flat) is kept.
    public subscript(flat i: Int) -> Bool {
        get { storage[i] != 0 }
        set { makeUnique(); storage[i] = newValue ? 1 : 0 }
    }

    /// Number of kept entries. A failing count kernel (out of memory for its per-group counts)
    /// stops here rather than reading as 0 kept; the pruning paths call `Kernels.countNonzero`
    /// directly and get the error thrown.
    public var keptCount: Int {
        do { return try Kernels.countNonzero(storage) } catch { preconditionFailure("keptCount: \(error)") }
    }
    /// Number of pruned entries.
    public var prunedCount: Int { count - keptCount }
    /// Fraction of entries pruned.
    public var sparsity: Double { count == 0 ? 0 : Double(prunedCount) / Double(count) }

    /// Entries as booleans.
    public var kept: [Bool] { storage.toArray().map { $0 != 0 } }
    /// Entries as 0/1 floats (PyTorch's form).
    public var floats: [Float] { storage.toArray().map { $0 != 0 ? 1 : 0 } }

    /// Entry-wise AND (pruning composes).
    public func and(_ other: Mask) throws -> Mask {
        guard other.shape == shape else { throw TensorError.shapeMismatch(expected: shape, got: other.shape) }
        let out = ByteStorage(count: count)
        out.update { i, _ in (storage[i] != 0 && other.storage[i] != 0) ? 1 : 0 }
        return Mask(shape: shape, storage: out)
    }

    public static func == (a: Mask, b: Mask) -> Bool {
        a.shape == b.shape && (a.storage === b.storage || a.storage.toArray().map { $0 != 0 } == b.storage.toArray().map { $0 != 0 })
    }

    public var description: String { "Mask(\(shape), kept \(keptCount)/\(count))" }
}

extension Tensor {
    /// This tensor with pruned entries set to exactly 0.
    public func masked(by mask: Mask) throws -> Tensor {
        guard mask.shape == shape else { throw TensorError.shapeMismatch(expected: shape, got: mask.shape) }
        var t = self
        t.makeUnique()
        try Kernels.maskApply(mask: mask.storage, w: t.storage)
        return t
    }
}
