import XCTest
@testable import PruneKit

final class SafeTensorsTests: XCTestCase {
    func header(_ json: String, data: [UInt8] = []) -> Data {
        var d = Data()
        var n = UInt64(json.utf8.count).littleEndian
        withUnsafeBytes(of: &n) { d.append(contentsOf: $0) }
        d.append(contentsOf: Array(json.utf8))
        d.append(contentsOf: data)
        return d
    }

    func testRoundTripAndMetadata() throws {
        let t = ["a.weight": tensor([2, 3], [1, 2, 3, 4, 5, -6]), "b": tensor([0], []), "c": tensor([1], [.pi])]
        let data = try SafeTensors.encode(t, metadata: ["k": "v"])
        let (back, meta) = try SafeTensors.parse(data, name: "mem")
        XCTAssertEqual(meta["k"], "v")
        XCTAssertEqual(back["a.weight"], t["a.weight"])
        XCTAssertEqual(back["b"]?.shape, [0])
        XCTAssertEqual(back["c"], t["c"])
        // header is 8-byte aligned like the reference writer's
        let n = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        XCTAssertEqual(n % 8, 0)
    }

    func testReadsOtherDtypes() throws {
        // F16 1.0 = 0x3c00, BF16 2.0 = 0x4000, I64 -3
        let json = #"{"h":{"dtype":"F16","shape":[1],"data_offsets":[0,2]},"b":{"dtype":"BF16","shape":[1],"data_offsets":[2,4]},"i":{"dtype":"I64","shape":[1],"data_offsets":[4,12]}}"#
        let neg3 = withUnsafeBytes(of: Int64(-3).littleEndian) { Array($0) }
        let (t, _) = try SafeTensors.parse(header(json, data: [0x00, 0x3c, 0x00, 0x40] + neg3), name: "x")
        XCTAssertEqual(t["h"]?.scalars, [1])
        XCTAssertEqual(t["b"]?.scalars, [2])
        XCTAssertEqual(t["i"]?.scalars, [-3])
    }

    func testRejectsLyingHeaders() {
        func reason(_ d: Data) -> String {
            do { _ = try SafeTensors.parse(d, name: "bad.safetensors"); return "accepted" } catch { return "\(error)" }
        }
        XCTAssertTrue(reason(Data([1, 2, 3])).contains("truncated"))
        var huge = Data([0, 0, 0, 0, 0, 0, 0, 0x7f])
        huge.append(contentsOf: [0x7b, 0x7d])
        XCTAssertTrue(reason(huge).contains("limit"))
        XCTAssertTrue(reason(Data([100, 0, 0, 0, 0, 0, 0, 0, 0x7b])).contains("past the end"))
        XCTAssertTrue(reason(header("not json")).contains("JSON"))
        XCTAssertTrue(reason(header(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: [0, 0, 0, 0])).contains("past the end"))
        XCTAssertTrue(reason(header(#"{"a":{"dtype":"Q4","shape":[1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0])).contains("dtype"))
        XCTAssertTrue(reason(header(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0])).contains("needs"))
        XCTAssertTrue(reason(header(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}"#, data: [UInt8](repeating: 0, count: 8))).contains("overlaps"))
        XCTAssertTrue(reason(header(#"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0])).contains("invalid dimension"))
        XCTAssertTrue(reason(header(#"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#)).contains("invalid dimension"))
        XCTAssertTrue(reason(header(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}"#)).contains("data_offsets"))
        XCTAssertTrue(reason(header(#"{"__metadata__":{"k":1}}"#)).contains("metadata"))
        XCTAssertTrue(reason(header(#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#)).hasPrefix("bad.safetensors"))
    }

    /// Output folders (sentence encoders): an existing folder or a new one in a writable folder is
    /// accepted; a file, or a folder whose parent does not exist, is refused by name.
    func testOutputFolderCheck() throws {
        let dir = NSTemporaryDirectory() + "pk-outdir-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        XCTAssertNoThrow(try AtomicFile.checkWritableFolder(dir))
        XCTAssertNoThrow(try AtomicFile.checkWritableFolder(dir + "/new"))
        FileManager.default.createFile(atPath: dir + "/file", contents: Data([1]))
        XCTAssertThrowsError(try AtomicFile.checkWritableFolder(dir + "/file")) { e in
            XCTAssertTrue("\(e)".contains("is a file, expected a folder"), "\(e)")
        }
        XCTAssertThrowsError(try AtomicFile.checkWritableFolder(dir + "/missing/new")) { e in
            XCTAssertTrue("\(e)".contains("does not exist"), "\(e)")
        }
        XCTAssertThrowsError(try AtomicFile.checkWritable(dir)) // a file output refuses a folder
    }

    func testModelSaveLoadAndAtomicWrite() throws {
        let dir = NSTemporaryDirectory() + "pk-io-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let m = Model.mlp(seed: 5)
        try m.namedParameters[0].parameter.setMask(Mask(shape: [300, 784], kept: (0..<(300 * 784)).map { $0 % 3 != 0 }))
        let path = dir + "/m.safetensors"
        try ModelFile.save(m, to: path)
        let (back, meta) = try ModelFile.load(path)
        XCTAssertEqual(meta["prunekit.arch"], "mlp")
        for ((n1, p1), (n2, p2)) in zip(m.namedParameters, back.namedParameters) {
            XCTAssertEqual(n1, n2)
            XCTAssertEqual(p1.value, p2.value)
            XCTAssertEqual(p1.mask, p2.mask)
        }
        // PyTorch's pruned layout reads back the same
        try ModelFile.save(m, to: path, layout: .pytorchPruned)
        let (tensors, _) = try SafeTensors.read(path)
        XCTAssertNotNil(tensors["fc1.weight_orig"])
        XCTAssertNotNil(tensors["fc1.weight_mask"])
        XCTAssertEqual(try ModelFile.load(path).model.namedParameters[0].parameter.mask, m.namedParameters[0].parameter.mask)
        // a failed load leaves the model untouched; a failed write leaves the file untouched
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try ModelFile.save(m, to: dir + "/missing-folder/m.safetensors"))
        var wrong = ModelFile.stateDict(m)
        wrong["fc2.weight"] = try Tensor(zeros: [3, 3])
        let target = Model.mlp(seed: 9)
        let snapshot = target.namedParameters.map(\.parameter.value.scalars)
        XCTAssertThrowsError(try ModelFile.assign(wrong, to: target)) { e in XCTAssertTrue("\(e)".contains("fc2.weight")) }
        XCTAssertEqual(target.namedParameters.map(\.parameter.value.scalars), snapshot)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), before)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".tmp-") }
        XCTAssertEqual(leftovers, [])
    }
}
