/// Dependency-aware structural pruning of any model built from layers (what Torch-Pruning calls
/// DepGraph).
///
/// Tracing runs one example through the model, leaf layer by leaf layer, and records which value
/// (activation) each leaf reads and writes. Each value's channel dimension (dimension 1) is a row
/// of channel elements; every leaf kind states how its input and output channels couple (its
/// `ChannelRule`):
///
/// - Linear and Conv2d cut the coupling: their output channels are weight rows, their input channels
///   weight columns (blocks of H·W columns behind a Flatten);
/// - BatchNorm, activations, pooling, dropout and identity keep channel c as channel c;
/// - Flatten maps the H·W features of channel c to channel c;
/// - Add couples channel c of every input with channel c of its output (residual joins);
/// - Concat places its inputs' channels at their offsets.
///
/// Elements joined by these rules form one *unit*: removing it removes a weight row of every
/// producer in it, the BatchNorm entries, and the weight columns of every consumer. Units are
/// gathered into *groups* of the same coupled layers (e.g. a residual stage's convolutions and
/// BatchNorms, its shortcut, and the convolutions that read it). A unit that touches the model's
/// input or output is never pruned; a leaf layer without a rule is refused, never guessed.
public final class DependencyGraph {
    /// How a leaf layer couples its input channels to its output channels.
    public enum ChannelRule: Equatable, Sendable {
        /// Weight rows are output channels, weight columns input channels (Linear, Conv2d).
        case producer
        /// Channel c in is channel c out (BatchNorm, activations, pooling, dropout, identity).
        case elementwise
        /// N×C×H×W → N×(C·H·W): channel c owns features [c·H·W, (c+1)·H·W).
        case flatten
        /// Channel c of every input and of the output are one.
        case add
        /// Inputs' channels placed one after another.
        case concat
        /// A depthwise convolution: channel c in is channel c out, and its own weight row c (and
        /// bias entry) goes with the unit.
        case depthwise
    }

    /// The rule of a leaf layer, or nil when it has none (such a model is refused).
    public static func rule(of layer: any Layer) -> ChannelRule? {
        if let c = layer as? Conv2d, c.groups > 1 {
            return c.groups == c.inChannels && c.groups == c.outChannels ? .depthwise : nil
        }
        switch layer {
        case is Linear, is Conv2d: return .producer
        case is BatchNorm, is ReLU, is Activation, is MaxPool2d, is AvgPool2d, is GlobalAvgPool2d, is Dropout, is Identity:
            return .elementwise
        case is Flatten: return .flatten
        case is Add: return .add
        case is Concat: return .concat
        default: return nil
        }
    }

    /// One traced leaf layer.
    public struct Node {
        public let name: String
        public let layer: any Layer
        public let rule: ChannelRule
        public let inputs: [Int]
        public let output: Int
        /// Where the layer sits: its container and its place there (an index of a Sequential or a
        /// node name of a Graph); nil for a model whose network is this one layer.
        let place: (container: any Layer, key: String)?
    }

    /// A traced activation: its shape for the traced batch of one.
    public struct Value {
        public let shape: [Int]
        public var channels: Int { shape.count >= 2 ? shape[1] : 1 }
        /// Elements per channel (H·W for images, 1 for features).
        public var spatial: Int { shape.count >= 2 ? shape.dropFirst(2).reduce(1, *) : 1 }
    }

    public let model: Model
    public private(set) var nodes: [Node] = []
    public private(set) var values: [Value] = []
    /// The values of the model's input and output.
    public private(set) var inputValue = 0
    public private(set) var outputValue = 0
    /// First element of each value's channels in the union-find arrays.
    private var offsets: [Int] = []
    private var currentPlace: (container: any Layer, key: String)?
    private var parent: [Int] = []

    /// Traces `model` on one example of its input shape (evaluation mode; nothing is changed).
    public init(_ model: Model) throws {
        self.model = model
        var seen = Set<ObjectIdentifier>()
        let x = Tensor(zeros: [1] + model.inputShape)
        inputValue = addValue(x.shape)
        let (_, out) = try trace(model.network, name: "", input: x, value: inputValue, seen: &seen)
        outputValue = out
        buildUnits()
    }

    private func addValue(_ shape: [Int]) -> Int {
        values.append(Value(shape: shape))
        offsets.append(parent.count)
        let c = values.last!.channels
        parent += (parent.count..<(parent.count + c))
        return values.count - 1
    }

