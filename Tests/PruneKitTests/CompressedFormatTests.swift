import XCTest
import CPruneKernels
@testable import PruneKit

/// The compressed formats behind one interface (issue 16): layers in N:M and block form train like
/// the dense-masked layer, optimizer state follows a parameter between forms, the structure of a
/// mask decides which formats it allows, a format a mask does not fit is refused naming the layer,
/// and model files carry every format.
final class CompressedFormatTests: XCTestCase {
    /// A mask of `format`'s structure for a rows × cols weight.
    func structured(_ format: CompressedFormat, _ rows: Int, _ cols: Int, keep: Double, _ rng: inout TestRNG) -> [Bool] {
        var kept = [Bool](repeating: false, count: rows * cols)
        switch format {
        case .csr: for i in 0..<kept.count { kept[i] = rng.int(1000) < Int(keep * 1000) }
        case let .nm(n, m):
            for r in 0..<rows {
                for g in 0..<(cols / m) {
                    var pos = Array(0..<m)
                    for i in stride(from: m - 1, to: 0, by: -1) { pos.swapAt(i, rng.int(i + 1)) }
                    for j in pos.prefix(n) { kept[r * cols + g * m + j] = true }
                }
            }
        case let .block(br, bc):
            for i in 0..<(rows / br) {
                for c in 0..<(cols / bc) where rng.int(1000) < Int(keep * 1000) {
                    for a in 0..<br { for b in 0..<bc { kept[(i * br + a) * cols + c * bc + b] = true } }
                }
            }
        }
        return kept
    }

    /// A Linear in each structured format gives the dense-masked outputs, gradients and Adam steps
    /// (fused and unfused), keeps pruned entries at 0, and its moments follow it back to dense.
    func testLinearInEachFormatMatchesDenseMasked() throws {
        for format in [CompressedFormat.nm(n: 2, m: 4), .nm(n: 1, m: 4), .nm(n: 2, m: 8), .block(rows: 4, cols: 4), .block(rows: 1, cols: 16)] {
            var rng = TestRNG(170)
            var g = SeededGenerator(seed: 11)
            let dense = try Linear(96, 40, rng: &g), packed = try Linear(weight: dense.weight.value, bias: dense.bias!.value)
            let mask = try Mask(shape: [40, 96], kept: structured(format, 40, 96, keep: 0.3, &rng))
            try dense.weight.setMask(mask)
            try packed.weight.setMask(mask)
            dense.execution = .dense
            packed.execution = .format(format)
            let optD = try Adam(learningRate: 0.01, weightDecay: 0.01), optP = try Adam(learningRate: 0.01, weightDecay: 0.01)
            for step in 0..<3 {
                let x = try Tensor(shape: [19, 96], scalars: rng.floats(19 * 96)), dy = try Tensor(shape: [19, 40], scalars: rng.floats(19 * 40))
                let yd = try dense.forward(x, training: true), yp = try packed.forward(x, training: true)
                XCTAssertEqual(packed.weight.compressed?.format, format)
                assertClose(yp.scalars, yd.scalars, rtol: 1e-5, atol: 1e-5, "\(format) forward \(step)")
                if step != 1 { optD.prepareFusedStep(dense.parameters); optP.prepareFusedStep(packed.parameters) }
                let dxd = try dense.backward(dy, needInputGradient: true)!, dxp = try packed.backward(dy, needInputGradient: true)!
                assertClose(dxp.scalars, dxd.scalars, rtol: 1e-5, atol: 1e-5, "\(format) input gradient \(step)")
                if step == 1 { assertClose(packed.weight.grad.scalars, dense.weight.grad.scalars, rtol: 1e-5, atol: 1e-5, "\(format) dW") }
                try optD.step(dense.parameters)
                try optP.step(packed.parameters)
                assertClose(packed.weight.value.scalars, dense.weight.value.scalars, rtol: 1e-4, atol: 1e-5, "\(format) weights \(step)")
            }
            XCTAssertEqual(packed.weight.mask?.kept, mask.kept, "\(format): the mask survives the steps")
            XCTAssertTrue(zip(packed.weight.value.scalars, mask.kept).allSatisfy { $0.1 || $0.0 == 0 }, "\(format): pruned entries stay 0")
            // the moments follow the parameter to CSR and back to dense
            packed.execution = .format(.csr)
            let x = try Tensor(shape: [3, 96], scalars: rng.floats(288)), dy = try Tensor(shape: [3, 40], scalars: rng.floats(120))
            for (layer, opt) in [(packed, optP), (dense, optD)] {
                _ = try layer.forward(x, training: true)
                opt.prepareFusedStep(layer.parameters)
                _ = try layer.backward(dy, needInputGradient: false)
                try opt.step(layer.parameters)
            }
            XCTAssertEqual(packed.weight.compressed?.format, .csr)
            packed.execution = .dense
            _ = try packed.forward(x, training: false)
            XCTAssertNil(packed.weight.compressed)
            assertClose(optP.moments(of: packed.weight)!.v.scalars, optD.moments(of: dense.weight)!.v.scalars, rtol: 1e-4, atol: 1e-9,
                        "\(format): second moments after CSR and dense")
            assertClose(packed.weight.value.scalars, dense.weight.value.scalars, rtol: 1e-4, atol: 1e-5, "\(format): weights at the end")
        }
    }

