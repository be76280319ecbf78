/// One optimizer step for one parameter, as the kernels apply it: the rule, its hyper-parameters,
/// the parameter's state buffers and the step number. Built by the optimizers; applied either by a
/// plain update kernel after backward, or fused into the weight-gradient kernel during backward.
/// Opaque outside the package (compressed formats receive it and hand it to their kernels).
public struct UpdateStep {
    enum Kind { case sgd, adam }
    var kind: Kind
    var learningRate: Float
    var momentum: Float = 0
    var weightDecay: Float = 0
    var nesterov = false
    var beta1: Float = 0.9
    var beta2: Float = 0.999
    var epsilon: Float = 1e-8
    var decoupled = false
    /// Adam: t ≥ 1 after this step.
    var step = 1
    /// SGD velocity or Adam first moment (nil for SGD without momentum).
    var first: FloatStorage?
    /// Adam second moment.
    var second: FloatStorage?

    /// Whether the state buffers hold `n` entries (the parameter's current form).
    func fits(_ n: Int) -> Bool { (first.map { $0.count == n } ?? true) && (second.map { $0.count == n } ?? true) }
}
