import XCTest
@testable import PruneKit

/// Many short parallel regions back to back, each checked in full as soon as it returns: a pool
/// that returned before its workers finished, or ran a chunk of the wrong round, would show here.
/// (Meaningful for the portable pool: PRUNEKIT_OPENMP=0 builds, versioned consumers, the TSan run.)
final class ThreadPoolTests: XCTestCase {
    func testBackToBackRegionsCompleteBeforeReturning() throws {
        let n = 70_000 // above the element-wise grain, so two threads split it
        let a = FloatStorage((0..<n).map { Float($0 % 97) }), b = FloatStorage((0..<n).map { Float($0 % 89) })
        let out = FloatStorage(count: n)
        try withThreads(2) {
            for round in 0..<400 {
                let alpha = Float(round % 7), beta = Float(round % 5)
                try Kernels.axpby(alpha: alpha, x: a, beta: beta, y: b, out: out)
                // first, middle and last entries of both halves
                for i in [0, 1, n / 2 - 1, n / 2, n / 2 + 1, n - 1] {
                    XCTAssertEqual(out[i], alpha * Float(i % 97) + beta * Float(i % 89), "round \(round), entry \(i)")
                }
                if round % 50 == 0 {
                    let all = out.toArray()
                    XCTAssertTrue((0..<n).allSatisfy { all[$0] == alpha * Float($0 % 97) + beta * Float($0 % 89) }, "round \(round)")
                }
            }
        }
    }
}
