extension DependencyGraph {
    // MARK: removal

    /// What `removePrunedUnits` removed.
    public struct Removal {
        /// Units removed per group, keyed by the group's producers joined with ", ".
        public let removedUnits: [String: Int]
        /// The model's scalar parameter count before the removal.
        public let parametersBefore: Int
        /// The count after it (`parametersBefore` when no unit was dead).
        public let parametersAfter: Int
    }

    /// Physically removes every dead unit (all its producer rows pruned or zero): the producers'
    /// rows and bias entries, the BatchNorm entries (weights, running statistics), the consumers'
    /// columns. What a removed unit still emitted (its producers' biases through BatchNorm and the
    /// activations, in evaluation mode) is folded into the consumers' biases where that is exact:
    /// Linear consumers, and Conv2d consumers without padding; a nonzero constant that reaches a
    /// padded convolution through kept weights is refused (units masked by `prune` never do: their
    /// consumer columns are masked too). The model is changed in place, all at once after every
    /// check: on error nothing changes. Parameters are new objects: optimizer state starts afresh.
    @discardableResult
    public func removePrunedUnits() throws -> Removal {
        let before = model.parameterCount
        var deadElements = Set<Int>()          // union-find elements of removed units
        var removed: [String: Int] = [:]
        var constant: [Int: Float] = [:]       // element → constant it carries
        let rows = try keptRowCounts()
        for g in groups {
            let dead = g.units.filter { !isAlive($0, rows: rows) }
            guard !dead.isEmpty else { continue }
            guard dead.count < g.units.count else {
                throw PruneError.unsupported("every channel of the group of \(g.producers.joined(separator: ", ")) is pruned: "
                                             + "removing them would disconnect the network")
            }
            removed[g.producers.joined(separator: ", ")] = dead.count
            for u in dead { for (v, c) in u.elements { deadElements.insert(element(v, c)) } }
        }
        guard !deadElements.isEmpty else { return Removal(removedUnits: [:], parametersBefore: before, parametersAfter: before) }
        // constants, in trace order (producer outputs are their biases)
        for n in nodes {
            let out = n.output
            for c in 0..<values[out].channels where deadElements.contains(element(out, c)) {
                let k: Float
                switch n.rule {
                case .producer:
                    k = ((n.layer as? Linear)?.bias ?? (n.layer as? Conv2d)?.bias)?.value[flat: c] ?? 0
                case .attention:
                    k = (n.layer as! MultiHeadAttention).output.bias?.value[flat: c] ?? 0
                case .locked:
                    k = 0 // never reached: no unit through a locked value is pruned
                case .add:
                    k = n.inputs.reduce(0) { $0 + (constant[element($1, c)] ?? 0) }
                case .scale:
                    // a removed channel's input and gate are both constants (the gate's producer row
                    // is removed with it): their product
                    k = n.inputs.reduce(1) { $0 * (constant[element($1, c)] ?? 0) }
                case .concat:
                    var off = 0, found: Float = 0
                    for i in n.inputs {
                        if c >= off && c < off + values[i].channels { found = constant[element(i, c - off)] ?? 0 }
                        off += values[i].channels
                    }
                    k = found
                case .flatten:
                    k = constant[element(n.inputs[0], c / values[n.inputs[0]].spatial)] ?? 0
                case .elementwise:
                    k = try Self.constantThrough(n, constant[element(n.inputs[0], c)] ?? 0, channel: c)
                case .depthwise:
                    let conv = n.layer as! Conv2d, per = conv.kernelSize * conv.kernelSize
                    let kin = constant[element(n.inputs[0], c)] ?? 0
                    let m = conv.weight.mask
                    let sum = (0..<per).reduce(Float(0)) { acc, q in
                        (m?[flat: c * per + q] ?? true) ? acc + conv.weight.value[flat: c * per + q] : acc
                    }
                    if conv.padding > 0 && sum * kin != 0 {
                        throw PruneError.unsupported("\(n.name): a removed channel's constant \(kin) meets zero padding (borders would differ)")
                    }
                    k = (conv.bias?.value[flat: c] ?? 0) + sum * kin
                }
                constant[element(out, c)] = k
            }
        }
        // the new layers, all computed before anything is replaced
        var replacements: [(Node, any Layer)] = []
        for (index, n) in nodes.enumerated() {
            let outDead = (0..<values[n.output].channels).filter { deadElements.contains(element(n.output, $0)) }
            switch n.layer {
            case let bn as BatchNorm:
                guard !outDead.isEmpty else { continue }
                replacements.append((n, try Self.shrink(bn, removing: Set(outDead))))
            case let conv as Conv2d where n.rule == .depthwise:
                guard !outDead.isEmpty else { continue }
                replacements.append((n, try Self.shrinkDepthwise(conv, removing: Set(outDead))))
            case is Linear, is Conv2d:
                let input = n.inputs[0]
                let inDead = (0..<values[input].channels).filter { deadElements.contains(element(input, $0)) }
                guard !outDead.isEmpty || !inDead.isEmpty else { continue }
                let consts = inDead.map { constant[element(input, $0)] ?? 0 }
                replacements.append((n, try Self.shrink(n.layer, name: n.name, rows: Set(outDead), columns: inDead, constants: consts)))
            case let a as MultiHeadAttention:
                let input = n.inputs[0], hv = headValueOf[index]!
                let inDead = (0..<values[input].channels).filter { deadElements.contains(element(input, $0)) }
                let deadHeads = Set((0..<a.heads).filter { deadElements.contains(element(hv, $0)) })
                guard !outDead.isEmpty || !inDead.isEmpty || !deadHeads.isEmpty else { continue }
                var out = deadHeads.isEmpty ? a : try Self.removeHeads(a, dead: deadHeads, name: n.name)
                if !outDead.isEmpty || !inDead.isEmpty {
                    let consts = inDead.map { constant[element(input, $0)] ?? 0 }
                    func cut(_ l: Linear, _ part: String) throws -> Linear {
                        try Self.shrink(l, name: n.name + "." + part, rows: [], columns: inDead, constants: consts) as! Linear
                    }
                    out = try MultiHeadAttention(query: cut(out.query, "query"), key: cut(out.key, "key"), value: cut(out.value, "value"),
                                                 output: Self.shrink(out.output, name: n.name + ".output", rows: Set(outDead), columns: [],
                                                                     constants: []) as! Linear,
                                                 heads: out.heads, context: out.context)
                    out.headMask = deadHeads.isEmpty ? a.headMask : (0..<a.heads).filter { !deadHeads.contains($0) }.map { a.headMask[$0] }
                }
                replacements.append((n, out))
            default: continue
            }
        }
        for (n, layer) in replacements {
            guard let place = n.place else { throw PruneError.unsupported("\(n.name): a model that is a single layer has nothing to remove") }
            if let seq = place.container as? Sequential { seq.replace(at: Int(place.key)!, with: layer) }
            else if let graph = place.container as? Graph { try graph.replace(place.key, with: layer) }
        }
        return Removal(removedUnits: removed, parametersBefore: before, parametersAfter: model.parameterCount)
    }

