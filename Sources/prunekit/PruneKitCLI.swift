import ArgumentParser
import Foundation
import PruneKit

@main
struct PruneKitCLI: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prunekit",
        abstract: "Train, prune and fine-tune neural networks; the hot loops run in C.",
        subcommands: [Info.self, Train.self, Eval.self, PruneCommand.self, FineTune.self, Report.self, Demo.self, Embed.self,
                      Bench.self, Infer.self])

    /// Parses and runs; a bad argument is one line on stderr naming it (no usage block), help and
    /// version requests print as usual.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if code == .success || error is CleanExit { exit(withError: error) }
            let message = self.message(for: error).split(separator: "\n").first.map(String.init) ?? ""
            if !message.isEmpty {
                FileHandle.standardError.write(Data("prunekit: error: \(message.replacingOccurrences(of: "Error: ", with: ""))\n".utf8))
            }
            Foundation.exit(code.rawValue)
        }
    }
}

/// Prints one JSON object on stdout (keys sorted). NaN and infinities, which JSON cannot hold,
/// are written as null; anything else JSON cannot hold becomes its description.
func printJSON(_ object: [String: Any]) {
    func clean(_ v: Any) -> Any {
        switch v {
        case let d as Double: return d.isFinite ? d : NSNull()
        case let f as Float: return f.isFinite ? Double(f) : NSNull()
        case let a as [Any]: return a.map(clean)
        case let o as [String: Any]: return o.mapValues(clean)
        case is String, is Int, is Int32, is Int64, is UInt64, is Bool, is NSNull: return v
        default: return "\(v)"
        }
    }
    let safe = clean(object)
    let data = (try? JSONSerialization.data(withJSONObject: safe, options: [.sortedKeys])) ?? Data("{}".utf8)
    print(String(decoding: data, as: UTF8.self))
}

/// Runs `body`; any error becomes one line on stderr and exit status 1 (never a crash or a trace).
func guarded(_ body: () throws -> Void) throws {
    do { try body() } catch let e as ExitCode { throw e } catch {
        FileHandle.standardError.write(Data("prunekit: error: \(error)\n".utf8))
        Parallel.abortJob(code: 1)
        throw ExitCode(1)
    }
}

struct ThreadOption: ParsableArguments {
    @Option(name: .long, parsing: .unconditional, help: "Kernel threads (default: OMP_NUM_THREADS or all cores; at most 256).")
    var threads: Int?

    func apply() throws {
        if let t = threads {
            guard t >= 1, t <= 256 else { throw ValidationError("--threads \(t): expected 1 to 256 kernel threads") }
            Runtime.threads = t
        }
    }
}

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show CPU features, threads and the linked OpenBLAS.")
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        let warning = Runtime.openBLASWarning
        if json {
            var o: [String: Any] = ["isa": Runtime.isa, "cpu_features": Runtime.cpuFeatures, "openmp": Runtime.openMP,
                                    "threads": Runtime.threads, "openblas_core": Runtime.openBLASCoreName]
            if let warning { o["warning"] = warning }
            printJSON(o)
        } else {
            print("kernels ISA:     \(Runtime.isa) (CPU best: \(Runtime.cpuISA))")
            print("CPU features:    \(Runtime.cpuFeatures)")
            print("threading:       \(Runtime.openMP ? "OpenMP" : "portable pthread pool"), \(Runtime.threads) threads")
            print("OpenBLAS core:   \(Runtime.openBLASCoreName)")
            print("OpenBLAS config: \(Runtime.openBLASConfig)")
            if let warning { print("warning: \(warning)") }
        }
    }
}

struct DataOption: ParsableArguments {
    @Option(help: "Folder with the Fashion-MNIST IDX files (.gz or raw); for finetune of an ONNX model also an .npz or .safetensors file with x and y.")
    var data: String = FashionMNIST.defaultDirectory
}

/// The input contract (how pixels 0-255 become model inputs): asked for with --normalize or
/// --mean/--std, recorded in every saved model and read back from it.
struct NormalizationOption: ParsableArguments {
    @Option(help: ArgumentHelp("Input normalisation: mean-std (Fashion-MNIST's mean/std, the default), unit (x/255) or none (raw 0-255 values). Saved models record it; later commands read it back.", valueName: "name"))
    var normalize: String?
    @Option(parsing: .unconditional, help: ArgumentHelp("With --std: normalise as (x/255 - M)/S, M and S on the [0, 1] scale (as torchvision's Normalize after ToTensor).", valueName: "M"))
    var mean: Float?
    @Option(parsing: .unconditional, help: ArgumentHelp("With --mean: the standard deviation S (positive).", valueName: "S"))
    var std: Float?

    var isSet: Bool { normalize != nil || mean != nil || std != nil }

