/// Physical removal of pruned units: hidden neurons of Linear layers and output channels of Conv2d
/// layers whose weights are all pruned are cut out, together with the matching inputs of the layer
/// that consumes them (Linear→Linear, Conv2d→Conv2d, Conv2d→Flatten→Linear). A removed unit still
/// emitted a constant (its bias through the activation); that constant's contribution is folded
/// into the consumer's bias, so the smaller model computes the same outputs as the masked one.
public enum Surgery {
    /// What `removePrunedUnits` removed, and the parameter counts around it.
    public struct Result: Sendable {
        /// Units removed, keyed by layer name (a flat Sequential) or by the group's producers joined with
        /// ", " (a graph).
        public let removedUnits: [String: Int]
        /// Scalar parameters of the input model.
        public let parametersBefore: Int
        /// Scalar parameters of the returned model.
        public let parametersAfter: Int
    }

    /// Returns a new, smaller model (the input model is not changed) and what was removed.
    public static func removePrunedUnits(_ model: Model) throws -> (model: Model, result: Result) {
        guard model.isFlat, let sequential = model.network as? Sequential else {
            // graphs: a copy of the model (through its state dict and architecture), then the
            // dependency graph removes the dead units of the copy
            guard Model.architectures.contains(model.architecture) else {
                throw PruneError.unsupported("surgery of a '\(model.architecture)' graph: PruneKit cannot copy it; "
                                             + "use DependencyGraph(model).removePrunedUnits(), which changes the model in place")
            }
            let copy = try model.copy()
            let before = copy.parameterCount
            let r = try DependencyGraph(copy).removePrunedUnits()
            var removed: [String: Int] = [:]
            for (k, v) in r.removedUnits { removed[k] = v }
            return (copy, Result(removedUnits: removed, parametersBefore: before, parametersAfter: copy.parameterCount))
        }
        let children = sequential.layers
        var layers: [(String, any Layer)] = children.map { ($0.name, $0.layer) }
        var removed: [String: Int] = [:]
        let before = model.parameterCount
        // copy every parameterised layer first: surgery never mutates the caller's model
        for i in layers.indices {
            if let l = layers[i].1 as? Linear { layers[i].1 = try copy(l) }
            if let c = layers[i].1 as? Conv2d { layers[i].1 = try copy(c) }
        }
        var i = 0
        while i < layers.count {
            let producer = layers[i].1
            guard producer is Linear || producer is Conv2d else { i += 1; continue }
            // find the consumer and what sits in between
            var j = i + 1, relu = false, flattenAt: Int? = nil, unknown: String? = nil
            while j < layers.count, !(layers[j].1 is Linear || layers[j].1 is Conv2d) {
                switch layers[j].1 {
                case is ReLU: relu = true
                case is Flatten: flattenAt = j
                case is MaxPool2d, is Identity, is Dropout: break // a constant map stays that constant
                default: unknown = unknown ?? "\(layers[j].0) (\(layers[j].1.summary))"
                }
                j += 1
            }
            guard j < layers.count else { break } // the last layer produces the outputs: never cut
            let w = (producer as? Linear)?.weight ?? (producer as! Conv2d).weight
            let units = w.shape[0], per = w.count / units
            let m = w.effectiveMask, v = w.value.scalars
            let dead = (0..<units).filter { u in !(0..<per).contains { m[flat: u * per + $0] && v[u * per + $0] != 0 } }
            guard !dead.isEmpty else { i = j; continue }
            guard dead.count < units else {
                throw PruneError.unsupported("every unit of \(layers[i].0) is pruned: removing them would disconnect the network")
            }
            if let unknown {
                // what a removed unit emits passes through a layer whose effect on a constant is unknown
                throw PruneError.unsupported("cannot fold the removed units of \(layers[i].0) through \(unknown): "
                                             + "only ReLU, max pooling, dropout, identity and Flatten are understood here")
            }
            let keep = (0..<units).filter { !Set(dead).contains($0) }
            let bias = (producer as? Linear)?.bias ?? (producer as? Conv2d)?.bias
            let constant: (Int) -> Float = { u in
                let b = bias?.value.scalars[u] ?? 0
                return relu ? max(b, 0) : b
            }
            // features of the consumer fed by unit u
            let consumer = layers[j].1
            var spatial = 1
            if flattenAt != nil, let lin = consumer as? Linear { spatial = lin.inFeatures / units }
            layers[i].1 = try shrinkOutputs(producer, keep: keep)
            layers[j].1 = try shrinkInputs(consumer, units: units, keep: keep, spatial: spatial, constant: constant)
            removed[layers[i].0] = dead.count
            i = j
        }
        let net = Sequential(layers)
        let out = Model(architecture: model.architecture, network: net, inputShape: model.inputShape)
        return (out, Result(removedUnits: removed, parametersBefore: before, parametersAfter: out.parameterCount))
    }

