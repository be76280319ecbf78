/// A layer that combines several inputs into one output (residual add, concat). Its one-input
/// `forward`/`backward` treat a single input as a list of one.
public protocol MergeLayer: Layer {
    /// Output for `inputs` (at least one).
    func forward(_ inputs: [Tensor], training: Bool) throws -> Tensor
    /// ∂L/∂input for every input, from ∂L/∂output (nil where `needInputGradients` says no).
    func backward(_ outputGradient: Tensor, needInputGradients: [Bool]) throws -> [Tensor?]
}

extension MergeLayer {
    public func forward(_ input: Tensor, training: Bool) throws -> Tensor { try forward([input], training: training) }
    public func backward(_ outputGradient: Tensor, needInputGradient: Bool) throws -> Tensor? {
        try backward(outputGradient, needInputGradients: [needInputGradient])[0]
    }
}

/// Element-wise sum of inputs of one shape (the join of a residual block).
public final class Add: MergeLayer, ActivationFolding {
    private var shapes: [[Int]]?
    /// The ReLU that alone reads this sum, linked by the containing graph: at inference the sum and
    /// the ReLU run as one pass here, and the ReLU passes the result through (see `ReLU`).
    weak var foldedActivation: ReLU?
    /// The output last produced with the ReLU applied, until that ReLU takes it.
    private var activatedOutput: FloatStorage?
    /// An Add layer (no parameters).
    public init() {}
    public var summary: String { "Add" }

    public func forward(_ inputs: [Tensor], training: Bool) throws -> Tensor {
        guard let first = inputs.first else { throw LayerError.badInput(layer: summary, expected: "at least one input", got: []) }
        for x in inputs.dropFirst() where x.shape != first.shape {
            throw LayerError.badInput(layer: summary, expected: "\(first.shape) like its first input", got: x.shape)
        }
        activatedOutput = nil
        if !training, inputs.count == 2, let act = foldedActivation, act.foldSource === self {
            let y = Tensor(uninitialized: first.shape)
            try Kernels.addRelu(x: inputs[0].storage, y: inputs[1].storage, out: y.storage)
            activatedOutput = y.storage
            shapes = nil
            return y
        }
        var y = first
        if inputs.count > 1 {
            y = Tensor(uninitialized: first.shape)
            try Kernels.axpby(alpha: 1, x: inputs[0].storage, beta: 1, y: inputs[1].storage, out: y.storage)
            for x in inputs.dropFirst(2) { try Kernels.axpby(alpha: 1, x: x.storage, beta: 1, y: y.storage, out: y.storage) }
        }
        shapes = training ? inputs.map(\.shape) : nil
        return y
    }

    /// Whether `x` is the output this sum just produced with `act` applied (then `act` passes it
    /// through); each such output is handed over once.
    func takeActivatedOutput(_ x: Tensor, by act: ReLU) -> Bool {
        guard foldedActivation === act, let s = activatedOutput, s === x.storage else { return false }
        activatedOutput = nil
        return true
    }

    public func backward(_ dy: Tensor, needInputGradients: [Bool]) throws -> [Tensor?] {
        guard let shapes else { throw LayerError.backwardBeforeForward(summary) }
        try dy.expectShape(shapes[0])
        guard needInputGradients.count == shapes.count else {
            throw LayerError.badInput(layer: summary, expected: "\(shapes.count) gradient flags", got: [needInputGradients.count])
        }
        // every input receives ∂L/∂y itself (tensors are values: sharing the storage is safe)
        return needInputGradients.map { $0 ? dy : nil }
    }
}

/// Concatenation along the channel (feature) dimension 1: N×C₁×… , N×C₂×… → N×(C₁+C₂)×….
public final class Concat: MergeLayer {
    private var shapes: [[Int]]?
    /// A Concat layer (no parameters).
    public init() {}
    public var summary: String { "Concat(dim 1)" }

    public func forward(_ inputs: [Tensor], training: Bool) throws -> Tensor {
        guard let first = inputs.first, first.rank >= 2 else {
            throw LayerError.badInput(layer: summary, expected: "inputs of rank ≥ 2", got: inputs.first?.shape ?? [])
        }
        for x in inputs where x.rank != first.rank || x.shape[0] != first.shape[0] || Array(x.shape.dropFirst(2)) != Array(first.shape.dropFirst(2)) {
            throw LayerError.badInput(layer: summary, expected: "[\(first.shape[0]), C, \(first.shape.dropFirst(2).map(String.init).joined(separator: ", "))]",
                                      got: x.shape)
        }
        let n = first.shape[0], inner = first.shape.dropFirst(2).reduce(1, *)
        let total = inputs.reduce(0) { $0 + $1.shape[1] }
        var shape = first.shape
        shape[1] = total
        let y = Tensor(uninitialized: shape)
        var offset = 0
        for x in inputs {
            let block = x.shape[1] * inner
            for b in 0..<n { y.storage.copyElements(from: x.storage, at: b * block, to: (b * total + offset) * inner, count: block) }
            offset += x.shape[1]
        }
        shapes = training ? inputs.map(\.shape) : nil
        return y
    }

