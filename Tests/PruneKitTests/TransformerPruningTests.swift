import XCTest
@testable import PruneKit

/// Taylor importance (mask gradients), bias compensation, sequential pruning and the token-row
/// distillation term of the transformer pruner, on the tiny 2-block encoder.
final class TransformerPruningTests: XCTestCase {
    let ids: [[Int32]] = [[1, 5, 7, 2, 0, 0], [1, 9, 3, 11, 4, 2]]
    let mask: [[Float]] = [[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]]

    /// ∂L/∂(head mask) and ∂L/∂(neuron mask) against central differences, with a head mask that
    /// is not all ones (the recorded gradient is for the unmasked head outputs), and the token-row
    /// gradient of `backward` against central differences of a weight.
    func testMaskAndTokenGradientsByFiniteDifferences() throws {
        let e = try tinyEncoder(seed: 11)
        e.layers[1].headMask = [1, 0.7]
        var rng = TestRNG(12)
        let r = rng.floats(2 * 8), q = rng.floats(2 * 6 * 8)
        func loss() throws -> Double {
            let (emb, tok) = try e.embedWithTokens(ids: ids, mask: mask, training: false)
            return zip(emb.scalars, r).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                + zip(tok.scalars, q).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        for l in e.layers { l.recordMaskGradients = true }
        _ = try e.embedWithTokens(ids: ids, mask: mask, training: true)
        try e.backward(try Tensor(shape: [2, 8], scalars: r), tokenGradient: try Tensor(shape: [12, 8], scalars: q))
        for l in e.layers { l.recordMaskGradients = false }
        let eps: Float = 1e-2
        for (i, layer) in e.layers.enumerated() {
            let g = try XCTUnwrap(layer.maskGradients)
            XCTAssertEqual(g.heads.count, 2)
            XCTAssertEqual(g.neurons.count, 12)
            for h in 0..<2 {
                let saved = layer.headMask
                layer.headMask[h] = saved[h] + eps
                let lp = try loss()
                layer.headMask[h] = saved[h] - eps
                let lm = try loss()
                layer.headMask = saved
                let numeric = (lp - lm) / Double(2 * eps)
                XCTAssertEqual(g.heads[h], numeric, accuracy: 2e-3 + 2e-2 * abs(numeric), "block \(i) head \(h)")
            }
            // a neuron's mask scales its GELU output: the same as scaling its output column
            for j in [0, 5, 11] {
                let w = layer.output.weight, saved = w.value
                func scaled(_ s: Float) throws -> Double {
                    var v = saved
                    for r in 0..<8 { v[flat: r * 12 + j] *= s }
                    w.value = v
                    return try loss()
                }
                let numeric = (try scaled(1 + eps) - scaled(1 - eps)) / Double(2 * eps)
                w.value = saved
                XCTAssertEqual(g.neurons[j], numeric, accuracy: 2e-3 + 2e-2 * abs(numeric), "block \(i) neuron \(j)")
            }
        }
        // the token-row term reaches the weights: query weight of block 0
        let p = e.layers[0].query.weight, analytic = p.grad.scalars
        for k in [3, 17, 40] {
            let saved = p.value
            var v = saved
            v[flat: k] += eps
            p.value = v
            let lp = try loss()
            v[flat: k] -= 2 * eps
            p.value = v
            let lm = try loss()
            p.value = saved
            let numeric = (lp - lm) / Double(2 * eps)
            XCTAssertEqual(Double(analytic[k]), numeric, accuracy: 2e-3 + 2e-2 * abs(numeric), "query weight [\(k)]")
        }
    }

    /// The distillation token term: its loss against a direct sum and its gradient against central
    /// differences; padding rows get no gradient.
    func testTokenTermLossAndGradient() throws {
        var rng = TestRNG(13)
        let s = try Tensor(shape: [12, 8], scalars: rng.floats(96)), t = try Tensor(shape: [12, 8], scalars: rng.floats(96))
        let (g, loss) = try SentenceDistillation.tokenTerm(student: s, teacher: t, mask: mask, hidden: 8, weight: 0.5)
        var expected = 0.0
        for i in 0..<2 {
            let real = Double(mask[i].reduce(0, +))
            for r in 0..<6 where mask[i][r] != 0 {
                for j in 0..<8 { let d = Double(s[flat: (i * 6 + r) * 8 + j] - t[flat: (i * 6 + r) * 8 + j]); expected += 0.5 * d * d / (real * 8) }
            }
        }
        XCTAssertEqual(loss, expected, accuracy: 1e-6)
        for k in [0, 33, 47, 95] {
            var sp = s, sm = s
            sp[flat: k] += 1e-2
            sm[flat: k] -= 1e-2
            let lp = try SentenceDistillation.tokenTerm(student: sp, teacher: t, mask: mask, hidden: 8, weight: 0.5).loss
            let lm = try SentenceDistillation.tokenTerm(student: sm, teacher: t, mask: mask, hidden: 8, weight: 0.5).loss
            // the returned loss is summed over the batch; the gradient is of the batch mean
            XCTAssertEqual(Double(g[flat: k]), (lp - lm) / 2e-2 / 2, accuracy: 1e-4, "entry \(k)")
        }
        for k in (4 * 8)..<(6 * 8) { XCTAssertEqual(g[flat: k], 0, "padding row") }
    }

    /// With bias compensation, a pruned Linear's mean output over the calibration rows equals the
    /// dense one's (the first block's query, whose inputs are the token embeddings).
    func testBiasCompensationKeepsTheMeanOutput() throws {
        let (tok, sentences) = try tinySentences(24, seed: 14)
        let dense = try tinyEncoder(seed: 15), e = try tinyEncoder(seed: 15)
        let rows = try sentences.map { try dense.tokenEmbeddings(ids: [tok.encode($0)]) }
        func meanOutput(_ l: Linear) throws -> [Double] {
            var m = [Double](repeating: 0, count: l.outFeatures), n = 0
            for x in rows {
                let y = try l.forward(x, training: false)
                for r in 0..<x.shape[0] { for j in 0..<l.outFeatures { m[j] += Double(y[flat: r * l.outFeatures + j]) } }
                n += x.shape[0]
            }
            return m.map { $0 / Double(n) }
        }
        let cal = try TransformerPruner.calibrate(e, tokenizer: tok, sentences: sentences)
        _ = try TransformerPruner.prune(e, structure: .unstructured, method: .wanda, amount: 0.5, calibration: cal)
        XCTAssertEqual(e.layers[0].query.weight.mask?.prunedCount, 32)
        let want = try meanOutput(dense.layers[0].query), got = try meanOutput(e.layers[0].query)
        for j in 0..<8 { XCTAssertEqual(got[j], want[j], accuracy: 1e-5, "output \(j)") }
        // without compensation the biases stay as they were
        let plain = try tinyEncoder(seed: 15)
        _ = try TransformerPruner.prune(plain, structure: .unstructured, method: .wanda, amount: 0.5,
                                        calibration: try TransformerPruner.calibrate(plain, tokenizer: tok, sentences: sentences),
                                        compensate: false)
        XCTAssertEqual(plain.layers[0].query.bias!.value.scalars, dense.layers[0].query.bias!.value.scalars)
    }

    /// Sequential pruning: block 0 is pruned from the dense statistics, block 1 from statistics of
    /// sentences that ran through the pruned block 0 (rebuilt here by hand).
    func testSequentialPruningReadsThePrunedBlocksBefore() throws {
        let (tok, sentences) = try tinySentences(24, seed: 16)
        let seq = try TransformerPruner.pruneSequentially(try tinyEncoder(seed: 17), structure: .unstructured, method: .wanda,
                                                          amount: 0.5, tokenizer: tok, sentences: sentences, compensate: false)
        let manual = try tinyEncoder(seed: 17)
        let first = try TransformerPruner.calibrate(manual, tokenizer: tok, sentences: sentences)
        for l in manual.layers[0].linears {
            try TransformerPruner.pruneWeights(l, structure: .unstructured, amount: 0.5,
                                               scores: TransformerPruner.weightScores(l, method: .wanda, calibration: first), means: nil)
        }
        let second = try TransformerPruner.calibrate(manual, tokenizer: tok, sentences: sentences)
        for l in manual.layers[1].linears {
            try TransformerPruner.pruneWeights(l, structure: .unstructured, amount: 0.5,
                                               scores: TransformerPruner.weightScores(l, method: .wanda, calibration: second), means: nil)
        }
        for (a, b) in zip(TransformerPruner.linears(seq), TransformerPruner.linears(manual)) {
            XCTAssertEqual(a.weight.mask!.kept, b.weight.mask!.kept)
        }
        XCTAssertThrowsError(try TransformerPruner.pruneSequentially(try tinyEncoder(seed: 17), structure: .heads, method: .wanda,
                                                                     amount: 0.5, tokenizer: tok, sentences: sentences))
    }

    /// Taylor ranking removes the heads and neurons whose masks moved the embedding least, and needs
    /// a Taylor calibration.
    func testTaylorRemovesTheLeastSensitiveUnits() throws {
        let (tok, sentences) = try tinySentences(32, seed: 18)
        let e = try tinyEncoder(seed: 19)
        XCTAssertThrowsError(try TransformerPruner.prune(e, structure: .heads, method: .taylor, amount: 0.5,
                                                         calibration: try TransformerPruner.calibrate(e, tokenizer: tok, sentences: sentences)))
        let cal = try TransformerPruner.calibrate(e, tokenizer: tok, sentences: sentences, taylor: true, seed: 3)
        let s = try XCTUnwrap(cal.sensitivity)
        XCTAssertTrue(s.heads.joined().allSatisfy { $0 > 0 } && s.neurons.joined().allSatisfy { $0 >= 0 })
        let biases = e.layers.map { $0.attentionOutput.bias!.value.scalars }
        let heads = try TransformerPruner.prune(e, structure: .heads, method: .taylor, amount: 0.5, calibration: cal, scope: .layer)
        XCTAssertEqual(e.layers.map { $0.attentionOutput.bias!.value.scalars }, biases, "the source encoder is left as it was")
        XCTAssertNotEqual(heads.layers.map { $0.attentionOutput.bias!.value.scalars }, biases, "compensated")
        let neurons = try TransformerPruner.prune(e, structure: .neurons, method: .taylor, amount: 0.25, calibration: cal, scope: .global)
        XCTAssertEqual(neurons.layers.reduce(0) { $0 + $1.intermediate.outFeatures }, 18)
        for i in 0..<2 {
            // the kept head is the one with the larger sensitivity: its query rows are the original's
            let keep = s.heads[i][0] >= s.heads[i][1] ? 0 : 1
            XCTAssertEqual(heads.layers[i].heads, 1)
            XCTAssertEqual(heads.layers[i].query.weight.value.scalars,
                           Array(e.layers[i].query.weight.value.scalars[(keep * 4 * 8)..<((keep + 1) * 4 * 8)]))
        }
        let all = s.neurons.enumerated().flatMap { i, v in v.map { ($0, i) } }.sorted { $0.0 < $1.0 }
        let threshold = all[5].0 // six of 24 removed
        for (i, l) in neurons.layers.enumerated() {
            XCTAssertEqual(l.intermediate.outFeatures, 12 - s.neurons[i].filter { $0 <= threshold }.count)
        }
    }
}
