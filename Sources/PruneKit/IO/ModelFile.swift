import Foundation

/// Saving and loading whole models as safetensors with PyTorch state_dict names.
///
/// Three layouts are read and written: plain (`fc1.weight` with zeros in place, plus
/// `fc1.weight_mask` when PruneKit keeps the mask), PyTorch's pruned form (`fc1.weight_orig` +
/// `fc1.weight_mask`, as torch.nn.utils.prune leaves a state_dict) and compressed: each pruned
/// weight (viewed as its first dimension × the rest) in the compressed format it runs in, or the
/// first structured format its mask allows, its shape and format in the metadata (`fc1.weight.shape`,
/// `fc1.weight.format`): CSR as `fc1.weight.crow_indices`, `.col_indices` (I32) and `.values` (F32),
/// ready for torch.sparse_csr_tensor; blocks as the same three arrays with values blocks × br × bc,
/// ready for torch.sparse_bsr_tensor; packed N:M as `.values` (F32) and `.nm_indices` (U8: the
/// column within each group of m, 0x80 on padding slots). The architecture is recorded in the
/// metadata (`prunekit.arch`).
public enum ModelFile {
    /// How a pruned weight is stored: `plain` (`name` with zeros where pruned, plus `name_mask`),
    /// `pytorchPruned` (`name_orig` plus `name_mask`, as torch.nn.utils.prune leaves them) or `compressed`
    /// (the weight's compressed arrays, with its shape and format in the metadata).
    public enum Layout: String, Sendable {
        /// Zeros where pruned plus `name_mask`; `name_orig` plus `name_mask`; the compressed arrays.
        case plain, pytorchPruned, compressed
    }

    /// The metadata key of a file written in the compressed layout (value "compressed").
    static let layoutKey = "prunekit.layout"

