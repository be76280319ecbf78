import ArgumentParser
import Foundation
import PruneKit

/// Sentence embeddings of a text file, one JSON object per input line.
struct Embed: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Embed every line of a text file with a sentence-transformers model folder (all-MiniLM-L6-v2).")
    @Option(help: "Model folder (config.json, model.safetensors, vocab.txt; modules.json for the pooling).") var model: String
    @OptionGroup var poolingOption: PoolingOption
    @Option(help: "Text file: one sentence per line.") var input: String
    @Option(help: "Output file (.jsonl): {\"text\": ..., \"embedding\": [...]} per input line.") var output: String
    @Option(help: "Sentences per batch.") var batch: Int = 32
    @Flag(help: "Print one JSON object with counts and timing.") var json = false
    @OptionGroup var threadOption: ThreadOption

    func validate() throws { guard batch >= 1 else { throw ValidationError("--batch must be at least 1") } }

    func run() throws {
        try guarded {
            try threadOption.apply()
            let (encoder, tokenizer) = try SentenceEncoderFolder.load(model, pooling: poolingOption.parsed())
            let lines = try readLines(input)
            let start = Date()
            let vectors = try encoder.embed(texts: lines, tokenizer: tokenizer, batch: batch)
            let secs = Date().timeIntervalSince(start)
            var out = Data()
            for (text, v) in zip(lines, vectors) {
                out.append(try JSONSerialization.data(withJSONObject: ["text": text, "embedding": v.map(Double.init)], options: [.sortedKeys]))
                out.append(0x0A)
            }
            try AtomicFile.write(out, to: output)
            if json {
                printJSON(["sentences": lines.count, "output": output, "seconds": secs,
                           "sentences_per_second": Double(lines.count) / max(secs, 1e-9), "threads": Runtime.threads])
            } else {
                print("\(lines.count) embeddings → \(output) (\(String(format: "%.0f", Double(lines.count) / max(secs, 1e-9))) sentences/s)")
            }
        }
    }
}

/// `--pooling` for sentence encoder folders.
struct PoolingOption: ParsableArguments {
    @Option(help: "Sentence encoders: pooling mean, cls or max, optionally +normalize (e.g. cls+normalize); overrides the folder's modules.json and is needed for a plain BertModel folder without one.")
    var pooling: String?

    func parsed() throws -> SentencePooling? { try pooling.map { try SentencePooling(parsing: $0) } }
}

/// The lines of a UTF-8 text file (a trailing newline does not make an extra line).
func readLines(_ path: String) throws -> [String] {
    guard let data = FileManager.default.contents(atPath: path) else { throw IOError(file: path, reason: "file not found") }
    guard let text = String(data: data, encoding: .utf8) else { throw IOError(file: path, reason: "not UTF-8 text") }
    var lines = text.components(separatedBy: "\n")
    if lines.last == "" { lines.removeLast() }
    return lines.map { $0.hasSuffix("\r") ? String($0.dropLast()) : $0 }
}

/// `prunekit eval --model DIR --teacher DIR --input FILE`: agreement of a (pruned) encoder with the
/// dense one, and its encoding throughput.
func evalSentenceEncoder(model: String, teacher: String?, input: String, batch: Int, pooling: SentencePooling?, json: Bool) throws {
    let (encoder, tokenizer) = try SentenceEncoderFolder.load(model, pooling: pooling)
    let lines = try readLines(input)
    guard !lines.isEmpty else { throw IOError(file: input, reason: "no sentences") }
    _ = try encoder.embed(texts: Array(lines.prefix(batch)), tokenizer: tokenizer, batch: batch) // warm-up
    let start = Date()
    let mine = try encoder.embed(texts: lines, tokenizer: tokenizer, batch: batch)
    let secs = Date().timeIntervalSince(start)
    var result: [String: Any] = ["model": model, "sentences": lines.count, "batch": batch, "seconds": secs,
                                 "sentences_per_second": Double(lines.count) / max(secs, 1e-9), "threads": Runtime.threads,
                                 "parameters": encoder.parameterCount]
    if let teacher {
        let (dense, denseTok) = try SentenceEncoderFolder.load(teacher, pooling: pooling)
        let theirs = try dense.embed(texts: lines, tokenizer: denseTok, batch: batch)
        let (mean, worst) = try SentenceDistillation.agreement(mine, theirs)
        result["teacher"] = teacher
        result["mean_cosine"] = mean
        result["min_cosine"] = worst
    }
    if json { printJSON(result) } else { for k in result.keys.sorted() { print("\(k): \(result[k]!)") } }
}