    static func copy(_ l: Linear) throws -> Linear {
        let n = try Linear(weight: l.weight.value, bias: l.bias?.value)
        if let m = l.weight.mask { try n.weight.setMask(m) }
        return n
    }

    static func copy(_ c: Conv2d) throws -> Conv2d {
        let n = try c.rebuilt(weight: c.weight.value, bias: c.bias?.value, groups: c.groups)
        if let m = c.weight.mask { try n.weight.setMask(m) }
        return n
    }

    /// Keeps the output units `keep` (rows of the weight, entries of the bias).
    static func shrinkOutputs(_ layer: any Layer, keep: [Int]) throws -> any Layer {
        let w = (layer as? Linear)?.weight ?? (layer as! Conv2d).weight
        let per = w.count / w.shape[0]
        let v = w.value.scalars, mk = w.mask
        var nv: [Float] = [], nm: [Bool] = []
        for u in keep {
            nv += v[(u * per)..<((u + 1) * per)]
            if let mk { nm += (0..<per).map { mk[flat: u * per + $0] } }
        }
        let b = ((layer as? Linear)?.bias ?? (layer as? Conv2d)?.bias).map { bp in keep.map { bp.value.scalars[$0] } }
        var shape = w.shape
        shape[0] = keep.count
        let out: any Layer
        if let c = layer as? Conv2d {
            out = try c.rebuilt(weight: Tensor(shape: shape, scalars: nv), bias: b.map { try Tensor(shape: [keep.count], scalars: $0) })
        } else {
            out = try Linear(weight: Tensor(shape: shape, scalars: nv), bias: b.map { try Tensor(shape: [keep.count], scalars: $0) })
        }
        if mk != nil {
            let p = (out as? Linear)?.weight ?? (out as! Conv2d).weight
            try p.setMask(Mask(shape: shape, kept: nm))
        }
        return out
    }

    /// Removes the inputs fed by dropped units and folds their constant output into the bias.
    static func shrinkInputs(_ layer: any Layer, units: Int, keep: [Int], spatial: Int,
                             constant: (Int) -> Float) throws -> any Layer {
        let keepSet = Set(keep)
        if let lin = layer as? Linear {
            let inF = lin.inFeatures, outF = lin.outFeatures
            let v = lin.weight.value.scalars, mk = lin.weight.mask
            var bias = lin.bias?.value.scalars ?? [Float](repeating: 0, count: outF)
            let cols = (0..<inF).filter { keepSet.contains($0 / spatial) }
            var nv: [Float] = [], nm: [Bool] = []
            nv.reserveCapacity(outF * cols.count)
            for o in 0..<outF {
                var extra: Double = 0
                for c in 0..<inF where !keepSet.contains(c / spatial) {
                    if mk?[flat: o * inF + c] ?? true { extra += Double(v[o * inF + c]) * Double(constant(c / spatial)) }
                }
                bias[o] += Float(extra)
                for c in cols { nv.append(v[o * inF + c]); if let mk { nm.append(mk[flat: o * inF + c]) } }
            }
            let out = try Linear(weight: Tensor(shape: [outF, cols.count], scalars: nv), bias: Tensor(shape: [outF], scalars: bias))
            if mk != nil { try out.weight.setMask(Mask(shape: [outF, cols.count], kept: nm)) }
            return out
        }
        let conv = layer as! Conv2d
        let (oc, ic, k) = (conv.outChannels, conv.inChannels, conv.kernelSize)
        if conv.padding > 0, let dropped = (0..<ic).first(where: { !keepSet.contains($0) && constant($0) != 0 }) {
            // a border output sees only part of the kernel over the padded zeros: no single bias is exact
            throw PruneError.unsupported("\(conv.summary): removed input channel \(dropped) carries a constant \(constant(dropped)) "
                                         + "that zero padding does not let fold into one bias")
        }
        let v = conv.weight.value.scalars, mk = conv.weight.mask
        var bias = conv.bias?.value.scalars ?? [Float](repeating: 0, count: oc)
        var nv: [Float] = [], nm: [Bool] = []
        for o in 0..<oc {
            var extra: Double = 0
            for c in 0..<ic {
                let base = (o * ic + c) * k * k
                if keepSet.contains(c) {
                    nv += v[base..<(base + k * k)]
                    if let mk { nm += (0..<(k * k)).map { mk[flat: base + $0] } }
                } else {
                    // a constant input map: every output position sees the whole kernel (no padding)
                    for q in 0..<(k * k) where mk?[flat: base + q] ?? true { extra += Double(v[base + q]) * Double(constant(c)) }
                }
            }
            bias[o] += Float(extra)
        }
        let shape = [oc, keep.count, k, k]
        let out = try conv.rebuilt(weight: Tensor(shape: shape, scalars: nv), bias: Tensor(shape: [oc], scalars: bias))
        if mk != nil { try out.weight.setMask(Mask(shape: shape, kept: nm)) }
        return out
    }
}
