/// How a layer executes its (pruned) weight.
public enum Execution: Sendable, Equatable, CustomStringConvertible {
    /// Compressed in the fastest format the mask's structure allows (packed N:M, block-sparse, CSR)
    /// when the measured crossover (`SparseCrossover`) says it beats the dense-masked GEMM; dense otherwise.
    case automatic
    /// Dense storage and the dense-masked GEMM.
    case dense
    /// Compressed storage in the fastest format the mask's structure allows (CSR for any mask).
    case sparse
    /// Compressed storage in exactly this format; a mask without its structure is refused
    /// (`StructureError` naming the layer).
    case format(CompressedFormat)

    /// "automatic", "dense", "sparse", or the format ("csr", "2:4", "block:4x4").
    public var description: String {
        switch self {
        case .automatic: return "automatic"
        case .dense: return "dense"
        case .sparse: return "sparse"
        case let .format(f): return "\(f)"
        }
    }

    /// Parses `description` ("unstructured" is CSR).
    public init?(_ text: String) {
        switch text {
        case "automatic": self = .automatic
        case "dense": self = .dense
        case "sparse": self = .sparse
        default:
            guard let f = CompressedFormat(text) else { return nil }
            self = .format(f)
        }
    }

    /// Puts `weight` in the form this setting asks for; its compressed form when that is not dense.
    /// `layer` names the layer in a refusal.
    func prepare(_ weight: Parameter, layer: String) throws -> (any CompressedWeight)? {
        let format: CompressedFormat?
        switch self {
        case .dense: format = nil
        case let .format(f): format = f
        case .automatic, .sparse:
            guard weight.compressed != nil || weight.isPruned else { format = nil; break }
            format = try weight.preferredFormat(allowDense: self == .automatic)
        }
        guard let format else {
            weight.decompress()
            return nil
        }
        do { try weight.compress(as: format) } catch let e as StructureError { throw e.naming(layer) }
        return weight.compressed
    }
}

extension Parameter {
    /// The format `Execution.automatic` (allowDense) or `.sparse` picks for this weight's structure:
    /// among the formats its mask allows, the fastest by the measured crossover (nil: dense). Decided
    /// once per mask or compressed form.
    func preferredFormat(allowDense: Bool) throws -> CompressedFormat? {
        let key = compressed.map { ObjectIdentifier($0) } ?? mask.map { ObjectIdentifier($0.storage) }
        if let k = key, let c = formatChoice, c.key == k, c.allowDense == allowDense { return c.format }
        let m = effectiveMask, rows = shape[0], cols = count / max(shape[0], 1)
        let allowed = try CompressedFormat.allowed(by: m.storage, rows: rows, cols: cols)
        let chosen = SparseCrossover.choose(density: keptFraction, among: allowed, allowDense: allowDense)
        // remembered for the form this choice leads to (a compression replaces the key)
        formatChoice = key.map { (key: $0, allowDense: allowDense, format: chosen) }
        if let f = chosen, compressed?.format != f {
            try compress(as: f)
            formatChoice = (key: ObjectIdentifier(compressed!), allowDense: allowDense, format: chosen)
        }
        return chosen
    }
}