/// `prunekit prune --model DIR --structure heads|neurons|unstructured|N:M|block:RxC --method l1|wanda|taylor|sparsegpt --amount A`.
/// Unstructured and N:M with calibration sentences prune block by block (Wanda's order); heads and
/// neurons are ranked on the dense model by the dependency graph and removed; blocks are ranked by
/// the L2 norm of their entries' scores.
func pruneSentenceEncoder(model: String, structure: String, method: String, amount: String, calibration: String?,
                          scope: String?, compensation: String, seed: UInt64, pooling: SentencePooling?, layout: ModelFile.Layout = .plain,
                          out: String, json: Bool) throws {
    try AtomicFile.checkWritableFolder(out) // before the model is loaded and pruned
    let st: PruningRequest.Structure
    switch structure {
    case "heads": st = .heads
    default:
        guard let s = try? PruningRequest.Structure(parsing: structure), s != .channels else {
            throw ValidationError("--structure must be heads, neurons, unstructured, N:M (e.g. 2:4) or block:RxC with --model")
        }
        st = s
    }
    var isBlock = false, isNM = false
    if case .block = st { isBlock = true }
    if case .nm = st { isNM = true }
    guard let me = PruningRequest.Method(rawValue: method), [.l1, .wanda, .taylor, .sparsegpt].contains(me) else {
        throw ValidationError("--method must be l1, wanda, taylor or sparsegpt with --model")
    }
    guard let a = Double(amount), a >= 0, a < 1 else { throw ValidationError("--amount must be a fraction in [0, 1) with --model") }
    let units = st == .heads || st == .neurons
    let sc = try scope.map { s -> PruningRequest.Scope in
        guard let v = PruningRequest.Scope(rawValue: s), v != .row else { throw ValidationError("--scope must be layer or global") }
        return v
    }
    let compensate: Bool?
    switch compensation {
    case "auto": compensate = nil
    case "on": compensate = true
    case "off": compensate = false
    default: throw ValidationError("--compensation must be auto, on or off")
    }
    if compensate == true && calibration == nil { throw ValidationError("--compensation on needs --calibration FILE") }
    if sc != nil && !units && !isBlock { throw ValidationError("--scope applies to heads, neurons and blocks with --model") }
    if me == .sparsegpt && (units || isBlock) { throw ValidationError("--method sparsegpt prunes unstructured or N:M weights") }
    if me != .l1 && calibration == nil { throw ValidationError("--method \(method) needs --calibration FILE") }
    let (encoder, tokenizer) = try SentenceEncoderFolder.load(model, pooling: pooling)
    let sentences = try calibration.map(readLines)
    let before = encoder.parameterCount
    // heads compete across the encoder, neurons within each block, weights within each output row
    let request = PruningRequest(method: me, structure: st, scope: sc ?? (st == .heads ? .global : st == .unstructured ? .row : .layer),
                                 amount: .fraction(isNM ? 0.5 : a), seed: seed)
    let start = Date()
    if let sentences, !units, !isBlock, me != .taylor {
        try encoder.pruneSequentially(request, tokenizer: tokenizer, sentences: sentences, compensate: compensate ?? true)
    } else {
        let cal = try sentences.map { try encoder.calibrate(tokenizer: tokenizer, sentences: $0, taylor: me == .taylor, seed: seed) }
        try encoder.prune(request, calibration: cal, compensate: compensate)
    }
    let secs = Date().timeIntervalSince(start)
    try SentenceEncoderFolder.save(encoder, to: out, copyingFrom: model,
                                   metadata: ["prunekit.pruned": "\(structure) \(method) \(amount)", "prunekit.source": model], layout: layout)
    let zeros = encoder.linears.reduce(0) { $0 + ($1.weight.mask?.prunedCount ?? 0) }
    let r: [String: Any] = ["model": out, "structure": structure, "method": method, "amount": a,
                            "parameters_before": before, "parameters": encoder.parameterCount, "masked_weights": zeros,
                            "bias_compensation": sentences != nil && (compensate ?? (st != .neurons)), "prune_seconds": secs,
                            "heads": encoder.heads, "ffn_neurons": encoder.intermediateSizes]
    if json { printJSON(r) } else { for k in r.keys.sorted() { print("\(k): \(r[k]!)") } }
}

