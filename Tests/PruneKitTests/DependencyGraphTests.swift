import XCTest
import CPruneKernels
@testable import PruneKit

/// Dependency-aware structural pruning (issue 14): coupled channels found by tracing, pruned
/// together, removed physically; the smaller model computes what the masked one did.
final class DependencyGraphTests: XCTestCase {
    func conv(_ i: Int, _ o: Int, _ k: Int, stride: Int = 1, padding: Int = 0, bias: Bool = false,
              _ g: inout SeededGenerator) -> Conv2d {
        let c = try! Conv2d(i, o, kernelSize: k, stride: stride, padding: padding, bias: bias, rng: &g)
        c.execution = .dense
        return c
    }

    func bn(_ c: Int, _ g: inout SeededGenerator) throws -> BatchNorm {
        let b = try BatchNorm(c)
        b.weight!.value = Tensor.uniform([c], 0.5, 1.5, rng: &g)
        b.bias!.value = Tensor.uniform([c], -0.3, 0.3, rng: &g)
        b.runningMean.value = Tensor.uniform([c], -0.2, 0.2, rng: &g)
        b.runningVar.value = Tensor.uniform([c], 0.5, 1.5, rng: &g)
        return b
    }

    /// A small ResNet with an identity and a projection residual block, a two-branch concat and a
    /// classifier behind global average pooling.
    func resnetLike(seed: UInt64) throws -> Model {
        var g = SeededGenerator(seed: seed)
        let block1 = try Graph.residual(Sequential([
            ("conv1", conv(8, 8, 3, padding: 1, &g)), ("bn1", try bn(8, &g)), ("relu", ReLU()),
            ("conv2", conv(8, 8, 3, padding: 1, &g)), ("bn2", try bn(8, &g)),
        ]), activation: ReLU())
        let block2 = try Graph.residual(Sequential([
            ("conv1", conv(8, 12, 3, stride: 2, padding: 1, &g)), ("bn1", try bn(12, &g)), ("relu", ReLU()),
            ("conv2", conv(12, 12, 3, padding: 1, &g)), ("bn2", try bn(12, &g)),
        ]), shortcut: Sequential([("conv", conv(8, 12, 1, stride: 2, &g)), ("bn", try bn(12, &g))]), activation: ReLU())
        let branches = try Graph.concat([
            ("a", Sequential([("conv", conv(12, 4, 1, bias: true, &g)), ("act", ReLU())])),
            ("b", Sequential([("conv", conv(12, 6, 3, padding: 1, bias: true, &g)), ("act", Activation(.hardswish))])),
        ])
        let fc = try Linear(10, 5, rng: &g)
        fc.execution = .dense
        let net = Sequential([
            ("stem", conv(1, 8, 3, padding: 1, &g)), ("bn", try bn(8, &g)), ("relu", ReLU()),
            ("block1", block1), ("block2", block2), ("mix", branches), ("pool", GlobalAvgPool2d()), ("fc", fc),
        ])
        return Model(architecture: "resnet-like", network: net, inputShape: [1, 8, 8])
    }

    func outputs(_ m: Model, _ x: Tensor) throws -> [Float] { try m.forward(x, training: false).scalars }

    func testGroupsCoupleResidualsShortcutsAndConcatSlices() throws {
        let dg = try DependencyGraph(try resnetLike(seed: 1))
        XCTAssertEqual(Set(dg.groups.map(\.producers)), [
            ["block1.body.conv2", "stem"],                        // the identity residual ties the stem to block 1's output
            ["block1.body.conv1"],
            ["block2.body.conv1"],
            ["block2.body.conv2", "block2.shortcut.conv"],        // the projection shortcut shares block 2's output
            ["mix.a.conv"], ["mix.b.conv"],                       // concat slices, each with the classifier's columns
        ])
        let residual = try XCTUnwrap(dg.groups.first { $0.producers == ["block1.body.conv2", "stem"] })
        XCTAssertEqual(residual.units.count, 8)
        XCTAssertEqual(residual.consumers, ["block1.body.conv1", "block2.body.conv1", "block2.shortcut.conv"])
        let sliceA = try XCTUnwrap(dg.groups.first { $0.producers == ["mix.a.conv"] })
        XCTAssertEqual(sliceA.consumers, ["fc"])
        XCTAssertEqual(sliceA.units.count, 4)
    }

