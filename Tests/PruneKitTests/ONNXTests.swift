import Foundation
import XCTest
@testable import PruneKit

/// The ONNX reader (issue 15): models exported from PyTorch (scripts/make_onnx_fixtures.py) run
/// through PruneKit's layers and give onnxruntime's outputs; bad files are refused with one line.
final class ONNXTests: XCTestCase {
    static let folder = "Fixtures/onnx"

    func fixture(_ name: String, _ ext: String = "onnx") throws -> String {
        try XCTUnwrap(Bundle.module.url(forResource: name, withExtension: ext, subdirectory: ONNXTests.folder), name).path
    }

    /// Loads onnx_<name>.onnx, runs its input batch and compares with onnxruntime's output within
    /// 1e-4 of the output's scale. Returns the model and the worst error relative to that scale.
    @discardableResult
    func checkAgainstOnnxRuntime(_ name: String, file: String? = nil) throws -> (ONNXModel, Float) {
        let onnx = try ONNXModel.load(try fixture(file ?? "onnx_\(name)"))
        let io = try SafeTensors.read(try fixture("onnx_\(name)_io", "safetensors")).tensors
        let x = try XCTUnwrap(io["x"]), want = try XCTUnwrap(io["y"])
        XCTAssertEqual(Array(x.shape.dropFirst()), onnx.model.inputShape, name)
        let y = try onnx.model.forward(x, training: false)
        XCTAssertEqual(y.count, want.count, "\(name): output size")
        XCTAssertEqual(y.shape.first, want.shape.first, "\(name): batch")
        let scale = want.scalars.map(abs).max()!
        XCTAssertGreaterThan(scale, 0.05, "\(name): the fixture's output must not vanish")
        let worst = zip(y.scalars, want.scalars).map { abs($0 - $1) }.max()!
        XCTAssertLessThanOrEqual(worst, 1e-4 * scale, "\(name): max |PruneKit − onnxruntime| = \(worst), scale \(scale)")
        print("ONNX \(name): max error \(worst) (\(worst / scale) of the output scale \(scale)), \(onnx.model.parameterCount) parameters")
        return (onnx, worst / scale)
    }

    func kinds(_ m: ONNXModel) -> [String] {
        (m.model.network as! Graph).nodes.map { String(describing: type(of: $0.layer)) }
    }

    func testMLPWithGemmMatMulAddSigmoidAndClipMatchesOnnxRuntime() throws {
        let (m, _) = try checkAgainstOnnxRuntime("mlp")
        XCTAssertEqual(m.opset, 17)
        XCTAssertEqual(kinds(m), ["Linear", "Activation", "Linear", "Activation", "Linear"], "MatMul + Add folds into one Linear")
        // the MatMul's bias is the initializer itself; the Gemm weights keep their PyTorch names
        XCTAssertTrue(m.initializerNames.values.contains("0.weight"), "\(m.initializerNames)")
        XCTAssertTrue(m.initializerNames.values.contains("2.b"), "\(m.initializerNames)")
        let graph = m.model.network as! Graph
        XCTAssertNotNil(graph.node(named: "0"), "nodes are named after their weight initializer")
    }

    func testNarrowResNet18MatchesOnnxRuntime() throws {
        let (m, _) = try checkAgainstOnnxRuntime("resnet18")
        let k = kinds(m)
        XCTAssertEqual(k.filter { $0 == "Conv2d" }.count, 20, "17 convolutions + 3 downsample projections")
        XCTAssertEqual(k.filter { $0 == "Add" }.count, 8, "one join per basic block")
        XCTAssertEqual(k.last, "Linear")
    }

    /// torchvision's resnet50 (narrowed 16×): the full 7×7 stride-2 stem with its 3×3 stride-2 padded
    /// max pool, and bottleneck blocks (1×1 → 3×3 → 1×1, ×4 expansion, projections on every stage).
    func testNarrowResNet50WithBottlenecksAndFullStemMatchesOnnxRuntime() throws {
        let (m, _) = try checkAgainstOnnxRuntime("resnet50")
        let k = kinds(m)
        XCTAssertEqual(k.filter { $0 == "Conv2d" }.count, 53, "1 stem + 16 blocks × 3 + 4 downsample projections")
        XCTAssertEqual(k.filter { $0 == "Add" }.count, 16, "one join per bottleneck block")
        XCTAssertEqual(k.filter { $0 == "MaxPool2d" }.count, 1, "the stem's max pool")
        XCTAssertEqual(k.last, "Linear")
    }

