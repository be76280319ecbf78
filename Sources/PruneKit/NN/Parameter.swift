/// A trainable tensor with its gradient and an optional pruning mask (nil = all ones).
/// Invariant: wherever the mask is 0, `value` is exactly 0.0, and optimizers never move it.
public final class Parameter: @unchecked Sendable {
    /// Current value (masked entries are exactly 0).
    public internal(set) var value: Tensor
    /// Gradient of the loss with respect to `value` from the last backward pass.
    public internal(set) var grad: Tensor
    /// The pruning mask; nil means nothing is pruned.
    public private(set) var mask: Mask?
    /// Whether pruning policies consider this parameter (weights yes, biases no by default).
    public let isPrunable: Bool

    public init(_ value: Tensor, prunable: Bool) {
        self.value = value
        self.grad = Tensor(zeros: value.shape)
        self.isPrunable = prunable
    }

    public var shape: [Int] { value.shape }
    public var count: Int { value.count }
    /// True when a mask is attached.
    public var isPruned: Bool { mask != nil }
    /// The mask, or all ones when none is attached.
    public var effectiveMask: Mask { mask ?? Mask(ones: value.shape) }

    /// Replaces the value (shape must match); the mask, if any, is re-applied.
    public func assign(_ newValue: Tensor) throws {
        try newValue.expectShape(value.shape)
        value = newValue
        if let m = mask { value = try value.masked(by: m) }
    }

    /// Attaches a mask and zeroes the pruned entries. Throws on a shape mismatch (nothing changes).
    public func setMask(_ m: Mask) throws {
        guard m.shape == value.shape else { throw TensorError.shapeMismatch(expected: value.shape, got: m.shape) }
        value.makeUnique() // copies only when another tensor shares the storage
        try Kernels.maskApply(mask: m.storage, w: value.storage)
        mask = m
    }

    /// Drops the mask and keeps the zeros ("make permanent", PyTorch's prune.remove).
    public func removeMask() { mask = nil }

    /// Sets the gradient to zero.
    public func zeroGrad() { grad = Tensor(zeros: value.shape) }

    /// Storage of the mask for kernels (nil when unpruned).
    var maskStorage: ByteStorage? { mask?.storage }

    /// An optimizer step armed for the next backward pass (fused into the weight-gradient kernel by
    /// layers that support it); `fusedStepApplied` tells the optimizer it already happened.
    var pendingStep: UpdateStep?
    var fusedStepApplied = false

    /// Takes the armed step if any: the layer applies it during backward. The gradient is then not
    /// materialised (`grad` keeps its previous value).
    func takePendingStep() -> UpdateStep? {
        guard let s = pendingStep, !fusedStepApplied else { return nil }
        value.makeUnique()
        fusedStepApplied = true
        return s
    }
}
