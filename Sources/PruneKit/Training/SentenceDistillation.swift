import Foundation

/// Recovery of a pruned sentence encoder by distillation: the student's embeddings are pulled
/// towards the dense teacher's on unlabelled sentences (cosine or mean-squared loss), with Adam on
/// every Linear of the student and the pruning masks fixed (masked weights stay exactly 0).
/// With `tokenWeight` > 0 the loss also pulls the student's last-layer token rows towards the
/// teacher's (mean squared difference per real token and feature, times `tokenWeight`): far more
/// signal per sentence than the pooled vector alone.
public enum SentenceDistillation {
    /// The embedding loss per sentence, averaged over the batch: 1 − cosine(student, teacher), or the
    /// squared difference summed over features (`mse`).
    public enum Loss: String, Sendable, CaseIterable {
        /// 1 − cosine(student, teacher); the squared difference summed over features.
        case cosine, mse
    }

    /// Settings of `fineTune`.
    public struct Config: Sendable {
        /// Passes over the sentences (≥ 0).
        public var epochs: Int
        /// Sentences per step (≥ 1).
        public var batchSize: Int
        /// Adam's learning rate (> 0); the peak when `cosineDecay`.
        public var learningRate: Float
        /// The loss between student and teacher embeddings.
        public var loss: Loss
        /// Seed of the random order in which the batches are visited each epoch.
        public var seed: UInt64
        /// Cosine decay of the learning rate to 0 over the run.
        public var cosineDecay: Bool
        /// Weight of the token-row term (0: embeddings only).
        public var tokenWeight: Float
        /// Data-parallel distillation over several processes (see `TrainingConfig.dataParallel`):
        /// each rank takes its shard of every batch of sentences.
        public var dataParallel: DataParallel?
        /// Gradual pruning during the run (nil: the masks stay as they are): the sparsity of the
        /// blocks' Linear weights rises from the folder's level to the plan's target.
        public var gradual: GradualPruning?
        /// The defaults: 2 epochs, batches of 32, learning rate 1e-4 with cosine decay, cosine loss, seed 0,
        /// no token-row term, one process, fixed masks.
        public init(epochs: Int = 2, batchSize: Int = 32, learningRate: Float = 1e-4, loss: Loss = .cosine, seed: UInt64 = 0,
                    cosineDecay: Bool = true, tokenWeight: Float = 0, dataParallel: DataParallel? = nil,
                    gradual: GradualPruning? = nil) {
            self.gradual = gradual
            (self.epochs, self.batchSize, self.learningRate, self.loss, self.seed, self.cosineDecay, self.tokenWeight) =
                (epochs, batchSize, learningRate, loss, seed, cosineDecay, tokenWeight)
            self.dataParallel = dataParallel
        }
    }

