import ArgumentParser
import Foundation
import PruneKit

/// "0.9" is a fraction of the remaining weights, "1000" an absolute count (PyTorch's float/int rule).
func parseAmount(_ s: String) throws -> Amount {
    if !s.contains("."), !s.lowercased().contains("e"), let n = Int(s) { return .count(n) }
    guard let f = Double(s), f.isFinite else { throw ValidationError("--amount '\(s)' is not a number") }
    guard f >= 0, f <= 1 else { throw ValidationError("--amount \(s) must be a fraction in [0, 1] or a whole count") }
    return .fraction(f)
}

/// What an amount was taken as, for the summary line: a count or a fraction, and of what.
func amountDescription(_ a: Amount, _ s: PruningRequest.Structure) -> String {
    let what: String
    switch s {
    case .neurons: what = "neurons"
    case .channels: what = "channels"
    case .block: what = "blocks"
    default: what = "weights"
    }
    switch a {
    case let .count(n): return "\(n) taken as a count of \(what) (write \(n).0 for a fraction)"
    case let .fraction(f): return "\(f) taken as a fraction of the \(what) still unpruned"
    }
}

/// Importance statistics for taylor (gradients over training batches) and wanda (a calibration pass).
func importanceFor(_ method: PruningRequest.Method, model: Model, data: LabeledImages, batches: Int) throws -> Importance? {
    switch method {
    case .taylor: return .taylor(try TaylorImportance.calibrate(model, images: data.images, labels: data.labels, batches: batches))
    case .wanda: return .wanda(try ActivationStatistics.calibrate(model, images: data.images, batches: batches))
    default: return nil
    }
}