    public func backward(_ dy: Tensor, needInputGradients: [Bool]) throws -> [Tensor?] {
        guard let shapes else { throw LayerError.backwardBeforeForward(summary) }
        var outShape = shapes[0]
        outShape[1] = shapes.reduce(0) { $0 + $1[1] }
        try dy.expectShape(outShape)
        let n = outShape[0], total = outShape[1], inner = outShape.dropFirst(2).reduce(1, *)
        var offset = 0
        return zip(shapes, needInputGradients).map { shape, need in
            defer { offset += shape[1] }
            guard need else { return nil }
            let dx = Tensor(uninitialized: shape), block = shape[1] * inner
            for b in 0..<n { dx.storage.copyElements(from: dy.storage, at: (b * total + offset) * inner, to: b * block, count: block) }
            return dx
        }
    }
}

/// A network as a directed acyclic graph of named layers. Each node names the nodes it reads
/// (`Graph.inputName` is the graph's input); one-input layers read one node, merge layers (Add,
/// Concat) several; the last node (or `output`) is the result. Sequential, `Graph.residual` and
/// `Graph.concat` build common shapes; any DAG can be written by hand:
///
/// ```swift
/// let block = try Graph([
///     ("conv1", conv1, ["input"]), ("relu1", ReLU(), ["conv1"]), ("conv2", conv2, ["relu1"]),
///     ("add", Add(), ["conv2", "input"]), ("relu2", ReLU(), ["add"]),
/// ])
/// ```
///
/// Parameters are named `node.name` ("conv1.weight"), so nested graphs give PyTorch-like dotted
/// names. Backward sums the gradients of a node read by several others.
public final class Graph: Layer {
    /// The name ("input") by which nodes read the graph's input; no node may take it.
    public static let inputName = "input"

    /// One node: its name, its layer, and the names of the nodes it reads.
    public struct Node {
        /// Unique within the graph, without dots; the prefix of its layer's parameter names.
        public let name: String
        /// The layer run at this node (used by no other node).
        public let layer: any Layer
        /// The nodes it reads, in the order its layer takes them; `Graph.inputName` for the graph's input.
        public let inputs: [String]
    }

    /// The nodes in an order where every node comes after the nodes it reads.
    public private(set) var nodes: [Node]
    /// The node whose result the graph returns (the last node given, unless named).
    public let output: String
    /// For each node, the indices of nodes (in `nodes`) it reads; -1 is the graph's input.
    private var sources: [[Int]] = []

