import Foundation

/// Which execution is fastest for a pruned weight on this CPU, measured once per process on a
/// 512 × 512 layer with a batch of 64 (best of five runs each): the dense-masked GEMM, CSR at
/// densities 0.1 and 0.5 (its time a line in the density), each block shape at densities 0.1 and
/// 0.5 and 0.9 when a mask first allows it (its time piecewise linear between them), and each N:M
/// pattern at its own density (its time does not depend on how many slots are padding). A weight
/// whose mask keeps every entry runs dense under `.automatic`: no format has anything to skip. `density` is CSR's crossover as before: the density at or
/// below which CSR beats dense, rounded down to a multiple of 0.05.
///
/// Formats agree with dense within rounding, not bit for bit: set PRUNEKIT_SPARSE_CROSSOVER (a
/// number in [0, 1]) to fix the choice across runs and machines without measuring: CSR at or below
/// that density, a structured format whenever the mask allows one and keeps at most half.
public enum SparseCrossover {
    /// The kept fraction at or below which CSR beats dense, rounded down to a multiple of 0.05; measured
    /// on first use, PRUNEKIT_SPARSE_CROSSOVER when set, 0.3 when the measurement fails.
    public static var density: Double { csr.density }
    /// The measurement behind `density` (seconds), for reports.
    public static var measurement: (dense: Double, sparseAt10: Double, sparseAt50: Double, density: Double) { csr }

    /// PRUNEKIT_SPARSE_CROSSOVER when set to a number in [0, 1].
    static let fixed: Double? = {
        guard let s = ProcessInfo.processInfo.environment["PRUNEKIT_SPARSE_CROSSOVER"], let d = Double(s), d >= 0, d <= 1 else {
            return nil
        }
        return d
    }()

    private static let csr: (dense: Double, sparseAt10: Double, sparseAt50: Double, density: Double) = {
        if let d = fixed { return (0, 0, 0, d) }
        guard let t = try? (dense: bench.denseSeconds(), at10: bench.seconds(.csr, keep: 0.1), at50: bench.seconds(.csr, keep: 0.5))
        else { return (0, 0, 0, 0.3) }
        let slope = (t.at50 - t.at10) / 0.4, at0 = t.at10 - 0.1 * slope
        let d = slope > 0 ? min(1, max(0, (t.dense - at0) / slope)) : 1
        // rounded down to a multiple of 0.05, so timing noise rarely moves a layer across it
        return (t.dense, t.at10, t.at50, (d * 20).rounded(.down) / 20)
    }()

    /// The fastest of `formats` for a weight of this density, or nil when dense is faster (only
    /// when `allowDense`; otherwise the fastest format). CSR counts as faster than dense at or below
    /// `density`, so a mask without structure is decided exactly as before.
    public static func choose(density d: Double, among formats: [CompressedFormat], allowDense: Bool) -> CompressedFormat? {
        // nothing pruned: every compressed form does the dense work plus its indexing (a block
        // format's line, extrapolated from sparse measurements, can undercut dense here)
        if allowDense && d >= 1 { return nil }
        if let fixedDensity = fixed {
            if let f = formats.first(where: { $0 != .csr && d <= 0.5 }) { return f }
            return !allowDense || d <= fixedDensity ? .csr : nil
        }
        var best: (format: CompressedFormat, seconds: Double)? = nil
        for f in formats {
            guard let t = predicted(f, density: d) else { continue }
            if best == nil || t < best!.seconds { best = (f, t) }
        }
        guard let best else { return allowDense ? nil : .csr }
        if !allowDense { return best.format }
        if best.format == .csr { return d <= density ? .csr : nil }
        return best.seconds < bench.denseSecondsCached ? best.format : (d <= density ? .csr : nil)
    }