    func testMobileNetV2WithDepthwiseConvsAndReLU6MatchesOnnxRuntime() throws {
        let (m, _) = try checkAgainstOnnxRuntime("mobilenetv2")
        let convs = (m.model.network as! Graph).nodes.compactMap { $0.layer as? Conv2d }
        XCTAssertTrue(convs.contains { $0.groups > 1 && $0.groups == $0.inChannels }, "depthwise convolutions are read")
    }

    func testMobileNetV3SmallWithSqueezeExcitationMatchesOnnxRuntime() throws {
        let (m, _) = try checkAgainstOnnxRuntime("mobilenetv3")
        XCTAssertTrue(kinds(m).contains("ChannelScale"), "the squeeze-excitation Mul")
    }

    /// Opset 13 has no HardSwish: PyTorch exports x · HardSigmoid(x), a Mul of two equal shapes,
    /// which runs as an element-by-element ChannelScale.
    func testMobileNetV3AtOpset13WithHardSwishAsMulMatchesOnnxRuntime() throws {
        let (m, _) = try checkAgainstOnnxRuntime("mobilenetv3_opset13")
        XCTAssertEqual(m.opset, 13)
        XCTAssertGreaterThan(kinds(m).filter { $0 == "ChannelScale" }.count, 3, "squeeze-excitation gates and x · HardSigmoid(x)")
    }

    func testDenseNetStyleConcatNetworkMatchesOnnxRuntime() throws {
        let (m, _) = try checkAgainstOnnxRuntime("densenet")
        let k = kinds(m)
        for kind in ["Concat", "BatchNorm", "MaxPool2d", "AvgPool2d", "GlobalAvgPool2d"] { XCTAssertTrue(k.contains(kind), kind) }
    }

    /// torchvision's full-size stem (7×7 stride 2 padding 3, then MaxPool 3×3 stride 2 padding 1) and
    /// dilated convolutions (dense, depthwise, strided) read and run as onnxruntime does.
    func testTorchvisionStemAndDilatedConvolutionsMatchOnnxRuntime() throws {
        let (m, _) = try checkAgainstOnnxRuntime("dilated")
        let graph = m.model.network as! Graph
        let convs = graph.nodes.compactMap { $0.layer as? Conv2d }
        XCTAssertTrue(convs.contains { $0.kernelSize == 7 && $0.stride == 2 && $0.padding == 3 && $0.dilation == 1 }, "the stem")
        XCTAssertEqual(convs.filter { $0.dilation > 1 }.map { [$0.kernelSize, $0.stride, $0.padding, $0.dilation, $0.groups] },
                       [[3, 1, 2, 2, 1], [3, 1, 2, 2, 8], [2, 2, 1, 3, 1]])
        let pools = graph.nodes.compactMap { $0.layer as? MaxPool2d }
        XCTAssertEqual(pools.map { [$0.kernelSize, $0.stride, $0.padding] }, [[3, 2, 1]])
    }

    func testHandMadeGraphWithIdentityDropoutAndScaledGemmMatchesOnnxRuntime() throws {
        let (m, _) = try checkAgainstOnnxRuntime("handmade")
        XCTAssertEqual(kinds(m), ["Flatten", "Linear", "ReLU", "Dropout", "Linear"], "Identity is an alias; Add is the MatMul's bias")
        XCTAssertEqual(m.model.inputShape, [3, 4])
    }

    func testExternalDataNextToTheModelIsRead() throws {
        let (m, _) = try checkAgainstOnnxRuntime("mlp", file: "onnx_mlp_external")
        let inline = try ONNXModel.load(try fixture("onnx_mlp"))
        for ((a, p), (b, q)) in zip(m.model.namedParameters, inline.model.namedParameters) {
            XCTAssertEqual(a, b)
            XCTAssertEqual(p.value, q.value, a)
        }
    }