    /// A convolution whose weight (viewed as out × in·k·k) is 2:4 or in 4×4 blocks runs in that format.
    func testConv2dInStructuredFormats() throws {
        for format in [CompressedFormat.nm(n: 2, m: 4), .block(rows: 4, cols: 4)] {
            var rng = TestRNG(171)
            var g = SeededGenerator(seed: 12)
            let dense = try Conv2d(4, 8, kernelSize: 3, stride: 1, rng: &g) // 8 × 36
            let packed = try Conv2d(weight: dense.weight.value, bias: dense.bias!.value, stride: 1)
            let mask = try Mask(shape: dense.weight.shape, kept: structured(format, 8, 36, keep: 0.4, &rng))
            try dense.weight.setMask(mask)
            try packed.weight.setMask(mask)
            dense.execution = .dense
            packed.execution = .format(format)
            let optD = try SGD(learningRate: 0.05, momentum: 0.9), optP = try SGD(learningRate: 0.05, momentum: 0.9)
            for step in 0..<2 {
                let x = try Tensor(shape: [2, 4, 8, 7], scalars: rng.floats(2 * 4 * 8 * 7))
                let yd = try dense.forward(x, training: true), yp = try packed.forward(x, training: true)
                XCTAssertEqual(packed.weight.compressed?.format, format)
                assertClose(yp.scalars, yd.scalars, rtol: 1e-5, atol: 1e-5, "\(format) conv forward \(step)")
                let dy = try Tensor(shape: yd.shape, scalars: rng.floats(yd.count))
                if step == 0 { optD.prepareFusedStep(dense.parameters); optP.prepareFusedStep(packed.parameters) }
                let dxd = try dense.backward(dy, needInputGradient: true)!, dxp = try packed.backward(dy, needInputGradient: true)!
                assertClose(dxp.scalars, dxd.scalars, rtol: 1e-5, atol: 1e-5, "\(format) conv input gradient \(step)")
                try optD.step(dense.parameters)
                try optP.step(packed.parameters)
                assertClose(packed.weight.value.scalars, dense.weight.value.scalars, rtol: 1e-5, atol: 1e-6, "\(format) conv weights \(step)")
            }
        }
    }

    /// The formats a mask allows, the choice among them, and refusals naming the layer.
    func testStructureDecidesTheFormat() throws {
        var rng = TestRNG(172)
        let (rows, cols) = (32, 64)
        func allowed(_ kept: [Bool]) throws -> [CompressedFormat] {
            try CompressedFormat.allowed(by: ByteStorage(kept.map { $0 ? 1 : 0 }), rows: rows, cols: cols)
        }
        let nm24 = structured(.nm(n: 2, m: 4), rows, cols, keep: 0, &rng)
        XCTAssertEqual(try allowed(nm24), [.nm(n: 2, m: 4), .nm(n: 4, m: 8), .csr])
        let nm14 = structured(.nm(n: 1, m: 4), rows, cols, keep: 0, &rng)
        XCTAssertEqual(try allowed(nm14), [.nm(n: 1, m: 4), .nm(n: 2, m: 8), .csr])
        let b44 = structured(.block(rows: 4, cols: 4), rows, cols, keep: 0.2, &rng)
        let a44 = try allowed(b44)
        XCTAssertTrue(a44.starts(with: [.block(rows: 4, cols: 4)]), "\(a44)")
        XCTAssertFalse(a44.contains(.block(rows: 8, cols: 8)))
        XCTAssertEqual(try allowed(structured(.csr, rows, cols, keep: 0.3, &rng)), [.csr])
        // .sparse runs a format the mask allows; .dense never compresses
        var g = SeededGenerator(seed: 13)
        let layer = try Linear(cols, rows, rng: &g)
        try layer.weight.setMask(Mask(shape: [rows, cols], kept: nm24))
        layer.execution = .sparse
        let x = try Tensor(shape: [5, cols], scalars: rng.floats(5 * cols))
        let y = try layer(x)
        let chosen = layer.weight.compressed!.format
        XCTAssertTrue(try allowed(nm24).contains(chosen), "\(chosen)")
        layer.execution = .dense
        assertClose(try layer(x).scalars, y.scalars, rtol: 1e-5, atol: 1e-5, "dense after sparse")
        XCTAssertNil(layer.weight.compressed)
        // a format the mask does not fit: one line naming the layer and the rule; nothing changes
        layer.execution = .format(.block(rows: 4, cols: 4))
        let before = layer.weight.value.scalars
        XCTAssertThrowsError(try layer(x)) { e in
            XCTAssertTrue("\(e)".contains("Linear(64 → 32)") && "\(e)".contains("4×4"), "\(e)")
        }
        XCTAssertNil(layer.weight.compressed)
        XCTAssertEqual(layer.weight.value.scalars, before)
        XCTAssertEqual(layer.weight.mask?.kept, nm24)
        layer.execution = .format(.nm(n: 2, m: 3))
        XCTAssertThrowsError(try layer(x)) { e in XCTAssertTrue("\(e)".contains("multiple of 3"), "\(e)") }
        // execution settings parse from their names
        for s in ["automatic", "dense", "sparse", "csr", "2:4", "block:4x4", "block:16×1"] { XCTAssertNotNil(Execution(s), s) }
        XCTAssertEqual(Execution("block:16×1"), .format(.block(rows: 16, cols: 1)))
        for s in ["", "3:2", "block:4", "block:0x4", "sideways"] { XCTAssertNil(Execution(s), s) }
    }

