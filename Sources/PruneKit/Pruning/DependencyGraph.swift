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
/// - Concat places its inputs' channels at their offsets;
/// - ChannelScale (a squeeze-excitation gate) couples channel c of its input, its gate and its
///   output, like Add;
/// - LayerNorm and BERT's embeddings lock their channels: normalising over the features couples
///   every channel with all the others, so no unit through them is pruned (the residual stream of a
///   transformer);
/// - MultiHeadAttention reads its input channels with the query, key and value columns and makes
///   its output channels with the output projection's rows; its heads are units of their own
///   (a head's d query, key and value rows and d output columns), one group per attention layer.
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
        /// Channel c of the input, of the per-channel gate and of the output are one (x · gate).
        case scale
        /// A depthwise convolution: channel c in is channel c out, and its own weight row c (and
        /// bias entry) goes with the unit.
        case depthwise
        /// Channel c in is channel c out, and none of them is ever pruned (LayerNorm, embeddings).
        case locked
        /// Multi-head attention: cuts the coupling like a producer; its heads are units.
        case attention
    }

    /// The rule of a leaf layer, or nil when it has none (such a model is refused).
    public static func rule(of layer: any Layer) -> ChannelRule? {
        if let c = layer as? Conv2d, c.groups > 1 {
            return c.groups == c.inChannels && c.groups == c.outChannels ? .depthwise : nil
        }
        switch layer {
        case is Linear, is Conv2d: return .producer
        case is BatchNorm, is ReLU, is Activation, is MaxPool2d, is AvgPool2d, is GlobalAvgPool2d, is Dropout, is Identity,
             is TokenPooling, is Tap:
            return .elementwise
        case is LayerNorm, is BertEmbeddings: return .locked
        case is MultiHeadAttention: return .attention
        case is Flatten: return .flatten
        case is Add: return .add
        case is ChannelScale: return .scale
        case is Concat: return .concat
        default: return nil
        }
    }

    /// One traced leaf layer.
    public struct Node {
        /// Dotted path of the leaf in the model ("layer1.0.conv1"); empty when the network is this layer.
        public let name: String
        /// The leaf layer itself (the model's object, not a copy).
        public let layer: any Layer
        /// How the layer couples its input and output channels.
        public let rule: ChannelRule
        /// Indices into `values` of what the layer reads (several for Add, Concat and ChannelScale).
        public let inputs: [Int]
        /// Index into `values` of what the layer writes.
        public let output: Int
        /// Where the layer sits: its container and its place there (an index of a Sequential or a
        /// node name of a Graph); nil for a model whose network is this one layer.
        let place: (container: any Layer, key: String)?
    }

    /// A traced activation: its shape for the traced batch of one.
    public struct Value {
        /// The activation's shape in the trace; dimension 1 holds the channels.
        public let shape: [Int]
        /// Size of dimension 1 (1 for a value of rank below 2).
        public var channels: Int { shape.count >= 2 ? shape[1] : 1 }
        /// Elements per channel (H·W for images, 1 for features).
        public var spatial: Int { shape.count >= 2 ? shape.dropFirst(2).reduce(1, *) : 1 }
    }

    /// The traced model; pruning and removal through this graph change it in place.
    public let model: Model
    /// The traced leaf layers, in execution order.
    public private(set) var nodes: [Node] = []
    /// The traced activations, indexed by `Node.inputs` and `Node.output` (the model's input first), then
    /// one [1, heads] value per attention layer whose channels are its heads.
    public private(set) var values: [Value] = []
    /// The values of the model's input and output.
    public private(set) var inputValue = 0
    /// Index into `values` of the model's output.
    public private(set) var outputValue = 0
    /// First element of each value's channels in the union-find arrays.
    var offsets: [Int] = []
    private var currentPlace: (container: any Layer, key: String)?
    private var parent: [Int] = []

    /// Traces `model` on one example of its input shape (evaluation mode; nothing is changed).
    public init(_ model: Model) throws {
        self.model = model
        var seen = Set<ObjectIdentifier>()
        let x = Tensor(zeroed: [1] + model.inputShape)
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
        guard layer.children.isEmpty || Self.rule(of: layer) != nil else {
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

    func find(_ a: Int) -> Int {
        var a = a
        while parent[a] != a { parent[a] = parent[parent[a]]; a = parent[a] }
        return a
    }

    private func union(_ a: Int, _ b: Int) {
        let ra = find(a), rb = find(b)
        if ra != rb { parent[max(ra, rb)] = min(ra, rb) }
    }

    func element(_ value: Int, _ c: Int) -> Int { offsets[value] + c }

    /// One prunable channel across coupled layers: its elements (value, channel).
    public struct Unit {
        /// The (value, channel) pairs that are this unit, `value` indexing `values`; a head is one channel of
        /// its attention layer's head value.
        public let elements: [(value: Int, channel: Int)]
    }

    /// Coupled layers and the units they share.
    public struct Group {
        /// Channels (neurons, filters) or attention heads.
        public enum Kind: Sendable {
            /// `channels`: channels coupled across layers (neurons, filters); `heads`: the heads of one
            /// attention layer.
            case channels, heads
        }
        /// Whether the units are coupled channels or the heads of one attention layer.
        public let kind: Kind
        /// The units (in channel order of the first producer).
        public let units: [Unit]
        /// Names of the producers whose output channels the units are.
        public let producers: [String]
        /// Names of the layers that read the units as input channels.
        public let consumers: [String]
    }

    /// Every prunable group: channel groups, ordered by the values they span, then one heads group per
    /// attention layer in trace order.
    public private(set) var groups: [Group] = []
    /// Indexes from a value to the nodes around it: its producer, its depthwise convolution, the
    /// producers that read it.
    private(set) var producerAt: [Int: Int] = [:]
    private(set) var depthwiseAt: [Int: Int] = [:]
    private(set) var readersOf: [Int: [Int]] = [:]
    /// The BatchNorm nodes that write each value, in trace order (their scales are unit members).
    private(set) var batchNormsAt: [Int: [Int]] = [:]
    /// Values that are never pruned (LayerNorm, embeddings).
    private(set) var lockedValues = Set<Int>()
    /// The head value of each attention node, and back.
    private(set) var headValueOf: [Int: Int] = [:], headOwner: [Int: Int] = [:]

    private func buildUnits() {
        for (k, n) in nodes.enumerated() {
            switch n.rule {
            case .producer, .attention:
                producerAt[n.output] = k
                readersOf[n.inputs[0], default: []].append(k)
            case .depthwise: depthwiseAt[n.output] = k
            case .locked: lockedValues.formUnion([n.inputs[0], n.output])
            default: break
            }
            if n.layer is BatchNorm { batchNormsAt[n.output, default: []].append(k) }
            if let mha = n.layer as? MultiHeadAttention {
                let v = addValue([1, mha.heads])
                headValueOf[k] = v
                headOwner[v] = k
            }
        }
        for node in nodes {
            let out = node.output
            switch node.rule {
            case .producer, .attention: break
            case .locked:
                if values[out].channels == values[node.inputs[0]].channels {
                    for c in 0..<values[out].channels { union(element(node.inputs[0], c), element(out, c)) }
                }
            case .elementwise, .depthwise:
                for c in 0..<values[out].channels { union(element(node.inputs[0], c), element(out, c)) }
            case .flatten:
                let i = node.inputs[0], s = values[i].spatial
                for f in 0..<values[out].channels { union(element(out, f), element(i, f / s)) }
            case .add, .scale:
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
        let producerOf = Dictionary(nodes.filter { $0.rule == .producer || $0.rule == .attention }.map { ($0.output, $0.name) }) { a, _ in a }
        var consumersOf: [Int: [String]] = [:]
        for n in nodes where n.rule == .producer || n.rule == .attention { consumersOf[n.inputs[0], default: []].append(n.name) }
        // a unit is prunable when a producer makes it and it touches neither the input nor the output
        var bySignature: [[Int]: [(root: Int, unit: Unit)]] = [:]
        for (root, els) in members {
            let vs = Set(els.map(\.0))
            guard !vs.contains(inputValue), !vs.contains(outputValue), vs.isDisjoint(with: lockedValues),
                  vs.contains(where: { producerOf[$0] != nil }) else { continue }
            bySignature[vs.sorted(), default: []].append((root, Unit(elements: els.map { (value: $0.0, channel: $0.1) })))
        }
        groups = bySignature.sorted { $0.key.lexicographicallyPrecedes($1.key) }.map { sig, us in
            let units = us.sorted { $0.root < $1.root }.map(\.unit)
            return Group(kind: .channels, units: units, producers: sig.compactMap { producerOf[$0] }.sorted(),
                         consumers: sig.flatMap { consumersOf[$0] ?? [] }.sorted())
        }
        // the heads of each attention layer: a group of their own
        for (k, n) in nodes.enumerated() {
            guard let v = headValueOf[k] else { continue }
            groups.append(Group(kind: .heads, units: (0..<values[v].channels).map { Unit(elements: [(value: v, channel: $0)]) },
                                producers: ["query", "key", "value"].map { n.name + "." + $0 }, consumers: [n.name + ".output"]))
        }
    }

    // MARK: what a unit owns

    /// The weight whose rows are a producer's, depthwise convolution's or attention's output
    /// channels (an attention layer's output projection).
    func weight(of n: Node) -> Parameter {
        if let a = n.layer as? MultiHeadAttention { return a.output.weight }
        return (n.layer as? Linear)?.weight ?? (n.layer as! Conv2d).weight
    }

    /// The weights whose columns are a reader's input channels (query, key and value for attention).
    func inputWeights(of n: Node) -> [Parameter] {
        if let a = n.layer as? MultiHeadAttention { return [a.query.weight, a.key.weight, a.value.weight] }
        return [weight(of: n)]
    }

    /// `count` weight rows from `first` (output channels, or a head's rows), or `count` weight
    /// columns from `first` (input channels with all their kernel taps, or a head's columns).
    enum Slice {
        case rows(Parameter, Int, Int)
        case columns(Parameter, Int, Int)
    }

    /// The rows and columns a unit owns: its producers' and depthwise convolutions' rows and its
    /// consumers' columns (through the indexes built when tracing); for a head, its query, key and
    /// value rows and output-projection columns.
    func slices(of unit: Unit) -> [Slice] {
        var out: [Slice] = []
        for (v, c) in unit.elements {
            if let k = headOwner[v], let a = nodes[k].layer as? MultiHeadAttention {
                let d = a.headDim
                out += [.rows(a.query.weight, c * d, d), .rows(a.key.weight, c * d, d), .rows(a.value.weight, c * d, d),
                        .columns(a.output.weight, c * d, d)]
                continue
            }
            if let k = producerAt[v] ?? depthwiseAt[v] { out.append(.rows(weight(of: nodes[k]), c, 1)) }
            for k in readersOf[v] ?? [] { out += inputWeights(of: nodes[k]).map { .columns($0, c, 1) } }
        }
        return out
    }

    /// Flat indices of a slice in its weight (rows × columns × kernel taps).
    static func indices(_ s: Slice) -> (Parameter, [Int]) {
        switch s {
        case let .rows(w, first, count):
            let per = w.count / w.shape[0]
            return (w, Array((first * per)..<((first + count) * per)))
        case let .columns(w, first, count):
            let rows = w.shape[0], k2 = w.shape.count == 4 ? w.shape[2] * w.shape[3] : 1, cols = w.count / rows / k2
            var idx: [Int] = []
            idx.reserveCapacity(rows * k2 * count)
            for o in 0..<rows { idx.append(contentsOf: ((o * cols + first) * k2)..<((o * cols + first + count) * k2)) }
            return (w, idx)
        }
    }

    /// Per-row counts of kept nonzero weights of every producer (one C pass per weight).
    func keptRowCounts() throws -> [ObjectIdentifier: [Float]] {
        var out: [ObjectIdentifier: [Float]] = [:]
        for n in nodes where n.rule == .producer || n.rule == .attention {
            for w in n.rule == .attention ? inputWeights(of: n) + [weight(of: n)] : [weight(of: n)] {
                let rows = w.shape[0]
                out[ObjectIdentifier(w)] = try Kernels.unitNorms(a: 1, d: rows, b: w.count / rows, p: 0, x: w.value.storage,
                                                                 mask: w.maskStorage)
            }
        }
        return out
    }

    /// Whether a unit is still alive: some producer row in it has a kept nonzero weight.
    func isAlive(_ unit: Unit, rows: [ObjectIdentifier: [Float]]) -> Bool {
        unit.elements.contains { v, c in
            if let k = headOwner[v], let a = nodes[k].layer as? MultiHeadAttention {
                let d = a.headDim
                return [a.query, a.key, a.value].contains { l in rows[ObjectIdentifier(l.weight)]![(c * d)..<((c + 1) * d)].contains { $0 > 0 } }
            }
            return producerAt[v].map { rows[ObjectIdentifier(weight(of: nodes[$0]))]![c] > 0 } ?? false
        }
    }

    /// Whether a unit is still alive, from the weights as they are now.
    func isAlive(_ unit: Unit) throws -> Bool { isAlive(unit, rows: try keptRowCounts()) }

    // MARK: cost

    /// Multiply-accumulates of one example, by Torch-Pruning's convention (count_ops_and_params):
    /// convolutions (output elements × (input channels × kernel area + 1 with a bias)), Linear
    /// (out × (in + 1 with a bias)),
    /// BatchNorm 2 per element, activations and average pooling 1 per element they read. (Torch-
    /// Pruning counts modules only: torchvision's MobileNetV2 pools with a function, which it leaves
    /// out, 5,120 MACs of 23 M there.) Shapes are those traced when the graph was built: after
    /// `removePrunedUnits`, trace the smaller model again (`DependencyGraph(model).macs`).
    public var macs: Int {
        var total = 0
        func linear(_ l: Linear) -> Int { l.outFeatures * (l.inFeatures + (l.bias == nil ? 0 : 1)) }
        for n in nodes {
            // traced with a batch of one: token rows (B·T × features) count every row
            let outCount = values[n.output].shape.reduce(1, *), inCount = values[n.inputs[0]].shape.reduce(1, *)
            let rows = values[n.inputs[0]].shape.count == 2 ? values[n.inputs[0]].shape[0] : 1
            switch n.layer {
            case let c as Conv2d: total += outCount * (c.inChannels / c.groups * c.kernelSize * c.kernelSize + (c.bias == nil ? 0 : 1))
            case let l as Linear: total += rows * linear(l)
            case let a as MultiHeadAttention:
                // projections, then q·kᵀ and p·v (T × T × d per head, every row one sequence)
                total += rows * (linear(a.query) + linear(a.key) + linear(a.value) + linear(a.output)) + 2 * rows * rows * a.query.outFeatures
            case is LayerNorm: total += 2 * outCount
            case is BatchNorm: total += 2 * outCount
            case is ReLU, is Activation, is ChannelScale: total += outCount
            case is AvgPool2d, is GlobalAvgPool2d: total += inCount
            default: break
            }
        }
        return total
    }
}