    /// An imported graph trains: its input gradient is the finite difference of (y · dy).sum()
    /// with a random dy (the MLP has no BatchNorm or Dropout, so training and evaluation agree).
    func testImportedMLPInputGradientMatchesFiniteDifferences() throws {
        let m = try ONNXModel.load(try fixture("onnx_mlp")).model
        let x = try XCTUnwrap(try SafeTensors.read(try fixture("onnx_mlp_io", "safetensors")).tensors["x"])
        var rng = SeededGenerator(seed: 7)
        let dy = Tensor.uniform([3, 5], -1, 1, rng: &rng)
        func loss(_ t: Tensor) throws -> Double {
            zip(try m.forward(t).scalars, dy.scalars).reduce(0) { $0 + Double($1.0) * Double($1.1) }
        }
        _ = try m.forward(x, training: true)
        let dx = try XCTUnwrap(try m.network.backward(dy, needInputGradient: true))
        XCTAssertEqual(dx.shape, x.shape)
        let h: Float = 1e-2
        for i in stride(from: 0, to: x.count, by: 7) {
            var plus = x, minus = x
            plus[flat: i] += h
            minus[flat: i] -= h
            let numeric = (try loss(plus) - loss(minus)) / Double(2 * h)
            XCTAssertEqual(Double(dx[flat: i]), numeric, accuracy: 2e-3 + 1e-2 * abs(numeric), "∂L/∂x[\(i)]")
        }
    }

    /// ChannelScale's gradients (both inputs) against finite differences, with a per-channel gate and
    /// with a gate of x's own shape (an element-by-element product).
    func testChannelScaleGradientsMatchFiniteDifferences() throws {
        try checkChannelScaleGradients(gateShape: [2, 3, 1, 1])
        try checkChannelScaleGradients(gateShape: [2, 3, 2, 2])
        let layer = ChannelScale()
        var rng = SeededGenerator(seed: 8)
        let x = Tensor.uniform([2, 3, 2, 2], -1, 1, rng: &rng), g = Tensor.uniform([2, 3, 2, 2], -1, 1, rng: &rng)
        XCTAssertEqual(try layer.forward([x, g], training: false).scalars, zip(x.scalars, g.scalars).map { $0 * $1 }, "x ⊙ g")
    }

    func checkChannelScaleGradients(gateShape: [Int]) throws {
        var rng = SeededGenerator(seed: 8)
        let x = Tensor.uniform([2, 3, 2, 2], -1, 1, rng: &rng), g = Tensor.uniform(gateShape, -1, 1, rng: &rng)
        let dy = Tensor.uniform([2, 3, 2, 2], -1, 1, rng: &rng)
        let layer = ChannelScale()
        func loss(_ a: Tensor, _ b: Tensor) throws -> Double {
            zip(try layer.forward([a, b], training: false).scalars, dy.scalars).reduce(0) { $0 + Double($1.0) * Double($1.1) }
        }
        _ = try layer.forward([x, g], training: true)
        let grads = try layer.backward(dy, needInputGradients: [true, true])
        let dx = try XCTUnwrap(grads[0]), dg = try XCTUnwrap(grads[1])
        XCTAssertEqual(dg.shape, g.shape)
        let h: Float = 1e-2
        for i in 0..<x.count {
            var p = x, q = x
            p[flat: i] += h
            q[flat: i] -= h
            XCTAssertEqual(Double(dx[flat: i]), (try loss(p, g) - loss(q, g)) / Double(2 * h), accuracy: 1e-3)
        }
        for i in 0..<g.count {
            var p = g, q = g
            p[flat: i] += h
            q[flat: i] -= h
            XCTAssertEqual(Double(dg[flat: i]), (try loss(x, p) - loss(x, q)) / Double(2 * h), accuracy: 1e-3)
        }
        XCTAssertThrowsError(try layer.forward([x, try Tensor(zeros: [2, 2])], training: false), "a gate of the wrong width")
    }

