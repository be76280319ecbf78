import XCTest
@testable import PruneKit

final class TensorTests: XCTestCase {
    func testCopyOnWrite() throws {
        let a = try Tensor(shape: [2, 2], scalars: [1, 2, 3, 4])
        var b = a
        b[flat: 0] = 9
        XCTAssertEqual(a.scalars, [1, 2, 3, 4])
        XCTAssertEqual(b.scalars, [9, 2, 3, 4])
        // a parameter snapshot survives optimizer steps (the optimizer writes in place after makeUnique)
        let p = Parameter(a, prunable: true)
        let snapshot = p.value
        p.grad = try Tensor(shape: [2, 2], scalars: [1, 1, 1, 1])
        try SGD(learningRate: 0.5).step([p])
        XCTAssertEqual(snapshot.scalars, [1, 2, 3, 4])
        XCTAssertEqual(p.value.scalars, [0.5, 1.5, 2.5, 3.5])
    }

    func testShapeErrorsNameTheShapes() throws {
        XCTAssertThrowsError(try Tensor(shape: [2, 3], scalars: [1, 2])) { e in
            XCTAssertEqual(e as? TensorError, .countMismatch(shape: [2, 3], count: 2))
            XCTAssertTrue("\(e)".contains("[2, 3]"))
        }
        XCTAssertThrowsError(try Tensor(shape: [-1], repeating: 0))
        let t = try Tensor(zeros: [2, 3])
        XCTAssertThrowsError(try t.reshaped([4, 2])) { e in XCTAssertTrue("\(e)".contains("[4, 2]")) }
        XCTAssertThrowsError(try t.value(at: [2, 0]))
        XCTAssertEqual(try t.reshaped([3, 2]).shape, [3, 2])
    }

    func testMaskBasicsAndComposition() throws {
        let a = try Mask(shape: [2, 2], kept: [true, false, true, true])
        let b = try Mask(shape: [2, 2], kept: [true, true, false, true])
        XCTAssertEqual(try a.and(b).kept, [true, false, false, true])
        XCTAssertEqual(a.keptCount, 3)
        XCTAssertEqual(a.sparsity, 0.25)
        XCTAssertThrowsError(try a.and(Mask(ones: [4])))
        let w = try Tensor(shape: [2, 2], scalars: [1, 2, 3, 4])
        XCTAssertEqual(try w.masked(by: a).scalars, [1, 0, 3, 4])
    }

    func testParameterMaskKeepsExactZeros() throws {
        let p = Parameter(try Tensor(shape: [3], scalars: [1, -2, 3]), prunable: true)
        try p.setMask(Mask(shape: [3], kept: [true, false, true]))
        XCTAssertEqual(p.value.scalars[1].bitPattern, 0)
        XCTAssertThrowsError(try p.setMask(Mask(ones: [4])))
        XCTAssertTrue(p.isPruned)
        p.removeMask()
        XCTAssertFalse(p.isPruned)
        XCTAssertEqual(p.value.scalars, [1, 0, 3])
    }

    func testSeededGeneratorIsReproducible() {
        var a = SeededGenerator(seed: 7), b = SeededGenerator(seed: 7), c = SeededGenerator(seed: 8)
        let xa = (0..<5).map { _ in a.next() }, xb = (0..<5).map { _ in b.next() }, xc = (0..<5).map { _ in c.next() }
        XCTAssertEqual(xa, xb)
        XCTAssertNotEqual(xa, xc)
        var g = SeededGenerator(seed: 1)
        let u = (0..<10_000).map { _ in g.nextUnitFloat() }
        XCTAssertTrue(u.allSatisfy { $0 >= 0 && $0 < 1 })
        XCTAssertEqual(Double(u.reduce(0, +)) / 10_000, 0.5, accuracy: 0.02)
    }

    /// The buffer cache reuses a freed buffer for a nearby size (zero-filled storage still reads 0),
    /// refuses one far more resident than a request needs, turns cached memory into a request that
    /// fits nothing instead of adding to it, and gives everything back on request.
    func testBufferCacheReusesBuffersAndBoundsItsFootprint() throws {
        Runtime.releaseCachedMemory()
        XCTAssertEqual(Runtime.cachedMemoryBytes, 0)
        var first: UnsafeMutablePointer<Float>?
        do {
            let a = FloatStorage(count: 1 << 20, repeating: 7) // 4 MiB, every page written
            first = a.base
        }
        XCTAssertEqual(Runtime.cachedMemoryBytes, 4 << 20)
        do {
            let b = FloatStorage(count: 900_000) // a shorter batch: the same buffer, zeroed
            XCTAssertEqual(b.base, first)
            XCTAssertTrue(b.toArray().allSatisfy { $0 == 0 })
            XCTAssertEqual(Runtime.cachedMemoryBytes, 0)
            let c = FloatStorage(count: 1 << 16) // 256 KiB: nothing cached fits it
            XCTAssertNotEqual(c.base, first)
        }
        do {
            let tiny = FloatStorage(count: 1 << 14) // 64 KiB: the 4 MiB buffer is too resident for it
            XCTAssertNotEqual(tiny.base, first)
            let grown = FloatStorage(count: 3 << 19) // 6 MiB: the 4 MiB buffer reserved room to grow into
            XCTAssertEqual(grown.base, first)
            XCTAssertTrue(grown.toArray().allSatisfy { $0 == 0 })
        }
        let held = Runtime.cachedMemoryBytes
        XCTAssertGreaterThanOrEqual(held, 6 << 20)
        do {
            // fits no cached buffer: the cached ones are given back before new memory is mapped
            let big = FloatStorage(count: 6 << 20) // 24 MiB
            XCTAssertEqual(Runtime.cachedMemoryBytes, 0)
            big.fill(1)
            XCTAssertEqual(big[big.count - 1], 1)
        }
        XCTAssertEqual(Runtime.cachedMemoryBytes, 24 << 20)
        Runtime.releaseCachedMemory()
        XCTAssertEqual(Runtime.cachedMemoryBytes, 0)
    }
}