struct PruneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "prune", abstract: "Prune a saved model; masks are kept in the output file.")
    @Option(name: .customLong("model-file"), help: "Input model: a PruneKit model file (safetensors) or an ONNX file (.onnx, written back as --out P.onnx).") var modelFile: String?
    @Option(help: "Sentence encoder folder (a BERT-architecture model: all-MiniLM-L6-v2, BGE, E5, ...) instead of --model-file; --out is then a folder.")
    var model: String?
    @OptionGroup var poolingOption: PoolingOption
    @Option(help: "Sentences (one per line) for wanda / taylor statistics and bias compensation, with --model.")
    var calibration: String?
    @Option(help: "Importance: l1, random, taylor or wanda; with --model also sparsegpt (unstructured, 2:4).") var method: String = "l1"
    @Option(help: "Structure: unstructured, neurons, channels, N:M (e.g. 2:4), block (4x1) or RxC; with --model: heads, neurons, unstructured, N:M or block:RxC.")
    var structure: String = "unstructured"
    @Option(help: "Scope: layer or global (default global; with --model: heads global, neurons per block).") var scope: String?
    @Option(parsing: .unconditional, help: "Fraction of the remaining weights (0.9) or a count (1000).") var amount: String
    @Option(help: "Output model file.") var out: String
    @Option(parsing: .unconditional, help: "Batches of 128 training images for taylor / wanda statistics.") var calibrationBatches: Int = 16
    @Option(help: "Random seed (random method; with --model, the random projections of taylor).") var seed: UInt64 = 0
    @Flag(help: "Physically remove pruned neurons / channels (structured pruning).") var surgery = false
    @Flag(help: "Skip the test-set evaluation.") var noEval = false
    @Option(help: "With --model and --calibration: move the mean contribution of removed weights, heads or neurons into the biases: auto (weights and heads, not neurons), on or off.")
    var compensation: String = "auto"
    @Option(help: "Output layout: plain (with --model: dense HuggingFace names, readable by transformers), pytorch-pruned (model files) or compressed (each pruned weight in its compressed format: CSR, packed N:M or blocks; the file grows with the kept weights).")
    var layout: LayoutChoice = .plain
    @Flag(help: "Print one JSON object.") var json = false
    @OptionGroup var dataOption: DataOption
    @OptionGroup var normalization: NormalizationOption
    @OptionGroup var threadOption: ThreadOption

    func validate() throws {
        guard (modelFile == nil) != (model == nil) else { throw ValidationError("give exactly one of --model-file and --model") }
        if model != nil && layout == .pytorchPruned { throw ValidationError("--layout pytorch-pruned: an encoder folder is plain or compressed") }
        guard calibrationBatches >= 1 else { throw ValidationError("--calibration-batches \(calibrationBatches): expected at least 1 batch") }
    }

    func run() throws {
        try guarded {
            try threadOption.apply()
            if let model {
                try normalization.refuse("sentence encoders (--model)")
                try pruneSentenceEncoder(model: model, structure: structure, method: method, amount: amount,
                                         calibration: calibration, scope: scope, compensation: compensation, seed: seed,
                                         pooling: poolingOption.parsed(), layout: layout.value, out: out, json: json)
                return
            }
            let modelFile = modelFile!
            guard let m = PruningRequest.Method(rawValue: method) else { throw ValidationError("--method must be l1, random, taylor or wanda") }
            guard let sc = PruningRequest.Scope(rawValue: scope ?? "global") else { throw ValidationError("--scope must be layer or global") }
            let request = PruningRequest(method: m, structure: try PruningRequest.Structure(parsing: structure), scope: sc,
                                         amount: try parseAmount(amount), seed: seed)
            if modelFile.lowercased().hasSuffix(".onnx") {
                guard layout == .plain else { throw ValidationError("--layout \(layout.rawValue): an ONNX file holds plain weights (zeros in place)") }
                try pruneONNX(modelFile, request)
                return
            }
            try AtomicFile.checkWritable(out)
            var (model, meta) = try ModelFile.load(modelFile)
            let contract = try normalization.forFile(modelFile, metadata: meta)
            let (macsBefore, paramsBefore) = (try DependencyGraph(model).macs, model.parameterCount)
            var imp: Importance? = nil
            if m == .taylor || m == .wanda {
                let train = try FashionMNIST.load(directory: dataOption.data, train: true, normalization: contract).reshapedImages([784])
                imp = try importanceFor(m, model: model, data: train, batches: calibrationBatches)
            }
            try ModelPruner.prune(model, request, importance: imp)
            var removed: [String: Int] = [:]
            if surgery {
                let r = try Surgery.removePrunedUnits(model)
                model = r.model
                removed = r.result.removedUnits
            }
            meta["prunekit.pruned"] = "\(request.method.rawValue) \(request.structure) \(request.scope.rawValue) \(request.amount)"
            try ModelFile.save(model, to: out, layout: layout.value, extraMetadata: meta.carried(with: contract))
            let report = SparsityReport(model: model)
            var o: [String: Any] = ["model_file": out, "normalize": "\(contract)", "sparsity": report.sparsity, "kept": report.kept, "total": report.total,
                                    "parameters": model.parameterCount, "report": report.dictionary,
                                    "macs_before": macsBefore, "macs_after": try DependencyGraph(model).macs,
                                    "params_before": paramsBefore, "params_after": model.parameterCount,
                                    "amount": amountDescription(request.amount, request.structure)]
            if !removed.isEmpty { o["units_removed"] = removed }
            if !noEval {
                let test = try FashionMNIST.load(directory: dataOption.data, train: false, normalization: contract)
                o["test_accuracy"] = try Trainer.evaluate(model, data: test).accuracy
            }
            if json { printJSON(o) } else {
                print(report.table)
                print("amount: \(amountDescription(request.amount, request.structure))")
                if let a = o["test_accuracy"] as? Double { print(String(format: "test accuracy %.4f", a)) }
                print("saved \(out)")
            }
        }
    }
}

