/// Sentences in, the general pruning machinery out: a BERT encoder is a `Model`, so its heads,
/// FFN neurons and weights are pruned by `ModelPruner` and its dependency graph like any other
/// network. These helpers only turn sentences into the encoder's inputs and pick the defaults that
/// measured best on all-MiniLM-L6-v2 (BENCHMARKS.md): bias compensation on for weights and heads,
/// off for FFN neurons (a few tokens carry very large FFN activations, so the mean is a poor
/// stand-in: half the neurons by l1 fell from 0.636 to 0.357 held-out cosine with it).
extension BertEncoder {
    /// One sentence as the network input (its own length, no padding).
    func sentenceInput(_ ids: [Int32]) throws -> Tensor {
        try input(ids: [ids], mask: [[Float](repeating: 1, count: ids.count)])
    }

    /// Calibration on `sentences`, one at a time (padding never enters the statistics).
    ///
    /// With `taylor`, each sentence also runs backward: a sentence encoder has no task loss, so
    /// the loss is a random projection L = vᵀ·e(x) of its embedding (v ~ N(0, I), a new v per
    /// sentence, from `seed`). Then E_v[(∂L/∂m)²] = ‖∂e/∂m‖², so the mean over sentences of the
    /// squared mask gradient estimates how far the embedding moves, to first order, when a head or
    /// neuron goes (the diagonal Gauss–Newton of the distillation loss around the dense model).
    public func calibrate(tokenizer: WordPieceTokenizer, sentences: [String], taylor: Bool = false,
                          seed: UInt64 = 0) throws -> Calibration {
        guard !sentences.isEmpty else { throw PruneError.missingStatistics("no calibration sentences") }
        let encoded = sentences.map(tokenizer.encode)
        var rng = SeededGenerator(seed: seed)
        defer { for l in linears { l.dropInput() }; tap.forget() }
        return try Calibration.run(model, samples: sentences.count, input: { try self.sentenceInput(encoded[$0]) },
                                   outputGradient: taylor ? { y, _ in Tensor.normal(y.shape, rng: &rng) } : nil)
    }

    /// Prunes as `request` says. Heads and neurons are chosen on the dependency graph (every block
    /// keeps at least one of each) and removed physically; unstructured, N:M and block weights are
    /// masked (blocks ranked by the L2 norm of their entries' scores).
    /// Methods: l1, random, wanda (needs `calibration`), taylor (a calibration with `taylor: true`:
    /// squared mask gradients for heads and neurons, Σ|w·∂L/∂w| for weights). `compensate` (nil:
    /// the defaults above) needs a calibration. Returns what was removed (nil for masks).
    @discardableResult
    public func prune(_ request: PruningRequest, calibration: Calibration?, compensate: Bool? = nil) throws -> DependencyGraph.Removal? {
        let units = request.structure == .heads || request.structure == .neurons
        switch request.structure {
        case .heads, .neurons, .unstructured, .nm, .block: break
        default: throw PruneError.unsupported("a BERT encoder prunes heads, neurons, unstructured, N:M or block weights, not \(request.structure)")
        }
        if compensate == true && calibration == nil { throw PruneError.missingStatistics("bias compensation needs a calibration") }
        let compensation = (compensate ?? (request.structure != .neurons)) ? calibration?.statistics : nil
        var importance: Importance?
        var unitTaylor: DependencyGraph.UnitTaylor?
        switch request.method {
        case .wanda:
            guard let c = calibration else { throw PruneError.missingStatistics("wanda needs calibration sentences") }
            importance = .wanda(c.statistics)
        case .taylor:
            guard let t = calibration?.weightTaylor, let u = calibration?.unitTaylor else {
                throw PruneError.missingStatistics("taylor needs a calibration with taylor: true")
            }
            importance = .taylor(t)
            unitTaylor = units ? u : nil
        default: break
        }
        try ModelPruner.prune(model, request, importance: importance, unitTaylor: unitTaylor, compensation: compensation)
        return units ? try DependencyGraph(model).removePrunedUnits() : nil
    }

    /// Unstructured (per output row, as Wanda) or N:M pruning block by block (see
    /// `ModelPruner.pruneSequentially`): the statistics of block i come from the sentences after
    /// they ran through the already pruned blocks before it. Methods l1, wanda, sparsegpt.
    public func pruneSequentially(_ request: PruningRequest, tokenizer: WordPieceTokenizer, sentences: [String],
                                  compensate: Bool = true) throws {
        guard !sentences.isEmpty else { throw PruneError.missingStatistics("no calibration sentences") }
        let encoded = sentences.map(tokenizer.encode)
        // sentences of one token count go through together (no padding, so the statistics are those
        // of the sentences one by one, summed in another order), up to 64 at a time
        let byLength = Dictionary(grouping: encoded.indices, by: { encoded[$0].count })
        let groups = byLength.keys.sorted().flatMap { len -> [[Int]] in
            let idx = byLength[len]!
            return stride(from: 0, to: idx.count, by: 64).map { Array(idx[$0..<min($0 + 64, idx.count)]) }
        }
        let rows = try groups.map { g -> Tensor in
            let ids = g.map { encoded[$0] }
            return try embeddings.forward(try input(ids: ids, mask: ids.map { [Float](repeating: 1, count: $0.count) }), training: false)
        }
        try ModelPruner.pruneSequentially(stages: blocks, inputs: rows, prepare: { i in
            try self.context.set(batch: groups[i].count, length: encoded[groups[i][0]].count, mask: nil)
        }, request: request, compensate: compensate)
    }
}
