/// Updates parameters from their gradients. Mask-aware: pruned entries (mask 0) keep their value
/// (exactly 0) and their optimizer state is not touched, with momentum and weight decay too.
public protocol Optimizer: AnyObject {
    /// One update of every parameter from its current gradient (parameters whose step was fused
    /// into the last backward pass are skipped: they are already updated).
    func step(_ parameters: [Parameter]) throws
    /// Learning rate (schedules change it between steps).
    var learningRate: Float { get set }
    /// Bytes of optimizer state held (moments, velocities) for all parameters.
    var stateBytes: Int { get }
    /// Arms this step for the prunable weights so that layers apply it inside their backward pass,
    /// fused with the weight-gradient kernel (no gradient buffer, no separate pass). Call between
    /// forward and backward, then `step` as usual.
    func prepareFusedStep(_ parameters: [Parameter])
    /// The optimizer's state for `parameters`, as named tensors and string metadata (checkpoints).
    func exportState(_ parameters: [(name: String, parameter: Parameter)]) -> (tensors: [String: Tensor], metadata: [String: String])
    /// Restores state written by `exportState` (shapes checked; nothing changes on error).
    func importState(_ parameters: [(name: String, parameter: Parameter)], tensors: [String: Tensor], metadata: [String: String]) throws
}

extension Optimizer {
    /// Builds each parameter's step (via `make`), applies the ones not fused during backward.
    func applySteps(_ parameters: [Parameter], _ make: (Parameter) -> UpdateStep) throws {
        for p in parameters {
            defer { p.pendingStep = nil; p.fusedStepApplied = false }
            if p.fusedStepApplied { continue }
            let u = p.pendingStep ?? make(p)
            guard u.fits(p.stateCount) else {
                throw OptimizerError.invalidHyperparameter(
                    "a parameter changed between dense and compressed form after prepareFusedStep; arm steps after the forward pass")
            }
            if let c = p.compressed {
                // compressed form: the gradient and state hold the kept entries only
                guard let g = p.compressedGrad else { continue }
                try c.applyStep(u, grad: g)
                p.touch()
                continue
            }
            p.value.makeUnique()
            try Kernels.applyUpdate(u, mask: p.maskStorage, grad: p.grad.storage, weight: p.value.storage)
        }
    }

    func armSteps(_ parameters: [Parameter], _ make: (Parameter) -> UpdateStep) {
        for p in parameters where p.isPrunable {
            p.pendingStep = make(p)
            p.fusedStepApplied = false
        }
    }
}

/// Invalid optimizer settings.
public enum OptimizerError: Error, CustomStringConvertible, Equatable {
    /// Thrown for a setting outside its domain (for example a negative or non-finite learning rate,
    /// momentum, weight decay or epsilon; a beta outside [0, 1); epochs below 0 or a batch below 1; a
    /// resume position past the run), for a checkpoint that holds another optimizer's state, and by
    /// `step` when a parameter changed form after `prepareFusedStep`. The string says which.
    case invalidHyperparameter(String)
    public var description: String {
        switch self { case let .invalidHyperparameter(s): return "invalid optimizer setting: \(s)" }
    }
}

/// Stochastic gradient descent with optional momentum (heavy-ball or Nesterov) and L2 weight decay,
/// in PyTorch's formulation.
public final class SGD: Optimizer {
    public var learningRate: Float
    /// Velocity factor: v := momentum·v + g′, g′ the decayed gradient (0: no velocity is kept).
    public let momentum: Float
    /// L2 coefficient added to the gradient: g′ = g + weightDecay·w.
    public let weightDecay: Float
    /// Steps along g′ + momentum·v instead of v (Nesterov); no effect when momentum is 0.
    public let nesterov: Bool
    /// Velocity per parameter, with the compressed form it is laid out for (nil: dense).
    private var velocity: [ObjectIdentifier: (v: FloatStorage, layout: (any CompressedWeight)?)] = [:]
    public var stateBytes: Int { velocity.values.reduce(0) { $0 + $1.v.count * 4 } }

