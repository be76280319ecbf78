import Foundation

/// A training run that cannot go on.
public enum TrainingError: Error, CustomStringConvertible, Equatable {
    /// The loss became NaN or infinite (non-finite inputs, a learning rate that diverges): the run
    /// stops there and nothing is saved.
    case nonFiniteLoss(epoch: Int, batch: Int, loss: Float)
    /// Thrown for a setting or input the run cannot use, for example an evaluation batch size below 1, a
    /// data-parallel batch with fewer examples than ranks in a model with BatchNorm, ranks whose models
    /// or settings differ, or a student and teacher of different hidden sizes. The string is the message.
    case badSetting(String)

    public var description: String {
        switch self {
        case let .nonFiniteLoss(e, b, l):
            return "the training loss became \(l) at epoch \(e), batch \(b) (non-finite inputs, or a learning rate too large); nothing saved"
        case let .badSetting(s): return s
        }
    }
}

/// Settings of a training or fine-tuning run.
public struct TrainingConfig: Sendable {
    /// Passes over the data; at least 0.
    public var epochs: Int
    /// Examples per batch (the global batch when data-parallel); at least 1.
    public var batchSize: Int
    /// Seed of the example shuffle that `Trainer.train` builds (`fit` takes the order it is given).
    public var seed: UInt64
    /// Fuse each weight's optimizer step into its gradient kernel (no gradient buffers). Turn off
    /// when gradients must be inspected after backward (e.g. Taylor importance).
    public var fusedUpdates: Bool
    /// Data-parallel training over several processes (nil: this process alone). `batchSize` stays
    /// the global batch: each rank takes its shard of it.
    public var dataParallel: DataParallel?
    /// Defaults: batch 128, seed 0, fused updates, one process. `Trainer.fit` checks epochs and batch size.
    public init(epochs: Int, batchSize: Int = 128, seed: UInt64 = 0, fusedUpdates: Bool = true, dataParallel: DataParallel? = nil) {
        self.epochs = epochs
        self.batchSize = batchSize
        self.seed = seed
        self.fusedUpdates = fusedUpdates
        self.dataParallel = dataParallel
    }
}

/// What a progress reporter is told after every batch.
public struct BatchProgress: Sendable {
    /// The epoch (from 1) of `epochs`, and the batch (from 1) of the `batches` of that epoch.
    public let epoch: Int, epochs: Int, batch: Int, batches: Int
    /// The batch's mean loss (over the global batch when data-parallel).
    public let loss: Float
    /// Examples trained on in this `fit` call, per second of `elapsed`.
    public let samplesPerSecond: Double
    /// Wall-clock seconds since this `fit` call started (for a resumed run, since the resume).
    public let elapsed: Double
    /// Whether this is the epoch's last batch.
    public let epochDone: Bool
}

/// Results of a run.
public struct TrainingResult: Sendable {
    /// The last batch's mean loss (NaN when no batch ran).
    public var finalLoss: Float
    /// Wall-clock seconds of the `fit` call, checkpoint writes included.
    public var trainSeconds: Double
    /// Examples trained on per second of `trainSeconds`.
    public var samplesPerSecond: Double
    /// One entry per epoch this call ran: the batch losses weighted by batch size, summed, divided
    /// by the example count.
    public var epochLosses: [Float]
}

/// Learning-rate schedules for `Trainer.fit` (step, total steps → rate); one definition for image
/// fine-tuning and sentence distillation.
public enum LearningRateSchedule {
    /// Cosine decay from `peak` at step 0 to 0 at the last step.
    public static func cosine(peak: Float) -> (Int, Int) -> Float {
        { step, total in peak * Float(0.5 * (1 + cos(Double.pi * Double(step) / Double(max(total, 1))))) }
    }
}

/// The order in which a training run visits its examples: a list of batches (example indices) per
/// epoch, from a generator whose state checkpoints save.
public protocol BatchOrder {
    /// Number of batches each `epoch()` returns (`fit` counts the schedule's steps with it).
    var batchesPerEpoch: Int { get }
    /// The generator's state (four words): checkpoints save it, and `fit` sets it on resume to replay an
    /// epoch's order.
    var rngState: [UInt64] { get set }
    /// The batches of the next epoch.
    mutating func epoch() -> [ArraySlice<Int>]
}

extension BatchSampler: BatchOrder {}

/// Fixed batches (e.g. sentences of similar length, so padding stays small) visited in a new random
/// order every epoch.
public struct GroupedBatches: BatchOrder {
    /// The batches, as example indices; every epoch visits each one once, whole.
    public let groups: [[Int]]
    private var rng: SeededGenerator
    /// Uses `groups` as given (not split or checked); `seed` seeds the order they are visited in.
    public init(groups: [[Int]], seed: UInt64) {
        self.groups = groups
        rng = SeededGenerator(seed: seed)
    }
    public var batchesPerEpoch: Int { groups.count }
    public var rngState: [UInt64] {
        get { rng.state }
        set { rng.state = newValue }
    }
    public mutating func epoch() -> [ArraySlice<Int>] {
        var order = Array(groups.indices)
        order.shuffle(using: &rng)
        return order.map { groups[$0][...] }
    }
}

