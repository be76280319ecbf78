import ArgumentParser
import Foundation
import PruneKit

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train LeNet-300-100, prune it globally at several sparsities with fine-tuning, compare 2:4 and block masks with unstructured ones, write a report folder.")
    @Option(help: "Report folder.") var out: String = "report"
    @Option(parsing: .unconditional, help: "Dense training epochs.") var epochs: Int = 5
    @Option(parsing: .unconditional, help: "Fine-tuning epochs after each pruning.") var finetuneEpochs: Int = 2
    @Option(help: "Comma-separated global sparsities.") var sparsities: String = "0.5,0.8,0.9,0.95,0.98"
    @Option(help: "Random seed.") var seed: UInt64 = 0
    @OptionGroup var dataOption: DataOption
    @OptionGroup var normalization: NormalizationOption
    @OptionGroup var threadOption: ThreadOption

    func run() throws {
        try guarded {
            try threadOption.apply()
            let levels = try sparsities.split(separator: ",").map { s -> Double in
                guard let v = Double(s), v >= 0, v < 1 else { throw ValidationError("--sparsities: '\(s)' is not in [0, 1)") }
                return v
            }
            let contract = try normalization.forNewModel()
            guard epochs >= 1, finetuneEpochs >= 0 else { throw ValidationError("--epochs must be at least 1 and --finetune-epochs at least 0") }
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            let train = try FashionMNIST.load(directory: dataOption.data, train: true, normalization: contract)
            let test = try FashionMNIST.load(directory: dataOption.data, train: false, normalization: contract)
            let recorded = contract.metadata
            func log(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }
            func acc(_ m: Model) throws -> Double { try Trainer.evaluate(m, data: test).accuracy }
            let started = Date()

            log("[1/5] training LeNet-300-100 (\(epochs) epochs, Adam 1e-3, batch 128, seed \(seed))")
            let dense = Model.mlp(seed: seed)
            let tr = try Trainer.train(dense, data: train, optimizer: try Adam(),
                                       config: TrainingConfig(epochs: epochs, batchSize: 128, seed: seed),
                                       progress: ProgressBar(label: "train").update)
            let densePath = out + "/dense.safetensors"
            try ModelFile.save(dense, to: densePath, extraMetadata: recorded)
            let denseAcc = try acc(dense)
            log(String(format: "      dense test accuracy %.4f (%.0f samples/s)", denseAcc, tr.samplesPerSecond))

            log("[2/5] dense control: the same \(finetuneEpochs) fine-tuning epochs without pruning")
            let control = try ModelFile.load(densePath).model
            _ = try FineTuner.fineTune(control, data: train, config: FineTuneConfig(epochs: finetuneEpochs, seed: seed),
                                       progress: ProgressBar(label: "control").update)
            let controlAcc = try acc(control)
            log(String(format: "      control test accuracy %.4f", controlAcc))

            // the dense model pruned one-shot by `request`, then fine-tuned: the model and its accuracy before and after
            func pruneAndTune(_ request: PruningRequest, label: String) throws -> (model: Model, before: Double, after: Double) {
                let m = try ModelFile.load(densePath).model
                try ModelPruner.prune(m, request)
                let before = try acc(m)
                _ = try FineTuner.fineTune(m, data: train, config: FineTuneConfig(epochs: finetuneEpochs, seed: seed),
                                           progress: ProgressBar(label: label).update)
                return (m, before, try acc(m))
            }

            log("[3/5] global L1 one-shot pruning + \(finetuneEpochs) epochs of fine-tuning (Adam 3e-3, cosine decay)")
            var rows: [[String: Any]] = []
            var tables = "# Per-layer sparsity\n"
            for s in levels {
                let (m, before, after) = try pruneAndTune(
                    PruningRequest(method: .l1, structure: .unstructured, scope: .global, amount: .fraction(s)),
                    label: String(format: "%.0f%%", 100 * s))
                let rep = SparsityReport(model: m)
                try ModelFile.save(m, to: out + String(format: "/pruned-%02.0f.safetensors", 100 * s), extraMetadata: recorded)
                tables += String(format: "\n## %.0f%% global L1\n\n", 100 * s) + rep.table + "\n"
                rows.append(["sparsity": rep.sparsity, "requested": s, "accuracy_before_finetune": before,
                             "accuracy_after_finetune": after, "delta_vs_control": after - controlAcc, "layers": rep.dictionary])
                log(String(format: "      %.0f%%: %.4f before, %.4f after fine-tuning (%+.2f points vs control)",
                           100 * s, before, after, 100 * (after - controlAcc)))
            }

            log("[4/5] 50% of hidden neurons pruned (L1 norm), fine-tuned, then physically removed")
            let nm = try ModelFile.load(densePath).model
            try ModelPruner.prune(nm, PruningRequest(method: .l1, structure: .neurons, scope: .layer, amount: .fraction(0.5)))
            _ = try FineTuner.fineTune(nm, data: train, config: FineTuneConfig(epochs: finetuneEpochs, seed: seed),
                                       progress: ProgressBar(label: "neurons").update)
            let maskedAcc = try acc(nm)
            let (small, surgery) = try Surgery.removePrunedUnits(nm)
            let smallAcc = try acc(small)
            try ModelFile.save(small, to: out + "/neurons-50-removed.safetensors", extraMetadata: recorded)
            let (tDense, tSmall) = try inferenceSeconds(control, small, test)
            log(String(format: "      masked %.4f, removed %.4f; %d → %d parameters; inference %.1f× faster",
                       maskedAcc, smallAcc, surgery.parametersBefore, surgery.parametersAfter, tDense / tSmall))

            log("[5/5] structured masks (per-layer L1) beside unstructured at the same sparsity, fine-tuned alike")
            var structured: [[String: Any]] = []
            for (structure, amount) in [(PruningRequest.Structure.unstructured, 0.5), (.nm(2, 4), 0.5), (.block(4, 4), 0.5),
                                        (.unstructured, 0.9), (.block(4, 4), 0.9)] {
                let (m, before, after) = try pruneAndTune(
                    PruningRequest(method: .l1, structure: structure, scope: .layer, amount: .fraction(amount)), label: "\(structure)")
                let sparsity = SparsityReport(model: m).sparsity
                structured.append(["structure": "\(structure)", "requested": amount, "sparsity": sparsity,
                                   "accuracy_before_finetune": before, "accuracy_after_finetune": after,
                                   "delta_vs_control": after - controlAcc])
                log(String(format: "      %@ at %.0f%%: %.4f before, %.4f after fine-tuning (%+.2f points vs control)",
                           "\(structure)", 100 * sparsity, before, after, 100 * (after - controlAcc)))
            }

            let summary: [String: Any] = [
                "model": "LeNet-300-100", "dataset": "Fashion-MNIST", "normalize": "\(contract)", "threads": Runtime.threads, "seed": seed,
                "dense": ["test_accuracy": denseAcc, "epochs": epochs, "samples_per_second": tr.samplesPerSecond],
                "dense_control": ["test_accuracy": controlAcc, "finetune_epochs": finetuneEpochs],
                "global_l1": rows,
                "neurons_50": ["masked_accuracy": maskedAcc, "removed_accuracy": smallAcc,
                               "parameters_before": surgery.parametersBefore, "parameters_after": surgery.parametersAfter,
                               "units_removed": surgery.removedUnits, "inference_speedup": tDense / tSmall,
                               "delta_vs_control": smallAcc - controlAcc],
                "structured_layer_l1": structured,
                "finetune_defaults": "Adam, peak lr 3e-3 cosine-decayed to 0, batch 128, masks fixed",
                "seconds": Date().timeIntervalSince(started),
            ]
            let data = try JSONSerialization.data(withJSONObject: summary, options: [.sortedKeys, .prettyPrinted])
            try AtomicFile.write(data, to: out + "/summary.json")
            try AtomicFile.write(Data(tables.utf8), to: out + "/sparsity.md")
            try AtomicFile.write(Data(svgPlot(rows: rows, control: controlAcc, dense: denseAcc).utf8), to: out + "/accuracy-vs-sparsity.svg")
            print(String(format: "dense %.4f, control %.4f", denseAcc, controlAcc))
            for r in rows {
                print(String(format: "sparsity %.2f: %.4f → %.4f (%+.2f points vs control)", r["sparsity"] as! Double,
                             r["accuracy_before_finetune"] as! Double, r["accuracy_after_finetune"] as! Double,
                             100 * (r["delta_vs_control"] as! Double)))
            }
            print(String(format: "50%% neurons removed: %.4f (%+.2f points), %.1f× faster inference", smallAcc,
                         100 * (smallAcc - controlAcc), tDense / tSmall))
            for r in structured {
                print(String(format: "%@ at %.2f (per layer): %.4f → %.4f (%+.2f points vs control)", r["structure"] as! String,
                             r["sparsity"] as! Double, r["accuracy_before_finetune"] as! Double,
                             r["accuracy_after_finetune"] as! Double, 100 * (r["delta_vs_control"] as! Double)))
            }
            print("report written to \(out)/ (summary.json, sparsity.md, accuracy-vs-sparsity.svg)")
        }
    }
}

