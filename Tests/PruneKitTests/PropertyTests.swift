import Foundation
import PropertyBased
import Testing
@testable import PruneKit

/// Property-based tests of the public API (swift-property-based, with shrinking): random shapes,
/// amounts, structures and sequences of prune / compose / fine-tune / save / load / surgery steps.
/// Invariants: masked entries are exactly zero after every step; counts follow DESIGN.md's pinned
/// rounding (round half to even of amount × what is still kept); surgery and dependency-graph
/// removal compute what the masked model computed; save/load round-trips bitwise. A failure prints
/// the shrunk input and the seed that reproduces it (`@Test(.fixedSeed("…"))`).
@Suite struct PropertyTests {
    /// One step of a pruning session.
    enum Step: Int, CaseIterable, CustomStringConvertible {
        case layerL1, globalRandom, nm24, neurons, fineTune, saveLoad
        var description: String { "\(self)" }
    }

    /// An MLP of the given widths (input first, classes last) with Linear + ReLU layers.
    static func mlp(_ widths: [Int], seed: UInt64) throws -> Model {
        var g = SeededGenerator(seed: seed)
        var layers: [(String, any Layer)] = []
        for i in 0..<(widths.count - 1) {
            layers.append(("fc\(i)", try Linear(widths[i], widths[i + 1], rng: &g)))
            if i < widths.count - 2 { layers.append(("relu\(i)", ReLU())) }
        }
        return Model(architecture: "mine", network: Sequential(layers), inputShape: [widths[0]])
    }

    static func maskedAreZero(_ m: Model) -> Bool {
        m.prunableWeights.allSatisfy { _, p in
            guard let mask = p.mask else { return true }
            return zip(p.value.scalars, mask.kept).allSatisfy { $0.1 || $0.0 == 0 }
        }
    }

    static func kept(_ p: Parameter) -> Int { p.mask?.keptCount ?? p.count }

    /// Pinned rounding: round half to even of fraction × remaining.
    static func pinned(_ f: Double, _ remaining: Int) -> Int { Int((f * Double(remaining)).rounded(.toNearestOrEven)) }

