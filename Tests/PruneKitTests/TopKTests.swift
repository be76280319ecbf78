import XCTest
import CPruneKernels
@testable import PruneKit

/// The selection kernel against the sort-based reference (issue 4's contract).
final class TopKTests: XCTestCase {
    /// Runs optimised and reference selection on copies of `masks`; asserts the expected status from
    /// both, identical masks, and exactly k entries pruned (or the masks untouched on error).
    func compare(_ scores: [[Float]], _ masks: [[UInt8]], k: Int, useAbs: Bool = true, expect: pk_status = PK_OK,
                 label: String, file: StaticString = #filePath, line: UInt = #line) -> pk_status {
        var m1 = masks, m2 = masks
        var sizes = scores.map { Int64($0.count) }
        let s1 = call(scores, &m1, &sizes, k, useAbs, ref: false)
        let s2 = call(scores, &m2, &sizes, k, useAbs, ref: true)
        XCTAssertEqual(s1, expect, "\(label): status", file: file, line: line)
        XCTAssertEqual(s2, expect, "\(label): reference status", file: file, line: line)
        XCTAssertEqual(m1, m2, "\(label): masks differ from the reference", file: file, line: line)
        if s1 != PK_OK { XCTAssertEqual(m1, masks, "\(label): masks changed on error", file: file, line: line) }
        else {
            XCTAssertEqual(keptCount(masks) - keptCount(m1), k, "\(label): exactly k pruned", file: file, line: line)
        }
        return s1
    }

    /// Entries kept in `masks` (a plain loop: the lazy joined/filter form is slow in debug builds).
    func keptCount(_ masks: [[UInt8]]) -> Int {
        masks.reduce(0) { n, m in
            n + m.withUnsafeBufferPointer { b in
                var c = 0
                for i in 0..<b.count where b[i] != 0 { c += 1 }
                return c
            }
        }
    }

    func call(_ scores: [[Float]], _ masks: inout [[UInt8]], _ sizes: inout [Int64], _ k: Int, _ useAbs: Bool, ref: Bool) -> pk_status {
        let sp = scores.map { s -> UnsafeMutablePointer<Float> in
            let p = UnsafeMutablePointer<Float>.allocate(capacity: max(s.count, 1)); p.initialize(from: s, count: s.count); return p
        }
        let mp = masks.map { m -> UnsafeMutablePointer<UInt8> in
            let p = UnsafeMutablePointer<UInt8>.allocate(capacity: max(m.count, 1)); p.initialize(from: m, count: m.count); return p
        }
        defer { sp.forEach { $0.deallocate() }; mp.forEach { $0.deallocate() } }
        var cs: [UnsafePointer<Float>?] = sp.map { UnsafePointer($0) }
        var ms: [UnsafeMutablePointer<UInt8>?] = mp
        var extra: Int64 = 0
        let st = ref ? pk_ref_prune_smallest_f32(Int64(scores.count), &sizes, &cs, &ms, useAbs ? 1 : 0, Int64(k), &extra)
                     : pk_prune_smallest_f32(Int64(scores.count), &sizes, &cs, &ms, useAbs ? 1 : 0, Int64(k), &extra)
        for t in 0..<masks.count { masks[t] = Array(UnsafeBufferPointer(start: mp[t], count: masks[t].count)) }
        return st
    }

    func testSmallCasesAgainstReference() {
        var rng = TestRNG(41)
        let sizes = [1, 7, 100, 3000]
        for n in sizes {
            let x = rng.floats(n)
            let ones = [UInt8](repeating: 1, count: n)
            for k in [0, 1, n / 2, n] { _ = compare([x], [ones], k: k, label: "n=\(n) k=\(k)") }
            let partial = rng.mask(n, keep: 0.6)
            let kept = partial.filter { $0 != 0 }.count
            _ = compare([x], [partial], k: kept / 3, label: "partly pruned n=\(n)")
            _ = compare([x], [partial], k: kept + 1, expect: PK_ERR_ARG, label: "k > kept")
            // raw (signed) scores: negatives are least important
            _ = compare([x], [ones], k: n / 2, useAbs: false, label: "signed scores n=\(n)")
        }
    }

