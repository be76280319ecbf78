// The remaining kernel families, each on a shape PruneKit's models run: BatchNorm (training and
// evaluation forward, backward), max and average pooling, element-wise activations and the
// residual add + ReLU, softmax cross-entropy, an unfused Adam step, the sparse direct convolution
// of CSR weights, and SparseGPT's column sweep. MB/s count each operation's compulsory reads and
// writes; MFLOP/s the multiply-adds it does.
import Benchmark
import CPruneKernels
import PruneKit

func layerBenchmarks() {
    // a ResNet stage's activations: 64 images × 64 channels × 28×28
    let (n, c, hw) = (64, 64, 28)
    let count = n * c * hw * hw
    let act = Double(count) * 4
    func input(_ seed: UInt64) -> Tensor {
        var g = SeededGenerator(seed: seed)
        return Tensor.uniform([n, c, hw, hw], -1, 1, rng: &g)
    }
    for training in [true, false] {
        benchmark("batchnorm.forward \(training ? "training" : "evaluation") \(n)×\(c)×\(hw)×\(hw)", .bytes((training ? 3 : 2) * act)) {
            let bn = try BatchNorm(c), x = input(1)
            return Timed(call: { _ = try bn.forward(x, training: training) })
        }
    }
    benchmark("batchnorm.backward \(n)×\(c)×\(hw)×\(hw)", .bytes(4 * act)) {
        let bn = try BatchNorm(c), x = input(1), dy = input(2)
        _ = try bn.forward(x, training: true)
        return Timed(call: { _ = try bn.backward(dy, needInputGradient: true) })
    }
    benchmark("maxpool2d.forward 2×2 \(n)×\(c)×\(hw)×\(hw)", .bytes(1.25 * act)) {
        let pool = try MaxPool2d(2), x = input(1)
        return Timed(call: { _ = try pool.forward(x, training: true) })
    }
    benchmark("avgpool2d.forward 2×2 \(n)×\(c)×\(hw)×\(hw)", .bytes(1.25 * act)) {
        let pool = try AvgPool2d(2), x = input(1)
        return Timed(call: { _ = try pool.forward(x, training: false) })
    }
    benchmark("relu.forward \(n)×\(c)×\(hw)×\(hw)", .bytes(2 * act)) {
        let relu = ReLU(), x = input(1)
        return Timed(call: { _ = try relu.forward(x, training: false) })
    }
    benchmark("add+relu.forward \(n)×\(c)×\(hw)×\(hw)", .bytes(3 * act)) {
        // a residual block's sum and ReLU, one pass at inference (the graph links them)
        let g = try Graph([("add", Add(), [Graph.inputName, Graph.inputName]), ("relu", ReLU(), ["add"])])
        let x = input(1)
        return Timed(call: { _ = try g.forward(x, training: false) })
    }
    for kind in [Activation.Kind.hardswish, .silu, .sigmoid] {
        benchmark("activation.forward \(kind.rawValue) \(n)×\(c)×\(hw)×\(hw)", .bytes(2 * act)) {
            let a = Activation(kind), x = input(1)
            return Timed(call: { _ = try a.forward(x, training: false) })
        }
        benchmark("activation.backward \(kind.rawValue) \(n)×\(c)×\(hw)×\(hw)", .bytes(3 * act)) {
            let a = Activation(kind), x = input(1), dy = input(2)
            _ = try a.forward(x, training: true)
            return Timed(call: { _ = try a.backward(dy, needInputGradient: true) })
        }
    }
    benchmark("softmax_xent B1024×10", .bytes(1024 * 10 * 8)) {
        let logits = Floats(1024 * 10, seed: 1), dlogits = Floats(1024 * 10)
        var g = SeededGenerator(seed: 2)
        let labels = (0..<1024).map { _ in Int32(g.nextUnitFloat() * 10) }
        var loss: Float = 0
        var correct: Int64 = 0
        return Timed(call: {
            try check(pk_softmax_xent_f32(1024, 10, logits.pointer, labels, &loss, dlogits.pointer, &correct))
            _ = (logits, dlogits)
        })
    }
    let weights = 4_000_000
    benchmark("adam.step (unfused) \(weights / 1_000_000)M weights, 90% masked", .bytes(Double(weights) * 25)) {
        // reads g, w, m, v and the mask, writes w, m, v
        let g = Floats(weights, seed: 1), w = Floats(weights, seed: 2), m = Floats(weights, seed: 3), v = Floats(weights, seed: 4)
        for i in 0..<weights { v.pointer[i] = abs(v.pointer[i]) }
        let mask = Bytes(weights, sparsity: 0.9)
        var t: Int64 = 0
        return Timed(call: {
            t += 1
            try check(pk_adam_step_f32(Int64(weights), 1e-3, 0.9, 0.999, 1e-8, 0, 0, t, mask.pointer, g.pointer, w.pointer,
                                       m.pointer, v.pointer))
            _ = (g, w, m, v, mask)
        })
    }
    // the sparse direct convolution: a CSR weight at inference (no column matrix)
    let flops3x3 = 2 * Double(n * c * hw * hw) * Double(c * 9)
    benchmark("conv2d.forward csr 90% B\(n) \(c)→\(c) 3×3 on \(hw)×\(hw)", .flops(flops3x3)) {
        var g = SeededGenerator(seed: 3)
        let conv = try Conv2d(weight: Tensor.uniform([c, c, 3, 3], -0.1, 0.1, rng: &g), bias: Tensor.uniform([c], -0.1, 0.1, rng: &g),
                              padding: 1)
        try Prune.l1Unstructured(conv.weight, amount: .fraction(0.9))
        conv.execution = .format(.csr)
        let x = input(1)
        return Timed(call: { _ = try conv.forward(x, training: false) },
                     pending: { conv.weight.compressed == nil ? "compressing the weight" : nil })
    }
    // SparseGPT: 50% of a 1536 × 384 FFN weight, Gram matrix of 512 calibration rows
    let (rows, cols) = (1536, 384)
    benchmark("sparsegpt 50% \(rows)×\(cols)", .flops(2 * Double(rows) * Double(cols) * Double(cols))) {
        let x = Floats(512 * cols, seed: 1), w0 = Floats(rows * cols, seed: 2), w = Floats(rows * cols)
        let gram = Floats(cols * cols)
        for i in 0..<(cols * cols) { gram.pointer[i] = 0 }
        try check(pk_gram_acc_f32(512, Int64(cols), x.pointer, Int64(cols), gram.pointer))
        let mask = Bytes(rows * cols, sparsity: 0)
        return Timed(call: {
            try check(pk_sparsegpt_f32(Int64(rows), Int64(cols), w.pointer, gram.pointer, 0.01, 0.5, 0, 0, 128, mask.pointer))
        }, before: {
            w.pointer.update(from: w0.pointer, count: rows * cols)
            mask.pointer.update(repeating: 1, count: rows * cols)
        })
    }
}
