import Foundation

/// Saving and loading whole models as safetensors with PyTorch state_dict names.
///
/// Two layouts are read and written: plain (`fc1.weight` with zeros in place, plus
/// `fc1.weight_mask` when PruneKit keeps the mask) and PyTorch's pruned form (`fc1.weight_orig` +
/// `fc1.weight_mask`, as torch.nn.utils.prune leaves a state_dict). The architecture is recorded in
/// the metadata (`prunekit.arch`).
public enum ModelFile {
    public enum Layout: String, Sendable { case plain, pytorchPruned }

    /// The tensors of a model under its state_dict names.
    public static func stateDict(_ model: Model, layout: Layout = .plain, includeMasks: Bool = true) -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (name, p) in model.namedParameters {
            if let mask = p.mask, includeMasks {
                let maskTensor = try! Tensor(shape: mask.shape, scalars: mask.floats)
                switch layout {
                case .plain: out[name] = p.value
                case .pytorchPruned: out[name + "_orig"] = p.value
                }
                out[name + "_mask"] = maskTensor
            } else {
                out[name] = p.value
            }
        }
        return out
    }

    /// Writes a model atomically.
    public static func save(_ model: Model, to path: String, layout: Layout = .plain, extraMetadata: [String: String] = [:]) throws {
        var meta = extraMetadata
        meta["prunekit.arch"] = model.architecture
        meta["format"] = "pt"
        try SafeTensors.write(stateDict(model, layout: layout), metadata: meta, to: path)
    }

    /// Loads a model: builds its architecture (from the metadata, or `architecture` when given) and
    /// assigns every parameter, validating names and shapes before anything is changed.
    public static func load(_ path: String, architecture: String? = nil) throws -> (model: Model, metadata: [String: String]) {
        let (tensors, meta) = try SafeTensors.read(path)
        guard let arch = architecture ?? meta["prunekit.arch"] ?? guessArchitecture(tensors) else {
            throw IOError(file: path, reason: "no 'prunekit.arch' metadata and the tensors match no known architecture")
        }
        let model: Model
        do { model = try Model.build(arch, shapesFrom: tensors) } catch { throw IOError(file: path, reason: "\(error)") }
        do { try assign(tensors, to: model) } catch { throw IOError(file: path, reason: "\(error)") }
        return (model, meta)
    }

    /// Assigns a state dict (either layout) to a model. All checks run first: on error nothing changes.
    public static func assign(_ tensors: [String: Tensor], to model: Model) throws {
        var plan: [(Parameter, Tensor, Mask?)] = []
        var used = Set<String>()
        for (name, p) in model.namedParameters {
            let value: Tensor
            if let v = tensors[name] { value = v; used.insert(name) }
            else if let v = tensors[name + "_orig"] { value = v; used.insert(name + "_orig") }
            else { throw ModelError.missingTensor(name) }
            guard value.shape == p.shape else { throw ModelError.shapeMismatch(name: name, expected: p.shape, got: value.shape) }
            guard value.isFinite else { throw TensorError.nonFinite("tensor '\(name)'") }
            var mask: Mask? = nil
            if let m = tensors[name + "_mask"] {
                used.insert(name + "_mask")
                guard m.shape == p.shape else { throw ModelError.shapeMismatch(name: name + "_mask", expected: p.shape, got: m.shape) }
                guard m.scalars.allSatisfy({ $0 == 0 || $0 == 1 }) else {
                    throw IOError(file: name + "_mask", reason: "mask values must be 0 or 1")
                }
                mask = try Mask(shape: m.shape, values: m.scalars)
            }
            plan.append((p, value, mask))
        }
        if let extra = tensors.keys.sorted().first(where: { !used.contains($0) }) { throw ModelError.unexpectedTensor(extra) }
        for (p, v, m) in plan {
            p.removeMask()
            try p.assign(v)
            if let m { try p.setMask(m) }
        }
    }

    static func guessArchitecture(_ tensors: [String: Tensor]) -> String? {
        let names = Set(tensors.keys.map { $0.replacingOccurrences(of: "_orig", with: "") })
        if names.contains("fc1.weight") && names.contains("fc3.weight") { return "mlp" }
        if names.contains("conv1.weight") && names.contains("fc.weight") { return "cnn" }
        return nil
    }
}