    func testTiesAndAllEqual() {
        var rng = TestRNG(42)
        let n = 5000
        let ties = (0..<n).map { _ in Float(rng.int(7)) * 0.25 - 0.75 }
        _ = compare([ties], [[UInt8](repeating: 1, count: n)], k: 1234, label: "many ties")
        let equal = [Float](repeating: 0.5, count: n)
        var m = [[UInt8](repeating: 1, count: n)]
        var sizes: [Int64] = [Int64(n)]
        XCTAssertEqual(call([equal], &m, &sizes, 100, true, ref: false), PK_OK)
        XCTAssertEqual(Array(m[0].prefix(100)), [UInt8](repeating: 0, count: 100), "equal scores: lowest indices first")
        XCTAssertTrue(m[0][100...].allSatisfy { $0 == 1 })
    }

    func testNonFiniteRejectedBeforeAnyWrite() {
        var rng = TestRNG(43)
        for bad in [Float.nan, .infinity, -.infinity] {
            var x = rng.floats(2_000_000)
            x[1_234_567] = bad
            let m = [UInt8](repeating: 1, count: x.count)
            var mm = [m]
            var sizes: [Int64] = [Int64(x.count)]
            XCTAssertEqual(call([x], &mm, &sizes, 1000, true, ref: false), PK_ERR_NONFINITE)
            XCTAssertEqual(mm[0], m)
        }
        // a non-finite value in an already pruned entry does not matter
        var x = rng.floats(100)
        x[3] = .nan
        var m = [UInt8](repeating: 1, count: 100)
        m[3] = 0
        _ = compare([x], [m], k: 10, label: "NaN under the mask")
    }

    func testManyTensorsOfVeryDifferentSizesAndLargePaths() {
        var rng = TestRNG(44)
        // large enough for the sampled-bracket path, and a tie-heavy one for the radix fallback
        let tensors = [rng.floats(1_500_000), rng.floats(3), rng.floats(900_000), rng.floats(70_000)]
        let masks = tensors.map { rng.mask($0.count, keep: 0.9) }
        let kept = masks.reduce(0) { $0 + $1.filter { $0 != 0 }.count }
        forEachISA { isa in
            for frac in [0.1, 0.5, 0.97] {
                _ = compare(tensors, masks, k: Int(Double(kept) * frac), label: "\(isa): 4 tensors, \(frac)")
                _ = compare(tensors, masks, k: Int(Double(kept) * frac), useAbs: false, label: "\(isa): signed, \(frac)")
            }
        }
        let tied = (0..<2_600_000).map { _ in Float(rng.int(50)) }
        _ = compare([tied], [[UInt8](repeating: 1, count: tied.count)], k: 1_000_000, label: "massive ties")
        // weights already pruned and made permanent: most kept entries are exact zeros
        let zeros = (0..<2_400_000).map { _ in rng.int(10) < 6 ? Float(0) : rng.g.uniform(-1, 1) }
        for k in [900_000, 1_700_000] {
            _ = compare([zeros], [[UInt8](repeating: 1, count: zeros.count)], k: k, label: "zeros, k=\(k)")
        }
    }

    func testPeriodicDataThatFoolsTheSample() {
        // the sample reads runs every 4096 entries at offset 2048: make that half of every period
        // large and the other half tiny, so the sampled bracket is wrong and must be rejected
        var rng = TestRNG(48)
        let n = 1 << 21
        let x = (0..<n).map { i -> Float in i % 4096 < 2048 ? rng.g.uniform(0, 1e-3) : rng.g.uniform(1, 2) }
        let ones = [UInt8](repeating: 1, count: n)
        for k in [n / 4, (3 * n) / 4, n - 10] { _ = compare([x], [ones], k: k, label: "periodic, k=\(k)") }
        // the sample sees a smooth spread, everything else sits at one value inside the bracket: far
        // more entries land in the bracket than were budgeted (the masks are restored, then the
        // fallback runs); partly pruned masks must come back exactly too
        let y = (0..<n).map { i -> Float in (2048..<2112).contains(i % 4096) ? rng.g.uniform(0, 1) : 0.5 }
        let partial = rng.mask(n, keep: 0.8)
        let kept = partial.filter { $0 != 0 }.count
        forEachISA { isa in
            for k in [kept / 2, kept / 3] { _ = compare([y], [partial], k: k, label: "\(isa): bracket overflow, k=\(k)") }
        }
    }

