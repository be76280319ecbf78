// Masked GEMM: the forward product and both backward products (C kernels alone), the weight
// gradient fused with Adam's step (the masked Linear's fused update), and OpenBLAS's dense SGEMM on
// the same shape (the same-machine anchor). Shapes: LeNet's first layer, a square
// layer, and a large layer, dense (sparsity 0%) and with a random 90% mask (still the dense-masked
// kernels: the mask is applied while packing).
import Benchmark
import CPruneKernels
import PruneKit

let gemmShapes = [(128, 784, 300), (256, 1024, 1024), (256, 4096, 4096)]

func gemmBenchmarks() {
    for (b, i, o) in gemmShapes {
        let flops = 2 * Double(b) * Double(i) * Double(o)
        for s in [0.0, 0.9] {
            let tag = "B\(b) \(i)→\(o) sparsity \(percent(s))"
            benchmark("gemm.forward \(tag)", .flops(flops)) {
                // Y (b×o) = X (b×i) · (W ⊙ M)ᵀ + bias
                let x = Floats(b * i, seed: 1), w = Floats(o * i, seed: 2), bias = Floats(o, seed: 3), y = Floats(b * o)
                let m = s > 0 ? Bytes(o * i, sparsity: s) : nil
                return Timed(call: {
                    try check(pk_linear_forward_f32(Int64(b), Int64(o), Int64(i), x.pointer, Int64(i), w.pointer, Int64(i),
                                                    m?.pointer, Int64(i), bias.pointer, y.pointer, Int64(o)))
                    _ = (x, w, bias, y, m)
                })
            }
            benchmark("gemm.inputGradient \(tag)", .flops(flops)) {
                // dX (b×i) = dY (b×o) · (W ⊙ M)
                let dy = Floats(b * o, seed: 4), w = Floats(o * i, seed: 2), dx = Floats(b * i)
                let m = s > 0 ? Bytes(o * i, sparsity: s) : nil
                return Timed(call: {
                    try check(pk_gemm_masked_nn_f32(Int64(b), Int64(i), Int64(o), 1, dy.pointer, Int64(o), w.pointer, Int64(i),
                                                    m?.pointer, Int64(i), 0, dx.pointer, Int64(i)))
                    _ = (dy, w, dx, m)
                })
            }
            benchmark("gemm.weightGradient \(tag)", .flops(flops)) {
                // dW (o×i) = dYᵀ (o×b) · X (b×i) ⊙ M
                let dy = Floats(b * o, seed: 4), x = Floats(b * i, seed: 1), dw = Floats(o * i)
                let m = s > 0 ? Bytes(o * i, sparsity: s) : nil
                return Timed(call: {
                    try check(pk_gemm_masked_tn_f32(Int64(o), Int64(i), Int64(b), 1, dy.pointer, Int64(o), x.pointer, Int64(i),
                                                    m?.pointer, Int64(i), 0, dw.pointer, Int64(i)))
                    _ = (dy, x, dw, m)
                })
            }
        }
        for s in [0.0, 0.9] {
            benchmark("gemm.fusedUpdate(adam) B\(b) \(i)→\(o) sparsity \(percent(s))", .flops(flops)) {
                // the third backward product: dW = dYᵀX ⊙ M fused with Adam's step on W (dense-masked)
                let l = try prunedLinear(i, o, structure: s > 0 ? "unstructured" : "dense", sparsity: s)
                l.execution = .dense
                return try fusedUpdate(l, batch: b)
            }
        }
        benchmark("openblas.sgemm B\(b) \(i)→\(o)", .flops(flops)) {
            // the dense anchor: OpenBLAS's SGEMM Y = X · Wᵀ (its threads are its own pool)
            var g = SeededGenerator(seed: 1)
            let x = FloatStorage(Tensor.uniform([b, i], -1, 1, rng: &g).scalars)
            let w = FloatStorage(Tensor.uniform([o, i], -1, 1, rng: &g).scalars)
            let y = FloatStorage(count: b * o)
            return Timed(call: { Runtime.openBLASGemmNT(m: b, n: o, k: i, a: x, b: w, c: y) })
        }
    }
}
