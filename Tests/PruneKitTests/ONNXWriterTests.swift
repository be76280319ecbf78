import Foundation
import XCTest
@testable import PruneKit

/// Writing ONNX after pruning (issue 15 step 3): the written file, read back by PruneKit's reader,
/// computes what the masked model computed before removal (within 1e-4 of the output scale), with
/// smaller tensors when channels were removed; names, opset and metadata survive; bad paths give
/// one line and write nothing. (scripts/check_onnx_export.py runs onnx.checker and onnxruntime on
/// the same kind of files.)
final class ONNXWriterTests: XCTestCase {
    let models = ["mlp", "resnet18", "resnet50", "mobilenetv2", "mobilenetv3", "mobilenetv3_opset13", "densenet", "dilated", "handmade"]

    func fixture(_ name: String, _ ext: String = "onnx") throws -> String {
        try XCTUnwrap(Bundle.module.url(forResource: name, withExtension: ext, subdirectory: ONNXTests.folder), name).path
    }

    func input(_ name: String) throws -> Tensor {
        try XCTUnwrap(try SafeTensors.read(try fixture("onnx_\(name)_io", "safetensors")).tensors["x"])
    }

    func temporaryFolder() throws -> String {
        let dir = NSTemporaryDirectory() + "pk-onnx-write-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    /// max |a − b| relative to b's scale, asserted ≤ 1e-4.
    @discardableResult
    func assertSameFunction(_ a: Tensor, _ b: Tensor, _ what: String, file: StaticString = #filePath, line: UInt = #line) -> Float {
        XCTAssertEqual(a.shape, b.shape, what, file: file, line: line)
        let scale = max(b.scalars.map(abs).max() ?? 0, 1e-3)
        let worst = zip(a.scalars, b.scalars).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertLessThanOrEqual(worst, 1e-4 * scale, "\(what): max error \(worst), scale \(scale)", file: file, line: line)
        return worst / scale
    }

    func dims(_ m: ONNXModel) -> [String: [Int64]] {
        Dictionary(m.proto.graph.initializer.map { ($0.name, $0.dims) }, uniquingKeysWith: { a, _ in a })
    }

    /// 50% of the channels (neurons of the MLPs) by L1, removed physically: the written file is
    /// smaller, its tensors shrank under their original names, and it computes the masked function.
    func testChannelPrunedModelsWriteSmallerFilesThatComputeTheMaskedFunction() throws {
        let dir = try temporaryFolder()
        for name in models {
            let path = try fixture("onnx_\(name)")
            let onnx = try ONNXModel.load(path)
            let x = try input(name)
            let before = onnx.model.parameterCount
            let dg = try DependencyGraph(onnx.model)
            try dg.prune(amount: 0.5, importance: .magnitude(p: 1), scope: .layer)
            let masked = try onnx.model.forward(x)
            try dg.removePrunedUnits()
            let out = dir + "/\(name).onnx"
            try onnx.write(to: out, metadata: ["prunekit.pruned": "channels 0.5"])
            let back = try ONNXModel.load(out)
            let err = assertSameFunction(try back.model.forward(x), masked, "\(name): written vs masked")
            XCTAssertLessThan(back.model.parameterCount, before, name)
            XCTAssertEqual(back.model.parameterCount, onnx.model.parameterCount, "\(name): the file holds the pruned layers")
            let size = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: out)[.size] as? Int)
            let original = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
            XCTAssertLessThan(size, original, "\(name): a smaller file")
            // what the file says about itself survives; names are kept, shapes shrank
            XCTAssertEqual(back.opset, onnx.opset)
            XCTAssertEqual(back.inputName, onnx.inputName)
            XCTAssertEqual(back.outputName, onnx.outputName)
            XCTAssertEqual(back.metadata["prunekit.pruned"], "channels 0.5")
            for (k, v) in onnx.metadata { XCTAssertEqual(back.metadata[k], v, "\(name): metadata \(k)") }
            XCTAssertEqual(back.proto.producerName, onnx.proto.producerName)
            XCTAssertEqual(back.proto.irVersion, onnx.proto.irVersion)
            let was = dims(onnx), now = dims(back)
            let shrunk = now.filter { entry in was[entry.key].map { $0 != entry.value } ?? false }
            XCTAssertFalse(shrunk.isEmpty, "\(name): some initializer kept its name and shrank")
            for (k, d) in shrunk { XCTAssertLessThanOrEqual(d.reduce(1, *), was[k]!.reduce(1, *), "\(name): \(k) grew") }
            XCTAssertTrue(back.proto.graph.valueInfo.isEmpty, "stale intermediate shapes are dropped")
            print("ONNX write \(name): channels 50%: \(before) → \(back.model.parameterCount) parameters, \(original) → \(size) bytes, "
                  + "written vs masked \(err) of the scale")
        }
    }

    /// Unstructured, 2:4 and 4×1 blocks: zeros in place; the same initializers with the same shapes,
    /// the pruned entries exactly 0 in the file.
    func testWeightPrunedModelsKeepShapesAndWriteZerosInPlace() throws {
        let dir = try temporaryFolder()
        let structures: [PruningRequest.Structure] = [.unstructured, .nm(2, 4), .block(4, 1)]
        for name in ["resnet18", "mobilenetv2", "mlp", "handmade"] {
            for structure in structures {
                let onnx = try ONNXModel.load(try fixture("onnx_\(name)"))
                let x = try input(name)
                let amount: Amount = structure == .nm(2, 4) ? .fraction(0) : .fraction(0.5)
                try ModelPruner.prune(onnx.model, PruningRequest(structure: structure, scope: .layer, amount: amount))
                let masked = try onnx.model.forward(x)
                let out = dir + "/\(name)-\(structure).onnx"
                try onnx.write(to: out)
                let back = try ONNXModel.load(out)
                assertSameFunction(try back.model.forward(x), masked, "\(name) \(structure)")
                XCTAssertEqual(dims(back), dims(onnx), "\(name) \(structure): same initializers, same shapes")
                let pruned = onnx.model.prunableWeights.reduce(0) { $0 + $1.parameter.effectiveMask.prunedCount }
                let zeros = back.model.prunableWeights.reduce(0) { $0 + $1.parameter.value.scalars.filter { $0 == 0 }.count }
                XCTAssertGreaterThanOrEqual(zeros, pruned, "\(name) \(structure): every pruned weight is 0 in the file")
                XCTAssertGreaterThan(Double(zeros) / Double(back.model.prunableWeights.reduce(0) { $0 + $1.parameter.count }), 0.3,
                                     "\(name) \(structure)")
            }
        }
    }

    /// External data is written inline: the file stands alone next to nothing.
    func testExternalDataIsWrittenInline() throws {
        let dir = try temporaryFolder()
        let onnx = try ONNXModel.load(try fixture("onnx_mlp_external"))
        let x = try input("mlp")
        let dense = try onnx.model.forward(x)
        try onnx.write(to: dir + "/inline.onnx")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["inline.onnx"])
        let back = try ONNXModel.load(dir + "/inline.onnx")
        XCTAssertTrue(back.proto.graph.initializer.allSatisfy { $0.dataLocation == .default && $0.externalData.isEmpty })
        XCTAssertEqual(try back.model.forward(x), dense)
    }

    // MARK: hand-made graphs for what exported files rarely hold

    static func info(_ name: String, _ dims: [Int64]) -> Onnx_ValueInfoProto {
        var v = Onnx_ValueInfoProto()
        v.name = name
        var t = Onnx_TypeProto.Tensor()
        t.elemType = 1
        t.shape.dim = dims.map { var d = Onnx_TensorShapeProto.Dimension(); d.dimValue = $0; return d }
        v.type.tensorType = t
        return v
    }

    static func initializer(_ name: String, _ dims: [Int64], _ values: [Float]) -> Onnx_TensorProto {
        var t = Onnx_TensorProto()
        t.name = name
        t.dataType = 1
        t.dims = dims
        t.floatData = values
        return t
    }

    static func node(_ op: String, _ name: String, _ inputs: [String], _ outputs: [String]) -> Onnx_NodeProto {
        var n = Onnx_NodeProto()
        n.opType = op
        n.name = name
        n.input = inputs
        n.output = outputs
        return n
    }

    /// IR version 3 (initializers listed as graph inputs), a MatMul weight given by a Constant node, a
    /// dead node, and a removed unit whose constant output (relu of its bias) must be folded into a
    /// bias the MatMul does not have: the writer adds an initializer, an Add node after the MatMul
    /// and the matching graph input, points the MatMul at a new weight initializer and drops the
    /// Constant and the dead node.
    func testNewBiasConstantWeightsAndInitializerInputsAreWritten() throws {
        var g = SeededGenerator(seed: 21)
        var w1 = (0..<24).map { _ in g.uniform(-1, 1) }
        for j in 0..<6 { w1[j] = 0 }  // unit 0 is dead: its weights are zero, its bias is not
        let b1: [Float] = [0.5, 0.1, -0.2, 0.3]
        let w2 = (0..<12).map { _ in g.uniform(-1, 1) }
        var constant = Self.node("Constant", "w2_const", [], ["w2"])
        var value = Onnx_AttributeProto()
        value.name = "value"
        value.type = .tensor
        value.t = Self.initializer("", [4, 3], w2)
        constant.attribute = [value]
        var gemm = Self.node("Gemm", "fc1", ["x", "fc1.weight", "fc1.bias"], ["h"])
        var transB = Onnx_AttributeProto()
        transB.name = "transB"
        transB.type = .int
        transB.i = 1
        gemm.attribute = [transB]
        var m = Onnx_ModelProto()
        m.irVersion = 3
        m.producerName = "hand"
        var opset = Onnx_OperatorSetIdProto()
        opset.version = 13
        m.opsetImport = [opset]
        var meta = Onnx_StringStringEntryProto()
        meta.key = "note"
        meta.value = "kept"
        m.metadataProps = [meta]
        m.graph.name = "g"
        m.graph.node = [constant, gemm, Self.node("Relu", "relu", ["h"], ["r"]), Self.node("Sigmoid", "dead", ["r"], ["unused"]),
                        Self.node("MatMul", "fc2", ["r", "w2"], ["y"])]
        m.graph.initializer = [Self.initializer("fc1.weight", [4, 6], w1), Self.initializer("fc1.bias", [4], b1)]
        m.graph.input = [Self.info("x", [2, 6]), Self.info("fc1.weight", [4, 6]), Self.info("fc1.bias", [4])]
        m.graph.output = [Self.info("y", [2, 3])]
        let dir = try temporaryFolder()
        let handBytes: Data = try m.serializedBytes()
        try handBytes.write(to: URL(fileURLWithPath: dir + "/hand.onnx"))
        let onnx = try ONNXModel.load(dir + "/hand.onnx")
        let x = Tensor.uniform([2, 6], -1, 1, rng: &g)
        let before = try onnx.model.forward(x)
        let r = try DependencyGraph(onnx.model).removePrunedUnits()
        XCTAssertEqual(r.removedUnits.values.reduce(0, +), 1)
        assertSameFunction(try onnx.model.forward(x), before, "removal folds relu(0.5)·w2[0] into a new bias")
        try onnx.write(to: dir + "/out.onnx")
        let back = try ONNXModel.load(dir + "/out.onnx")
        assertSameFunction(try back.model.forward(x), before, "written vs before removal")
        let g2 = back.proto.graph
        XCTAssertEqual(g2.node.map(\.opType), ["Gemm", "Relu", "MatMul", "Add"], "the Constant and the dead node are gone, an Add follows the MatMul")
        XCTAssertEqual(g2.node.last?.output, ["y"], "the Add produces the graph output")
        XCTAssertEqual(Set(g2.initializer.map(\.name)), ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"])
        XCTAssertEqual(dims(back)["fc1.weight"], [3, 6])
        XCTAssertEqual(dims(back)["fc2.weight"], [3, 3])
        // IR 3: every initializer is a graph input with its new shape
        XCTAssertEqual(g2.input.map(\.name), ["x", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"])
        XCTAssertEqual(g2.input[1].type.tensorType.shape.dim.map(\.dimValue), [3, 6])
        XCTAssertEqual(back.metadata["note"], "kept")
        XCTAssertEqual(back.proto.irVersion, 3)
    }

    /// One initializer read by two Gemms that are pruned differently is split in two; where both
    /// agree it stays shared.
    func testSharedInitializerIsSplitWhenItsReadersDisagree() throws {
        var g = SeededGenerator(seed: 22)
        let w = (0..<16).map { _ in g.uniform(-1, 1) }
        var m = Onnx_ModelProto()
        m.irVersion = 8
        var opset = Onnx_OperatorSetIdProto()
        opset.version = 17
        m.opsetImport = [opset]
        func gemm(_ name: String, _ input: String, _ out: String) -> Onnx_NodeProto {
            var n = Self.node("Gemm", name, [input, "shared.weight"], [out])
            var a = Onnx_AttributeProto()
            a.name = "transB"
            a.type = .int
            a.i = 1
            n.attribute = [a]
            return n
        }
        m.graph.node = [gemm("a", "x", "h"), Self.node("Relu", "relu", ["h"], ["r"]), gemm("b", "r", "y")]
        m.graph.initializer = [Self.initializer("shared.weight", [4, 4], w)]
        m.graph.input = [Self.info("x", [1, 4])]
        m.graph.output = [Self.info("y", [1, 4])]
        let dir = try temporaryFolder()
        let sharedBytes: Data = try m.serializedBytes()
        try sharedBytes.write(to: URL(fileURLWithPath: dir + "/shared.onnx"))
        let x = Tensor.uniform([3, 4], -1, 1, rng: &g)
        // unchanged: still one initializer
        var onnx = try ONNXModel.load(dir + "/shared.onnx")
        try onnx.write(to: dir + "/same.onnx")
        XCTAssertEqual(try ONNXModel.load(dir + "/same.onnx").proto.graph.initializer.map(\.name), ["shared.weight"])
        // pruned differently: two
        onnx = try ONNXModel.load(dir + "/shared.onnx")
        let weights = onnx.model.prunableWeights.map(\.parameter)
        try Prune.unstructured(weights[0], amount: .fraction(0.5), importance: .magnitude)
        let masked = try onnx.model.forward(x)
        try onnx.write(to: dir + "/split.onnx")
        let back = try ONNXModel.load(dir + "/split.onnx")
        XCTAssertEqual(back.proto.graph.initializer.count, 2)
        assertSameFunction(try back.model.forward(x), masked, "split initializers")
    }

    // MARK: errors

    func testUnwritablePathsGiveOneLineAndWriteNothing() throws {
        let dir = try temporaryFolder()
        let onnx = try ONNXModel.load(try fixture("onnx_mlp"))
        for bad in ["/nonexistent-folder-\(UUID().uuidString)/p.onnx", dir, dir + "/"] {
            XCTAssertThrowsError(try onnx.write(to: bad)) { e in
                let text = "\(e)"
                XCTAssertFalse(text.contains("\n"), text)
                XCTAssertTrue(text.contains(bad.hasSuffix("/") ? "folder path" : bad), text)
            }
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), [], "no file, no temporary file left")
    }

    // MARK: the command line

    func testPruneVerbWritesONNXWithTheUsualJSONKeys() throws {
        let dir = try temporaryFolder()
        let src = try fixture("onnx_resnet18")
        var r = try runPrunekit(["prune", "--model-file", src, "--structure", "channels", "--amount", "0.5", "--scope", "layer",
                                 "--out", dir + "/p.onnx", "--json"])
        XCTAssertEqual(r.status, 0, r.err)
        let o = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any], r.out)
        for key in ["sparsity", "macs_before", "macs_after", "params_before", "params_after"] { XCTAssertNotNil(o[key], key) }
        let (mb, ma) = (try XCTUnwrap(o["macs_before"] as? Int), try XCTUnwrap(o["macs_after"] as? Int))
        let (pb, pa) = (try XCTUnwrap(o["params_before"] as? Int), try XCTUnwrap(o["params_after"] as? Int))
        XCTAssertLessThan(ma, mb)
        XCTAssertLessThan(pa, pb)
        let back = try ONNXModel.load(dir + "/p.onnx")
        XCTAssertEqual(back.model.parameterCount, pa)
        XCTAssertEqual(try DependencyGraph(back.model).macs, ma)
        XCTAssertNotNil(back.metadata["prunekit.pruned"])
        // the same pruning in the library gives the same function
        let lib = try ONNXModel.load(src)
        try ModelPruner.prune(lib.model, PruningRequest(structure: .channels, scope: .layer, amount: .fraction(0.5)))
        let x = try input("resnet18")
        assertSameFunction(try back.model.forward(x), try lib.model.forward(x), "CLI file vs library masked model")
        // refusals: one line, nothing written
        for (args, mention) in [(["--out", dir + "/missing/q.onnx"], "does not exist"), (["--out", dir + "/q.safetensors"], ".onnx"),
                                (["--out", dir + "/q.onnx", "--method", "taylor"], "l1 or random")] {
            r = try runPrunekit(["prune", "--model-file", src, "--structure", "channels", "--amount", "0.5"] + args)
            XCTAssertNotEqual(r.status, 0, args.joined(separator: " "))
            XCTAssertEqual(r.err.split(separator: "\n").count, 1, r.err)
            XCTAssertTrue(r.err.contains(mention), r.err)
        }
        r = try runPrunekit(["prune", "--model-file", try fixture("bad_operator"), "--amount", "0.5", "--out", dir + "/q.onnx"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertEqual(r.err.split(separator: "\n").count, 1, r.err)
        XCTAssertTrue(r.err.contains("the_softmax"), r.err)
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: dir)), ["p.onnx"], "nothing else written")
    }
}