/// The training / fine-tuning loop: batches in the order's sequence, forward, loss, backward,
/// optimizer step (mask-aware, so pruned weights stay exactly 0). Same seed and thread count ⇒ same
/// weights. One loop for every model and loss: cross-entropy and logit distillation on images
/// (`train`), embedding and token distillation of sentence encoders (`SentenceDistillation`).
public enum Trainer {
    /// Trains `parameters` (default: every trainable parameter of `model`) over `count` examples.
    /// `input(indices)` builds the network input of a batch; `loss(output, indices)` returns the
    /// batch's mean loss and its gradient with respect to the output. A non-finite loss stops the
    /// run (`TrainingError.nonFiniteLoss`).
    public static func fit(_ model: Model, parameters: [Parameter]? = nil, count: Int, order: inout some BatchOrder,
                           optimizer: any Optimizer, config: TrainingConfig,
                           learningRateSchedule: ((Int, Int) -> Float)? = nil,
                           input: ([Int]) throws -> Tensor,
                           loss: (Tensor, [Int]) throws -> (loss: Float, gradient: Tensor),
                           stepHook: ((Int) throws -> Void)? = nil,
                           checkpoint: CheckpointPolicy? = nil, resumeFrom: TrainingPosition? = nil,
                           progress: ((BatchProgress) -> Void)? = nil) throws -> TrainingResult {
        guard config.epochs >= 0, config.batchSize > 0 else {
            throw OptimizerError.invalidHyperparameter("epochs \(config.epochs), batch \(config.batchSize)")
        }
        let params = parameters ?? model.parameters.filter(\.isTrainable)
        let start = Date()
        var seen = 0
        var epochLosses: [Float] = []
        var lastLoss: Float = .nan
        let totalSteps = config.epochs * order.batchesPerEpoch
        var step = 0
        var firstEpoch = 0, skip = 0
        if let r = resumeFrom {
            guard r.epoch <= config.epochs, r.samplerState.count == 4 else {
                throw OptimizerError.invalidHyperparameter("resume position epoch \(r.epoch) of \(config.epochs)")
            }
            order.rngState = r.samplerState
            (firstEpoch, skip, step) = (r.epoch, r.batch, r.step)
        }
        func save(_ epoch: Int, _ batch: Int, _ state: [UInt64]) throws {
            // every rank holds the same model and optimizer state: rank 0 writes
            guard let c = checkpoint, (config.dataParallel?.rank ?? 0) == 0 else { return }
            try Checkpoint.save(model: model, optimizer: optimizer,
                                position: TrainingPosition(epoch: epoch, batch: batch, step: step, samplerState: state),
                                settings: c.settings, to: c.path)
        }
        // data-parallel: BatchNorm statistics over the global batch (SyncBatchNorm), restored after
        let norms = config.dataParallel.map { _ in model.network.namedLayers.compactMap { $0.layer as? BatchNorm } } ?? []
        if let dp = config.dataParallel {
            let sync = BatchNorm.StatisticsSync(rank: dp.rank, size: dp.size) { try dp.collective.sumInRankOrder($0) }
            for bn in norms { bn.synchronization = sync }
        }
        defer { for bn in norms { bn.synchronization = nil } }
        for epoch in firstEpoch..<config.epochs {
            let epochState = order.rngState
            let batches = order.epoch()
            var lossSum: Double = 0
            for (bi, slice) in batches.enumerated() {
                if epoch == firstEpoch && bi < skip { continue }
                let idx = Array(slice)
                if let sched = learningRateSchedule { optimizer.learningRate = sched(step, totalSteps) }
                var l: Float
                if let dp = config.dataParallel {
                    // this rank's shard; its mean-loss gradient weighted by the shard's share of the
                    // global batch, so that the sum over ranks is the global batch's mean gradient
                    let mine = dp.shard(idx)
                    if !norms.isEmpty && idx.count < dp.size {
                        // every rank must take part in the BatchNorm statistics
                        throw TrainingError.badSetting("a batch of \(idx.count) examples cannot be split over \(dp.size) ranks in a model with BatchNorm layers: use a batch size (and a data set size) whose last batch has at least one example per rank")
                    }
                    var lossSum = 0.0
                    if mine.isEmpty {
                        for p in params { p.zeroGrad() }
                    } else {
                        let output = try model.network.forward(try input(mine), training: true)
                        let (shardLoss, grad) = try loss(output, mine)
                        let share = Float(mine.count) / Float(idx.count)
                        let g = grad.storage.copy()
                        g.update { _, v in v * share }
                        _ = try model.network.backward(try Tensor(shape: grad.shape, storage: g), needInputGradient: false)
                        lossSum = Double(shardLoss) * Double(mine.count)
                    }
                    l = Float(try dp.reduce(params, lossSum: lossSum) / Double(idx.count))
                    guard l.isFinite else { throw TrainingError.nonFiniteLoss(epoch: epoch + 1, batch: bi + 1, loss: l) }
                } else {
                    let output = try model.network.forward(try input(idx), training: true)
                    let (shardLoss, grad) = try loss(output, idx)
                    l = shardLoss
                    guard l.isFinite else { throw TrainingError.nonFiniteLoss(epoch: epoch + 1, batch: bi + 1, loss: l) }
                    if config.fusedUpdates { optimizer.prepareFusedStep(params) }
                    _ = try model.network.backward(grad, needInputGradient: false)
                }
                try optimizer.step(params)
                step += 1
                try stepHook?(step)
                if let c = checkpoint, c.everySteps > 0, step % c.everySteps == 0, bi + 1 < batches.count {
                    try save(epoch, bi + 1, epochState)
                }
                seen += idx.count
                lossSum += Double(l) * Double(idx.count)
                lastLoss = l
                if let progress {
                    let el = Date().timeIntervalSince(start)
                    progress(BatchProgress(epoch: epoch + 1, epochs: config.epochs, batch: bi + 1, batches: batches.count,
                                           loss: l, samplesPerSecond: Double(seen) / max(el, 1e-9), elapsed: el,
                                           epochDone: bi + 1 == batches.count))
                }
            }
            epochLosses.append(Float(lossSum / Double(max(count, 1))))
            try save(epoch + 1, 0, order.rngState)
        }
        let secs = Date().timeIntervalSince(start)
        return TrainingResult(finalLoss: lastLoss, trainSeconds: secs, samplesPerSecond: Double(seen) / max(secs, 1e-9),
                              epochLosses: epochLosses)
    }