/// Gradual pruning during sentence-encoder distillation (`finetune --model`).
struct GradualOption: ParsableArguments {
    @Option(help: "Sentence encoders: raise the blocks' Linear weights' sparsity from the folder's level to this fraction during the run (gradual pruning; masks re-selected as it goes).")
    var targetSparsity: Double?
    @Option(help: "With --target-sparsity: unstructured, N:M (e.g. 2:4; the target must be 1 − N/M) or block:RxC.")
    var structure: String = "unstructured"
    @Option(help: "With --target-sparsity: l1 (magnitude) or wanda (input norms measured on the training batches since the last update).")
    var method: String = "l1"
    @Option(help: "With --target-sparsity: row (each output row, as Wanda), layer or global (unstructured); layer or global (blocks); N:M is per layer.")
    var scope: String?
    @Option(help: "With --target-sparsity: cubic (Zhu & Gupta) or linear rise of the sparsity.")
    var schedule: String = "cubic"
    @Option(help: "With --target-sparsity: optimizer steps over which the sparsity rises (default: two thirds of the run's steps).")
    var scheduleSteps: Int?
    @Option(help: "With --target-sparsity: optimizer steps between mask updates (default: the schedule's steps / 20, at least 1).")
    var pruneEvery: Int?

    /// Whether any of the options was given.
    var isSet: Bool {
        targetSparsity != nil || structure != "unstructured" || method != "l1" || scope != nil || schedule != "cubic"
            || scheduleSteps != nil || pruneEvery != nil
    }

    /// The plan for a run of `totalSteps` optimizer steps; nil without --target-sparsity. Each bad
    /// value is refused naming its option.
    func plan(totalSteps: Int) throws -> GradualPruning? {
        guard let target = targetSparsity else {
            if isSet { throw ValidationError("--structure, --method, --scope, --schedule, --schedule-steps and --prune-every need --target-sparsity") }
            return nil
        }
        guard target.isFinite, target >= 0, target < 1 else { throw ValidationError("--target-sparsity must be in [0, 1), got \(target)") }
        guard let st = try? PruningRequest.Structure(parsing: structure), [.unstructured].contains(st) || { if case .nm = st { return true }; if case .block = st { return true }; return false }() else {
            throw ValidationError("--structure must be unstructured, N:M (e.g. 2:4) or block:RxC with --target-sparsity")
        }
        guard let me = PruningRequest.Method(rawValue: method), me == .l1 || me == .wanda else {
            throw ValidationError("--method must be l1 or wanda with --target-sparsity")
        }
        let sc: PruningRequest.Scope
        if let scope {
            guard let v = PruningRequest.Scope(rawValue: scope) else { throw ValidationError("--scope must be row, layer or global") }
            sc = v
        } else {
            if case .block = st { sc = .layer } else if case .nm = st { sc = .layer } else { sc = .row }
        }
        guard let curve = GradualPruning.Curve(rawValue: schedule) else { throw ValidationError("--schedule must be cubic or linear") }
        guard totalSteps >= 1 else { throw ValidationError("--target-sparsity needs a run of at least one step (--epochs ≥ 1)") }
        let steps = scheduleSteps ?? max(1, (2 * totalSteps) / 3)
        guard steps >= 1 else { throw ValidationError("--schedule-steps must be at least 1") }
        guard steps <= totalSteps else {
            throw ValidationError("--schedule-steps \(steps) is longer than the run's \(totalSteps) optimizer steps")
        }
        let every = pruneEvery ?? max(1, steps / 20)
        guard every >= 1, every <= steps else { throw ValidationError("--prune-every must be between 1 and the schedule's \(steps) steps") }
        return GradualPruning(target: target, structure: st, method: me, scope: sc, curve: curve, steps: steps, every: every)
    }
}

