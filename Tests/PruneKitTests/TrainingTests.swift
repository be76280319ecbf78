import XCTest
@testable import PruneKit

final class TrainingTests: XCTestCase {
    /// A synthetic 10-class problem: class c's images are noise around a fixed random template.
    func synthetic(count: Int, seed: UInt64) throws -> LabeledImages {
        var t = SeededGenerator(seed: 99)
        let templates = (0..<10).map { _ in (0..<784).map { _ in t.uniform(-1, 1) } }
        var g = SeededGenerator(seed: seed)
        var pix: [Float] = []
        var labels: [Int32] = []
        for _ in 0..<count {
            let c = Int(g.next() % 10)
            labels.append(Int32(c))
            pix += templates[c].map { $0 + 1.5 * g.normal() }
        }
        return try LabeledImages(images: Tensor(shape: [count, 784], scalars: pix), labels: labels)
    }

    func testShortTrainingLowersLossByMargin() throws {
        let data = try synthetic(count: 1024, seed: 1)
        let m = Model.mlp(seed: 0)
        let before = try Trainer.evaluate(m, data: data).loss
        _ = try Trainer.train(m, data: data, optimizer: try Adam(learningRate: 1e-3), config: TrainingConfig(epochs: 2, batchSize: 64))
        let after = try Trainer.evaluate(m, data: data)
        XCTAssertLessThan(after.loss, 0.5 * before, "two epochs must at least halve the loss (\(before) → \(after.loss))")
        XCTAssertGreaterThan(after.accuracy, 0.9)
    }

    func testSameSeedSameWeightsAcrossThreadCounts() throws {
        let data = try synthetic(count: 300, seed: 2)
        func run(threads: Int) throws -> [Tensor] {
            try withThreads(threads) {
                let m = Model.cnn(seed: 4)
                _ = try Trainer.train(m, data: data.reshapedImages([784]), optimizer: try Adam(),
                                      config: TrainingConfig(epochs: 1, batchSize: 50, seed: 4))
                return m.parameters.map(\.value)
            }
        }
        let a = try run(threads: 1), b = try run(threads: 2), c = try run(threads: 2)
        XCTAssertEqual(a, b, "1 and 2 threads must give bitwise-identical weights")
        XCTAssertEqual(b, c, "two runs with the same seed must agree")
    }

    /// The fused step (dense execution: masked entries exist in storage) leaves masked weights at +0
    /// and masked optimizer state bit-identical; the gradient exists only without fusion, so its
    /// masking is checked on an unfused run.
    func testMaskedWeightsStayExactlyZeroDuringTraining() throws {
        let data = try synthetic(count: 256, seed: 3)
        func maskedModel() throws -> Model {
            let m = Model.mlp(seed: 1)
            m.setExecution(.dense) // compressed, masked entries do not exist and nothing below could fail
            var g = SeededGenerator(seed: 5)
            for (_, p) in m.prunableWeights {
                try p.setMask(Mask(shape: p.shape, kept: (0..<p.count).map { _ in g.nextUnitFloat() < 0.2 }))
            }
            return m
        }
        let optimizers: [(String, any Optimizer)] = [
            ("sgd", try SGD(learningRate: 0.05, momentum: 0.9, weightDecay: 1e-3, nesterov: true)),
            ("adam", try Adam(weightDecay: 1e-2)), ("adamw", try AdamW(weightDecay: 0.1))]
        for (kind, opt) in optimizers {
            let m = try maskedModel()
            let weights = m.prunableWeights
            // non-zero state everywhere: a step that touches a masked entry changes it
            var seeded: [String: Tensor] = [:], meta = ["optim.kind": kind]
            for (n, p) in weights {
                if kind == "sgd" {
                    seeded["optim.\(n).velocity"] = try Tensor(shape: p.shape, repeating: 0.25)
                } else {
                    seeded["optim.\(n).m"] = try Tensor(shape: p.shape, repeating: 0.25)
                    seeded["optim.\(n).v"] = try Tensor(shape: p.shape, repeating: 0.5)
                    meta["optim.\(n).t"] = "1"
                }
            }
            try opt.importState(weights, tensors: seeded, metadata: meta)
            let before = weights.map { $0.parameter.value.scalars }
            _ = try Trainer.train(m, data: data, optimizer: opt,
                                  config: TrainingConfig(epochs: 1, batchSize: 32, fusedUpdates: true))
            let state = opt.exportState(weights).tensors
            for ((n, p), w0) in zip(weights, before) {
                XCTAssertNil(p.compressed, "\(n) ran dense")
                let w = p.value.scalars, kept = p.mask!.kept
                let first = state["optim.\(n).velocity"] ?? state["optim.\(n).m"]!, second = state["optim.\(n).v"]
                var badWeight = 0, badState = 0, movedKept = 0
                for i in 0..<p.count {
                    if kept[i] { if w[i] != w0[i] { movedKept += 1 }; continue }
                    if w[i].bitPattern != 0 { badWeight += 1 }
                    if first[flat: i] != 0.25 || (second.map { $0[flat: i] != 0.5 } ?? false) { badState += 1 }
                }
                XCTAssertEqual(badWeight, 0, "\(kind) \(n): masked weights moved")
                XCTAssertEqual(badState, 0, "\(kind) \(n): masked optimizer state moved")
                XCTAssertGreaterThan(movedKept, 0, "\(kind) \(n): the fused step updated the kept weights")
                // documents the trap the old assertion fell into: the fused path never writes `grad`
                XCTAssertTrue(p.grad.scalars.allSatisfy { $0 == 0 }, "\(kind) \(n)")
            }
        }
        // the gradient itself: only an unfused backward writes it (poisoned first, so it must be written)
        let u = try maskedModel()
        for (_, p) in u.prunableWeights { p.grad = try Tensor(shape: p.shape, repeating: .nan) }
        _ = try Trainer.train(u, data: data, optimizer: try Adam(),
                              config: TrainingConfig(epochs: 1, batchSize: 32, fusedUpdates: false))
        for (n, p) in u.prunableWeights {
            let gr = p.grad.scalars, kept = p.mask!.kept
            XCTAssertTrue(gr.allSatisfy(\.isFinite), "\(n): backward wrote every entry")
            XCTAssertEqual(zip(gr, kept).filter { !$0.1 && $0.0.bitPattern != 0 }.count, 0, "\(n): masked gradient is +0")
            XCTAssertTrue(zip(gr, kept).contains { $0.1 && $0.0 != 0 }, "\(n): kept entries have a gradient")
        }
    }

    func testRealFashionMNISTQuickTraining() throws {
        let dir = try requireFashionMNIST()
        let train = try FashionMNIST.load(directory: dir, train: true).prefix(6000)
        let test = try FashionMNIST.load(directory: dir, train: false).prefix(2000)
        let m = Model.mlp(seed: 0)
        _ = try Trainer.train(m, data: train, optimizer: try Adam(), config: TrainingConfig(epochs: 1, batchSize: 128))
        let acc = try Trainer.evaluate(m, data: test).accuracy
        XCTAssertGreaterThan(acc, 0.72, "one epoch on 6000 images reaches well above chance (got \(acc))")
    }
}