struct FineTune: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "finetune",
        abstract: "Fine-tune a model with its masks fixed (Adam, cosine-decayed lr; distillation with --teacher).")
    @Option(name: .customLong("model-file"), help: "Input model: a PruneKit model file, or an ONNX file (.onnx; then --data may be an .npz or .safetensors file with x and y, and --out a .onnx file).")
    var modelFile: String?
    @Option(help: "ONNX models: test set (.npz or .safetensors with x and y) for accuracy before and after.") var testData: String?
    @Option(help: "Pruned sentence encoder folder (instead of --model-file): distilled from --teacher on --input.")
    var model: String?
    @OptionGroup var poolingOption: PoolingOption
    @Option(help: "Sentences (one per line) for distilling a sentence encoder.") var input: String?
    @Option(name: .customLong("loss"), help: "Distillation loss for sentence encoders: cosine or mse.") var distillLoss: String = "cosine"
    @OptionGroup var gradual: GradualOption
    @Option(help: "Sentence encoders: weight of the last-layer token-row term added to the embedding loss (0: embeddings only).")
    var tokenWeight: Float = 0
    @Option(parsing: .unconditional, help: "Epochs.") var epochs: Int = 2
    @Option(parsing: .unconditional, help: "Peak learning rate (cosine-decayed to 0).") var lr: Float = 3e-3
    @Option(parsing: .unconditional, help: "Batch size.") var batch: Int = 128
    @Option(help: "Dense model to distil from (its logits): a model file, or an ONNX file for ONNX students.") var teacher: String?
    @Option(help: "Random seed (shuffling).") var seed: UInt64 = 0
    @Option(help: "Output model file.") var out: String
    @Option(help: "Distillation weight of the label loss (1 − alpha goes to the teacher's logits).") var kdAlpha: Float = 0.5
    @Option(help: "Distillation temperature.") var kdTemperature: Float = 2
    @Flag(help: "Constant learning rate instead of the cosine decay.") var constantLr = false
    @Option(help: "Linear and conv layers: automatic (compressed in the fastest format the mask allows when the measured crossover favours it), dense, sparse (compressed, fastest allowed format), or a format: csr, 2:4, 1:4, 2:8, block:4x4, block:8x8, ….")
    var execution: ExecutionChoice = .automatic
    @Option(help: "Output layout: plain, pytorch-pruned (model files only) or compressed (each pruned weight in its compressed format: CSR, packed N:M or blocks).") var layout: LayoutChoice = .plain
    @Option(help: "Checkpoint file (written atomically during fine-tuning).") var checkpoint: String?
    @Option(help: "Optimizer steps between checkpoints (and one at every epoch end).") var checkpointEvery: Int = 100
    @Flag(help: "Continue from --checkpoint when it exists (same settings required).") var resume = false
    @Flag(help: "Print one JSON object.") var json = false
    @OptionGroup var dataOption: DataOption
    @OptionGroup var normalization: NormalizationOption
    @OptionGroup var threadOption: ThreadOption

    func validate() throws {
        guard (modelFile == nil) != (model == nil) else { throw ValidationError("give exactly one of --model-file and --model") }
        if model != nil && (teacher == nil || input == nil) { throw ValidationError("--model needs --teacher DIR and --input FILE") }
        if model == nil && gradual.isSet { throw ValidationError("--target-sparsity and its schedule options are for sentence encoders (--model DIR)") }
        if model != nil && layout == .pytorchPruned { throw ValidationError("--layout pytorch-pruned: an encoder folder is plain or compressed") }
        if resume && checkpoint == nil { throw ValidationError("--resume needs --checkpoint FILE") }
        guard checkpointEvery >= 1 else { throw ValidationError("--checkpoint-every must be at least 1") }
        guard epochs >= 0 else { throw ValidationError("--epochs must be at least 0") }
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        guard lr.isFinite, lr > 0 else { throw ValidationError("--lr must be positive") }
        guard tokenWeight.isFinite, tokenWeight >= 0 else { throw ValidationError("--token-weight must be at least 0") }
    }

    func run() throws {
        try guarded {
            try threadOption.apply()
            if let folder = model, let teacher, let input {
                try normalization.refuse("sentence encoders (--model)")
                guard let l = SentenceDistillation.Loss(rawValue: distillLoss) else { throw ValidationError("--loss must be cosine or mse") }
                try distilSentenceEncoder(model: folder, teacher: teacher, input: input, epochs: epochs, batch: batch,
                                          lr: lr, loss: l, seed: seed, cosine: !constantLr, tokenWeight: tokenWeight,
                                          pooling: poolingOption.parsed(), gradual: gradual,
                                          checkpoint: checkpoint.map { ($0, checkpointEvery, resume) }, layout: layout.value,
                                          out: out, json: json)
                return
            }
            guard let modelFile else { return }
            if modelFile.lowercased().hasSuffix(".onnx") {
                try fineTuneONNX(modelFile)
                return
            }
            if testData != nil { throw ValidationError("--test-data is for ONNX models (PruneKit model files evaluate on Fashion-MNIST)") }
            try AtomicFile.checkWritable(out)
            if let checkpoint { try AtomicFile.checkWritable(checkpoint) }
            var (model, meta) = try ModelFile.load(modelFile)
            let contract = try normalization.forFile(modelFile, metadata: meta)
            let teacherModel = try teacher.map { path -> Model in
                let (t, tmeta) = try ModelFile.load(path)
                // the teacher sees the student's batches: a teacher trained on other inputs would mislead it
                if let own = try InputNormalization.recorded(in: tmeta, file: path), own != contract {
                    throw ValidationError("teacher \(path) records the input normalisation \(own), the student \(modelFile) uses \(contract)")
                }
                return t
            }
            let train = try FashionMNIST.load(directory: dataOption.data, train: true, normalization: contract)
            let test = try FashionMNIST.load(directory: dataOption.data, train: false, normalization: contract)
            let opt = try Adam(learningRate: lr)
            model.setExecution(execution.value)
            let settings = ["finetune.input": modelFile, "finetune.epochs": "\(epochs)", "finetune.lr": "\(lr)",
                            "finetune.batch": "\(batch)", "finetune.seed": "\(seed)", "finetune.teacher": teacher ?? "",
                            "finetune.cosine": "\(!constantLr)", "finetune.kd": "\(kdAlpha),\(kdTemperature)"]
                .merging(contract.metadata) { a, _ in a }
            let position = try resumeIfAsked(resume, checkpoint, settings: settings, model: &model, optimizer: opt)
            let dp = try Parallel.context()
            try dp?.checkAgreement(model: model, settings: settings.merging(["threads": "\(Runtime.threads)", "data": dataOption.data,
                                                                             "execution": "\(execution.value)"]) { a, _ in a })
            let bar = ProgressBar(label: "finetune", enabled: Parallel.isWriter)
            let r = try FineTuner.fineTune(model, data: train,
                                           config: FineTuneConfig(epochs: epochs, learningRate: lr, batchSize: batch, seed: seed,
                                                                  cosineDecay: !constantLr,
                                                                  distillation: Distillation(alpha: kdAlpha, temperature: kdTemperature),
                                                                  dataParallel: dp),
                                           teacher: teacherModel, optimizer: opt,
                                           checkpoint: checkpoint.map { CheckpointPolicy(path: $0, everySteps: checkpointEvery, settings: settings) },
                                           resumeFrom: position, progress: bar.update)
            guard Parallel.isWriter else { return } // rank 0 evaluates, writes and reports
            let (acc, loss) = try Trainer.evaluate(model, data: test)
            try ModelFile.save(model, to: out, layout: layout.value, extraMetadata: meta.carried(with: contract))
            let sp = SparsityReport(model: model).sparsity
            if json {
                var o: [String: Any] = ["model_file": out, "normalize": "\(contract)", "epochs": epochs, "test_accuracy": acc, "test_loss": loss, "sparsity": sp,
                           "sparse_layers": model.parameters.filter { $0.compressed != nil }.count,
                           "memory_bytes": model.parameters.reduce(0) { $0 + $1.residentBytes } + opt.stateBytes,
                           "train_seconds": r.trainSeconds, "samples_per_second": r.samplesPerSecond]
                if let dp { o.merge(dataParallelReport(dp)) { a, _ in a } }
                printJSON(o)
            } else {
                print(String(format: "test accuracy %.4f, sparsity %.2f%%; saved %@", acc, 100 * sp, out))
            }
        }
    }
}

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Per-layer sparsity of a model (and its test accuracy).")
    @Option(name: .customLong("model-file"), help: "Model file.") var modelFile: String
    @Flag(help: "Skip the test-set evaluation.") var noEval = false
    @Flag(help: "Print one JSON object.") var json = false
    @OptionGroup var dataOption: DataOption
    @OptionGroup var normalization: NormalizationOption

    func run() throws {
        try guarded {
            let (model, meta) = try ModelFile.load(modelFile)
            // checked even with --no-eval: a contradiction or malformed metadata is still an error
            let contract = try normalization.forFile(modelFile, metadata: meta)
            let report = SparsityReport(model: model)
            var o: [String: Any] = ["model_file": modelFile, "architecture": model.architecture, "sparsity": report.sparsity,
                                    "normalize": "\(contract)",
                                    "parameters": model.parameterCount, "report": report.dictionary]
            if let p = meta["prunekit.pruned"] { o["pruned"] = p }
            if !noEval {
                let test = try FashionMNIST.load(directory: dataOption.data, train: false, normalization: contract)
                o["test_accuracy"] = try Trainer.evaluate(model, data: test).accuracy
            }
            if json { printJSON(o) } else {
                print(report.table)
                if let a = o["test_accuracy"] as? Double { print(String(format: "test accuracy %.4f", a)) }
            }
        }
    }
}

/// With --resume and an existing checkpoint: checks the run's settings against the ones recorded,
/// restores the model and the optimizer state, and returns where to continue.
func resumeIfAsked(_ resume: Bool, _ checkpoint: String?, settings: [String: String], model: inout Model,
                   optimizer: any Optimizer) throws -> TrainingPosition? {
    guard resume, let path = checkpoint, FileManager.default.fileExists(atPath: path) else { return nil }
    let c = try Checkpoint.load(path)
    for (k, v) in settings where c.metadata[k] != v {
        throw ValidationError("\(path) was written with \(k) = \(c.metadata[k] ?? "?"), not \(v)")
    }
    model = c.model
    try optimizer.importState(model.namedParameters, tensors: c.optimizerTensors, metadata: c.metadata)
    FileHandle.standardError.write(Data(
        "resuming from \(path): epoch \(c.position.epoch + 1), batch \(c.position.batch), step \(c.position.step)\n".utf8))
    return c.position
}
