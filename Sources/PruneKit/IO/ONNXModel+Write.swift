// Writing an ONNX model back after PruneKit changed its layers (pruned weights, removed channels).
//
// The file is rewritten from the one that was read, not rebuilt: every node, name, attribute, the
// opset, the inputs and outputs, the metadata and any field PruneKit does not know stay as they
// were. What changes:
// - each layer's tensors (weights with zeros in place of pruned entries, biases, BatchNorm
//   statistics) replace the initializers they were read from, with their new shapes; a tensor the
//   file did not have (a bias made by folding a removed channel's constant) is a new initializer,
//   and a MatMul that gains a bias gains an Add node after it;
// - an initializer shared by several layers that now disagree is split (each reader gets its own);
// - Gemm's alpha and beta become 1 (PruneKit's Linear holds them folded in), a depthwise Conv's
//   group follows its channel count, a Reshape target that names the feature count follows it;
// - nodes that no longer reach the output and initializers no node reads are dropped, external
//   data is written inline, and the intermediate value_info (shapes that may have changed) is
//   dropped: ONNX tools infer it again.
import Foundation
internal import SwiftProtobuf

/// Where a PruneKit layer's tensors live in the ONNX graph it was read from (node indices are
/// positions in the file's node list).
enum ONNXExport {
    /// Conv2d from Conv: weight input 1, bias input 2, attribute group.
    case conv(node: Int)
    /// Linear from a 1×1 Conv of a pooled value: weight [O, C] is the Conv's [O, C, 1, 1].
    case convAsLinear(node: Int)
    /// BatchNorm: scale, B, mean, var at inputs 1…4.
    case batchNorm(node: Int)
    /// Linear from Gemm: weight at input 1 (transposed unless transB), bias at input 2.
    case gemm(node: Int, transB: Bool)
    /// Linear from MatMul: weight transposed at input 1; bias at input `biasInput` of the Add node
    /// `add` that was folded into it, if any.
    case matmul(node: Int, add: Int?, biasInput: Int)
}

/// A Reshape whose target names the feature count of the flattened value `source` (a PruneKit node).
struct ONNXReshape {
    let node: Int
    let source: String
    /// The target's first entry (the batch: −1, 0, or a fixed size).
    let leading: Int64
}

extension ONNXModel {
    /// Writes the model, as its layers are now, to `path` as ONNX (atomically: a temporary file
    /// renamed into place; nothing is written on error). `metadata` entries are added to (or
    /// replace) the file's metadata properties. Throws `ONNXError`, one line naming the output
    /// file and the node or tensor at fault, or `IOError` when the file cannot be written.
    public func write(to path: String, metadata: [String: String] = [:]) throws {
        let data = try serialized(metadata: metadata, name: path)
        try AtomicFile.write(data, to: path)
    }

    /// The model, as its layers are now, as ONNX bytes (see `write(to:metadata:)`).
    public func serialized(metadata: [String: String] = [:], name: String = "model") throws -> Data {
        var writer = ONNXWriter(model: self, file: name)
        try writer.run()
        var out = proto
        out.graph = writer.graph
        var props = out.metadataProps.filter { metadata[$0.key] == nil }
        for (k, v) in metadata.sorted(by: { $0.key < $1.key }) {
            var e = Onnx_StringStringEntryProto()
            e.key = k
            e.value = v
            props.append(e)
        }
        out.metadataProps = props
        let data: Data
        do { data = try out.serializedBytes() } catch { throw ONNXError(file: name, reason: "cannot encode the model (\(error))") }
        guard data.count <= ONNXModel.maxFileBytes else {
            throw ONNXError(file: name, reason: "\(data.count) bytes exceed the \(ONNXModel.maxFileBytes)-byte protobuf limit")
        }
        return data
    }
}

/// One pass of writing: the graph being rewritten and the initializers claimed so far.
struct ONNXWriter {
    let model: ONNXModel
    let file: String
    var graph: Onnx_GraphProto
    /// The file's initializers by name, and their order.
    var original: [String: Onnx_TensorProto] = [:]
    /// Initializers written in this pass (a name is claimed by the first layer that writes it).
    var written: [String: Onnx_TensorProto] = [:]
    /// New initializers, in the order they were made.
    var added: [String] = []
    /// Every name in use (values, initializers, nodes), for making new ones.
    var taken: Set<String> = []
    /// Nodes to insert after a node (a MatMul's new bias).
    var insertions: [Int: [Onnx_NodeProto]] = [:]

