import Foundation

/// Fine-tuning with the masks fixed (pruned weights stay exactly 0). The defaults, chosen on
/// Fashion-MNIST LeNet-300-100 (2 epochs after one-shot global L1 pruning; see BENCHMARKS.md):
/// Adam with a peak learning rate of 3e-3 decayed to 0 on a cosine over the run, batch 128. With a
/// `teacher` (the dense model) the loss adds distillation from its logits (α = 0.5, T = 2); on this
/// task it did not beat the plain recipe, so it is opt-in.
public struct FineTuneConfig: Sendable {
    /// Passes over the training data.
    public var epochs: Int
    /// The new Adam's learning rate, and the cosine's peak when `cosineDecay`.
    public var learningRate: Float
    /// Examples per batch (the global batch when data-parallel).
    public var batchSize: Int
    /// Seed of the example shuffle.
    public var seed: UInt64
    /// Decays the learning rate from `learningRate` to 0 on a cosine over all steps; false leaves the
    /// optimizer's rate as it is.
    public var cosineDecay: Bool
    /// Weight α and temperature T of the distillation loss; used only with a `teacher`.
    public var distillation: Distillation
    /// Data-parallel fine-tuning over several processes (see `TrainingConfig.dataParallel`).
    public var dataParallel: DataParallel?
    /// Defaults: 2 epochs, learning rate 3e-3 on a cosine, batch 128, seed 0, α = 0.5, T = 2, one process.
    public init(epochs: Int = 2, learningRate: Float = 3e-3, batchSize: Int = 128, seed: UInt64 = 0,
                cosineDecay: Bool = true, distillation: Distillation = Distillation(), dataParallel: DataParallel? = nil) {
        self.dataParallel = dataParallel
        self.epochs = epochs
        self.learningRate = learningRate
        self.batchSize = batchSize
        self.seed = seed
        self.cosineDecay = cosineDecay
        self.distillation = distillation
    }
}

/// Fine-tuning of a pruned image classifier with `FineTuneConfig`'s recipe.
public enum FineTuner {
    /// Fine-tunes `model` on `data` through `Trainer.train`, masks fixed. `optimizer` defaults to a new
    /// `Adam` at `config.learningRate` (one passed in keeps its state); `teacher` adds logit distillation.
    /// `checkpoint`, `resumeFrom`, `progress` and the errors thrown are those of `Trainer.fit`.
    public static func fineTune(_ model: Model, data: LabeledImages, config: FineTuneConfig = FineTuneConfig(),
                                teacher: Model? = nil, optimizer: Adam? = nil, checkpoint: CheckpointPolicy? = nil,
                                resumeFrom: TrainingPosition? = nil,
                                progress: ((BatchProgress) -> Void)? = nil) throws -> TrainingResult {
        let opt = try optimizer ?? Adam(learningRate: config.learningRate)
        let schedule = config.cosineDecay ? LearningRateSchedule.cosine(peak: config.learningRate) : nil
        return try Trainer.train(model, data: data, optimizer: opt,
                                 config: TrainingConfig(epochs: config.epochs, batchSize: config.batchSize, seed: config.seed,
                                                        dataParallel: config.dataParallel),
                                 learningRateSchedule: schedule, teacher: teacher, distillation: config.distillation,
                                 checkpoint: checkpoint, resumeFrom: resumeFrom, progress: progress)
    }
}
