import Foundation

/// Where a training run is: enough to continue it exactly (same seed and threads ⇒ same weights
/// as a run that was never interrupted).
public struct TrainingPosition: Sendable, Equatable {
    /// Epoch in progress (0-based) and batches of it already done.
    public var epoch: Int
    /// Batches of `epoch` already done: a resumed run skips that many.
    public var batch: Int
    /// Optimizer steps done in the whole run.
    public var step: Int
    /// The shuffling generator's state at the start of `epoch` (replays its order).
    public var samplerState: [UInt64]
    /// `samplerState` is four words, as `BatchSampler.rngState` gives it.
    public init(epoch: Int, batch: Int, step: Int, samplerState: [UInt64]) {
        self.epoch = epoch
        self.batch = batch
        self.step = step
        self.samplerState = samplerState
    }
}

/// Checkpoints: the model (with masks), the optimizer state and the training position in one
/// safetensors file, written to a temporary name, flushed and renamed into place — a run killed at
/// any moment leaves the previous checkpoint intact.
public enum Checkpoint {
    /// Writes `model` (plain layout, masks included), the optimizer's state and `position` to `path`
    /// atomically. `settings` go into the metadata, so a resume can check that they match. Throws
    /// `IOError` when the file cannot be written.
    public static func save(model: Model, optimizer: any Optimizer, position: TrainingPosition,
                            settings: [String: String] = [:], to path: String) throws {
        var tensors = ModelFile.stateDict(model)
        let (ot, om) = optimizer.exportState(model.namedParameters)
        tensors.merge(ot) { a, _ in a }
        var meta = settings.merging(om) { a, _ in a }
        meta["prunekit.arch"] = model.architecture
        meta["prunekit.checkpoint"] = "1"
        meta["ckpt.epoch"] = "\(position.epoch)"
        meta["ckpt.batch"] = "\(position.batch)"
        meta["ckpt.step"] = "\(position.step)"
        meta["ckpt.sampler"] = position.samplerState.map { String($0, radix: 16) }.joined(separator: ",")
        try SafeTensors.write(tensors, metadata: meta, to: path)
    }

    /// Loads a checkpoint: the model, the optimizer's tensors and metadata, and the position.
    public static func load(_ path: String) throws -> (model: Model, optimizerTensors: [String: Tensor],
                                                      metadata: [String: String], position: TrainingPosition) {
        let (tensors, meta, position, arch) = try read(path)
        let modelTensors = tensors.filter { !$0.key.hasPrefix("optim.") }
        let model: Model
        do {
            model = try Model.build(arch, shapesFrom: modelTensors)
            try ModelFile.assign(modelTensors, to: model)
        } catch { throw IOError(file: path, reason: "\(error)") }
        return (model, tensors.filter { $0.key.hasPrefix("optim.") }, meta, position)
    }

    /// Restores a checkpoint into `model`, a model of the same architecture and shapes built by the
    /// caller (e.g. an encoder loaded from the folder the run started from): its weights, masks and
    /// buffers are replaced. Returns the optimizer's tensors and metadata, and the position. Throws
    /// `IOError` naming the tensor when the checkpoint does not fit `model` (nothing changes then).
    public static func restore(_ path: String, into model: Model) throws -> (optimizerTensors: [String: Tensor],
                                                                            metadata: [String: String], position: TrainingPosition) {
        let (tensors, meta, position, arch) = try read(path)
        guard arch == model.architecture else {
            throw IOError(file: path, reason: "a checkpoint of a \(arch) model, not of this \(model.architecture) model")
        }
        do { try ModelFile.assign(tensors.filter { !$0.key.hasPrefix("optim.") }, to: model) } catch {
            throw IOError(file: path, reason: "\(error)")
        }
        return (tensors.filter { $0.key.hasPrefix("optim.") }, meta, position)
    }

    static func read(_ path: String) throws -> (tensors: [String: Tensor], metadata: [String: String], position: TrainingPosition,
                                               architecture: String) {
        let (tensors, meta) = try SafeTensors.read(path)
        guard meta["prunekit.checkpoint"] == "1", let arch = meta["prunekit.arch"] else {
            throw IOError(file: path, reason: "not a PruneKit checkpoint (no checkpoint metadata)")
        }
        func int(_ k: String) throws -> Int {
            guard let v = meta[k].flatMap(Int.init), v >= 0 else { throw IOError(file: path, reason: "checkpoint field \(k) is missing or invalid") }
            return v
        }
        let sampler = (meta["ckpt.sampler"] ?? "").split(separator: ",").compactMap { UInt64($0, radix: 16) }
        guard sampler.count == 4 else { throw IOError(file: path, reason: "checkpoint sampler state is invalid") }
        let position = TrainingPosition(epoch: try int("ckpt.epoch"), batch: try int("ckpt.batch"), step: try int("ckpt.step"),
                                        samplerState: sampler)
        return (tensors, meta, position, arch)
    }
}

/// Periodic checkpoints of a training run, and the position to resume from.
public struct CheckpointPolicy {
    /// The checkpoint file; each save replaces it atomically.
    public var path: String
    /// Save after every `everySteps` optimizer steps and at the end of every epoch.
    public var everySteps: Int
    /// Run settings stored in every checkpoint's metadata (see `Checkpoint.save`).
    public var settings: [String: String]
    /// By default a save every 100 steps and no settings.
    public init(path: String, everySteps: Int = 100, settings: [String: String] = [:]) {
        self.path = path
        self.everySteps = everySteps
        self.settings = settings
    }
}