    init(model: ONNXModel, file: String) {
        self.model = model
        self.file = file
        graph = model.proto.graph
        for t in graph.initializer { original[t.name] = t; taken.insert(t.name) }
        for n in graph.node {
            taken.formUnion(n.input)
            taken.formUnion(n.output)
            taken.insert(n.name)
        }
        for v in graph.input + graph.output { taken.insert(v.name) }
    }

    func fail(_ subject: String, _ why: String) -> ONNXError { ONNXError(file: file, subject: subject, reason: why) }

    func subject(_ node: Int) -> String {
        let n = graph.node[node]
        return "node '\(n.name.isEmpty ? n.output.first.map { "→\($0)" } ?? "#\(node)" : n.name)' (\(n.opType))"
    }

    mutating func fresh(_ base: String) -> String {
        var name = base, k = 2
        while taken.contains(name) { name = "\(base)_\(k)"; k += 1 }
        taken.insert(name)
        return name
    }

    mutating func run() throws {
        guard let network = model.model.network as? Graph else { throw fail("the model", "is not a PruneKit graph") }
        for node in network.nodes {
            guard let export = model.exports[node.name] else { continue }
            try write(node.layer, name: node.name, as: export)
        }
        try refreshReshapes(network)
        applyInsertions()
        try dropDeadNodesAndInitializers()
        graph.valueInfo = []
    }

    // MARK: layers

    /// W ⊙ M as float32 (pruned entries exactly 0).
    static func effective(_ p: Parameter) throws -> Tensor {
        guard let m = p.mask else { return p.value }
        let kept = m.kept
        var s = p.value.scalars
        for i in s.indices where !kept[i] { s[i] = 0 }
        return try Tensor(shape: p.shape, scalars: s)
    }

    static func floatTensor(_ t: Tensor, dims: [Int]) -> Onnx_TensorProto {
        var out = Onnx_TensorProto()
        out.dataType = 1
        out.dims = dims.map(Int64.init)
        out.rawData = Bytes.littleEndianData(t.storage)
        return out
    }

    mutating func write(_ layer: any Layer, name: String, as export: ONNXExport) throws {
        switch export {
        case let .conv(node):
            guard let conv = layer as? Conv2d else { throw fail(subject(node), "PruneKit node '\(name)' is no longer a convolution") }
            try set(node, 1, Self.floatTensor(try Self.effective(conv.weight), dims: conv.weight.shape), "\(name).weight")
            if let b = conv.bias { try set(node, 2, Self.floatTensor(b.value, dims: [conv.outChannels]), "\(name).bias") }
            setAttribute(node, "group", int: conv.groups, unlessDefault: 1)
        case let .convAsLinear(node):
            guard let lin = layer as? Linear else { throw fail(subject(node), "PruneKit node '\(name)' is no longer a Linear layer") }
            try set(node, 1, Self.floatTensor(try Self.effective(lin.weight), dims: [lin.outFeatures, lin.inFeatures, 1, 1]), "\(name).weight")
            if let b = lin.bias { try set(node, 2, Self.floatTensor(b.value, dims: [lin.outFeatures]), "\(name).bias") }
        case let .batchNorm(node):
            guard let bn = layer as? BatchNorm, let w = bn.weight, let b = bn.bias else {
                throw fail(subject(node), "PruneKit node '\(name)' is no longer an affine BatchNorm")
            }
            let c = bn.features
            try set(node, 1, Self.floatTensor(w.value, dims: [c]), "\(name).weight")
            try set(node, 2, Self.floatTensor(b.value, dims: [c]), "\(name).bias")
            try set(node, 3, Self.floatTensor(bn.runningMean.value, dims: [c]), "\(name).running_mean")
            try set(node, 4, Self.floatTensor(bn.runningVar.value, dims: [c]), "\(name).running_var")
        case let .gemm(node, transB):
            guard let lin = layer as? Linear else { throw fail(subject(node), "PruneKit node '\(name)' is no longer a Linear layer") }
            let w = try Self.effective(lin.weight)
            if transB {
                try set(node, 1, Self.floatTensor(w, dims: [lin.outFeatures, lin.inFeatures]), "\(name).weight")
            } else {
                try set(node, 1, Self.floatTensor(try Self.transposed(w), dims: [lin.inFeatures, lin.outFeatures]), "\(name).weight")
            }
            // PruneKit's Linear holds alpha and beta folded into its weight and bias
            setAttribute(node, "alpha", float: 1)
            setAttribute(node, "beta", float: 1)
            if let b = lin.bias { try set(node, 2, Self.floatTensor(b.value, dims: [lin.outFeatures]), "\(name).bias") }
        case let .matmul(node, add, biasInput):
            guard let lin = layer as? Linear else { throw fail(subject(node), "PruneKit node '\(name)' is no longer a Linear layer") }
            try set(node, 1, Self.floatTensor(try Self.transposed(try Self.effective(lin.weight)), dims: [lin.inFeatures, lin.outFeatures]),
                    "\(name).weight")
            guard let b = lin.bias else { break }
            if let add {
                // keep the bias's rank ([o], [1, o], ...)
                let current = graph.node[add].input[biasInput]
                let old = (original[current] ?? model.aliases[current].flatMap { original[$0] })?.dims.map { Int($0) } ?? [lin.outFeatures]
                let dims = old.isEmpty ? [lin.outFeatures] : Array(old.dropLast()) + [lin.outFeatures]
                try set(add, biasInput, Self.floatTensor(b.value, dims: dims), "\(name).bias")
            } else {
                // a bias the file did not have (folded from removed units): an Add after the MatMul
                var mm = graph.node[node]
                guard let out = mm.output.first else { throw fail(subject(node), "has no output") }
                let between = fresh(out + "_without_bias"), biasName = fresh("\(name).bias")
                mm.output[0] = between
                graph.node[node] = mm
                var t = Self.floatTensor(b.value, dims: [lin.outFeatures])
                t.name = biasName
                written[biasName] = t
                added.append(biasName)
                var a = Onnx_NodeProto()
                a.name = fresh((mm.name.isEmpty ? name : mm.name) + "_bias")
                a.opType = "Add"
                a.input = [between, biasName]
                a.output = [out]
                insertions[node, default: []].append(a)
            }
        }
    }