    /// Throws `OptimizerError.invalidHyperparameter` when the learning rate, momentum or weight decay is
    /// negative or not finite.
    public init(learningRate: Float, momentum: Float = 0, weightDecay: Float = 0, nesterov: Bool = false) throws {
        guard learningRate.isFinite, learningRate >= 0 else { throw OptimizerError.invalidHyperparameter("learning rate \(learningRate)") }
        guard momentum.isFinite, momentum >= 0 else { throw OptimizerError.invalidHyperparameter("momentum \(momentum)") }
        guard weightDecay.isFinite, weightDecay >= 0 else { throw OptimizerError.invalidHyperparameter("weight decay \(weightDecay)") }
        self.learningRate = learningRate
        self.momentum = momentum
        self.weightDecay = weightDecay
        self.nesterov = nesterov
    }

    func makeStep(_ p: Parameter) -> UpdateStep {
        var v: FloatStorage? = nil
        if momentum != 0 {
            let key = ObjectIdentifier(p)
            let s = velocity[key].map { p.adaptState($0.v, from: $0.layout) } ?? FloatStorage(count: p.stateCount)
            velocity[key] = (s, p.compressed)
            v = s
        }
        return UpdateStep(kind: .sgd, learningRate: learningRate, momentum: momentum, weightDecay: weightDecay,
                          nesterov: nesterov, first: v)
    }

    public func step(_ parameters: [Parameter]) throws { try applySteps(parameters, makeStep) }
    public func prepareFusedStep(_ parameters: [Parameter]) { armSteps(parameters, makeStep) }

    public func exportState(_ parameters: [(name: String, parameter: Parameter)]) -> (tensors: [String: Tensor], metadata: [String: String]) {
        var t: [String: Tensor] = [:]
        for (n, p) in parameters {
            if let v = velocity[ObjectIdentifier(p)] {
                t["optim.\(n).velocity"] = try! Tensor(shape: p.shape, storage: p.denseState(v.v, from: v.layout))
            }
        }
        return (t, ["optim.kind": "sgd"])
    }

    public func importState(_ parameters: [(name: String, parameter: Parameter)], tensors: [String: Tensor], metadata: [String: String]) throws {
        guard metadata["optim.kind"] == "sgd" else { throw OptimizerError.invalidHyperparameter("checkpoint holds \(metadata["optim.kind"] ?? "no") optimizer state, not sgd") }
        var next: [ObjectIdentifier: (v: FloatStorage, layout: (any CompressedWeight)?)] = [:]
        for (n, p) in parameters {
            if let v = tensors["optim.\(n).velocity"] { try v.expectShape(p.shape); next[ObjectIdentifier(p)] = (p.adaptState(v.storage.copy(), from: nil), p.compressed) }
        }
        velocity = next
    }
}

/// Adam (Kingma & Ba) with L2 weight decay added to the gradient, as torch.optim.Adam.
public class Adam: Optimizer {
    public var learningRate: Float
    /// Decay rate of the first-moment (gradient mean) estimate, in [0, 1).
    public let beta1: Float
    /// Decay rate of the second-moment (squared gradient) estimate, in [0, 1).
    public let beta2: Float
    /// Added to the bias-corrected √v in the step's denominator.
    public let epsilon: Float
    /// Adam: an L2 term added to the gradient, g′ = g + weightDecay·w. AdamW: decoupled,
    /// w −= lr·weightDecay·w before the step.
    public let weightDecay: Float
    let decoupled: Bool
    /// Moments and step count per parameter, with the compressed form they are laid out for (nil: dense).
    private var state: [ObjectIdentifier: (m: FloatStorage, v: FloatStorage, t: Int, layout: (any CompressedWeight)?)] = [:]
    public var stateBytes: Int { state.values.reduce(0) { $0 + ($1.m.count + $1.v.count) * 4 } }

    /// Defaults are torch.optim.Adam's. Throws `OptimizerError.invalidHyperparameter` when the learning
    /// rate, epsilon or weight decay is negative or not finite, or a beta is outside [0, 1).
    public convenience init(learningRate: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999,
                            epsilon: Float = 1e-8, weightDecay: Float = 0) throws {
        try self.init(learningRate, beta1, beta2, epsilon, weightDecay, decoupled: false)
    }