    /// Fine-tunes `student` in place through `Trainer.fit` (one loop for every model): the Linear
    /// layers of its blocks train with Adam (the embeddings and LayerNorms stay as they are), masks
    /// fixed, or growing by `config.gradual`. With `checkpoint`, the run saves its state as every
    /// training run does; with `resume` and an existing checkpoint file it continues from there (the
    /// student must be the model the run started from; the checkpoint's settings must equal the
    /// policy's). Returns the mean loss of each epoch, the seconds spent, and the step and sparsity of
    /// every mask update.
    public static func fineTune(student: BertEncoder, teacher: BertEncoder, tokenizer: WordPieceTokenizer,
                                sentences: [String], config: Config, checkpoint: CheckpointPolicy? = nil, resume: Bool = false,
                                progress: ((BatchProgress) -> Void)? = nil) throws
        -> (epochLosses: [Double], seconds: Double, maskUpdates: [(step: Int, sparsity: Double)]) {
        guard config.epochs >= 0, config.batchSize >= 1, config.learningRate > 0, config.tokenWeight >= 0,
              config.tokenWeight.isFinite else {
            throw OptimizerError.invalidHyperparameter("epochs ≥ 0, batch ≥ 1, a positive learning rate and a token weight ≥ 0")
        }
        guard !sentences.isEmpty else { throw PruneError.missingStatistics("no sentences to fine-tune on") }
        guard student.config.hidden == teacher.config.hidden else {
            throw TrainingError.badSetting("the student's hidden size \(student.config.hidden) is not the teacher's \(teacher.config.hidden)")
        }
        let h = student.config.hidden
        // the plan is checked, and the curve's starting sparsity taken, on the model the run started from
        let weights = student.linears.map(\.weight)
        let names = Dictionary(student.model.namedParameters.map { (ObjectIdentifier($0.parameter), $0.name) }) { a, _ in a }
        let pruner = try config.gradual.map {
            try GradualPruner(plan: $0, weights: weights, names: weights.map { names[ObjectIdentifier($0)] ?? "a Linear weight" })
        }
        if pruner?.plan.method == .wanda && config.dataParallel != nil {
            throw TrainingError.badSetting("gradual wanda pruning measures inputs per process, so ranks would choose different masks: use l1 with data-parallel runs")
        }
        let opt = try Adam(learningRate: config.learningRate)
        var position: TrainingPosition?
        if resume, let c = checkpoint, FileManager.default.fileExists(atPath: c.path) {
            let saved = try Checkpoint.restore(c.path, into: student.model)
            for (k, v) in c.settings where saved.metadata[k] != v {
                throw TrainingError.badSetting("\(c.path) was written with \(k) = \(saved.metadata[k] ?? "?"), not \(v)")
            }
            try opt.importState(student.model.namedParameters, tensors: saved.optimizerTensors, metadata: saved.metadata)
            position = saved.position
        }
        let encoded = sentences.map(tokenizer.encode) // once, not every epoch
        // the teacher's embeddings, once
        var target = [[Float]](repeating: [], count: sentences.count)
        for start in stride(from: 0, to: sentences.count, by: 64) {
            let idx = Array(start..<min(start + 64, sentences.count))
            let (ids, mask) = tokenizer.pad(idx.map { encoded[$0] })
            let e = try teacher.embed(ids: ids, mask: mask).scalars
            for (k, i) in idx.enumerated() { target[i] = Array(e[(k * h)..<((k + 1) * h)]) }
        }
        // batches of sentences of similar length (little padding), visited in a new random order each epoch
        let byLength = sentences.indices.sorted { (encoded[$0].count, $0) < (encoded[$1].count, $1) }
        var order = GroupedBatches(groups: stride(from: 0, to: byLength.count, by: config.batchSize).map {
            Array(byLength[$0..<min($0 + config.batchSize, byLength.count)])
        }, seed: config.seed)
        var padded: (ids: [[Int32]], mask: [[Float]]) = ([], [])
        let unit = student.pooling.normalize && teacher.pooling.normalize
        func run() throws -> TrainingResult {
            try Trainer.fit(
                student.model, parameters: student.linears.flatMap(\.parameters), count: sentences.count, order: &order, optimizer: opt,
                config: TrainingConfig(epochs: config.epochs, batchSize: config.batchSize, seed: config.seed,
                                       dataParallel: config.dataParallel),
                learningRateSchedule: config.cosineDecay ? LearningRateSchedule.cosine(peak: config.learningRate) : nil,
                input: { idx in
                    padded = tokenizer.pad(idx.map { encoded[$0] })
                    return try student.input(ids: padded.ids, mask: padded.mask)
                },
                loss: { emb, idx in
                    let e = emb.scalars
                    var grad = [Float](repeating: 0, count: e.count), loss = 0.0
                    let n = Float(idx.count)
                    for (k, i) in idx.enumerated() {
                        let t = target[i]
                        switch config.loss {
                        case .cosine where unit: // both unit vectors: 1 − e·t, gradient −t (the projection is in the pooling backward)
                            var dot = 0.0
                            for j in 0..<h { dot += Double(e[k * h + j]) * Double(t[j]); grad[k * h + j] = -t[j] / n }
                            loss += 1 - dot
                        case .cosine: // unnormalised pooling: 1 − cos(e, t), gradient −(t/(‖e‖‖t‖) − cos·e/‖e‖²)
                            var dot = 0.0, ee = 0.0, tt = 0.0
                            for j in 0..<h {
                                let a = Double(e[k * h + j]), b = Double(t[j])
                                dot += a * b; ee += a * a; tt += b * b
                            }
                            let ne = max(ee.squareRoot(), 1e-12), nt = max(tt.squareRoot(), 1e-12), cos = dot / (ne * nt)
                            for j in 0..<h {
                                grad[k * h + j] = Float(-(Double(t[j]) / (ne * nt) - cos * Double(e[k * h + j]) / (ne * ne)) / Double(n))
                            }
                            loss += 1 - cos
                        case .mse:
                            for j in 0..<h {
                                let d = e[k * h + j] - t[j]
                                loss += Double(d * d)
                                grad[k * h + j] = 2 * d / n
                            }
                        }
                    }
                    if config.tokenWeight > 0 {
                        let tokens = student.tap.output!
                        let (g, l) = try tokenTerm(student: tokens, teacher: teacher.encode(ids: padded.ids, mask: padded.mask),
                                                   mask: padded.mask, hidden: h, weight: config.tokenWeight)
                        student.tap.extraGradient = g
                        loss += l
                    }
                    return (Float(loss / Double(idx.count)), try Tensor(shape: [idx.count, h], scalars: grad))
                },
                stepHook: pruner.map { p in { try p.step($0) } },
                checkpoint: checkpoint, resumeFrom: position, progress: progress)
        }
        // Wanda's input norms over real tokens only (the batches are padded to their longest sentence)
        let context = student.context
        let r = try pruner.map { try $0.recording([student.model.network], rowMask: { [unowned context] in context.mask }, run) } ?? run()
        return (r.epochLosses.map(Double.init), r.trainSeconds, pruner?.history ?? [])
    }

