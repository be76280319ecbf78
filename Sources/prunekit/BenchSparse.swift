import ArgumentParser
import Foundation
import PruneKit

/// --execution values: automatic, dense, sparse, or a compressed format (csr, 2:4, block:4x4, …).
struct ExecutionChoice: ExpressibleByArgument {
    let value: Execution
    init(_ value: Execution) { self.value = value }
    init?(argument: String) {
        guard let e = Execution(argument) else { return nil }
        value = e
    }
    static let automatic = ExecutionChoice(.automatic)
    var defaultValueDescription: String { value.description }
    static var allValueStrings: [String] { ["automatic", "dense", "sparse", "csr", "2:4", "1:4", "2:8", "block:4x4", "block:8x8"] }
}

/// --layout values.
enum LayoutChoice: String, ExpressibleByArgument, CaseIterable {
    case plain, pytorchPruned = "pytorch-pruned", compressed
    var value: ModelFile.Layout {
        switch self {
        case .plain: return .plain
        case .pytorchPruned: return .pytorchPruned
        case .compressed: return .compressed
        }
    }
}

/// Prunes a benchmark layer with the structure of `format`: a random mask at `sparsity` (CSR),
/// magnitude N:M, or blocks by norm at `sparsity`.
func pruneForBench(_ layer: Linear, _ format: CompressedFormat, sparsity: Double) throws {
    switch format {
    case .csr: try Prune.randomUnstructured(layer.weight, amount: .fraction(sparsity), seed: 2)
    case let .nm(n, m): try Prune.nm(layer.weight, n: n, m: m)
    case let .block(r, c): try Prune.block([layer.weight], blockRows: r, blockCols: c, amount: .fraction(sparsity))
    }
}

struct BenchSpmm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "spmm",
        abstract: "Compressed Linear forward Y = X·Wᵀ + b (and its backward) next to PruneKit's dense GEMM on the same shape, timed side by side.")
    @OptionGroup var shape: ShapeOptions
    @Option(help: """
        unstructured (random mask at --sparsity, CSR), N:M such as 2:4, 1:4, 2:8 (magnitude, packed N:M; \
        --sparsity ignored) or block:RxC such as block:4x4, block:16x1 (blocks by norm at --sparsity). \
        "block" alone is block:4x4.
        """)
    var structure: String = "unstructured"

    var format: CompressedFormat? { CompressedFormat(structure == "block" ? "block:4x4" : structure) }

    func validate() throws {
        guard format != nil else {
            throw ValidationError("--structure must be unstructured, N:M (for example 2:4) or block:RxC (for example block:4x4)")
        }
    }

    func run() throws {
        try guarded {
            try shape.threadOption.apply()
            let (batch, inFeatures, outFeatures, sparsity) = (shape.batch, shape.inFeatures, shape.outFeatures, shape.sparsity)
            var g = SeededGenerator(seed: 1)
            let layer = try Linear(inFeatures, outFeatures, rng: &g)
            let format = format!
            try pruneForBench(layer, format, sparsity: sparsity)
            let c = try format.compress(layer.weight.value, mask: layer.weight.mask)
            let x = Tensor.uniform([batch, inFeatures], -1, 1, rng: &g)
            let dy = Tensor.uniform([batch, outFeatures], -1, 1, rng: &g)
            let bias = layer.bias!.value
            // the weight gradient in the format's layout (no dense scatter timed); outputs allocated once,
            // so that only the kernels are timed (as in the package-benchmark suites)
            let gk = FloatStorage(count: c.stateCount), dys = FloatStorage(dy.scalars), xs = FloatStorage(x.scalars)
            let ys = FloatStorage(count: batch * outFeatures), dxs = FloatStorage(count: batch * inFeatures)
            let bs = FloatStorage(bias.scalars)
            // PruneKit's dense GEMM on the same shape (no mask: the dense baseline) and the compressed
            // kernels, interleaved so a drifting machine slows both alike
            let dense = try Linear(weight: layer.weight.value, bias: bias)
            dense.execution = .dense
            let t = try interleavedMedians(shape.repeats, [
                { _ = try dense.forward(x, training: true) }, // (keeps x for the backward timed next)
                { try c.forward(xs, batch: batch, bias: bs, into: ys, features: false) },
                { _ = try dense.backward(dy, needInputGradient: true) },
                { try c.inputGradient(dys, batch: batch, into: dxs, features: false) },
                { try c.weightGradient(dy: dys, x: xs, batch: batch, step: nil, grad: gk, features: false) },
            ])
            let (td, ts, tdb, tsi, tsw) = (t[0], t[1], t[2], t[3], t[4])
            let flops = 2 * Double(batch) * Double(inFeatures) * Double(outFeatures)
            let actual = 2 * Double(batch) * Double(c.nnz)
            var result: [String: Any] = [
                "op": "compressed_linear_forward", "structure": structure, "format": "\(format)", "batch": batch,
                "in": inFeatures, "out": outFeatures, "sparsity": 1 - Double(c.nnz) / Double(inFeatures * outFeatures),
                "nnz": c.nnz, "bytes_per_kept_weight": c.bytesPerKeptWeight,
                "median_seconds": ts, "dense_median_seconds": td, "speedup": td / ts,
                "effective_gflops": flops / ts / 1e9, "actual_gflops": actual / ts / 1e9, "dense_gflops": flops / td / 1e9,
                "input_grad_median_seconds": tsi, "weight_grad_median_seconds": tsw,
                "dense_backward_median_seconds": tdb, "backward_speedup": tdb / (tsi + tsw),
                "crossover_density": SparseCrossover.density, "threads": Runtime.threads, "isa": Runtime.isa]
            if shape.peakSeconds > 0 {
                let peak = Runtime.measurePeakGFLOPS(threads: Runtime.threads, seconds: shape.peakSeconds)
                result["peak_gflops"] = peak
                result["actual_fraction_of_peak"] = peak > 0 ? actual / ts / 1e9 / peak : 0
            }
            report(result, json: shape.json)
        }
    }
}