    /// Model files: each pruned weight in its format's arrays (U8 indices for N:M, torch's BSR arrays
    /// for blocks), read back exactly; corrupted indices are refused naming the weight.
    func testModelFileCarriesEveryFormat() throws {
        let m = Model.mlp(seed: 5) // fc1 784→300, fc2 300→100, fc3 100→10
        let named = Dictionary(uniqueKeysWithValues: m.namedParameters.map { ($0.name, $0.parameter) })
        try Prune.nm(named["fc1.weight"]!, n: 2, m: 4)
        try Prune.block([named["fc2.weight"]!], blockRows: 4, blockCols: 4, amount: .fraction(0.8))
        try Prune.randomUnstructured(named["fc3.weight"]!, amount: .fraction(0.5), seed: 3)
        var g = SeededGenerator(seed: 6)
        let x = Tensor.uniform([4, 784], -1, 1, rng: &g)
        m.setExecution(.dense)
        let logits = try m.forward(x)
        let dir = NSTemporaryDirectory() + "formats-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ModelFile.save(m, to: dir + "/c.safetensors", layout: .compressed)
        let (tensors, ints, meta) = try SafeTensors.readAll(dir + "/c.safetensors")
        XCTAssertEqual(meta["fc1.weight.format"], "2:4")
        XCTAssertEqual(meta["fc2.weight.format"], "block:4x4")
        XCTAssertEqual(meta["fc3.weight.format"], "csr")
        XCTAssertEqual(tensors["fc1.weight.values"]?.shape, [300, 392])
        XCTAssertEqual(ints["fc1.weight.nm_indices"]?.count, 300 * 392)
        XCTAssertEqual(tensors["fc2.weight.values"].map { Array($0.shape.dropFirst()) }, [4, 4])
        let (c, _) = try ModelFile.load(dir + "/c.safetensors")
        for ((name, a), (_, b)) in zip(c.namedParameters, m.namedParameters) {
            XCTAssertEqual(a.value.scalars, b.value.scalars, name)
            XCTAssertEqual(a.mask?.kept, b.mask?.kept, name)
        }
        c.setExecution(.dense)
        XCTAssertEqual(try c.forward(x).scalars, logits.scalars)
        // a model running compressed saves its forms too, and the file is smaller than plain
        m.setExecution(.sparse)
        _ = try m.forward(x)
        try ModelFile.save(m, to: dir + "/s.safetensors", layout: .compressed)
        try ModelFile.save(m, to: dir + "/p.safetensors", layout: .plain)
        let size = { (f: String) in (try FileManager.default.attributesOfItem(atPath: dir + f)[.size] as! NSNumber).doubleValue }
        XCTAssertLessThan(try size("/s.safetensors"), 0.6 * (try size("/p.safetensors")))
        XCTAssertEqual(try ModelFile.load(dir + "/s.safetensors").model.parameters.map(\.value.scalars), m.parameters.map(\.value.scalars))
        // corrupted: an N:M index outside its group, a block column out of range
        for (key, bad) in [("fc1.weight.nm_indices", Int64(7)), ("fc2.weight.col_indices", Int64(1000))] {
            var floats = tensors, integers: [String: (shape: [Int], values: [Int32])] = [:], bytes: [String: (shape: [Int], values: [UInt8])] = [:]
            for (k, v) in ints {
                floats[k] = nil
                var vals = v
                if k == key { vals[0] = bad }
                if k.hasSuffix(".nm_indices") { bytes[k] = ([v.count], vals.map { UInt8(truncatingIfNeeded: $0) }) } else {
                    integers[k] = ([v.count], vals.map { Int32($0) })
                }
            }
            try SafeTensors.write(floats, integers: integers, bytes: bytes, metadata: meta, to: dir + "/bad.safetensors")
            XCTAssertThrowsError(try ModelFile.load(dir + "/bad.safetensors")) { e in
                XCTAssertTrue("\(e)".contains(String(key.prefix(10))), "\(e)")
            }
        }
    }
}