    func testNegativeAndPositiveZeroAreEqualScores() {
        // −0.0 and +0.0 are the same score: the lower index goes first
        var m: [[UInt8]] = [[1, 1]]
        var sizes: [Int64] = [2]
        XCTAssertEqual(call([[0.0, -0.0]], &m, &sizes, 1, false, ref: false), PK_OK)
        XCTAssertEqual(m[0], [0, 1])
        _ = compare([[-0.0, 0.0, -0.0, 1, -1]], [[1, 1, 1, 1, 1]], k: 3, useAbs: false, label: "signed zeros")
        var nm: [UInt8] = [1, 1, 1, 1]
        XCTAssertEqual(pk_nm_mask_f32(1, 4, 2, 4, [0.5, -0.0, 0.0, 0.7], 4, 0, &nm), PK_OK)
        XCTAssertEqual(nm, [1, 0, 0, 1])
    }

    func testDenormalScoresOrderAsTheReferenceDoes() {
        // denormals are not zero: keys come from integer operations, whatever FTZ/DAZ says
        var rng = TestRNG(50)
        let n = 1_200_000
        let x = (0..<n).map { _ -> Float in
            switch rng.int(4) {
            case 0: return 0
            case 1: return Float(bitPattern: UInt32(1 + rng.int(1000))) * (rng.int(2) == 0 ? 1 : -1) // denormal
            default: return rng.g.uniform(-1, 1)
            }
        }
        forEachISA { isa in
            for useAbs in [true, false] {
                for k in [n / 3, n / 2] {
                    _ = compare([x], [[UInt8](repeating: 1, count: n)], k: k, useAbs: useAbs, label: "\(isa) denormals abs=\(useAbs) k=\(k)")
                }
            }
        }
    }

    func testThreadCountNeverChangesTheMask() {
        var rng = TestRNG(45)
        let x = [rng.floats(2_200_000), rng.floats(300_000)]
        let m = x.map { rng.mask($0.count, keep: 0.8) }
        var a = m, b = m
        var sizes = x.map { Int64($0.count) }
        XCTAssertEqual(withThreads(1) { call(x, &a, &sizes, 900_000, true, ref: false) }, PK_OK)
        XCTAssertEqual(withThreads(2) { call(x, &b, &sizes, 900_000, true, ref: false) }, PK_OK)
        XCTAssertEqual(keptCount(m) - keptCount(a), 900_000)
        XCTAssertEqual(a, b)
    }

    func testExtraMemoryIsBounded() throws {
        var rng = TestRNG(46)
        let t = Tensor.uniform([4_000_000], -1, 1, rng: &rng.g)
        let extra = try Kernels.pruneSmallest(scores: [t.storage], masks: [ByteStorage(count: t.count, repeating: 1)], useAbs: true,
                                              k: 2_000_000)
        XCTAssertLessThan(extra, 16 << 20, "extra memory \(extra) bytes")
    }

    func testFractionCountsInTheSamePass() {
        // k = round-half-to-even(fraction × kept) is decided by the kernel; compare with the reference
        var rng = TestRNG(49)
        let x = [rng.floats(800_000), rng.floats(5), rng.floats(300_001)] // enough for the bracket path
        let partial = x.map { rng.mask($0.count, keep: 0.7) }
        let ones = x.map { [UInt8](repeating: 1, count: $0.count) }
        for (masks, what) in [(ones, "fresh"), (partial, "partly pruned")] {
            for f in [0.0, 0.25, 0.9, 0.999, 1.0] {
                var want = masks
                let (s2, k2) = callFraction(x, &want, f, ref: true)
                XCTAssertEqual(s2, PK_OK)
                forEachISA { isa in
                    var m1 = masks
                    let (s1, k1) = callFraction(x, &m1, f, ref: false)
                    XCTAssertEqual(s1, PK_OK)
                    XCTAssertEqual(k1, k2, "\(isa) \(what) \(f): counts")
                    XCTAssertTrue(m1 == want, "\(isa) \(what) \(f): masks differ from the reference")
                }
            }
        }
        // half-way products round to even: 0.5 × 5 kept = 2.5 → 2, 0.5 × 7 = 3.5 → 4
        for (n, want) in [(5, 2), (7, 4)] {
            var m = [[UInt8](repeating: 1, count: n)]
            XCTAssertEqual(callFraction([rng.floats(n)], &m, 0.5, ref: false).1, want)
        }
        // a NaN found by the marking pass: the provisional states are undone, partly pruned masks too
        var bad = x
        let at = partial[0][500_000...].firstIndex(of: 1)!
        bad[0][at] = .nan
        var m = partial
        XCTAssertEqual(callFraction(bad, &m, 0.5, ref: false).0, PK_ERR_NONFINITE)
        XCTAssertTrue(m == partial, "masks changed by a failed call")
        XCTAssertEqual(callFraction(x, &m, 1.5, ref: false).0, PK_ERR_ARG)
        XCTAssertEqual(callFraction(x, &m, .nan, ref: false).0, PK_ERR_ARG)
        XCTAssertTrue(m == partial, "masks changed by a rejected fraction")
    }

