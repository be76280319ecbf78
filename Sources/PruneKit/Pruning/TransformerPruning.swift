/// Pruning a BERT encoder: attention heads and feed-forward neurons removed physically (the
/// Linear layers shrink), or weights masked unstructured / N:M, scored by magnitude or by Wanda
/// (|w|·‖x‖ from calibration sentences).
public enum TransformerPruner {
    public enum Structure: String, Sendable, CaseIterable { case heads, neurons, unstructured, nm24 = "2:4" }
    public enum Method: String, Sendable, CaseIterable { case l1, wanda }

    /// The prunable Linear layers of every block (query, key, value, attention output, intermediate, output).
    public static func linears(_ e: BertEncoder) -> [Linear] {
        e.layers.flatMap { [$0.query, $0.key, $0.value, $0.attentionOutput, $0.intermediate, $0.output] }
    }

    /// Records Σx² per input feature of every Linear over `sentences` (Wanda's statistics).
    public static func calibrate(_ e: BertEncoder, tokenizer: WordPieceTokenizer, sentences: [String],
                                 batch: Int = 1) throws -> ActivationStatistics {
        let stats = ActivationStatistics()
        let ls = linears(e)
        for l in ls { l.statistics = stats }
        defer { for l in ls { l.statistics = nil } }
        for start in stride(from: 0, to: sentences.count, by: batch) {
            let (ids, mask) = tokenizer.batch(Array(sentences[start..<min(start + batch, sentences.count)]))
            // one sentence per batch by default: no padding rows in the statistics
            _ = try e.embed(ids: ids, mask: mask)
        }
        return stats
    }

    /// Prunes `amount` (a fraction) of the chosen structure. Heads and neurons come back as a new,
    /// smaller encoder; unstructured and 2:4 mask the weights of `e` in place and return it.
    public static func prune(_ e: BertEncoder, structure: Structure, method: Method, amount: Double,
                             statistics: ActivationStatistics?) throws -> BertEncoder {
        guard amount >= 0, amount < 1 || structure == .nm24 else {
            throw PruneError.amountOutOfRange("fraction \(amount) must be in [0, 1)")
        }
        if method == .wanda && statistics == nil { throw PruneError.missingStatistics("wanda needs calibration sentences") }
        func scores(_ l: Linear) throws -> [Float] {
            switch method {
            case .l1: return l.weight.value.scalars.map(abs)
            case .wanda: return try statistics!.wandaScores(for: l.weight).scalars
            }
        }
        switch structure {
        case .unstructured:
            // per output row, as Wanda compares weights (the N largest of each row kept)
            for l in linears(e) {
                let keep = Int((Double(l.inFeatures) * (1 - amount)).rounded())
                let t = try Tensor(shape: l.weight.shape, scalars: scores(l))
                try Prune.nm(l.weight, n: keep, m: l.inFeatures, importance: .custom { _ in t })
            }
            return e
        case .nm24:
            for l in linears(e) {
                let t = try Tensor(shape: l.weight.shape, scalars: scores(l))
                try Prune.nm(l.weight, n: 2, m: 4, importance: .custom { _ in t })
            }
            return e
        case .heads:
            return try removeHeads(e, amount: amount, scores: scores)
        case .neurons:
            return try removeNeurons(e, amount: amount, scores: scores)
        }
    }