    init(_ lr: Float, _ b1: Float, _ b2: Float, _ eps: Float, _ wd: Float, decoupled: Bool) throws {
        guard lr.isFinite, lr >= 0 else { throw OptimizerError.invalidHyperparameter("learning rate \(lr)") }
        guard b1 >= 0, b1 < 1 else { throw OptimizerError.invalidHyperparameter("beta1 \(b1)") }
        guard b2 >= 0, b2 < 1 else { throw OptimizerError.invalidHyperparameter("beta2 \(b2)") }
        guard eps.isFinite, eps >= 0 else { throw OptimizerError.invalidHyperparameter("epsilon \(eps)") }
        guard wd.isFinite, wd >= 0 else { throw OptimizerError.invalidHyperparameter("weight decay \(wd)") }
        learningRate = lr
        beta1 = b1
        beta2 = b2
        epsilon = eps
        weightDecay = wd
        self.decoupled = decoupled
    }

    func makeStep(_ p: Parameter) -> UpdateStep {
        let key = ObjectIdentifier(p)
        var s = state[key] ?? (FloatStorage(count: p.stateCount), FloatStorage(count: p.stateCount), 0, p.compressed)
        s.m = p.adaptState(s.m, from: s.layout) // follows the parameter between dense and compressed form
        s.v = p.adaptState(s.v, from: s.layout)
        s.layout = p.compressed
        s.t += 1
        state[key] = s
        return UpdateStep(kind: .adam, learningRate: learningRate, weightDecay: weightDecay, beta1: beta1, beta2: beta2,
                          epsilon: epsilon, decoupled: decoupled, step: s.t, first: s.m, second: s.v)
    }

    public func step(_ parameters: [Parameter]) throws { try applySteps(parameters, makeStep) }
    public func prepareFusedStep(_ parameters: [Parameter]) { armSteps(parameters, makeStep) }

    public func exportState(_ parameters: [(name: String, parameter: Parameter)]) -> (tensors: [String: Tensor], metadata: [String: String]) {
        var t: [String: Tensor] = [:]
        var meta = ["optim.kind": decoupled ? "adamw" : "adam"]
        for (n, p) in parameters {
            guard let s = state[ObjectIdentifier(p)] else { continue }
            t["optim.\(n).m"] = try! Tensor(shape: p.shape, storage: p.denseState(s.m, from: s.layout))
            t["optim.\(n).v"] = try! Tensor(shape: p.shape, storage: p.denseState(s.v, from: s.layout))
            meta["optim.\(n).t"] = "\(s.t)"
        }
        return (t, meta)
    }

    public func importState(_ parameters: [(name: String, parameter: Parameter)], tensors: [String: Tensor], metadata: [String: String]) throws {
        let kind = decoupled ? "adamw" : "adam"
        guard metadata["optim.kind"] == kind else {
            throw OptimizerError.invalidHyperparameter("checkpoint holds \(metadata["optim.kind"] ?? "no") optimizer state, not \(kind)")
        }
        var next: [ObjectIdentifier: (m: FloatStorage, v: FloatStorage, t: Int, layout: (any CompressedWeight)?)] = [:]
        for (n, p) in parameters {
            guard let m = tensors["optim.\(n).m"], let v = tensors["optim.\(n).v"], let t = metadata["optim.\(n).t"].flatMap(Int.init) else { continue }
            try m.expectShape(p.shape)
            try v.expectShape(p.shape)
            next[ObjectIdentifier(p)] = (p.adaptState(m.storage.copy(), from: nil), p.adaptState(v.storage.copy(), from: nil), t,
                                         p.compressed)
        }
        state = next
    }

    /// First and second moments of a parameter (nil before its first step).
    public func moments(of p: Parameter) -> (m: Tensor, v: Tensor)? {
        guard let s = state[ObjectIdentifier(p)] else { return nil }
        return (try! Tensor(shape: p.shape, storage: p.denseState(s.m, from: s.layout)),
                try! Tensor(shape: p.shape, storage: p.denseState(s.v, from: s.layout)))
    }

    /// Forgets all moments (for example after a structural change).
    public func reset() { state = [:] }
}

/// AdamW (Loshchilov & Hutter): decoupled weight decay w ← w − lr·wd·w, as torch.optim.AdamW.
public final class AdamW: Adam {
    /// Defaults are torch.optim.AdamW's (weight decay 0.01). Throws `OptimizerError.invalidHyperparameter`
    /// for the same settings as `Adam`'s initializer.
    public init(learningRate: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8,
                weightDecay: Float = 0.01) throws {
        try super.init(learningRate, beta1, beta2, epsilon, weightDecay, decoupled: true)
    }
}
