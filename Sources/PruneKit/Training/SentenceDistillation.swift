import Foundation

/// Recovery of a pruned sentence encoder by distillation: the student's embeddings are pulled
/// towards the dense teacher's on unlabelled sentences (cosine or mean-squared loss), with Adam on
/// every Linear of the student and the pruning masks fixed (masked weights stay exactly 0).
public enum SentenceDistillation {
    public enum Loss: String, Sendable, CaseIterable { case cosine, mse }

    public struct Config: Sendable {
        public var epochs: Int
        public var batchSize: Int
        public var learningRate: Float
        public var loss: Loss
        public var seed: UInt64
        /// Cosine decay of the learning rate to 0 over the run.
        public var cosineDecay: Bool
        public init(epochs: Int = 2, batchSize: Int = 32, learningRate: Float = 1e-4, loss: Loss = .cosine, seed: UInt64 = 0,
                    cosineDecay: Bool = true) {
            (self.epochs, self.batchSize, self.learningRate, self.loss, self.seed, self.cosineDecay) =
                (epochs, batchSize, learningRate, loss, seed, cosineDecay)
        }
    }

    /// Fine-tunes `student` in place; returns the mean loss of each epoch and the seconds spent.
    public static func fineTune(student: BertEncoder, teacher: BertEncoder, tokenizer: WordPieceTokenizer,
                                sentences: [String], config: Config,
                                progress: ((BatchProgress) -> Void)? = nil) throws -> (epochLosses: [Double], seconds: Double) {
        guard config.epochs >= 0, config.batchSize >= 1, config.learningRate > 0 else {
            throw OptimizerError.invalidHyperparameter("epochs ≥ 0, batch ≥ 1 and a positive learning rate")
        }
        guard !sentences.isEmpty else { throw PruneError.missingStatistics("no sentences to fine-tune on") }
        let h = student.config.hidden
        let encoded = sentences.map(tokenizer.encode) // once, not every epoch
        // the teacher's embeddings, once
        var target = [[Float]](repeating: [], count: sentences.count)
        for start in stride(from: 0, to: sentences.count, by: 64) {
            let idx = Array(start..<min(start + 64, sentences.count))
            let (ids, mask) = tokenizer.pad(idx.map { encoded[$0] })
            let e = try teacher.embed(ids: ids, mask: mask).scalars
            for (k, i) in idx.enumerated() { target[i] = Array(e[(k * h)..<((k + 1) * h)]) }
        }
        let opt = try Adam(learningRate: config.learningRate)
        let params = student.parameters
        var rng = SeededGenerator(seed: config.seed)
        let steps = config.epochs * ((sentences.count + config.batchSize - 1) / config.batchSize)
        var step = 0, losses: [Double] = []
        let start = Date()
        // batches of sentences of similar length (little padding), visited in a new random order
        // each epoch
        let byLength = sentences.indices.sorted { (encoded[$0].count, $0) < (encoded[$1].count, $1) }
        let groups = stride(from: 0, to: byLength.count, by: config.batchSize).map {
            Array(byLength[$0..<min($0 + config.batchSize, byLength.count)])
        }
        let batches = groups.count
        var seen = 0
        for epoch in 0..<config.epochs {
            var order = Array(groups.indices)
            order.shuffle(using: &rng)
            var total = 0.0
            for (bi, g) in order.enumerated() {
                let idx = groups[g]
                let (ids, mask) = tokenizer.pad(idx.map { encoded[$0] })
                if config.cosineDecay {
                    opt.learningRate = config.learningRate * Float(0.5 * (1 + cos(Double.pi * Double(step) / Double(max(steps, 1)))))
                }
                let e = try student.embed(ids: ids, mask: mask, training: true).scalars
                var grad = [Float](repeating: 0, count: e.count), loss = 0.0
                let n = Float(idx.count)
                for (k, i) in idx.enumerated() {
                    let t = target[i]
                    switch config.loss {
                    case .cosine: // both unit vectors: 1 − e·t, gradient −t (the projection is in the pooling backward)
                        var dot = 0.0
                        for j in 0..<h { dot += Double(e[k * h + j]) * Double(t[j]); grad[k * h + j] = -t[j] / n }
                        loss += 1 - dot
                    case .mse:
                        for j in 0..<h {
                            let d = e[k * h + j] - t[j]
                            loss += Double(d * d)
                            grad[k * h + j] = 2 * d / n
                        }
                    }
                }
                opt.prepareFusedStep(params)
                try student.backward(try Tensor(shape: [idx.count, h], scalars: grad))
                try opt.step(params)
                total += loss
                step += 1
                seen += idx.count
                let elapsed = Date().timeIntervalSince(start)
                progress?(BatchProgress(epoch: epoch + 1, epochs: config.epochs, batch: bi + 1, batches: batches,
                                        loss: Float(loss / Double(idx.count)), samplesPerSecond: Double(seen) / max(elapsed, 1e-9),
                                        elapsed: elapsed, epochDone: bi + 1 == batches))
            }
            losses.append(total / Double(sentences.count))
        }
        return (losses, Date().timeIntervalSince(start))
    }
}