    /// The predicted time of `format` at density d on the reference layer (nil when it cannot be measured).
    static func predicted(_ format: CompressedFormat, density d: Double) -> Double? {
        switch format {
        case .csr:
            let m = csr
            guard m.dense > 0 else { return nil }
            return m.sparseAt10 + (d - 0.1) * (m.sparseAt50 - m.sparseAt10) / 0.4
        case .nm:
            return bench.cached(format) { try [bench.seconds(format, keep: 1)] }?.first
        case .block:
            guard let t = bench.cached(format, {
                try [bench.seconds(format, keep: 0.1), bench.seconds(format, keep: 0.5), bench.seconds(format, keep: 0.9)]
            }) else { return nil }
            // piecewise linear through the three measurements, extended past the ends by the
            // nearest segment
            return d <= 0.5 ? t[0] + (d - 0.1) * (t[1] - t[0]) / 0.4 : t[1] + (d - 0.5) * (t[2] - t[1]) / 0.4
        }
    }

    /// A rows × cols mask with `format`'s structure keeping about `keep` of the entries (random
    /// entries, random whole blocks, or N:M's own pattern), for the reference measurements.
    static func referenceMask(_ format: CompressedFormat, rows: Int, cols: Int, keep: Double,
                              rng g: inout SeededGenerator) -> [Bool] {
        var kept = [Bool](repeating: false, count: rows * cols)
        switch format {
        case .csr:
            for i in 0..<(rows * cols) { kept[i] = Double(g.nextUnitFloat()) < keep }
        case let .nm(n, m):
            for i in 0..<(rows * cols) { kept[i] = (i % cols) % m < n }
        case let .block(r, c):
            for i in 0..<(rows / r) {
                for j in 0..<(cols / c) where Double(g.nextUnitFloat()) < keep {
                    for a in 0..<r { for b in 0..<c { kept[(i * r + a) * cols + j * c + b] = true } }
                }
            }
        }
        return kept
    }

    /// The reference layer and the measurements made so far (thread-safe).
    private static let bench = Bench()

    private final class Bench: @unchecked Sendable {
        let n = 512, batch = 64
        let w: Tensor, x: Tensor, y: FloatStorage
        private let lock = NSLock()
        private var times: [CompressedFormat: [Double]] = [:]
        private var dense: Double?

        init() {
            var rng = SeededGenerator(seed: 7)
            w = Tensor.uniform([n, n], -1, 1, rng: &rng)
            x = Tensor.uniform([batch, n], -1, 1, rng: &rng)
            y = FloatStorage(count: batch * n)
        }

        func best(_ body: () throws -> Void) rethrows -> Double {
            var t = Double.infinity
            for _ in 0..<5 {
                let t0 = DispatchTime.now().uptimeNanoseconds
                try body()
                t = min(t, Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
            }
            return t
        }

        func denseSeconds() throws -> Double {
            try best { try Kernels.linearForward(m: batch, n: n, k: n, x: x.storage, w: w.storage, mask: nil, bias: nil, y: y) }
        }

        var denseSecondsCached: Double {
            lock.lock()
            defer { lock.unlock() }
            if let d = dense { return d }
            let d = (try? denseSeconds()) ?? 0
            dense = d
            return d
        }

        /// Forward time of `format` with a mask of its structure keeping about `keep` (N:M: its pattern).
        func seconds(_ format: CompressedFormat, keep: Double) throws -> Double {
            var g = SeededGenerator(seed: 8)
            let kept = SparseCrossover.referenceMask(format, rows: n, cols: n, keep: keep, rng: &g)
            let cw = try format.compress(w, mask: Mask(shape: [n, n], kept: kept))
            return try best { try cw.forward(x.storage, batch: batch, bias: nil, into: y, features: false) }
        }

        /// The measurements of `format`, made by `measure` on first use (nil when that fails).
        func cached(_ format: CompressedFormat, _ measure: () throws -> [Double]) -> [Double]? {
            lock.lock()
            defer { lock.unlock() }
            if let t = times[format] { return t }
            guard let t = try? measure() else { return nil }
            times[format] = t
            return t
        }
    }
}
