/// Observers of a layer's forward pass (PyTorch's forward hooks): each is called with the layer's
/// input and output after every forward pass, training or not. Calibration statistics (Wanda's
/// input energies, SparseGPT's Gram matrices, means for bias compensation) are gathered this way,
/// so layers never know what is observing them.
public final class ForwardHooks {
    public typealias Hook = (_ input: Tensor, _ output: Tensor) throws -> Void
    private var hooks: [(id: UInt64, hook: Hook)] = []
    private var nextID: UInt64 = 0

    public init() {}

    /// Registers `hook`; the handle removes it.
    @discardableResult
    public func add(_ hook: @escaping Hook) -> HookHandle {
        nextID += 1
        hooks.append((nextID, hook))
        return HookHandle(id: nextID, hooks: self)
    }

    public var isEmpty: Bool { hooks.isEmpty }
    public var count: Int { hooks.count }

    func remove(id: UInt64) { hooks.removeAll { $0.id == id } }

    /// Calls every hook in registration order (layers call this at the end of `forward`).
    public func run(input: Tensor, output: Tensor) throws {
        for h in hooks { try h.hook(input, output) }
    }
}

/// Removes a registered forward hook (removing twice does nothing).
public struct HookHandle {
    let id: UInt64
    weak var hooks: ForwardHooks?
    public func remove() { hooks?.remove(id: id) }
}

extension Layer {
    /// Registers `hook` on this layer; throws when the layer takes no hooks.
    @discardableResult
    public func addForwardHook(_ hook: @escaping ForwardHooks.Hook) throws -> HookHandle {
        guard let h = forwardHooks else { throw LayerError.noHooks(summary) }
        return h.add(hook)
    }
}