    /// weight · Σ over sentences of the mean over real tokens and features of (s − t)², and its
    /// gradient with respect to s divided by the batch size (as the embedding term's is).
    static func tokenTerm(student: Tensor, teacher: Tensor, mask: [[Float]], hidden h: Int,
                          weight: Float) throws -> (gradient: Tensor, loss: Double) {
        let b = mask.count, t = mask.first?.count ?? 0
        try student.expectShape([b * t, h])
        try teacher.expectShape([b * t, h])
        let g = Tensor(uninitialized: [b * t, h])
        let loss = try Kernels.tokenMSE(b: b, t: t, n: h, student: student.storage, teacher: teacher.storage,
                                        mask: FloatStorage(mask.flatMap { $0 }), weight: weight, grad: g.storage)
        return (g, loss)
    }
}

extension SentenceDistillation {
    /// How closely a (pruned) encoder's embeddings follow a reference: the mean and lowest cosine
    /// over `vectors` and `reference` (row by row).
    public static func agreement(_ vectors: [[Float]], _ reference: [[Float]]) throws -> (mean: Double, min: Double) {
        guard vectors.count == reference.count, !vectors.isEmpty else {
            throw TrainingError.badSetting("agreement of \(vectors.count) embeddings with \(reference.count)")
        }
        let cos = try zip(vectors, reference).map { a, b -> Double in
            guard a.count == b.count else { throw TrainingError.badSetting("embeddings of \(a.count) and \(b.count) features") }
            let d = zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            let na = a.reduce(0.0) { $0 + Double($1) * Double($1) }, nb = b.reduce(0.0) { $0 + Double($1) * Double($1) }
            return d / max((na * nb).squareRoot(), 1e-30)
        }
        return (cos.reduce(0, +) / Double(cos.count), cos.min()!)
    }
}