    /// Backward runs through every layer an imported MobileNetV3 holds (BatchNorm in training mode,
    /// the squeeze-excitation gate, hard-swish) and fills the parameters' gradients.
    func testImportedMobileNetV3RunsBackward() throws {
        let m = try ONNXModel.load(try fixture("onnx_mobilenetv3")).model
        let x = try XCTUnwrap(try SafeTensors.read(try fixture("onnx_mobilenetv3_io", "safetensors")).tensors["x"])
        var rng = SeededGenerator(seed: 9)
        _ = try m.forward(x, training: true)
        let dx = try XCTUnwrap(try m.network.backward(Tensor.uniform([2, 10], -1, 1, rng: &rng), needInputGradient: true))
        XCTAssertEqual(dx.shape, x.shape)
        XCTAssertTrue(dx.isFinite)
        XCTAssertGreaterThan(dx.scalars.map(abs).max()!, 0)
        for (name, p) in m.namedParameters { XCTAssertTrue(p.grad.isFinite, name) }
    }

    // MARK: - untrusted input: each bad file is refused with one line naming the culprit

    func assertRefused(_ path: String, mentions: [String], file: StaticString = #filePath, line: UInt = #line) {
        do {
            let m = try ONNXModel.load(path)
            XCTFail("\(path) loaded (\(m.model.network.summary))", file: file, line: line)
        } catch let e as ONNXError {
            let text = e.description
            XCTAssertFalse(text.contains("\n"), "one line: \(text)", file: file, line: line)
            XCTAssertTrue(text.hasPrefix(path), "names the file: \(text)", file: file, line: line)
            for m in mentions { XCTAssertTrue(text.contains(m), "'\(m)' in: \(text)", file: file, line: line) }
        } catch {
            XCTFail("\(path): not an ONNXError: \(error)", file: file, line: line)
        }
    }

    func testUnequalDilationIsRefusedNamingTheNode() throws {
        assertRefused(try fixture("bad_dilation"), mentions: ["node 'dilated_conv' (Conv)", "dilations [2, 1]"])
    }

    func testUnsupportedOperatorIsRefusedNamingTheNode() throws {
        assertRefused(try fixture("bad_operator"), mentions: ["node 'the_softmax' (Softmax)", "not supported"])
    }

    func testDynamicSpatialShapeIsRefusedNamingTheInput() throws {
        assertRefused(try fixture("bad_dynamic"), mentions: ["input 'x'", "dynamic shape", "'H'"])
    }

    func testTensorWhoseBytesDisagreeWithItsShapeIsRefused() throws {
        assertRefused(try fixture("bad_tensor_size"), mentions: ["initializer 'w'", "68 bytes", "[2, 1, 3, 3]"])
    }

    func testAbsurdDimensionsAreRefusedBeforeAnythingIsAllocated() throws {
        assertRefused(try fixture("bad_absurd_dims"), mentions: ["initializer 'w'", "absurd dimensions"])
    }

    func testClipThatIsNeitherReLUNorReLU6IsRefused() throws {
        assertRefused(try fixture("bad_clip"), mentions: ["node 'clip_1_to_2' (Clip)", "min 1.0, max 2.0"])
    }

    func testExternalDataEscapingTheFolderIsRefused() throws {
        assertRefused(try fixture("bad_escape_parent"), mentions: ["initializer 'w'", "leaves the model's folder"])
        assertRefused(try fixture("bad_escape_absolute"), mentions: ["initializer 'w'", "absolute path"])
        assertRefused(try fixture("bad_external_short"), mentions: ["initializer 'w'", "runs past the end"])
    }

