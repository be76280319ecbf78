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
