import XCTest
@testable import PruneKit

/// Issue 20's crashes, hangs and silent or misleading answers: each now gives the right answer or
/// one clear line.
final class RobustnessTests: XCTestCase {
    func tempDir() throws -> String {
        let dir = NSTemporaryDirectory() + "pk-robust-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    func oneLine(_ r: (status: Int32, out: String, err: String), _ words: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertNotEqual(r.status, 0, r.err, file: file, line: line)
        XCTAssertEqual(r.err.split(separator: "\n").count, 1, "one line: \(r.err)", file: file, line: line)
        for w in words { XCTAssertTrue(r.err.contains(w), "'\(w)' in: \(r.err)", file: file, line: line) }
        XCTAssertFalse(r.err.contains("errno"), r.err, file: file, line: line)
    }

    func testLibraryRefusesInsteadOfTrappingOrHanging() throws {
        XCTAssertThrowsError(try Tensor(shape: [1 << 40, 1 << 40], repeating: 0)) { e in XCTAssertTrue("\(e)".contains("more elements")) }
        XCTAssertThrowsError(try Tensor(shape: [1 << 62, 4], scalars: []))
        let m = Model.mlp(seed: 1)
        let data = try LabeledImages(images: try Tensor(zeros: [3, 784]), labels: [0, 1, 2])
        XCTAssertThrowsError(try Trainer.evaluate(m, data: data, batchSize: 0)) { e in XCTAssertTrue("\(e)".contains("batch size 0")) }
        // NaN never enters a parameter or a file
        let p = m.parameters[0]
        XCTAssertThrowsError(try p.assign(Tensor(shape: p.shape, repeating: .nan)))
        var poisoned = p.value
        poisoned[flat: 7] = .infinity
        p.value = poisoned
        let dir = try tempDir()
        XCTAssertThrowsError(try ModelFile.save(m, to: dir + "/nan.safetensors")) { e in
            XCTAssertTrue("\(e)".contains("fc1.weight") && "\(e)".contains("nothing written"), "\(e)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/nan.safetensors"))
        // NaN inputs stop training at the first batch, naming it
        let bad = try LabeledImages(images: Tensor(shape: [64, 784], repeating: .nan), labels: (0..<64).map { Int32($0 % 10) })
        XCTAssertThrowsError(try Trainer.train(Model.mlp(seed: 3), data: bad, optimizer: try Adam(),
                                               config: TrainingConfig(epochs: 1, batchSize: 32))) { e in
            if case .nonFiniteLoss(1, 1, _)? = e as? TrainingError {} else { XCTFail("\(e)") }
            XCTAssertTrue("\(e)".contains("epoch 1, batch 1"), "\(e)")
        }
    }

    func testMessagesSayWhatWasExpectedAndFound() throws {
        let m = Model.mlp(seed: 1)
        XCTAssertThrowsError(try m.forward(try Tensor(zeros: [4, 65]))) { e in
            XCTAssertTrue("\(e)".contains("[batch, 784]") && "\(e)".contains("[4, 65]"), "\(e)")
        }
        XCTAssertThrowsError(try SoftmaxCrossEntropy.compute(logits: try Tensor(zeros: [2, 10]), labels: [3, 12])) { e in
            XCTAssertEqual("\(e)", "label 12 of example 1 is outside the 10 classes 0..<10")
        }
        XCTAssertThrowsError(try Linear(weight: try Tensor(zeros: [5]), bias: nil)) { e in
            XCTAssertTrue("\(e)".contains("[out ≥ 1, in ≥ 1]") && "\(e)".contains("[5]"), "\(e)")
        }
        let dir = try tempDir()
        XCTAssertThrowsError(try ModelFile.save(m, to: dir)) { e in XCTAssertTrue("\(e)".contains("is a folder"), "\(e)") }
        XCTAssertThrowsError(try ModelFile.save(m, to: dir + "/missing/m.safetensors")) { e in XCTAssertTrue("\(e)".contains("does not exist")) }
    }

    /// A user's own model loads from its file in every layout PruneKit writes; another
    /// architecture is refused at load.
    func testUsersOwnModelLoadsFromItsFile() throws {
        func mine(_ seed: UInt64) throws -> Model {
            var g = SeededGenerator(seed: seed)
            return Model(architecture: "mine", network: Sequential([("a", try Linear(64, 128, rng: &g)), ("r", ReLU()),
                                                                    ("b", try Linear(128, 64, rng: &g)), ("c", try Linear(64, 3, rng: &g))]),
                         inputShape: [64])
        }
        let dir = try tempDir()
        let source = try mine(1)
        try ModelPruner.prune(source, PruningRequest(method: .l1, structure: .unstructured, scope: .global, amount: 0.8))
        for layout in [ModelFile.Layout.plain, .pytorchPruned, .compressed] {
            let path = dir + "/mine-\(layout).safetensors"
            try ModelFile.save(source, to: path, layout: layout)
            let target = try mine(2)
            try ModelFile.load(path, into: target)
            XCTAssertEqual(target.parameters.map(\.value.scalars), source.parameters.map(\.value.scalars), "\(layout)")
            XCTAssertEqual(target.parameters.map { $0.mask?.kept }, source.parameters.map { $0.mask?.kept }, "\(layout) masks")
        }
        var g = SeededGenerator(seed: 1)
        let other = Model(architecture: "theirs", network: Sequential([("a", try Linear(64, 3, rng: &g))]), inputShape: [64])
        XCTAssertThrowsError(try ModelFile.load(dir + "/mine-plain.safetensors", into: other)) { e in
            XCTAssertTrue("\(e)".contains("'mine'") && "\(e)".contains("'theirs'"), "\(e)")
        }
        let mlp = dir + "/mlp.safetensors"
        try ModelFile.save(Model.mlp(seed: 0), to: mlp)
        XCTAssertThrowsError(try ModelFile.load(mlp, architecture: "cnn")) { e in XCTAssertTrue("\(e)".contains("'mlp'"), "\(e)") }
    }