    private func trace(_ layer: any Layer, name: String, input: Tensor, value: Int,
                       seen: inout Set<ObjectIdentifier>) throws -> (Tensor, Int) {
        func child(_ n: String) -> String { name.isEmpty ? n : name + "." + n }
        if let seq = layer as? Sequential {
            var (x, v) = (input, value)
            for (k, c) in seq.layers.enumerated() {
                currentPlace = (seq, String(k))
                (x, v) = try trace(c.layer, name: child(c.name), input: x, value: v, seen: &seen)
            }
            return (x, v)
        }
        if let graph = layer as? Graph {
            var produced: [String: (Tensor, Int)] = [Graph.inputName: (input, value)]
            for node in graph.nodes {
                currentPlace = (graph, node.name)
                let ins = node.inputs.map { produced[$0]! }
                if node.inputs.count == 1 && !(node.layer is MergeLayer) {
                    produced[node.name] = try trace(node.layer, name: child(node.name), input: ins[0].0, value: ins[0].1, seen: &seen)
                } else {
                    produced[node.name] = try leaf(node.layer, name: child(node.name), inputs: ins, seen: &seen)
                }
            }
            return produced[graph.output]!
        }
        guard layer.children.isEmpty else {
            throw PruneError.unsupported("\(name.isEmpty ? "model" : name) (\(layer.summary)): a container PruneKit cannot trace; "
                                         + "build the model from Sequential and Graph")
        }
        return try leaf(layer, name: name, inputs: [(input, value)], seen: &seen)
    }

    private func leaf(_ layer: any Layer, name: String, inputs: [(Tensor, Int)], seen: inout Set<ObjectIdentifier>) throws -> (Tensor, Int) {
        guard let rule = Self.rule(of: layer) else {
            throw PruneError.unsupported("\(name) (\(layer.summary)) has no channel rule: structural pruning cannot know how it "
                                         + "couples channels")
        }
        guard seen.insert(ObjectIdentifier(layer)).inserted else {
            throw PruneError.unsupported("\(name): the same layer object is used twice")
        }
        let y: Tensor
        if let merge = layer as? MergeLayer {
            y = try merge.forward(inputs.map(\.0), training: false)
        } else {
            y = try layer.forward(inputs[0].0, training: false)
        }
        let v = addValue(y.shape)
        nodes.append(Node(name: name, layer: layer, rule: rule, inputs: inputs.map(\.1), output: v, place: currentPlace))
        return (y, v)
    }

    // MARK: units and groups

    private func find(_ a: Int) -> Int {
        var a = a
        while parent[a] != a { parent[a] = parent[parent[a]]; a = parent[a] }
        return a
    }

    private func union(_ a: Int, _ b: Int) {
        let ra = find(a), rb = find(b)
        if ra != rb { parent[max(ra, rb)] = min(ra, rb) }
    }

    private func element(_ value: Int, _ c: Int) -> Int { offsets[value] + c }

    /// One prunable channel across coupled layers: its elements (value, channel).
    public struct Unit {
        public let elements: [(value: Int, channel: Int)]
    }

    /// Coupled layers and the units they share.
    public struct Group {
        /// The units (in channel order of the first producer).
        public let units: [Unit]
        /// Names of the producers whose output channels the units are.
        public let producers: [String]
        /// Names of the layers that read the units as input channels.
        public let consumers: [String]
    }

    public private(set) var groups: [Group] = []

