import Foundation

/// The weight density (fraction of entries kept) at or below which sparse execution is faster than
/// the dense-masked GEMM on this CPU, measured once per process: a 512 × 512 layer on a batch of 64,
/// dense against sparse at two densities, sparse time fitted as a line in the density, the result
/// rounded down to a multiple of 0.05. Both paths agree within rounding, not bit for bit: set
/// PRUNEKIT_SPARSE_CROSSOVER (a number in [0, 1]) to fix the choice across runs and machines.
public enum SparseCrossover {
    public static var density: Double { measured.density }
    /// The measurement behind `density` (seconds), for reports.
    public static var measurement: (dense: Double, sparseAt10: Double, sparseAt50: Double, density: Double) { measured }

    private static let measured: (dense: Double, sparseAt10: Double, sparseAt50: Double, density: Double) = {
        if let s = ProcessInfo.processInfo.environment["PRUNEKIT_SPARSE_CROSSOVER"], let d = Double(s), d >= 0, d <= 1 {
            return (0, 0, 0, d)
        }
        return (try? measure()) ?? (0, 0, 0, 0.3)
    }()

    private static func measure() throws -> (Double, Double, Double, Double) {
        let n = 512, batch = 64
        var rng = SeededGenerator(seed: 7)
        let w = Tensor.uniform([n, n], -1, 1, rng: &rng), x = Tensor.uniform([batch, n], -1, 1, rng: &rng)
        let y = FloatStorage(count: batch * n)
        func best(_ body: () throws -> Void) rethrows -> Double {
            var t = Double.infinity
            for _ in 0..<5 {
                let t0 = DispatchTime.now().uptimeNanoseconds
                try body()
                t = min(t, Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
            }
            return t
        }
        let dense = try best {
            try Kernels.linearForward(m: batch, n: n, k: n, x: x.storage, w: w.storage, mask: nil, bias: nil, y: y)
        }
        func sparse(_ keep: Double) throws -> Double {
            var g = SeededGenerator(seed: 8)
            let kept = (0..<(n * n)).map { _ in Double.random(in: 0..<1, using: &g) < keep }
            let c = try SparseMatrix(weight: w, mask: Mask(shape: [n, n], kept: kept))
            return try best { try c.forward(x.storage, batch: batch, bias: nil, into: y) }
        }
        let s10 = try sparse(0.1), s50 = try sparse(0.5)
        let slope = (s50 - s10) / 0.4, at0 = s10 - 0.1 * slope
        let d = slope > 0 ? min(1, max(0, (dense - at0) / slope)) : 1
        // rounded down to a multiple of 0.05, so timing noise rarely moves a layer across it
        return (dense, s10, s50, (d * 20).rounded(.down) / 20)
    }
}
