/// What to prune in a whole model: the importance, the structure, the scope and the amount.
public struct PruningRequest: Sendable, Equatable {
    /// `sparsegpt` also updates the kept weights (it runs block by block: `pruneSequentially`).
    public enum Method: String, Sendable, CaseIterable {
        /// `l1`: |w|; `random`: uniform scores from `seed`; `taylor`: |w·∂L/∂w| over training batches
        /// (or whole units' mask gradients); `wanda`: |w|·‖x‖₂ over a calibration pass; `sparsegpt`:
        /// SparseGPT, through `ModelPruner.pruneSequentially` only.
        case l1, random, taylor, wanda, sparsegpt
    }
    /// What is pruned: single weights, whole units (neurons, channels, heads), or N:M or block patterns.
    public enum Structure: Sendable, Equatable, CustomStringConvertible {
        /// single weights
        case unstructured
        /// output neurons of hidden Linear layers (rows), never the classifier's outputs
        case neurons
        /// output channels (filters) of Conv2d layers
        case channels
        /// attention heads (their query, key and value rows and output-projection columns)
        case heads
        /// at most N nonzeros in every M consecutive weights along the input dimension
        case nm(Int, Int)
        /// blocks of rows × cols weights
        case block(Int, Int)

        public var description: String {
            switch self {
            case .unstructured: return "unstructured"
            case .neurons: return "neurons"
            case .channels: return "channels"
            case .heads: return "heads"
            case let .nm(n, m): return "\(n):\(m)"
            case let .block(r, c): return "block \(r)x\(c)"
            }
        }

        /// Parses "unstructured", "neurons", "channels", "N:M" (e.g. "2:4") or "block" / "RxC" /
        /// "block:RxC" blocks.
        public init(parsing s: String) throws {
            switch s.lowercased() {
            case "unstructured": self = .unstructured
            case "neurons": self = .neurons
            case "channels", "filters": self = .channels
            case "heads": self = .heads
            case "block": self = .block(4, 1)
            default:
                let nm = s.split(separator: ":").compactMap { Int($0) }
                if nm.count == 2 { self = .nm(nm[0], nm[1]); return }
                let b = s.lowercased().replacingOccurrences(of: "block:", with: "").replacingOccurrences(of: "block", with: "").split(separator: "x").compactMap { Int($0) }
                if b.count == 2 { self = .block(b[0], b[1]); return }
                throw PruneError.invalidPattern("unknown structure '\(s)' (unstructured, neurons, channels, heads, N:M, block or RxC)")
            }
        }
    }
    /// Where pruned entries compete: within each layer (or group of coupled units), across the
    /// whole model, or (unstructured only) within each output row, as Wanda compares weights.
    public enum Scope: String, Sendable, CaseIterable {
        /// `layer`: each layer (or group of coupled units) loses `amount` of its own; `global`: one ranking
        /// across the model; `row`: each output row of each weight loses `amount` (unstructured only).
        case layer, global, row
    }

    /// The importance that ranks the entries (or units); the least important go first.
    public var method: Method
    /// What is removed: single weights, whole units or a pattern.
    public var structure: Structure
    /// Which entries compete with each other: per layer, across the model, or per output row.
    public var scope: Scope
    /// A fraction or count of the entries (or units) still unpruned, in each comparison group of `scope`.
    public var amount: Amount
    /// Seed of the `random` method's scores (unused by the other methods).
    public var seed: UInt64

    /// Defaults: l1, unstructured, global scope, seed 0. Nothing is checked until a pruner runs.
    public init(method: Method = .l1, structure: Structure = .unstructured, scope: Scope = .global,
                amount: Amount, seed: UInt64 = 0) {
        self.method = method
        self.structure = structure
        self.scope = scope
        self.amount = amount
        self.seed = seed
    }
}

extension Model {
    /// The weights pruning considers: every Linear and Conv2d weight.
    public var prunableWeights: [(name: String, parameter: Parameter)] {
        namedParameters.filter { $0.parameter.isPrunable }
    }

    /// Whether the network is one Sequential of leaf layers without BatchNorm (the MLP and CNN
    /// shapes whose unit pruning and surgery predate dependency graphs).
    public var isFlat: Bool {
        guard let s = network as? Sequential else { return false }
        return s.children.allSatisfy { $0.layer.children.isEmpty && !($0.layer is BatchNorm) && !($0.layer is MergeLayer) }
    }

    /// Masks the exact zeros of every prunable weight that has no mask yet (a pruned model saved as
    /// plain weights), so fine-tuning keeps them at zero. Returns how many weights it masked.
    @discardableResult
    public func maskZeroWeights() throws -> Int {
        var masked = 0
        for (_, p) in prunableWeights where p.mask == nil {
            let kept = p.value.scalars.map { $0 != 0 }
            let zeros = kept.filter { !$0 }.count
            if zeros > 0 { try p.setMask(Mask(shape: p.shape, kept: kept)); masked += zeros }
        }
        return masked
    }