    @Test func pruningSessionsKeepTheirInvariants() async throws {
        let widths = Gen.int(in: 1...12).array(of: 3...5)
        let steps = Gen.int(in: 0..<Step.allCases.count).array(of: 1...6)
        let amounts = Gen.double(in: 0...0.95).array(of: 6)
        await propertyCheck(count: 60, input: widths, steps, amounts, Gen.int(in: 0...1_000_000)) { widths, codes, amounts, seed in
            let model = try Self.mlp(widths, seed: UInt64(seed))
            var g = SeededGenerator(seed: UInt64(seed) &+ 1)
            let weights = model.prunableWeights.map(\.parameter)
            for (k, code) in codes.enumerated() {
                let step = Step(rawValue: code)!, f = amounts[k]
                let before = weights.map(Self.kept)
                switch step {
                case .layerL1:
                    try ModelPruner.prune(model, PruningRequest(method: .l1, structure: .unstructured, scope: .layer, amount: .fraction(f)))
                    for (p, b) in zip(weights, before) { #expect(b - Self.kept(p) == Self.pinned(f, b), "layer L1 \(f) of \(b)") }
                case .globalRandom:
                    try ModelPruner.prune(model, PruningRequest(method: .random, structure: .unstructured, scope: .global,
                                                                amount: .fraction(f), seed: UInt64(k)))
                    let total = before.reduce(0, +), now = weights.map(Self.kept).reduce(0, +)
                    #expect(total - now == Self.pinned(f, total), "global random \(f) of \(total)")
                case .nm24:
                    let request = PruningRequest(method: .l1, structure: .nm(2, 4), scope: .layer, amount: .fraction(0.5))
                    // every group of 4 consecutive inputs of a row keeps at most 2 (a short last group too)
                    try ModelPruner.prune(model, request)
                    for p in weights {
                        let m = p.effectiveMask.kept, cols = p.shape[1]
                        for r in 0..<p.shape[0] {
                            for g in stride(from: 0, to: cols, by: 4) {
                                #expect(m[(r * cols + g)..<(r * cols + min(g + 4, cols))].filter { $0 }.count <= 2)
                            }
                        }
                    }
                case .neurons:
                    let hidden = weights.dropLast()
                    let aliveBefore = hidden.map { p in (0..<p.shape[0]).filter { r in p.effectiveMask.kept[(r * p.shape[1])..<((r + 1) * p.shape[1])].contains(true) }.count }
                    try ModelPruner.prune(model, PruningRequest(method: .l1, structure: .neurons, scope: .layer, amount: .fraction(f)))
                    for (p, a) in zip(hidden, aliveBefore) {
                        let alive = (0..<p.shape[0]).filter { r in p.effectiveMask.kept[(r * p.shape[1])..<((r + 1) * p.shape[1])].contains(true) }.count
                        #expect(a - alive == Self.pinned(f, a), "neurons \(f) of \(a)")
                    }
                    #expect(Self.kept(weights.last!) == before.last!, "the classifier's outputs are never pruned")
                case .fineTune:
                    let masks = weights.map(\.mask)
                    let x = Tensor.normal([8, widths[0]], rng: &g)
                    let labels = (0..<8).map { Int32($0 % widths.last!) }
                    _ = try Trainer.train(model, data: LabeledImages(images: x, labels: labels), optimizer: Adam(learningRate: 1e-2),
                                          config: TrainingConfig(epochs: 1, batchSize: 4, seed: UInt64(k)))
                    #expect(weights.map { $0.mask?.kept } == masks.map { $0?.kept }, "fine-tuning keeps the masks")
                case .saveLoad:
                    let path = NSTemporaryDirectory() + "prop-\(UUID().uuidString).safetensors"
                    defer { try? FileManager.default.removeItem(atPath: path) }
                    try ModelFile.save(model, to: path)
                    let back = try Self.mlp(widths, seed: 99)
                    _ = try ModelFile.load(path, into: back)
                    for ((_, a), (_, b)) in zip(model.namedParameters, back.namedParameters) {
                        #expect(a.value.scalars.map(\.bitPattern) == b.value.scalars.map(\.bitPattern), "bitwise round trip")
                    }
                }
                #expect(Self.maskedAreZero(model), "masked entries are exactly zero after \(step)")
            }
            // surgery computes what the masked model computes
            let x = Tensor.normal([5, widths[0]], rng: &g)
            let masked = try model.forward(x).scalars
            do {
                let (small, _) = try Surgery.removePrunedUnits(model)
                let out = try small.forward(x).scalars
                for (a, b) in zip(out, masked) { #expect(abs(a - b) <= 1e-4 + 1e-4 * abs(b), "surgery = masked") }
            } catch let PruneError.unsupported(message) {
                // the one refusal these ReLU MLPs can meet: a hidden layer whose every unit is removed. A unit
                // goes when none of its weights from a surviving input is both kept and nonzero, so removal
                // cascades: inputs of layer 0 all survive, a layer's surviving units are the next one's inputs.
                var alive = Set(0..<widths[0]), dead = false
                for p in weights.dropLast() {
                    let m = p.effectiveMask.kept, v = p.value.scalars, n = p.shape[1]
                    alive = Set((0..<p.shape[0]).filter { r in alive.contains { m[r * n + $0] && v[r * n + $0] != 0 } })
                    if alive.isEmpty { dead = true; break }
                }
                #expect(dead && message.contains("every unit of"), "surgery refused an MLP it should shrink: \(message)")
            }
        }
    }

    @Test func dependencyGraphRemovalComputesTheMaskedModel() async throws {
        await propertyCheck(count: 60, input: Gen.int(in: 2...10), Gen.int(in: 1...12), Gen.double(in: 0...0.9),
                            Gen.int(in: 0...1_000_000)) { width, hidden, f, seed in
            var g = SeededGenerator(seed: UInt64(seed))
            let body = Sequential([("a", try Linear(width, hidden, rng: &g)), ("relu", ReLU()), ("b", try Linear(hidden, width, rng: &g))])
            let net = Sequential([("stem", try Linear(6, width, rng: &g)), ("block", try Graph.residual(body, activation: ReLU())),
                                  ("head", try Linear(width, 3, rng: &g))])
            let model = Model(architecture: "mine", network: net, inputShape: [6])
            let x = Tensor.normal([4, 6], rng: &g)
            let dg = try DependencyGraph(model)
            let units = dg.groups.map(\.units.count)
            do {
                try dg.prune(amount: .fraction(f), scope: seed % 2 == 0 ? .layer : .global)
            } catch {
                // only refused when a group would lose every unit (one-unit groups at a large amount)
                // refused only when the amount would empty a group: per group at layer scope, or
                // more than all groups can give while each keeps one at global scope
                let layer = seed % 2 == 0
                let total = units.reduce(0, +)
                #expect(layer ? units.contains { Self.pinned(f, $0) >= $0 } : Self.pinned(f, total) > total - units.count,
                        "refused: \(error)")
                return
            }
            #expect(Self.maskedAreZero(model))
            let masked = try model.forward(x).scalars
            let before = model.parameterCount
            _ = try dg.removePrunedUnits()
            #expect(model.parameterCount <= before)
            let out = try model.forward(x).scalars
            for (a, b) in zip(out, masked) { #expect(abs(a - b) <= 1e-4 + 1e-4 * abs(b), "removed = masked") }
        }
    }
}
