// Translation of an ONNX graph into a PruneKit `Graph`: one pass over the nodes in file order (ONNX
// requires topological order), tracking each value's shape without the batch dimension. Each
// operator maps onto existing layers or is refused; nothing is approximated.
//
// A value has a logical shape (ONNX's) and a physical one (what the PruneKit tensor holds). They
// differ after GlobalAveragePool: ONNX gives N×C×1×1, PruneKit's GlobalAvgPool2d gives N×C, so a
// following Flatten costs nothing and a 1×1 Conv on it becomes a Linear (squeeze-excitation).
import Foundation

struct ONNXImporter {
    let file: String
    let proto: Onnx_ModelProto
    var tensors: ONNXTensorReader

    /// What an ONNX value name stands for.
    enum Value {
        /// The output of PruneKit node `source` (or the graph input), shapes without the batch.
        case tensor(source: String, logical: [Int], physical: [Int])
        case constant(ONNXConstant)
    }

    var values: [String: Value] = [:]
    var initializers: [String: Onnx_TensorProto] = [:]
    var decoded: [String: ONNXConstant] = [:]
    var nodes: [(name: String, layer: any Layer, inputs: [String])] = []
    var usedNames: Set<String> = [Graph.inputName]
    /// How many nodes (and graph outputs) read each value.
    var readers: [String: Int] = [:]
    /// PruneKit node name → (parameter or buffer name → initializer name).
    var sources: [String: [String: String]] = [:]
    /// Linear nodes made from a MatMul without bias (an Add of a constant may become their bias).
    var biasless: Set<String> = []
    /// Value names that stand for an initializer under another name (Identity of an initializer).
    var aliases: [String: String] = [:]
    var batch: Int? = nil
    var opset = 0
    /// The index of the node being translated, and what the writer needs to put each PruneKit
    /// layer's tensors back into the file (see ONNXModel+Write.swift).
    var currentNode = 0
    var exports: [String: ONNXExport] = [:]
    var reshapes: [ONNXReshape] = []

    init(file: String, folder: String, proto: Onnx_ModelProto) {
        self.file = file
        self.proto = proto
        self.tensors = ONNXTensorReader(file: file, folder: folder)
    }

    func fail(_ why: String) -> ONNXError { ONNXError(file: file, reason: why) }

    mutating func run() throws -> ONNXModel {
        guard proto.hasGraph else { throw fail("no graph (not an ONNX model, or a truncated file)") }
        let g = proto.graph
        // opset of the default domain
        let defaults = proto.opsetImport.filter { $0.domain.isEmpty || $0.domain == "ai.onnx" }
        guard let version = defaults.map(\.version).max() else { throw fail("no opset for the default ONNX domain") }
        guard ONNXModel.opsets.contains(Int(clamping: version)) else {
            throw fail("opset \(version) is not supported (PruneKit reads opsets \(ONNXModel.opsets.lowerBound)-\(ONNXModel.opsets.upperBound))")
        }
        opset = Int(version)
        for t in g.initializer {
            guard !t.name.isEmpty else { throw fail("an initializer has no name") }
            guard initializers.updateValue(t, forKey: t.name) == nil else {
                throw ONNXError(file: file, subject: "initializer '\(t.name)'", reason: "defined twice")
            }
            _ = try tensors.shape(of: t)   // absurd dimensions are refused before anything is read
        }
        // the one graph input that is not an initializer
        let inputs = g.input.filter { initializers[$0.name] == nil }
        guard inputs.count == 1 else {
            throw fail("the graph has \(inputs.count) inputs (\(inputs.map(\.name).joined(separator: ", "))); PruneKit reads models with one input")
        }
        let input = inputs[0]
        let inputShape = try readInputShape(input)
        guard g.output.count == 1 else {
            throw fail("the graph has \(g.output.count) outputs; PruneKit reads models with one output")
        }
        let outputName = g.output[0].name
        values[input.name] = .tensor(source: Graph.inputName, logical: inputShape, physical: inputShape)
        for n in g.node { for i in n.input where !i.isEmpty { readers[i, default: 0] += 1 } }
        readers[outputName, default: 0] += 1

        for (k, n) in g.node.enumerated() {
            currentNode = k
            try translate(n, index: k)
        }

        guard let out = values[outputName] else { throw fail("the graph output '\(outputName)' is produced by no node") }
        guard case let .tensor(source, _, _) = out else { throw fail("the graph output '\(outputName)' is a constant") }
        guard source != Graph.inputName else { throw fail("the graph computes nothing (its output is its input)") }
        let network: Graph
        do { network = try Graph(live(from: source), output: source) } catch { throw fail("\(error)") }
        var names: [String: String] = [:]
        for (node, map) in sources where network.node(named: node) != nil {
            for (p, i) in map { names[node + "." + p] = i }
        }
        var metadata: [String: String] = [:]
        for p in proto.metadataProps { metadata[p.key] = p.value }
        let model = Model(architecture: "onnx", network: network, inputShape: inputShape)
        return ONNXModel(model: model, inputName: input.name, outputName: outputName, opset: opset, metadata: metadata,
                         initializerNames: names, proto: proto, folder: tensors.folder,
                         exports: exports.filter { network.node(named: $0.key) != nil },
                         reshapes: reshapes.filter { network.node(named: $0.source) != nil }, aliases: aliases)
    }