    static func transposed(_ t: Tensor) throws -> Tensor {
        let (r, k) = (t.shape[0], t.shape[1])
        let s = t.scalars
        var out = [Float](repeating: 0, count: s.count)
        // r×k → k×r
        for i in 0..<r { for j in 0..<k { out[j * r + i] = s[i * k + j] } }
        return try Tensor(shape: [k, r], scalars: out)
    }

    /// Puts tensor `t` at input `slot` of `node`: into the initializer that input names (directly or
    /// through an Identity) when no other layer has written it yet or wrote the same tensor; else
    /// into a new initializer that the input is pointed at.
    mutating func set(_ node: Int, _ slot: Int, _ t: Onnx_TensorProto, _ preferred: String) throws {
        var n = graph.node[node]
        let current = slot < n.input.count ? n.input[slot] : ""
        let origin = current.isEmpty ? nil : (original[current] != nil ? current : model.aliases[current])
        var t = t
        if let origin {
            if let prev = written[origin] {
                if prev.dims == t.dims && prev.dataType == t.dataType && prev.rawData == t.rawData && prev.int64Data == t.int64Data { return }
            } else {
                t.name = origin
                written[origin] = t
                return
            }
        }
        let name = fresh(preferred)
        t.name = name
        written[name] = t
        added.append(name)
        while n.input.count <= slot { n.input.append("") }
        n.input[slot] = name
        graph.node[node] = n
    }

    mutating func setAttribute(_ node: Int, _ name: String, int v: Int, unlessDefault d: Int) {
        var n = graph.node[node]
        if let k = n.attribute.firstIndex(where: { $0.name == name }) {
            n.attribute[k].i = Int64(v)
            n.attribute[k].type = .int
        } else if v != d {
            var a = Onnx_AttributeProto()
            a.name = name
            a.type = .int
            a.i = Int64(v)
            n.attribute.append(a)
        } else { return }
        graph.node[node] = n
    }

    mutating func setAttribute(_ node: Int, _ name: String, float v: Float) {
        var n = graph.node[node]
        guard let k = n.attribute.firstIndex(where: { $0.name == name }), n.attribute[k].f != v else { return }
        n.attribute[k].f = v
        n.attribute[k].type = .float
        graph.node[node] = n
    }

    // MARK: shape constants

    /// A Reshape target [leading, features] follows the flattened value's new feature count.
    mutating func refreshReshapes(_ network: Graph) throws {
        guard !model.reshapes.isEmpty else { return }
        let shapes: [String: [Int]]
        do {
            shapes = try network.outputShapes(try Tensor(shape: [1] + model.model.inputShape, repeating: 0))
        } catch {
            throw fail("the model", "cannot run it to find the Reshape targets' feature counts (\(error))")
        }
        for r in model.reshapes {
            guard let s = shapes[r.source] else { continue }
            let features = Int64(s.dropFirst().reduce(1, *))
            var t = Onnx_TensorProto()
            t.dataType = 7
            t.dims = [2]
            t.int64Data = [r.leading, features]
            guard graph.node[r.node].input.count > 1 else { throw fail(subject(r.node), "has no target shape input") }
            try setShape(r.node, t)
        }
    }

