/// Mean softmax cross-entropy over a batch of logits (PyTorch's nn.CrossEntropyLoss).
public enum SoftmaxCrossEntropy {
    /// Loss, ∂loss/∂logits and the number of rows whose argmax equals the label.
    public static func compute(logits: Tensor, labels: [Int32]) throws -> (loss: Float, gradient: Tensor, correct: Int) {
        let (m, n) = try check(logits, labels)
        let g = Tensor(zeros: logits.shape)
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
        if let bad = labels.first(where: { $0 < 0 || Int($0) >= logits.shape[1] }) {
            throw LayerError.badInput(layer: "SoftmaxCrossEntropy", expected: "labels in 0..<\(logits.shape[1])",
                                      got: [Int(bad)])
        }
        return (logits.shape[0], logits.shape[1])
    }
}
