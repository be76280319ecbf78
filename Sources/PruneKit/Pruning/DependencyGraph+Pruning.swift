extension DependencyGraph {
    // MARK: importance

    /// How a unit's importance is measured over the weights it owns in its group.
    public enum UnitImportance {
        /// Σ|w| (p = 1) or Σw² (p = 2) over the unit's producer rows and consumer columns and the
        /// scales γ of its BatchNorms, divided by the number of values summed (comparable across
        /// groups). Within a group this ranks units as Torch-Pruning's `MagnitudeImportance` does
        /// (its group mean counts BatchNorm weights as members).
        case magnitude(p: Int)
        /// Σ|γ| of the BatchNorms in the unit (network slimming).
        case batchNormScale
        /// Σ |w·∂L/∂w| over the unit's rows and columns, from accumulated Taylor statistics.
        case taylor(TaylorImportance)
        /// Uniform random scores.
        case random(seed: UInt64)
        /// The mean |score| of an `Importance` (Taylor, Wanda, custom) over the unit's weights.
        case scores(Importance)
        /// The mean over calibration batches of the squared gradient of a mask on the unit's
        /// activation (Molchanov et al.'s Taylor criterion on units; see `measureUnitTaylor`).
        case unitTaylor(UnitTaylor)
    }

    /// Row and column sums (Σ|s| or Σs² over kept entries) of one weight's scores, each computed
    /// once by the unit-norm kernel, so scoring a unit reads a few numbers instead of its weights.
    final class SliceSums {
        let importance: UnitImportance
        private var sums: [ObjectIdentifier: (rows: [Float], cols: [Float])] = [:]
        init(_ importance: UnitImportance) { self.importance = importance }

        func of(_ w: Parameter) throws -> (rows: [Float], cols: [Float]) {
            if let s = sums[ObjectIdentifier(w)] { return s }
            let scores: Tensor
            var q = 1.0
            switch importance {
            case let .taylor(t): scores = try t.scores(for: w)
            case let .scores(imp): scores = try imp.scores(w, 0) ?? w.value
            case let .magnitude(p): scores = w.value; q = p == 2 ? 2 : 1
            default: scores = w.value
            }
            let rows = w.shape[0], k2 = w.shape.count == 4 ? w.shape[2] * w.shape[3] : 1, cols = w.count / rows / k2
            func norms(_ a: Int, _ d: Int, _ b: Int) throws -> [Float] {
                do {
                    let n = try Kernels.unitNorms(a: a, d: d, b: b, p: q, x: scores.storage, mask: w.maskStorage)
                    return q == 2 ? n.map { $0 * $0 } : n
                } catch Kernels.SelectionFailure.nonFinite { throw PruneError.nonFiniteScores("unit scores") }
            }
            let s = (rows: try norms(1, rows, cols * k2), cols: try norms(rows, cols, k2))
            sums[ObjectIdentifier(w)] = s
            return s
        }
    }

    /// The scales γ of the BatchNorms whose outputs carry `unit` (one per BatchNorm, at the unit's channel).
    func batchNormScales(of unit: Unit) -> [Float] {
        var out: [Float] = []
        for (v, c) in unit.elements {
            for k in batchNormsAt[v] ?? [] { if let w = (nodes[k].layer as? BatchNorm)?.weight { out.append(w.value[flat: c]) } }
        }
        return out
    }

    func score(_ unit: Unit, _ importance: UnitImportance, index: Int, groupIndex: Int, unitIndex: Int, sums: SliceSums) throws -> Float {
        switch importance {
        case .random(let seed):
            var g = SeededGenerator(seed: seed &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15)
            return g.nextUnitFloat()
        case .batchNormScale:
            return batchNormScales(of: unit).reduce(0) { $0 + abs($1) }
        case let .unitTaylor(t):
            return try t.score(group: groupIndex, unit: unitIndex, of: self)
        case .magnitude, .taylor, .scores:
            var sum = 0.0, count = 0
            for slice in slices(of: unit) {
                switch slice {
                case let .rows(w, first, n):
                    let r = try sums.of(w).rows
                    for c in first..<(first + n) { sum += Double(r[c]) }
                    count += n * (w.count / w.shape[0])
                case let .columns(w, first, n):
                    let cs = try sums.of(w).cols
                    for c in first..<(first + n) { sum += Double(cs[c]) }
                    count += n * w.shape[0] * (w.shape.count == 4 ? w.shape[2] * w.shape[3] : 1) // rows × kernel taps
                }
            }
            if case let .magnitude(p) = importance {
                for g in batchNormScales(of: unit).map({ Double(abs($0)) }) {
                    sum += p == 2 ? g * g : g
                    count += 1
                }
            }
            guard sum.isFinite else { throw PruneError.nonFiniteScores("unit scores") }
            return Float(sum / Double(max(count, 1)))
        }
    }

    // MARK: pruning

    /// Masks `amount` of the alive units of every group (scope .layer: the same fraction in every
    /// group, counted with the pinned rounding; .global: one threshold over all units, no group
    /// losing more than `maxRatio` of its alive units). A unit's producer rows and consumer columns
    /// are masked together, so the masked model computes exactly what the smaller model of
    /// `removePrunedUnits` computes. Ties go to the lower unit index. Throws, changing nothing,
    /// when a group would lose every unit.
    ///
    /// `kind` limits pruning to channel groups or to attention heads (nil: every group). With
    /// `compensation` (input means of the Linear layers, from calibration), each Linear that loses
    /// input columns takes their mean contribution into its bias: Σ over removed c of W[r, c]·mean(x_c)
    /// (bias compensation; consumers that are convolutions are refused).
    public func prune(amount: Amount, importance: UnitImportance = .magnitude(p: 1), scope: PruningRequest.Scope = .layer,
                      maxRatio: Double = 1, kind: Group.Kind? = nil, compensation: ActivationStatistics? = nil) throws {
        guard maxRatio > 0, maxRatio <= 1 else { throw PruneError.amountOutOfRange("maximum ratio \(maxRatio) is not in (0, 1]") }
        guard scope != .row else { throw PruneError.unsupported("scope row is for unstructured weights; units are pruned per layer or globally") }
        let selected = groups.indices.filter { kind == nil || groups[$0].kind == kind }
        guard !selected.isEmpty else {
            throw PruneError.unsupported("the model has no \(kind == .heads ? "attention heads" : "prunable channel groups")")
        }
        var scoreStorages: [FloatStorage] = [], alive: [ByteStorage] = []
        var index = 0
        let sums = SliceSums(importance), rows = try keptRowCounts()
        for (gi, g) in groups.enumerated() {
            let s = FloatStorage(count: g.units.count), a = ByteStorage(count: g.units.count)
            for (k, u) in g.units.enumerated() {
                s[k] = selected.contains(gi) ? try score(u, importance, index: index, groupIndex: gi, unitIndex: k, sums: sums) : 0
                a[k] = isAlive(u, rows: rows) ? 1 : 0
                index += 1
            }
            scoreStorages.append(s)
            alive.append(a)
        }
        let before = alive.map { $0.copy() }
        if scope == .layer {
            for gi in selected {
                let g = groups[gi]
                let n = try Kernels.countNonzero(alive[gi])
                let k = try amount.count(of: n)
                if k >= n && n > 0 {
                    throw PruneError.amountOutOfRange("\(amount) would remove every channel of the group of \(g.producers.joined(separator: ", "))")
                }
                _ = try Prune.select(scores: [scoreStorages[gi]], masks: [alive[gi]], useAbs: false, k: k, what: "unit scores")
            }
        } else {
            // one threshold over all groups; a group that would lose more than its cap (and at least
            // one unit is always kept) is fixed at the cap and leaves the pool, the rest is selected
            // again among the others, until no group is over
            let total = try selected.reduce(0) { $0 + (try Kernels.countNonzero(alive[$1])) }
            var k = try amount.count(of: total)
            let caps = try before.map { a -> Int in
                let n = try Kernels.countNonzero(a)
                return min(Int((maxRatio * Double(n)).rounded(.down)), max(n - 1, 0))
            }
            var pool = Set(selected)
            while true {
                let ids = pool.sorted()
                let trial = ids.map { before[$0].copy() }
                let available = ids.reduce(0) { $0 + caps[$1] }
                guard k <= available else {
                    throw PruneError.amountOutOfRange("global \(amount) needs \(k) units, more than the \(available) the groups can give "
                                                      + "(maximum ratio \(maxRatio), one unit kept per group)")
                }
                _ = try Prune.select(scores: ids.map { scoreStorages[$0] }, masks: trial, useAbs: false, k: k, what: "unit scores")
                let over = try zip(ids, trial).filter { gi, t in try Kernels.countNonzero(before[gi]) - Kernels.countNonzero(t) > caps[gi] }
                if over.isEmpty {
                    for (gi, t) in zip(ids, trial) { alive[gi] = t }
                    break
                }
                for (gi, _) in over {
                    let fixed = before[gi].copy()
                    _ = try Prune.select(scores: [scoreStorages[gi]], masks: [fixed], useAbs: false, k: caps[gi], what: "unit scores")
                    alive[gi] = fixed
                    k -= caps[gi]
                    pool.remove(gi)
                }
            }
        }
        // masks: rows and columns of every newly pruned unit; the bias shifts of compensation are
        // computed first, from the weights as they are (all checks are done: nothing throws below
        // except a shape error that cannot happen)
        var newMasks: [ObjectIdentifier: (Parameter, [Bool])] = [:]
        var removedColumns: [ObjectIdentifier: (Parameter, [Int])] = [:]
        for (gi, g) in groups.enumerated() {
            for (k, u) in g.units.enumerated() where before[gi][k] != 0 && alive[gi][k] == 0 {
                for slice in slices(of: u) {
                    if case let .columns(w, first, n) = slice { removedColumns[ObjectIdentifier(w), default: (w, [])].1 += first..<(first + n) }
                    let (p, idx) = Self.indices(slice)
                    var m = newMasks[ObjectIdentifier(p)]?.1 ?? p.effectiveMask.kept
                    for i in idx { m[i] = false }
                    newMasks[ObjectIdentifier(p)] = (p, m)
                }
            }
        }
        var biasShifts: [(Parameter, Tensor)] = []
        if let compensation {
            let owners = linearOwners()
            for (key, (w, cols)) in removedColumns {
                guard let l = owners[key] else {
                    throw PruneError.unsupported("bias compensation: a convolution reads removed channels (only Linear consumers are compensated)")
                }
                guard let bias = l.bias else { continue }
                let mu = try compensation.inputMeans(for: w), v = w.value.scalars, n = l.inFeatures
                var b = bias.value.scalars
                for r in 0..<l.outFeatures {
                    var sum = 0.0
                    for c in cols { sum += Double(v[r * n + c]) * Double(mu[c]) }
                    b[r] += Float(sum)
                }
                biasShifts.append((bias, try Tensor(shape: [l.outFeatures], scalars: b)))
            }
        }
        for (_, (p, m)) in newMasks { try p.setMask(Mask(shape: p.shape, kept: m)) }
        for (b, v) in biasShifts { try b.assign(v) }
    }

    /// Every Linear of the graph (attention projections included), by its weight.
    func linearOwners() -> [ObjectIdentifier: Linear] {
        var out: [ObjectIdentifier: Linear] = [:]
        for n in nodes {
            if let l = n.layer as? Linear { out[ObjectIdentifier(l.weight)] = l }
            if let a = n.layer as? MultiHeadAttention { for l in [a.query, a.key, a.value, a.output] { out[ObjectIdentifier(l.weight)] = l } }
        }
        return out
    }
}