    /// The input's shape without the batch: element type float32, a first dimension that may be
    /// symbolic, every other dimension a fixed size.
    mutating func readInputShape(_ v: Onnx_ValueInfoProto) throws -> [Int] {
        let subject = "input '\(v.name)'"
        guard case let .tensorType(t)? = v.type.value else {
            throw ONNXError(file: file, subject: subject, reason: "not a tensor")
        }
        guard t.elemType == 1 else {
            throw ONNXError(file: file, subject: subject, reason: "element type \(t.elemType) is not float32")
        }
        guard t.hasShape, t.shape.dim.count >= 2 else {
            throw ONNXError(file: file, subject: subject, reason: "dynamic shape: no fixed rank ≥ 2 ([batch, ...]) is declared")
        }
        var shape: [Int] = []
        for (i, d) in t.shape.dim.enumerated() {
            switch d.value {
            case let .dimValue(x)?:
                guard x > 0, x <= ONNXModel.maxInputDimension else {
                    throw ONNXError(file: file, subject: subject, reason: "absurd dimension \(x) at axis \(i) (1...\(ONNXModel.maxInputDimension))")
                }
                if i == 0 { batch = Int(x) } else { shape.append(Int(x)) }
            case let .dimParam(p)?:
                guard i == 0 else {
                    throw ONNXError(file: file, subject: subject,
                                    reason: "dynamic shape: axis \(i) is '\(p)'; PruneKit needs fixed sizes except the batch (axis 0)")
                }
            case nil:
                guard i == 0 else {
                    throw ONNXError(file: file, subject: subject, reason: "dynamic shape: axis \(i) has no size")
                }
            }
        }
        guard (try? Tensor.elementCount(shape)).map({ $0 <= ONNXModel.maxTensorElements }) ?? false else {
            throw ONNXError(file: file, subject: subject, reason: "absurd shape \(shape)")
        }
        return shape
    }

    /// The nodes that feed `output` (ONNX files may carry dead nodes; a PruneKit graph may not).
    func live(from output: String) -> [(String, any Layer, [String])] {
        var keep: Set<String> = [output], stack = [output]
        let byName = Dictionary(nodes.map { ($0.name, $0.inputs) }, uniquingKeysWith: { a, _ in a })
        while let n = stack.popLast() {
            for i in byName[n] ?? [] where i != Graph.inputName && keep.insert(i).inserted { stack.append(i) }
        }
        return nodes.filter { keep.contains($0.name) }.map { ($0.name, $0.layer, $0.inputs) }
    }