    /// The contract given on the command line, if any (bad values: one line naming the argument).
    func requested() throws -> InputNormalization? {
        if mean != nil || std != nil {
            guard let mean, let std else { throw ValidationError("--mean and --std go together: give both") }
            if let n = normalize, n != "mean-std" {
                throw ValidationError("--mean/--std describe a mean-std normalisation, not --normalize \(n)")
            }
            guard mean.isFinite else { throw ValidationError("--mean \(mean) is not a finite number") }
            guard std.isFinite, std > 0 else { throw ValidationError("--std \(std) must be a positive finite number") }
            return try InputNormalization.meanStd(mean: mean, std: std)
        }
        guard let normalize else { return nil }
        do { return try InputNormalization(name: normalize) } catch let e as InputContractError {
            throw ValidationError("--normalize: \(e.reason)")
        }
    }

    /// The contract for a command without an input model (train, demo): the requested one or the default.
    func forNewModel() throws -> InputNormalization { try requested() ?? .defaultContract }

    /// The contract for a model file: the requested one, else the file's, else the default with a
    /// note on stderr; a request that contradicts the file is an error naming both.
    func forFile(_ path: String, metadata: [String: String]) throws -> InputNormalization {
        let (contract, note) = try InputNormalization.resolve(requested: requested(), metadata: metadata, file: path)
        if let note { FileHandle.standardError.write(Data("prunekit: \(note)\n".utf8)) }
        return contract
    }

    /// Refuses the options where they mean nothing (sentence encoders).
    func refuse(_ context: String) throws {
        if isSet { throw ValidationError("--normalize, --mean and --std apply to image models, not \(context)") }
    }
}

extension Dictionary where Key == String, Value == String {
    /// Metadata to carry from an input model file to the model written from it: everything but
    /// what ModelFile.save writes itself, with the input contract set to `contract`.
    func carried(with contract: InputNormalization) -> [String: String] {
        filter { $0.key != "prunekit.arch" && $0.key != "format" }.merging(contract.metadata) { _, new in new }
    }
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Train a model on Fashion-MNIST.")
    @Option(help: ArgumentHelp("Architecture: \(Model.architectures.joined(separator: ", ")) (mlp is LeNet-300-100).")) var model: String = "mlp"
    @Option(parsing: .unconditional, help: "Epochs.") var epochs: Int = 5
    @Option(parsing: .unconditional, help: "Batch size.") var batch: Int = 128
    @Option(parsing: .unconditional, help: "Learning rate.") var lr: Float = 1e-3
    @Option(help: "Optimizer: adam, adamw or sgd (momentum 0.9).") var optimizer: String = "adam"
    @Option(help: "Random seed (initialisation and shuffling).") var seed: UInt64 = 0
    @Option(help: "Output model file (safetensors).") var out: String = "model.safetensors"
    @Option(parsing: .unconditional, help: "Train on the first N examples only.") var limit: Int?
    @Flag(help: "Print one JSON object.") var json = false
    @Flag(help: "Print the time spent in each layer (forward, backward) on stderr.") var profile = false
    @Option(help: "Checkpoint file (written atomically during training).") var checkpoint: String?
    @Option(help: "Optimizer steps between checkpoints (and one at every epoch end).") var checkpointEvery: Int = 100
    @Flag(help: "Continue from --checkpoint when it exists (same settings required).") var resume = false
    @OptionGroup var dataOption: DataOption
    @OptionGroup var normalization: NormalizationOption
    @OptionGroup var threadOption: ThreadOption

    func validate() throws {
        if resume && checkpoint == nil { throw ValidationError("--resume needs --checkpoint FILE") }
        guard checkpointEvery >= 1 else { throw ValidationError("--checkpoint-every must be at least 1") }
        guard Model.architectures.contains(model) else { throw ValidationError("--model must be one of \(Model.architectures)") }
        guard epochs >= 1 else { throw ValidationError("--epochs must be at least 1") }
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        guard lr.isFinite, lr > 0 else { throw ValidationError("--lr must be a positive number") }
        guard ["adam", "adamw", "sgd"].contains(optimizer) else { throw ValidationError("--optimizer must be adam, adamw or sgd") }
        if let limit, limit < 1 { throw ValidationError("--limit \(limit): expected at least 1 training example") }
    }

