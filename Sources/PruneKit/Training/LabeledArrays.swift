import Foundation

/// A labelled training or test set from array files: inputs `x` and integer labels `y`, from an
/// .npz archive (np.savez / np.savez_compressed) or a safetensors file.
///
/// `x` holds N examples of the model's input shape (or N flat rows of as many values), of any
/// numeric type; its values are raw inputs that the model's input contract turns into the numbers
/// the model sees (`InputNormalization.apply`: `none` keeps them as they are). `y` holds N integer
/// class indices in [0, classes) (integral floats are accepted).
public enum LabeledArrays {
    /// Reads `path` (.npz or .safetensors, by its extension), checks it and applies `normalization` to
    /// `x`; returns N examples of shape `inputShape`. Throws `IOError` naming the file when it cannot be
    /// read, `x` or `y` is missing, `x` does not hold N × `inputShape` values or holds NaN or infinity, or
    /// a label is not an integer in [0, `classes`).
    public static func load(_ path: String, inputShape: [Int], classes: Int,
                            normalization: InputNormalization) throws -> LabeledImages {
        func fail(_ why: String) -> IOError { IOError(file: path, reason: why) }
        var x: Tensor, y: [Int64]
        let lower = path.lowercased()
        if lower.hasSuffix(".npz") {
            let arrays = try NPZ.read(path)
            guard let xa = arrays["x"], let ya = arrays["y"] else {
                throw fail("needs arrays 'x' and 'y' (has: \(arrays.keys.sorted().joined(separator: ", ")))")
            }
            x = xa.values
            guard let yi = ya.integers ?? integral(ya.values.scalars) else { throw fail("'y' holds labels that are not integers") }
            y = yi
            guard ya.shape.count == 1 || (ya.shape.count == 2 && ya.shape[1] == 1) else { throw fail("'y' of shape \(ya.shape) is not [N]") }
        } else if lower.hasSuffix(".safetensors") {
            let all = try SafeTensors.readAll(path)
            guard let xt = all.tensors["x"], let yt = all.tensors["y"] else {
                throw fail("needs tensors 'x' and 'y' (has: \(all.tensors.keys.sorted().joined(separator: ", ")))")
            }
            x = xt
            guard let yi = all.integers["y"] ?? integral(yt.scalars) else { throw fail("'y' holds labels that are not integers") }
            y = yi
            guard yt.rank == 1 || (yt.rank == 2 && yt.shape[1] == 1) else { throw fail("'y' of shape \(yt.shape) is not [N]") }
        } else {
            throw fail("expected an .npz or .safetensors file with arrays 'x' and 'y'")
        }
        let n = x.shape.first ?? 0
        let per = inputShape.reduce(1, *)
        guard x.rank >= 1, n > 0 else { throw fail("'x' of shape \(x.shape) holds no examples") }
        guard x.count == n * per else {
            throw fail("'x' of shape \(x.shape) does not hold [N] + \(inputShape) inputs (\(per) values each)")
        }
        guard y.count == n else { throw fail("'y' holds \(y.count) labels for \(n) inputs") }
        if let bad = y.firstIndex(where: { $0 < 0 || $0 >= Int64(classes) }) {
            throw fail("label y[\(bad)] = \(y[bad]) is outside [0, \(classes)) (the model has \(classes) outputs)")
        }
        guard x.isFinite else { throw fail("'x' holds NaN or infinity") }
        if normalization != .none { x = x.map { normalization.apply($0) } }
        return try LabeledImages(images: x.reshaped([n] + inputShape), labels: y.map { Int32($0) })
    }

    /// Float labels that are all whole numbers, as integers (nil otherwise).
    static func integral(_ v: [Float]) -> [Int64]? {
        guard v.allSatisfy({ $0.isFinite && $0.rounded() == $0 && abs($0) < 1e9 }) else { return nil }
        return v.map { Int64($0) }
    }
}
