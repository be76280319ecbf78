import ArgumentParser
import Foundation
import PruneKit

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks of the kernels (medians of repeated runs; figures, never pass/fail).",
        subcommands: [BenchGemm.self, BenchStep.self, BenchSpmm.self, BenchTopK.self, BenchInfer.self, BenchAllreduce.self])
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
        let l = try Linear(inFeatures, outFeatures, rng: &g)
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

/// Median wall times of several bodies timed side by side: each warmed up as in `medianSeconds`,
/// then `repeats` rounds that run every body once, in order.
func interleavedMedians(_ repeats: Int, _ bodies: [() throws -> Void]) throws -> [Double] {
    for body in bodies {
        let warm = DispatchTime.now().uptimeNanoseconds
        repeat { try body() } while DispatchTime.now().uptimeNanoseconds - warm < 100_000_000
    }
    var times = [[Double]](repeating: [], count: bodies.count)
    for _ in 0..<repeats {
        for (i, body) in bodies.enumerated() {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try body()
            times[i].append(Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
        }
    }
    return times.map { $0.sorted()[$0.count / 2] }
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
            l.execution = .dense // this benchmark is the dense-masked GEMM; `bench spmm` is the sparse one
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
    @Option(help: "Weight execution: automatic (the measured crossover decides), dense, sparse, or a format (csr, 2:4, block:4x4, …).")
    var execution: ExecutionChoice = .automatic
    @Option(help: "Mask: unstructured (random at --sparsity), N:M such as 2:4, or block:RxC (blocks by norm at --sparsity).")
    var structure: String = "unstructured"

    func validate() throws {
        guard CompressedFormat(structure) != nil else { throw ValidationError("--structure must be unstructured, N:M or block:RxC") }
    }

    func run() throws {
        try guarded {
            try shape.threadOption.apply()
            let format = CompressedFormat(structure)!
            let l = try format == .csr ? shape.layer() : {
                var g = SeededGenerator(seed: 1)
                let l = try Linear(shape.inFeatures, shape.outFeatures, rng: &g)
                try pruneForBench(l, format, sparsity: shape.sparsity)
                return l
            }()
            l.execution = execution.value
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
            let params = l.parameters
            var result: [String: Any] = [
                "op": "masked_linear_step", "optimizer": optimizer, "fused": !unfused,
                "path": l.weight.compressed.map { "\($0.format)" } ?? "dense-masked", "crossover_density": SparseCrossover.density,
                "structure": structure, "execution": "\(execution.value)",
                "memory_bytes": params.reduce(0) { $0 + $1.residentBytes } + opt.stateBytes,
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

struct BenchTopK: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topk", abstract: "Global magnitude pruning: exact threshold and masks over many tensors.")
    @Option(help: "Total number of weights.") var weights: Int = 10_000_000
    @Option(help: "Number of tensors they are split into.") var tensors: Int = 1
    @Option(help: "Fraction of the weights to prune.") var amount: Double = 0.5
    @Option(name: .customLong("repeat"), help: "Timed repeats (median reported).") var repeats: Int = 7
    @Flag(help: "Print one JSON object.") var json = false
    @OptionGroup var threadOption: ThreadOption

    func validate() throws {
        guard weights >= 1, tensors >= 1, tensors <= weights else { throw ValidationError("--weights ≥ --tensors ≥ 1") }
        guard amount >= 0, amount <= 1 else { throw ValidationError("--amount must be in [0, 1]") }
        guard repeats >= 1 else { throw ValidationError("--repeat must be at least 1") }
    }

    func run() throws {
        try guarded {
            try threadOption.apply()
            // tensors of different sizes (a geometric spread), normal-ish weights
            var g = SeededGenerator(seed: 1)
            let ratios = (0..<tensors).map { pow(1.5, Double($0 % 5)) }
            let total = ratios.reduce(0, +)
            var sizes = ratios.map { max(1, Int(Double(weights) * $0 / total)) }
            sizes[0] += weights - sizes.reduce(0, +)
            let params = sizes.map { Parameter(Tensor.normal([$0], scale: 0.05, rng: &g), prunable: true) }
            // the kernel alone: threshold and new masks (fresh all-ones masks before each run)
            var times: [Double] = [], api: [Double] = []
            var extra = 0
            for r in 0..<(repeats + 1) {
                let masks = params.map { ByteStorage(count: $0.count, repeating: 1) }
                let t0 = DispatchTime.now().uptimeNanoseconds
                extra = try PruneKit.Prune.selectionOnly(params, masks: masks, amount: amount)
                if r > 0 { times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9) }
            }
            // the whole library call: selection, masks attached, pruned weights zeroed
            let originals = params.map(\.value)
            for r in 0..<(repeats + 1) {
                for (p, v) in zip(params, originals) { p.removeMask(); try p.assign(v) }
                let t0 = DispatchTime.now().uptimeNanoseconds
                try PruneKit.Prune.globalUnstructured(params, amount: .fraction(amount))
                if r > 0 { api.append(Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9) }
            }
            // one read pass over the same scores and masks (finiteness check, nonzero count): the floor
            let freshMasks = params.map { Mask(ones: $0.shape) }
            var reads: [Double] = []
            for r in 0..<(repeats + 1) {
                let t0 = DispatchTime.now().uptimeNanoseconds
                var kept = 0, finite = true
                for (p, m) in zip(params, freshMasks) { finite = finite && p.value.isFinite; kept += m.keptCount }
                if r > 0 { reads.append(Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9) }
                precondition(finite && kept == weights)
            }
            times.sort()
            api.sort()
            reads.sort()
            let t = times[times.count / 2], read = reads[reads.count / 2]
            // bytes the selection moves: scores read once, masks read twice and written twice
            let bytes = Double(weights) * (4 + 4 * 1)
            report(["op": "global_topk", "weights": weights, "tensors": tensors, "amount": amount, "median_seconds": t,
                    "api_median_seconds": api[api.count / 2], "read_pass_seconds": read, "vs_read_pass": t / read,
                    "gb_per_second": bytes / t / 1e9, "extra_bytes": extra, "threads": Runtime.threads,
                    "sparsity": SparsityReportLite.sparsity(params)], json: json)
        }
    }
}

enum SparsityReportLite {
    static func sparsity(_ ps: [Parameter]) -> Double {
        let total = ps.reduce(0) { $0 + $1.count }, pruned = ps.reduce(0) { $0 + ($1.mask?.prunedCount ?? 0) }
        return Double(pruned) / Double(max(total, 1))
    }
}

struct BenchInfer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "infer",
        abstract: "Inference time of saved models (PruneKit model files or .onnx) on the Fashion-MNIST test set or on --input arrays (forward passes only).")
    @Option(name: .customLong("model-file"), parsing: .upToNextOption,
            help: "Model files compared in one run: PruneKit model files, or ONNX files (.onnx; their zero weights are masked, so --execution can run them sparsely).")
    var modelFiles: [String]
    @Option(help: "Inputs: a float32 .npy array [N, ...] in the models' input format (default: the Fashion-MNIST test images).")
    var input: String?
    @Option(help: "Batch size.") var batch: Int = 1000
    @Option(name: .customLong("repeat"), help: "Timed repeats (median reported).") var repeats: Int = 15
    @Option(help: "Time the first N inputs only (large models).") var limit: Int?
    @Option(help: "Pruned weights of Linear and Conv2d layers: automatic (the measured crossover decides), dense, sparse (the fastest format the mask allows), or a format (csr, 2:4, block:4x4, …).")
    var execution: ExecutionChoice = .automatic
    @Flag(help: "Print one JSON object.") var json = false
    @OptionGroup var dataOption: DataOption
    @OptionGroup var threadOption: ThreadOption

    func validate() throws {
        guard !modelFiles.isEmpty else { throw ValidationError("give at least one --model-file") }
        guard repeats >= 1, batch >= 1, (limit ?? 1) >= 1 else { throw ValidationError("--repeat, --batch and --limit must be at least 1") }
        if let input, !input.hasSuffix(".npy") { throw ValidationError("--input \(input): expected a .npy file") }
    }

    /// The model in `path` and its metadata; an ONNX file's zero weights become masks (the file
    /// stores pruned weights as zeros in place).
    static func load(_ path: String) throws -> (model: Model, metadata: [String: String]) {
        guard path.lowercased().hasSuffix(".onnx") else { return try ModelFile.load(path) }
        let onnx = try ONNXModel.load(path)
        _ = try onnx.model.maskZeroWeights()
        return (onnx.model, onnx.metadata)
    }

    func run() throws {
        try guarded {
            try threadOption.apply()
            let loaded = try modelFiles.map { try Self.load($0) }
            let models = loaded.map(\.model)
            for m in models { m.setExecution(execution.value) }
            let images: Tensor
            if let input {
                images = try NPY.read(input)
                guard images.rank >= 1, images.shape[0] >= 1 else { throw IOError(file: input, reason: "shape \(images.shape) holds no rows") }
            } else {
                // timing only: the first file's input contract (or the default) prepares the test images
                let contract = try loaded.first.flatMap { try InputNormalization.recorded(in: $0.metadata, file: modelFiles[0]) }
                images = try FashionMNIST.load(directory: dataOption.data, train: false, normalization: contract ?? .defaultContract).images
            }
            let count = min(limit ?? images.shape[0], images.shape[0])
            let batches = try stride(from: 0, to: count, by: batch).map { try images.rows($0, min(batch, count - $0)) }
            var times = [[Double]](repeating: [], count: models.count)
            // interleaved so drifting machine speed affects every model alike
            for _ in 0..<(repeats + 2) {
                for (i, m) in models.enumerated() {
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    for x in batches { _ = try m.forward(x, training: false) }
                    times[i].append(Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
                }
            }
            let med = times.map { Array($0.dropFirst(2)).sorted()[repeats / 2] }
            let rows: [[String: Any]] = models.indices.map { i in
                let weights = models[i].network.namedLayers.compactMap { ($0.layer as? Linear)?.weight ?? ($0.layer as? Conv2d)?.weight }
                return ["model_file": modelFiles[i], "parameters": models[i].parameterCount, "median_seconds": med[i],
                        "images_per_second": Double(count) / med[i], "speedup_vs_first": med[0] / med[i],
                        "runs_seconds": Array(times[i].dropFirst(2)),
                        "sparse_layers": weights.filter { $0.compressed != nil }.count, "weight_layers": weights.count,
                        "formats": Dictionary(weights.compactMap { $0.compressed.map { "\($0.format)" } }.map { ($0, 1) }, uniquingKeysWith: +)]
            }
            if json {
                printJSON(["batch": batch, "images": count, "threads": Runtime.threads, "isa": Runtime.isa,
                           "execution": "\(execution.value)", "models": rows])
            } else {
                for r in rows { print(r) }
            }
        }
    }
}
