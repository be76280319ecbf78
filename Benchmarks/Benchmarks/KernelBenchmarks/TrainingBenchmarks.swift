// End to end: one training step of the Fashion-MNIST models (forward, softmax cross-entropy,
// backward with the optimizer step fused where the layers allow it, Adam), dense and with 90% of
// every weight pruned (random masks; `.automatic` execution picks dense-masked or sparse per layer
// by the crossover measured in setup). MFLOP/s count 3 × the dense model's forward work, the
// forward's multiply-accumulates counted by DependencyGraph.macs (Torch-Pruning's convention).
import Benchmark
import PruneKit

func trainingBenchmarks() {
    for (arch, b) in [("mlp", 128), ("cnn", 64), ("resnet20", 32)] {
        guard let count = try? DependencyGraph(Model.make(arch, seed: 1)).macs else {
            fail(nil, "train.step(adam) \(arch): the model's multiply-accumulates could not be counted")
            continue
        }
        let macs = Double(count)
        for sparsity in [0.0, 0.9] {
            benchmark("train.step(adam) \(arch) B\(b) sparsity \(percent(sparsity))", .flops(6 * macs * Double(b))) {
                let model = try Model.make(arch, seed: 1)
                if sparsity > 0 {
                    for (k, p) in model.parameters.enumerated() where p.isPrunable {
                        try Prune.randomUnstructured(p, amount: .fraction(sparsity), seed: UInt64(k + 1))
                    }
                }
                var g = SeededGenerator(seed: 2)
                let x = Tensor.uniform([b] + model.inputShape, 0, 1, rng: &g)
                let labels = (0..<b).map { _ in Int32(g.nextUnitFloat() * 10) }
                let opt = try Adam()
                _ = SparseCrossover.density // the crossover is measured once per process: here, not in a sample
                return Timed(call: {
                    let logits = try model.forward(x, training: true)
                    let loss = try SoftmaxCrossEntropy.compute(logits: logits, labels: labels)
                    opt.prepareFusedStep(model.parameters)
                    _ = try model.network.backward(loss.gradient, needInputGradient: false)
                    try opt.step(model.parameters)
                })
            }
        }
    }
}
