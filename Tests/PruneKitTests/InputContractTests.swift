import XCTest
@testable import PruneKit

/// The input contract (issue 13): how pixels become model inputs is recorded with the model, read
/// back by every command, and never silently assumed.
final class InputContractTests: XCTestCase {
    func testContractsNamesEqualityAndMetadata() throws {
        XCTAssertEqual(try InputNormalization(name: "mean-std"), .fashionMNIST)
        XCTAssertEqual(try InputNormalization(name: "unit"), .unit)
        XCTAssertEqual(try InputNormalization(name: "none"), InputNormalization.none)
        XCTAssertNotEqual(InputNormalization.unit, InputNormalization.none, "x/255 is not x")
        // the same computation is the same contract, however it was spelled
        XCTAssertEqual(try InputNormalization.meanStd(mean: FashionMNIST.mean, std: FashionMNIST.std), .fashionMNIST)
        XCTAssertEqual(try InputNormalization.meanStd(mean: 0, std: 1), .unit)
        XCTAssertEqual(InputNormalization.unit.apply(51), 0.2, accuracy: 1e-7)
        XCTAssertEqual(InputNormalization.none.apply(51), 51)
        XCTAssertEqual(try InputNormalization.meanStd(mean: 0.5, std: 0.25).apply(255), 2, accuracy: 1e-6)
        for bad in ["Unit", "", "meanstd", "z-score"] {
            XCTAssertThrowsError(try InputNormalization(name: bad)) { e in XCTAssertTrue("\(e)".contains("'\(bad)'"), "\(e)") }
        }
        XCTAssertThrowsError(try InputNormalization.meanStd(mean: 0.1, std: 0))
        XCTAssertThrowsError(try InputNormalization.meanStd(mean: 0.1, std: -1))
        XCTAssertThrowsError(try InputNormalization.meanStd(mean: .nan, std: 1))
        XCTAssertThrowsError(try InputNormalization.meanStd(mean: 0, std: .infinity))
        // metadata round trip, numbers exact
        let odd = try InputNormalization.meanStd(mean: 0.1307, std: 0.3081)
        for c in [InputNormalization.fashionMNIST, .unit, .none, odd] {
            let back = try XCTUnwrap(try InputNormalization.recorded(in: c.metadata, file: "f"))
            XCTAssertEqual(back, c)
            XCTAssertEqual(back.kind, c.kind)
            XCTAssertEqual(back.mean.bitPattern, c.mean.bitPattern)
        }
        XCTAssertNil(try InputNormalization.recorded(in: ["format": "pt"], file: "f"))
    }

    func testMalformedMetadataNamesTheFileAndKey() {
        let n = InputNormalization.nameKey, m = InputNormalization.meanKey, s = InputNormalization.stdKey
        let cases: [([String: String], String)] = [
            ([n: "zscore"], "zscore"),
            ([n: "mean-std"], m),
            ([n: "mean-std", m: "0.2", s: "abc"], "abc"),
            ([n: "mean-std", m: "nan", s: "0.3"], "nan"),
            ([n: "mean-std", m: "0.2", s: "0"], "std"),
            ([n: "mean-std", m: "0.2", s: "-0.5"], "std"),
            ([n: "unit", m: "0.3", s: "1"], "contradicts"),
            ([m: "0.3", s: "0.2"], n),
        ]
        for (meta, word) in cases {
            XCTAssertThrowsError(try InputNormalization.recorded(in: meta, file: "model.safetensors"), "\(meta)") { e in
                XCTAssertTrue("\(e)".contains("model.safetensors"), "\(e)")
                XCTAssertTrue("\(e)".contains(word), "\(meta): \(e)")
                XCTAssertFalse("\(e)".contains("\n"), "one line: \(e)")
            }
        }
    }

    func testResolution() throws {
        // no flag, no metadata: the default, with a note naming the file and how to change it
        var r = try InputNormalization.resolve(requested: nil, metadata: [:], file: "a.safetensors")
        XCTAssertEqual(r.contract, .fashionMNIST)
        let note = try XCTUnwrap(r.note)
        for word in ["a.safetensors", "mean-std", "--normalize"] { XCTAssertTrue(note.contains(word), note) }
        XCTAssertFalse(note.contains("\n"))
        // the file's own contract, silently
        r = try InputNormalization.resolve(requested: nil, metadata: InputNormalization.unit.metadata, file: "a")
        XCTAssertEqual(r.contract, .unit)
        XCTAssertNil(r.note)
        // a flag on a file without metadata, or agreeing with it
        r = try InputNormalization.resolve(requested: InputNormalization.none, metadata: [:], file: "a")
        XCTAssertEqual(r.contract, InputNormalization.none)
        XCTAssertNil(r.note)
        r = try InputNormalization.resolve(requested: .unit, metadata: InputNormalization.unit.metadata, file: "a")
        XCTAssertEqual(r.contract, .unit)
        // a contradiction names both
        XCTAssertThrowsError(try InputNormalization.resolve(requested: .fashionMNIST, metadata: InputNormalization.unit.metadata,
                                                            file: "b.safetensors")) { e in
            for word in ["b.safetensors", "unit", "mean-std"] { XCTAssertTrue("\(e)".contains(word), "\(e)") }
        }
    }

