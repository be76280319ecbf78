import XCTest
@testable import PruneKit

/// Every layer's backward pass against central finite differences of L = Σ out ⊙ R, R random
/// (not .sum(): an all-ones upstream gradient hides index bugs).
final class GradientTests: XCTestCase {
    /// Checks ∂L/∂input and ∂L/∂parameters of `layer` at `x`, on a few random coordinates each.
    func checkLayer(_ layer: any Layer, input x: Tensor, seed: UInt64 = 1, eps: Float = 1e-2, tol: Float = 2e-2,
                    file: StaticString = #filePath, line: UInt = #line) throws {
        var rng = TestRNG(seed)
        let y = try layer.forward(x, training: true)
        let r = tensor(y.shape, rng.floats(y.count))
        func loss(_ input: Tensor) throws -> Double {
            let out = try layer.forward(input, training: false)
            return zip(out.scalars, r.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        _ = try layer.forward(x, training: true)
        let dx = try layer.backward(r, needInputGradient: true)!
        let grads = layer.parameters.map(\.grad)
        XCTAssertEqual(dx.shape, x.shape, file: file, line: line)
        func compare(_ analytic: Float, _ numeric: Double, _ what: String) {
            let err = abs(Double(analytic) - numeric)
            XCTAssertLessThanOrEqual(err, Double(tol) * max(1, abs(numeric)),
                                     "\(layer.summary) \(what): analytic \(analytic), numeric \(numeric)", file: file, line: line)
        }
        for _ in 0..<12 {
            let i = rng.int(x.count)
            var xp = x, xm = x
            xp[flat: i] += eps
            xm[flat: i] -= eps
            compare(dx[flat: i], (try loss(xp) - loss(xm)) / Double(2 * eps), "∂/∂x[\(i)]")
        }
        for (pi, p) in layer.parameters.enumerated() {
            for _ in 0..<12 {
                let i = rng.int(p.count)
                if let m = p.mask, !m[flat: i] {
                    XCTAssertEqual(grads[pi][flat: i], 0, "masked gradient must be 0", file: file, line: line)
                    continue
                }
                compare(grads[pi][flat: i], try centralDifference(p, i, eps: eps) { try loss(x) }, "∂/∂param\(pi)[\(i)]")
            }
        }
    }

    func testLinear() throws {
        var g = SeededGenerator(seed: 1)
        let layer = try Linear(37, 23, rng: &g)
        try checkLayer(layer, input: .uniform([5, 37], -1, 1, rng: &g))
    }

    /// Both forms: dense (the masked TN product must write 0 at masked entries, which exist in
    /// storage) and sparse (masked entries are absent; the kept gradients are what is checked).
    /// Keep 0.4 is at or below the measured crossover, so `.automatic` would test the sparse form only.
    func testMaskedLinear() throws {
        for execution in [Execution.dense, .sparse] {
            var g = SeededGenerator(seed: 2)
            let layer = try Linear(33, 17, rng: &g)
            layer.execution = execution
            var rng = TestRNG(9)
            try layer.weight.setMask(Mask(shape: [17, 33], kept: rng.mask(17 * 33, keep: 0.4).map { $0 != 0 }))
            try checkLayer(layer, input: .uniform([4, 33], -1, 1, rng: &g))
            XCTAssertEqual(layer.weight.compressed == nil, execution == .dense, "\(execution) form")
        }
    }

    func testConv2d() throws {
        var g = SeededGenerator(seed: 3)
        try checkLayer(try Conv2d(3, 4, kernelSize: 3, rng: &g), input: .uniform([2, 3, 7, 6], -1, 1, rng: &g))
        try checkLayer(try Conv2d(2, 3, kernelSize: 2, stride: 2, rng: &g), input: .uniform([2, 2, 6, 7], -1, 1, rng: &g))
    }

    func testReLU() throws {
        var g = SeededGenerator(seed: 4)
        // keep inputs away from the kink so finite differences are valid
        let x = Tensor.uniform([3, 50], 0.05, 1, rng: &g).map { $0 * (Bool.random(using: &g) ? 1 : -1) }
        try checkLayer(ReLU(), input: x)
    }

    func testMaxPool() throws {
        var g = SeededGenerator(seed: 5)
        // distinct values so the argmax does not switch under ±eps
        var vals = (0..<(2 * 3 * 6 * 6)).map { Float($0) * 0.05 }
        vals.shuffle(using: &g)
        try checkLayer(MaxPool2d(2), input: tensor([2, 3, 6, 6], vals), eps: 1e-3)
    }

    func testFlattenAndSequential() throws {
        var g = SeededGenerator(seed: 6)
        let net = Sequential([("conv", try Conv2d(1, 2, kernelSize: 3, rng: &g)), ("relu", ReLU()), ("pool", try MaxPool2d(2)),
                              ("flat", Flatten()), ("fc", try Linear(8, 3, rng: &g))])
        try checkLayer(net, input: .uniform([2, 1, 6, 6], -1, 1, rng: &g), eps: 1e-3, tol: 3e-2)
    }

    func testSoftmaxCrossEntropyGradient() throws {
        var rng = TestRNG(8)
        let logits = tensor([6, 5], rng.floats(30, -3, 3))
        let labels: [Int32] = [0, 4, 2, 2, 1, 3]
        let (loss, grad, _) = try SoftmaxCrossEntropy.compute(logits: logits, labels: labels)
        // independent reference: direct formula in Double
        var ref = 0.0
        for i in 0..<6 {
            let row = (0..<5).map { Double(logits[flat: i * 5 + $0]) }
            let lse = log(row.map { exp($0) }.reduce(0, +))
            ref += lse - row[Int(labels[i])]
        }
        XCTAssertEqual(Double(loss), ref / 6, accuracy: 1e-5)
        let eps: Float = 1e-2
        for i in 0..<30 {
            var p = logits, m = logits
            p[flat: i] += eps
            m[flat: i] -= eps
            let lp = try SoftmaxCrossEntropy.evaluate(logits: p, labels: labels).loss
            let lm = try SoftmaxCrossEntropy.evaluate(logits: m, labels: labels).loss
            XCTAssertEqual(grad[flat: i], (lp - lm) / (2 * eps), accuracy: 2e-3)
        }
    }

    func testBackwardBeforeForwardThrows() throws {
        var g = SeededGenerator(seed: 1)
        let l = try Linear(3, 2, rng: &g)
        XCTAssertThrowsError(try l.backward(try Tensor(zeros: [1, 2]), needInputGradient: true))
        XCTAssertThrowsError(try l.forward(try Tensor(zeros: [1, 4]), training: true)) { e in
            XCTAssertTrue("\(e)".contains("[1, 4]"), "the message names the bad shape: \(e)")
        }
    }
}