    func testCommandLineRefusalsAreOneClearLine() throws {
        let dir = try tempDir()
        // output paths checked before any training
        oneLine(try runPrunekit(["train", "--epochs", "1", "--out", dir + "/no/such/folder/m.safetensors"]), ["does not exist"])
        oneLine(try runPrunekit(["train", "--epochs", "1", "--out", dir]), ["is a folder"])
        oneLine(try runPrunekit(["train", "--epochs", "1", "--out", dir + "/m.safetensors", "--checkpoint", dir]), ["is a folder"])
        // negative numbers reach their own validation instead of "Missing value"
        oneLine(try runPrunekit(["train", "--epochs", "-2"]), ["--epochs"])
        oneLine(try runPrunekit(["train", "--batch", "-1"]), ["--batch"])
        oneLine(try runPrunekit(["train", "--limit", "0"]), ["--limit"])
        oneLine(try runPrunekit(["train", "--threads", "100000"]), ["--threads", "256"])
        let model = dir + "/m.safetensors"
        try ModelFile.save(Model.mlp(seed: 0), to: model)
        oneLine(try runPrunekit(["prune", "--model-file", model, "--amount", "-0.5", "--out", dir + "/p.safetensors"]), ["--amount"])
        oneLine(try runPrunekit(["prune", "--model-file", model, "--amount", "0.5", "--calibration-batches", "0",
                                 "--out", dir + "/p.safetensors"]), ["--calibration-batches"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/p.safetensors"))
        // an integer amount is a count, and the summary says so
        let r = try runPrunekit(["prune", "--model-file", model, "--amount", "1", "--no-eval", "--out", dir + "/p.safetensors"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.out.contains("1 taken as a count of weights"), r.out)
    }

    /// A learning rate that diverges stops the run with one line naming where, instead of a crash in
    /// the JSON printer, and writes nothing.
    func testDivergingTrainingStopsWithoutSaving() throws {
        _ = try requireFashionMNIST()
        let dir = try tempDir()
        let out = dir + "/m.safetensors"
        let r = try runPrunekit(["train", "--optimizer", "sgd", "--lr", "1e6", "--epochs", "1", "--limit", "2000", "--json", "--out", out])
        oneLine(r, ["epoch 1, batch", "nothing saved"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }

    /// Sizes a caller's data can reach throw instead of trapping: layers of zero or negative size,
    /// a zero pooling size, negative tensor shapes, a zero batch size.
    func testCallerReachableSizesThrow() throws {
        var g = SeededGenerator(seed: 1)
        XCTAssertThrowsError(try Linear(0, 3, rng: &g)) { XCTAssertTrue("\($0)".contains("Linear")) }
        XCTAssertThrowsError(try Linear(3, -1, rng: &g))
        XCTAssertThrowsError(try MaxPool2d(0)) { XCTAssertTrue("\($0)".contains("kernel size")) }
        XCTAssertThrowsError(try Tensor(zeros: [2, -3]))
        XCTAssertThrowsError(try Tensor(zeros: [1 << 40, 1 << 40]))
        XCTAssertThrowsError(try BatchSampler(count: 10, batchSize: 0, seed: 1))
        XCTAssertThrowsError(try LayerNorm(0))
        XCTAssertThrowsError(try Conv2d(0, 4, kernelSize: 3, rng: &g)) { XCTAssertTrue("\($0)".contains("Conv2d")) }
        XCTAssertThrowsError(try Conv2d(4, 6, kernelSize: 3, groups: 4, rng: &g), "groups must divide both channel counts")
        XCTAssertThrowsError(try Conv2d(4, 4, kernelSize: 3, padding: -1, rng: &g))
        XCTAssertThrowsError(try BatchNorm(0))
        XCTAssertThrowsError(try MultiHeadAttention(hidden: 8, heads: 3, context: SequenceContext(), rng: &g))
        XCTAssertThrowsError(try Trainer.train(Model.mlp(seed: 1), data: LabeledImages(images: Tensor(zeros: [2, 784]), labels: [0, 1]),
                                               optimizer: Adam(learningRate: 1e-3), config: TrainingConfig(epochs: 1, batchSize: 0)))
        XCTAssertNoThrow(try Linear(1, 1, rng: &g))
    }
}
