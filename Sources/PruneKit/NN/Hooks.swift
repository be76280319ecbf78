/// Observers of a layer's passes (PyTorch's forward hooks and read-only full backward hooks).
/// Layers never know what is observing them: calibration statistics (Wanda's input energies,
/// SparseGPT's Gram matrices, means for bias compensation) come from forward hooks, Taylor
/// importance of units (Σ x·∂L/∂x at a layer's input) from backward hooks.
struct HookStore<Hook> {
    private(set) var hooks: [(id: UInt64, hook: Hook)] = []
    private var nextID: UInt64 = 0

    mutating func add(_ hook: Hook) -> UInt64 {
        nextID += 1
        hooks.append((nextID, hook))
        return nextID
    }

    mutating func remove(id: UInt64) { hooks.removeAll { $0.id == id } }
}

/// Removes a registered hook (removing twice, or after the layer is gone, does nothing).
public struct HookHandle {
    let removal: () -> Void
    /// Removes the hook; does nothing when it is already removed or its list is gone.
    public func remove() { removal() }
}

/// A list of hooks of one signature; the handle `add` returns removes its hook.
public class HookList<Hook> {
    var store = HookStore<Hook>()

    init() {}

    /// Registers `hook`; the handle removes it.
    @discardableResult
    public func add(_ hook: Hook) -> HookHandle {
        let id = store.add(hook)
        return HookHandle { [weak self] in self?.store.remove(id: id) }
    }

    /// True when no hook is registered.
    public var isEmpty: Bool { store.hooks.isEmpty }
    /// Number of registered hooks.
    public var count: Int { store.hooks.count }
}

/// Forward hooks: each is called with the layer's input and output after every forward pass,
/// training or not, in registration order.
public final class ForwardHooks: HookList<(_ input: Tensor, _ output: Tensor) throws -> Void> {
    /// Called with the layer's input and output; an error it throws propagates out of `forward`.
    public typealias Hook = (_ input: Tensor, _ output: Tensor) throws -> Void
    /// An empty list.
    public override init() {}

    /// Calls every hook (layers call this at the end of `forward`).
    public func run(input: Tensor, output: Tensor) throws {
        for h in store.hooks { try h.hook(input, output) }
    }
}

/// Backward hooks: each is called after every backward pass with ∂L/∂output and ∂L/∂input, in
/// registration order. Layers with such hooks compute ∂L/∂input even when the caller does not
/// need it.
public final class BackwardHooks: HookList<(_ outputGradient: Tensor, _ inputGradient: Tensor) throws -> Void> {
    /// Called with ∂L/∂output and ∂L/∂input; an error it throws propagates out of `backward`.
    public typealias Hook = (_ outputGradient: Tensor, _ inputGradient: Tensor) throws -> Void
    /// An empty list.
    public override init() {}

    /// Calls every hook (layers call this at the end of `backward`).
    public func run(outputGradient: Tensor, inputGradient: Tensor) throws {
        for h in store.hooks { try h.hook(outputGradient, inputGradient) }
    }
}

extension Layer {
    /// Registers a forward hook on this layer; throws when the layer takes none.
    @discardableResult
    public func addForwardHook(_ hook: @escaping ForwardHooks.Hook) throws -> HookHandle {
        guard let h = forwardHooks else { throw LayerError.noHooks(summary) }
        return h.add(hook)
    }

    /// Registers a backward hook on this layer; throws when the layer takes none.
    @discardableResult
    public func addBackwardHook(_ hook: @escaping BackwardHooks.Hook) throws -> HookHandle {
        guard let h = backwardHooks else { throw LayerError.noHooks(summary) }
        return h.add(hook)
    }
}
