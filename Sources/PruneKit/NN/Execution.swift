/// How a layer executes its (pruned) weight.
public enum Execution: Sendable, Equatable, CustomStringConvertible {
    /// Sparse when the weight's kept fraction is at or below `SparseCrossover.density`.
    case automatic
    /// Dense storage and the dense-masked GEMM.
    case dense
    /// Compressed storage (kept entries only) and the sparse kernels.
    case sparse

    public var description: String {
        switch self {
        case .automatic: return "automatic"
        case .dense: return "dense"
        case .sparse: return "sparse"
        }
    }

    /// Puts `weight` in the form this setting asks for; its compressed form when that is sparse.
    func prepare(_ weight: Parameter) throws -> SparseMatrix? {
        let sparse: Bool
        switch self {
        case .dense: sparse = false
        case .sparse: sparse = true
        case .automatic: sparse = (weight.compressed != nil || weight.isPruned) && weight.keptFraction <= SparseCrossover.density
        }
        if sparse {
            if weight.compressed == nil { try weight.compress() }
            return weight.compressed
        }
        weight.decompress()
        return nil
    }
}