    func run() throws {
        try guarded {
            try threadOption.apply()
            let contract = try normalization.forNewModel()
            // output paths are checked before any work, not after training
            try AtomicFile.checkWritable(out)
            if let checkpoint { try AtomicFile.checkWritable(checkpoint) }
            var train = try FashionMNIST.load(directory: dataOption.data, train: true, normalization: contract)
            let test = try FashionMNIST.load(directory: dataOption.data, train: false, normalization: contract)
            if let limit { train = try train.prefix(limit) }
            var m = try Model.make(model, seed: seed)
            let opt = try makeOptimizer(optimizer, lr: lr)
            let settings = ["train.model": model, "train.epochs": "\(epochs)", "train.batch": "\(batch)", "train.lr": "\(lr)",
                            "train.optimizer": optimizer, "train.seed": "\(seed)", "train.limit": "\(limit ?? -1)"]
                .merging(contract.metadata) { a, _ in a }
            let position = try resumeIfAsked(resume, checkpoint, settings: settings, model: &m, optimizer: opt)
            let dp = try Parallel.context()
            try dp?.checkAgreement(model: m, settings: settings.merging(["threads": "\(Runtime.threads)", "data": dataOption.data]) { a, _ in a })
            if profile { (m.network as? Sequential)?.profile = LayerProfile() }
            let bar = ProgressBar(label: "train", enabled: Parallel.isWriter)
            let r = try Trainer.train(m, data: train, optimizer: opt,
                                      config: TrainingConfig(epochs: epochs, batchSize: batch, seed: seed, dataParallel: dp),
                                      checkpoint: checkpoint.map { CheckpointPolicy(path: $0, everySteps: checkpointEvery, settings: settings) },
                                      resumeFrom: position, progress: bar.update)
            if let p = (m.network as? Sequential)?.profile {
                FileHandle.standardError.write(Data((p.table + "\n").utf8))
                (m.network as? Sequential)?.profile = nil
            }
            guard Parallel.isWriter else { return } // rank 0 evaluates, writes and reports
            let (acc, loss) = try Trainer.evaluate(m, data: test)
            try ModelFile.save(m, to: out, extraMetadata: contract.metadata.merging(["prunekit.seed": "\(seed)"]) { a, _ in a })
            if json {
                var o: [String: Any] = ["model": model, "normalize": "\(contract)", "epochs": epochs, "batch": batch, "lr": Double(lr), "optimizer": optimizer,
                           "seed": seed, "threads": Runtime.threads, "test_accuracy": acc, "test_loss": loss,
                           "train_seconds": r.trainSeconds, "samples_per_second": r.samplesPerSecond,
                           "final_train_loss": Double(r.finalLoss), "out": out, "sparsity": SparsityReport(model: m).sparsity]
                if let dp { o.merge(dataParallelReport(dp)) { a, _ in a } }
                printJSON(o)
            } else {
                print(String(format: "test accuracy %.4f (loss %.4f); %.1f s, %.0f samples/s on %d threads; saved %@",
                             acc, loss, r.trainSeconds, r.samplesPerSecond, Runtime.threads, out))
            }
        }
    }
}

func makeOptimizer(_ name: String, lr: Float) throws -> any Optimizer {
    switch name {
    case "sgd": return try SGD(learningRate: lr, momentum: 0.9)
    case "adamw": return try AdamW(learningRate: lr)
    default: return try Adam(learningRate: lr)
    }
}

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a saved model on the Fashion-MNIST test set, or a sentence encoder folder against its dense teacher.")
    @Option(name: .customLong("model-file"), help: "Model file (safetensors).") var modelFile: String?
    @Option(help: "Sentence encoder folder (instead of --model-file).") var model: String?
    @OptionGroup var poolingOption: PoolingOption
    @Option(help: "Dense encoder folder to compare with (mean_cosine).") var teacher: String?
    @Option(help: "Sentences, one per line (with --model).") var input: String?
    @Option(parsing: .unconditional, help: "Sentences per batch (with --model).") var batch: Int = 32
    @Flag(help: "Print one JSON object.") var json = false
    @OptionGroup var dataOption: DataOption
    @OptionGroup var normalization: NormalizationOption
    @OptionGroup var threadOption: ThreadOption

    func validate() throws {
        guard (modelFile == nil) != (model == nil) else { throw ValidationError("give exactly one of --model-file and --model") }
        if model != nil && input == nil { throw ValidationError("--model needs --input FILE") }
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
    }

    func run() throws {
        try guarded {
            try threadOption.apply()
            if let model, let input {
                try normalization.refuse("sentence encoders (--model)")
                try evalSentenceEncoder(model: model, teacher: teacher, input: input, batch: batch, pooling: poolingOption.parsed(),
                                        json: json)
                return
            }
            let modelFile = modelFile!
            let (m, meta) = try ModelFile.load(modelFile)
            let contract = try normalization.forFile(modelFile, metadata: meta)
            let test = try FashionMNIST.load(directory: dataOption.data, train: false, normalization: contract)
            let start = Date()
            let (acc, loss) = try Trainer.evaluate(m, data: test)
            let secs = Date().timeIntervalSince(start)
            if json {
                printJSON(["model_file": modelFile, "architecture": m.architecture, "normalize": "\(contract)", "test_accuracy": acc,
                           "test_loss": loss, "eval_seconds": secs, "sparsity": SparsityReport(model: m).sparsity,
                           "samples_per_second": Double(test.count) / max(secs, 1e-9)])
            } else {
                print(String(format: "%@ (%@): test accuracy %.4f, loss %.4f", modelFile, m.architecture, acc, loss))
            }
        }
    }
}