    private func buildUnits() {
        for node in nodes {
            let out = node.output
            switch node.rule {
            case .producer: break
            case .elementwise, .depthwise:
                for c in 0..<values[out].channels { union(element(node.inputs[0], c), element(out, c)) }
            case .flatten:
                let i = node.inputs[0], s = values[i].spatial
                for f in 0..<values[out].channels { union(element(out, f), element(i, f / s)) }
            case .add:
                for i in node.inputs { for c in 0..<values[out].channels { union(element(i, c), element(out, c)) } }
            case .concat:
                var off = 0
                for i in node.inputs {
                    for c in 0..<values[i].channels { union(element(i, c), element(out, off + c)) }
                    off += values[i].channels
                }
            }
        }
        // elements by unit root
        var members: [Int: [(Int, Int)]] = [:]
        for v in values.indices { for c in 0..<values[v].channels { members[find(element(v, c)), default: []].append((v, c)) } }
        let producerOf = Dictionary(nodes.filter { $0.rule == .producer }.map { ($0.output, $0.name) }) { a, _ in a }
        var consumersOf: [Int: [String]] = [:]
        for n in nodes where n.rule == .producer { consumersOf[n.inputs[0], default: []].append(n.name) }
        // a unit is prunable when a producer makes it and it touches neither the input nor the output
        var bySignature: [[Int]: [(root: Int, unit: Unit)]] = [:]
        for (root, els) in members {
            let vs = Set(els.map(\.0))
            guard !vs.contains(inputValue), !vs.contains(outputValue), vs.contains(where: { producerOf[$0] != nil }) else { continue }
            bySignature[vs.sorted(), default: []].append((root, Unit(elements: els.map { (value: $0.0, channel: $0.1) })))
        }
        groups = bySignature.sorted { $0.key.lexicographicallyPrecedes($1.key) }.map { sig, us in
            let units = us.sorted { $0.root < $1.root }.map(\.unit)
            return Group(units: units, producers: sig.compactMap { producerOf[$0] }.sorted(),
                         consumers: sig.flatMap { consumersOf[$0] ?? [] }.sorted())
        }
    }

    // MARK: importance

    /// How a unit's importance is measured over the weights it owns in its group.
    public enum UnitImportance {
        /// Σ|w| (p = 1) or Σw² (p = 2) over the unit's producer rows and consumer columns, divided
        /// by the number of weights (comparable across groups).
        case magnitude(p: Int)
        /// Σ|γ| of the BatchNorms in the unit (network slimming).
        case batchNormScale
        /// Σ |w·∂L/∂w| over the unit's rows and columns, from accumulated Taylor statistics.
        case taylor(TaylorImportance)
        /// Uniform random scores.
        case random(seed: UInt64)
        /// The mean |score| of an `Importance` (Taylor, Wanda, custom) over the unit's weights.
        case scores(Importance)
    }

    /// Weight slices (parameter, flat indices) a unit owns, rows and columns.
    func slices(of unit: Unit) -> [(Parameter, [Int])] {
        var out: [(Parameter, [Int])] = []
        for (v, c) in unit.elements {
            for n in nodes where n.rule == .depthwise && n.output == v {
                let w = (n.layer as! Conv2d).weight, per = w.count / w.shape[0]
                out.append((w, Array((c * per)..<((c + 1) * per))))
            }
            for n in nodes where n.rule == .producer {
                guard let w = (n.layer as? Linear)?.weight ?? (n.layer as? Conv2d)?.weight else { continue }
                let rows = w.shape[0], per = w.count / rows
                if n.output == v { out.append((w, Array((c * per)..<((c + 1) * per)))) }
                if n.inputs[0] == v {
                    let cols = per / (w.shape.count == 4 ? w.shape[2] * w.shape[3] : 1)
                    if let conv = n.layer as? Conv2d {
                        let k2 = conv.kernelSize * conv.kernelSize
                        var idx: [Int] = []
                        idx.reserveCapacity(rows * k2)
                        for o in 0..<rows {
                            let start = (o * cols + c) * k2
                            idx.append(contentsOf: start..<(start + k2))
                        }
                        out.append((w, idx))
                    } else {
                        out.append((w, (0..<rows).map { o in o * cols + c }))
                    }
                }
            }
        }
        return out
    }

    func score(_ unit: Unit, _ importance: UnitImportance, index: Int) throws -> Float {
        switch importance {
        case .random(let seed):
            var g = SeededGenerator(seed: seed &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15)
            return g.nextUnitFloat()
        case .batchNormScale:
            var s: Float = 0
            for (v, c) in unit.elements {
                for n in nodes where n.output == v { if let bn = n.layer as? BatchNorm, let w = bn.weight { s += abs(w.value[flat: c]) } }
            }
            return s
        case .magnitude, .taylor, .scores:
            var sum = 0.0, count = 0
            for (p, idx) in slices(of: unit) {
                let values: Tensor
                switch importance {
                case let .taylor(t): values = try t.scores(for: p)
                case let .scores(imp): values = try imp.scores(p, 0) ?? p.value
                default: values = p.value
                }
                let m = p.mask
                for i in idx {
                    let w = Double(values[flat: i]) * ((m?[flat: i] ?? true) ? 1 : 0)
                    if case .magnitude(let q) = importance, q == 2 { sum += w * w } else { sum += abs(w) }
                    count += 1
                }
            }
            guard sum.isFinite else { throw PruneError.nonFiniteScores("unit scores") }
            return Float(sum / Double(max(count, 1)))
        }
    }

