/// What a calibration pass over example inputs measured, for the methods that need more than the
/// weights: Wanda (input energies), bias compensation (input means), SparseGPT (Gram matrices),
/// and Taylor importance of weights (Σ|w·∂L/∂w|) and of whole units (squared mask gradients).
public struct Calibration {
    /// Σx², Σx (and XᵀX when asked) of the inputs of every Linear and Conv2d.
    public let statistics: ActivationStatistics
    /// Σ|w·∂L/∂w| of every prunable weight (nil without a loss).
    public let weightTaylor: TaylorImportance?
    /// Squared mask gradients of the units of the model's dependency graph (nil without a loss).
    public let unitTaylor: DependencyGraph.UnitTaylor?
    /// Number of examples run through the model.
    public let samples: Int

    /// Runs `samples` examples through `model`, one call of `input(i)` each (its result is the
    /// network's input; padding never enters the statistics when each example is one sequence).
    /// With `outputGradient`, each example also runs backward from the gradient it returns for the
    /// model's output (the caller's loss), and Taylor statistics are gathered (of weights and of
    /// every unit of the dependency graph); it runs in training mode, so BatchNorm running
    /// statistics move as in a training step. The parameters' `grad` then hold the last example's
    /// gradients. Nothing else of the pass is kept.
    public static func run(_ model: Model, samples: Int, gram: Bool = false, input: (Int) throws -> Tensor,
                           outputGradient: ((Tensor, Int) throws -> Tensor)? = nil) throws -> Calibration {
        guard samples >= 1 else { throw PruneError.missingStatistics("calibration needs at least one example") }
        let stats = ActivationStatistics()
        stats.recordsGram = gram
        guard let outputGradient else {
            try stats.recording([model.network]) {
                for i in 0..<samples { _ = try model.network.forward(try input(i), training: false) }
            }
            return Calibration(statistics: stats, weightTaylor: nil, unitTaylor: nil, samples: samples)
        }
        let weights = TaylorImportance(parameters: model.prunableWeights.map(\.parameter))
        let graph = try DependencyGraph(model)
        let units = try stats.recording([model.network]) {
            try graph.measureUnitTaylor(batches: samples) { i in
                let y = try model.network.forward(try input(i), training: true)
                _ = try model.network.backward(try outputGradient(y, i), needInputGradient: false)
                try weights.accumulate()
            }
        }
        return Calibration(statistics: stats, weightTaylor: weights, unitTaylor: units, samples: samples)
    }
}

extension ModelPruner {
    /// Unstructured or N:M pruning one stage after another, in the order of Wanda's and SparseGPT's
    /// implementations: the statistics of stage i come from the calibration examples after they ran
    /// through the already pruned stages before it; then every Linear of stage i is pruned (its bias
    /// compensated when asked) and the examples move on through it. `inputs` are the examples'
    /// activations entering the first stage; `prepare(i)` runs before example i enters a stage (to
    /// set what the stage needs besides its input, e.g. a sequence context). Methods l1, wanda and
    /// sparsegpt (which also reconstructs the kept weights from the Gram matrix of each Linear's
    /// inputs, dampening 1 % of its mean diagonal; columns in blocks of 128). An error part-way
    /// leaves the stages before it pruned.
    public static func pruneSequentially(stages: [any Layer], inputs: [Tensor], prepare: (Int) throws -> Void = { _ in },
                                         request: PruningRequest, compensate: Bool = true) throws {
        var nm: (Int, Int)?
        switch request.structure {
        case .unstructured:
            guard request.scope != .global else { throw PruneError.unsupported("sequential pruning compares weights per layer or per row") }
        case let .nm(n, m): nm = (n, m)
        default: throw PruneError.unsupported("sequential pruning is for unstructured and N:M masks, not \(request.structure)")
        }
        guard [.l1, .wanda, .sparsegpt].contains(request.method) else {
            throw PruneError.unsupported("sequential pruning takes l1, wanda or sparsegpt, not \(request.method.rawValue)")
        }
        guard !inputs.isEmpty else { throw PruneError.missingStatistics("no calibration examples") }
        if case let .fraction(f) = request.amount, !(f >= 0 && f < 1) || !f.isFinite {
            throw PruneError.amountOutOfRange("fraction \(f) must be in [0, 1)")
        }
        var xs = inputs
        for stage in stages {
            let stats = ActivationStatistics()
            stats.recordsGram = request.method == .sparsegpt
            try stats.recording([stage]) {
                for (i, x) in xs.enumerated() { try prepare(i); _ = try stage.forward(x, training: false) }
            }
            var seen = Set<ObjectIdentifier>()
            let linears = stage.namedLayers.compactMap { $0.layer as? Linear }.filter { seen.insert(ObjectIdentifier($0)).inserted }
            let stageModel = Model(architecture: "stage", network: stage, inputShape: [])
            let compensated = compensate ? try CompensatedWeights(stageModel, statistics: stats) : nil
            for l in linears {
                if request.method == .sparsegpt {
                    let sparsity: Double
                    switch request.amount {
                    case let .fraction(f): sparsity = f
                    case let .count(c): sparsity = Double(c) / Double(l.weight.count)
                    }
                    let w = try Tensor(shape: l.weight.shape, scalars: l.weight.value.scalars)
                    let kept = try Kernels.sparseGPT(rows: l.outFeatures, cols: l.inFeatures, w: w.storage, gram: stats.gram(for: l.weight),
                                                     damp: 0.01, sparsity: sparsity, nm: nm)
                    l.weight.value = w
                    try l.weight.setMask(Mask(shape: l.weight.shape, kept: kept.map { $0 != 0 }))
                } else {
                    let imp: Importance = request.method == .wanda ? .wanda(stats) : .magnitude
                    if let (n, m) = nm { try Prune.nm(l.weight, n: n, m: m, importance: imp) }
                    else if request.scope == .row { try pruneRows(l.weight, amount: request.amount, importance: imp) }
                    else { try Prune.unstructured(l.weight, amount: request.amount, importance: imp) }
                }
            }
            try compensated?.apply()
            xs = try xs.enumerated().map { i, x in try prepare(i); return try stage.forward(x, training: false) }
        }
    }
}