    /// A graph of `nodes` (name, layer, names of the nodes it reads), in any order. Throws, naming
    /// the node, on a duplicate or reserved name, an unknown input, a cycle, a layer object used
    /// twice, a one-input layer given several inputs, or a node whose result never reaches `output`.
    public init(_ nodes: [(String, any Layer, [String])], output: String? = nil) throws {
        guard !nodes.isEmpty else { throw GraphError("a graph needs at least one node") }
        var byName: [String: Int] = [:], owners: [ObjectIdentifier: String] = [:]
        for (i, (name, layer, inputs)) in nodes.enumerated() {
            guard !name.isEmpty, !name.contains("."), name != Graph.inputName else {
                throw GraphError("node '\(name)': names must be non-empty, without dots, and not '\(Graph.inputName)'")
            }
            guard byName[name] == nil else { throw GraphError("node '\(name)' is defined twice") }
            byName[name] = i
            if let other = owners.updateValue(name, forKey: ObjectIdentifier(layer)) {
                throw GraphError("node '\(name)' uses the same layer object as node '\(other)' (shared layers are not supported)")
            }
            guard !inputs.isEmpty else { throw GraphError("node '\(name)' reads no input") }
            if !(layer is MergeLayer) && inputs.count != 1 {
                throw GraphError("node '\(name)': \(layer.summary) takes one input, given \(inputs.count)")
            }
        }
        for (name, _, inputs) in nodes {
            for i in inputs where i != Graph.inputName && byName[i] == nil {
                throw GraphError("node '\(name)' reads '\(i)', which is no node")
            }
        }
        let out = output ?? nodes.last!.0
        guard byName[out] != nil else { throw GraphError("the output '\(out)' is no node") }
        // topological order (Kahn), stable: among ready nodes the earliest given goes first
        var pending = nodes.map { Set($0.2.filter { $0 != Graph.inputName }).count }
        var readers = [[Int]](repeating: [], count: nodes.count)
        for (j, (_, _, inputs)) in nodes.enumerated() {
            for i in Set(inputs) where i != Graph.inputName { readers[byName[i]!].append(j) }
        }
        var ready = (0..<nodes.count).filter { pending[$0] == 0 }, order: [Int] = []
        while let next = ready.min() {
            ready.removeAll { $0 == next }
            order.append(next)
            for r in readers[next] {
                pending[r] -= 1
                if pending[r] == 0 { ready.append(r) }
            }
        }
        guard order.count == nodes.count else {
            let stuck = (0..<nodes.count).first { !order.contains($0) }!
            throw GraphError("node '\(nodes[stuck].0)' is on a cycle")
        }
        // every node must feed the output
        var live = Set([byName[out]!]), stack = [byName[out]!]
        while let j = stack.popLast() {
            for i in nodes[j].2 where i != Graph.inputName {
                if live.insert(byName[i]!).inserted { stack.append(byName[i]!) }
            }
        }
        if let dead = order.first(where: { !live.contains($0) }) {
            throw GraphError("node '\(nodes[dead].0)' does not reach the output '\(out)'")
        }
        self.nodes = order.map { Node(name: nodes[$0].0, layer: nodes[$0].1, inputs: nodes[$0].2) }
        self.output = out
        rebuildSources()
    }

    private func rebuildSources() {
        var position: [String: Int] = [:]
        for (k, n) in nodes.enumerated() { position[n.name] = k }
        sources = nodes.map { $0.inputs.map { $0 == Graph.inputName ? -1 : position[$0]! } }
        linkFoldableNorms()
    }

    /// Links every convolution whose output only a BatchNorm reads (one reader, not the graph's output)
    /// to that BatchNorm, so inference folds the normalisation into the convolution (see `Conv2d`);
    /// the ReLU that alone reads such a BatchNorm to the convolution too, so its epilogue rectifies;
    /// and every two-input Add whose sum only a ReLU reads to that ReLU, so inference adds and
    /// rectifies in one pass. Links of layers no longer in such a pair are dropped first.
    private func linkFoldableNorms() {
        var readers = [Int](repeating: 0, count: nodes.count)
        for s in sources { for i in s where i >= 0 { readers[i] += 1 } }
        for node in nodes {
            (node.layer as? Add)?.foldedActivation = nil
            (node.layer as? Conv2d)?.foldedNorm = nil
            (node.layer as? Conv2d)?.foldedActivation = nil
        }
        for (k, node) in nodes.enumerated() {
            guard sources[k].count == 1, let s = sources[k].first, s >= 0, readers[s] == 1, nodes[s].name != output else { continue }
            if let bn = node.layer as? BatchNorm, let conv = nodes[s].layer as? Conv2d {
                conv.foldNorm(bn)
            } else if let relu = node.layer as? ReLU, let bn = nodes[s].layer as? BatchNorm, let conv = bn.foldSource,
                      conv.foldedNorm === bn {
                conv.foldActivation(relu)
            } else if let relu = node.layer as? ReLU, let add = nodes[s].layer as? Add, sources[s].count == 2 {
                add.foldedActivation = relu
                relu.foldSource = add
            }
        }
    }

    public var summary: String {
        "Graph(" + nodes.map { "\($0.name): \($0.layer.summary) ← \($0.inputs.joined(separator: ", "))" }.joined(separator: "; ") + ")"
    }

    public var children: [(name: String, layer: any Layer)] { nodes.map { ($0.name, $0.layer) } }

    public var namedBuffers: [(name: String, buffer: Buffer)] {
        nodes.flatMap { n in n.layer.namedBuffers.map { (name: n.name + "." + $0.name, buffer: $0.buffer) } }
    }

    public var namedParameters: [(name: String, parameter: Parameter)] {
        nodes.flatMap { n in n.layer.namedParameters.map { (name: n.name + "." + $0.name, parameter: $0.parameter) } }
    }

    /// The node called `name`.
    public func node(named name: String) -> Node? { nodes.first { $0.name == name } }

