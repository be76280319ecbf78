// The one unsafe handle type: 64-byte aligned storage that tensors and masks share copy-on-write.
// Everything outside Kernels/ reaches the memory through the safe methods below.

/// Aligned, fixed-size buffer of `Element`s. Reference type; value semantics come from the
/// copy-on-write wrappers (`Tensor`, `Mask`) that own it.
public final class AlignedStorage<Element: BitwiseCopyable>: @unchecked Sendable {
    let base: UnsafeMutablePointer<Element>
    /// Number of elements.
    public let count: Int

    let byteCount: Int

    /// Zero-filled storage of `count` elements.
    public convenience init(count: Int) {
        self.init(uninitializedCount: count)
        UnsafeMutableRawPointer(base).initializeMemory(as: UInt8.self, repeating: 0, count: byteCount)
    }

    /// Storage whose contents are unspecified until written: for kernel outputs that write every
    /// element. Large buffers come from a small cache of recently freed ones (no page faults).
    init(uninitializedCount count: Int) {
        precondition(count >= 0, "negative storage size")
        let bytes = BufferCache.roundedSize(max(count, 1) * MemoryLayout<Element>.stride)
        let raw = BufferCache.shared.take(bytes) ?? UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        base = raw.bindMemory(to: Element.self, capacity: bytes / MemoryLayout<Element>.stride)
        byteCount = bytes
        self.count = count
    }

    /// Storage holding a copy of `array`.
    public convenience init(_ array: [Element]) {
        self.init(uninitializedCount: array.count)
        array.withUnsafeBufferPointer { src in
            if let s = src.baseAddress { base.update(from: s, count: array.count) }
        }
    }

    /// Storage of `count` copies of `value`.
    @_specialize(where Element == Float)
    @_specialize(where Element == UInt8)
    public convenience init(count: Int, repeating value: Element) {
        self.init(uninitializedCount: count)
        base.update(repeating: value, count: count)
    }

    deinit { BufferCache.shared.give(UnsafeMutableRawPointer(base), byteCount) }

    /// A new storage with the same contents.
    @_specialize(where Element == Float)
    @_specialize(where Element == UInt8)
    public func copy() -> AlignedStorage<Element> {
        let c = AlignedStorage<Element>(uninitializedCount: count)
        c.base.update(from: base, count: count)
        return c
    }

    /// The element at `i`; traps unless 0 ≤ i < count.
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

    /// Calls `body` with the elements' memory (for transports such as MPI that read or write buffers
    /// in place); the pointer must not escape `body`.
    public func withUnsafeMutableBufferPointer<R>(_ body: (UnsafeMutableBufferPointer<Element>) throws -> R) rethrows -> R {
        try body(UnsafeMutableBufferPointer(start: base, count: count))
    }

    /// Copies the elements at the nonzero positions of `mask` (same count) into `self[at...]`, in
    /// order; returns how many were copied.
    func gatherKept(from x: AlignedStorage<Element>, mask: ByteStorage, at start: Int) -> Int {
        precondition(x.count == mask.count, "gatherKept: mask and values differ in count")
        var j = start
        for i in 0..<x.count where mask.base[i] != 0 {
            precondition(j < count, "gatherKept: destination too small")
            base[j] = x.base[i]
            j += 1
        }
        return j - start
    }

    /// The inverse of `gatherKept`: the elements of `from[at...]` go, in order, to the nonzero
    /// positions of `mask` in `self`; the other positions become `zero`. Returns how many were read.
    func scatterKept(from src: AlignedStorage<Element>, mask: ByteStorage, at start: Int, zero: Element) -> Int {
        precondition(count == mask.count, "scatterKept: mask and values differ in count")
        var j = start
        for i in 0..<count {
            if mask.base[i] != 0 {
                precondition(j < src.count, "scatterKept: source too small")
                base[i] = src.base[j]
                j += 1
            } else {
                base[i] = zero
            }
        }
        return j - start
    }


    /// Sets every element to `value`.
    @_specialize(where Element == Float)
    @_specialize(where Element == UInt8)
    public func fill(_ value: Element) { base.update(repeating: value, count: count) }

    /// Calls `body` with each element in order (read-only scan without copying).
    public func forEachElement(_ body: (Element) throws -> Void) rethrows {
        for i in 0..<count { try body(base[i]) }
    }

    /// Overwrites every element with `body(index, oldValue)`.
    @_specialize(where Element == Float)
    @_specialize(where Element == UInt8)
    public func update(_ body: (Int, Element) throws -> Element) rethrows {
        for i in 0..<count { base[i] = try body(i, base[i]) }
    }
}

/// Storage of 32-bit floats: tensor elements, weights, optimizer state.
public typealias FloatStorage = AlignedStorage<Float>
/// Storage of bytes: masks (nonzero keeps, 0 prunes) and byte indices.
public typealias ByteStorage = AlignedStorage<UInt8>
/// Storage of 32-bit integers: class labels and indices.
public typealias Int32Storage = AlignedStorage<Int32>

/// Keeps a bounded number of recently freed large buffers for reuse, by size class. Training
/// allocates the same activation sizes every step (or nearby ones); reusing them avoids the page
/// faults and zeroing of fresh mmap'd memory. Thread-safe.
final class BufferCache: @unchecked Sendable {
    static let shared = BufferCache()
    /// Buffers below this size go straight back to malloc.
    static let minBytes = 1 << 16
    /// Upper bound on the bytes held.
    static let maxHeldBytes = 1 << 30

    private var free: [Int: [UnsafeMutableRawPointer]] = [:]
    private var held = 0
    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)

    private init() { pthread_mutex_init(lock, nil) }

    /// Small buffers: 64-byte multiples. Large ones: size classes, eight per power of two (at most
    /// 12.5 % over the request), so that batches of nearby shapes (sentences padded to different
    /// lengths) reuse each other's buffers instead of each size missing the cache.
    static func roundedSize(_ bytes: Int) -> Int {
        guard bytes >= minBytes else { return (bytes + 63) & ~63 }
        let octave = 1 << (Int.bitWidth - 1 - bytes.leadingZeroBitCount) // the power of two ≤ bytes
        let step = max(4096, octave / 8)
        return (bytes + step - 1) / step * step
    }

    func take(_ bytes: Int) -> UnsafeMutableRawPointer? {
        guard bytes >= Self.minBytes else { return nil }
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        guard let p = free[bytes]?.popLast() else { return nil }
        held -= bytes
        return p
    }

    func give(_ p: UnsafeMutableRawPointer, _ bytes: Int) {
        if bytes >= Self.minBytes {
            pthread_mutex_lock(lock)
            if held + bytes <= Self.maxHeldBytes && (free[bytes]?.count ?? 0) < 8 {
                free[bytes, default: []].append(p)
                held += bytes
                pthread_mutex_unlock(lock)
                return
            }
            pthread_mutex_unlock(lock)
        }
        p.deallocate()
    }
}

#if canImport(Glibc)
import Glibc
#endif
