import XCTest
@testable import PruneKit

/// Built-in residual networks (issue 14) under torchvision's names, against PyTorch.
final class ResNetTests: XCTestCase {
    func fixture(_ name: String) throws -> String {
        try XCTUnwrap(Bundle.module.url(forResource: name, withExtension: "safetensors", subdirectory: "Fixtures"), name).path
    }

    /// torchvision's resnet18 topology (narrowed to 8-64 channels: scripts/make_torchvision_fixtures.py),
    /// its state_dict loaded by name with running statistics, gives PyTorch's logits.
    func testResNet18LoadsATorchvisionStateDictAndMatchesItsLogits() throws {
        let (model, _) = try ModelFile.load(try fixture("torch_resnet18_narrow"))
        XCTAssertEqual(model.architecture, "resnet18", "recognised from the tensor names")
        let io = try SafeTensors.read(try fixture("torch_resnet18_io")).tensors
        let x = try XCTUnwrap(io["x"]), want = try XCTUnwrap(io["logits"])
        let y = try model.forward(x.reshaped([3, 784]), training: false)
        let scale = want.scalars.map(abs).max()!
        XCTAssertGreaterThan(scale, 0.05)
        let worst = zip(y.scalars, want.scalars).map { abs($0 - $1) }.max()!
        XCTAssertLessThanOrEqual(worst, 1e-4 * scale, "max |Δlogit| \(worst) against scale \(scale)")
        XCTAssertEqual(model.namedBuffers.count, 20 * 3, "20 BatchNorms, 3 buffers each")
        // written back, the names are torchvision's again
        let names = Set(ModelFile.stateDict(model).keys)
        XCTAssertEqual(names, Set(try SafeTensors.read(try fixture("torch_resnet18_narrow")).tensors.keys))
    }

    /// One distillation step through `Trainer.train` (student in training mode, teacher in evaluation
    /// mode, 0.5·CE + 0.5·T²·KL at T = 2) on a pruned ResNet-20 gives PyTorch's loss, gradients and
    /// running statistics (scripts/make_resnet20_kd_fixture.py). SGD at learning rate 1 makes the
    /// weights' change the gradient itself.
    func testResNet20DistillationStepMatchesPyTorch() throws {
        let fx = try SafeTensors.read(try fixture("torch_resnet20_kd_step")).tensors
        func part(_ prefix: String) -> [String: Tensor] {
            Dictionary(uniqueKeysWithValues: fx.compactMap { k, v in k.hasPrefix(prefix) ? (String(k.dropFirst(prefix.count)), v) : nil })
        }
        func build(_ tensors: [String: Tensor]) throws -> Model {
            let m = try Model.build("resnet20", shapesFrom: tensors, imageSize: 16)
            try ModelFile.assign(tensors, to: m)
            return m
        }
        let before = part("student."), grads = part("grad."), after = part("after.")
        let student = try build(before), teacher = try build(part("teacher."))
        XCTAssertEqual(student.namedParameters.count, grads.count)
        let x = try XCTUnwrap(fx["x"]), y = try XCTUnwrap(fx["y"]).scalars.map { Int32($0) }
        let data = try LabeledImages(images: x.reshaped([16, 256]), labels: y)
        let result = try Trainer.train(student, data: data, optimizer: try SGD(learningRate: 1),
                                       config: TrainingConfig(epochs: 1, batchSize: 16), teacher: teacher)
        let want = try XCTUnwrap(fx["loss"]).scalars[0]
        XCTAssertEqual(result.finalLoss, want, accuracy: 1e-5 * want)
        let now = ModelFile.stateDict(student)
        for (name, g) in grads {
            let w0 = try XCTUnwrap(before[name], name).scalars, w1 = try XCTUnwrap(now[name], name).scalars
            let mine = zip(w0, w1).map { $0 - $1 }
            let err = zip(mine, g.scalars).map { Double($0 - $1) * Double($0 - $1) }.reduce(0, +).squareRoot()
            let norm = g.scalars.map { Double($0) * Double($0) }.reduce(0, +).squareRoot()
            XCTAssertGreaterThan(norm, 0, name)
            XCTAssertLessThanOrEqual(err, 5e-4 * norm, "\(name): gradient off by \(err / norm) relative")
        }
        XCTAssertEqual(after.count, 2 * 21, "21 BatchNorms, mean and variance")
        for (name, want) in after {
            let got = try XCTUnwrap(now[name], name).scalars
            let worst = zip(got, want.scalars).map { abs($0 - $1) / max(1, abs($1)) }.max()!
            XCTAssertLessThanOrEqual(worst, 1e-5, name)
        }
    }

    func testFreshArchitecturesHaveTheReferenceSizes() throws {
        // torchvision resnet18: 11,689,512 parameters; a 3×3 stem on one channel (576 instead of 9,408)
        // and 10 classes (5,130 instead of 513,000)
        XCTAssertEqual(try Model.resnet18(seed: 0).parameterCount, 11_689_512 - 9_408 + 576 - 513_000 + 5_130)
        // ResNet-20 with 1×1 projections at the two stage changes, one input channel
        let r20 = try Model.resnet20(seed: 0)
        let convs = 16 * 9 + 6 * 16 * 16 * 9 + (32 * 16 * 9 + 5 * 32 * 32 * 9 + 32 * 16) + (64 * 32 * 9 + 5 * 64 * 64 * 9 + 64 * 32)
        let bns = 2 * (16 + 6 * 16 + 6 * 32 + 32 + 6 * 64 + 64)
        XCTAssertEqual(r20.parameterCount, convs + bns + 64 * 10 + 10)
        var g = SeededGenerator(seed: 1)
        let x = Tensor.uniform([2, 784], -1, 1, rng: &g)
        XCTAssertEqual(try r20.forward(x, training: true).shape, [2, 10])
        XCTAssertEqual(try r20.network.backward(Tensor.uniform([2, 10], -1, 1, rng: &g), needInputGradient: true)?.shape, [2, 1, 28, 28])
        XCTAssertTrue(r20.parameters.allSatisfy { $0.grad.scalars.contains { $0 != 0 } }, "every parameter got a gradient")
    }
}