    func testExternalDataThroughASymlinkOutOfTheFolderIsRefused() throws {
        let fm = FileManager.default
        let root = fm.temporaryDirectory.appendingPathComponent("prunekit-onnx-\(UUID().uuidString)")
        let inside = root.appendingPathComponent("model"), outside = root.appendingPathComponent("elsewhere")
        try fm.createDirectory(at: inside, withIntermediateDirectories: true)
        try fm.createDirectory(at: outside, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: root) }
        let model = inside.appendingPathComponent("m.onnx")
        try fm.copyItem(atPath: try fixture("onnx_mlp_external"), toPath: model.path)
        let target = outside.appendingPathComponent("onnx_mlp_external.bin")
        try fm.copyItem(atPath: try fixture("onnx_mlp_external", "bin"), toPath: target.path)
        // a link inside the folder to a file inside it is fine …
        let local = inside.appendingPathComponent("data.bin")
        try fm.copyItem(atPath: target.path, toPath: local.path)
        try fm.createSymbolicLink(atPath: inside.appendingPathComponent("onnx_mlp_external.bin").path, withDestinationPath: local.path)
        XCTAssertNoThrow(try ONNXModel.load(model.path))
        // … a link leading out of it is not
        try fm.removeItem(at: inside.appendingPathComponent("onnx_mlp_external.bin"))
        try fm.createSymbolicLink(atPath: inside.appendingPathComponent("onnx_mlp_external.bin").path, withDestinationPath: target.path)
        assertRefused(model.path, mentions: ["outside the model's folder"])
    }

    func temporaryFile(_ data: Data) throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("prunekit-onnx-\(UUID().uuidString).onnx")
        try data.write(to: url)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url.path
    }

    func testMalformedProtobufEmptyAndMissingFilesAreRefused() throws {
        assertRefused(try temporaryFile(Data([0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 1, 2, 3])), mentions: ["not a valid ONNX protobuf"])
        assertRefused(try temporaryFile(Data("this is not a model\n".utf8)), mentions: [])
        assertRefused(try temporaryFile(Data()), mentions: ["empty file"])
        assertRefused("/nonexistent/model.onnx", mentions: ["file not found"])
    }

    func testTruncatedFilesAreRefusedAtEveryCut() throws {
        let whole = try Data(contentsOf: URL(fileURLWithPath: try fixture("onnx_densenet")))
        for cut in [1, 2, 7, 16, 100, whole.count / 3, whole.count / 2, whole.count - 100, whole.count - 1] {
            assertRefused(try temporaryFile(whole.prefix(cut)), mentions: [])
        }
    }

    /// Random byte corruption never crashes the reader: each file either loads or throws ONNXError.
    func testCorruptedBytesNeverCrash() throws {
        let whole = try Data(contentsOf: URL(fileURLWithPath: try fixture("onnx_handmade")))
        var rng = SeededGenerator(seed: 15)
        var refused = 0
        let path = try temporaryFile(whole)
        for _ in 0..<300 {
            var d = whole
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                d[Int.random(in: 0..<d.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            try d.write(to: URL(fileURLWithPath: path))
            do {
                let m = try ONNXModel.load(path)
                _ = try? m.model.forward(try Tensor(shape: [1] + m.model.inputShape, repeating: 0.5))
            } catch is ONNXError {
                refused += 1
            }
        }
        XCTAssertGreaterThan(refused, 0)
    }

    /// A layer refusing its arguments (a weight with a zero dimension) is still one line naming the
    /// node. The file is built with PruneKit's own protobuf types.
    func testLayerErrorsAreReportedAgainstTheNode() throws {
        var w = Onnx_TensorProto()
        w.name = "w"
        w.dataType = 1
        w.dims = [0, 1, 3, 3]
        var conv = Onnx_NodeProto()
        conv.name = "empty_conv"
        conv.opType = "Conv"
        conv.input = ["x", "w"]
        conv.output = ["y"]
        func info(_ name: String, _ dims: [Int64]) -> Onnx_ValueInfoProto {
            var v = Onnx_ValueInfoProto()
            v.name = name
            var t = Onnx_TypeProto.Tensor()
            t.elemType = 1
            t.shape.dim = dims.map { var d = Onnx_TensorShapeProto.Dimension(); d.dimValue = $0; return d }
            v.type.tensorType = t
            return v
        }
        var m = Onnx_ModelProto()
        m.irVersion = 8
        var opset = Onnx_OperatorSetIdProto()
        opset.version = 17
        m.opsetImport = [opset]
        m.graph.node = [conv]
        m.graph.initializer = [w]
        m.graph.input = [info("x", [1, 1, 8, 8])]
        m.graph.output = [info("y", [1, 0, 6, 6])]
        let path = try temporaryFile(try m.serializedBytes())
        assertRefused(path, mentions: ["node 'empty_conv' (Conv)"])
        m.opsetImport[0].version = 9
        assertRefused(try temporaryFile(try m.serializedBytes()), mentions: ["opset 9 is not supported"])
    }

    // MARK: - .npy arrays and `prunekit infer`

    func testNPYRoundTripAndRefusals() throws {
        var rng = SeededGenerator(seed: 3)
        for shape in [[5], [2, 3], [2, 1, 4, 4], []] {
            let t = Tensor.uniform(shape, -2, 2, rng: &rng)
            let back = try NPY.parse(NPY.encode(t), name: "t.npy")
            XCTAssertEqual(back.shape, shape)
            XCTAssertEqual(back, t)
            XCTAssertEqual((NPY.encode(t).count - t.count * 4) % 64, 0, "header padded to 64 bytes")
        }
        let good = NPY.encode(try Tensor(shape: [2, 2], scalars: [1, 2, 3, 4]))
        XCTAssertThrowsError(try NPY.parse(good.prefix(good.count - 1), name: "short.npy")) { XCTAssertTrue("\($0)".contains("bytes of data")) }
        XCTAssertThrowsError(try NPY.parse(Data("hello world".utf8), name: "x.npy")) { XCTAssertTrue("\($0)".contains("magic")) }
        var fortran = good
        fortran.replaceSubrange(10..<good.count, with: Data(String(decoding: good[10...], as: UTF8.self)
            .replacingOccurrences(of: "False", with: "True ").utf8))
        XCTAssertThrowsError(try NPY.parse(fortran, name: "f.npy")) { XCTAssertTrue("\($0)".contains("Fortran")) }
        var int32 = good
        int32.replaceSubrange(10..<good.count, with: Data(String(decoding: good[10...], as: UTF8.self)
            .replacingOccurrences(of: "<f4", with: "<i4").utf8))
        XCTAssertThrowsError(try NPY.parse(int32, name: "i.npy")) { XCTAssertTrue("\($0)".contains("'<i4'")) }
    }

    func testInferVerbRunsAnONNXModelOnNpyInputs() throws {
        let dir = NSTemporaryDirectory() + "pk-infer-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let io = try SafeTensors.read(try fixture("onnx_resnet18_io", "safetensors")).tensors
        let x = try XCTUnwrap(io["x"]), want = try XCTUnwrap(io["y"])
        try NPY.write(x, to: dir + "/x.npy")
        var r = try runPrunekit(["infer", "--model-file", try fixture("onnx_resnet18"), "--input", dir + "/x.npy",
                                 "--output", dir + "/y.npy", "--batch", "1"])
        XCTAssertEqual(r.status, 0, r.err)
        let y = try NPY.read(dir + "/y.npy")
        XCTAssertEqual(y.shape, want.shape)
        let scale = want.scalars.map(abs).max()!
        XCTAssertLessThanOrEqual(zip(y.scalars, want.scalars).map { abs($0 - $1) }.max()!, 1e-4 * scale)
        // safetensors in and out
        r = try runPrunekit(["infer", "--model-file", try fixture("onnx_resnet18"), "--input", try fixture("onnx_resnet18_io", "safetensors"),
                             "--output", dir + "/y.safetensors"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(try SafeTensors.read(dir + "/y.safetensors").tensors["y"], y)
        // a bad model: one line, no output written
        r = try runPrunekit(["infer", "--model-file", try fixture("bad_dilation"), "--input", dir + "/x.npy", "--output", dir + "/z.npy"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertEqual(r.err.split(separator: "\n").count, 1, r.err)
        XCTAssertTrue(r.err.contains("dilated_conv"), r.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/z.npy"))
        // inputs of the wrong shape: one line
        try NPY.write(try Tensor(zeros: [2, 5]), to: dir + "/bad.npy")
        r = try runPrunekit(["infer", "--model-file", try fixture("onnx_resnet18"), "--input", dir + "/bad.npy", "--output", dir + "/z.npy"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertEqual(r.err.split(separator: "\n").count, 1, r.err)
    }

    /// `bench infer` times ONNX files side by side on --input arrays; an unstructured-pruned file runs
    /// sparsely with --execution sparse (its zeros become masks) and densely with --execution dense.
    func testBenchInferTimesONNXFilesDenseAndSparse() throws {
        let dir = NSTemporaryDirectory() + "pk-bench-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let src = try fixture("onnx_resnet18"), pruned = dir + "/u.onnx"
        var r = try runPrunekit(["prune", "--model-file", src, "--structure", "unstructured", "--amount", "0.9", "--out", pruned])
        XCTAssertEqual(r.status, 0, r.err)
        let x = try XCTUnwrap(try SafeTensors.read(try fixture("onnx_resnet18_io", "safetensors")).tensors["x"])
        try NPY.write(x, to: dir + "/x.npy")
        for (execution, sparseLayers) in [("sparse", true), ("dense", false)] {
            r = try runPrunekit(["bench", "infer", "--model-file", src, pruned, "--input", dir + "/x.npy", "--batch", "2",
                                 "--repeat", "1", "--execution", execution, "--json"])
            XCTAssertEqual(r.status, 0, r.err)
            let o = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])
            let rows = try XCTUnwrap(o["models"] as? [[String: Any]])
            XCTAssertEqual(rows.count, 2)
            XCTAssertEqual(o["images"] as? Int, x.shape[0])
            for row in rows { XCTAssertGreaterThan(row["images_per_second"] as? Double ?? 0, 0) }
            let weights = try XCTUnwrap(rows[1]["weight_layers"] as? Int), sparse = try XCTUnwrap(rows[1]["sparse_layers"] as? Int)
            XCTAssertGreaterThan(weights, 0)
            XCTAssertEqual(sparse, sparseLayers ? weights : 0, "\(execution): every pruned layer sparse, or none")
        }
        // a missing --input: one line
        r = try runPrunekit(["bench", "infer", "--model-file", src, "--input", dir + "/missing.npy", "--repeat", "1"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertEqual(r.err.split(separator: "\n").count, 1, r.err)
    }

    // MARK: - imported graphs under the dependency-aware pruner (issue 15 part 3 builds on this)

    /// The dependency graph traces imported networks like built-in ones (MobileNetV3's
    /// squeeze-excitation gates couple their channels like a residual add): 50% of the channels by
    /// L1, then physical removal computes what the masked model did.
    func testImportedGraphsPruneByChannelsAndRemovalKeepsTheMaskedFunction() throws {
        for name in ["mlp", "resnet18", "resnet50", "mobilenetv2", "mobilenetv3", "mobilenetv3_opset13", "densenet", "dilated"] {
            let m = try ONNXModel.load(try fixture("onnx_\(name)")).model
            let x = try XCTUnwrap(try SafeTensors.read(try fixture("onnx_\(name)_io", "safetensors")).tensors["x"])
            let dense = try m.forward(x)
            let dg = try DependencyGraph(m)
            XCTAssertFalse(dg.groups.isEmpty, name)
            try dg.prune(amount: 0.5, importance: .magnitude(p: 1), scope: .layer)
            let masked = try m.forward(x)
            XCTAssertNotEqual(masked.scalars, dense.scalars, "\(name): pruning changed the function")
            let r = try dg.removePrunedUnits()
            XCTAssertLessThan(r.parametersAfter, r.parametersBefore, name)
            let after = try m.forward(x)
            let scale = max(masked.scalars.map(abs).max()!, 1e-3)
            let worst = zip(after.scalars, masked.scalars).map { abs($0 - $1) }.max()!
            XCTAssertLessThanOrEqual(worst, 1e-4 * scale, "\(name): removed vs masked")
            print("ONNX \(name) pruned 50% by channels: \(r.parametersBefore) → \(r.parametersAfter) parameters, removed vs masked \(worst)")
        }
    }
}
