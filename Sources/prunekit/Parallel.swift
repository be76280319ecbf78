import ArgumentParser
import Foundation
import PruneKit
#if MPI
import PruneKitMPI
#endif

/// This process's place in a data-parallel run: set when mpirun started it and prunekit was built
/// with the MPI trait (`scripts/prunekit-mpi`). Rank 0 alone writes models, checkpoints and reports.
enum Parallel {
    /// The data-parallel context, or nil when this process runs alone.
    static func context() throws -> DataParallel? {
        try state.get()
    }

    /// True on the rank that writes files and prints results (the only rank when run alone).
    static var isWriter: Bool { ((try? state.get())??.rank ?? 0) == 0 }

    private static let state: Result<DataParallel?, Error> = Result {
        let size = Int(ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"] ?? "1") ?? 1
        #if MPI
        guard size > 1 else { return nil }
        let c = try MPICollective()
        atexit { Parallel.finalize() }
        return DataParallel(c)
        #else
        if size > 1 {
            throw ValidationError("this prunekit was built without MPI: build and launch it with scripts/prunekit-mpi N ARGS (swift build --traits MPI)")
        }
        return nil
        #endif
    }

    /// After an error on this rank: ends every rank of the job now (MPI_Abort) rather than leaving
    /// them waiting in a collective. Does nothing when run alone.
    static func abortJob(code: Int32) {
        #if MPI
        if let c = ((try? state.get()) ?? nil)?.collective as? MPICollective {
            FileHandle.standardError.write(Data("prunekit: rank \(c.rank) of \(c.size) failed: ending every rank\n".utf8))
            c.abort(code: code)
        }
        #endif
    }

    private static func finalize() {
        #if MPI
        ((try? state.get()) ?? nil).flatMap { $0.collective as? MPICollective }?.finalize()
        #endif
    }
}

/// The exchange figures of a data-parallel run, for --json reports.
func dataParallelReport(_ dp: DataParallel) -> [String: Any] {
    ["ranks": dp.size, "exchange_floats_per_step": dp.lastExchangeFloats, "dense_allreduce_floats_per_step": dp.lastDenseFloats,
     "exchange_ratio_to_dense": Double(dp.lastExchangeFloats) / Double(max(dp.lastDenseFloats, 1))]
}

/// `prunekit bench allreduce`: the deterministic sum over the ranks (`Collective.sumInRankOrder`)
/// timed at several sizes; run under mpirun with the MPI build.
struct BenchAllreduce: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "allreduce",
        abstract: "Time the gradient sum over MPI ranks (run under mpirun, MPI build): seconds and bandwidth per size.")
    @Option(help: "Vector sizes in floats, comma-separated.") var floats: String = "1024,65536,266611,1048576,4194304"
    @Option(name: .customLong("repeat"), parsing: .unconditional, help: "Timed repeats per size (median reported).") var repeats: Int = 20
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        try guarded {
            guard repeats >= 1 else { throw ValidationError("--repeat must be at least 1") }
            let sizes = floats.split(separator: ",").compactMap { Int($0) }
            guard !sizes.isEmpty, sizes.allSatisfy({ $0 >= 1 }) else { throw ValidationError("--floats: expected positive sizes, e.g. 1024,65536") }
            guard let dp = try Parallel.context() else {
                throw ValidationError("bench allreduce needs several ranks: scripts/prunekit-mpi 2 bench allreduce")
            }
            var rows: [[String: Any]] = []
            for n in sizes {
                let v = FloatStorage(count: n, repeating: 1)
                try dp.collective.sumInRankOrder(v) // warm-up
                var times: [Double] = []
                for _ in 0..<repeats {
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    try dp.collective.sumInRankOrder(v)
                    times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
                }
                // the slowest rank's median: every rank must have finished
                let med = times.sorted()[times.count / 2]
                let all = FloatStorage(count: dp.size)
                all[dp.rank] = Float(med)
                try dp.collective.sumInRankOrder(all)
                let worst = (0..<dp.size).map { Double(all[$0]) }.max() ?? med
                // algorithm bandwidth: the vector's bytes over the time (a ring all-reduce moves
                // 2 (N − 1) / N of them through each rank)
                rows.append(["floats": n, "bytes": 4 * n, "seconds": worst, "algorithm_gb_per_s": Double(4 * n) / worst / 1e9,
                             "bus_gb_per_s": Double(4 * n) * 2 * Double(dp.size - 1) / Double(dp.size) / worst / 1e9])
            }
            guard Parallel.isWriter else { return }
            if json {
                printJSON(["ranks": dp.size, "repeat": repeats, "sizes": rows])
            } else {
                print("ranks \(dp.size), median of \(repeats)")
                for r in rows {
                    print(String(format: "%10d floats  %10.1f µs  algorithm %6.2f GB/s  bus %6.2f GB/s", r["floats"] as! Int,
                                 (r["seconds"] as! Double) * 1e6, r["algorithm_gb_per_s"] as! Double, r["bus_gb_per_s"] as! Double))
                }
            }
        }
    }
}