    func testPrunedAndRemovedModelComputesWhatTheMaskedOneDid() throws {
        for (importance, scope) in [(DependencyGraph.UnitImportance.magnitude(p: 1), PruningRequest.Scope.layer),
                                    (.magnitude(p: 2), .layer), (.batchNormScale, .layer), (.magnitude(p: 1), .global)] {
            let m = try resnetLike(seed: 2)
            var g = SeededGenerator(seed: 9)
            let x = Tensor.uniform([3, 1, 8, 8], -1, 1, rng: &g)
            let dense = try outputs(m, x)
            let dg = try DependencyGraph(m)
            try dg.prune(amount: 0.5, importance: importance, scope: scope, maxRatio: 0.75)
            let masked = try outputs(m, x)
            XCTAssertNotEqual(masked, dense, "pruning changed the function")
            // coupled producers lost the same channels
            let net = m.network as! Sequential
            let stem = (net.child(named: "stem") as! Conv2d).weight
            let conv2 = (((net.child(named: "block1") as! Graph).node(named: "body")!.layer as! Sequential).child(named: "conv2") as! Conv2d).weight
            func deadRows(_ w: Parameter) -> [Int] {
                let per = w.count / w.shape[0], k = w.effectiveMask.kept
                return (0..<w.shape[0]).filter { r in !(0..<per).contains { k[r * per + $0] } }
            }
            if scope == .layer { XCTAssertEqual(deadRows(stem).count, 4) }
            XCTAssertEqual(deadRows(stem), deadRows(conv2), "residual partners prune the same channels")
            let pruned = try dg.groups.map { g in try g.units.filter { try !dg.isAlive($0) }.count }
            if scope == .global {
                XCTAssertEqual(pruned.reduce(0, +), 25, "half of the 50 units, half-to-even")
                for (g, n) in zip(dg.groups, pruned) { XCTAssertLessThanOrEqual(Double(n), 0.75 * Double(g.units.count), "\(g.producers)") }
            }
            let before = m.parameterCount
            let r = try dg.removePrunedUnits()
            XCTAssertEqual(r.parametersBefore, before)
            XCTAssertLessThan(r.parametersAfter, before)
            assertClose(try outputs(m, x), masked, rtol: 1e-4, atol: 1e-5, "removed vs masked \(importance) \(scope)")
            if scope == .layer {
                // half of every group, counted half-to-even: 8 → 4, 12 → 6, 4 → 2, 6 → 3
                XCTAssertEqual(stem.shape[0], 8)
                XCTAssertEqual((net.child(named: "stem") as! Conv2d).outChannels, 4)
                XCTAssertEqual((net.child(named: "fc") as! Linear).inFeatures, 5)
                XCTAssertEqual(Set(r.removedUnits.values), [4, 6, 2, 3])
            }
            // the smaller model trains: forward, backward, a step
            let y = try m.forward(x, training: true)
            XCTAssertEqual(y.shape, [3, 5])
            _ = try m.network.backward(y, needInputGradient: false)
        }
    }

    /// L1 group importance counts the BatchNorm scales of a unit, as Torch-Pruning's
    /// MagnitudeImportance does: with every convolution weight of equal size, the channels with the
    /// smallest |γ| go.
    func testMagnitudeImportanceCountsBatchNormScales() throws {
        func make() throws -> Model {
            var g = SeededGenerator(seed: 9)
            let c1 = conv(1, 4, 1, &g), c2 = conv(4, 2, 1, &g)
            c1.weight.value = try Tensor(shape: [4, 1, 1, 1], scalars: [0.5, -0.5, 0.5, -0.5])
            c2.weight.value = try Tensor(shape: [2, 4, 1, 1], scalars: [0.5, 0.5, -0.5, 0.5, -0.5, 0.5, 0.5, -0.5])
            let norm = try bn(4, &g)
            norm.weight!.value = try Tensor(shape: [4], scalars: [0.5, -2.0, 1.0, 0.9])
            return Model(architecture: "conv-bn", network: Sequential([("conv1", c1), ("bn", norm), ("relu", ReLU()), ("conv2", c2)]),
                         inputShape: [1, 3, 3])
        }
        for p in [1, 2] {
            let m = try make()
            let dg = try DependencyGraph(m)
            try dg.prune(amount: 0.5, importance: .magnitude(p: p), scope: .layer)
            try dg.removePrunedUnits()
            let kept = ((m.network as! Sequential).child(named: "bn") as! BatchNorm).weight!.value.scalars
            XCTAssertEqual(kept, [-2.0, 1.0], "p = \(p)")
        }
    }