    /// Sets a Reshape's target: the initializer it reads when only Reshapes read it (and agree),
    /// else a new initializer.
    mutating func setShape(_ node: Int, _ t: Onnx_TensorProto) throws {
        let current = graph.node[node].input[1]
        let origin = original[current] != nil ? current : model.aliases[current]
        if let origin, let old = original[origin], old.dataType == 7, old.dims == [2], Self.int64s(old) == t.int64Data {
            return // unchanged
        }
        try set(node, 1, t, (graph.node[node].name.isEmpty ? "reshape" : graph.node[node].name) + ".shape")
    }

    /// The values of an inline int64 tensor (typed or raw little-endian).
    static func int64s(_ t: Onnx_TensorProto) -> [Int64] {
        guard t.hasRawData else { return t.int64Data }
        let bytes = [UInt8](t.rawData)
        guard bytes.count % 8 == 0 else { return [] }
        var out: [Int64] = []
        for i in stride(from: 0, to: bytes.count, by: 8) {
            var v: UInt64 = 0
            for b in 0..<8 { v |= UInt64(bytes[i + b]) << UInt64(8 * b) }
            out.append(Int64(bitPattern: v))
        }
        return out
    }

    // MARK: the graph's shape

    mutating func applyInsertions() {
        guard !insertions.isEmpty else { return }
        var nodes: [Onnx_NodeProto] = []
        for (k, n) in graph.node.enumerated() {
            nodes.append(n)
            nodes += insertions[k] ?? []
        }
        graph.node = nodes
    }

    /// Keeps the nodes the graph outputs need and the initializers those nodes read; external data
    /// of the kept initializers is read and stored inline.
    mutating func dropDeadNodesAndInitializers() throws {
        var needed = Set(graph.output.map(\.name))
        var keep = [Bool](repeating: false, count: graph.node.count)
        for k in graph.node.indices.reversed() where graph.node[k].output.contains(where: { needed.contains($0) }) {
            keep[k] = true
            for i in graph.node[k].input where !i.isEmpty { needed.insert(i) }
        }
        graph.node = graph.node.indices.filter { keep[$0] }.map { graph.node[$0] }
        var reader = ONNXTensorReader(file: file, folder: model.folder)
        var initializers: [Onnx_TensorProto] = []
        for t in model.proto.graph.initializer where needed.contains(t.name) {
            if let w = written[t.name] { initializers.append(w); continue }
            var t = t
            if t.dataLocation == .external {
                let (_, count) = try reader.shape(of: t)
                let size: Int
                switch t.dataType {
                case 1, 6: size = 4
                case 7, 11: size = 8
                default: throw fail("initializer '\(t.name)'", "element type \(t.dataType) cannot be written inline")
                }
                t.rawData = try reader.external(t, bytes: count * size)
                t.externalData = []
                t.clearDataLocation()
            }
            initializers.append(t)
        }
        for name in added where needed.contains(name) { initializers.append(written[name]!) }
        graph.initializer = initializers
        // inputs that name initializers (files of IR version 3 list them): their new shapes, and
        // entries for new initializers in such files
        let byName = Dictionary(initializers.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var inputs: [Onnx_ValueInfoProto] = []
        var listsInitializers = false
        for var v in graph.input {
            if original[v.name] != nil {
                listsInitializers = true
                guard let t = byName[v.name] else { continue }
                v.type = Self.type(of: t)
            }
            inputs.append(v)
        }
        if listsInitializers || model.proto.irVersion < 4 {
            for name in added where byName[name] != nil {
                var v = Onnx_ValueInfoProto()
                v.name = name
                v.type = Self.type(of: byName[name]!)
                inputs.append(v)
            }
        }
        graph.input = inputs
    }

    static func type(of t: Onnx_TensorProto) -> Onnx_TypeProto {
        var tt = Onnx_TypeProto.Tensor()
        tt.elemType = t.dataType
        tt.shape.dim = t.dims.map { d in
            var x = Onnx_TensorShapeProto.Dimension()
            x.dimValue = d
            return x
        }
        var out = Onnx_TypeProto()
        out.tensorType = tt
        return out
    }
}