    // MARK: - one node

    /// Context for translating one node: its name for messages and its checked attributes.
    struct NodeContext {
        let node: Onnx_NodeProto
        let subject: String
        let file: String
        var attributes: [String: Onnx_AttributeProto] = [:]

        func fail(_ why: String) -> ONNXError { ONNXError(file: file, subject: subject, reason: why) }

        func int(_ name: String, default d: Int) throws -> Int {
            guard let a = attributes[name] else { return d }
            guard a.type == .int || (!a.hasType && a.hasI) else { throw fail("attribute '\(name)' is not an integer") }
            guard let v = Int(exactly: a.i), abs(v) <= 1 << 30 else { throw fail("attribute '\(name)' = \(a.i) is absurd") }
            return v
        }

        func float(_ name: String, default d: Float) throws -> Float {
            guard let a = attributes[name] else { return d }
            guard a.type == .float || (!a.hasType && a.hasF) else { throw fail("attribute '\(name)' is not a float") }
            return a.f
        }

        func ints(_ name: String) throws -> [Int]? {
            guard let a = attributes[name] else { return nil }
            guard a.type == .ints || !a.hasType else { throw fail("attribute '\(name)' is not a list of integers") }
            guard a.ints.count <= 8, a.ints.allSatisfy({ abs($0) <= 1 << 30 }) else { throw fail("attribute '\(name)' = \(a.ints) is absurd") }
            return a.ints.map { Int($0) }
        }

        func string(_ name: String) throws -> String? {
            guard let a = attributes[name] else { return nil }
            guard a.type == .string || (!a.hasType && a.hasS) else { throw fail("attribute '\(name)' is not a string") }
            return String(decoding: a.s, as: UTF8.self)
        }
    }

    /// Supported attributes of each operator (any other is refused by name).
    static let attributeNames: [String: Set<String>] = [
        "Conv": ["auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"],
        "BatchNormalization": ["epsilon", "momentum", "training_mode"],
        "Relu": [], "Sigmoid": [], "Tanh": [], "HardSwish": [], "HardSigmoid": ["alpha", "beta"], "Clip": [],
        "Add": [], "Mul": [], "Concat": ["axis"],
        "MaxPool": ["auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order", "strides"],
        "AveragePool": ["auto_pad", "ceil_mode", "count_include_pad", "dilations", "kernel_shape", "pads", "strides"],
        "GlobalAveragePool": [], "Flatten": ["axis"], "Reshape": ["allowzero"],
        "Gemm": ["alpha", "beta", "transA", "transB"], "MatMul": [], "Identity": [], "Dropout": ["seed"],
        "Constant": ["value", "value_float", "value_floats", "value_int", "value_ints"],
    ]

    mutating func translate(_ n: Onnx_NodeProto, index: Int) throws {
        let label = n.name.isEmpty ? (n.output.first.map { "→\($0)" } ?? "#\(index)") : n.name
        var c = NodeContext(node: n, subject: "node '\(label)' (\(n.opType))", file: file)
        guard n.domain.isEmpty || n.domain == "ai.onnx" else { throw c.fail("operator domain '\(n.domain)' is not supported") }
        guard let allowed = ONNXImporter.attributeNames[n.opType] else {
            throw c.fail("operator \(n.opType) is not supported (PruneKit reads: \(ONNXImporter.attributeNames.keys.sorted().joined(separator: ", ")))")
        }
        for a in n.attribute {
            guard allowed.contains(a.name) else { throw c.fail("attribute '\(a.name)' is not supported") }
            guard a.refAttrName.isEmpty else { throw c.fail("attribute '\(a.name)' refers to a function attribute") }
            c.attributes[a.name] = a
        }
        guard let out = n.output.first, !out.isEmpty else { throw c.fail("no output") }
        for extra in n.output.dropFirst() where !extra.isEmpty && readers[extra, default: 0] > 0 {
            throw c.fail("its output '\(extra)' is used; PruneKit computes only the first output of \(n.opType)")
        }
        guard values[out] == nil else { throw c.fail("output '\(out)' is produced twice") }
        for i in n.input where !i.isEmpty && values[i] == nil && initializers[i] == nil {
            throw c.fail("reads '\(i)', which no earlier node, input or initializer produces")
        }
        do {
            values[out] = try value(of: n, c)
        } catch let e as ONNXError {
            throw e
        } catch {
            // a layer refusing its arguments (LayerError, TensorError): still one line naming the node
            throw c.fail("\(error)")
        }
    }

