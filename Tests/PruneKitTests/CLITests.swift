import XCTest
@testable import PruneKit

/// The command-line tool on bad input: one clear line, non-zero exit, nothing overwritten.
final class CLITests: XCTestCase {
    var binary: String { prunekitBinary }
    func run(_ args: [String]) throws -> (status: Int32, out: String, err: String) { try runPrunekit(args) }

    func testInfo() throws {
        let r = try run(["info", "--json"])
        XCTAssertEqual(r.status, 0)
        let o = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as! [String: Any]
        XCTAssertNotNil(o["isa"])
        XCTAssertNotNil(o["openblas_core"])
        XCTAssertEqual(o["openmp"] as? Bool, ProcessInfo.processInfo.environment["PRUNEKIT_OPENMP"] != "0")
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
        _ = try requireFashionMNIST()
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
        XCTAssertEqual(eo["sparsity"] as? Double, 0)
        // prune → finetune → report across separate runs, masks carried in the files
        let pruned = dir + "/p.safetensors", tuned = dir + "/t.safetensors"
        let p = try run(["prune", "--model-file", out, "--amount", "0.9", "--out", pruned, "--json"])
        XCTAssertEqual(p.status, 0, p.err)
        let po = try JSONSerialization.jsonObject(with: Data(p.out.utf8)) as! [String: Any]
        XCTAssertEqual(po["sparsity"] as! Double, 0.9, accuracy: 1e-4)
        XCTAssertNotNil(po["test_accuracy"])
        let f = try run(["finetune", "--model-file", pruned, "--epochs", "1", "--out", tuned, "--json"])
        XCTAssertEqual(f.status, 0, f.err)
        let fo = try JSONSerialization.jsonObject(with: Data(f.out.utf8)) as! [String: Any]
        XCTAssertEqual(fo["sparsity"] as! Double, 0.9, accuracy: 1e-4, "the masks stay fixed")
        XCTAssertGreaterThan(fo["test_accuracy"] as! Double, po["test_accuracy"] as! Double)
        let rep = try run(["report", "--model-file", tuned, "--json"])
        XCTAssertEqual(rep.status, 0, rep.err)
        let ro = try JSONSerialization.jsonObject(with: Data(rep.out.utf8)) as! [String: Any]
        XCTAssertEqual(ro["sparsity"] as! Double, 0.9, accuracy: 1e-4)
        let bad = try run(["prune", "--model-file", out, "--amount", "1.5", "--out", pruned])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.err.contains("amount"), bad.err)
    }
}

/// A training run killed mid-way and resumed reaches the same weights as an uninterrupted run.
final class ResumeTests: XCTestCase {
    func testKilledRunResumesToTheSameWeights() throws {
        _ = try requireFashionMNIST()
        struct CLI {
            var binary: String { prunekitBinary }
            func run(_ args: [String]) throws -> (status: Int32, out: String, err: String) { try runPrunekit(args) }
        }
        let cli = CLI()
        let dir = NSTemporaryDirectory() + "pk-resume-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let ck = dir + "/run.ckpt", full = dir + "/full.safetensors", part = dir + "/part.safetensors"
        for (cmd, extra) in [("train", ["--epochs", "3", "--limit", "6000"]), ("finetune", ["--epochs", "1"])] {
            var base = [cmd] + extra
            if cmd == "finetune" {
                // fine-tune the model the training case produced
                base += ["--model-file", full.replacingOccurrences(of: "full", with: "trained")]
            }
            let uninterrupted = try cli.run(base + ["--out", full])
            XCTAssertEqual(uninterrupted.status, 0, uninterrupted.err)
            if cmd == "train" { try FileManager.default.copyItem(atPath: full, toPath: dir + "/trained.safetensors") }
            // start, wait for a checkpoint, kill -9, resume
            let p = Process()
            p.executableURL = URL(fileURLWithPath: cli.binary)
            p.arguments = base + ["--out", part, "--checkpoint", ck, "--checkpoint-every", "7"]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            let deadline = Date().addingTimeInterval(120)
            while !FileManager.default.fileExists(atPath: ck) && Date() < deadline && p.isRunning { usleep(20_000) }
            usleep(150_000)
            let killedEarly = p.isRunning
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            XCTAssertTrue(killedEarly, "\(cmd): the run finished before it could be killed; make it longer")
            XCTAssertTrue(FileManager.default.fileExists(atPath: ck), "\(cmd): a checkpoint was written before the kill")
            XCTAssertFalse(FileManager.default.fileExists(atPath: part), "\(cmd): no output before the end")
            let resumed = try cli.run(base + ["--out", part, "--checkpoint", ck, "--checkpoint-every", "7", "--resume"])
            XCTAssertEqual(resumed.status, 0, resumed.err)
            XCTAssertTrue(resumed.err.contains("resuming from"), resumed.err)
            let a = try ModelFile.load(full).model, b = try ModelFile.load(part).model
            XCTAssertEqual(a.parameters.map(\.value), b.parameters.map(\.value), "\(cmd): resumed weights differ")
            try? FileManager.default.removeItem(atPath: ck)
            try? FileManager.default.removeItem(atPath: part)
            try? FileManager.default.removeItem(atPath: full)
        }
    }
}
