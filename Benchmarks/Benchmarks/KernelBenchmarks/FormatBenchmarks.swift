// The compressed weight formats (CSR, packed N:M, block-sparse) and the Linear layer on each:
// forward, input gradient, weight gradient (alone, in the format's order), the weight gradient fused
// with an Adam step, a whole training step, and compression itself as its own benchmark. The
// dense-masked Linear on the same shape is the baseline. MFLOP/s are effective: the dense product's
// 2·B·I·O per call, so rates compare directly with the dense baseline's.
import Benchmark
import PruneKit

/// A Linear (I → O) whose weight is pruned into `structure`: "dense" (no mask), "unstructured"
/// (random, at `sparsity`), "N:M" (by magnitude) or "block:RxC" (blocks by norm, at `sparsity`).
func prunedLinear(_ i: Int, _ o: Int, structure: String, sparsity: Double) throws -> Linear {
    var g = SeededGenerator(seed: 1)
    let l = try Linear(i, o, rng: &g)
    switch structure {
    case "dense": break
    case "unstructured": try Prune.randomUnstructured(l.weight, amount: .fraction(sparsity), seed: 2)
    default:
        switch CompressedFormat(structure) {
        case let .nm(n, m)?: try Prune.nm(l.weight, n: n, m: m)
        case let .block(r, c)?: try Prune.block([l.weight], blockRows: r, blockCols: c, amount: .fraction(sparsity))
        default: fatalError("unknown structure \(structure)")
        }
    }
    return l
}

/// The weight gradient fused with Adam's step (and the bias gradient, whose step is unfused and
/// tiny): the Linear's backward without dX, the step armed, after one training forward in setup.
func fusedUpdate(_ l: Linear, batch b: Int) throws -> Timed {
    var g = SeededGenerator(seed: 2)
    let x = Tensor.uniform([b, l.inFeatures], -1, 1, rng: &g), dy = Tensor.uniform([b, l.outFeatures], -1, 1, rng: &g)
    let opt = try Adam()
    _ = try l.forward(x, training: true)
    let compressing = l.execution != .dense && l.weight.isPruned
    return Timed(call: {
        opt.prepareFusedStep(l.parameters)
        _ = try l.backward(dy, needInputGradient: false)
        try opt.step(l.parameters)
    }, pending: { compressing && l.weight.compressed == nil ? "compressing the weight" : nil })
}

/// The format a structure compresses to ("unstructured" → CSR).
func format(of structure: String) -> CompressedFormat {
    CompressedFormat(structure == "unstructured" ? "csr" : structure)!
}

func formatBenchmarks() {
    // (batch, in, out): the large layer of issue 16 and the sentence encoder's FFN at 512 tokens
    let shapes = [(256, 4096, 4096), (512, 384, 1536), (512, 1536, 384)]
    let structures: [(String, Double)] = [
        ("dense", 0), ("unstructured", 0.9), ("2:4", 0.5), ("1:4", 0.75), ("2:8", 0.75),
        ("block:4x4", 0.9), ("block:8x8", 0.9), ("block:16x1", 0.9), ("block:1x16", 0.9),
    ]
    for (b, i, o) in shapes {
        let flops = 2 * Double(b) * Double(i) * Double(o)
        for (structure, sparsity) in structures {
            // the encoder shapes only for the formats that matter there
            if i != 4096 && !["dense", "unstructured", "2:4", "block:4x4"].contains(structure) { continue }
            let tag = structure == "dense" ? "dense B\(b) \(i)→\(o)"
                : structure == "unstructured" || structure.hasPrefix("block")
                ? "\(structure) \(percent(sparsity)) B\(b) \(i)→\(o)" : "\(structure) B\(b) \(i)→\(o)"
            let execution: Execution = structure == "dense" ? .dense : .format(format(of: structure))

            benchmark("linear.forward \(tag)", .flops(flops)) {
                let l = try prunedLinear(i, o, structure: structure, sparsity: sparsity)
                l.execution = execution
                var g = SeededGenerator(seed: 2)
                let x = Tensor.uniform([b, i], -1, 1, rng: &g)
                return Timed(call: { _ = try l.forward(x, training: false) },
                             pending: { structure != "dense" && l.weight.compressed == nil ? "compressing the weight" : nil })
            }
            benchmark("linear.step(adam) \(tag)", .flops(3 * flops)) {
                // forward, backward (dX and dW, the step fused into dW), Adam: what `prunekit bench step` times
                let l = try prunedLinear(i, o, structure: structure, sparsity: sparsity)
                l.execution = execution
                var g = SeededGenerator(seed: 2)
                let x = Tensor.uniform([b, i], -1, 1, rng: &g), dy = Tensor.uniform([b, o], -1, 1, rng: &g)
                let opt = try Adam()
                return Timed(call: {
                    _ = try l.forward(x, training: true)
                    opt.prepareFusedStep(l.parameters)
                    _ = try l.backward(dy, needInputGradient: true)
                    try opt.step(l.parameters)
                }, pending: { structure != "dense" && l.weight.compressed == nil ? "compressing the weight" : nil })
            }
            benchmark("linear.fusedUpdate(adam) \(tag)", .flops(flops)) {
                let l = try prunedLinear(i, o, structure: structure, sparsity: sparsity)
                l.execution = execution
                return try fusedUpdate(l, batch: b)
            }
            guard structure != "dense" else { continue }
            let f = format(of: structure)
            benchmark("format.forward \(tag)", .flops(flops)) {
                // the format's kernel alone, into a buffer allocated once
                let l = try prunedLinear(i, o, structure: structure, sparsity: sparsity)
                let c = try f.compress(l.weight.value, mask: l.weight.mask)
                var g = SeededGenerator(seed: 2)
                let x = FloatStorage(Tensor.uniform([b, i], -1, 1, rng: &g).scalars), y = FloatStorage(count: b * o)
                let bias = FloatStorage(l.bias!.value.scalars)
                return Timed(call: { try c.forward(x, batch: b, bias: bias, into: y, features: false) })
            }
            benchmark("format.inputGradient \(tag)", .flops(flops)) {
                let l = try prunedLinear(i, o, structure: structure, sparsity: sparsity)
                let c = try f.compress(l.weight.value, mask: l.weight.mask)
                var g = SeededGenerator(seed: 3)
                let dy = FloatStorage(Tensor.uniform([b, o], -1, 1, rng: &g).scalars), dx = FloatStorage(count: b * i)
                return Timed(call: { try c.inputGradient(dy, batch: b, into: dx, features: false) })
            }
            benchmark("format.weightGradient \(tag)", .flops(flops)) {
                // the gradient at the kept entries, in the format's order (no dense scatter)
                let l = try prunedLinear(i, o, structure: structure, sparsity: sparsity)
                let c = try f.compress(l.weight.value, mask: l.weight.mask)
                var g = SeededGenerator(seed: 3)
                let dy = FloatStorage(Tensor.uniform([b, o], -1, 1, rng: &g).scalars)
                let x = FloatStorage(Tensor.uniform([b, i], -1, 1, rng: &g).scalars), grad = FloatStorage(count: c.stateCount)
                return Timed(call: { try c.weightGradient(dy: dy, x: x, batch: b, step: nil, grad: grad, features: false) })
            }
            // compression is one-time work: its own benchmark, bytes = the dense weight and mask read
            benchmark("linear.compress \(tag)", .bytes(Double(i * o) * 5)) {
                let l = try prunedLinear(i, o, structure: structure, sparsity: sparsity)
                let w = l.weight.value, m = l.weight.mask
                return Timed(call: { _ = try f.compress(w, mask: m) })
            }
        }
    }
}
