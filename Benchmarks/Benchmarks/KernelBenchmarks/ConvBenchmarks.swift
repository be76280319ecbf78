// Convolution: inference forward (BatchNorm folded when linked, as models run it), and the training
// forward + backward (input and weight gradients) of the layer, on the shapes PruneKit's models use:
// ResNet's 3×3 stride-1 and stride-2 layers at 28×28 and 14×14, a 1×1 projection, the CNN's 5×5
// layer, and MobileNet's depthwise 3×3.
import Benchmark
import PruneKit

func convBenchmarks() {
    // (batch, in, out, kernel, stride, padding, groups, H = W)
    let shapes = [
        (64, 64, 64, 3, 1, 1, 1, 28), (64, 32, 32, 3, 1, 1, 1, 28), (64, 64, 128, 3, 2, 1, 1, 28),
        (64, 64, 128, 1, 2, 0, 1, 28), (128, 32, 64, 5, 1, 0, 1, 12), (64, 96, 96, 3, 1, 1, 96, 28),
    ]
    for (n, c, oc, k, s, p, groups, hw) in shapes {
        let ohw = (hw + 2 * p - k) / s + 1
        let flops = 2 * Double(n * oc * ohw * ohw) * Double(c / groups * k * k)
        let tag = "B\(n) \(c)→\(oc) \(k)×\(k)\(s > 1 ? " stride \(s)" : "")\(groups > 1 ? " depthwise" : "") on \(hw)×\(hw)"
        func make() throws -> (Conv2d, Tensor, Tensor) {
            var g = SeededGenerator(seed: 3)
            let conv = try Conv2d(weight: Tensor.uniform([oc, c / groups, k, k], -0.1, 0.1, rng: &g),
                                  bias: Tensor.uniform([oc], -0.1, 0.1, rng: &g), stride: s, padding: p, groups: groups)
            conv.execution = .dense
            return (conv, Tensor.uniform([n, c, hw, hw], -1, 1, rng: &g), Tensor.uniform([n, oc, ohw, ohw], -1, 1, rng: &g))
        }
        benchmark("conv2d.forward \(tag)", .flops(flops)) {
            let (conv, x, _) = try make()
            return Timed(call: { _ = try conv.forward(x, training: false) })
        }
        benchmark("conv2d.backward \(tag)", .flops(2 * flops)) {
            // input and weight gradients (and the bias's) of one training forward, run once in setup
            let (conv, x, dy) = try make()
            _ = try conv.forward(x, training: true)
            return Timed(call: { _ = try conv.backward(dy, needInputGradient: true) })
        }
    }
}