    /// The tensors of a model under its state_dict names.
    public static func stateDict(_ model: Model, layout: Layout = .plain, includeMasks: Bool = true) -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (name, p) in model.namedParameters {
            if let mask = p.mask, includeMasks {
                let maskTensor = try! Tensor(shape: mask.shape, scalars: mask.floats)
                switch layout {
                case .plain, .compressed: out[name] = p.value // (save() writes the compressed layout itself)
                case .pytorchPruned: out[name + "_orig"] = p.value
                }
                out[name + "_mask"] = maskTensor
            } else {
                out[name] = p.value
            }
        }
        for (name, b) in model.namedBuffers { out[name] = b.value }
        return out
    }

    /// Writes a model atomically.
    public static func save(_ model: Model, to path: String, layout: Layout = .plain, extraMetadata: [String: String] = [:]) throws {
        // a file PruneKit would refuse to load is never written
        for (name, p) in model.namedParameters where !p.value.isFinite {
            throw IOError(file: path, reason: "parameter '\(name)' contains NaN or infinite values; nothing written")
        }
        for (name, b) in model.namedBuffers where !b.value.isFinite {
            throw IOError(file: path, reason: "buffer '\(name)' contains NaN or infinite values; nothing written")
        }
        var meta = extraMetadata
        meta["prunekit.arch"] = model.architecture
        meta["prunekit.input_shape"] = model.inputShape.map(String.init).joined(separator: ",")
        meta["format"] = "pt"
        guard layout == .compressed else {
            try SafeTensors.write(stateDict(model, layout: layout), metadata: meta, to: path)
            return
        }
        var tensors: [String: Tensor] = [:]
        for (name, b) in model.namedBuffers { tensors[name] = b.value }
        let (integers, bytes) = try compressedEntries(model.namedParameters, tensors: &tensors, metadata: &meta)
        meta[layoutKey] = "compressed"
        try SafeTensors.write(tensors, integers: integers, bytes: bytes, metadata: meta, to: path)
    }

    /// The compressed layout's entries of `parameters` (under their names): each pruned weight of rank
    /// ≥ 2 (viewed as its first dimension × the rest) in the form it runs in, else the first
    /// structured format its mask allows, else CSR, with its shape and format in `metadata`; other
    /// parameters whole in `tensors`. Returns the integer and byte arrays to write beside them.
    static func compressedEntries(_ parameters: [(name: String, parameter: Parameter)], tensors: inout [String: Tensor],
                                  metadata meta: inout [String: String])
        throws -> (integers: [String: (shape: [Int], values: [Int32])], bytes: [String: (shape: [Int], values: [UInt8])]) {
        var integers: [String: (shape: [Int], values: [Int32])] = [:], bytes: [String: (shape: [Int], values: [UInt8])] = [:]
        for (name, p) in parameters {
            guard p.isPruned, p.shape.count >= 2 else { tensors[name] = p.value; continue }
            let c: any CompressedWeight
            if let pc = p.compressed { c = pc } else {
                let rows = p.shape[0], cols = p.count / rows, mask = p.effectiveMask
                let format = try CompressedFormat.allowed(by: mask.storage, rows: rows, cols: cols).first ?? .csr
                c = try format.compress(p.value.reshaped([rows, cols]), mask: Mask(shape: [rows, cols], storage: mask.storage))
            }
            let a = c.fileArrays
            for (suffix, f) in a.floats { tensors[name + suffix] = try Tensor(shape: f.shape, scalars: f.values) }
            for (suffix, i) in a.integers { integers[name + suffix] = i }
            for (suffix, b) in a.bytes { bytes[name + suffix] = b }
            meta[name + ".shape"] = p.shape.map(String.init).joined(separator: ",")
            meta[name + ".format"] = "\(c.format)"
        }
        return (integers, bytes)
    }

    /// Turns the compressed entries of a file back into dense tensors and masks (validated). A
    /// weight's format is its `<name>.format` metadata (CSR when absent, as files before it).
    static func expandCompressed(_ tensors: [String: Tensor], _ integers: [String: [Int64]], _ meta: [String: String]) throws -> [String: Tensor] {
        var out = tensors
        for key in tensors.keys where key.hasSuffix(".values") {
            let name = String(key.dropLast(".values".count))
            func bad(_ why: String) -> IOError { IOError(file: name, reason: "compressed weight: \(why)") }
            let format: CompressedFormat
            if let f = meta[name + ".format"] {
                guard let parsed = CompressedFormat(f) else { throw bad("unknown format '\(f)'") }
                format = parsed
            } else { format = .csr }
            guard let shape = meta[name + ".shape"].map({ $0.split(separator: ",").compactMap { Int($0) } }),
                  shape.count >= 2, shape.allSatisfy({ $0 > 0 }) else { throw bad("needs a shape") }
            let rows = shape[0]
            var cols = 1
            for d in shape.dropFirst() {
                let (p, o) = cols.multipliedReportingOverflow(by: d)
                guard !o, p <= Int(Int32.max) else { throw bad("shape \(shape) is too large") }
                cols = p
            }
            guard rows <= Int(Int32.max) / max(cols, 1) else { throw bad("shape \(shape) is too large") }
            var floats: [String: [Float]] = [:], ints: [String: [Int64]] = [:]
            for suffix in format.fileSuffixes {
                if let i = integers[name + suffix] { ints[suffix] = i } else if let t = tensors[name + suffix] { floats[suffix] = t.scalars }
            }
            let (dense, kept): ([Float], [Bool])
            do { (dense, kept) = try format.expand(rows: rows, cols: cols, floats: floats, integers: ints) } catch let e as StructureError {
                throw bad("\(format): \(e.rule)")
            }
            for suffix in format.fileSuffixes { out[name + suffix] = nil }
            out[name] = try Tensor(shape: shape, scalars: dense)
            out[name + "_mask"] = try Tensor(shape: shape, scalars: kept.map { $0 ? 1 : 0 })
        }
        return out
    }

    /// Loads a model: builds its architecture (from the metadata, or `architecture` when given) and
    /// assigns every parameter, validating names and shapes before anything is changed.
    public static func load(_ path: String, architecture: String? = nil) throws -> (model: Model, metadata: [String: String]) {
        let all = try SafeTensors.readAll(path)
        let meta = all.metadata
        if let asked = architecture, let recorded = meta["prunekit.arch"], asked != recorded {
            throw IOError(file: path, reason: "records architecture '\(recorded)', not the '\(asked)' asked for")
        }
        let tensors: [String: Tensor]
        do { tensors = try expandCompressed(all.tensors, all.integers, meta) } catch let e as IOError {
            throw IOError(file: path, reason: "\(e.file): \(e.reason)")
        }
        guard let arch = architecture ?? meta["prunekit.arch"] ?? guessArchitecture(tensors) else {
            throw IOError(file: path, reason: "no 'prunekit.arch' metadata and the tensors match no known architecture")
        }
        let model: Model
        let inputShape = meta["prunekit.input_shape"].map { $0.split(separator: ",").compactMap { Int($0) } }
        let imageSize = inputShape.flatMap { $0.count == 3 ? $0[2] : nil } ?? 28
        do { model = try Model.build(arch, shapesFrom: tensors, imageSize: imageSize) } catch { throw IOError(file: path, reason: "\(error)") }
        do { try assign(tensors, to: model) } catch { throw IOError(file: path, reason: "\(error)") }
        return (model, meta)
    }

    /// Loads a file's weights, masks and buffers into a model the caller built (any layout PruneKit
    /// writes: plain, PyTorch's pruned form, compressed). Names and shapes are checked first and
    /// nothing changes on error; a file that records another architecture than `model.architecture`
    /// is refused. Returns the file's metadata.
    @discardableResult
    public static func load(_ path: String, into model: Model) throws -> [String: String] {
        let all = try SafeTensors.readAll(path)
        if let recorded = all.metadata["prunekit.arch"], recorded != model.architecture {
            throw IOError(file: path, reason: "records architecture '\(recorded)', the model is '\(model.architecture)'")
        }
        let tensors: [String: Tensor]
        do { tensors = try expandCompressed(all.tensors, all.integers, all.metadata) } catch let e as IOError {
            throw IOError(file: path, reason: "\(e.file): \(e.reason)")
        }
        do { try assign(tensors, to: model) } catch { throw IOError(file: path, reason: "\(error)") }
        return all.metadata
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
        var buffers: [(Buffer, Tensor)] = []
        for (name, b) in model.namedBuffers {
            guard let v = tensors[name] else { throw ModelError.missingTensor(name) }
            used.insert(name)
            guard v.shape == b.shape || (b.shape.isEmpty && v.count == 1) else {
                throw ModelError.shapeMismatch(name: name, expected: b.shape, got: v.shape)
            }
            guard v.isFinite else { throw TensorError.nonFinite("tensor '\(name)'") }
            buffers.append((b, try v.reshaped(b.shape)))
        }
        if let extra = tensors.keys.sorted().first(where: { !used.contains($0) }) { throw ModelError.unexpectedTensor(extra) }
        for (p, v, m) in plan {
            p.removeMask()
            try p.assign(v)
            if let m { try p.setMask(m) }
        }
        for (b, v) in buffers { b.value = v }
    }

    static func guessArchitecture(_ tensors: [String: Tensor]) -> String? {
        let names = Set(tensors.keys.map { $0.replacingOccurrences(of: "_orig", with: "") })
        if names.contains("fc1.weight") && names.contains("fc3.weight") { return "mlp" }
        if names.contains("features.18.0.weight") && names.contains("classifier.1.weight") { return "mobilenetv2" }
        if names.contains("layer4.1.conv2.weight") && names.contains("fc.weight") { return "resnet18" }
        if names.contains("layer3.2.conv2.weight") && names.contains("fc.weight") { return "resnet20" }
        if names.contains("conv1.weight") && names.contains("fc.weight") { return "cnn" }
        return nil
    }
}
