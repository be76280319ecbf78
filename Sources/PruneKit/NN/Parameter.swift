/// A trainable tensor with its gradient and an optional pruning mask (nil = all ones).
/// Invariant: wherever the mask is 0, `value` is exactly 0.0, and optimizers never move it.
public final class Parameter: @unchecked Sendable {
    /// Current value (masked entries are exactly 0). While the parameter is compressed this is
    /// rebuilt from the compressed form on each read; writing it returns the parameter to dense form.
    public internal(set) var value: Tensor {
        get {
            guard let c = compressed else { return stored }
            if let v = valueView, v.version == version { return v.tensor }
            let t = try! c.dense().weight.reshaped(shape)
            valueView = (version, t)
            return t
        }
        set { stored = newValue; if compressed != nil { decompress(keepingValue: false) } }
    }
    private var stored: Tensor
    /// Gradient of the loss with respect to `value` from the last backward pass. A compressed
    /// parameter keeps it for the kept entries only (`compressedGrad`); reading this scatters it.
    public internal(set) var grad: Tensor {
        get {
            guard let c = compressed else { return storedGrad }
            if let v = gradView, v.version == version { return v.tensor }
            let t = try! Tensor(shape: shape, storage: compressedGrad.map { c.scatter($0) } ?? FloatStorage(count: count))
            gradView = (version, t)
            return t
        }
        set {
            if let c = compressed { compressedGrad = c.gather(newValue.storage) } else { storedGrad = newValue }
        }
    }
    private var storedGrad: Tensor
    /// Dense views of a compressed parameter, rebuilt when `version` moves on (kernels update the
    /// compressed values and gradient in place and bump it).
    private var valueView: (version: Int, tensor: Tensor)?, gradView: (version: Int, tensor: Tensor)?
    private(set) var version = 0
    /// Marks the compressed values or gradient as changed.
    func touch() { version &+= 1 }
    /// The compressed form (sparse execution: CSR, packed N:M or block-sparse), or nil in dense form.
    /// See `compress(as:)`.
    public private(set) var compressed: (any CompressedWeight)? { didSet { touch(); valueView = nil; gradView = nil } }
    /// The gradient in the compressed form's order (`stateCount` entries; compressed form only).
    var compressedGrad: FloatStorage? { didSet { touch() } }
    /// The pruning mask; nil means nothing is pruned. A compressed parameter does not store it: it
    /// is rebuilt from the compressed form's kept positions on each read.
    public var mask: Mask? {
        if let c = compressed { return compressedFromMask ? Mask(shape: shape, storage: c.keptMask().storage) : nil }
        return storedMask
    }
    private var storedMask: Mask?
    private var compressedFromMask = false
    /// The format `Execution` chose for the current mask or compressed form (see `preferredFormat`).
    var formatChoice: (key: ObjectIdentifier, allowDense: Bool, path: ExecutionPath, format: CompressedFormat?)?
    /// Whether pruning policies consider this parameter (weights yes, biases no by default).
    public let isPrunable: Bool
    /// Whether training updates it. A fixed parameter (BERT's embedding tables) gets no gradient:
    /// its layer does not compute one, and `Model.trainableParameters` leaves it out.
    public let isTrainable: Bool

    /// A dense parameter holding `value`, with no mask and a zero gradient; `prunable` and `trainable`
    /// set `isPrunable` and `isTrainable` (a fixed parameter stores an empty gradient).
    public init(_ value: Tensor, prunable: Bool, trainable: Bool = true) {
        self.stored = value
        self.shape = value.shape
        self.storedGrad = Tensor(zeroed: trainable ? value.shape : [0])
        self.isPrunable = prunable
        self.isTrainable = trainable
    }

    /// The parameter's (dense) shape; it never changes.
    public let shape: [Int]
    /// Number of scalars in the dense shape.
    public var count: Int { shape.reduce(1, *) }
    /// True when a mask is attached.
    public var isPruned: Bool { compressed != nil ? compressedFromMask : storedMask != nil }
    /// The mask, or all ones when none is attached.
    public var effectiveMask: Mask { mask ?? Mask(ones: shape) }

    /// Replaces the value (shape must match); the mask, if any, is re-applied.
    public func assign(_ newValue: Tensor) throws {
        try newValue.expectShape(shape)
        guard newValue.isFinite else { throw TensorError.nonFinite("the value assigned to a parameter of shape \(shape)") }
        let masked = try mask.map { try newValue.masked(by: $0) } ?? newValue
        if let c = compressed {
            compressed = try c.format.compress(masked, mask: compressedFromMask ? Mask(shape: shape, storage: c.keptMask().storage) : nil)
        } else {
            value = masked
        }
    }

    /// Attaches a mask and zeroes the pruned entries. Throws on a shape mismatch (nothing changes).
    public func setMask(_ m: Mask) throws {
        guard m.shape == shape else { throw TensorError.shapeMismatch(expected: shape, got: m.shape) }
        if compressed != nil { decompress() } // a new mask changes the compressed structure
        stored.makeUnique() // copies only when another tensor shares the storage
        try Kernels.maskApply(mask: m.storage, w: stored.storage)
        storedMask = m
        keptCache = nil
    }

