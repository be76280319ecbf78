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
