import XCTest
import CPruneKernels
@testable import PruneKit

/// Taylor importance (mask gradients), bias compensation, sequential pruning and the token-row
/// distillation term of the transformer pruner, on the tiny 2-block encoder.
final class TransformerPruningTests: XCTestCase {
    let ids: [[Int32]] = [[1, 5, 7, 2, 0, 0], [1, 9, 3, 11, 4, 2]]
    let mask: [[Float]] = [[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]]

    /// Unit Taylor on the encoder: the mask gradient of each head and FFN neuron (squared, one
    /// batch) against central differences — a head through a head mask that is not all ones (the
    /// measured mask sits on top of it, at the output projection's input), a neuron through its
    /// output column — with the token-row gradient entering the same backward pass; and that term's
    /// gradient of a query weight against central differences.
    func testMaskAndTokenGradientsByFiniteDifferences() throws {
        let e = try tinyEncoder(seed: 11)
        e.attention(1).headMask = [1, 0.7]
        var rng = TestRNG(12)
        let r = rng.floats(2 * 8), q = rng.floats(2 * 6 * 8)
        func loss() throws -> Double {
            let (emb, tok) = try e.embedWithTokens(ids: ids, mask: mask, training: false)
            return zip(emb.scalars, r).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
                + zip(tok.scalars, q).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        let graph = try DependencyGraph(e.model)
        XCTAssertEqual(graph.groups.filter { $0.kind == .heads }.map(\.units.count), [2, 2])
        XCTAssertEqual(graph.groups.filter { $0.kind == .channels }.map(\.units.count), [12, 12], "FFN neurons; the hidden stream is locked")
        let taylor = try graph.measureUnitTaylor(batches: 1) { _ in
            _ = try e.embedWithTokens(ids: ids, mask: mask, training: true)
            try e.backward(try Tensor(shape: [2, 8], scalars: r), tokenGradient: try Tensor(shape: [12, 8], scalars: q))
        }
        let eps: Float = 1e-2
        for (gi, g) in graph.groups.enumerated() {
            let block = g.producers[0].contains("layer.0.") ? 0 : 1
            for k in g.kind == .heads ? [0, 1] : [0, 5, 11] {
                let measured = Double(try taylor.score(group: gi, unit: k, of: graph)).squareRoot()
                let numeric: Double
                if g.kind == .heads {
                    let a = e.attention(block), saved = a.headMask
                    a.headMask[k] = saved[k] + eps
                    let lp = try loss()
                    a.headMask[k] = saved[k] - eps
                    let lm = try loss()
                    a.headMask = saved
                    numeric = Double(saved[k]) * (lp - lm) / Double(2 * eps)
                } else {
                    // a neuron's mask scales its GELU output: the same as scaling its output column
                    let w = e.feedForward(block).output.weight, saved = w.value
                    func scaled(_ s: Float) throws -> Double {
                        var v = saved
                        for r in 0..<8 { v[flat: r * 12 + k] *= s }
                        w.value = v
                        return try loss()
                    }
                    numeric = (try scaled(1 + eps) - scaled(1 - eps)) / Double(2 * eps)
                    w.value = saved
                }
                XCTAssertEqual(measured, abs(numeric), accuracy: 2e-3 + 2e-2 * abs(numeric), "block \(block) \(g.kind) \(k)")
            }
        }
        // the token-row term reaches the weights: query weight of block 0
        let p = e.attention(0).query.weight, analytic = p.grad.scalars
        for k in [3, 17, 40] {
            let numeric = try centralDifference(p, k, eps: eps, loss)
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
        // the C kernels against their references: a sequence with no real token, 1 and 2 threads
        let (bb, tt, nn) = (3, 5, 7)
        let a = rng.floats(bb * tt * nn), c = rng.floats(bb * tt * nn)
        let m: [Float] = [1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
        for threads in [1, 2] {
            try withThreads(threads) {
                var l1 = 0.0, l2 = 0.0
                var g1 = [Float](repeating: 9, count: a.count), g2 = g1
                XCTAssertEqual(pk_token_mse_f32(Int64(bb), Int64(tt), Int64(nn), a, c, m, 0.7, &l1, &g1), PK_OK)
                XCTAssertEqual(pk_ref_token_mse_f32(Int64(bb), Int64(tt), Int64(nn), a, c, m, 0.7, &l2, &g2), PK_OK)
                XCTAssertEqual(l1, l2, accuracy: 1e-9)
                for i in a.indices { XCTAssertEqual(g1[i], g2[i], accuracy: 1e-6) }
                var d1 = [Float](repeating: 9, count: nn), d2 = d1
                XCTAssertEqual(pk_col_dot_f32(Int64(bb * tt), Int64(nn), a, c, &d1), PK_OK)
                XCTAssertEqual(pk_ref_col_dot_f32(Int64(bb * tt), Int64(nn), a, c, &d2), PK_OK)
                XCTAssertEqual(d1, d2)
            }
        }
        var l = 0.0, gg = [Float](repeating: 0, count: a.count)
        XCTAssertEqual(pk_token_mse_f32(Int64(bb), Int64(tt), Int64(nn), a, c, m, -1, &l, &gg), PK_ERR_ARG)
    }

    /// With bias compensation, a pruned Linear's mean output over the calibration rows equals the
    /// dense one's (the first block's query, whose inputs are the token embeddings).
    func testBiasCompensationKeepsTheMeanOutput() throws {
        let (tok, sentences) = try tinySentences(24, seed: 14)
        let dense = try tinyEncoder(seed: 15), e = try tinyEncoder(seed: 15)
        let rows = try sentences.map { try dense.embeddings.forward(dense.sentenceInput(tok.encode($0)), training: false) }
        func meanOutput(_ l: Linear) throws -> [Double] {
            var m = [Double](repeating: 0, count: l.outFeatures), n = 0
            for x in rows {
                let y = try l.forward(x, training: false)
                for r in 0..<x.shape[0] { for j in 0..<l.outFeatures { m[j] += Double(y[flat: r * l.outFeatures + j]) } }
                n += x.shape[0]
            }
            return m.map { $0 / Double(n) }
        }
        let request = PruningRequest(method: .wanda, structure: .unstructured, scope: .row, amount: 0.5)
        try e.prune(request, calibration: e.calibrate(tokenizer: tok, sentences: sentences))
        XCTAssertEqual(e.attention(0).query.weight.mask?.prunedCount, 32)
        let want = try meanOutput(dense.attention(0).query), got = try meanOutput(e.attention(0).query)
        for j in 0..<8 { XCTAssertEqual(got[j], want[j], accuracy: 1e-5, "output \(j)") }
        XCTAssertNotEqual(e.attention(0).query.bias!.value.scalars, dense.attention(0).query.bias!.value.scalars)
        // without compensation the biases stay as they were
        let plain = try tinyEncoder(seed: 15)
        try plain.prune(request, calibration: plain.calibrate(tokenizer: tok, sentences: sentences), compensate: false)
        XCTAssertEqual(plain.attention(0).query.bias!.value.scalars, dense.attention(0).query.bias!.value.scalars)
        XCTAssertEqual(plain.attention(0).query.weight.mask!.kept, e.attention(0).query.weight.mask!.kept, "same choice")
    }

    /// Sequential pruning: block 0 is pruned from the dense statistics, block 1 from statistics of
    /// sentences that ran through the pruned block 0 (rebuilt here by hand, one block at a time
    /// with whole-model calibrations).
    func testSequentialPruningReadsThePrunedBlocksBefore() throws {
        let (tok, sentences) = try tinySentences(24, seed: 16)
        let request = PruningRequest(method: .wanda, structure: .unstructured, scope: .row, amount: 0.5)
        let seq = try tinyEncoder(seed: 17)
        try seq.pruneSequentially(request, tokenizer: tok, sentences: sentences, compensate: false)
        let manual = try tinyEncoder(seed: 17)
        func blockLinears(_ e: BertEncoder, _ i: Int) -> [Linear] { Array(e.linears[(6 * i)..<(6 * i + 6)]) }
        for block in 0..<2 {
            let cal = try manual.calibrate(tokenizer: tok, sentences: sentences)
            for l in blockLinears(manual, block) { try ModelPruner.pruneRows(l.weight, amount: 0.5, importance: .wanda(cal.statistics)) }
        }
        for (a, b) in zip(seq.linears, manual.linears) { XCTAssertEqual(a.weight.mask!.kept, b.weight.mask!.kept) }
        let oneShot = try tinyEncoder(seed: 17)
        try oneShot.prune(request, calibration: oneShot.calibrate(tokenizer: tok, sentences: sentences), compensate: false)
        XCTAssertEqual(blockLinears(seq, 0).map { $0.weight.mask!.kept }, blockLinears(oneShot, 0).map { $0.weight.mask!.kept },
                       "block 0 comes from the dense statistics either way")
        XCTAssertNotEqual(blockLinears(seq, 1).map { $0.weight.mask!.kept }, blockLinears(oneShot, 1).map { $0.weight.mask!.kept },
                          "block 1 must be scored on inputs that ran through the pruned block 0")
        XCTAssertThrowsError(try tinyEncoder(seed: 17).pruneSequentially(PruningRequest(method: .wanda, structure: .heads, amount: 0.5),
                                                                          tokenizer: tok, sentences: sentences))
        XCTAssertThrowsError(try tinyEncoder(seed: 17).pruneSequentially(PruningRequest(method: .taylor, structure: .unstructured,
                                                                                        scope: .row, amount: 0.5),
                                                                          tokenizer: tok, sentences: sentences))
    }

    /// Taylor ranking removes the heads and neurons whose masks moved the embedding least, and needs
    /// a Taylor calibration.
    func testTaylorRemovesTheLeastSensitiveUnits() throws {
        let (tok, sentences) = try tinySentences(32, seed: 18)
        let e = try tinyEncoder(seed: 19)
        let headsRequest = PruningRequest(method: .taylor, structure: .heads, scope: .layer, amount: 0.5)
        XCTAssertThrowsError(try e.copy().prune(headsRequest, calibration: e.calibrate(tokenizer: tok, sentences: sentences)))
        let cal = try e.calibrate(tokenizer: tok, sentences: sentences, taylor: true, seed: 3)
        let graph = try DependencyGraph(e.model)
        let u = try XCTUnwrap(cal.unitTaylor)
        func scores(_ kind: DependencyGraph.Group.Kind) throws -> [[Float]] {
            try graph.groups.indices.filter { graph.groups[$0].kind == kind }.map { gi in
                try graph.groups[gi].units.indices.map { try u.score(group: gi, unit: $0, of: graph) }
            }
        }
        let sh = try scores(.heads), sn = try scores(.channels)
        XCTAssertTrue(sh.joined().allSatisfy { $0 > 0 } && sn.joined().allSatisfy { $0 >= 0 })
        // statistics belong to the weights they were measured on: each copy is calibrated itself
        // (same sentences and seed, so the same numbers)
        func calibratedCopy() throws -> (BertEncoder, Calibration) {
            let c = try e.copy()
            return (c, try c.calibrate(tokenizer: tok, sentences: sentences, taylor: true, seed: 3))
        }
        let (heads, headsCal) = try calibratedCopy()
        let biases = e.blocks.indices.map { e.attention($0).output.bias!.value.scalars }
        let removal = try XCTUnwrap(try heads.prune(headsRequest, calibration: headsCal))
        XCTAssertEqual(removal.removedUnits.values.reduce(0, +), 2)
        XCTAssertEqual(e.blocks.indices.map { e.attention($0).output.bias!.value.scalars }, biases, "the source encoder is left as it was")
        XCTAssertNotEqual(heads.blocks.indices.map { heads.attention($0).output.bias!.value.scalars }, biases, "compensated")
        let (neurons, neuronsCal) = try calibratedCopy()
        try neurons.prune(PruningRequest(method: .taylor, structure: .neurons, scope: .global, amount: 0.25), calibration: neuronsCal)
        XCTAssertThrowsError(try heads.prune(headsRequest, calibration: headsCal), "a calibration of the unpruned encoder does not fit the pruned one")
        XCTAssertEqual(neurons.intermediateSizes.reduce(0, +), 18)
        for i in 0..<2 {
            // the kept head is the one with the larger sensitivity: its query rows are the original's
            let keep = sh[i][0] >= sh[i][1] ? 0 : 1
            XCTAssertEqual(heads.attention(i).heads, 1)
            XCTAssertEqual(heads.attention(i).query.weight.value.scalars,
                           Array(e.attention(i).query.weight.value.scalars[(keep * 4 * 8)..<((keep + 1) * 4 * 8)]))
        }
        // exactly the six least sensitive neurons are gone, compared by their weights
        let ranked = sn.enumerated().flatMap { i, v in v.enumerated().map { (score: $0.element, layer: i, unit: $0.offset) } }
            .sorted { ($0.score, $0.layer, $0.unit) < ($1.score, $1.layer, $1.unit) }
        let removed = Set(ranked.prefix(6).map { [$0.layer, $0.unit] })
        for i in 0..<2 {
            let keep = (0..<12).filter { !removed.contains([i, $0]) }
            let w0 = e.feedForward(i).intermediate.weight.value.scalars
            XCTAssertEqual(neurons.feedForward(i).intermediate.weight.value.scalars, keep.flatMap { Array(w0[($0 * 8)..<(($0 + 1) * 8)]) },
                           "block \(i): kept neurons \(keep)")
        }
        // taylor follows the unit statistics, not the weights: statistics ordered against L1 flip the choice
        let l1 = (0..<2).map { i -> [Double] in
            let a = e.attention(i)
            return (0..<2).map { h in
                let rows = [a.query, a.key, a.value].reduce(0.0) { acc, l in
                    acc + l.weight.value.scalars[(h * 32)..<((h + 1) * 32)].reduce(0.0) { $0 + Double(abs($1)) }
                }
                return rows + (0..<8).reduce(0.0) { acc, r in
                    acc + a.output.weight.value.scalars[(r * 8 + h * 4)..<(r * 8 + h * 4 + 4)].reduce(0.0) { $0 + Double(abs($1)) }
                }
            }
        }
        let flipped = DependencyGraph.UnitTaylor()
        var batch: [String: [Double]] = [:]
        for g in graph.groups where g.kind == .heads {
            let block = g.producers[0].contains("layer.0.") ? 0 : 1
            batch[g.producers.joined(separator: ", ")] = l1[block].map { 1 / $0 } // larger L1, smaller score
        }
        flipped.add(batch: batch)
        let byTaylor = try e.copy(), byL1 = try e.copy()
        try ModelPruner.prune(byTaylor.model, headsRequest, importance: .magnitude, unitTaylor: flipped)
        try DependencyGraph(byTaylor.model).removePrunedUnits()
        try byL1.prune(PruningRequest(method: .l1, structure: .heads, scope: .layer, amount: 0.5), calibration: nil)
        for i in 0..<2 {
            let keep = l1[i][0] < l1[i][1] ? 0 : 1 // the head L1 removes
            XCTAssertEqual(byTaylor.attention(i).query.weight.value.scalars,
                           Array(e.attention(i).query.weight.value.scalars[(keep * 32)..<((keep + 1) * 32)]), "block \(i)")
            XCTAssertNotEqual(byTaylor.attention(i).query.weight.value.scalars, byL1.attention(i).query.weight.value.scalars, "block \(i)")
        }
        // weight-level taylor: in every row the pruned scores are at most the kept ones
        let w = try tinyEncoder(seed: 19)
        let wcal = try w.calibrate(tokenizer: tok, sentences: sentences, taylor: true, seed: 3)
        let ws = try w.linears.map { try wcal.weightTaylor!.scores(for: $0.weight).scalars }
        try w.prune(PruningRequest(method: .taylor, structure: .unstructured, scope: .row, amount: 0.5), calibration: wcal, compensate: false)
        for (l, sc) in zip(w.linears, ws) {
            let k = l.weight.mask!.kept
            for r in 0..<l.outFeatures {
                let row = (r * l.inFeatures)..<((r + 1) * l.inFeatures)
                XCTAssertLessThanOrEqual(row.filter { !k[$0] }.map { sc[$0] }.max() ?? 0,
                                         row.filter { k[$0] }.map { sc[$0] }.min() ?? .infinity, "row \(r)")
            }
        }
    }

    /// Masked and removed agree: heads and neurons masked by the dependency graph give the same
    /// embeddings as the smaller encoder after removal; a head whose query, key and value rows were
    /// zeroed by hand (output columns kept) emitted its value bias, which removal folds into the
    /// output bias; a state dict with a tensor too many or one missing is refused, naming it.
    func testMaskedEqualsRemovedAndValueBiasFolds() throws {
        let (tok, sentences) = try tinySentences(8, seed: 30)
        let (bids, bmask) = tok.batch(sentences)
        for structure in [PruningRequest.Structure.heads, .neurons] {
            let e = try tinyEncoder(seed: 31)
            try ModelPruner.prune(e.model, PruningRequest(method: .l1, structure: structure, scope: .global, amount: 0.5))
            let masked = try e.embed(ids: bids, mask: bmask).scalars
            let removal = try DependencyGraph(e.model).removePrunedUnits()
            XCTAssertLessThan(removal.parametersAfter, removal.parametersBefore)
            let removed = try e.embed(ids: bids, mask: bmask).scalars
            for i in masked.indices { XCTAssertEqual(removed[i], masked[i], accuracy: 1e-5, "\(structure) [\(i)]") }
        }
        let e = try tinyEncoder(seed: 32)
        let before = try e.embed(ids: bids, mask: bmask).scalars
        let a = e.attention(1)
        for l in [a.query, a.key, a.value] {
            var v = l.weight.value
            for r in 4..<8 { for c in 0..<8 { v[flat: r * 8 + c] = 0 } }
            l.weight.value = v
        }
        let zeroed = try e.embed(ids: bids, mask: bmask).scalars
        XCTAssertGreaterThan(zip(before, zeroed).map { abs($0 - $1) }.max()!, 1e-3, "the zeroed head mattered")
        let r = try DependencyGraph(e.model).removePrunedUnits()
        XCTAssertEqual(r.removedUnits.values.reduce(0, +), 1)
        XCTAssertEqual(e.heads, [2, 1])
        let after = try e.embed(ids: bids, mask: bmask).scalars
        for i in zeroed.indices { XCTAssertEqual(after[i], zeroed[i], accuracy: 1e-5, "folded value bias [\(i)]") }
        var state = e.stateDict
        state["encoder.layer.0.attention.self.extra"] = try Tensor(zeros: [2])
        XCTAssertThrowsError(try SentenceEncoderFolder.encoder(config: e.config, tensors: state, file: "x.safetensors")) {
            XCTAssertTrue("\($0)".contains("encoder.layer.0.attention.self.extra"), "\($0)")
        }
        state["encoder.layer.0.attention.self.extra"] = nil
        state["encoder.layer.1.output.dense.bias"] = nil
        XCTAssertThrowsError(try SentenceEncoderFolder.encoder(config: e.config, tensors: state, file: "x.safetensors")) {
            XCTAssertTrue("\($0)".contains("encoder.layer.1.output.dense.bias"), "\($0)")
        }
    }

    /// SparseGPT at a width where the factorisation runs in parallel (the Cholesky columns' rows
    /// and the inverse's columns split between threads): the reference's masks and weights, and the
    /// same bits for 1 and 2 threads.
    func testSparseGPTParallelFactorisation() throws {
        var rng = TestRNG(22)
        let (rows, cols, samples) = (5, 200, 400)
        let x = rng.floats(samples * cols)
        var gram = [Float](repeating: 0, count: cols * cols)
        XCTAssertEqual(pk_gram_acc_f32(Int64(samples), Int64(cols), x, Int64(cols), &gram), PK_OK)
        let w0 = rng.floats(rows * cols)
        var wr = w0, mr = [UInt8](repeating: 9, count: rows * cols)
        XCTAssertEqual(pk_ref_sparsegpt_f32(Int64(rows), Int64(cols), &wr, gram, 0.01, 0.6, 0, 0, 64, &mr), PK_OK)
        var got: [[Float]] = []
        for threads in [1, 2] {
            var w = w0, mk = [UInt8](repeating: 9, count: rows * cols)
            withThreads(threads) {
                XCTAssertEqual(pk_sparsegpt_f32(Int64(rows), Int64(cols), &w, gram, 0.01, 0.6, 0, 0, 64, &mk), PK_OK)
            }
            XCTAssertEqual(mk, mr, "masks, \(threads) threads")
            for i in 0..<(rows * cols) { XCTAssertEqual(w[i], wr[i], accuracy: 1e-3 + 1e-3 * abs(wr[i])) }
            got.append(w)
        }
        XCTAssertEqual(got[0].map(\.bitPattern), got[1].map(\.bitPattern), "1 vs 2 threads")
    }

    /// SparseGPT's kernel (Cholesky form, float) against its OBS reference (explicit inverses of
    /// trailing blocks, double): same masks, close weights, for unstructured blocks and 2:4; the
    /// Gram kernel against a direct sum; and the reconstruction beats plain masking on the
    /// calibration inputs.
    func testSparseGPTAgainstReference() throws {
        var rng = TestRNG(21)
        let (rows, cols, samples) = (6, 24, 64)
        var x = rng.floats(samples * cols)
        for r in 0..<samples { x[r * cols + 5] = 0 } // an input that never fires
        var gram = [Float](repeating: 0, count: cols * cols)
        XCTAssertEqual(pk_gram_acc_f32(Int64(samples), Int64(cols), x, Int64(cols), &gram), PK_OK)
        for (i, j) in [(0, 0), (3, 17), (23, 1), (5, 5)] {
            let want = (0..<samples).reduce(0.0) { $0 + Double(x[$1 * cols + i]) * Double(x[$1 * cols + j]) }
            XCTAssertEqual(Double(gram[i * cols + j]), want, accuracy: 1e-4)
        }
        let w0 = rng.floats(rows * cols)
        for (n, m, block, sparsity) in [(0, 0, 8, 0.5), (0, 0, 24, 0.3), (2, 4, 128, 0.0)] {
            var w = w0, wr = w0
            var mk = [UInt8](repeating: 9, count: rows * cols), mr = mk
            XCTAssertEqual(pk_sparsegpt_f32(Int64(rows), Int64(cols), &w, gram, 0.01, sparsity, Int64(n), Int64(m), Int64(block), &mk), PK_OK)
            XCTAssertEqual(pk_ref_sparsegpt_f32(Int64(rows), Int64(cols), &wr, gram, 0.01, sparsity, Int64(n), Int64(m), Int64(block), &mr), PK_OK)
            XCTAssertEqual(mk, mr, "masks, n:m \(n):\(m) block \(block)")
            for i in 0..<(rows * cols) { XCTAssertEqual(w[i], wr[i], accuracy: 1e-4 + 1e-4 * abs(wr[i])) }
            XCTAssertTrue(zip(w, mk).allSatisfy { $0.1 != 0 || $0.0 == 0 }, "pruned weights are 0")
            XCTAssertTrue(mk.enumerated().allSatisfy { $0.offset % cols != 5 || $0.element == 0 || w[$0.offset] == 0 })
            let kept = mk.reduce(0) { $0 + Int($1) }
            XCTAssertEqual(kept, m > 0 ? rows * cols / 2 : rows * (cols - Int((sparsity * Double(cols)).rounded())))
            // output error on the calibration inputs: SparseGPT's weights vs the same mask without updates
            func error(_ v: [Float]) -> Double {
                var e = 0.0
                for s in 0..<samples {
                    for r in 0..<rows {
                        var d = 0.0
                        for c in 0..<cols { d += Double(v[r * cols + c] - w0[r * cols + c]) * Double(x[s * cols + c]) }
                        e += d * d
                    }
                }
                return e
            }
            let masked = zip(w0, mk).map { $0.1 != 0 ? $0.0 : 0 }
            XCTAssertLessThan(error(w), error(masked))
        }
        var w = w0, mk = [UInt8](repeating: 0, count: rows * cols)
        XCTAssertEqual(pk_sparsegpt_f32(Int64(rows), Int64(cols), &w, gram, 0.01, 0.5, 3, 5, 8, &mk), PK_ERR_ARG) // 24 % 5 ≠ 0
        var low = [Float](repeating: 0, count: cols * cols) // four samples: rank 4, singular without dampening
        XCTAssertEqual(pk_gram_acc_f32(4, Int64(cols), x, Int64(cols), &low), PK_OK)
        XCTAssertEqual(pk_sparsegpt_f32(Int64(rows), Int64(cols), &w, low, 0, 0.5, 0, 0, 8, &mk), PK_ERR_ARG)
        XCTAssertEqual(pk_sparsegpt_f32(Int64(rows), Int64(cols), &w, low, 0.01, 0.5, 0, 0, 8, &mk), PK_OK)
        // bad arguments change nothing
        let wBefore = w, mBefore = mk
        XCTAssertEqual(pk_sparsegpt_f32(Int64(rows), Int64(cols), &w, gram, 0.01, 0.5, 2, -4, 8, &mk), PK_ERR_ARG)
        XCTAssertEqual(pk_sparsegpt_f32(Int64(rows), Int64(cols), &w, gram, 0.01, 1.5, 0, 0, 8, &mk), PK_ERR_ARG)
        XCTAssertEqual(pk_sparsegpt_f32(Int64(rows), Int64(cols), &w, gram, 0.01, 0.5, 0, 0, 0, &mk), PK_ERR_ARG)
        XCTAssertEqual(pk_sparsegpt_f32(Int64(rows), Int64(cols), &w, nil, 0.01, 0.5, 0, 0, 8, &mk), PK_ERR_NULL)
        XCTAssertEqual(pk_sparsegpt_f32(-1, Int64(cols), &w, gram, 0.01, 0.5, 0, 0, 8, &mk), PK_ERR_SHAPE)
        XCTAssertEqual(pk_sparsegpt_f32(Int64(rows), Int64(cols), &w, low, 0, 0.5, 0, 0, 8, &mk), PK_ERR_ARG)
        XCTAssertEqual(w, wBefore)
        XCTAssertEqual(mk, mBefore)
        XCTAssertEqual(pk_gram_acc_f32(-1, 3, x, 3, &low), PK_ERR_SHAPE)
        XCTAssertEqual(pk_gram_acc_f32(2, 3, x, 2, &low), PK_ERR_SHAPE)
        XCTAssertEqual(pk_col_dot_f32(2, 3, nil, x, &low), PK_ERR_NULL)
        low.withUnsafeMutableBufferPointer { p in
            XCTAssertEqual(pk_col_dot_f32(4, 3, p.baseAddress, p.baseAddress, p.baseAddress! + 2), PK_ERR_ALIAS)
        }
    }

    /// pruneSequentially with sparsegpt: half of each row pruned, kept weights moved, and the
    /// pruned encoder closer to the dense one than Wanda's on the calibration sentences.
    func testSparseGPTPruningOfTheEncoder() throws {
        let (tok, sentences) = try tinySentences(40, seed: 22)
        let dense = try tinyEncoder(seed: 23)
        func distance(_ e: BertEncoder) throws -> Double {
            let (ids, mask) = tok.batch(sentences)
            let a = try e.embed(ids: ids, mask: mask).scalars, b = try dense.embed(ids: ids, mask: mask).scalars
            return zip(a, b).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) }
        }
        let sgpt = try tinyEncoder(seed: 23), wanda = try tinyEncoder(seed: 23)
        try sgpt.pruneSequentially(PruningRequest(method: .sparsegpt, structure: .unstructured, scope: .row, amount: 0.5),
                                   tokenizer: tok, sentences: sentences, compensate: false)
        try wanda.pruneSequentially(PruningRequest(method: .wanda, structure: .unstructured, scope: .row, amount: 0.5),
                                    tokenizer: tok, sentences: sentences, compensate: false)
        for l in sgpt.linears {
            let m = try XCTUnwrap(l.weight.mask).kept
            for r in 0..<l.outFeatures { XCTAssertEqual(m[(r * l.inFeatures)..<((r + 1) * l.inFeatures)].filter { $0 }.count, l.inFeatures / 2) }
        }
        XCTAssertNotEqual(sgpt.attention(0).query.weight.value.scalars.filter { $0 != 0 },
                          dense.attention(0).query.weight.value.scalars.enumerated()
                            .filter { sgpt.attention(0).query.weight.mask!.kept[$0.offset] }.map(\.element))
        XCTAssertLessThan(try distance(sgpt), try distance(wanda))
        XCTAssertThrowsError(try dense.prune(PruningRequest(method: .sparsegpt, structure: .unstructured, scope: .row, amount: 0.5),
                                             calibration: nil))
    }
}
