// Masked Linear forward / backward / training step and Conv2d on the shapes of issue 3, dense
// and 90% sparse, each sparse case on both paths (dense-masked GEMM and the sparse kernels). Throughput is reported by package-benchmark as time per iteration; divide
// 2·B·I·O by it for GFLOP/s (`prunekit bench gemm` prints that directly).
import Benchmark
import PruneKit

func maskedLinear(_ i: Int, _ o: Int, sparsity: Double, execution: Execution = .dense) throws -> Linear {
    var g = SeededGenerator(seed: 1)
    let layer = try Linear(i, o, rng: &g)
    layer.execution = execution
    if sparsity > 0 {
        try layer.weight.setMask(Mask(shape: [o, i], kept: (0..<(i * o)).map { _ in Double(g.nextUnitFloat()) >= sparsity }))
    }
    return layer
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .throughput], maxDuration: .seconds(3), maxIterations: 200)
    for (b, i, o) in [(128, 784, 300), (256, 1024, 1024), (256, 4096, 4096)] {
        for (s, e) in [(0.0, Execution.dense), (0.9, .dense), (0.9, .sparse)] {
            Benchmark("linear.forward B\(b) \(i)→\(o) sparsity \(s) \(e)") { bench in
                let layer = try maskedLinear(i, o, sparsity: s, execution: e)
                var g = SeededGenerator(seed: 2)
                let x = Tensor.uniform([b, i], -1, 1, rng: &g)
                bench.startMeasurement()
                for _ in bench.scaledIterations { blackHole(try layer.forward(x, training: false)) }
            }
            Benchmark("linear.step(adam) B\(b) \(i)→\(o) sparsity \(s) \(e)") { bench in
                let layer = try maskedLinear(i, o, sparsity: s, execution: e)
                var g = SeededGenerator(seed: 2)
                let x = Tensor.uniform([b, i], -1, 1, rng: &g)
                let dy = Tensor.uniform([b, o], -1, 1, rng: &g)
                let opt = try Adam()
                bench.startMeasurement()
                for _ in bench.scaledIterations {
                    _ = try layer.forward(x, training: true)
                    blackHole(try layer.backward(dy, needInputGradient: true))
                    try opt.step(layer.parameters)
                }
            }
        }
    }
    Benchmark("conv2d.forward+backward B128 32→64 5×5 on 12×12") { bench in
        var g = SeededGenerator(seed: 3)
        let conv = try Conv2d(32, 64, kernelSize: 5, rng: &g)
        let x = Tensor.uniform([128, 32, 12, 12], -1, 1, rng: &g)
        let dy = Tensor.uniform([128, 64, 8, 8], -1, 1, rng: &g)
        bench.startMeasurement()
        for _ in bench.scaledIterations {
            _ = try conv.forward(x, training: true)
            blackHole(try conv.backward(dy, needInputGradient: true))
        }
    }
}
