/// Layers applied in order. Each child has a name used for its parameters ("fc1.weight").
public final class Sequential: Layer {
    /// The children with their names, in the order they run.
    public private(set) var layers: [(name: String, layer: any Layer)]

    /// When set, forward and backward times are added up per child (see `LayerProfile`).
    public var profile: LayerProfile?

    /// Runs `layers` (name, layer) in order. Each Conv2d directly followed by a BatchNorm is linked to it
    /// so inference folds the normalisation into the convolution (and a ReLU right after them too).
    public init(_ layers: [(String, any Layer)]) {
        self.layers = layers.map { (name: $0.0, layer: $0.1) }
        linkFoldableNorms()
    }

    /// Links each convolution directly followed by a BatchNorm (which alone reads its output) to it,
    /// so inference folds the normalisation into the convolution (see `Conv2d`), and a ReLU directly
    /// after that BatchNorm to the convolution, so its epilogue rectifies. A convolution no longer
    /// followed by its BatchNorm (one of them replaced) loses its links.
    private func linkFoldableNorms() {
        for (_, layer) in layers {
            (layer as? Conv2d)?.foldedNorm = nil
            (layer as? Conv2d)?.foldedActivation = nil
        }
        for i in layers.indices.dropLast() {
            guard let conv = layers[i].layer as? Conv2d, let bn = layers[i + 1].layer as? BatchNorm else { continue }
            conv.foldNorm(bn)
            if i + 2 < layers.count, let relu = layers[i + 2].layer as? ReLU { conv.foldActivation(relu) }
        }
    }

    public var children: [(name: String, layer: any Layer)] { layers }

    public var summary: String { "Sequential(" + layers.map { "\($0.name): \($0.layer.summary)" }.joined(separator: ", ") + ")" }

    public var namedBuffers: [(name: String, buffer: Buffer)] {
        layers.flatMap { child in child.layer.namedBuffers.map { (name: child.name + "." + $0.name, buffer: $0.buffer) } }
    }

    public var namedParameters: [(name: String, parameter: Parameter)] {
        layers.flatMap { child in child.layer.namedParameters.map { (name: child.name + "." + $0.name, parameter: $0.parameter) } }
    }

    public func forward(_ x: Tensor, training: Bool) throws -> Tensor {
        var h = x
        for child in layers {
            let t0 = profile != nil ? DispatchTime.now().uptimeNanoseconds : 0
            h = try child.layer.forward(h, training: training)
            if let profile { profile.add(child.name, forward: true, nanoseconds: DispatchTime.now().uptimeNanoseconds - t0) }
        }
        return h
    }

    public func backward(_ dy: Tensor, needInputGradient: Bool) throws -> Tensor? {
        var g = dy
        for (i, child) in layers.enumerated().reversed() {
            let needed = i > 0 || needInputGradient
            let t0 = profile != nil ? DispatchTime.now().uptimeNanoseconds : 0
            let next = try child.layer.backward(g, needInputGradient: needed)
            if let profile { profile.add(child.name, forward: false, nanoseconds: DispatchTime.now().uptimeNanoseconds - t0) }
            guard let next else { return nil }
            g = next
        }
        return g
    }

    /// The child called `name`.
    public func child(named name: String) -> (any Layer)? { layers.first { $0.name == name }?.layer }

    /// Replaces the child at `index` (used by structural surgery).
    public func replace(at index: Int, with layer: any Layer) {
        layers[index].layer = layer
        linkFoldableNorms()
    }
}

/// Wall time spent in each child layer of a `Sequential`, forward and backward separately.
public final class LayerProfile: @unchecked Sendable {
    /// Child names in the order they were first timed.
    public private(set) var order: [String] = []
    /// Total forward time per child name, in nanoseconds.
    public private(set) var forwardNanoseconds: [String: UInt64] = [:]
    /// Total backward time per child name, in nanoseconds.
    public private(set) var backwardNanoseconds: [String: UInt64] = [:]
    /// An empty profile; assign it to `Sequential.profile` to start timing.
    public init() {}

    func add(_ name: String, forward: Bool, nanoseconds: UInt64) {
        if forwardNanoseconds[name] == nil && backwardNanoseconds[name] == nil { order.append(name) }
        if forward { forwardNanoseconds[name, default: 0] += nanoseconds } else { backwardNanoseconds[name, default: 0] += nanoseconds }
    }

    /// A table: layer, forward ms, backward ms, share of the total.
    public var table: String {
        let total = Double(order.reduce(UInt64(0)) { $0 + (forwardNanoseconds[$1] ?? 0) + (backwardNanoseconds[$1] ?? 0) })
        var lines = ["layer        forward ms  backward ms  share"]
        for n in order {
            let f = Double(forwardNanoseconds[n] ?? 0), b = Double(backwardNanoseconds[n] ?? 0)
            lines.append(String(format: "%-12@ %10.1f %12.1f %5.1f%%", n, f / 1e6, b / 1e6, 100 * (f + b) / max(total, 1)))
        }
        return lines.joined(separator: "\n")
    }
}

import Foundation