    /// Replaces the layer of node `name` (structural surgery); the wiring stays.
    public func replace(_ name: String, with layer: any Layer) throws {
        guard let k = nodes.firstIndex(where: { $0.name == name }) else { throw GraphError("no node '\(name)'") }
        nodes[k] = Node(name: name, layer: layer, inputs: nodes[k].inputs)
        linkFoldableNorms()
    }

    private var outputIndex: Int { nodes.lastIndex { $0.name == output }! }

    public func forward(_ x: Tensor, training: Bool) throws -> Tensor { try run(x, training: training, observe: nil) }

    /// The output shape of every node (by name) for the input `x`, in evaluation mode.
    public func outputShapes(_ x: Tensor) throws -> [String: [Int]] {
        var shapes: [String: [Int]] = [:]
        _ = try run(x, training: false) { k, y in shapes[self.nodes[k].name] = y.shape }
        return shapes
    }

    /// Runs the nodes in order; `observe` sees each node's index and output.
    private func run(_ x: Tensor, training: Bool, observe: ((Int, Tensor) -> Void)?) throws -> Tensor {
        var values = [Tensor?](repeating: nil, count: nodes.count)
        // how many readers still need each value: freed as soon as the last one has run
        var remaining = [Int](repeating: 0, count: nodes.count)
        for s in sources { for i in s where i >= 0 { remaining[i] += 1 } }
        let last = outputIndex
        for (k, node) in nodes.enumerated() where k <= last {
            let ins = sources[k].map { $0 < 0 ? x : values[$0]! }
            values[k] = try (node.layer as? MergeLayer)?.forward(ins, training: training)
                ?? node.layer.forward(ins[0], training: training)
            observe?(k, values[k]!)
            for i in sources[k] where i >= 0 {
                remaining[i] -= 1
                if remaining[i] == 0 && i != last { values[i] = nil }
            }
        }
        return values[last]!
    }

    public func backward(_ dy: Tensor, needInputGradient: Bool) throws -> Tensor? {
        var grads = [Tensor?](repeating: nil, count: nodes.count)
        var inputGrad: Tensor? = nil
        func accumulate(_ g: Tensor, into slot: inout Tensor?) throws {
            guard let old = slot else { slot = g; return }
            try g.expectShape(old.shape)
            let sum = Tensor(uninitialized: old.shape)
            try Kernels.axpby(alpha: 1, x: old.storage, beta: 1, y: g.storage, out: sum.storage)
            slot = sum
        }
        let last = outputIndex
        grads[last] = dy
        for k in stride(from: last, through: 0, by: -1) {
            guard let g = grads[k] else { continue }
            grads[k] = nil
            let need = sources[k].map { $0 >= 0 || needInputGradient }
            let node = nodes[k]
            let ins: [Tensor?]
            if let merge = node.layer as? MergeLayer {
                ins = try merge.backward(g, needInputGradients: need)
            } else {
                ins = [try node.layer.backward(g, needInputGradient: need[0])]
            }
            for (i, gi) in zip(sources[k], ins) {
                guard let gi else { continue }
                if i < 0 { try accumulate(gi, into: &inputGrad) } else { try accumulate(gi, into: &grads[i]) }
            }
        }
        return needInputGradient ? inputGrad : nil
    }

    /// body(x) + x, or body(x) + shortcut(x) (a projection), optionally followed by `activation`
    /// (ResNet's basic block when body is conv-bn-relu-conv-bn and activation ReLU). Nodes:
    /// "body", "shortcut" (when given), "add", "act" (when given).
    public static func residual(_ body: any Layer, shortcut: (any Layer)? = nil, activation: (any Layer)? = nil) throws -> Graph {
        var nodes: [(String, any Layer, [String])] = [("body", body, [inputName])]
        if let shortcut { nodes.append(("shortcut", shortcut, [inputName])) }
        nodes.append(("add", Add(), ["body", shortcut == nil ? inputName : "shortcut"]))
        if let activation { nodes.append(("act", activation, ["add"])) }
        return try Graph(nodes)
    }

    /// Branches that all read the input, concatenated along dimension 1 (node "concat").
    public static func concat(_ branches: [(String, any Layer)]) throws -> Graph {
        try Graph(branches.map { ($0.0, $0.1, [inputName]) } + [("concat", Concat(), branches.map(\.0))])
    }
}

/// A graph that cannot be built: one line naming the node and the rule.
public struct GraphError: Error, CustomStringConvertible, Equatable {
    public let description: String
    /// An error with the one-line message `description`.
    public init(_ description: String) { self.description = description }
}
