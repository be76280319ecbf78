// Mask selection: global magnitude top-k over many tensors (the threshold and the masks), N:M
// selection and block selection by norm. Every sample starts from unpruned weights (restored
// before the measurement). MB/s count the scores read once and the mask bytes written.
import Benchmark
import PruneKit

func selectionBenchmarks() {
    for (weights, tensors) in [(10_000_000, 1), (10_000_000, 100)] {
        benchmark("select.global 50% of \(weights / 1_000_000)M weights in \(tensors) tensors", .bytes(Double(weights) * 5)) {
            var g = SeededGenerator(seed: 1)
            let per = weights / tensors
            let params = (0..<tensors).map { _ in Parameter(Tensor.normal([per], scale: 0.05, rng: &g), prunable: true) }
            let masks = params.map { ByteStorage(count: $0.count, repeating: 1) }
            return Timed(call: { _ = try Prune.selectionOnly(params, masks: masks, amount: 0.5) },
                         before: { for m in masks { m.fill(1) } })
        }
    }
    for (o, i) in [(4096, 4096), (1536, 384)] {
        for (n, m) in [(2, 4), (1, 4), (2, 8)] {
            benchmark("select.nm \(n):\(m) \(o)×\(i)", .bytes(Double(o * i) * 5)) {
                var g = SeededGenerator(seed: 1)
                let p = Parameter(Tensor.normal([o, i], scale: 0.05, rng: &g), prunable: true)
                return Timed(call: { try Prune.nm(p, n: n, m: m) }, before: { p.removeMask() })
            }
        }
        for (r, c) in [(4, 4), (8, 8), (16, 1), (1, 16)] {
            benchmark("select.block \(r)x\(c) 90% \(o)×\(i)", .bytes(Double(o * i) * 5)) {
                var g = SeededGenerator(seed: 1)
                let p = Parameter(Tensor.normal([o, i], scale: 0.05, rng: &g), prunable: true)
                return Timed(call: { try Prune.block([p], blockRows: r, blockCols: c, amount: .fraction(0.9)) },
                             before: { p.removeMask() })
            }
        }
    }
}