    /// Fraction of the prunable weights that are zero.
    public var sparsity: Double {
        let ws = prunableWeights.map(\.parameter)
        let total = ws.reduce(0) { $0 + $1.count }
        guard total > 0 else { return 0 }
        let zeros = ws.reduce(0) { $0 + $1.value.scalars.filter { $0 == 0 }.count }
        return Double(zeros) / Double(total)
    }
}

/// Applies a `PruningRequest` to a model.
public enum ModelPruner {
    /// Prunes `model` as requested. `importance` supplies Taylor or Wanda statistics when the method
    /// needs them; `unitTaylor` (from `DependencyGraph.measureUnitTaylor`) makes taylor rank whole
    /// units (heads, neurons, channels of graphs) by their mask gradients instead of weight scores.
    /// With `compensation` (calibration input means), every Linear whose weights or input units are
    /// pruned takes their mean contribution into its bias. Every check runs before the first mask
    /// changes.
    public static func prune(_ model: Model, _ request: PruningRequest, importance: Importance? = nil,
                             unitTaylor: DependencyGraph.UnitTaylor? = nil, compensation: ActivationStatistics? = nil) throws {
        let imp: Importance
        switch request.method {
        case .l1: imp = .magnitude
        case .random: imp = .random(seed: request.seed)
        case .sparsegpt:
            throw PruneError.unsupported("sparsegpt prunes unstructured or N:M weights block by block: use ModelPruner.pruneSequentially")
        case .taylor where unitTaylor != nil && [.neurons, .channels, .heads].contains(request.structure) && !model.isFlat:
            imp = .magnitude // unused: the units are ranked by the unit statistics
        case .taylor, .wanda:
            guard let i = importance else {
                throw PruneError.missingStatistics("method \(request.method.rawValue) needs \(request.method == .taylor ? "gradients from training batches" : "a calibration pass")")
            }
            // another importance would prune by its own scores under this method's label (e.g. L1 as "taylor")
            guard i.name == request.method.rawValue else {
                throw PruneError.missingStatistics("method \(request.method.rawValue) needs \(request.method.rawValue) importance "
                                                   + "(Importance.\(request.method.rawValue)(...)), got \(i.name) importance")
            }
            imp = i
        }
        let weights = model.prunableWeights.map(\.parameter)
        if request.scope == .row, request.structure != .unstructured {
            throw PruneError.unsupported("scope row is for unstructured pruning (\(request.structure) is pruned per layer or globally)")
        }
        var weightsOnly = false
        switch request.structure {
        case .unstructured, .nm, .block: weightsOnly = true
        case .neurons where model.isFlat, .channels where model.isFlat:
            if compensation != nil { throw PruneError.unsupported("bias compensation is for unstructured, N:M, block and graph unit pruning") }
        default: break
        }
        let compensated = weightsOnly ? try compensation.map { try CompensatedWeights(model, statistics: $0) } : nil
        switch request.structure {
        case .unstructured:
            switch request.scope {
            case .global: try Prune.globalUnstructured(weights, amount: request.amount, importance: imp)
            case .layer: try forEachLayer(weights) { try Prune.unstructured($0, amount: request.amount, importance: imp) }
            case .row: try forEachLayer(weights) { try pruneRows($0, amount: request.amount, importance: imp) }
            }
            try compensated?.apply()
        case let .nm(n, m):
            guard request.method != .random else { throw PruneError.unsupported("random N:M") }
            try forEachLayer(weights) { try Prune.nm($0, n: n, m: m, importance: imp) }
            try compensated?.apply()
        case let .block(r, c):
            if request.scope == .global { try Prune.block(weights, blockRows: r, blockCols: c, amount: request.amount, importance: imp) }
            else { try forEachLayer(weights) { try Prune.block([$0], blockRows: r, blockCols: c, amount: request.amount, importance: imp) } }
            try compensated?.apply()
        case .neurons where !model.isFlat, .channels where !model.isFlat, .heads:
            // graphs (residual joins, BatchNorm, concat, attention): coupled units, pruned by the
            // dependency graph
            let dg = try DependencyGraph(model)
            let unitImportance: DependencyGraph.UnitImportance
            switch request.method {
            case .l1: unitImportance = .magnitude(p: 1)
            case .random: unitImportance = .random(seed: request.seed)
            case .taylor: unitImportance = unitTaylor.map { .unitTaylor($0) } ?? .scores(imp)
            case .wanda: unitImportance = .scores(imp)
            case .sparsegpt: throw PruneError.unsupported("sparsegpt prunes weights, not units")
            }
            try dg.prune(amount: request.amount, importance: unitImportance, scope: request.scope,
                         kind: request.structure == .heads ? .heads : .channels, compensation: compensation)
        case .neurons, .channels:
            let units = structuredUnits(model, request.structure)
            guard !units.isEmpty else {
                throw PruneError.unsupported("\(request.structure) pruning: the model has no \(request.structure == .neurons ? "hidden Linear layer" : "Conv2d layer")")
            }
            try pruneUnits(units, request: request, importance: imp)
        }
    }

