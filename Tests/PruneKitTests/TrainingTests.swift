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

    func testMaskedWeightsStayExactlyZeroDuringTraining() throws {
        let data = try synthetic(count: 256, seed: 3)
        let m = Model.mlp(seed: 1)
        var g = SeededGenerator(seed: 5)
        for p in m.parameters where p.isPrunable {
            try p.setMask(Mask(shape: p.shape, kept: (0..<p.count).map { _ in g.nextUnitFloat() < 0.2 }))
        }
        for opt in [try SGD(learningRate: 0.05, momentum: 0.9, weightDecay: 1e-3, nesterov: true) as any Optimizer,
                    try Adam(weightDecay: 1e-2), try AdamW(weightDecay: 0.1)] {
            _ = try Trainer.train(m, data: data, optimizer: opt, config: TrainingConfig(epochs: 1, batchSize: 32))
            for p in m.parameters where p.isPrunable {
                let v = p.value.scalars, mask = p.mask!
                for i in 0..<p.count where !mask[flat: i] { XCTAssertEqual(v[i].bitPattern, 0) }
                for i in 0..<p.count where !mask[flat: i] { XCTAssertEqual(p.grad[flat: i], 0) }
            }
            if let adam = opt as? Adam, let (mom, vel) = adam.moments(of: m.parameters[0]) {
                let mask = m.parameters[0].mask!
                for i in 0..<mom.count where !mask[flat: i] { XCTAssertEqual(mom[flat: i], 0); XCTAssertEqual(vel[flat: i], 0) }
            }
        }
    }

    func testRealFashionMNISTQuickTraining() throws {
        guard let dir = fashionMNISTDirectory else { throw XCTSkip("dataset-fashion-mnist is not installed") }
        let train = try FashionMNIST.load(directory: dir, train: true).prefix(6000)
        let test = try FashionMNIST.load(directory: dir, train: false).prefix(2000)
        let m = Model.mlp(seed: 0)
        _ = try Trainer.train(m, data: train, optimizer: try Adam(), config: TrainingConfig(epochs: 1, batchSize: 128))
        let acc = try Trainer.evaluate(m, data: test).accuracy
        XCTAssertGreaterThan(acc, 0.72, "one epoch on 6000 images reaches well above chance (got \(acc))")
    }
}