    func testFlattenCouplesChannelsWithFeatureBlocks() throws {
        let m = Model.cnn(seed: 3)
        m.setExecution(.dense)
        var g = SeededGenerator(seed: 4)
        let x = Tensor.uniform([2, 784], -1, 1, rng: &g)
        let dg = try DependencyGraph(m)
        XCTAssertEqual(dg.groups.map(\.producers), [["conv1"], ["conv2"]])
        XCTAssertEqual(dg.groups[1].consumers, ["fc"])
        try dg.prune(amount: 0.25)
        let masked = try outputs(m, x)
        try dg.removePrunedUnits()
        let net = m.network as! Sequential
        XCTAssertEqual((net.child(named: "conv1") as! Conv2d).outChannels, 24)
        XCTAssertEqual((net.child(named: "conv2") as! Conv2d).inChannels, 24)
        XCTAssertEqual((net.child(named: "fc") as! Linear).inFeatures, 48 * 16, "one channel = 4×4 features")
        assertClose(try outputs(m, x), masked, rtol: 1e-4, atol: 1e-5, "cnn")
        // and it saves and loads under the same names
        let dir = NSTemporaryDirectory() + "pk-dg-\(UUID().uuidString).safetensors"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ModelFile.save(m, to: dir)
        assertClose(try outputs(try ModelFile.load(dir).model, x), masked, rtol: 1e-4, atol: 1e-5, "cnn reloaded")
    }

    /// Units whose rows were pruned alone (biases kept, consumer columns not masked) still emit a
    /// constant: it is folded into the consumer's bias, through BatchNorm and the activation.
    func testRemovedConstantsAreFoldedIntoConsumerBiases() throws {
        var g = SeededGenerator(seed: 5)
        let fc1 = try Linear(6, 10, rng: &g), fc2 = try Linear(10, 7, rng: &g), fc3 = try Linear(7, 3, rng: &g)
        for l in [fc1, fc2, fc3] { l.execution = .dense }
        let norm = try bn(10, &g)
        let m = Model(architecture: "mlp-bn", network: Sequential([
            ("fc1", fc1), ("bn", norm), ("act", Activation(.silu)), ("fc2", fc2), ("relu", ReLU()), ("fc3", fc3),
        ]), inputShape: [6])
        let x = Tensor.uniform([4, 6], -1, 1, rng: &g)
        // rows 2, 5 of fc1 and row 0 of fc2 pruned by hand
        try fc1.weight.setMask(Mask(shape: [10, 6], kept: (0..<60).map { ![2, 5].contains($0 / 6) }))
        try fc2.weight.setMask(Mask(shape: [7, 10], kept: (0..<70).map { $0 / 10 != 0 }))
        let masked = try outputs(m, x)
        let r = try DependencyGraph(m).removePrunedUnits()
        XCTAssertEqual(r.removedUnits, ["fc1": 2, "fc2": 1])
        XCTAssertEqual(fc1.outFeatures, 10, "the caller's layers are replaced, not edited")
        let net = m.network as! Sequential
        XCTAssertEqual((net.child(named: "fc2") as! Linear).inFeatures, 8)
        XCTAssertEqual((net.child(named: "bn") as! BatchNorm).features, 8)
        assertClose(try outputs(m, x), masked, rtol: 1e-5, atol: 1e-5, "folded constants")
    }

