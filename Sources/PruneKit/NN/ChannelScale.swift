/// Scales every channel of an input by a per-example gate: y[n, c, …] = x[n, c, …] · g[n, c]
/// (the multiply of a squeeze-and-excitation block, ONNX's Mul of N×C×H×W by N×C×1×1), or, when
/// the gate has x's own shape, multiplies element by element: y = x ⊙ g (ONNX's Mul of two equal
/// shapes, e.g. HardSwish as x · HardSigmoid(x), which is how opset 13 exports it). Either way
/// channel c of x, of g and of y go together (the dependency graph's `.scale` rule).
/// Inputs, in order: x of shape N×C×… and the gate g of shape N×C (or N×C×1×…×1), or of x's shape.
///
/// The element-by-element product runs in C (`pk_mul_f32`); the per-channel gate's loops run in
/// Swift: the gate multiplies once per element, a small fraction of the convolutions around it.
public final class ChannelScale: MergeLayer {
    private var cache: (x: Tensor, g: Tensor)?
    /// A ChannelScale layer (no parameters).
    public init() {}
    public var summary: String { "ChannelScale" }

    private func check(_ inputs: [Tensor]) throws -> (x: Tensor, g: Tensor, rows: Int, inner: Int) {
        guard inputs.count == 2, inputs[0].rank >= 2 else {
            throw LayerError.badInput(layer: summary, expected: "two inputs: x [batch, C, ...] and a gate [batch, C]",
                                      got: inputs.first?.shape ?? [])
        }
        let x = inputs[0], g = inputs[1]
        // element by element: every element its own "row" of one
        if g.shape == x.shape { return (x, g, x.count, 1) }
        let rows = x.shape[0] * x.shape[1]
        guard g.rank >= 2, g.shape[0] == x.shape[0], g.shape[1] == x.shape[1], g.count == rows else {
            throw LayerError.badInput(layer: summary,
                                      expected: "a gate of shape [\(x.shape[0]), \(x.shape[1])] (trailing 1s allowed) or \(x.shape)",
                                      got: g.shape)
        }
        return (x, g, rows, x.shape.dropFirst(2).reduce(1, *))
    }

    public func forward(_ inputs: [Tensor], training: Bool) throws -> Tensor {
        let (x, g, rows, inner) = try check(inputs)
        let y = Tensor(uninitialized: x.shape)
        cache = training ? (x, g) : nil
        if g.count == x.count {
            try Kernels.mul(x: x.storage, y: g.storage, out: y.storage)
            return y
        }
        // rows = N·C gates, each scaling `inner` consecutive elements
        for r in 0..<rows {
            let s = g.storage[r]
            for j in r * inner..<(r + 1) * inner { y.storage[j] = x.storage[j] * s }
        }
        return y
    }

    public func backward(_ dy: Tensor, needInputGradients: [Bool]) throws -> [Tensor?] {
        guard let (x, g) = cache else { throw LayerError.backwardBeforeForward(summary) }
        try dy.expectShape(x.shape)
        guard needInputGradients.count == 2 else {
            throw LayerError.badInput(layer: summary, expected: "2 gradient flags", got: [needInputGradients.count])
        }
        let rows = g.count, inner = x.count / max(g.count, 1)
        var dx: Tensor? = nil, dg: Tensor? = nil
        if g.count == x.count {
            // element by element: ∂L/∂x = ∂L/∂y ⊙ g, ∂L/∂g = ∂L/∂y ⊙ x
            if needInputGradients[0] { dx = Tensor(uninitialized: x.shape); try Kernels.mul(x: dy.storage, y: g.storage, out: dx!.storage) }
            if needInputGradients[1] { dg = Tensor(uninitialized: g.shape); try Kernels.mul(x: dy.storage, y: x.storage, out: dg!.storage) }
            return [dx, dg]
        }
        if needInputGradients[0] {
            let t = Tensor(uninitialized: x.shape)
            // ∂L/∂x = ∂L/∂y · g, broadcast over each row of `inner` elements
            for r in 0..<rows {
                let s = g.storage[r]
                for j in r * inner..<(r + 1) * inner { t.storage[j] = dy.storage[j] * s }
            }
            dx = t
        }
        if needInputGradients[1] {
            let t = Tensor(uninitialized: g.shape)
            // ∂L/∂g[r] = Σⱼ ∂L/∂y[r, j] · x[r, j], summed in a fixed order
            for r in 0..<rows {
                var acc: Float = 0
                for j in r * inner..<(r + 1) * inner { acc += dy.storage[j] * x.storage[j] }
                t.storage[r] = acc
            }
            dg = t
        }
        return [dx, dg]
    }
}