    /// Drops the mask and keeps the zeros ("make permanent", PyTorch's prune.remove).
    public func removeMask() {
        decompress()
        storedMask = nil
        keptCache = nil
    }

    /// Sets the gradient to zero.
    public func zeroGrad() {
        if let c = compressed { compressedGrad = FloatStorage(count: c.stateCount) } else { grad = Tensor(zeroed: shape) }
    }

    // MARK: compressed form (sparse execution)

    /// Stores only the kept entries in `format` (CSR by default; a weight of rank above 2 is viewed as
    /// shape[0] × the rest): the dense value and gradient are released, layers run that format's
    /// kernels, and optimizers keep state in its layout. `value`, `mask` and export still see the
    /// dense view. Optimizer state already held for this parameter follows the change at the
    /// optimizer's next step (`adaptState`). A parameter already compressed in another format is
    /// converted. Throws `StructureError` (nothing changes) when the mask lacks the format's structure.
    public func compress(as format: CompressedFormat = .csr) throws {
        if let c = compressed {
            if c.format == format { return }
            // convert: build the new form from the dense view before giving up the old one
            let (w, m) = try c.dense()
            let next = try format.compress(w.reshaped(shape), mask: compressedFromMask ? Mask(shape: shape, storage: m.storage) : nil)
            compressed = next
            compressedGrad = nil
            return
        }
        let c = try format.compress(stored, mask: storedMask)
        compressed = c
        compressedFromMask = storedMask != nil
        storedMask = nil
        compressedGrad = nil
        stored = Tensor(zeroed: [0]) // released: the compressed form holds the values
        storedGrad = Tensor(zeroed: [0])
    }

    /// Back to dense storage (the values are kept).
    public func decompress() { decompress(keepingValue: true) }

    private func decompress(keepingValue: Bool) {
        guard let c = compressed else { return }
        if keepingValue { stored = try! c.dense().weight.reshaped(shape) }
        if compressedFromMask { storedMask = Mask(shape: shape, storage: c.keptMask().storage) }
        compressed = nil
        compressedGrad = nil
        grad = Tensor(zeroed: shape)
    }

    /// Fraction of entries kept (1 without a mask); counted once per mask.
    public var keptFraction: Double {
        if let c = compressed { return Double(c.nnz) / Double(max(count, 1)) }
        guard let m = mask else { return 1 }
        if let (id, f) = keptCache, id == ObjectIdentifier(m.storage) { return f }
        let f = Double(m.keptCount) / Double(max(count, 1))
        keptCache = (ObjectIdentifier(m.storage), f)
        return f
    }
    private var keptCache: (ObjectIdentifier, Double)?

    /// Number of entries an optimizer keeps state for: the compressed form's when compressed.
    var stateCount: Int { compressed?.stateCount ?? count }

    /// Optimizer state `s`, laid out for `layout` (a compressed form, or nil for the dense layout),
    /// brought to the parameter's current form: scattered out of the old compressed form, gathered
    /// into the current one. Zeros when `s` does not fit `layout` (a state of another parameter).
    func adaptState(_ s: FloatStorage, from layout: (any CompressedWeight)?) -> FloatStorage {
        if layout === compressed && s.count == stateCount { return s }
        guard s.count == (layout?.stateCount ?? count), layout.map({ $0.rows * $0.cols == count }) ?? true else {
            return FloatStorage(count: stateCount)
        }
        let dense = layout.map { $0.scatter(s) } ?? s
        return compressed.map { $0.gather(dense) } ?? dense
    }

    /// Optimizer state laid out for `layout`, as a dense copy (zeros at pruned entries) for checkpoints.
    func denseState(_ s: FloatStorage, from layout: (any CompressedWeight)?) -> FloatStorage {
        if let c = layout, s.count == c.stateCount { return c.scatter(s) }
        return s.count == count ? s.copy() : FloatStorage(count: count)
    }

    /// Bytes this parameter holds: the dense value and gradient, or the compressed form and its
    /// gradient, plus the mask.
    public var residentBytes: Int {
        let maskBytes = storedMask?.count ?? 0
        if let c = compressed { return c.bytes + (compressedGrad?.count ?? 0) * 4 + maskBytes }
        return (stored.count + storedGrad.count) * 4 + maskBytes
    }

    /// Storage of the mask for kernels (nil when unpruned).
    var maskStorage: ByteStorage? { mask?.storage }

    /// An optimizer step armed for the next backward pass (fused into the weight-gradient kernel by
    /// layers that support it); `fusedStepApplied` tells the optimizer it already happened.
    var pendingStep: UpdateStep?
    var fusedStepApplied = false

    /// Takes the armed step if any: the layer applies it during backward. The gradient is then not
    /// materialised (`grad` keeps its previous value). A step armed for another form (the layer
    /// changed form after arming) is not taken: the layer computes the gradient instead.
    func takePendingStep() -> UpdateStep? {
        guard let s = pendingStep, !fusedStepApplied, s.fits(stateCount) else { return nil }
        if compressed == nil { stored.makeUnique() }
        fusedStepApplied = true
        return s
    }
}
