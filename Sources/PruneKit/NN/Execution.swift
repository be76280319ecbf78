import Foundation

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
    /// `layer` names the layer in a refusal; `path` is the work the choice of `.automatic` is timed on.
    func prepare(_ weight: Parameter, layer: String, path: ExecutionPath = .product) throws -> (any CompressedWeight)? {
        let format: CompressedFormat?
        switch self {
        case .dense: format = nil
        case let .format(f): format = f
        case .automatic, .sparse:
            guard weight.compressed != nil || weight.isPruned else { format = nil; break }
            format = try weight.preferredFormat(allowDense: self == .automatic, path: path)
        }
        guard let format else {
            weight.decompress()
            return nil
        }
        do { try weight.compress(as: format) } catch let e as StructureError { throw e.naming(layer) }
        return weight.compressed
    }
}

/// The work whose measured times decide `.automatic` for a layer.
enum ExecutionPath: Sendable, Equatable {
    /// One product of the weight with a batch (Linear in training and inference, a convolution at
    /// inference): `SparseCrossover`, timed on a 512 × 512 forward product.
    case product
    /// A convolution's training step: the dense-masked direct convolution's forward and backward
    /// against im2col, the compressed product, its input gradient, col2im and the kept-entry weight
    /// gradient (`ConvolutionTrainingCrossover`). The column matrices and layout changes make the
    /// compressed side far dearer than a product alone suggests.
    case convolutionTraining
}

extension Parameter {
    /// The format `Execution.automatic` (allowDense) or `.sparse` picks for this weight's structure:
    /// among the formats its mask allows, the fastest by the crossover measured for `path` (nil:
    /// dense). Decided once per mask or compressed form and path.
    func preferredFormat(allowDense: Bool, path: ExecutionPath = .product) throws -> CompressedFormat? {
        let key = compressed.map { ObjectIdentifier($0) } ?? mask.map { ObjectIdentifier($0.storage) }
        if let k = key, let c = formatChoice, c.key == k, c.allowDense == allowDense, c.path == path { return c.format }
        let m = effectiveMask, rows = shape[0], cols = count / max(shape[0], 1)
        let allowed = try CompressedFormat.allowed(by: m.storage, rows: rows, cols: cols)
        let chosen: CompressedFormat?
        switch path {
        case .product: chosen = SparseCrossover.choose(density: keptFraction, among: allowed, allowDense: allowDense)
        case .convolutionTraining:
            chosen = ConvolutionTrainingCrossover.choose(density: keptFraction, among: allowed, allowDense: allowDense)
        }
        // remembered for the form this choice leads to (a compression replaces the key)
        formatChoice = key.map { (key: $0, allowDense: allowDense, path: path, format: chosen) }
        if let f = chosen, compressed?.format != f {
            try compress(as: f)
            formatChoice = (key: ObjectIdentifier(compressed!), allowDense: allowDense, path: path, format: chosen)
        }
        return chosen
    }
}

/// Which execution is fastest for a convolution's training step, measured once per process on a
/// reference convolution (batch 32, 32 → 32 channels, 16 × 16, 3 × 3, padding 1; best of three
/// forward + backward passes through a real `Conv2d`): the dense-masked direct convolution, CSR at
/// densities 0.1 and 0.5 (its time a line in the density), each block shape at 0.1, 0.5 and 0.9
/// when a mask first allows it, each N:M pattern at its own density. A compressed format is chosen
/// only when it is predicted faster than dense. With PRUNEKIT_SPARSE_CROSSOVER set, the choice is
/// `SparseCrossover`'s fixed rule, so that runs stay reproducible without measuring.
enum ConvolutionTrainingCrossover {
    static func choose(density d: Double, among formats: [CompressedFormat], allowDense: Bool) -> CompressedFormat? {
        if SparseCrossover.fixed != nil || !allowDense {
            return SparseCrossover.choose(density: d, among: formats, allowDense: allowDense)
        }
        if d >= 1 { return nil }
        guard let dense = bench.times(nil) else { return nil }
        var best: (format: CompressedFormat, seconds: Double)? = nil
        for f in formats {
            guard let t = predicted(f, density: d) else { continue }
            if best == nil || t < best!.seconds { best = (f, t) }
        }
        guard let best, best.seconds < dense[0] else { return nil }
        return best.format
    }

    /// The predicted training-step time of `format` at density d on the reference convolution.
    static func predicted(_ format: CompressedFormat, density d: Double) -> Double? {
        guard let t = bench.times(format) else { return nil }
        switch format {
        case .csr: return t[0] + (d - 0.1) * (t[1] - t[0]) / 0.4
        case .nm: return t[0]
        case .block: return d <= 0.5 ? t[0] + (d - 0.1) * (t[1] - t[0]) / 0.4 : t[1] + (d - 0.5) * (t[2] - t[1]) / 0.4
        }
    }

    private static let bench = Bench()

    private final class Bench: @unchecked Sendable {
        let batch = 32, channels = 32, size = 16
        private let lock = NSLock()
        private var measured: [CompressedFormat?: [Double]] = [:]
        private var failed: Set<CompressedFormat?> = []

        /// The measured times for `format` (nil: dense), measured on first use; nil when that failed.
        func times(_ format: CompressedFormat?) -> [Double]? {
            lock.lock()
            defer { lock.unlock() }
            if let t = measured[format] { return t }
            if failed.contains(format) { return nil }
            let densities: [Double]
            switch format {
            case nil, .nm: densities = [1]
            case .csr: densities = [0.1, 0.5]
            case .block: densities = [0.1, 0.5, 0.9]
            }
            guard let t = try? densities.map({ try seconds(format, keep: $0) }) else {
                failed.insert(format)
                return nil
            }
            measured[format] = t
            return t
        }

        /// Best of three training passes (forward, backward with the input gradient) of the reference
        /// convolution in `format` (nil: dense-masked) with a mask of its structure keeping about `keep`.
        private func seconds(_ format: CompressedFormat?, keep: Double) throws -> Double {
            var g = SeededGenerator(seed: 9)
            let conv = try Conv2d(channels, channels, kernelSize: 3, padding: 1, rng: &g)
            let rows = channels, cols = channels * 9
            if let format {
                let kept = SparseCrossover.referenceMask(format, rows: rows, cols: cols, keep: keep, rng: &g)
                try conv.weight.setMask(Mask(shape: conv.weight.shape, kept: kept))
            }
            conv.execution = format.map { .format($0) } ?? .dense
            let x = Tensor.uniform([batch, channels, size, size], -1, 1, rng: &g)
            let dy = Tensor.uniform([batch, channels, size, size], -1, 1, rng: &g)
            var best = Double.infinity
            for _ in 0..<3 {
                let t0 = DispatchTime.now().uptimeNanoseconds
                _ = try conv.forward(x, training: true)
                _ = try conv.backward(dy, needInputGradient: true)
                best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
            }
            return best
        }
    }
}