    /// The constant an elementwise layer outputs for a constant input k (evaluation mode).
    static func constantThrough(_ n: Node, _ k: Float, channel c: Int) throws -> Float {
        switch n.layer {
        case let bn as BatchNorm:
            let g = bn.weight?.value[flat: c] ?? 1, b = bn.bias?.value[flat: c] ?? 0
            return (k - bn.runningMean.value[flat: c]) / (bn.runningVar.value[flat: c] + bn.eps).squareRoot() * g + b
        case is ReLU: return max(k, 0)
        case let a as Activation:
            return try a.forward(Tensor(shape: [1], scalars: [k]), training: false).scalars[0]
        case let p as AvgPool2d:
            guard p.padding == 0 || k == 0 else {
                throw PruneError.unsupported("\(n.name): a removed channel's constant \(k) meets zero padding (borders would differ)")
            }
            return k
        default: return k   // max pooling, global average, dropout (evaluation), identity
        }
    }

    static func shrinkDepthwise(_ conv: Conv2d, removing dead: Set<Int>) throws -> Conv2d {
        let keep = (0..<conv.outChannels).filter { !dead.contains($0) }, per = conv.kernelSize * conv.kernelSize
        let v = conv.weight.value.scalars, m = conv.weight.mask?.kept
        let shape = [keep.count, 1, conv.kernelSize, conv.kernelSize]
        let out = try conv.rebuilt(weight: Tensor(shape: shape, scalars: keep.flatMap { v[($0 * per)..<(($0 + 1) * per)] }),
                                   bias: conv.bias.map { b in try Tensor(shape: [keep.count], scalars: keep.map { b.value[flat: $0] }) },
                                   groups: keep.count)
        if let m { try out.weight.setMask(Mask(shape: shape, kept: keep.flatMap { m[($0 * per)..<(($0 + 1) * per)] })) }
        return out
    }

    static func shrink(_ bn: BatchNorm, removing dead: Set<Int>) throws -> BatchNorm {
        let keep = (0..<bn.features).filter { !dead.contains($0) }
        let out = try BatchNorm(keep.count, eps: bn.eps, momentum: bn.momentum, affine: bn.weight != nil)
        func pick(_ t: Tensor) throws -> Tensor { try Tensor(shape: [keep.count], scalars: keep.map { t[flat: $0] }) }
        if let w = bn.weight, let b = bn.bias {
            try out.weight!.assign(pick(w.value))
            try out.bias!.assign(pick(b.value))
        }
        out.runningMean.value = try pick(bn.runningMean.value)
        out.runningVar.value = try pick(bn.runningVar.value)
        out.batchesTracked.value = bn.batchesTracked.value
        return out
    }

