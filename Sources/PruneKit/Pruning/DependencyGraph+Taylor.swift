extension DependencyGraph {
    /// Taylor importance of whole units (Molchanov et al., 2019): put a mask m (= 1) on a unit's
    /// activation where its readers take it in; ∂L/∂m = Σ x·∂L/∂x over the unit's input columns of
    /// every reader (a head: its d columns of the output projection; an FFN neuron: its column of the
    /// second Linear), summed over the batch's rows. (∂L/∂m)² estimates, to second order, how much
    /// the loss moves when the unit goes; its mean over calibration batches is the unit's score.
    public final class UnitTaylor {
        /// Per group (keyed by its producers), per unit: Σ over batches of (∂L/∂m)².
        var sums: [String: [Double]] = [:]
        /// Number of batches measured; scores are means over them.
        public private(set) var batches = 0

        func add(batch: [String: [Double]]) {
            for (key, g) in batch {
                var s = sums[key] ?? [Double](repeating: 0, count: g.count)
                for i in g.indices { s[i] += g[i] * g[i] }
                sums[key] = s
            }
            batches += 1
        }

        /// The mean squared mask gradient of unit `k` of group `gi` of `graph`.
        func score(group gi: Int, unit k: Int, of graph: DependencyGraph) throws -> Float {
            let key = graph.groups[gi].producers.joined(separator: ", ")
            guard batches > 0, let s = sums[key], k < s.count, s.count == graph.groups[gi].units.count else {
                throw PruneError.missingStatistics("no unit Taylor statistics for the group of \(key) (measured on another model?)")
            }
            return Float(s[k] / Double(batches))
        }
    }

    /// Measures `UnitTaylor` over `batches` calls of `pass(i)`, each of which must run one forward
    /// pass in training mode and one backward pass of the model (the caller picks the loss).
    /// Hooks on the Linear and Conv2d layers that read the units (of `kind`, or all) record
    /// Σ x·∂L/∂x per input column or channel; they are removed afterwards, on error too.
    public func measureUnitTaylor(batches: Int, kind: Group.Kind? = nil, pass: (Int) throws -> Void) throws -> UnitTaylor {
        guard batches >= 1 else { throw PruneError.missingStatistics("unit Taylor needs at least one batch") }
        var owners: [ObjectIdentifier: any Layer] = linearOwners()
        for n in nodes { if let c = n.layer as? Conv2d { owners[ObjectIdentifier(c.weight)] = c } }
        let selected = groups.indices.filter { kind == nil || groups[$0].kind == kind }
        var readers: [ObjectIdentifier: any Layer] = [:]
        var columns: [(gi: Int, slices: [[(ObjectIdentifier, Int, Int)]])] = []
        for gi in selected {
            var perUnit: [[(ObjectIdentifier, Int, Int)]] = []
            for u in groups[gi].units {
                var cols: [(ObjectIdentifier, Int, Int)] = []
                for case let .columns(w, first, n) in slices(of: u) {
                    guard let l = owners[ObjectIdentifier(w)] else {
                        throw PruneError.unsupported("unit Taylor: a reader of the group of \(groups[gi].producers.joined(separator: ", ")) "
                                                     + "is neither a Linear nor a Conv2d")
                    }
                    readers[ObjectIdentifier(w)] = l
                    cols.append((ObjectIdentifier(w), first, n))
                }
                perUnit.append(cols)
            }
            columns.append((gi, perUnit))
        }
        var inputs: [ObjectIdentifier: Tensor] = [:], dots: [ObjectIdentifier: [Double]] = [:]
        var handles: [HookHandle] = [], backHandles: [HookHandle] = []
        defer { for h in handles { h.remove() }; for h in backHandles { h.remove() } }
        for (key, l) in readers {
            handles.append(try l.addForwardHook { x, _ in inputs[key] = x })
            backHandles.append(try l.addBackwardHook { _, dx in
                guard let x = inputs[key] else { throw PruneError.missingStatistics("unit Taylor: a backward pass without its forward") }
                // per input column (rows × features) or channel (N × C × H·W)
                let d = try Kernels.channelDots(n: x.shape[0], c: x.shape[1], s: x.count / max(x.shape[0] * x.shape[1], 1),
                                                a: x.storage, b: dx.storage)
                var acc = dots[key] ?? [Double](repeating: 0, count: d.count)
                for i in d.indices { acc[i] += Double(d[i]) }
                dots[key] = acc
            })
        }
        let result = UnitTaylor()
        for b in 0..<batches {
            dots = [:]
            try pass(b)
            var batch: [String: [Double]] = [:]
            for (gi, perUnit) in columns {
                batch[groups[gi].producers.joined(separator: ", ")] = try perUnit.map { cols in
                    try cols.reduce(0.0) { acc, c in
                        guard let d = dots[c.0] else { throw PruneError.missingStatistics("unit Taylor: the pass ran no backward through a reader") }
                        return acc + d[c.1..<(c.1 + c.2)].reduce(0, +)
                    }
                }
            }
            result.add(batch: batch)
            inputs = [:]
        }
        return result
    }
}
