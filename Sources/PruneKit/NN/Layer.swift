/// A differentiable building block with explicit forward and backward passes.
///
/// `forward` caches what `backward` needs; `backward` takes ∂L/∂output, writes the parameters'
/// gradients (overwriting them) and returns ∂L/∂input when asked. Layers compose: `Sequential` is
/// one, and blocks with skips (residual encoders) implement this protocol over their sub-layers.
public protocol Layer: AnyObject {
    /// Output for `input`; `training` lets layers keep what backward needs.
    func forward(_ input: Tensor, training: Bool) throws -> Tensor
    /// Gradients of the parameters from ∂L/∂output; returns ∂L/∂input when `needInputGradient`.
    func backward(_ outputGradient: Tensor, needInputGradient: Bool) throws -> Tensor?
    /// Parameters with names relative to this layer ("weight", "bias", "0.weight", ...).
    var namedParameters: [(name: String, parameter: Parameter)] { get }
    /// A short description ("Linear(784 → 300)").
    var summary: String { get }
    /// State that is saved and loaded but not trained (BatchNorm's running statistics), with names
    /// relative to this layer; containers list their children's, prefixed.
    var namedBuffers: [(name: String, buffer: Buffer)] { get }
    /// Sub-layers with their names ("fc1", "0"): containers list what they hold, leaves nothing.
    var children: [(name: String, layer: any Layer)] { get }
    /// Observers called after every forward pass with its input and output; nil for a layer that
    /// takes none.
    var forwardHooks: ForwardHooks? { get }
    /// Observers called after every backward pass with ∂L/∂output and ∂L/∂input; nil for a layer
    /// that takes none.
    var backwardHooks: BackwardHooks? { get }
}

extension Layer {
    public var namedParameters: [(name: String, parameter: Parameter)] { [] }
    public var children: [(name: String, layer: any Layer)] { [] }
    public var namedBuffers: [(name: String, buffer: Buffer)] { [] }
    public var forwardHooks: ForwardHooks? { nil }
    public var backwardHooks: BackwardHooks? { nil }
    /// The parameters of `namedParameters`, in the same order, without their names.
    public var parameters: [Parameter] { namedParameters.map(\.parameter) }

    /// This layer and every layer below it, depth first, with dotted names relative to this one
    /// ("" for itself, "fc1", "block.0.conv").
    public var namedLayers: [(name: String, layer: any Layer)] {
        [("", self)] + children.flatMap { c in
            c.layer.namedLayers.map { (name: $0.name.isEmpty ? c.name : c.name + "." + $0.name, layer: $0.layer) }
        }
    }

    /// Inference forward pass.
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try forward(x, training: false) }
}

/// Non-trained state of a layer (running statistics): saved and loaded with the parameters, never
/// touched by an optimizer.
public final class Buffer {
    /// The current state; its layer updates it (BatchNorm in each training forward pass).
    public var value: Tensor
    /// A buffer holding `value`.
    public init(_ value: Tensor) { self.value = value }
    /// The shape of `value`.
    public var shape: [Int] { value.shape }
}

/// Errors from using a layer out of order or with inputs of the wrong shape.
public enum LayerError: Error, CustomStringConvertible, Equatable {
    /// `backward` was called on the layer (named by its summary) with nothing cached from a training
    /// forward pass.
    case backwardBeforeForward(String)
    /// A layer (by summary or type name) was given an input or setting it rejects: what it expected, and
    /// the shape or values it got (empty when none apply).
    case badInput(layer: String, expected: String, got: [Int])
    /// A hook was registered on a layer (named by its summary) that takes no hooks of that kind.
    case noHooks(String)
    /// A class label outside 0..<classes, in row `row` of the batch.
    case badLabel(label: Int, row: Int, classes: Int)
    /// An operation the layer does not support; the string is the whole message.
    case unsupported(String)

    public var description: String {
        switch self {
        case let .backwardBeforeForward(l): return "\(l): backward called before a training forward pass"
        case let .badInput(l, e, g): return "\(l): expected input \(e), got shape \(g)"
        case let .noHooks(l): return "\(l) takes no forward hooks"
        case let .badLabel(label, row, classes): return "label \(label) of example \(row) is outside the \(classes) classes 0..<\(classes)"
        case let .unsupported(s): return s
        }
    }
}
