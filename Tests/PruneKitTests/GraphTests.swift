import XCTest
@testable import PruneKit

/// Graphs of layers (issue 14): any DAG built by hand, residual and concat conveniences, forward
/// hooks instead of pruning fields inside layers.
final class GraphTests: XCTestCase {
    func lin(_ i: Int, _ o: Int, _ g: inout SeededGenerator) throws -> Linear {
        let l = try Linear(i, o, rng: &g)
        l.execution = .dense
        return l
    }

    /// y = relu(fc2(relu(fc1(x))) + x), written out with the layers called one by one.
    func testResidualMatchesTheLayersCalledByHand() throws {
        var g = SeededGenerator(seed: 3)
        let fc1 = try lin(6, 9, &g), fc2 = try lin(9, 6, &g)
        let body = Sequential([("fc1", fc1), ("relu", ReLU()), ("fc2", fc2)])
        let block = try Graph.residual(body, activation: ReLU())
        let x = Tensor.uniform([4, 6], -1, 1, rng: &g)
        let y = try block.forward(x, training: false)
        let h = try fc2(try ReLU()(try fc1(x)))
        let want = zip(h.scalars, x.scalars).map { max($0 + $1, 0) }
        XCTAssertEqual(y.scalars, want)
        XCTAssertEqual(block.namedParameters.map(\.name), ["body.fc1.weight", "body.fc1.bias", "body.fc2.weight", "body.fc2.bias"])
        XCTAssertEqual(block.namedLayers.map(\.name), ["", "body", "body.fc1", "body.relu", "body.fc2", "add", "act"])
    }

