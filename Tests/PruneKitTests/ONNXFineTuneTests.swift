import Foundation
import XCTest
@testable import PruneKit

/// Fine-tuning ONNX models on the user's arrays (issue 15 step 4): .npz archives as NumPy writes
/// them (checked against the same arrays in safetensors), `prunekit finetune --model-file P.onnx
/// --data train.npz --out T.onnx` with the zeros fixed, BatchNorm in training mode, the input
/// contract explicit and stored in the file, distillation from an ONNX teacher.
final class ONNXFineTuneTests: XCTestCase {
    func fixture(_ name: String, _ ext: String) throws -> String {
        try XCTUnwrap(Bundle.module.url(forResource: name, withExtension: ext, subdirectory: ONNXTests.folder), name).path
    }

    func temporaryFolder() throws -> String {
        let dir = NSTemporaryDirectory() + "pk-onnx-finetune-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    func json(_ r: (status: Int32, out: String, err: String)) throws -> [String: Any] {
        XCTAssertEqual(r.status, 0, r.err)
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any], r.out)
    }

    /// np.savez_compressed (deflate) and np.savez (stored) archives read as the safetensors package
    /// wrote the same arrays.
    func testNPZArchivesMatchTheSafetensorsCopy() throws {
        let ref = try SafeTensors.readAll(try fixture("onnx_mlp_train", "safetensors"))
        let x = try XCTUnwrap(ref.tensors["x"]), y = try XCTUnwrap(ref.integers["y"])
        for name in ["onnx_mlp_train", "onnx_mlp_train_stored"] {
            let a = try NPZ.read(try fixture(name, "npz"))
            XCTAssertEqual(Set(a.keys), ["x", "y"], name)
            XCTAssertEqual(a["x"]?.values, x, name)
            XCTAssertNil(a["x"]?.integers, name)
            XCTAssertEqual(a["y"]?.integers, y, name)
            XCTAssertEqual(a["y"]?.shape, [96], name)
        }
        let fromNPZ = try LabeledArrays.load(try fixture("onnx_mlp_train", "npz"), inputShape: [20], classes: 5, normalization: .none)
        let fromST = try LabeledArrays.load(try fixture("onnx_mlp_train", "safetensors"), inputShape: [20], classes: 5, normalization: .none)
        XCTAssertEqual(fromNPZ.images, fromST.images)
        XCTAssertEqual(fromNPZ.labels, fromST.labels)
        XCTAssertEqual(Set(fromNPZ.labels).count, 5, "every class occurs")
        // a contract is applied to x as to raw pixels
        let unit = try LabeledArrays.load(try fixture("onnx_mlp_train", "npz"), inputShape: [20], classes: 5, normalization: .unit)
        XCTAssertEqual(unit.images[flat: 3], x[flat: 3] / 255, accuracy: 1e-7)
    }

    func testBadArchivesAndArraysAreOneLine() throws {
        let dir = try temporaryFolder()
        let whole = try Data(contentsOf: URL(fileURLWithPath: try fixture("onnx_mlp_train", "npz")))
        func refused(_ data: Data, _ mention: String, file: StaticString = #filePath, line: UInt = #line) throws {
            let path = dir + "/bad-\(UUID().uuidString).npz"
            try data.write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try NPZ.read(path), file: file, line: line) { e in
                XCTAssertFalse("\(e)".contains("\n"), "\(e)", file: file, line: line)
                if !mention.isEmpty { XCTAssertTrue("\(e)".contains(mention), "'\(mention)' in: \(e)", file: file, line: line) }
            }
        }
        for cut in [10, whole.count / 2, whole.count - 10] { try refused(whole.prefix(cut), "") }
        var corrupt = whole
        corrupt[200] ^= 0xFF  // inside the deflated data of the first member
        try refused(corrupt, "member 'x.npy'")
        try refused(Data("not a zip file at all, just some text".utf8), "not a zip archive")
        // arrays that do not fit the model
        let npz = try fixture("onnx_mlp_train", "npz")
        XCTAssertThrowsError(try LabeledArrays.load(npz, inputShape: [21], classes: 5, normalization: .none)) {
            XCTAssertTrue("\($0)".contains("[21]"), "\($0)")
        }
        XCTAssertThrowsError(try LabeledArrays.load(npz, inputShape: [20], classes: 3, normalization: .none)) {
            XCTAssertTrue("\($0)".contains("outside [0, 3)"), "\($0)")
        }
        try SafeTensors.write(["x": try Tensor(zeros: [2, 20])], to: dir + "/only-x.safetensors")
        XCTAssertThrowsError(try LabeledArrays.load(dir + "/only-x.safetensors", inputShape: [20], classes: 5, normalization: .none)) {
            XCTAssertTrue("\($0)".contains("needs tensors 'x' and 'y'"), "\($0)")
        }
    }

    /// Prune the MLP by half (unstructured), then fine-tune it on the .npz arrays: the loss on the
    /// arrays (the safetensors copy, as --test-data) falls, the pruned weights stay exactly 0 in the written file, the contract is recorded there
    /// and read back, and an ONNX teacher distils.
    func testFineTuneVerbTrainsAnONNXModelWithItsZerosFixed() throws {
        let dir = try temporaryFolder()
        let (p, t) = (dir + "/p.onnx", dir + "/t.onnx")
        _ = try json(try runPrunekit(["prune", "--model-file", try fixture("onnx_mlp", "onnx"), "--structure", "unstructured",
                                      "--amount", "0.5", "--out", p, "--json"]))
        let args = ["finetune", "--model-file", p, "--data", try fixture("onnx_mlp_train", "npz"),
                    "--test-data", try fixture("onnx_mlp_train", "safetensors"), "--epochs", "30", "--lr", "3e-2", "--batch", "32", "--json"]
        // the contract is never assumed
        var r = try runPrunekit(args + ["--out", t])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertEqual(r.err.split(separator: "\n").count, 1, r.err)
        XCTAssertTrue(r.err.contains("--normalize"), r.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: t))
        let o = try json(try runPrunekit(args + ["--out", t, "--normalize", "none"]))
        let (lossBefore, lossAfter) = (try XCTUnwrap(o["test_loss_before"] as? Double), try XCTUnwrap(o["test_loss"] as? Double))
        XCTAssertLessThan(lossAfter, 0.6 * lossBefore, "fine-tuning lowers the loss by at least 40% (\(lossBefore) → \(lossAfter))")
        XCTAssertGreaterThan(try XCTUnwrap(o["test_accuracy"] as? Double), try XCTUnwrap(o["test_accuracy_before"] as? Double))
        // the file: zeros where the pruned file had zeros, the contract recorded, the loss reproduced in-process
        let pruned = try ONNXModel.load(p), tuned = try ONNXModel.load(t)
        var zerosKept = 0, changed = 0
        for ((_, a), (_, b)) in zip(pruned.model.prunableWeights, tuned.model.prunableWeights) {
            for (u, v) in zip(a.value.scalars, b.value.scalars) {
                if u == 0 { XCTAssertEqual(v, 0, "a pruned weight moved"); zerosKept += 1 } else if u != v { changed += 1 }
            }
        }
        XCTAssertGreaterThan(zerosKept, 200)
        XCTAssertGreaterThan(changed, 100, "the kept weights were trained")
        XCTAssertEqual(try InputNormalization.recorded(in: tuned.metadata, file: t), InputNormalization.none)
        XCTAssertNotNil(tuned.metadata["prunekit.finetune"])
        let test = try LabeledArrays.load(try fixture("onnx_mlp_train", "safetensors"), inputShape: [20], classes: 5, normalization: .none)
        XCTAssertEqual(try Trainer.evaluate(tuned.model, data: test).loss, lossAfter, accuracy: 1e-4 * max(1, lossAfter))
        // the recorded contract is read back; a contradicting one is refused
        _ = try json(try runPrunekit(["finetune", "--model-file", t, "--data", try fixture("onnx_mlp_train_stored", "npz"),
                                      "--epochs", "1", "--out", dir + "/t2.onnx", "--json"]))
        r = try runPrunekit(["finetune", "--model-file", t, "--data", try fixture("onnx_mlp_train", "npz"), "--epochs", "1",
                             "--normalize", "unit", "--out", dir + "/t3.onnx"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("contradicts"), r.err)
        // distillation from the dense ONNX model
        let d = try json(try runPrunekit(args + ["--out", dir + "/kd.onnx", "--normalize", "none", "--teacher",
                                                 try fixture("onnx_mlp", "onnx"), "--epochs", "2"]))
        XCTAssertEqual(d["epochs"] as? Int, 2)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/kd.onnx"))
    }

    /// BatchNorm runs in training mode: the DenseNet-style fixture's running statistics (BatchNorm
    /// nodes in the file) move, and the written file holds the new ones.
    func testFineTuneUpdatesBatchNormStatisticsInTheFile() throws {
        let dir = try temporaryFolder()
        let src = try fixture("onnx_densenet", "onnx")
        var g = SeededGenerator(seed: 31)
        let x = Tensor.uniform([24, 1, 16, 16], -1, 2, rng: &g)
        try SafeTensors.write(["x": x], integers: ["y": ([24], (0..<24).map { Int32($0 % 10) })], to: dir + "/d.safetensors")
        _ = try json(try runPrunekit(["finetune", "--model-file", src, "--data", dir + "/d.safetensors", "--epochs", "1",
                                      "--batch", "8", "--normalize", "none", "--out", dir + "/t.onnx", "--json"]))
        let before = try ONNXModel.load(src), after = try ONNXModel.load(dir + "/t.onnx")
        let means = { (m: ONNXModel) in m.model.namedBuffers.filter { $0.name.hasSuffix("running_mean") }.map { $0.buffer.value.scalars } }
        XCTAssertEqual(means(before).count, 6, "six BatchNorm nodes")
        for (a, b) in zip(means(before), means(after)) { XCTAssertNotEqual(a, b, "running means moved") }
    }
}
