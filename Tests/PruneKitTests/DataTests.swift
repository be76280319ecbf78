import XCTest
@testable import PruneKit

final class DataTests: XCTestCase {
    var dir: String!

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "prunekit-data-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func idx(_ dims: [Int], payload: [UInt8], type: UInt8 = 8) -> Data {
        var d = Data([0, 0, type, UInt8(dims.count)])
        for v in dims { d.append(contentsOf: [UInt8(v >> 24 & 255), UInt8(v >> 16 & 255), UInt8(v >> 8 & 255), UInt8(v & 255)]) }
        d.append(contentsOf: payload)
        return d
    }

    func gzip(_ data: Data, name: String) throws -> String {
        let raw = dir + "/" + name
        try data.write(to: URL(fileURLWithPath: raw))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/gzip")
        p.arguments = ["-f", raw]
        try p.run()
        p.waitUntilExit()
        return raw + ".gz"
    }

    func testParsesValidIDX() throws {
        let a = try IDXArray.parse(idx([2, 3], payload: [1, 2, 3, 4, 5, 6]), name: "x")
        XCTAssertEqual(a.dimensions, [2, 3])
        XCTAssertEqual([UInt8](a.bytes), [1, 2, 3, 4, 5, 6])
        let path = try gzip(idx([4], payload: [9, 8, 7, 6]), name: "labels-idx1-ubyte")
        XCTAssertEqual([UInt8](try IDXArray.read(path).bytes), [9, 8, 7, 6])
    }

    func testRejectsBadIDXWithClearMessages() throws {
        func reason(_ d: Data) -> String {
            do { _ = try IDXArray.parse(d, name: "f.idx"); return "accepted" } catch { return "\(error)" }
        }
        XCTAssertTrue(reason(Data([0x1f, 0, 8, 1])).contains("magic"))
        XCTAssertTrue(reason(idx([3], payload: [1, 2], type: 8)).contains("truncated"))
        XCTAssertTrue(reason(idx([3], payload: [1, 2, 3, 4])).contains("trailing"))
        XCTAssertTrue(reason(idx([1], payload: [1], type: 0x0d)).contains("element type"))
        XCTAssertTrue(reason(Data([0, 0])).contains("truncated header"))
        XCTAssertTrue(reason(idx([0], payload: [])).contains("dimension"))
        XCTAssertTrue(reason(idx([65536, 65536, 65536], payload: [])).contains("too large"))
        XCTAssertTrue(reason(Data([0, 0, 8, 3, 0, 0])).hasPrefix("f.idx"))
        // corrupt and truncated gzip
        let good = try Data(contentsOf: URL(fileURLWithPath: try gzip(idx([100], payload: [UInt8](repeating: 7, count: 100)), name: "g")))
        let cut = dir + "/cut.gz"
        try good.prefix(good.count / 2).write(to: URL(fileURLWithPath: cut))
        XCTAssertThrowsError(try IDXArray.read(cut)) { e in XCTAssertTrue("\(e)".contains("cut.gz"), "\(e)") }
        var bad = good
        bad[12] ^= 0xff
        bad[13] ^= 0xff
        let corrupt = dir + "/corrupt.gz"
        try bad.write(to: URL(fileURLWithPath: corrupt))
        XCTAssertThrowsError(try IDXArray.read(corrupt))
        XCTAssertThrowsError(try IDXArray.read(dir + "/missing.gz")) { e in XCTAssertTrue("\(e)".contains("not found")) }
    }

    func testFashionMNISTLoaderValidatesPairs() throws {
        // a tiny fake dataset: 3 images, labels must match in count and range
        let pix = [UInt8](repeating: 128, count: 3 * 784)
        _ = try gzip(idx([3, 28, 28], payload: pix), name: "t10k-images-idx3-ubyte")
        _ = try gzip(idx([3], payload: [0, 9, 4]), name: "t10k-labels-idx1-ubyte")
        let d = try FashionMNIST.load(directory: dir, train: false)
        XCTAssertEqual(d.images.shape, [3, 784])
        XCTAssertEqual(d.labels, [0, 9, 4])
        XCTAssertEqual(d.images[flat: 0], (128 / 255 - FashionMNIST.mean) / FashionMNIST.std, accuracy: 1e-5)
        // every input contract, against its formula written out
        XCTAssertEqual(try FashionMNIST.load(directory: dir, train: false, normalization: .unit).images[flat: 5], 128 / 255, accuracy: 1e-7)
        XCTAssertEqual(try FashionMNIST.load(directory: dir, train: false, normalization: .none).images[flat: 5], 128)
        let custom = try InputNormalization.meanStd(mean: 0.5, std: 0.25)
        XCTAssertEqual(try FashionMNIST.load(directory: dir, train: false, normalization: custom).images[flat: 7],
                       (128 / 255 - 0.5) / 0.25, accuracy: 1e-6)
        _ = try gzip(idx([2], payload: [0, 1]), name: "t10k-labels-idx1-ubyte")
        XCTAssertThrowsError(try FashionMNIST.load(directory: dir, train: false)) { e in XCTAssertTrue("\(e)".contains("labels")) }
        _ = try gzip(idx([3], payload: [0, 1, 12]), name: "t10k-labels-idx1-ubyte")
        XCTAssertThrowsError(try FashionMNIST.load(directory: dir, train: false)) { e in XCTAssertTrue("\(e)".contains("12")) }
        XCTAssertThrowsError(try FashionMNIST.load(directory: dir, train: true)) { e in XCTAssertTrue("\(e)".contains("train-images")) }
    }

    func testRealFashionMNISTIfInstalled() throws {
        let d = try requireFashionMNIST()
        let test = try FashionMNIST.load(directory: d, train: false)
        XCTAssertEqual(test.count, 10_000)
        var hist = [Int](repeating: 0, count: 10)
        for l in test.labels { hist[Int(l)] += 1 }
        XCTAssertEqual(hist, [Int](repeating: 1000, count: 10), "the test split has 1000 images per class")
    }

    func testBatchSamplerIsAPermutation() throws {
        var s = try BatchSampler(count: 1000, batchSize: 128, seed: 3)
        let e1 = s.epoch(), e2 = s.epoch()
        XCTAssertEqual(e1.count, 8)
        XCTAssertEqual(e1.last?.count, 1000 - 7 * 128)
        XCTAssertEqual(e1.flatMap { $0 }.sorted(), Array(0..<1000))
        XCTAssertNotEqual(e1.flatMap { $0 }, e2.flatMap { $0 })
        var t = try BatchSampler(count: 1000, batchSize: 128, seed: 3)
        XCTAssertEqual(t.epoch().flatMap { $0 }, e1.flatMap { $0 })
    }
}
