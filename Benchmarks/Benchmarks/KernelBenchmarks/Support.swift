// What every benchmark here shares: one-time work out of the samples, a rate metric beside the
// time, and the smoke mode CI runs.
//
// package-benchmark calls a benchmark's closure once per sample. So anything the operation does
// only once — compressing a weight, filling packing caches, measuring the sparse/dense crossover,
// allocating reusable buffers — must happen before the samples start or it lands in the first one
// (or, for work redone per closure call, in every one). Each benchmark here is built by `setup`
// (run once before the samples), called once there to pay those costs, and checked by `ready`
// right before `startMeasurement`: a benchmark whose one-time work is still pending fails instead
// of timing it. One-time operations that matter on their own are benchmarks of their own
// ("linear.compress ...").
import Benchmark
import CPruneKernels
import Foundation
import PruneKit

/// PRUNEKIT_BENCH_SMOKE=1: one measured iteration per benchmark, no warm-up (CI proves that every
/// suite builds and runs; its figures mean nothing).
let smoke = ProcessInfo.processInfo.environment["PRUNEKIT_BENCH_SMOKE"] == "1"

/// The floating-point work or the bytes moved by one call of the operation.
enum Work {
    case flops(Double)
    case bytes(Double)
}

/// Achieved rates, reported per sample beside the time (integers: package-benchmark's metrics are).
let megaflops = BenchmarkMetric.custom("MFLOP/s", polarity: .prefersLarger, useScalingFactor: false)
let megabytes = BenchmarkMetric.custom("MB/s", polarity: .prefersLarger, useScalingFactor: false)

/// One operation ready to be timed.
struct Timed {
    /// The operation the benchmark names, and nothing else.
    let call: () throws -> Void
    /// nil when nothing one-time is left for the samples to pay; otherwise what is.
    var pending: () -> String? = { nil }
    /// Run before every sample, outside the measurement: restores the inputs an operation consumes
    /// (fresh masks for a selection), so that every sample does the same work.
    var before: () throws -> Void = {}
}

/// Reports a benchmark that cannot run. In the smoke run the process stops at once with status 1,
/// so that CI fails (package-benchmark itself reports an errored benchmark and exits 0).
func fail(_ bench: Benchmark?, _ message: String) {
    if smoke || bench == nil {
        FileHandle.standardError.write(Data("benchmark failed: \(message)\n".utf8))
        exit(1)
    }
    bench?.error(message)
}

/// Registers `name`: `setup` builds the operation once, its first call runs there (out of the
/// samples), then each sample times `call` alone.
func benchmark(_ name: String, _ work: Work, setup: @escaping () throws -> Timed) {
    let rate: BenchmarkMetric
    let amount: Double
    switch work {
    case let .flops(f): (rate, amount) = (megaflops, f)
    case let .bytes(b): (rate, amount) = (megabytes, b)
    }
    let configuration = Benchmark.Configuration(
        metrics: [.wallClock, .cpuTotal, rate],
        warmupIterations: smoke ? 0 : 1,
        maxDuration: smoke ? .milliseconds(1) : .seconds(2),
        maxIterations: smoke ? 1 : 200)
    // package-benchmark keeps a benchmark's setup state for the life of the process: the holder is
    // emptied in teardown, so one benchmark's buffers are freed before the next one's are built
    let holder = Holder()
    Benchmark(name, configuration: configuration, closure: { (bench: Benchmark, _: Holder) in
        guard let timed = holder.timed else { return fail(bench, "\(name): no setup state") }
        if let left = timed.pending() {
            fail(bench, "\(name): \(left) is still pending when the measurement starts, so a sample would time it")
            return
        }
        do { try timed.before() } catch {
            fail(bench, "\(name): \(error)")
            return
        }
        let t0 = DispatchTime.now().uptimeNanoseconds
        bench.startMeasurement()
        do {
            for _ in bench.scaledIterations { try timed.call() }
        } catch {
            fail(bench, "\(name): \(error)")
            return
        }
        bench.stopMeasurement()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
        let calls = Double(bench.scaledIterations.count)
        bench.measurement(rate, Int((amount * calls / max(seconds, 1e-9) / 1e6).rounded()))
    }, setup: { () throws -> Holder in
        do {
            let timed = try setup()
            try timed.before()
            try timed.call() // compression, packing caches, the crossover, first-touch allocations
            holder.timed = timed
            return holder
        } catch {
            fail(nil, "\(name): setup: \(error)")
            throw error
        }
    }, teardown: {
        holder.timed = nil
    })
}

/// The operation a benchmark times, between its setup and its teardown.
final class Holder: @unchecked Sendable {
    var timed: Timed?
}

/// A float buffer for the C kernels, filled with uniform values in [-1, 1).
final class Floats: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Float>
    let count: Int
    init(_ count: Int, seed: UInt64 = 1) {
        self.count = count
        pointer = .allocate(capacity: max(count, 1))
        var g = SeededGenerator(seed: seed)
        for i in 0..<count { pointer[i] = g.uniform(-1, 1) }
    }
    deinit { pointer.deallocate() }
}

/// A 0/1 mask for the C kernels: each entry kept with probability 1 − sparsity (nil at sparsity 0).
final class Bytes: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<UInt8>
    init(_ count: Int, sparsity: Double, seed: UInt64 = 7) {
        pointer = .allocate(capacity: max(count, 1))
        var g = SeededGenerator(seed: seed)
        for i in 0..<count { pointer[i] = Double(g.nextUnitFloat()) >= sparsity ? 1 : 0 }
    }
    deinit { pointer.deallocate() }
}

/// Throws when a C kernel did not return PK_OK.
struct KernelFailed: Error, CustomStringConvertible {
    let status: pk_status
    var description: String { "kernel status \(status.rawValue)" }
}

func check(_ status: pk_status) throws { if status != PK_OK { throw KernelFailed(status: status) } }

/// "90%" for 0.9.
func percent(_ s: Double) -> String { "\(Int((s * 100).rounded()))%" }
