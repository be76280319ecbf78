/// Layers applied in order. Each child has a name used for its parameters ("fc1.weight").
public final class Sequential: Layer {
    public private(set) var layers: [(name: String, layer: any Layer)]

    public init(_ layers: [(String, any Layer)]) {
        self.layers = layers.map { (name: $0.0, layer: $0.1) }
    }

    public var summary: String { "Sequential(" + layers.map { "\($0.name): \($0.layer.summary)" }.joined(separator: ", ") + ")" }

    public var namedParameters: [(name: String, parameter: Parameter)] {
        layers.flatMap { child in child.layer.namedParameters.map { (name: child.name + "." + $0.name, parameter: $0.parameter) } }
    }

    public func forward(_ x: Tensor, training: Bool) throws -> Tensor {
        var h = x
        for child in layers { h = try child.layer.forward(h, training: training) }
        return h
    }

    public func backward(_ dy: Tensor, needInputGradient: Bool) throws -> Tensor? {
        var g = dy
        for (i, child) in layers.enumerated().reversed() {
            let needed = i > 0 || needInputGradient
            guard let next = try child.layer.backward(g, needInputGradient: needed) else { return nil }
            g = next
        }
        return g
    }

    /// The child called `name`.
    public func child(named name: String) -> (any Layer)? { layers.first { $0.name == name }?.layer }

    /// Replaces the child at `index` (used by structural surgery).
    public func replace(at index: Int, with layer: any Layer) {
        layers[index].layer = layer
    }
}
