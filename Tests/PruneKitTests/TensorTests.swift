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
}
