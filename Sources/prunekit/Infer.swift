import ArgumentParser
import Foundation
import PruneKit

/// `prunekit infer`: runs a model (an ONNX file or a PruneKit safetensors model file) on an array
/// of inputs and writes the outputs.
struct Infer: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a model (.onnx, or a PruneKit model file) on inputs from .npy or .safetensors; write the outputs.")
    @Option(name: .customLong("model-file"), help: "Model: an ONNX file (.onnx) or a PruneKit model file (safetensors).")
    var modelFile: String
    @Option(help: "Inputs: a float32 .npy array [N, ...], or a .safetensors file with tensor 'x' (or a single tensor).")
    var input: String
    @Option(help: "Outputs: .npy, or .safetensors (tensor 'y'). Written atomically.")
    var output: String
    @Option(parsing: .unconditional, help: "Rows per forward pass.") var batch: Int = 256
    @OptionGroup var threadOption: ThreadOption

    func validate() throws {
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        for (flag, path) in [("--input", input), ("--output", output)] where !(path.hasSuffix(".npy") || path.hasSuffix(".safetensors")) {
            throw ValidationError("\(flag) \(path): expected a .npy or .safetensors file")
        }
    }

    func run() throws {
        try guarded {
            try threadOption.apply()
            let model = modelFile.lowercased().hasSuffix(".onnx") ? try ONNXModel.load(modelFile).model : try ModelFile.load(modelFile).model
            let x: Tensor
            if input.hasSuffix(".npy") {
                x = try NPY.read(input)
            } else {
                let all = try SafeTensors.read(input).tensors
                guard let t = all["x"] ?? (all.count == 1 ? all.values.first : nil) else {
                    throw IOError(file: input, reason: "no tensor 'x' (tensors: \(all.keys.sorted().joined(separator: ", ")))")
                }
                x = t
            }
            guard x.rank >= 1, x.shape[0] >= 1 else { throw IOError(file: input, reason: "shape \(x.shape) holds no rows") }
            var parts: [Tensor] = []
            var start = 0
            while start < x.shape[0] {
                let n = min(batch, x.shape[0] - start)
                parts.append(try model.forward(x.rows(start, n), training: false))
                start += n
            }
            let rowShape = Array(parts[0].shape.dropFirst())
            let y = try Tensor(shape: [x.shape[0]] + rowShape, scalars: parts.flatMap(\.scalars))
            if output.hasSuffix(".npy") { try NPY.write(y, to: output) } else { try SafeTensors.write(["y": y], to: output) }
            print("\(output): \(y.shape) from \(x.shape[0]) inputs through \(modelFile)")
        }
    }
}
