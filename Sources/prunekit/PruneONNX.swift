import ArgumentParser
import Foundation
import PruneKit

extension PruneCommand {
    /// `prune --model-file M.onnx ... --out P.onnx`: prunes the imported graph (channels and neurons
    /// through the dependency graph, then removed physically; unstructured, N:M and block as zeros
    /// in place) and writes it back as ONNX. L1 and random importance only: taylor and wanda need
    /// labelled data in the model's own input format, which an ONNX file does not describe.
    func pruneONNX(_ modelFile: String, _ request: PruningRequest) throws {
        try normalization.refuse("ONNX models (their input normalisation is whatever they were trained with)")
        guard out.lowercased().hasSuffix(".onnx") else { throw ValidationError("--out \(out): an ONNX model is written as a .onnx file") }
        guard request.method == .l1 || request.method == .random else {
            throw ValidationError("--method \(request.method.rawValue) needs training data in the model's input format; ONNX models are pruned by l1 or random")
        }
        try AtomicFile.checkWritable(out)
        let onnx = try ONNXModel.load(modelFile)
        let model = onnx.model
        let macsBefore = try? DependencyGraph(model).macs
        let paramsBefore = model.parameterCount
        try ModelPruner.prune(model, request)
        var removed: [String: Int] = [:]
        if request.structure == .channels || request.structure == .neurons {
            removed = try DependencyGraph(model).removePrunedUnits().removedUnits
        }
        let note = "\(request.method.rawValue) \(request.structure) \(request.scope.rawValue) \(request.amount)"
        try onnx.write(to: out, metadata: ["prunekit.pruned": note])
        let report = SparsityReport(model: model)
        let macsAfter = try? DependencyGraph(model).macs
        var o: [String: Any] = ["model_file": out, "sparsity": report.sparsity, "kept": report.kept, "total": report.total,
                                "parameters": model.parameterCount, "report": report.dictionary,
                                "macs_before": macsBefore.map { $0 as Any } ?? NSNull(), "macs_after": macsAfter.map { $0 as Any } ?? NSNull(),
                                "params_before": paramsBefore, "params_after": model.parameterCount,
                                "amount": amountDescription(request.amount, request.structure)]
        if !removed.isEmpty { o["units_removed"] = removed }
        if json { printJSON(o) } else {
            print(report.table)
            print("amount: \(amountDescription(request.amount, request.structure))")
            if let a = macsBefore, let b = macsAfter { print("MACs \(a) → \(b), parameters \(paramsBefore) → \(model.parameterCount)") }
            print("saved \(out)")
        }
    }
}
