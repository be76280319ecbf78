import ArgumentParser
import Foundation
import PruneKit

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks of the kernels (medians of repeated runs; figures, never pass/fail).",
        subcommands: [BenchGemm.self, BenchStep.self])
}

struct ShapeOptions: ParsableArguments {
    @Option(help: "Batch rows B.") var batch: Int = 256
    @Option(name: .customLong("in"), help: "Input features I.") var inFeatures: Int = 1024
    @Option(name: .customLong("out"), help: "Output features O.") var outFeatures: Int = 1024
    @Option(help: "Fraction of weights pruned (random unstructured mask).") var sparsity: Double = 0
    @Option(name: .customLong("repeat"), help: "Timed repeats (median reported).") var repeats: Int = 9
    @Option(help: "Seconds spent measuring the FMA peak (0: skip).") var peakSeconds: Double = 0.5
    @Flag(help: "Print one JSON object.") var json = false
    @OptionGroup var threadOption: ThreadOption

    func validate() throws {
        guard batch >= 1, inFeatures >= 1, outFeatures >= 1 else { throw ValidationError("--batch, --in and --out must be at least 1") }
        guard sparsity >= 0, sparsity < 1 else { throw ValidationError("--sparsity must be in [0, 1)") }
        guard repeats >= 1 else { throw ValidationError("--repeat must be at least 1") }
    }

    func layer() throws -> Linear {
        var g = SeededGenerator(seed: 1)
        let l = Linear(inFeatures, outFeatures, rng: &g)
        if sparsity > 0 {
            try l.weight.setMask(Mask(shape: [outFeatures, inFeatures],
                                      kept: (0..<(inFeatures * outFeatures)).map { _ in Double(g.nextUnitFloat()) >= sparsity }))
        }
        return l
    }

    func input() -> Tensor {
        var g = SeededGenerator(seed: 2)
        return Tensor.uniform([batch, inFeatures], -1, 1, rng: &g)
    }

    var flops: Double { 2 * Double(batch) * Double(inFeatures) * Double(outFeatures) }
}

/// Median wall time of `body` over `repeats` runs, after warm-up runs filling at least 0.2 s (the
/// CPU clock and the caches settle first).
func medianSeconds(_ repeats: Int, _ body: () throws -> Void) rethrows -> Double {
    let warm = DispatchTime.now().uptimeNanoseconds
    repeat { try body() } while DispatchTime.now().uptimeNanoseconds - warm < 200_000_000
    var times: [Double] = []
    for _ in 0..<repeats {
        let t0 = DispatchTime.now().uptimeNanoseconds
        try body()
        times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
    }
    times.sort()
    return times[times.count / 2]
}

struct BenchGemm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gemm", abstract: "Masked GEMM Y = X·(W ⊙ M)ᵀ + b, next to OpenBLAS's dense SGEMM in the same run.")
    @OptionGroup var shape: ShapeOptions
    @Flag(help: "Skip the OpenBLAS comparison.") var noOpenblas = false

    func run() throws {
        try guarded {
            try shape.threadOption.apply()
            let l = try shape.layer()
            let x = shape.input()
            let t = try medianSeconds(shape.repeats) { _ = try l.forward(x, training: false) }
            var result: [String: Any] = [
                "op": "masked_gemm_forward", "batch": shape.batch, "in": shape.inFeatures, "out": shape.outFeatures,
                "sparsity": shape.sparsity, "median_seconds": t, "gflops": shape.flops / t / 1e9,
                "threads": Runtime.threads, "isa": Runtime.isa, "openmp": Runtime.openMP,
            ]
            if !noOpenblas {
                let a = FloatStorage(x.scalars), b = FloatStorage(l.weight.value.scalars)
                let c = FloatStorage(count: shape.batch * shape.outFeatures)
                let tb = medianSeconds(shape.repeats) {
                    Runtime.openBLASGemmNT(m: shape.batch, n: shape.outFeatures, k: shape.inFeatures, a: a, b: b, c: c)
                }
                result["openblas_median_seconds"] = tb
                result["openblas_gflops"] = shape.flops / tb / 1e9
                result["openblas_core"] = Runtime.openBLASCoreName
                result["speedup_vs_openblas"] = tb / t
            }
            if shape.peakSeconds > 0 {
                let peak = Runtime.measurePeakGFLOPS(threads: Runtime.threads, seconds: shape.peakSeconds)
                result["peak_gflops"] = peak
                result["fraction_of_peak"] = peak > 0 ? shape.flops / t / 1e9 / peak : 0
            }
            report(result, json: shape.json)
        }
    }
}

struct BenchStep: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "step", abstract: "One masked Linear training step: forward, backward (dX, dW), optimizer.")
    @OptionGroup var shape: ShapeOptions
    @Option(help: "Optimizer: adam, adamw or sgd.") var optimizer: String = "adam"
    @Flag(help: "Unfused: materialise dW, then a separate optimizer pass.") var unfused = false

    func run() throws {
        try guarded {
            try shape.threadOption.apply()
            let l = try shape.layer()
            let x = shape.input()
            var g = SeededGenerator(seed: 3)
            let dy = Tensor.uniform([shape.batch, shape.outFeatures], -1, 1, rng: &g)
            let opt = try makeOptimizer(optimizer, lr: 1e-3)
            let t = try medianSeconds(shape.repeats) {
                _ = try l.forward(x, training: true)
                if !unfused { opt.prepareFusedStep(l.parameters) }
                _ = try l.backward(dy, needInputGradient: true)
                try opt.step(l.parameters)
            }
            var result: [String: Any] = [
                "op": "masked_linear_step", "optimizer": optimizer, "fused": !unfused, "path": "dense-masked",
                "batch": shape.batch, "in": shape.inFeatures, "out": shape.outFeatures, "sparsity": shape.sparsity,
                "median_seconds": t, "gflops": 3 * shape.flops / t / 1e9, "threads": Runtime.threads, "isa": Runtime.isa,
            ]
            if shape.peakSeconds > 0 {
                let peak = Runtime.measurePeakGFLOPS(threads: Runtime.threads, seconds: shape.peakSeconds)
                result["peak_gflops"] = peak
            }
            report(result, json: shape.json)
        }
    }
}

func report(_ r: [String: Any], json: Bool) {
    if json { printJSON(r); return }
    for k in r.keys.sorted() { print("\(k): \(r[k]!)") }
}