    func callFraction(_ scores: [[Float]], _ masks: inout [[UInt8]], _ f: Double, ref: Bool) -> (pk_status, Int) {
        var sizes = scores.map { Int64($0.count) }
        var pruned: Int64 = -1
        let st: pk_status = scores.withUnsafePointers { sp in
            masks.withUnsafeMutablePointers { mp in
                ref ? pk_ref_prune_fraction_f32(Int64(scores.count), &sizes, sp, mp, 1, f, &pruned, nil)
                    : pk_prune_fraction_f32(Int64(scores.count), &sizes, sp, mp, 1, f, &pruned, nil)
            }
        }
        return (st, Int(pruned))
    }

    func testNMAndNormsAgainstReference() {
        var rng = TestRNG(47)
        for (rows, cols, n, m) in [(5, 16, 2, 4), (3, 10, 1, 4), (4, 9, 3, 8), (2, 8, 0, 4)] {
            let x = rng.floats(rows * cols)
            var m1 = rng.mask(rows * cols, keep: 0.9), m2 = m1
            XCTAssertEqual(pk_nm_mask_f32(Int64(rows), Int64(cols), Int64(n), Int64(m), x, Int64(cols), 1, &m1), PK_OK)
            XCTAssertEqual(pk_ref_nm_mask_f32(Int64(rows), Int64(cols), Int64(n), Int64(m), x, Int64(cols), 1, &m2), PK_OK)
            XCTAssertEqual(m1, m2, "\(n):\(m)")
            for r in 0..<rows {
                for g in stride(from: 0, to: cols, by: m) {
                    XCTAssertLessThanOrEqual(m1[(r * cols + g)..<(r * cols + min(g + m, cols))].filter { $0 != 0 }.count, n)
                }
            }
        }
        var bad: [UInt8] = [1]
        XCTAssertEqual(pk_nm_mask_f32(1, 1, 3, 2, [1], 1, 1, &bad), PK_ERR_ARG)
        let x = rng.floats(3 * 5 * 4)
        for p in [0.0, 1.0, 2.0, 3.0, Double.infinity] {
            var o1 = [Float](repeating: 0, count: 5), o2 = o1
            XCTAssertEqual(pk_unit_norms_f32(3, 5, 4, p, x, nil, &o1), PK_OK)
            XCTAssertEqual(pk_ref_unit_norms_f32(3, 5, 4, p, x, nil, &o2), PK_OK)
            assertClose(o1, o2, rtol: 1e-5, atol: 1e-6, "norm p=\(p)")
        }
    }
}

private extension Array where Element == [Float] {
    /// Calls body with a C array of pointers to each inner array's storage.
    func withUnsafePointers<R>(_ body: (UnsafePointer<UnsafePointer<Float>?>) -> R) -> R {
        let ps = map { s -> UnsafeMutablePointer<Float> in
            let p = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(s.count, 1)); p.initialize(from: s, count: s.count); return p
        }
        defer { ps.forEach { $0.deallocate() } }
        let cs: [UnsafePointer<Float>?] = ps.map { UnsafePointer($0) }
        return cs.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}

private extension Array where Element == [UInt8] {
    /// Calls body with a C array of pointers to copies of the inner arrays, copied back afterwards.
    mutating func withUnsafeMutablePointers<R>(_ body: (UnsafePointer<UnsafeMutablePointer<UInt8>?>) -> R) -> R {
        let ps = map { m -> UnsafeMutablePointer<UInt8> in
            let p = UnsafeMutablePointer<UInt8>.allocate(capacity: Swift.max(m.count, 1)); p.initialize(from: m, count: m.count); return p
        }
        defer { ps.forEach { $0.deallocate() } }
        let cs: [UnsafeMutablePointer<UInt8>?] = ps
        let r = cs.withUnsafeBufferPointer { body($0.baseAddress!) }
        for t in indices { self[t] = [UInt8](UnsafeBufferPointer(start: ps[t], count: self[t].count)) }
        return r
    }
}
