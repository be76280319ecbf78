import Foundation

/// Kept and pruned weights per layer and in total, the bytes they take, and the structure of the
/// pruning (how many whole units — rows, channels — are gone).
public struct SparsityReport: Codable, Sendable {
    /// Counts of one prunable weight.
    public struct Layer: Codable, Sendable {
        /// The weight's full parameter name.
        public let name: String
        /// The weight's shape.
        public let shape: [Int]
        /// Number of weights.
        public let total: Int
        /// Weights that are nonzero and not masked.
        public let kept: Int
        /// Weights masked or exactly 0: `total − kept`.
        public var pruned: Int { total - kept }
        /// `pruned / total` (0 for an empty weight).
        public var sparsity: Double { total == 0 ? 0 : Double(total - kept) / Double(total) }
        /// Output units (dim 0) with every weight pruned.
        public let unitsRemoved: Int
        /// Output units: the size of dimension 0.
        public let units: Int
        /// f32 bytes of the dense weight, and of the kept weights in a compressed (value + 32-bit index) form.
        public var denseBytes: Int { 4 * total }
        /// 8 bytes per kept weight: its f32 value and a 32-bit index.
        public var compressedBytes: Int { 8 * kept }
        /// "dense" when nothing is pruned, "structured (r/u units)" when every pruned weight lies in one of
        /// the r removed units, "unstructured" otherwise.
        public let structure: String
    }

    /// One entry per prunable weight, in the model's parameter order.
    public let layers: [Layer]
    /// Weights over all layers.
    public var total: Int { layers.reduce(0) { $0 + $1.total } }
    /// Kept weights over all layers.
    public var kept: Int { layers.reduce(0) { $0 + $1.kept } }
    /// Pruned fraction over all layers (0 when there are no weights).
    public var sparsity: Double { total == 0 ? 0 : Double(total - kept) / Double(total) }

    /// The report of a model's prunable weights (a weight counts as pruned when it is exactly 0 or masked).
    public init(model: Model) {
        layers = model.prunableWeights.map { name, p in
            let v = p.value.scalars
            let m = p.mask
            var kept = 0
            for i in 0..<v.count where v[i] != 0 && (m?[flat: i] ?? true) { kept += 1 }
            let units = p.shape.first ?? 0, per = units > 0 ? p.count / units : 0
            var removed = 0
            for u in 0..<units where !(0..<per).contains(where: { v[u * per + $0] != 0 && (m?[flat: u * per + $0] ?? true) }) { removed += 1 }
            let structure: String
            if kept == p.count { structure = "dense" }
            else if removed > 0 && kept == (units - removed) * per { structure = "structured (\(removed)/\(units) units)" }
            else { structure = "unstructured" }
            return Layer(name: name, shape: p.shape, total: p.count, kept: kept, unitsRemoved: removed, units: units,
                         structure: structure)
        }
    }

    /// A Markdown table, one row per layer and a total.
    public var table: String {
        var lines = ["| layer | shape | weights | kept | sparsity | units removed | dense bytes | compressed bytes | structure |",
                     "|---|---|---|---|---|---|---|---|---|"]
        for l in layers {
            lines.append("| \(l.name) | \(l.shape.map(String.init).joined(separator: "×")) | \(l.total) | \(l.kept) | "
                         + String(format: "%.2f%%", 100 * l.sparsity) + " | \(l.unitsRemoved)/\(l.units) | \(l.denseBytes) | "
                         + "\(l.compressedBytes) | \(l.structure) |")
        }
        lines.append("| total | | \(total) | \(kept) | " + String(format: "%.2f%%", 100 * sparsity) + " | | \(4 * total) | \(8 * kept) | |")
        return lines.joined(separator: "\n")
    }

    /// JSON-ready dictionary.
    public var dictionary: [String: Any] {
        ["total": total, "kept": kept, "sparsity": sparsity,
         "layers": layers.map { ["name": $0.name, "shape": $0.shape, "total": $0.total, "kept": $0.kept, "pruned": $0.pruned,
                                 "sparsity": $0.sparsity, "units": $0.units, "units_removed": $0.unitsRemoved,
                                 "dense_bytes": $0.denseBytes, "compressed_bytes": $0.compressedBytes,
                                 "structure": $0.structure] as [String: Any] }]
    }
}