    func testRefusalsNameTheLayerAndChangeNothing() throws {
        // a layer without a channel rule
        final class Tanh: Layer {
            var summary: String { "Tanh (user)" }
            func forward(_ x: Tensor, training: Bool) throws -> Tensor { x.map { Foundation.tanh($0) } }
            func backward(_ dy: Tensor, needInputGradient: Bool) throws -> Tensor? { nil }
        }
        var g = SeededGenerator(seed: 6)
        let custom = Model(architecture: "x", network: Sequential([("fc1", try Linear(4, 4, rng: &g)), ("t", Tanh()),
                                                                   ("fc2", try Linear(4, 2, rng: &g))]), inputShape: [4])
        XCTAssertThrowsError(try DependencyGraph(custom)) { e in XCTAssertTrue("\(e)".contains("t (Tanh (user))"), "\(e)") }
        // a ratio that empties a group
        let m = try resnetLike(seed: 7)
        let snapshot = m.parameters.map(\.value.scalars)
        XCTAssertThrowsError(try DependencyGraph(m).prune(amount: 1.0)) { e in XCTAssertTrue("\(e)".contains("every channel"), "\(e)") }
        XCTAssertEqual(m.parameters.map(\.value.scalars), snapshot)
        XCTAssertTrue(m.parameters.allSatisfy { $0.mask == nil })
        // a constant that would reach a padded convolution through kept weights: refused, nothing removed
        // channel 3 of the stem's residual group: both producers' rows pruned, positive BatchNorm shifts
        // so the constant survives the ReLUs
        let net = m.network as! Sequential
        let stem = net.child(named: "stem") as! Conv2d
        let body = (net.child(named: "block1") as! Graph).node(named: "body")!.layer as! Sequential
        for w in [stem.weight, (body.child(named: "conv2") as! Conv2d).weight] {
            try w.setMask(Mask(shape: w.shape, kept: (0..<w.count).map { $0 / (w.count / w.shape[0]) != 3 }))
        }
        for b in [net.child(named: "bn") as! BatchNorm, body.child(named: "bn2") as! BatchNorm] {
            var v = b.bias!.value
            v[flat: 3] = 1
            b.bias!.value = v
        }
        let count = m.parameterCount
        XCTAssertThrowsError(try DependencyGraph(m).removePrunedUnits()) { e in
            XCTAssertTrue("\(e)".contains("padding") && "\(e)".contains("block1.body.conv1"), "\(e)")
        }
        XCTAssertEqual(m.parameterCount, count)
        XCTAssertTrue((m.network as! Sequential).child(named: "stem") === stem)
    }

    func testBuffersAreSavedAndLoaded() throws {
        let m = try resnetLike(seed: 8)
        let dict = ModelFile.stateDict(m)
        XCTAssertNotNil(dict["bn.running_mean"])
        XCTAssertNotNil(dict["block2.shortcut.bn.running_var"])
        XCTAssertNotNil(dict["block1.body.bn2.num_batches_tracked"])
        let other = try resnetLike(seed: 9)
        try ModelFile.assign(dict, to: other)
        XCTAssertEqual(other.namedBuffers.map(\.buffer.value.scalars), m.namedBuffers.map(\.buffer.value.scalars))
        var missing = dict
        missing["bn.running_mean"] = nil
        XCTAssertThrowsError(try ModelFile.assign(missing, to: other)) { e in XCTAssertTrue("\(e)".contains("bn.running_mean")) }
    }

    /// The flat-model surgery (MLP, CNN) never folds a constant through a layer it does not
    /// understand, and never empties a layer (issue 20's silent wrong answers).
    func testFlatSurgeryRefusesWhatItCannotDoExactly() throws {
        final class Tanh: Layer {
            var summary: String { "Tanh (user)" }
            func forward(_ x: Tensor, training: Bool) throws -> Tensor { x.map { Foundation.tanh($0) } }
            func backward(_ dy: Tensor, needInputGradient: Bool) throws -> Tensor? { nil }
        }
        var g = SeededGenerator(seed: 12)
        let fc1 = try Linear(4, 6, rng: &g), fc2 = try Linear(6, 3, rng: &g)
        let m = Model(architecture: "user", network: Sequential([("fc1", fc1), ("t", Tanh()), ("fc2", fc2)]), inputShape: [4])
        try fc1.weight.setMask(Mask(shape: [6, 4], kept: (0..<24).map { $0 / 4 >= 2 }))
        XCTAssertThrowsError(try Surgery.removePrunedUnits(m)) { e in XCTAssertTrue("\(e)".contains("t (Tanh (user))"), "\(e)") }
        try fc1.weight.setMask(Mask(shape: [6, 4], kept: [Bool](repeating: false, count: 24)))
        let plain = Model(architecture: "user", network: Sequential([("fc1", fc1), ("relu", ReLU()), ("fc2", fc2)]), inputShape: [4])
        XCTAssertThrowsError(try Surgery.removePrunedUnits(plain)) { e in XCTAssertTrue("\(e)".contains("every unit of fc1"), "\(e)") }
    }

    /// The front-end sends graphs through the dependency graph and keeps flat models on their own
    /// unit pruning (rows only; surgery folds the constants later).
    func testFrontEndRoutesGraphsAndFlatModels() throws {
        let mlp = Model.mlp(seed: 1)
        try ModelPruner.prune(mlp, PruningRequest(method: .l1, structure: .neurons, scope: .layer, amount: 0.5))
        let ws = mlp.prunableWeights.map(\.parameter)
        XCTAssertNotNil(ws[0].mask)
        XCTAssertNil(ws[2].mask, "flat: the classifier's columns are not masked")
        let graph = try resnetLike(seed: 4)
        try ModelPruner.prune(graph, PruningRequest(method: .l1, structure: .channels, scope: .layer, amount: 0.5))
        let fc = (graph.network as! Sequential).child(named: "fc") as! Linear
        XCTAssertEqual(fc.weight.mask?.keptCount, 5 * 5, "graph: the classifier reads half of the 10 concat channels")
    }