/// `prunekit finetune --model DIR2 --teacher DIR --input FILE --epochs N --out DIR3`.
func distilSentenceEncoder(model: String, teacher: String, input: String, epochs: Int, batch: Int, lr: Float,
                           loss: SentenceDistillation.Loss, seed: UInt64, cosine: Bool, tokenWeight: Float, pooling: SentencePooling?,
                           gradual: GradualOption, checkpoint: (path: String, every: Int, resume: Bool)?,
                           layout: ModelFile.Layout = .plain, out: String, json: Bool) throws {
    try AtomicFile.checkWritableFolder(out)
    if let checkpoint { try AtomicFile.checkWritable(checkpoint.path) }
    let sentences = try readLines(input)
    guard !sentences.isEmpty else { throw ValidationError("--input \(input) holds no sentences") }
    // the same count as the distillation's batches (sentences grouped by length, batch by batch)
    let plan = try gradual.plan(totalSteps: epochs * ((sentences.count + batch - 1) / batch))
    let (student, tokenizer) = try SentenceEncoderFolder.load(model, pooling: pooling)
    let (dense, _) = try SentenceEncoderFolder.load(teacher, pooling: pooling)
    let bar = ProgressBar(label: "distil", enabled: Parallel.isWriter)
    try student.model.maskZeroWeights() // the prune command saves masked weights as zeros: they stay masked
    let dp = try Parallel.context()
    try dp?.checkAgreement(model: student.model, settings: [
        "model": model, "teacher": teacher, "input": input, "sentences": "\(sentences.count)", "epochs": "\(epochs)", "batch": "\(batch)",
        "lr": "\(lr)", "loss": loss.rawValue, "seed": "\(seed)", "cosine": "\(cosine)", "token-weight": "\(tokenWeight)",
        "threads": "\(Runtime.threads)", "gradual": plan.map { "\($0)" } ?? "none"])
    // a resume must continue the same run: same folders, sentences, schedule and hyperparameters
    let settings = ["finetune.input": model, "finetune.teacher": teacher, "finetune.sentences": input,
                    "finetune.sentence_count": "\(sentences.count)", "finetune.epochs": "\(epochs)", "finetune.lr": "\(lr)",
                    "finetune.batch": "\(batch)", "finetune.seed": "\(seed)", "finetune.cosine": "\(cosine)",
                    "finetune.loss": loss.rawValue, "finetune.token_weight": "\(tokenWeight)",
                    "finetune.gradual": plan.map { "\($0)" } ?? "none"]
    let policy = checkpoint.map { CheckpointPolicy(path: $0.path, everySteps: $0.every, settings: settings) }
    if let checkpoint, checkpoint.resume, FileManager.default.fileExists(atPath: checkpoint.path) {
        let m = (try? SafeTensors.read(checkpoint.path).metadata) ?? [:]
        let at = m["ckpt.step"].map { s in ": epoch \((Int(m["ckpt.epoch"] ?? "") ?? 0) + 1), batch \(m["ckpt.batch"] ?? "?"), step \(s)" } ?? ""
        FileHandle.standardError.write(Data("resuming from \(checkpoint.path)\(at)\n".utf8))
    }
    let r = try SentenceDistillation.fineTune(student: student, teacher: dense, tokenizer: tokenizer, sentences: sentences,
                                              config: .init(epochs: epochs, batchSize: batch, learningRate: lr, loss: loss,
                                                            seed: seed, cosineDecay: cosine, tokenWeight: tokenWeight, dataParallel: dp,
                                                            gradual: plan),
                                              checkpoint: policy, resume: checkpoint?.resume ?? false, progress: bar.update)
    guard Parallel.isWriter else { return } // rank 0 writes and reports
    var meta = ["prunekit.finetuned": "\(loss.rawValue) token weight \(tokenWeight) \(epochs) epochs lr \(lr) from \(model)"]
    if let plan { meta["prunekit.pruned"] = "gradual \(plan.structure) \(plan.method.rawValue) to \(plan.target) (\(plan.curve.rawValue) over \(plan.steps) steps)" }
    try SentenceEncoderFolder.save(student, to: out, copyingFrom: model, metadata: meta, layout: layout)
    let weights = student.linears.map(\.weight)
    let sparsity = Double(weights.reduce(0) { $0 + $1.effectiveMask.prunedCount }) / Double(weights.reduce(0) { $0 + $1.count })
    var o: [String: Any] = ["model": out, "epochs": epochs, "epoch_losses": r.epochLosses, "train_seconds": r.seconds,
                            "sentences_per_second": Double(sentences.count * epochs) / max(r.seconds, 1e-9), "sparsity": sparsity]
    if let plan {
        o["gradual"] = ["target": plan.target, "structure": "\(plan.structure)", "method": plan.method.rawValue, "scope": plan.scope.rawValue,
                        "schedule": plan.curve.rawValue, "schedule_steps": plan.steps, "prune_every": plan.every,
                        "updates": r.maskUpdates.map { ["step": $0.step, "sparsity": $0.sparsity] }] as [String: Any]
    }
    if let dp { o.merge(dataParallelReport(dp)) { a, _ in a } }
    if json { printJSON(o) } else { for k in o.keys.sorted() { print("\(k): \(o[k]!)") } }
}
