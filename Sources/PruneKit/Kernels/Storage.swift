// The one unsafe handle type: 64-byte aligned storage that tensors and masks share copy-on-write.
// Everything outside Kernels/ reaches the memory through the safe methods below.

/// Aligned, fixed-size buffer of `Element`s. Reference type; value semantics come from the
/// copy-on-write wrappers (`Tensor`, `Mask`) that own it.
public final class AlignedStorage<Element: BitwiseCopyable>: @unchecked Sendable {
    let base: UnsafeMutablePointer<Element>
    /// Number of elements.
    public let count: Int

    /// Bytes of the buffer (at least count · stride).
    let byteCount: Int

    /// Zero-filled storage of `count` elements.
    public convenience init(count: Int) {
        self.init(uninitializedCount: count)
        // the whole size class the request rounds to (a reused larger buffer's tail stays as it is)
        let zeroed = min(byteCount, BufferCache.roundedSize(max(count, 1) * MemoryLayout<Element>.stride))
        UnsafeMutableRawPointer(base).initializeMemory(as: UInt8.self, repeating: 0, count: zeroed)
    }

    /// Storage whose contents are unspecified until written: for kernel outputs that write every
    /// element. Large buffers come from a small cache of recently freed ones (no page faults).
    init(uninitializedCount count: Int) {
        precondition(count >= 0, "negative storage size")
        let bytes = BufferCache.roundedSize(max(count, 1) * MemoryLayout<Element>.stride)
        let raw: UnsafeMutableRawPointer
        if bytes >= BufferCache.minBytes {
            (raw, byteCount) = BufferCache.shared.obtain(bytes)
        } else {
            raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
            byteCount = bytes
        }
        base = raw.bindMemory(to: Element.self, capacity: byteCount / MemoryLayout<Element>.stride)
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

    deinit {
        if byteCount >= BufferCache.minBytes {
            BufferCache.shared.give(UnsafeMutableRawPointer(base), byteCount)
        } else {
            UnsafeMutableRawPointer(base).deallocate()
        }
    }

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

/// Keeps recently freed large buffers for reuse. Training allocates the same activation sizes every
/// step, or nearby ones (sentences padded to other lengths); reusing buffers avoids the page faults
/// and zeroing of fresh memory, and keeping the footprint near the largest step's needs memory that
/// the process gives back rather than a heap that only grows:
/// - large buffers are mapped here directly, reserving twice the request: pages are faulted in only
///   when first written, so the reserve costs address space, not memory, and lets a later, larger
///   request (a longer batch) reuse the buffer, faulting in only its new pages;
/// - a request takes the cached buffer that fits it most tightly, among those whose resident part is
///   at most `reuseFactor` times the request (attention scores grow with the square of a batch's
///   length: a factor of 2 or 3 made a distillation run fault in 2.5 times as many pages);
/// - a request that fits none first unmaps the least recently freed buffers, at least as many
///   resident bytes as it needs, before mapping a new one, so cached memory turns into the memory
///   needed now instead of adding to it;
/// - at most `maxHeldBytes` of resident memory stay cached; `Runtime.releaseCachedMemory()` unmaps
///   them all.
/// Thread-safe.
final class BufferCache: @unchecked Sendable {
    static let shared = BufferCache()
    /// Buffers below this size go straight to malloc and back.
    static let minBytes = 1 << 16
    /// Upper bound on the resident bytes held.
    static let maxHeldBytes = 1 << 30
    /// A cached buffer serves a request only if at most this many times the request is resident in
    /// it (a buffer of a long batch may serve a shorter one; not a tiny one).
    static let reuseFactor = 8

    /// A cached buffer: its mapped capacity and the most of it ever used (an upper bound on what is
    /// resident).
    private struct Entry {
        var pointer: UnsafeMutableRawPointer
        var capacity: Int
        var used: Int
        var stamp: UInt64
    }
    /// Cached buffers by capacity.
    private var free: [Int: [Entry]] = [:]
    /// Bytes of use recorded for each buffer handed out (keyed by address).
    private var inUse: [UnsafeMutableRawPointer: Int] = [:]
    private var held = 0
    private var clock: UInt64 = 0
    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)

    private init() { pthread_mutex_init(lock, nil) }

    /// Small buffers: 64-byte multiples. Large ones: size classes, eight per power of two (at most
    /// 12.5 % over the request).
    static func roundedSize(_ bytes: Int) -> Int {
        guard bytes >= minBytes else { return (bytes + 63) & ~63 }
        let octave = 1 << (Int.bitWidth - 1 - bytes.leadingZeroBitCount) // the power of two ≤ bytes
        let step = max(4096, octave / 8)
        return (bytes + step - 1) / step * step
    }

    /// Resident bytes held by the cache now (an upper bound).
    var heldBytes: Int {
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return held
    }

    /// A buffer of at least `bytes` (a size class of at least `minBytes`) and its capacity, which
    /// `give` must receive back.
    func obtain(_ bytes: Int) -> (pointer: UnsafeMutableRawPointer, capacity: Int) {
        precondition(bytes >= Self.minBytes, "BufferCache: small buffers go to malloc")
        pthread_mutex_lock(lock)
        // the closest fit: a buffer large enough and not more than `reuseFactor` times as resident as
        // needed, preferring unused resident pages to new pages to fault
        var best: (capacity: Int, index: Int, cost: Int)?
        for (capacity, list) in free where capacity >= bytes {
            for (i, e) in list.enumerated() where e.used <= Self.reuseFactor * bytes {
                let cost = e.used >= bytes ? e.used - bytes : 2 * (bytes - e.used)
                if cost < (best?.cost ?? .max) { best = (capacity, i, cost) }
            }
        }
        if let b = best, var e = free[b.capacity]?.remove(at: b.index) {
            if free[b.capacity]?.isEmpty == true { free[b.capacity] = nil }
            held -= e.used
            e.used = max(e.used, bytes)
            inUse[e.pointer] = e.used
            pthread_mutex_unlock(lock)
            return (e.pointer, e.capacity)
        }
        var victims: [Entry] = []
        var freed = 0
        while freed < bytes, let v = popOldest() {
            victims.append(v)
            freed += v.used
        }
        let capacity = Self.roundedSize(2 * bytes)
        let p = Self.map(capacity)
        inUse[p] = bytes
        pthread_mutex_unlock(lock)
        for v in victims { Self.unmap(v.pointer, v.capacity) }
        return (p, capacity)
    }

    /// Returns a buffer from `obtain` (with its capacity) to the cache.
    func give(_ p: UnsafeMutableRawPointer, _ capacity: Int) {
        var victims: [Entry] = []
        pthread_mutex_lock(lock)
        let used = inUse.removeValue(forKey: p) ?? capacity
        if used > Self.maxHeldBytes {
            pthread_mutex_unlock(lock)
            return Self.unmap(p, capacity)
        }
        while held + used > Self.maxHeldBytes, let v = popOldest() { victims.append(v) }
        clock &+= 1
        free[capacity, default: []].append(Entry(pointer: p, capacity: capacity, used: used, stamp: clock))
        held += used
        pthread_mutex_unlock(lock)
        for v in victims { Self.unmap(v.pointer, v.capacity) }
    }

    /// Unmaps every cached buffer.
    func releaseAll() {
        pthread_mutex_lock(lock)
        let all = free.values.flatMap { $0 }
        free = [:]
        held = 0
        pthread_mutex_unlock(lock)
        for e in all { Self.unmap(e.pointer, e.capacity) }
    }

    /// The least recently freed buffer, removed from the cache (call with the lock held).
    private func popOldest() -> Entry? {
        var oldest: (capacity: Int, stamp: UInt64)?
        for (capacity, list) in free {
            if let first = list.first, first.stamp < (oldest?.stamp ?? .max) { oldest = (capacity, first.stamp) }
        }
        guard let o = oldest, let e = free[o.capacity]?.removeFirst() else { return nil }
        if free[o.capacity]?.isEmpty == true { free[o.capacity] = nil }
        held -= e.used
        return e
    }

    static func map(_ bytes: Int) -> UnsafeMutableRawPointer {
        #if canImport(Glibc)
        let p = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let p, p != MAP_FAILED else { fatalError("PruneKit: out of memory (mapping \(bytes) bytes)") }
        return p
        #else
        return UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        #endif
    }

    static func unmap(_ p: UnsafeMutableRawPointer, _ bytes: Int) {
        #if canImport(Glibc)
        munmap(p, bytes)
        #else
        p.deallocate()
        #endif
    }
}

#if canImport(Glibc)
import Glibc
#endif
