// Built with the package's MPI trait only (`swift build --traits MPI`); without it this module is empty.
#if MPI
import CMPI
import Foundation
import PruneKit

/// An MPI failure, in words.
public struct MPIError: Error, CustomStringConvertible {
    /// The MPI function that failed (e.g. "MPI_Alltoall") and the error code it returned.
    public let call: String, code: Int32
    /// "MPI <call> failed: " and Open MPI's text for the code.
    public var description: String {
        var text = [CChar](repeating: 0, count: 512)
        var len: Int32 = 0
        pk_mpi_error_string(code, &text, &len)
        return "MPI \(call) failed: \(String(decoding: text.prefix(Int(len)).map { UInt8(bitPattern: $0) }, as: UTF8.self))"
    }
}

/// `Collective` over Open MPI's MPI_COMM_WORLD. The sum is deterministic: each rank owns a chunk of
/// the vector, receives that chunk from every rank (MPI_Alltoall), adds the copies in rank order,
/// and the summed chunks are shared again (MPI_Allgather): every rank gets bitwise the same sum,
/// and each rank sends and receives 2 (N − 1) / N of the vector, as a ring all-reduce does.
public final class MPICollective: Collective {
    /// This process's rank in MPI_COMM_WORLD (0 ..< size) and the number of ranks.
    public let rank: Int, size: Int

    /// Initialises MPI (once per process). Errors are reported to PruneKit instead of aborting.
    public init() throws {
        let rc = pk_mpi_init()
        guard rc == 0 else { throw MPIError(call: "MPI_Init_thread", code: rc) }
        pk_mpi_return_errors()
        rank = Int(pk_mpi_rank())
        size = Int(pk_mpi_size())
    }

    /// True when this process was started by Open MPI's launcher (mpirun / mpiexec).
    public static var launchedByMPI: Bool { ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"] != nil }

    /// Ends MPI for this process (at exit).
    public func finalize() { _ = pk_mpi_finalize() }

    /// Ends every rank of the job at once (after this rank failed), with `code`.
    public func abort(code: Int32) -> Never {
        pk_mpi_abort(code)
        exit(code)
    }

    /// Buffers kept between calls (a training run sums vectors of one size every step).
    private var send: FloatStorage?, recv: FloatStorage?, mine: FloatStorage?

    public func sumInRankOrder(_ values: FloatStorage) throws {
        guard size > 1 else { return }
        let n = values.count, chunk = (n + size - 1) / size
        guard chunk * size <= Int(Int32.max) else { throw MPIError(call: "sum (vector too long)", code: 0) }
        if send?.count != chunk * size {
            send = FloatStorage(count: chunk * size)
            recv = FloatStorage(count: chunk * size)
            mine = FloatStorage(count: chunk)
        }
        let send = send!, recv = recv!, mine = mine!
        send.copyElements(from: values, at: 0, to: 0, count: n)
        for i in n..<(chunk * size) { send[i] = 0 }
        try send.withUnsafeMutableBufferPointer { s in
            try recv.withUnsafeMutableBufferPointer { r in
                let rc = pk_mpi_alltoall_f32(s.baseAddress, Int32(chunk), r.baseAddress)
                guard rc == 0 else { throw MPIError(call: "MPI_Alltoall", code: rc) }
                try mine.withUnsafeMutableBufferPointer { m in
                    // rank order: rank 0's copy, then ranks 1, 2, … added one after another
                    guard let mp = m.baseAddress, let rp = r.baseAddress else { return }
                    mp.update(from: rp, count: chunk)
                    for src in 1..<size {
                        let other = rp + src * chunk
                        for i in 0..<chunk { mp[i] += other[i] }
                    }
                    let rc2 = pk_mpi_allgather_f32(mp, Int32(chunk), s.baseAddress)
                    guard rc2 == 0 else { throw MPIError(call: "MPI_Allgather", code: rc2) }
                }
            }
        }
        values.copyElements(from: send, at: 0, to: 0, count: n)
    }

    public func allGather(_ bytes: [UInt8]) throws -> [[UInt8]] {
        var counts = [Int32](repeating: 0, count: size)
        var rc = pk_mpi_allgather_i32(Int32(bytes.count), &counts)
        guard rc == 0 else { throw MPIError(call: "MPI_Allgather", code: rc) }
        var displs = [Int32](repeating: 0, count: size)
        for r in 1..<max(size, 1) { displs[r] = displs[r - 1] + counts[r - 1] }
        var all = [UInt8](repeating: 0, count: Int(counts.reduce(0, +)))
        rc = bytes.withUnsafeBufferPointer { s in
            all.withUnsafeMutableBufferPointer { a in
                pk_mpi_allgatherv_u8(s.baseAddress, Int32(bytes.count), a.baseAddress, counts, displs)
            }
        }
        guard rc == 0 else { throw MPIError(call: "MPI_Allgatherv", code: rc) }
        return (0..<size).map { Array(all[Int(displs[$0])..<Int(displs[$0] + counts[$0])]) }
    }
}
#endif
