import XCTest
@testable import PruneKit

/// torch.nn.utils.prune semantics against PyTorch fixtures, and PruneKit's own guarantees.
final class PruningTests: XCTestCase {
    var fx: [String: Tensor] = [:]

    override func setUpWithError() throws {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "prune_functions", withExtension: "safetensors", subdirectory: "Fixtures"))
        fx = try SafeTensors.read(url.path).tensors
    }

    func param(_ name: String) -> Parameter { Parameter(fx[name + ".weight"]!, prunable: true) }
    func torchMask(_ name: String) -> [Bool] { fx[name + ".mask"]!.scalars.map { $0 != 0 } }

    func testL1UnstructuredMatchesTorch() throws {
        for (name, amount) in [("l1_half", Amount.fraction(0.5)), ("l1_count", .count(7)), ("l1_round_down", .fraction(0.25)),
                               ("l1_round_up", .fraction(0.35))] {
            let p = param(name)
            try Prune.l1Unstructured(p, amount: amount)
            XCTAssertEqual(p.mask!.kept, torchMask(name), name)
            for (v, k) in zip(p.value.scalars, p.mask!.kept) where !k { XCTAssertEqual(v.bitPattern, 0) }
        }
        // 0.25 × 10 = 2.5 rounds to 2, 0.35 × 10 = 3.5 rounds to 4 (half to even, like Python's round)
        XCTAssertEqual(torchMask("l1_round_down").filter { !$0 }.count, 2)
        XCTAssertEqual(torchMask("l1_round_up").filter { !$0 }.count, 4)
    }

    func testIterativePruningComposesLikeTorch() throws {
        let p = param("l1_iterative")
        try Prune.l1Unstructured(p, amount: 0.5)
        try Prune.l1Unstructured(p, amount: 0.5)
        try Prune.l1Unstructured(p, amount: 5)
        XCTAssertEqual(p.mask!.kept, torchMask("l1_iterative"))
        let q = param("ln_iterative")
        try Prune.lnStructured(q, amount: 0.5, n: 2, dim: 0)
        try Prune.lnStructured(q, amount: 0.5, n: 2, dim: 0)
        XCTAssertEqual(q.mask!.kept, torchMask("ln_iterative"))
    }

    func testStructuredMatchesTorch() throws {
        for (name, amount, n, dim) in [("ln2_dim0", Amount.fraction(0.5), 2.0, 0), ("ln1_dim1", .count(3), 1.0, 1),
                                       ("lninf_dim0", .fraction(0.4), Double.infinity, 0), ("conv_ln2", .fraction(0.5), 2.0, 0)] {
            let p = param(name)
            try Prune.lnStructured(p, amount: amount, n: n, dim: dim)
            XCTAssertEqual(p.mask!.kept, torchMask(name), name)
        }
    }

    func testRandomPruningMatchesTorchCounts() throws {
        // torch's generator differs: compare how many are pruned, and the structure
        let p = param("random_03")
        try Prune.randomUnstructured(p, amount: 0.3, seed: 5)
        XCTAssertEqual(p.mask!.prunedCount, torchMask("random_03").filter { !$0 }.count)
        let q = param("random_structured")
        try Prune.randomStructured(q, amount: 0.5, dim: 0, seed: 5)
        XCTAssertEqual(q.mask!.prunedCount, torchMask("random_structured").filter { !$0 }.count)
        let rows = q.mask!.kept
        for r in 0..<10 { XCTAssertEqual(Set(rows[(r * 3)..<(r * 3 + 3)]).count, 1, "whole rows") }
    }

    func testGlobalCustomRemoveIdentityMatchTorch() throws {
        let ps = ["global_a", "global_b", "global_c"].map(param)
        try Prune.globalUnstructured(ps, amount: 0.6)
        for (p, n) in zip(ps, ["global_a", "global_b", "global_c"]) { XCTAssertEqual(p.mask!.kept, torchMask(n), n) }
        let c = param("custom")
        try Prune.customFromMask(c, mask: Mask(shape: [4, 4], values: fx["custom.given"]!.scalars))
        try Prune.l1Unstructured(c, amount: 0.5)
        XCTAssertEqual(c.mask!.kept, torchMask("custom"))
        let r = param("removed")
        try Prune.l1Unstructured(r, amount: 0.5)
        Prune.remove(r)
        XCTAssertFalse(r.isPruned)
        XCTAssertEqual(r.value.scalars, fx["removed.after"]!.scalars)
        let i = param("identity")
        try Prune.identity(i)
        XCTAssertTrue(i.isPruned)
        XCTAssertEqual(i.mask!.kept, torchMask("identity"))
    }

    func testBadRequestsChangeNothing() throws {
        var g = SeededGenerator(seed: 1)
        let p = Parameter(Tensor.uniform([6, 6], -1, 1, rng: &g), prunable: true)
        try Prune.l1Unstructured(p, amount: 0.5)
        let before = (p.value.scalars, p.mask!.kept)
        XCTAssertThrowsError(try Prune.l1Unstructured(p, amount: 1.5))
        XCTAssertThrowsError(try Prune.l1Unstructured(p, amount: -0.1))
        XCTAssertThrowsError(try Prune.l1Unstructured(p, amount: 19)) // only 18 remain
        XCTAssertThrowsError(try Prune.lnStructured(p, amount: 0.5, n: 2, dim: 2))
        XCTAssertThrowsError(try Prune.nm(p, n: 5, m: 4))
        XCTAssertThrowsError(try Prune.customFromMask(p, mask: Mask(ones: [3])))
        XCTAssertEqual(p.value.scalars, before.0)
        XCTAssertEqual(p.mask!.kept, before.1)
        var bad = p.value
        bad[flat: 7] = .nan
        let q = Parameter(bad, prunable: true)
        XCTAssertThrowsError(try Prune.l1Unstructured(q, amount: 0.5)) { e in XCTAssertTrue("\(e)".contains("NaN")) }
        XCTAssertNil(q.mask)
        // a whole-model request with a bad amount leaves every layer untouched
        let m = Model.mlp(seed: 2)
        let snap = m.parameters.map(\.value.scalars)
        XCTAssertThrowsError(try ModelPruner.prune(m, PruningRequest(scope: .layer, amount: .count(50_000))))
        XCTAssertEqual(m.parameters.map(\.value.scalars), snap)
        XCTAssertTrue(m.parameters.allSatisfy { !$0.isPruned })
    }

    func testNMAndBlockPatterns() throws {
        var g = SeededGenerator(seed: 3)
        let p = Parameter(Tensor.uniform([8, 16], -1, 1, rng: &g), prunable: true)
        let v = p.value
        try Prune.nm(p, n: 2, m: 4)
        let k = p.mask!.kept
        for r in 0..<8 {
            for grp in 0..<4 {
                let idx = (0..<4).map { r * 16 + grp * 4 + $0 }
                XCTAssertEqual(idx.filter { k[$0] }.count, 2)
                let keptMin = idx.filter { k[$0] }.map { abs(v[flat: $0]) }.min()!
                let prunedMax = idx.filter { !k[$0] }.map { abs(v[flat: $0]) }.max()!
                XCTAssertGreaterThanOrEqual(keptMin, prunedMax)
            }
        }
        let b = Parameter(Tensor.uniform([8, 8], -1, 1, rng: &g), prunable: true)
        try Prune.block([b], blockRows: 4, blockCols: 1, amount: 0.5)
        let bk = b.mask!.kept
        XCTAssertEqual(b.mask!.prunedCount, 32)
        for c in 0..<8 { for br in 0..<2 { XCTAssertEqual(Set((0..<4).map { bk[(br * 4 + $0) * 8 + c] }).count, 1, "whole 4×1 blocks") } }
    }

    func testGlobalPruningOfAModelReachesTheSparsity() throws {
        let m = Model.mlp(seed: 4)
        try ModelPruner.prune(m, PruningRequest(method: .l1, structure: .unstructured, scope: .global, amount: 0.9))
        let r = SparsityReport(model: m)
        XCTAssertEqual(r.kept, r.total - Int((0.9 * Double(r.total)).rounded(.toNearestOrEven)))
        XCTAssertEqual(r.sparsity, 0.9, accuracy: 1e-5)
        try ModelPruner.prune(m, PruningRequest(method: .l1, structure: .unstructured, scope: .global, amount: 0.5))
        XCTAssertEqual(SparsityReport(model: m).sparsity, 0.95, accuracy: 1e-5, "pruning again composes on what is kept")
        XCTAssertTrue(SparsityReport(model: m).table.contains("fc1"))
    }

    func testSurgeryGivesTheMaskedModelsOutputs() throws {
        var g = SeededGenerator(seed: 9)
        for arch in ["mlp", "cnn"] {
            let m = try Model.make(arch, seed: 5)
            // give the biases some positive values so removed units emit constants that must be folded
            for p in m.parameters where !p.isPrunable { try p.assign(Tensor.uniform(p.shape, -0.2, 0.5, rng: &g)) }
            let structure: PruningRequest.Structure = arch == "mlp" ? .neurons : .channels
            try ModelPruner.prune(m, PruningRequest(structure: structure, scope: .layer, amount: 0.5))
            if arch == "mlp" { try Prune.l1Unstructured(m.prunableWeights[2].parameter, amount: 0.3) } // unstructured masks survive too
            let (small, result) = try Surgery.removePrunedUnits(m)
            XCTAssertLessThan(result.parametersAfter, result.parametersBefore)
            let x = Tensor.uniform([7, 784], -1, 1, rng: &g)
            assertClose(try small.forward(x).scalars, try m.forward(x).scalars, rtol: 1e-4, atol: 1e-4, "\(arch) surgery")
            // it round-trips through a file with its new shapes
            let path = NSTemporaryDirectory() + "surgery-\(arch)-\(UUID().uuidString).safetensors"
            defer { try? FileManager.default.removeItem(atPath: path) }
            try ModelFile.save(small, to: path)
            let back = try ModelFile.load(path).model
            assertClose(try back.forward(x).scalars, try small.forward(x).scalars, rtol: 0, atol: 0, "\(arch) reload")
        }
    }

    func testTaylorAndWandaImportance() throws {
        var g = SeededGenerator(seed: 10)
        let m = Model.mlp(seed: 6)
        let x = Tensor.uniform([64, 784], -1, 1, rng: &g)
        let labels = (0..<64).map { Int32($0 % 10) }
        let ws = m.prunableWeights.map(\.parameter)
        let taylor = TaylorImportance(parameters: ws)
        let r = try SoftmaxCrossEntropy.compute(logits: try m.forward(x, training: true), labels: labels)
        _ = try m.network.backward(r.gradient, needInputGradient: false) // unfused: `grad` is written
        try taylor.accumulate()
        // Taylor's scores written out from the same weights and gradients, before pruning zeroes them
        let want = ws.map { p in zip(p.value.scalars, p.grad.scalars).map { abs($0 * $1) } }
        XCTAssertTrue(want.joined().contains { $0 > 0 }, "real gradients, not the zero tensor a fused step leaves")
        // a taylor or wanda request with another importance is refused, not run as L1 under their label
        XCTAssertThrowsError(try ModelPruner.prune(m, PruningRequest(method: .taylor, amount: 0.5), importance: .magnitude))
        XCTAssertThrowsError(try ModelPruner.prune(m, PruningRequest(method: .wanda, amount: 0.5), importance: .taylor(taylor)))
        XCTAssertTrue(ws.allSatisfy { !$0.isPruned }, "a refused request prunes nothing")
        try ModelPruner.prune(m, PruningRequest(method: .taylor, amount: 0.5), importance: .taylor(taylor))
        XCTAssertEqual(SparsityReport(model: m).sparsity, 0.5, accuracy: 1e-5)
        var maxPruned: Float = 0, minKept = Float.infinity
        for (p, s) in zip(ws, want) {
            for (k, v) in zip(p.mask!.kept, s) { if k { minKept = min(minKept, v) } else { maxPruned = max(maxPruned, v) } }
        }
        XCTAssertLessThanOrEqual(maxPruned, minKept, "taylor pruned exactly the smallest |w·∂L/∂w| (ties allowed)")
        // ... which is not what L1 prunes on the same weights
        let l1 = Model.mlp(seed: 6)
        try ModelPruner.prune(l1, PruningRequest(method: .l1, amount: 0.5))
        let differing = zip(ws, l1.prunableWeights.map(\.parameter)).reduce(0) { n, pair in
            n + zip(pair.0.mask!.kept, pair.1.mask!.kept).filter { $0.0 != $0.1 }.count
        }
        XCTAssertGreaterThan(differing, 0, "taylor kept the same weights as L1: its scores were not used")

        let w = Model.mlp(seed: 6)
        let stats = ActivationStatistics()
        try stats.collect(model: w, batches: [x])
        XCTAssertEqual(stats.samples, 64)
        try ModelPruner.prune(w, PruningRequest(method: .wanda, structure: .nm(2, 4), scope: .layer, amount: 0.0),
                              importance: .wanda(stats))
        for (n, p) in w.prunableWeights {
            let k = p.mask!.kept
            XCTAssertEqual(stride(from: 0, to: k.count, by: 4).filter { i in k[i..<(i + 4)].filter { $0 }.count != 2 }.count, 0,
                           "\(n): exactly 2 of every 4 kept")
        }
        let magnitude = Model.mlp(seed: 6)
        try ModelPruner.prune(magnitude, PruningRequest(method: .l1, structure: .nm(2, 4), scope: .layer, amount: 0.0))
        XCTAssertNotEqual(w.prunableWeights.map { $0.parameter.mask!.kept }, magnitude.prunableWeights.map { $0.parameter.mask!.kept },
                          "wanda 2:4 must keep other weights than magnitude 2:4")
        // Wanda's score is |w|·‖x_j‖: a feature that is always 0 makes its column the first to go
        let v = Model.mlp(seed: 6)
        var xs = x
        for i in 0..<64 { try xs.setValue(0, at: [i, 3]) }
        let s2 = ActivationStatistics()
        try s2.collect(model: v, batches: [xs])
        try ModelPruner.prune(v, PruningRequest(method: .wanda, scope: .layer, amount: .count(300)), importance: .wanda(s2))
        let fc1 = v.prunableWeights[0].parameter.mask!
        XCTAssertTrue((0..<300).allSatisfy { !fc1[flat: $0 * 784 + 3] })
        XCTAssertThrowsError(try ModelPruner.prune(Model.mlp(seed: 1), PruningRequest(method: .wanda, amount: 0.5)))
    }

    func testSchedules() throws {
        XCTAssertEqual(PruningSchedule.cubicSparsity(step: 0, start: 0, steps: 100, initial: 0, final: 0.9), 0)
        XCTAssertEqual(PruningSchedule.cubicSparsity(step: 100, start: 0, steps: 100, initial: 0, final: 0.9), 0.9)
        XCTAssertEqual(PruningSchedule.cubicSparsity(step: 50, start: 0, steps: 100, initial: 0, final: 0.9), 0.9 - 0.9 * 0.125, accuracy: 1e-12)
        let m = Model.mlp(seed: 7)
        var rounds = 0
        try PruningSchedule.iterative(m, rounds: 3, fraction: 0.5, request: PruningRequest(amount: 0.0)) { _ in rounds += 1 }
        XCTAssertEqual(rounds, 3)
        XCTAssertEqual(SparsityReport(model: m).sparsity, 0.875, accuracy: 1e-4)
        // lottery ticket: rewound kept weights equal their initial values, pruned ones stay 0
        let t = Model.mlp(seed: 8)
        let initial = PruningSchedule.snapshot(t)
        var g = SeededGenerator(seed: 1)
        for p in t.parameters { try p.assign(Tensor.uniform(p.shape, -1, 1, rng: &g)) }
        try ModelPruner.prune(t, PruningRequest(amount: 0.8))
        try PruningSchedule.rewind(t, to: initial)
        for (p, s) in zip(t.parameters, initial) {
            let mk = p.effectiveMask
            for i in 0..<p.count { XCTAssertEqual(p.value[flat: i], mk[flat: i] ? s[flat: i] : 0) }
        }
        // gradual pruning during training reaches the final sparsity
        let data = try LabeledImages(images: Tensor.uniform([256, 784], -1, 1, rng: &g), labels: (0..<256).map { Int32($0 % 10) })
        let gm = Model.mlp(seed: 9)
        let hook = PruningSchedule.gradualHook(model: gm, start: 2, steps: 12, every: 2, finalSparsity: 0.8)
        _ = try Trainer.train(gm, data: data, optimizer: try Adam(), config: TrainingConfig(epochs: 2, batchSize: 16), stepHook: hook)
        XCTAssertEqual(SparsityReport(model: gm).sparsity, 0.8, accuracy: 0.01)
    }

    func testSeedExampleFromTheReadme() throws {
        // SimpleNet 100-50-2, L1 unstructured 50% of fc1, one forward, one Adam step
        var rng = SeededGenerator(seed: 0)
        let net = Sequential([("fc1", try Linear(100, 50, rng: &rng)), ("relu", ReLU()), ("fc2", try Linear(50, 2, rng: &rng))])
        XCTAssertEqual(net.parameters.reduce(0) { $0 + $1.count }, 100 * 50 + 50 + 50 * 2 + 2)
        let fc1 = net.parameters[0]
        try Prune.l1Unstructured(fc1, amount: 0.5)
        XCTAssertEqual(fc1.mask!.prunedCount, 2500)
        let x = Tensor.normal([4, 100], rng: &rng)
        let logits = try net.forward(x, training: true)
        XCTAssertEqual(logits.shape, [4, 2])
        let (_, grad, _) = try SoftmaxCrossEntropy.compute(logits: logits, labels: [0, 1, 0, 1])
        _ = try net.backward(grad, needInputGradient: false)
        try Adam(learningRate: 1e-3).step(net.parameters)
        for i in 0..<fc1.count where !fc1.mask![flat: i] { XCTAssertEqual(fc1.value[flat: i].bitPattern, 0) }
    }
}