/// Median times of the forward passes of two models over the test set in batches of 1000 (batches
/// prepared first, so only the models are timed; runs interleaved, so machine drift hits both).
func inferenceSeconds(_ a: Model, _ b: Model, _ data: LabeledImages) throws -> (Double, Double) {
    let batches = try stride(from: 0, to: data.count, by: 1000).map { try data.images.rows($0, min(1000, data.count - $0)) }
    var ta: [Double] = [], tb: [Double] = []
    for r in 0..<17 {
        for (m, isA) in [(a, true), (b, false)] {
            let t0 = DispatchTime.now().uptimeNanoseconds
            for x in batches { _ = try m.forward(x, training: false) }
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
            if r >= 2 { if isA { ta.append(dt) } else { tb.append(dt) } }
        }
    }
    return (ta.sorted()[ta.count / 2], tb.sorted()[tb.count / 2])
}

/// Accuracy before and after fine-tuning against sparsity, with the dense and control lines.
func svgPlot(rows: [[String: Any]], control: Double, dense: Double) -> String {
    let w = 640.0, h = 400.0, l = 70.0, r = 20.0, t = 30.0, b = 50.0
    let xs = rows.map { $0["sparsity"] as! Double }
    let before = rows.map { $0["accuracy_before_finetune"] as! Double }, after = rows.map { $0["accuracy_after_finetune"] as! Double }
    let lo = max(0, ((before + after + [control]).min() ?? 0) - 0.02), hi = min(1, max(control, dense, after.max() ?? 1) + 0.01)
    func px(_ x: Double) -> Double { l + (x - 0.4) / 0.6 * (w - l - r) }
    func py(_ y: Double) -> Double { t + (hi - y) / (hi - lo) * (h - t - b) }
    func line(_ ys: [Double], _ color: String) -> String {
        let pts = zip(xs, ys).map { String(format: "%.1f,%.1f", px($0), py($1)) }.joined(separator: " ")
        let dots = zip(xs, ys).map { String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%@\"/>", px($0), py($1), color) }
        return "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(pts)\"/>" + dots.joined()
    }
    var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" font-family=\"sans-serif\" font-size=\"12\">"
    s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>"
    s += "<text x=\"\(Int(w / 2))\" y=\"18\" text-anchor=\"middle\" font-size=\"14\">LeNet-300-100 on Fashion-MNIST: global L1 pruning</text>"
    for i in 0...6 {
        let x = 0.4 + 0.1 * Double(i)
        s += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>", px(x), t, px(x), h - b)
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.0f%%</text>", px(x), h - b + 16, 100 * x)
    }
    for i in 0...5 {
        let y = lo + (hi - lo) * Double(i) / 5
        s += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>", l, py(y), w - r, py(y))
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.3f</text>", l - 6, py(y) + 4, y)
    }
    s += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#888\" stroke-dasharray=\"6 4\"/>", l, py(control), w - r, py(control))
    s += String(format: "<text x=\"%.1f\" y=\"%.1f\" fill=\"#666\">dense control %.4f</text>", l + 6, py(control) - 6, control)
    s += line(before, "#d62728") + line(after, "#1f77b4")
    s += "<text x=\"\(Int(w / 2))\" y=\"\(Int(h - 12))\" text-anchor=\"middle\">sparsity of the prunable weights</text>"
    s += "<text transform=\"translate(16,\(Int(h / 2))) rotate(-90)\" text-anchor=\"middle\">test accuracy</text>"
    s += String(format: "<rect x=\"%.0f\" y=\"%.0f\" width=\"12\" height=\"3\" fill=\"#1f77b4\"/><text x=\"%.0f\" y=\"%.0f\">after fine-tuning</text>", l + 10, h - b - 40, l + 28, h - b - 35)
    s += String(format: "<rect x=\"%.0f\" y=\"%.0f\" width=\"12\" height=\"3\" fill=\"#d62728\"/><text x=\"%.0f\" y=\"%.0f\">after pruning, before fine-tuning</text>", l + 10, h - b - 22, l + 28, h - b - 17)
    return s + "</svg>\n"
}
