/// Mean softmax cross-entropy over a batch of logits (PyTorch's nn.CrossEntropyLoss).
public enum SoftmaxCrossEntropy {
    /// Loss, ∂loss/∂logits and the number of rows whose argmax equals the label.
    public static func compute(logits: Tensor, labels: [Int32]) throws -> (loss: Float, gradient: Tensor, correct: Int) {
        let (m, n) = try check(logits, labels)
        let g = Tensor(zeroed: logits.shape)
        let r = try Kernels.softmaxCrossEntropy(m: m, n: n, logits: logits.storage, labels: Int32Storage(labels),
                                                dlogits: g.storage)
        return (r.loss, g, r.correct)
    }

    /// Loss and correct count without the gradient.
    public static func evaluate(logits: Tensor, labels: [Int32]) throws -> (loss: Float, correct: Int) {
        let (m, n) = try check(logits, labels)
        return try Kernels.softmaxCrossEntropy(m: m, n: n, logits: logits.storage, labels: Int32Storage(labels),
                                               dlogits: nil)
    }

    private static func check(_ logits: Tensor, _ labels: [Int32]) throws -> (Int, Int) {
        guard logits.rank == 2, logits.shape[1] >= 1 else {
            throw LayerError.badInput(layer: "SoftmaxCrossEntropy", expected: "[batch, classes]", got: logits.shape)
        }
        guard labels.count == logits.shape[0] else {
            throw TensorError.shapeMismatch(expected: [logits.shape[0]], got: [labels.count])
        }
        if let row = labels.firstIndex(where: { $0 < 0 || Int($0) >= logits.shape[1] }) {
            throw LayerError.badLabel(label: Int(labels[row]), row: row, classes: logits.shape[1])
        }
        return (logits.shape[0], logits.shape[1])
    }
}

/// Knowledge distillation (Hinton et al. 2015): loss = α·CE(student, labels) +
/// (1 − α)·T²·KL(softmax(teacher/T) ‖ softmax(student/T)), averaged over the batch.
public struct Distillation: Sendable {
    /// Weight α of the cross-entropy with the labels, in [0, 1]; the distillation term gets 1 − α.
    public var alpha: Float
    /// Softmax temperature T > 0 of the distillation term.
    public var temperature: Float
    /// Distillation with weight α (default 0.5) and temperature T (default 2); `compute` throws
    /// `LayerError.badInput` unless 0 ≤ α ≤ 1 and T > 0.
    public init(alpha: Float = 0.5, temperature: Float = 2) {
        self.alpha = alpha
        self.temperature = temperature
    }

    /// Loss and ∂loss/∂logits.
    public func compute(logits: Tensor, teacherLogits: Tensor, labels: [Int32]) throws -> (loss: Float, gradient: Tensor) {
        try teacherLogits.expectShape(logits.shape)
        guard alpha >= 0, alpha <= 1, temperature > 0 else {
            throw LayerError.badInput(layer: "Distillation", expected: "0 ≤ alpha ≤ 1, temperature > 0", got: [])
        }
        let ce = try SoftmaxCrossEntropy.compute(logits: logits, labels: labels)
        let m = logits.shape[0], n = logits.shape[1]
        let g = Tensor(uninitialized: logits.shape)
        let kd = try Kernels.distillKL(m: m, n: n, temperature: temperature, student: logits.storage,
                                       teacher: teacherLogits.storage, gradient: g.storage)
        // combine: α·CE + (1 − α)·KD, gradients likewise
        let out = Tensor(uninitialized: logits.shape)
        try Kernels.axpby(alpha: alpha, x: ce.gradient.storage, beta: 1 - alpha, y: g.storage, out: out.storage)
        return (alpha * ce.loss + (1 - alpha) * kd, out)
    }
}