    // MARK: the command-line tool

    struct Fixture: Decodable {
        let plain_test_accuracy: Double
        let pruned_test_accuracy: Double
        let pruned_accuracy_with_mean_std_inputs: Double
    }

    func fixture(_ name: String) throws -> String {
        try XCTUnwrap(Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures"), name).path
    }

    func json(_ s: String) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(s.utf8)) as? [String: Any], s)
    }

    /// LeNet-300-100 trained in PyTorch on x/255 (scripts/make_unit_lenet_fixture.py) evaluates to
    /// PyTorch's own accuracy with --normalize unit, in the plain and the weight_orig/weight_mask layout.
    func testModelTrainedElsewhereEvaluatesToItsOwnAccuracy() throws {
        _ = try requireFashionMNIST()
        let expected = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: URL(fileURLWithPath: try fixture("lenet_unit.json"))))
        for (file, acc) in [("lenet_unit_plain.safetensors", expected.plain_test_accuracy),
                            ("lenet_unit_pruned.safetensors", expected.pruned_test_accuracy)] {
            let r = try runPrunekit(["eval", "--model-file", try fixture(file), "--normalize", "unit", "--json"])
            XCTAssertEqual(r.status, 0, r.err)
            XCTAssertEqual(r.err, "", "a flag on a file without metadata needs no note")
            let o = try json(r.out)
            XCTAssertEqual(try XCTUnwrap(o["test_accuracy"] as? Double), acc, accuracy: 0.001, file)
            // the same through --mean 0 --std 1
            let same = try runPrunekit(["eval", "--model-file", try fixture(file), "--mean", "0", "--std", "1", "--json"])
            XCTAssertEqual(try json(same.out)["test_accuracy"] as? Double, o["test_accuracy"] as? Double)
        }
        // without the flag: the documented default, one note on stderr, and the accuracy PyTorch gets
        // on mean/std inputs (what went wrong silently before)
        let r = try runPrunekit(["eval", "--model-file", try fixture("lenet_unit_pruned.safetensors"), "--json"])
        XCTAssertEqual(r.status, 0, r.err)
        let lines = r.err.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, r.err)
        XCTAssertTrue(r.err.contains("records no input normalisation") && r.err.contains("--normalize"), r.err)
        XCTAssertEqual(try json(r.out)["test_accuracy"] as! Double, expected.pruned_accuracy_with_mean_std_inputs, accuracy: 0.001)
    }

    /// A chain of commands needs the flag once: train records it, prune and finetune carry it,
    /// eval and report read it back; a contradicting flag is refused naming both.
    func testChainRecordsTheContractOnce() throws {
        let data = try requireFashionMNIST()
        let dir = NSTemporaryDirectory() + "pk-contract-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let trained = dir + "/t.safetensors", pruned = dir + "/p.safetensors", tuned = dir + "/f.safetensors"
        var r = try runPrunekit(["train", "--epochs", "1", "--limit", "3000", "--normalize", "unit", "--out", trained, "--json"])
        XCTAssertEqual(r.status, 0, r.err)
        let trainAcc = try XCTUnwrap(try json(r.out)["test_accuracy"] as? Double)
        XCTAssertEqual(try SafeTensors.read(trained).metadata[InputNormalization.nameKey], "unit")
        // read back with no flag: same accuracy, no note
        r = try runPrunekit(["eval", "--model-file", trained, "--json"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertFalse(r.err.contains("note"), r.err)
        XCTAssertEqual(try json(r.out)["test_accuracy"] as? Double, trainAcc)
        // the model really was trained and evaluated on x/255: in-process under .unit it scores
        // train's accuracy, under the mean/std default another one
        let model = try ModelFile.load(trained).model
        let unitTest = try FashionMNIST.load(directory: data, train: false, normalization: .unit)
        XCTAssertEqual(try Trainer.evaluate(model, data: unitTest).accuracy, trainAcc)
        let meanStdTest = try FashionMNIST.load(directory: data, train: false)
        XCTAssertNotEqual(try Trainer.evaluate(model, data: meanStdTest).accuracy, trainAcc, "the default contract gives another accuracy")
        // a flag that contradicts the recorded contract is refused, naming both
        let wrong = try runPrunekit(["eval", "--model-file", trained, "--json", "--mean", "0.286", "--std", "0.353"])
        XCTAssertNotEqual(wrong.status, 0, "a contradicting flag is an error")
        XCTAssertTrue(wrong.err.contains("unit") && wrong.err.contains("mean-std") && wrong.err.contains("t.safetensors"), wrong.err)
        XCTAssertEqual(wrong.err.split(separator: "\n").count, 1, wrong.err)
        r = try runPrunekit(["prune", "--model-file", trained, "--amount", "0.5", "--method", "wanda", "--calibration-batches", "2",
                             "--out", pruned, "--json"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(try SafeTensors.read(pruned).metadata[InputNormalization.nameKey], "unit")
        r = try runPrunekit(["finetune", "--model-file", pruned, "--epochs", "1", "--teacher", trained, "--out", tuned, "--json"])
        XCTAssertEqual(r.status, 0, r.err)
        let tunedAcc = try XCTUnwrap(try json(r.out)["test_accuracy"] as? Double)
        XCTAssertEqual(try SafeTensors.read(tuned).metadata[InputNormalization.nameKey], "unit")
        r = try runPrunekit(["report", "--model-file", tuned, "--json"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(try json(r.out)["test_accuracy"] as? Double, tunedAcc)
        XCTAssertEqual(r.err, "")
        // a teacher trained on other inputs is refused
        let other = dir + "/other.safetensors"
        r = try runPrunekit(["train", "--epochs", "1", "--limit", "500", "--normalize", "none", "--out", other])
        XCTAssertEqual(r.status, 0, r.err)
        r = try runPrunekit(["finetune", "--model-file", pruned, "--epochs", "1", "--teacher", other, "--out", dir + "/x.safetensors"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("other.safetensors") && r.err.contains("none") && r.err.contains("unit"), r.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/x.safetensors"))
    }

    /// Bad values: one line naming the argument or file, non-zero exit, nothing written.
    func testBadContractsAreRefusedAndNothingIsWritten() throws {
        let dir = NSTemporaryDirectory() + "pk-contract-bad-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = dir + "/never.safetensors"
        let cases: [([String], String)] = [
            (["--normalize", "zscore"], "--normalize"),
            (["--mean", "0.5"], "--std"),
            (["--mean", "0.5", "--std", "0"], "--std"),
            (["--mean", "0.5", "--std=-2"], "--std"),
            (["--mean=-0.5", "--std", "0"], "--std"),
            (["--mean", "nan", "--std", "0.3"], "--mean"),
            (["--mean", "inf", "--std", "0.3"], "--mean"),
            (["--normalize", "unit", "--mean", "0.5", "--std", "0.2"], "--normalize"),
        ]
        for (args, word) in cases {
            let r = try runPrunekit(["train", "--epochs", "1", "--limit", "100", "--out", out] + args)
            XCTAssertNotEqual(r.status, 0, "\(args)")
            XCTAssertTrue(r.err.contains(word), "\(args): \(r.err)")
            XCTAssertEqual(r.err.split(separator: "\n").count, 1, "\(args): \(r.err)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "\(args)")
        }
        // malformed metadata in a model file: one line naming the file, nothing written
        let model = Model.mlp(seed: 1)
        let badFile = dir + "/bad-meta.safetensors"
        try SafeTensors.write(ModelFile.stateDict(model), metadata: ["prunekit.arch": "mlp", InputNormalization.nameKey: "mean-std",
                                                                     InputNormalization.meanKey: "0.3", InputNormalization.stdKey: "zero"],
                              to: badFile)
        for cmd in [["eval"], ["report", "--no-eval"], ["prune", "--amount", "0.5", "--out", out, "--no-eval"],
                    ["finetune", "--epochs", "0", "--out", out]] {
            let r = try runPrunekit([cmd[0], "--model-file", badFile] + cmd.dropFirst())
            XCTAssertNotEqual(r.status, 0, "\(cmd)")
            XCTAssertTrue(r.err.contains("bad-meta.safetensors") && r.err.contains("zero"), "\(cmd): \(r.err)")
            XCTAssertEqual(r.err.split(separator: "\n").count, 1, "\(cmd): \(r.err)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "\(cmd)")
        }
        // the options mean nothing for sentence encoders: refused, not ignored
        let r = try runPrunekit(["eval", "--model", dir, "--input", badFile, "--normalize", "unit"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("--normalize"), r.err)
    }
}
