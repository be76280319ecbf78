import ArgumentParser
import Foundation
import PruneKit

extension FineTune {
    /// `finetune --model-file P.onnx --data train.npz|DIR ... --out T.onnx`: fine-tunes an ONNX model with
    /// its zeros fixed (every exact zero of a prunable weight is masked), BatchNorm in training mode,
    /// optionally distilled from `--teacher M.onnx`, and writes it back as ONNX with its input
    /// contract in the metadata properties. The contract is never assumed: the file records it or
    /// the caller gives it.
    func fineTuneONNX(_ modelFile: String) throws {
        guard out.lowercased().hasSuffix(".onnx") else { throw ValidationError("--out \(out): an ONNX model is written as a .onnx file") }
        guard checkpoint == nil, !resume else { throw ValidationError("--checkpoint and --resume are not supported for ONNX models") }
        guard layout == .plain else { throw ValidationError("--layout \(layout.rawValue): an ONNX file holds plain weights (zeros in place)") }
        try AtomicFile.checkWritable(out)
        let onnx = try ONNXModel.load(modelFile)
        let model = onnx.model
        let requested = try normalization.requested()
        guard requested != nil || onnx.metadata[InputNormalization.nameKey] != nil else {
            throw ValidationError("\(modelFile) records no input normalisation: give --normalize none|unit|mean-std or --mean M --std S "
                                  + "(how the data's x values become the model's inputs; it is stored in \(out))")
        }
        let contract = try InputNormalization.resolve(requested: requested, metadata: onnx.metadata, file: modelFile).contract
        let output = try model.forward(Tensor(zeros: [1] + model.inputShape))
        guard output.rank == 2 else { throw ValidationError("\(modelFile): outputs of shape \(output.shape) are not [batch, classes] logits") }
        let classes = output.shape[1]
        var isDir: ObjCBool = false
        let fashion = FileManager.default.fileExists(atPath: dataOption.data, isDirectory: &isDir) && isDir.boolValue
        func images(_ train: Bool) throws -> LabeledImages {
            let d = try FashionMNIST.load(directory: dataOption.data, train: train, normalization: contract)
            guard model.inputShape.reduce(1, *) == 784, classes == 10 else {
                throw ValidationError("\(modelFile) takes \(model.inputShape) inputs and gives \(classes) outputs, not Fashion-MNIST's 28×28 images "
                                      + "and 10 classes: give --data FILE.npz|.safetensors")
            }
            return try d.reshapedImages(model.inputShape)
        }
        let train = fashion ? try images(true)
            : try LabeledArrays.load(dataOption.data, inputShape: model.inputShape, classes: classes, normalization: contract)
        let test = try testData.map { try LabeledArrays.load($0, inputShape: model.inputShape, classes: classes, normalization: contract) }
            ?? (fashion ? try images(false) : nil)
        let teacherModel = try teacher.map { path -> Model in
            let t: Model
            if path.lowercased().hasSuffix(".onnx") {
                let o = try ONNXModel.load(path)
                if let own = try InputNormalization.recorded(in: o.metadata, file: path), own != contract {
                    throw ValidationError("teacher \(path) records the input normalisation \(own), the student \(modelFile) uses \(contract)")
                }
                t = o.model
            } else {
                t = try ModelFile.load(path).model
            }
            guard t.inputShape.reduce(1, *) == model.inputShape.reduce(1, *),
                  try t.forward(Tensor(zeros: [1] + t.inputShape)).shape == output.shape else {
                throw ValidationError("teacher \(path) takes \(t.inputShape) inputs with other outputs than the student's \(model.inputShape) → \(classes)")
            }
            return t
        }
        let masked = try model.maskZeroWeights()
        model.setExecution(execution.value)
        let before = try test.map { try Trainer.evaluate(model, data: $0) }
        let opt = try Adam(learningRate: lr)
        let bar = ProgressBar(label: "finetune")
        let r = try FineTuner.fineTune(model, data: train,
                                       config: FineTuneConfig(epochs: epochs, learningRate: lr, batchSize: batch, seed: seed,
                                                              cosineDecay: !constantLr,
                                                              distillation: Distillation(alpha: kdAlpha, temperature: kdTemperature)),
                                       teacher: teacherModel, optimizer: opt, progress: bar.update)
        let after = try test.map { try Trainer.evaluate(model, data: $0) }
        let settings = ["prunekit.finetune": "epochs \(epochs), lr \(lr), batch \(batch), seed \(seed)"
                        + (teacher.map { ", teacher \(($0 as NSString).lastPathComponent)" } ?? "")]
        try onnx.write(to: out, metadata: contract.metadata.merging(settings) { a, _ in a })
        let sp = SparsityReport(model: model).sparsity
        if json {
            var o: [String: Any] = ["model_file": out, "normalize": "\(contract)", "epochs": epochs, "sparsity": sp,
                                    "masked_zeros": masked, "train_examples": train.count, "epoch_losses": r.epochLosses,
                                    "train_seconds": r.trainSeconds, "samples_per_second": r.samplesPerSecond]
            if let before, let after {
                o["test_accuracy_before"] = before.accuracy
                o["test_loss_before"] = before.loss
                o["test_accuracy"] = after.accuracy
                o["test_loss"] = after.loss
            }
            printJSON(o)
        } else {
            let acc = after.map { String(format: "test accuracy %.4f (before %.4f), ", $0.accuracy, before!.accuracy) } ?? ""
            print(acc + String(format: "sparsity %.2f%%; saved %@", 100 * sp, out))
        }
    }
}