/// The same work as Torch-Pruning 1.6 (scripts/compare_torch_pruning.py wrote the reference figures).
final class TorchPruningComparisonTests: XCTestCase {
    struct Reference: Decodable {
        let macs_before: Int
        let macs_after: Int
        let params_before: Int
        let params_after: Int
        let out_channels_after: [String: Int]
    }

    /// 50 % of the channels of every group by L1, classifier excluded: the kept channel counts of
    /// every convolution, the parameters and the MACs equal Torch-Pruning's MagnitudePruner's.
    func testResNet18HalfChannelsMatchesTorchPruning() throws {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "torch_pruning_resnet18", withExtension: "json", subdirectory: "Fixtures"))
        let ref = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: url))
        let m = try Model.resnet18(seed: 3)
        let dg = try DependencyGraph(m)
        XCTAssertEqual(dg.macs, ref.macs_before)
        XCTAssertEqual(m.parameterCount, ref.params_before)
        try dg.prune(amount: 0.5)
        try dg.removePrunedUnits()
        XCTAssertEqual(m.parameterCount, ref.params_after)
        XCTAssertEqual(try DependencyGraph(m).macs, ref.macs_after)
        var convs: [String: Int] = [:]
        for (name, layer) in m.network.namedLayers { if let c = layer as? Conv2d { convs[name.replacingOccurrences(of: ".body", with: "")] = c.outChannels } }
        XCTAssertEqual(convs, ref.out_channels_after)
    }
}

/// MobileNetV2 (issue 14): depthwise convolutions, inverted residuals, ReLU6, torchvision's names.
final class MobileNetTests: XCTestCase {
    func fixture(_ name: String) throws -> String {
        try XCTUnwrap(Bundle.module.url(forResource: name, withExtension: "safetensors", subdirectory: "Fixtures"), name).path
    }

    /// torchvision's mobilenet_v2(width_mult=0.25) with a stride-1 one-channel stem
    /// (scripts/make_torchvision_fixtures.py) loads by name and gives PyTorch's logits.
    func testMobileNetV2LoadsATorchvisionStateDictAndMatchesItsLogits() throws {
        let path = try fixture("torch_mobilenetv2_narrow")
        let (model, _) = try ModelFile.load(path)
        XCTAssertEqual(model.architecture, "mobilenetv2")
        let io = try SafeTensors.read(try fixture("torch_mobilenetv2_io")).tensors
        let x = try XCTUnwrap(io["x"]), want = try XCTUnwrap(io["logits"])
        let y = try model.forward(x.reshaped([3, 784]), training: false)
        let scale = want.scalars.map(abs).max()!
        let worst = zip(y.scalars, want.scalars).map { abs($0 - $1) }.max()!
        XCTAssertLessThanOrEqual(worst, 1e-4 * scale, "max |Δlogit| \(worst) against scale \(scale)")
        XCTAssertEqual(Set(ModelFile.stateDict(model).keys), Set(try SafeTensors.read(path).tensors.keys))
    }

    func testFreshMobileNetV2MatchesTorchvisionSizeAndMACs() throws {
        // torchvision mobilenet_v2(num_classes=10) with Conv2d(1, 32, 3, 1, 1, bias=False) as its stem:
        // 2,236,106 parameters, 23,063,114 MACs on 1×28×28 by Torch-Pruning's count_ops_and_params, which
        // skips torchvision's functional pooling (1280 × 2 × 2 = 5,120 reads) that PruneKit counts
        let m = try Model.mobilenetv2(seed: 0)
        XCTAssertEqual(m.parameterCount, 2_236_106)
        XCTAssertEqual(try DependencyGraph(m).macs, 23_063_114 + 5_120)
    }

    /// Depthwise channels go with the expansion that feeds them and the projection that reads them;
    /// residual blocks of a stage share their output channels; the smaller model computes what the
    /// masked one did.
    func testMobileNetV2StructuralPruning() throws {
        let (m, _) = try ModelFile.load(try fixture("torch_mobilenetv2_narrow"))
        let x = try XCTUnwrap(try SafeTensors.read(try fixture("torch_mobilenetv2_io")).tensors["x"]).reshaped([3, 784])
        let dg = try DependencyGraph(m)
        let expansion = try XCTUnwrap(dg.groups.first { $0.producers == ["features.2.conv.0.0"] })
        XCTAssertEqual(expansion.consumers, ["features.2.conv.2"], "the depthwise conv is inside the unit, the projection reads it")
        XCTAssertTrue(dg.groups.contains { $0.producers == ["features.2.conv.2", "features.3.conv.2"] }, "a stage's residual outputs")
        try dg.prune(amount: 0.5)
        let masked = try m.forward(x, training: false)
        let before = m.parameterCount
        try dg.removePrunedUnits()
        XCTAssertLessThan(m.parameterCount, before)
        assertClose(try m.forward(x, training: false).scalars, masked.scalars, rtol: 1e-4, atol: 1e-6, "mobilenet removed vs masked")
        // the pruned file saves and loads (widths from the weights)
        let path = NSTemporaryDirectory() + "pk-mbv2-\(UUID().uuidString).safetensors"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try ModelFile.save(m, to: path)
        assertClose(try ModelFile.load(path).model.forward(x, training: false).scalars, masked.scalars, rtol: 1e-4, atol: 1e-6, "reloaded")
    }
}