    /// Calibration with a loss on a CNN: unit Taylor statistics for the channels a convolution reads
    /// (conv1's, through the backward hooks of conv2) and those a Linear reads (conv2's, through
    /// Flatten), each against central differences of a channel mask; channel pruning by them keeps
    /// the most sensitive channels. The channel-dot kernel against its reference.
    func testUnitTaylorOnAConvolutionalModel() throws {
        let model = Model.cnn(seed: 4)
        model.setExecution(.dense)
        var g = SeededGenerator(seed: 5)
        let x = Tensor.normal([4, 1, 28, 28], rng: &g)
        let labels: [Int32] = [0, 1, 2, 3]
        func loss() throws -> Double { Double(try SoftmaxCrossEntropy.compute(logits: model.forward(x), labels: labels).loss) }
        let cal = try Calibration.run(model, samples: 1, input: { _ in x }, outputGradient: { y, _ in
            try SoftmaxCrossEntropy.compute(logits: y, labels: labels).gradient
        })
        let graph = try DependencyGraph(model)
        let u = try XCTUnwrap(cal.unitTaylor)
        XCTAssertEqual(graph.groups.map(\.producers), [["conv1"], ["conv2"]])
        // a mask m on channel c of a producer's output, as its readers see it: scale the readers'
        // weights for that channel (conv2's input channel c; fc's block of 16 features)
        let seq = model.network as! Sequential
        let conv2 = seq.child(named: "conv2") as! Conv2d, fc = seq.child(named: "fc") as! Linear
        for (gi, c) in [(0, 3), (0, 17), (1, 5), (1, 40)] {
            let w = gi == 0 ? conv2.weight : fc.weight, saved = w.value
            func scaled(_ f: Float) throws -> Double {
                var v = saved
                if gi == 0 { for o in 0..<64 { for t in 0..<25 { v[flat: (o * 32 + c) * 25 + t] *= f } } }
                else { for o in 0..<10 { for t in 0..<16 { v[flat: o * 1024 + c * 16 + t] *= f } } }
                w.value = v
                return try loss()
            }
            let numeric = (try scaled(1.01) - scaled(0.99)) / 0.02
            w.value = saved
            let measured = Double(try u.score(group: gi, unit: c, of: graph)).squareRoot()
            XCTAssertEqual(measured, abs(numeric), accuracy: 1e-3 + 2e-2 * abs(numeric), "group \(gi) channel \(c)")
        }
        let scores = try (0..<64).map { try u.score(group: 1, unit: $0, of: graph) }
        try graph.prune(amount: 0.5, importance: .unitTaylor(u), kind: .channels)
        let alive = (0..<64).filter { c in conv2.weight.effectiveMask.kept[(c * 800)..<((c + 1) * 800)].contains(true) }
        let ranked = (0..<64).sorted { (scores[$0], $0) > (scores[$1], $1) }
        XCTAssertEqual(Set(alive), Set(ranked.prefix(32)), "the 32 most sensitive channels of conv2 stay")
        // the kernel: NCHW channel sums against the reference, 1 and 2 threads
        var r = TestRNG(6)
        let a = r.floats(3 * 5 * 7), b = r.floats(3 * 5 * 7)
        var want = [Float](repeating: 0, count: 5)
        XCTAssertEqual(pk_ref_channel_dot_f32(3, 5, 7, a, b, &want), PK_OK)
        for threads in [1, 2] {
            try withThreads(threads) {
                var got = [Float](repeating: 9, count: 5)
                XCTAssertEqual(pk_channel_dot_f32(3, 5, 7, a, b, &got), PK_OK)
                XCTAssertEqual(got, want)
            }
        }
        var out = [Float](repeating: 0, count: 5)
        XCTAssertEqual(pk_channel_dot_f32(-1, 5, 7, a, b, &out), PK_ERR_SHAPE)
        XCTAssertEqual(pk_channel_dot_f32(3, 5, 7, nil, b, &out), PK_ERR_NULL)
    }
}