    /// Heads ranked over the whole encoder by the summed scores of their query, key and value rows
    /// and attention-output columns; every block keeps at least one.
    static func removeHeads(_ e: BertEncoder, amount: Double, scores: (Linear) throws -> [Float]) throws -> BertEncoder {
        let d = e.config.headDim
        var all: [(score: Double, layer: Int, head: Int)] = []
        for (i, l) in e.layers.enumerated() {
            let sq = try scores(l.query), sk = try scores(l.key), sv = try scores(l.value), so = try scores(l.attentionOutput)
            let hidden = l.query.inFeatures, width = l.heads * d
            for h in 0..<l.heads {
                var s = 0.0
                for r in (h * d)..<((h + 1) * d) {
                    for c in 0..<hidden { s += Double(sq[r * hidden + c] + sk[r * hidden + c] + sv[r * hidden + c]) }
                }
                for r in 0..<hidden { for c in (h * d)..<((h + 1) * d) { s += Double(so[r * width + c]) } }
                all.append((s, i, h))
            }
        }
        let total = all.count, drop = Int((Double(total) * amount).rounded())
        var removed = Set<[Int]>()
        var left = e.layers.map(\.heads)
        for c in all.sorted(by: { ($0.score, $0.layer, $0.head) < ($1.score, $1.layer, $1.head) }) where removed.count < drop {
            guard left[c.layer] > 1 else { continue }
            removed.insert([c.layer, c.head])
            left[c.layer] -= 1
        }
        let layers = try e.layers.enumerated().map { i, l -> BertLayer in
            let keep = (0..<l.heads).filter { !removed.contains([i, $0]) }
            let rows = keep.flatMap { h in (h * d)..<((h + 1) * d) }
            return BertLayer(query: try l.query.keepingOutputs(rows), key: try l.key.keepingOutputs(rows),
                             value: try l.value.keepingOutputs(rows), attentionOutput: try l.attentionOutput.keepingInputs(rows),
                             attentionNorm: l.attentionNorm, intermediate: l.intermediate, output: l.output,
                             outputNorm: l.outputNorm, heads: keep.count)
        }
        return e.replacingLayers(layers)
    }

    /// Feed-forward neurons of each block ranked by the summed scores of their intermediate row and
    /// output column; `amount` of each block's neurons removed.
    static func removeNeurons(_ e: BertEncoder, amount: Double, scores: (Linear) throws -> [Float]) throws -> BertEncoder {
        let layers = try e.layers.map { l -> BertLayer in
            let si = try scores(l.intermediate), so = try scores(l.output)
            let n = l.intermediate.outFeatures, hidden = l.intermediate.inFeatures
            var s = [Double](repeating: 0, count: n)
            for j in 0..<n {
                for c in 0..<hidden { s[j] += Double(si[j * hidden + c]) }
                for r in 0..<hidden { s[j] += Double(so[r * n + j]) }
            }
            let drop = min(n - 1, Int((Double(n) * amount).rounded()))
            let gone = Set((0..<n).sorted { (s[$0], $0) < (s[$1], $1) }.prefix(drop))
            let keep = (0..<n).filter { !gone.contains($0) }
            return BertLayer(query: l.query, key: l.key, value: l.value, attentionOutput: l.attentionOutput,
                             attentionNorm: l.attentionNorm, intermediate: try l.intermediate.keepingOutputs(keep),
                             output: try l.output.keepingInputs(keep), outputNorm: l.outputNorm, heads: l.heads)
        }
        return e.replacingLayers(layers)
    }
}

extension Linear {
    /// A Linear with only the given output rows (weights and biases copied; masks too).
    func keepingOutputs(_ rows: [Int]) throws -> Linear {
        let w = weight.value.scalars, m = weight.mask?.kept
        let nw = rows.flatMap { r in w[(r * inFeatures)..<((r + 1) * inFeatures)] }
        let l = try Linear(weight: Tensor(shape: [rows.count, inFeatures], scalars: nw),
                           bias: bias.map { b in try Tensor(shape: [rows.count], scalars: rows.map { b.value.scalars[$0] }) })
        if let m { try l.weight.setMask(Mask(shape: [rows.count, inFeatures], kept: rows.flatMap { r in m[(r * inFeatures)..<((r + 1) * inFeatures)] })) }
        l.execution = execution
        return l
    }

    /// A Linear reading only the given input columns.
    func keepingInputs(_ cols: [Int]) throws -> Linear {
        let w = weight.value.scalars, m = weight.mask?.kept
        let nw = (0..<outFeatures).flatMap { r in cols.map { w[r * inFeatures + $0] } }
        let l = try Linear(weight: Tensor(shape: [outFeatures, cols.count], scalars: nw), bias: bias?.value)
        if let m { try l.weight.setMask(Mask(shape: [outFeatures, cols.count], kept: (0..<outFeatures).flatMap { r in cols.map { m[r * inFeatures + $0] } })) }
        l.execution = execution
        return l
    }
}
