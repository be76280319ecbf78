import XCTest
@testable import PruneKit

/// Comparisons with fixtures written by PyTorch (scripts/make_fixtures.py, torch version in metadata).
final class PyTorchFixtureTests: XCTestCase {
    func fixture(_ name: String) throws -> [String: Tensor] {
        guard let url = Bundle.module.url(forResource: name, withExtension: "safetensors", subdirectory: "Fixtures") else {
            XCTFail("missing fixture \(name)")
            throw CocoaError(.fileNoSuchFile)
        }
        return try SafeTensors.read(url.path).tensors
    }

    func testMaskedLinearForwardBackwardAndAdamStep() throws {
        let t = try fixture("masked_linear_adam")
        let layer = try Linear(weight: t["weight"]!, bias: t["bias"]!)
        try layer.weight.setMask(Mask(shape: t["mask"]!.shape, values: t["mask"]!.scalars))
        let y = try layer.forward(t["x"]!, training: true)
        assertClose(y.scalars, t["y"]!.scalars, rtol: 1e-5, atol: 1e-5, "forward")
        let dx = try layer.backward(t["dy"]!, needInputGradient: true)!
        assertClose(dx.scalars, t["dx"]!.scalars, rtol: 1e-5, atol: 1e-5, "input gradient")
        assertClose(layer.weight.grad.scalars, t["dweight"]!.scalars, rtol: 1e-5, atol: 1e-5, "weight gradient (masked)")
        assertClose(layer.bias!.grad.scalars, t["dbias"]!.scalars, rtol: 1e-5, atol: 1e-5, "bias gradient")
        try Adam(learningRate: 1e-2).step(layer.parameters)
        assertClose(layer.weight.value.scalars, t["weight_after_adam"]!.scalars, rtol: 1e-5, atol: 1e-6, "weight after Adam")
        assertClose(layer.bias!.value.scalars, t["bias_after_adam"]!.scalars, rtol: 1e-5, atol: 1e-6, "bias after Adam")
    }
}

/// Models crossing between PyTorch and PruneKit in both directions.
final class InteropTests: XCTestCase {
    func url(_ name: String) throws -> URL {
        try XCTUnwrap(Bundle.module.url(forResource: name, withExtension: "safetensors", subdirectory: "Fixtures"), name)
    }

    func testPyTorchTrainedAndPrunedModelsGiveTheSameLogits() throws {
        for arch in ["mlp", "cnn"] {
            let io = try SafeTensors.read(try url("torch_\(arch)_logits").path).tensors
            for form in ["pruned", "plain"] {
                let (model, _) = try ModelFile.load(try url("torch_\(arch)_\(form)").path)
                XCTAssertEqual(model.architecture, arch)
                if form == "pruned" { XCTAssertTrue(model.prunableWeights.allSatisfy { $0.parameter.isPruned }) }
                let x = io["x"]!
                let logits = try model.forward(x.reshaped([x.shape[0]] + model.inputShape))
                assertClose(logits.scalars, io["logits"]!.scalars, rtol: 1e-4, atol: 1e-4, "\(arch) \(form)")
            }
            // global pruning at 60% as torch did it: the masks hold exactly 60% zeros overall
            let (m, _) = try ModelFile.load(try url("torch_\(arch)_pruned").path)
            XCTAssertEqual(SparsityReport(model: m).sparsity, 0.6, accuracy: 1e-4)
        }
    }

    /// The committed file that scripts/check_torch_interop.py loads into PyTorch is exactly what
    /// PruneKit writes today (PRUNEKIT_WRITE_FIXTURES=1 rewrites it).
    func testPruneKitPrunedModelFixtureIsCurrent() throws {
        let m = Model.mlp(seed: 21)
        try ModelPruner.prune(m, PruningRequest(method: .l1, scope: .global, amount: 0.7))
        var g = SeededGenerator(seed: 22)
        let x = Tensor.uniform([8, 784], -1, 1, rng: &g)
        let logits = try m.forward(x)
        let dir = NSTemporaryDirectory() + "interop-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ModelFile.save(m, to: dir + "/model.safetensors", layout: .pytorchPruned)
        try SafeTensors.write(["x": x, "logits": logits], to: dir + "/logits.safetensors")
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path
        if ProcessInfo.processInfo.environment["PRUNEKIT_WRITE_FIXTURES"] == "1" {
            for f in ["model", "logits"] {
                let dst = fixtures + "/prunekit_mlp_\(f).safetensors"
                try? FileManager.default.removeItem(atPath: dst)
                try FileManager.default.copyItem(atPath: dir + "/\(f).safetensors", toPath: dst)
            }
            // comparing the fixture with itself would report a pass that checked nothing
            throw XCTSkip("fixtures rewritten: check the diff of Fixtures/prunekit_mlp_*.safetensors")
        }
        for f in ["model", "logits"] {
            let committed = try SafeTensors.read(try url("prunekit_mlp_\(f)").path).tensors
            let now = try SafeTensors.read(dir + "/\(f).safetensors").tensors
            XCTAssertEqual(Set(committed.keys), Set(now.keys), f)
            for (k, v) in now {
                // weights bit for bit; logits within rounding (the layers may run dense or sparse)
                if f == "model" { XCTAssertEqual(committed[k], v, "\(f): \(k) changed: rerun with PRUNEKIT_WRITE_FIXTURES=1") }
                else { assertClose(committed[k]?.scalars ?? [], v.scalars, rtol: 1e-5, atol: 1e-6, "\(f): \(k)") }
            }
        }
        XCTAssertNotNil(try SafeTensors.read(dir + "/model.safetensors").tensors["fc1.weight_orig"])
    }
}