    /// Image classification: cross-entropy on the labels, or distillation from `teacher`'s logits.
    public static func train(_ model: Model, data: LabeledImages, optimizer: any Optimizer, config: TrainingConfig,
                             learningRateSchedule: ((Int, Int) -> Float)? = nil,
                             teacher: Model? = nil, distillation: Distillation = Distillation(),
                             stepHook: ((Int) throws -> Void)? = nil,
                             checkpoint: CheckpointPolicy? = nil, resumeFrom: TrainingPosition? = nil,
                             progress: ((BatchProgress) -> Void)? = nil) throws -> TrainingResult {
        guard config.batchSize > 0 else { throw OptimizerError.invalidHyperparameter("epochs \(config.epochs), batch \(config.batchSize)") }
        var order = try BatchSampler(count: data.count, batchSize: config.batchSize, seed: config.seed)
        let per = model.inputShape.reduce(1, *)
        var batchImages: Tensor?
        return try fit(model, count: data.count, order: &order, optimizer: optimizer, config: config,
                       learningRateSchedule: learningRateSchedule,
                       input: { idx in
                           let x = try data.images.gatherRows(idx[...])
                           guard x.count == idx.count * per else {
                               throw LayerError.badInput(layer: "model \(model.architecture)", expected: "[batch, \(per)]", got: x.shape)
                           }
                           batchImages = x
                           return try x.reshaped([idx.count] + model.inputShape)
                       },
                       loss: { logits, idx in
                           let y = idx.map { data.labels[$0] }
                           if let teacher {
                               let t = try teacher.forward(batchImages!, training: false)
                               return try distillation.compute(logits: logits, teacherLogits: t, labels: y)
                           }
                           let r = try SoftmaxCrossEntropy.compute(logits: logits, labels: y)
                           return (r.loss, r.gradient)
                       },
                       stepHook: stepHook, checkpoint: checkpoint, resumeFrom: resumeFrom, progress: progress)
    }

    /// Accuracy and mean loss over a dataset.
    public static func evaluate(_ model: Model, data: LabeledImages, batchSize: Int = 1000) throws -> (accuracy: Double, loss: Double) {
        guard batchSize >= 1 else { throw TrainingError.badSetting("evaluation batch size \(batchSize) must be at least 1") }
        guard data.count > 0 else { return (0, 0) }
        var correct = 0
        var lossSum = 0.0
        var i = 0
        while i < data.count {
            let n = min(batchSize, data.count - i)
            let logits = try model.forward(try data.images.rows(i, n), training: false)
            let r = try SoftmaxCrossEntropy.evaluate(logits: logits, labels: Array(data.labels[i..<(i + n)]))
            correct += r.correct
            lossSum += Double(r.loss) * Double(n)
            i += n
        }
        return (Double(correct) / Double(data.count), lossSum / Double(data.count))
    }
}