    /// Whether a unit is still alive: some producer row in it has a kept nonzero weight.
    func isAlive(_ unit: Unit) -> Bool {
        for (v, c) in unit.elements {
            for n in nodes where n.rule == .producer && n.output == v {
                let w = (n.layer as? Linear)?.weight ?? (n.layer as! Conv2d).weight
                let per = w.count / w.shape[0], m = w.effectiveMask
                let vals = w.value
                if (0..<per).contains(where: { m[flat: c * per + $0] && vals[flat: c * per + $0] != 0 }) { return true }
            }
        }
        return false
    }

    // MARK: pruning

    /// Masks `amount` of the alive units of every group (scope .layer: the same fraction in every
    /// group, counted with the pinned rounding; .global: one threshold over all units, no group
    /// losing more than `maxRatio` of its alive units). A unit's producer rows and consumer columns
    /// are masked together, so the masked model computes exactly what the smaller model of
    /// `removePrunedUnits` computes. Ties go to the lower unit index. Throws, changing nothing,
    /// when a group would lose every unit.
    public func prune(amount: Amount, importance: UnitImportance = .magnitude(p: 1), scope: PruningRequest.Scope = .layer,
                      maxRatio: Double = 1) throws {
        guard maxRatio > 0, maxRatio <= 1 else { throw PruneError.amountOutOfRange("maximum ratio \(maxRatio) is not in (0, 1]") }
        var scoreStorages: [FloatStorage] = [], alive: [ByteStorage] = []
        var index = 0
        for g in groups {
            let s = FloatStorage(count: g.units.count), a = ByteStorage(count: g.units.count)
            for (k, u) in g.units.enumerated() {
                s[k] = try score(u, importance, index: index)
                a[k] = isAlive(u) ? 1 : 0
                index += 1
            }
            scoreStorages.append(s)
            alive.append(a)
        }
        let before = alive.map { $0.copy() }
        if scope == .layer {
            for (gi, g) in groups.enumerated() {
                let n = try Kernels.countNonzero(alive[gi])
                let k = try amount.count(of: n)
                if k >= n && n > 0 {
                    throw PruneError.amountOutOfRange("\(amount) would remove every channel of the group of \(g.producers.joined(separator: ", "))")
                }
                _ = try Prune.select(scores: [scoreStorages[gi]], masks: [alive[gi]], useAbs: false, k: k, what: "unit scores")
            }
        } else {
            // one threshold over all groups; a group that would lose more than its cap (and at least
            // one unit is always kept) is fixed at the cap and leaves the pool, the rest is selected
            // again among the others, until no group is over
            let total = try alive.reduce(0) { $0 + (try Kernels.countNonzero($1)) }
            var k = try amount.count(of: total)
            let caps = try before.map { a -> Int in
                let n = try Kernels.countNonzero(a)
                return min(Int((maxRatio * Double(n)).rounded(.down)), max(n - 1, 0))
            }
            var pool = Set(groups.indices)
            while true {
                let ids = pool.sorted()
                let trial = ids.map { before[$0].copy() }
                let available = ids.reduce(0) { $0 + caps[$1] }
                guard k <= available else {
                    throw PruneError.amountOutOfRange("global \(amount) needs \(k) more channels than the groups can give "
                                                      + "(maximum ratio \(maxRatio), one channel kept per group)")
                }
                _ = try Prune.select(scores: ids.map { scoreStorages[$0] }, masks: trial, useAbs: false, k: k, what: "unit scores")
                let over = try zip(ids, trial).filter { gi, t in try Kernels.countNonzero(before[gi]) - Kernels.countNonzero(t) > caps[gi] }
                if over.isEmpty {
                    for (gi, t) in zip(ids, trial) { alive[gi] = t }
                    break
                }
                for (gi, _) in over {
                    let fixed = before[gi].copy()
                    _ = try Prune.select(scores: [scoreStorages[gi]], masks: [fixed], useAbs: false, k: caps[gi], what: "unit scores")
                    alive[gi] = fixed
                    k -= caps[gi]
                    pool.remove(gi)
                }
            }
        }
        // masks: rows and columns of every newly pruned unit (all checks are done: nothing throws below
        // except a shape error that cannot happen)
        var newMasks: [ObjectIdentifier: (Parameter, [Bool])] = [:]
        for (gi, g) in groups.enumerated() {
            for (k, u) in g.units.enumerated() where before[gi][k] != 0 && alive[gi][k] == 0 {
                for (p, idx) in slices(of: u) {
                    var m = newMasks[ObjectIdentifier(p)]?.1 ?? p.effectiveMask.kept
                    for i in idx { m[i] = false }
                    newMasks[ObjectIdentifier(p)] = (p, m)
                }
            }
        }
        for (_, (p, m)) in newMasks { try p.setMask(Mask(shape: p.shape, kept: m)) }
    }