    /// A DAG with fan-out (the input and a hidden node read twice), a projection shortcut, Add of
    /// three inputs and Concat: ∂L/∂x and ∂L/∂every parameter against central differences
    /// (double-precision loss L = Σ y ⊙ R).
    func testHandBuiltDAGGradientsMatchFiniteDifferences() throws {
        var g = SeededGenerator(seed: 11)
        let a = try lin(5, 7, &g), b = try lin(5, 7, &g), c = try lin(7, 7, &g), p = try lin(5, 7, &g), head = try lin(14, 3, &g)
        let graph = try Graph([
            ("head", head, ["cat"]),                      // given before what it reads: order is found
            ("a", a, ["input"]), ("b", b, ["input"]), ("relu", ReLU(), ["a"]),
            ("c", c, ["relu"]), ("proj", p, ["input"]),
            ("sum", Add(), ["c", "relu", "proj"]),
            ("cat", Concat(), ["sum", "b"]),
        ], output: "head")
        XCTAssertEqual(graph.nodes.map(\.name), ["a", "b", "relu", "c", "proj", "sum", "cat", "head"])
        let x = Tensor.uniform([3, 5], -1, 1, rng: &g)
        let r = Tensor.uniform([3, 3], -1, 1, rng: &g)
        func loss(_ input: Tensor) throws -> Double {
            zip(try graph.forward(input, training: false).scalars, r.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        _ = try graph.forward(x, training: true)
        let dx = try XCTUnwrap(try graph.backward(r, needInputGradient: true))
        let grads = graph.parameters.map(\.grad)
        // small steps: a ReLU input within a step of its kink would bend the difference quotient
        let eps: Float = 1e-3
        func check(_ analytic: Float, _ numeric: Double, _ what: String) {
            XCTAssertEqual(Double(analytic), numeric, accuracy: 3e-3 * max(1, abs(numeric)), what)
        }
        for i in 0..<x.count {
            var xp = x, xm = x
            xp[flat: i] += eps
            xm[flat: i] -= eps
            check(dx[flat: i], (try loss(xp) - loss(xm)) / Double(2 * eps), "∂/∂x[\(i)]")
        }
        for ((name, q), grad) in zip(graph.namedParameters, grads) {
            for i in stride(from: 0, to: q.count, by: 3) {
                check(grad[flat: i], try centralDifference(q, i, eps: eps) { try loss(x) }, "∂/∂\(name)[\(i)]")
            }
        }
        // without an input gradient nothing flows to the input, parameters still get theirs
        _ = try graph.forward(x, training: true)
        XCTAssertNil(try graph.backward(r, needInputGradient: false))
        XCTAssertEqual(graph.parameters.map(\.grad), grads)
    }

    func testConcatOfImagesKeepsChannelBlocks() throws {
        let x1 = tensor([2, 1, 2, 2], (0..<8).map(Float.init)), x2 = tensor([2, 2, 2, 2], (100..<116).map(Float.init))
        let cat = Concat()
        let y = try cat.forward([x1, x2], training: true)
        XCTAssertEqual(y.shape, [2, 3, 2, 2])
        XCTAssertEqual(y.scalars, [0, 1, 2, 3, 100, 101, 102, 103, 104, 105, 106, 107,
                                   4, 5, 6, 7, 108, 109, 110, 111, 112, 113, 114, 115])
        let back = try cat.backward(y, needInputGradients: [true, true])
        XCTAssertEqual(back[0]?.scalars, x1.scalars)
        XCTAssertEqual(back[1]?.scalars, x2.scalars)
        XCTAssertThrowsError(try cat.forward([x1, tensor([2, 1, 3, 2], [Float](repeating: 0, count: 12))], training: false))
    }

    func testBadGraphsNameTheNode() {
        var g = SeededGenerator(seed: 1)
        func l() -> Linear { try! lin(4, 4, &g) } // fixed, valid sizes
        let shared = l()
        let cases: [([(String, any Layer, [String])], String, String)] = [
            ([("a", l(), ["b"]), ("b", l(), ["a"]), ("out", Add(), ["a", "input"])], "cycle", "'a'"),
            ([("a", l(), ["nowhere"])], "no node", "'a'"),
            ([("a", l(), ["input"]), ("a", l(), ["input"])], "twice", "'a'"),
            ([("a", shared, ["input"]), ("b", shared, ["a"])], "same layer", "'b'"),
            ([("a", l(), ["input"]), ("dead", l(), ["input"]), ("c", l(), ["a"])], "does not reach", "'dead'"),
            ([("a", l(), ["input"]), ("b", l(), ["a", "input"])], "one input", "'b'"),
            ([("x.y", l(), ["input"])], "dots", "'x.y'"),
            ([("input", l(), ["input"])], "input", "'input'"),
        ]
        for (nodes, rule, node) in cases {
            XCTAssertThrowsError(try Graph(nodes)) { e in
                XCTAssertTrue("\(e)".contains(rule) && "\(e)".contains(node), "\(e)")
                XCTAssertFalse("\(e)".contains("\n"))
            }
        }
        XCTAssertThrowsError(try Graph([("a", l(), ["input"])], output: "zz")) { e in XCTAssertTrue("\(e)".contains("'zz'")) }
    }

    /// Wanda statistics reach Linear layers nested inside graphs (through forward hooks), equal
    /// Σx² of each layer's own inputs, and the hooks are gone afterwards.
    func testActivationStatisticsThroughHooksAtAnyDepth() throws {
        var g = SeededGenerator(seed: 5)
        let fc1 = try lin(6, 6, &g), inner = try lin(6, 6, &g), fc3 = try lin(6, 2, &g)
        let net = Sequential([("fc1", fc1), ("block", try Graph.residual(inner, activation: ReLU())), ("fc3", fc3)])
        let model = Model(architecture: "custom", network: net, inputShape: [6])
        let x = Tensor.uniform([8, 6], -1, 1, rng: &g)
        let stats = ActivationStatistics()
        try stats.collect(model: model, batches: [x])
        // the inputs each Linear saw, computed by hand
        let h1 = try fc1(x), h2 = try net.child(named: "block")!(h1)
        for (layer, input) in [(fc1, x), (inner, h1), (fc3, h2)] {
            let want = (0..<6).map { j in (0..<8).reduce(Float(0)) { $0 + input[flat: $1 * 6 + j] * input[flat: $1 * 6 + j] } }
            let scores = try stats.wandaScores(for: layer.weight)
            for o in 0..<layer.outFeatures {
                for j in 0..<6 {
                    XCTAssertEqual(scores[flat: o * 6 + j], abs(layer.weight.value[flat: o * 6 + j]) * want[j].squareRoot(),
                                   accuracy: 1e-5, "\(layer.summary) [\(o), \(j)]")
                }
            }
            XCTAssertTrue(layer.forwardHooks!.isEmpty, "hooks removed after collection")
        }
        // a hook sees input and output; its handle removes it
        var seen: [[Int]] = []
        let h = try fc3.addForwardHook { i, o in seen.append(i.shape + o.shape) }
        _ = try fc3(h2)
        h.remove()
        _ = try fc3(h2)
        XCTAssertEqual(seen, [[8, 6, 8, 2]])
        XCTAssertThrowsError(try ReLU().addForwardHook { _, _ in })
    }

    /// The README's graph example, as written there.
    func testReadmeGraphExample() throws {
        var g = SeededGenerator(seed: 0)
        let block = try Graph([
            ("conv1", Conv2d(16, 16, kernelSize: 3, padding: 1, bias: false, rng: &g), ["input"]),
            ("bn1", try BatchNorm(16), ["conv1"]), ("relu1", ReLU(), ["bn1"]),
            ("conv2", Conv2d(16, 16, kernelSize: 3, padding: 1, bias: false, rng: &g), ["relu1"]),
            ("bn2", try BatchNorm(16), ["conv2"]),
            ("add", Add(), ["bn2", "input"]), ("relu", ReLU(), ["add"]),
        ])
        let model = Model(architecture: "mine", network: Sequential([
            ("stem", try Conv2d(1, 16, kernelSize: 3, padding: 1, rng: &g)), ("block", block),
            ("pool", GlobalAvgPool2d()), ("fc", try Linear(16, 10, rng: &g)),
        ]), inputShape: [1, 28, 28])
        let x = Tensor.uniform([2, 784], 0, 1, rng: &g)
        let dg = try DependencyGraph(model)
        let macs = dg.macs
        try dg.prune(amount: 0.5)
        let masked = try model.forward(x)
        try dg.removePrunedUnits()
        assertClose(try model.forward(x).scalars, masked.scalars, rtol: 1e-4, atol: 1e-5, "readme example")
        XCTAssertLessThan(try DependencyGraph(model).macs, macs / 2)
        XCTAssertEqual(((model.network as! Sequential).child(named: "stem") as! Conv2d).outChannels, 8)
    }
}
