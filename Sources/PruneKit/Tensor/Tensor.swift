/// A dense, row-major f32 tensor. A value type: copies share storage until one of them is
/// written (copy-on-write). Shapes are checked; bad shapes throw `TensorError`.
public struct Tensor: Sendable, CustomStringConvertible {
    /// Dimensions, outermost first.
    public private(set) var shape: [Int]
    /// The elements (row-major). Shared between copies until a write.
    var storage: FloatStorage

    /// Number of elements.
    public var count: Int { storage.count }
    /// Number of dimensions (0 for a scalar).
    public var rank: Int { shape.count }

    /// A tensor of `shape` filled with `value`.
    public init(shape: [Int], repeating value: Float = 0) throws {
        _ = try Tensor.elementCount(shape)
        self.shape = shape
        self.storage = value == 0 ? FloatStorage(count: shape.reduce(1, *))
                                  : FloatStorage(count: shape.reduce(1, *), repeating: value)
    }

    /// A zero tensor; throws on a negative dimension or an element count that overflows.
    public init(zeros shape: [Int]) throws {
        _ = try Tensor.elementCount(shape)
        self.init(zeroed: shape)
    }

    /// A zero tensor of a shape known to be valid (taken from another tensor or parameter).
    init(zeroed shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "invalid shape \(shape)")
        self.shape = shape
        self.storage = FloatStorage(count: shape.reduce(1, *))
    }

    /// A tensor whose elements a kernel is about to overwrite completely (contents unspecified).
    init(uninitialized shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "invalid shape \(shape)")
        self.shape = shape
        self.storage = FloatStorage(uninitializedCount: shape.reduce(1, *))
    }

    /// Elements of `shape`; throws for a negative dimension or a product past what memory can address.
    public static func elementCount(_ shape: [Int]) throws -> Int {
        guard shape.allSatisfy({ $0 >= 0 }) else { throw TensorError.invalidShape(shape) }
        var n = 1
        for d in shape {
            let (p, o) = n.multipliedReportingOverflow(by: d)
            guard !o, p <= Int.max / 4 else { throw TensorError.tooLarge(shape) }
            n = p
        }
        return n
    }

    /// A copy of `scalars` (row-major) under `shape`. Throws `TensorError.countMismatch` unless the
    /// counts agree, `invalidShape` or `tooLarge` for a bad shape.
    public init(shape: [Int], scalars: [Float]) throws {
        guard try Tensor.elementCount(shape) == scalars.count else {
            throw TensorError.countMismatch(shape: shape, count: scalars.count)
        }
        self.shape = shape
        self.storage = FloatStorage(scalars)
    }

    /// Wraps existing storage (taken over, not copied).
    init(shape: [Int], storage: FloatStorage) throws {
        guard shape.allSatisfy({ $0 >= 0 }) else { throw TensorError.invalidShape(shape) }
        guard shape.reduce(1, *) == storage.count else {
            throw TensorError.countMismatch(shape: shape, count: storage.count)
        }
        self.shape = shape
        self.storage = storage
    }

    /// The elements as an array (row-major).
    public var scalars: [Float] { storage.toArray() }

    /// Makes the storage unique before a write (copy-on-write).
    public mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
    }

    /// Element at a flat (row-major) index.
    public subscript(flat i: Int) -> Float {
        get { storage[i] }
        set { makeUnique(); storage[i] = newValue }
    }

    /// Flat offset of a multi-index, or a thrown error when it is out of range.
    public func offset(of index: [Int]) throws -> Int {
        guard index.count == shape.count else { throw TensorError.indexOutOfRange(index: index, shape: shape) }
        var off = 0
        for (i, d) in zip(index, shape) {
            guard i >= 0 && i < d else { throw TensorError.indexOutOfRange(index: index, shape: shape) }
            off = off * d + i
        }
        return off
    }

    /// Element at a multi-index.
    public func value(at index: [Int]) throws -> Float { storage[try offset(of: index)] }

    /// Sets the element at a multi-index.
    public mutating func setValue(_ v: Float, at index: [Int]) throws {
        let o = try offset(of: index)
        makeUnique()
        storage[o] = v
    }

    /// The same elements under another shape of equal count (shares storage).
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        guard try Tensor.elementCount(newShape) == count else { throw TensorError.cannotReshape(from: shape, to: newShape) }
        var t = self
        t.shape = newShape
        return t
    }

    /// Throws unless the shape equals `expected`.
    public func expectShape(_ expected: [Int]) throws {
        if shape != expected { throw TensorError.shapeMismatch(expected: expected, got: shape) }
    }

    /// True when every element is finite. A failing check kernel (only possible for an invalid
    /// storage) stops here rather than reading as "not finite".
    public var isFinite: Bool {
        do { return try Kernels.allFinite(storage) } catch { preconditionFailure("isFinite: \(error)") }
    }

    /// Element-wise map into a new tensor.
    public func map(_ f: (Float) -> Float) -> Tensor {
        let out = FloatStorage(count: count)
        out.update { i, _ in f(storage[i]) }
        return try! Tensor(shape: shape, storage: out)
    }

    /// Rows [start, start+n) of the first dimension, copied.
    public func rows(_ start: Int, _ n: Int) throws -> Tensor {
        guard rank >= 1, start >= 0, n >= 0, start + n <= shape[0] else {
            throw TensorError.indexOutOfRange(index: [start, n], shape: shape)
        }
        let rowSize = shape.dropFirst().reduce(1, *)
        var newShape = shape
        newShape[0] = n
        let out = FloatStorage(count: n * rowSize)
        out.copyElements(from: storage, at: start * rowSize, to: 0, count: n * rowSize)
        return try Tensor(shape: newShape, storage: out)
    }

    /// Rows picked by `indices` from the first dimension, copied in that order.
    public func gatherRows(_ indices: ArraySlice<Int>) throws -> Tensor {
        guard rank >= 1 else { throw TensorError.invalidShape(shape) }
        let rowSize = shape.dropFirst().reduce(1, *)
        var newShape = shape
        newShape[0] = indices.count
        let out = FloatStorage(count: indices.count * rowSize)
        for (r, i) in indices.enumerated() {
            guard i >= 0 && i < shape[0] else { throw TensorError.indexOutOfRange(index: [i], shape: shape) }
            out.copyElements(from: storage, at: i * rowSize, to: r * rowSize, count: rowSize)
        }
        return try Tensor(shape: newShape, storage: out)
    }

    public var description: String {
        let s = scalars
        let shown = s.prefix(8).map { String(format: "%.4g", $0) }.joined(separator: ", ")
        return "Tensor(\(shape): [\(shown)\(s.count > 8 ? ", …" : "")])"
    }
}

extension Tensor: Equatable {
    /// Equal shapes and bitwise-equal elements.
    public static func == (a: Tensor, b: Tensor) -> Bool {
        guard a.shape == b.shape else { return false }
        if a.storage === b.storage { return true }
        for i in 0..<a.count where a.storage[i].bitPattern != b.storage[i].bitPattern { return false }
        return true
    }
}

import Foundation