    /// The input at `k` (nil when absent or empty).
    mutating func operand(_ n: Onnx_NodeProto, _ k: Int) throws -> Value? {
        guard k < n.input.count, !n.input[k].isEmpty else { return nil }
        let name = n.input[k]
        if let v = values[name] { return v }
        if let d = decoded[name] { return .constant(d) }
        let t = try tensors.read(initializers[name]!)
        decoded[name] = t
        return .constant(t)
    }

    mutating func tensorInput(_ n: Onnx_NodeProto, _ k: Int, _ c: NodeContext) throws -> (source: String, logical: [Int], physical: [Int]) {
        guard let v = try operand(n, k) else { throw c.fail("input \(k) is missing") }
        guard case let .tensor(s, l, p) = v else { throw c.fail("input \(k) ('\(n.input[k])') is a constant; PruneKit needs a computed tensor here") }
        return (s, l, p)
    }

    mutating func constantInput(_ n: Onnx_NodeProto, _ k: Int, _ c: NodeContext, _ what: String) throws -> ONNXConstant? {
        guard let v = try operand(n, k) else { return nil }
        guard case let .constant(t) = v else { throw c.fail("\(what) ('\(n.input[k])') must be an initializer or constant, not a computed tensor") }
        return t
    }

    mutating func floatConstant(_ n: Onnx_NodeProto, _ k: Int, _ c: NodeContext, _ what: String) throws -> Tensor? {
        guard let t = try constantInput(n, k, c, what) else { return nil }
        guard case let .float(x) = t else { throw c.fail("\(what) ('\(n.input[k])') is not float") }
        guard x.isFinite else { throw c.fail("\(what) ('\(n.input[k])') holds NaN or infinity") }
        return x
    }

    /// Adds a PruneKit node; its name follows the weight initializer ("layer1.0.conv1.weight" →
    /// "layer1_0_conv1") or the ONNX node, made unique.
    mutating func add(_ layer: any Layer, _ inputs: [String], _ n: Onnx_NodeProto, params: [String: String] = [:]) -> String {
        var base = n.name
        if let w = params["weight"], w.hasSuffix(".weight") { base = String(w.dropLast(7)) }
        if base.isEmpty { base = n.opType.lowercased() }
        var clean = String(base.map { $0.isLetter || $0.isNumber || $0 == "_" ? $0 : "_" })
        while clean.hasPrefix("_") { clean.removeFirst() }
        if clean.isEmpty || clean == Graph.inputName { clean = n.opType.lowercased() }
        var name = clean, k = 2
        while usedNames.contains(name) { name = "\(clean)_\(k)"; k += 1 }
        usedNames.insert(name)
        nodes.append((name, layer, inputs))
        if !params.isEmpty { sources[name] = params }
        return name
    }

    /// The initializer a constant value name was read from, if any.
    func origin(_ name: String) -> String? { initializers[name] != nil ? name : aliases[name] }

    /// Parameter name → initializer name, for the inputs that are initializers (or aliases of one).
    func origins(_ n: Onnx_NodeProto, _ map: [String: Int]) -> [String: String] {
        var out: [String: String] = [:]
        for (p, k) in map where k < n.input.count { if let o = origin(n.input[k]) { out[p] = o } }
        return out
    }

    func allEqual(_ v: [Int]) -> Bool { v.allSatisfy { $0 == v.first } }
}