    /// A Linear or Conv2d without the `rows` (output channels) and `columns` (input channels), the
    /// columns' constant inputs folded into the bias.
    static func shrink(_ layer: any Layer, name: String, rows dead: Set<Int>, columns: [Int], constants: [Float]) throws -> any Layer {
        let w = (layer as? Linear)?.weight ?? (layer as! Conv2d).weight
        let bias = (layer as? Linear)?.bias ?? (layer as? Conv2d)?.bias
        let rows = w.shape[0], k2 = w.shape.count == 4 ? w.shape[2] * w.shape[3] : 1, cols = w.count / rows / k2
        let deadCols = Set(columns)
        let keepRows = (0..<rows).filter { !dead.contains($0) }, keepCols = (0..<cols).filter { !deadCols.contains($0) }
        let v = w.value.scalars, m = w.mask?.kept
        // folds: Σ over removed columns of (kept) weights × the constant they read
        var fold = [Double](repeating: 0, count: rows)
        for (c, k) in zip(columns, constants) where k != 0 {
            for o in 0..<rows {
                for q in 0..<k2 {
                    let i = (o * cols + c) * k2 + q
                    if m?[i] ?? true { fold[o] += Double(v[i]) * Double(k) }
                }
            }
        }
        if let conv = layer as? Conv2d, conv.padding > 0, let o = keepRows.first(where: { fold[$0] != 0 }) {
            throw PruneError.unsupported("\(name): removed input channels carry constants into output \(o) through zero padding; "
                                         + "a bias cannot hold them (mask the consumer's columns, as prune does)")
        }
        var nv: [Float] = [], nm: [Bool] = []
        nv.reserveCapacity(keepRows.count * keepCols.count * k2)
        for o in keepRows {
            for c in keepCols {
                let base = (o * cols + c) * k2
                nv.append(contentsOf: v[base..<(base + k2)])
                if let m { nm.append(contentsOf: m[base..<(base + k2)]) }
            }
        }
        let needBias = bias != nil || keepRows.contains { fold[$0] != 0 }
        let nb: Tensor? = needBias
            ? try Tensor(shape: [keepRows.count], scalars: keepRows.map { (bias?.value[flat: $0] ?? 0) + Float(fold[$0]) }) : nil
        var shape = w.shape
        shape[0] = keepRows.count
        shape[1] = keepCols.count
        let out: any Layer
        let weight: Parameter
        if let conv = layer as? Conv2d {
            let c = try conv.rebuilt(weight: Tensor(shape: shape, scalars: nv), bias: nb)
            out = c
            weight = c.weight
        } else {
            let l = try Linear(weight: Tensor(shape: shape, scalars: nv), bias: nb)
            l.execution = (layer as! Linear).execution
            out = l
            weight = l.weight
        }
        if m != nil { try weight.setMask(Mask(shape: shape, kept: nm)) }
        return out
    }

    /// The attention without the heads `dead`. A removed head's query, key and value rows are all
    /// zero, so it emitted its value bias (the attention weights sum to 1) times its head-mask entry;
    /// what of that still reaches the output through kept output columns is added to the output bias.
    static func removeHeads(_ a: MultiHeadAttention, dead: Set<Int>, name: String) throws -> MultiHeadAttention {
        guard dead.count < a.heads else { throw PruneError.unsupported("\(name): every head is pruned") }
        let keep = (0..<a.heads).filter { !dead.contains($0) }
        let out = try a.keepingHeads(keep)
        guard let vb = a.value.bias?.value.scalars else { return out }
        let d = a.headDim, width = a.output.inFeatures, w = a.output.weight.value.scalars
        var fold = [Double](repeating: 0, count: a.output.outFeatures)
        for h in dead where a.headMask[h] != 0 {
            for r in fold.indices {
                for j in (h * d)..<((h + 1) * d) { fold[r] += Double(w[r * width + j]) * Double(vb[j]) * Double(a.headMask[h]) }
            }
        }
        guard fold.contains(where: { $0 != 0 }) else { return out }
        let old = out.output.bias?.value.scalars ?? [Float](repeating: 0, count: fold.count)
        let o = try Linear(weight: out.output.weight.value, bias: Tensor(shape: [fold.count], scalars: zip(old, fold).map { $0 + Float($1) }))
        if let m = out.output.weight.mask { try o.weight.setMask(m) }
        o.execution = out.output.execution
        let result = try MultiHeadAttention(query: out.query, key: out.key, value: out.value, output: o, heads: out.heads, context: out.context)
        result.headMask = out.headMask
        return result
    }
}