    // MARK: removal

    /// What `removePrunedUnits` removed.
    public struct Removal {
        /// Units removed per group, keyed by the group's producers joined with ", ".
        public let removedUnits: [String: Int]
        public let parametersBefore: Int
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
        for g in groups {
            let dead = g.units.filter { !isAlive($0) }
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
                case .add:
                    k = n.inputs.reduce(0) { $0 + (constant[element($1, c)] ?? 0) }
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
        for n in nodes {
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
                replacements.append((n, try Self.shrink(n, rows: Set(outDead), columns: inDead, constants: consts)))
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
        let out = try Conv2d(weight: Tensor(shape: shape, scalars: keep.flatMap { v[($0 * per)..<(($0 + 1) * per)] }),
                             bias: conv.bias.map { b in try Tensor(shape: [keep.count], scalars: keep.map { b.value[flat: $0] }) },
                             stride: conv.stride, padding: conv.padding, groups: keep.count)
        if let m { try out.weight.setMask(Mask(shape: shape, kept: keep.flatMap { m[($0 * per)..<(($0 + 1) * per)] })) }
        out.execution = conv.execution
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
    static func shrink(_ n: Node, rows dead: Set<Int>, columns: [Int], constants: [Float]) throws -> any Layer {
        let w = (n.layer as? Linear)?.weight ?? (n.layer as! Conv2d).weight
        let bias = (n.layer as? Linear)?.bias ?? (n.layer as? Conv2d)?.bias
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
        if let conv = n.layer as? Conv2d, conv.padding > 0, let o = keepRows.first(where: { fold[$0] != 0 }) {
            throw PruneError.unsupported("\(n.name): removed input channels carry constants into output \(o) through zero padding; "
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
        if let conv = n.layer as? Conv2d {
            let c = try Conv2d(weight: Tensor(shape: shape, scalars: nv), bias: nb, stride: conv.stride, padding: conv.padding)
            c.execution = conv.execution
            out = c
            weight = c.weight
        } else {
            let l = try Linear(weight: Tensor(shape: shape, scalars: nv), bias: nb)
            l.execution = (n.layer as! Linear).execution
            out = l
            weight = l.weight
        }
        if m != nil { try weight.setMask(Mask(shape: shape, kept: nm)) }
        return out
    }

    // MARK: cost

    /// Multiply-accumulates of one example, by Torch-Pruning's convention (count_ops_and_params):
    /// convolutions (output elements × (input channels × kernel area + 1 with a bias)), Linear
    /// (out × (in + 1 with a bias)),
    /// BatchNorm 2 per element, activations and average pooling 1 per element they read. (Torch-
    /// Pruning counts modules only: torchvision's MobileNetV2 pools with a function, which it leaves
    /// out, 5,120 MACs of 23 M there.)
    public var macs: Int {
        var total = 0
        for n in nodes {
            let outCount = values[n.output].shape.dropFirst().reduce(1, *)
            let inCount = values[n.inputs[0]].shape.dropFirst().reduce(1, *)
            switch n.layer {
            case let c as Conv2d: total += outCount * (c.inChannels / c.groups * c.kernelSize * c.kernelSize + (c.bias == nil ? 0 : 1))
            case let l as Linear: total += l.outFeatures * (l.inFeatures + (l.bias == nil ? 0 : 1))
            case is BatchNorm: total += 2 * outCount
            case is ReLU, is Activation: total += outCount
            case is AvgPool2d, is GlobalAvgPool2d: total += inCount
            default: break
            }
        }
        return total
    }
}
