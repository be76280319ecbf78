import ArgumentParser
import Foundation
import PruneKit

/// --execution values.
enum ExecutionChoice: String, ExpressibleByArgument, CaseIterable {
    case automatic, dense, sparse
    var value: Execution {
        switch self {
        case .automatic: return .automatic
        case .dense: return .dense
        case .sparse: return .sparse
        }
    }
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

struct BenchSpmm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "spmm",
        abstract: "Sparse Linear forward Y = X·Wᵀ on the compressed kept entries, next to PruneKit's dense GEMM on the same shape.")
    @OptionGroup var shape: ShapeOptions
    @Option(help: "unstructured (random), block (4×4 blocks by norm) or N:M such as 2:4 (--sparsity ignored).")
    var structure: String = "unstructured"

    func validate() throws {
        guard ["unstructured", "block"].contains(structure) || nm != nil else {
            throw ValidationError("--structure must be unstructured, block or N:M (for example 2:4)")
        }
    }

    var nm: (Int, Int)? {
        let parts = structure.split(separator: ":").compactMap { Int($0) }
        guard parts.count == 2, parts[1] >= 1, parts[0] >= 0, parts[0] <= parts[1] else { return nil }
        return (parts[0], parts[1])
    }

    func run() throws {
        try guarded {
            try shape.threadOption.apply()
            let (batch, inFeatures, outFeatures, sparsity, repeats) = (shape.batch, shape.inFeatures, shape.outFeatures,
                                                                       shape.sparsity, shape.repeats)
            var g = SeededGenerator(seed: 1)
            let layer = try Linear(inFeatures, outFeatures, rng: &g)
            switch structure {
            case "unstructured": try Prune.randomUnstructured(layer.weight, amount: .fraction(sparsity), seed: 2)
            case "block": try Prune.block([layer.weight], blockRows: 4, blockCols: 4, amount: .fraction(sparsity))
            default: try Prune.nm(layer.weight, n: nm!.0, m: nm!.1)
            }
            let x = Tensor.uniform([batch, inFeatures], -1, 1, rng: &g)
            let dy = Tensor.uniform([batch, outFeatures], -1, 1, rng: &g)
            // PruneKit's dense GEMM on the same shape (no mask: the dense baseline), then the sparse path
            let dense = try Linear(weight: layer.weight.value, bias: layer.bias!.value)
            dense.execution = .dense
            let td = try medianSeconds(repeats) { _ = try dense.forward(x, training: false) }
            layer.execution = .sparse
            let ts = try medianSeconds(repeats) { _ = try layer.forward(x, training: false) }
            _ = try layer.forward(x, training: true)
            let tb = try medianSeconds(repeats) { _ = try layer.backward(dy, needInputGradient: true) }
            let nnz = layer.weight.compressed!.nnz
            let flops = 2 * Double(batch) * Double(inFeatures) * Double(outFeatures)
            var result: [String: Any] = [
                "op": "spmm_forward", "structure": structure, "batch": batch, "in": inFeatures, "out": outFeatures,
                "sparsity": 1 - Double(nnz) / Double(inFeatures * outFeatures), "nnz": nnz,
                "median_seconds": ts, "dense_median_seconds": td, "speedup": td / ts,
                "sparse_gflops": 2 * Double(batch) * Double(nnz) / ts / 1e9, "dense_gflops": flops / td / 1e9,
                "backward_median_seconds": tb, "crossover_density": SparseCrossover.density,
                "threads": Runtime.threads, "isa": Runtime.isa]
            if shape.peakSeconds > 0 { result["peak_gflops"] = Runtime.measurePeakGFLOPS(threads: Runtime.threads, seconds: shape.peakSeconds) }
            report(result, json: shape.json)
        }
    }
}
