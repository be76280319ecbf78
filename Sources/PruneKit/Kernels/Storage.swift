// The one unsafe handle type: 64-byte aligned storage that tensors and masks share copy-on-write.
// Everything outside Kernels/ reaches the memory through the safe methods below.

/// Aligned, fixed-size buffer of `Element`s. Reference type; value semantics come from the
/// copy-on-write wrappers (`Tensor`, `Mask`) that own it.
public final class AlignedStorage<Element: BitwiseCopyable>: @unchecked Sendable {
    let base: UnsafeMutablePointer<Element>
    /// Number of elements.
    public let count: Int

    /// Zero-filled storage of `count` elements.
    public init(count: Int) {
        precondition(count >= 0, "negative storage size")
        let bytes = max(count, 1) * MemoryLayout<Element>.stride
        let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        base = raw.bindMemory(to: Element.self, capacity: max(count, 1))
        self.count = count
    }

    /// Storage holding a copy of `array`.
    public convenience init(_ array: [Element]) {
        self.init(count: array.count)
        array.withUnsafeBufferPointer { src in
            if let s = src.baseAddress { base.update(from: s, count: array.count) }
        }
    }

    /// Storage of `count` copies of `value`.
    public convenience init(count: Int, repeating value: Element) {
        self.init(count: count)
        base.update(repeating: value, count: count)
    }

    deinit { UnsafeMutableRawPointer(base).deallocate() }

    /// A new storage with the same contents.
    public func copy() -> AlignedStorage<Element> {
        let c = AlignedStorage<Element>(count: count)
        c.base.update(from: base, count: count)
        return c
    }

    public subscript(i: Int) -> Element {
        get { precondition(i >= 0 && i < count, "storage index out of range"); return base[i] }
        set { precondition(i >= 0 && i < count, "storage index out of range"); base[i] = newValue }
    }

    /// The contents as an array.
    public func toArray() -> [Element] { Array(UnsafeBufferPointer(start: base, count: count)) }

    /// Copies `n` elements from `other[from...]` into `self[to...]`.
    public func copyElements(from other: AlignedStorage<Element>, at from: Int, to: Int, count n: Int) {
        precondition(n >= 0 && from >= 0 && to >= 0 && from + n <= other.count && to + n <= count,
                     "copy range out of bounds")
        (base + to).update(from: other.base + from, count: n)
    }

    /// Sets every element to `value`.
    public func fill(_ value: Element) { base.update(repeating: value, count: count) }

    /// Calls `body` with each element in order (read-only scan without copying).
    public func forEachElement(_ body: (Element) throws -> Void) rethrows {
        for i in 0..<count { try body(base[i]) }
    }

    /// Overwrites every element with `body(index, oldValue)`.
    public func update(_ body: (Int, Element) throws -> Element) rethrows {
        for i in 0..<count { base[i] = try body(i, base[i]) }
    }
}

public typealias FloatStorage = AlignedStorage<Float>
public typealias ByteStorage = AlignedStorage<UInt8>
public typealias Int32Storage = AlignedStorage<Int32>