    /// Each output row of `p` (a weight row with all its kernel taps) loses `amount` of its kept
    /// entries, the lowest scores first (Wanda's comparison group).
    static func pruneRows(_ p: Parameter, amount: Amount, importance: Importance) throws {
        let per = p.count / p.shape[0]
        let drop = try amount.count(of: per)
        let scores = try importance.scores(p, 0) ?? p.value
        let abs = importance.useAbs || importance.name == "l1"
        let t = try Tensor(shape: p.shape, scalars: abs ? scores.scalars.map { Swift.abs($0) } : scores.scalars)
        try Prune.nm(p, n: per - drop, m: per, importance: .custom { _ in t })
    }

    /// Per-layer application with all-or-nothing semantics: masks are restored if a layer fails.
    static func forEachLayer(_ weights: [Parameter], _ body: (Parameter) throws -> Void) throws {
        let saved = weights.map { ($0.mask, $0.value) }
        do { for p in weights { try body(p) } } catch {
            for (p, s) in zip(weights, saved) {
                p.removeMask()
                try? p.assign(s.1)
                if let m = s.0 { try? p.setMask(m) }
            }
            throw error
        }
    }

    /// Weights whose output units (dim 0) a structure prunes: hidden Linear layers for neurons
    /// (the last Linear produces the logits), Conv2d layers for channels.
    static func structuredUnits(_ model: Model, _ s: PruningRequest.Structure) -> [Parameter] {
        let layers = model.network.namedLayers.map(\.layer)
        if s == .channels { return layers.compactMap { ($0 as? Conv2d)?.weight } }
        let linears = layers.compactMap { $0 as? Linear }
        return linears.dropLast().map(\.weight)
    }

    static func pruneUnits(_ weights: [Parameter], request: PruningRequest, importance: Importance) throws {
        // unit score: mean importance of the unit's kept weights (comparable across layers)
        var scores: [FloatStorage] = [], alive: [ByteStorage] = []
        for (i, p) in weights.enumerated() {
            let units = p.shape[0], per = p.count / units
            let s: [Float]
            if request.method == .random {
                var g = SeededGenerator(seed: request.seed &+ UInt64(i))
                s = (0..<units).map { _ in g.nextUnitFloat() }
            } else if let t = try importance.scores(p, i) {
                guard t.isFinite else { throw PruneError.nonFiniteScores("\(importance.name) scores") }
                s = try Kernels.unitNorms(a: 1, d: units, b: per, p: 1, x: t.storage, mask: p.maskStorage).map { $0 / Float(per) }
            } else {
                guard p.value.isFinite else { throw PruneError.nonFiniteScores("weights of shape \(p.shape)") }
                s = try Kernels.unitNorms(a: 1, d: units, b: per, p: 1, x: p.value.storage, mask: p.maskStorage).map { $0 / Float(per) }
            }
            let m = p.effectiveMask
            let a = ByteStorage(count: units)
            for u in 0..<units where (0..<per).contains(where: { m[flat: u * per + $0] }) { a[u] = 1 }
            scores.append(FloatStorage(s))
            alive.append(a)
        }
        if request.scope == .global {
            let remaining = try alive.reduce(0) { $0 + (try Kernels.countNonzero($1)) }
            _ = try Prune.select(scores: scores, masks: alive, useAbs: false, k: try request.amount.count(of: remaining),
                                 what: "unit scores")
        } else {
            let ks = try alive.map { try request.amount.count(of: try Kernels.countNonzero($0)) }
            for (i, k) in ks.enumerated() {
                _ = try Prune.select(scores: [scores[i]], masks: [alive[i]], useAbs: false, k: k, what: "unit scores")
            }
        }
        for (p, a) in zip(weights, alive) {
            let per = p.count / p.shape[0], old = p.effectiveMask
            let out = ByteStorage(count: p.count)
            out.update { i, _ in old[flat: i] && a[i / per] != 0 ? 1 : 0 }
            try p.setMask(Mask(shape: p.shape, storage: out))
        }
    }
}

/// Bias compensation of unstructured and N:M pruning: the weights of every Linear with a bias as
/// they were before pruning; `apply` then adds Σ_c (before − after)[r, c]·mean(x_c) to each bias,
/// so each layer's mean output over the calibration rows is what it was.
struct CompensatedWeights {
    let layers: [(Linear, [Float], [Float])] // layer, weights before, input means

    init(_ model: Model, statistics: ActivationStatistics) throws {
        var seen = Set<ObjectIdentifier>()
        layers = try model.network.namedLayers.compactMap { _, layer -> (Linear, [Float], [Float])? in
            guard let l = layer as? Linear, l.bias != nil, seen.insert(ObjectIdentifier(l)).inserted else { return nil }
            return (l, l.weight.value.scalars, try statistics.inputMeans(for: l.weight))
        }
    }

    func apply() throws {
        for (l, before, mu) in layers {
            let after = l.weight.value.scalars, n = l.inFeatures
            var b = l.bias!.value.scalars
            for r in 0..<l.outFeatures {
                var s = 0.0
                for c in 0..<n where before[r * n + c] != after[r * n + c] {
                    s += (Double(before[r * n + c]) - Double(after[r * n + c])) * Double(mu[c])
                }
                b[r] += Float(s)
            }
            try l.bias!.assign(Tensor(shape: [l.outFeatures], scalars: b))
        }
    }
}
