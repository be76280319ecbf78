import XCTest
@testable import PruneKit

/// The command-line tool on bad input: one clear line, non-zero exit, nothing overwritten.
final class CLITests: XCTestCase {
    /// The prunekit executable `swift test` built next to the test bundle (or $PRUNEKIT_BINARY).
    var binary: String {
        if let b = ProcessInfo.processInfo.environment["PRUNEKIT_BINARY"] { return b }
        let me = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var dir = me.deletingLastPathComponent()
        if dir.lastPathComponent == "MacOS" || dir.lastPathComponent == "Contents" { dir = dir.deletingLastPathComponent() }
        return dir.appendingPathComponent("prunekit").path
    }

    func run(_ args: [String]) throws -> (status: Int32, out: String, err: String) {
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            XCTFail("prunekit binary not found at \(binary)")
            throw CocoaError(.fileNoSuchFile)
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = args
        let o = Pipe(), e = Pipe()
        p.standardOutput = o
        p.standardError = e
        try p.run()
        let out = o.fileHandleForReading.readDataToEndOfFile(), err = e.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
    }

    func testInfo() throws {
        let r = try run(["info", "--json"])
        XCTAssertEqual(r.status, 0)
        let o = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as! [String: Any]
        XCTAssertNotNil(o["isa"])
        XCTAssertNotNil(o["openblas_core"])
        XCTAssertEqual(o["openmp"] as? Bool, true)
    }

    func testBadInputGivesOneLineErrorAndKeepsFiles() throws {
        let dir = NSTemporaryDirectory() + "pk-cli-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let existing = dir + "/keep.safetensors"
        try Data("precious".utf8).write(to: URL(fileURLWithPath: existing))

        var r = try run(["train", "--no-such-option"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("no-such-option"), r.err)

        r = try run(["train", "--data", dir + "/nowhere", "--out", existing])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("nowhere"), r.err)
        XCTAssertEqual(r.err.split(separator: "\n").count, 1, "one line: \(r.err)")
        XCTAssertEqual(try String(contentsOfFile: existing, encoding: .utf8), "precious")

        r = try run(["train", "--epochs", "0"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("--epochs"), r.err)

        r = try run(["eval", "--model-file", existing])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("keep.safetensors"), r.err)
        XCTAssertFalse(r.err.contains("Fatal"), r.err)

        r = try run(["eval", "--model-file", dir + "/absent.safetensors"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("not found"), r.err)
    }

    func testTrainAndEvalRoundTrip() throws {
        guard fashionMNISTDirectory != nil else { throw XCTSkip("dataset-fashion-mnist is not installed") }
        let dir = NSTemporaryDirectory() + "pk-cli-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = dir + "/m.safetensors"
        let r = try run(["train", "--epochs", "1", "--limit", "2000", "--out", out, "--json"])
        XCTAssertEqual(r.status, 0, r.err)
        let o = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as! [String: Any]
        for key in ["test_accuracy", "train_seconds", "samples_per_second"] { XCTAssertNotNil(o[key], key) }
        XCTAssertTrue(r.err.contains("epoch 1/1"), "plain per-epoch line when not a terminal: \(r.err)")
        let e = try run(["eval", "--model-file", out, "--json"])
        XCTAssertEqual(e.status, 0, e.err)
        let eo = try JSONSerialization.jsonObject(with: Data(e.out.utf8)) as! [String: Any]
        XCTAssertEqual(eo["test_accuracy"] as? Double, o["test_accuracy"] as? Double)
    }
}
