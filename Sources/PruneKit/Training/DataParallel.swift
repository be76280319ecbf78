import Foundation

/// The collective operations a data-parallel run needs among its processes (ranks). The PruneKit
/// library needs no MPI: the package's `MPI` trait builds `PruneKitMPI`, whose `MPICollective`
/// implements this over Open MPI. Another transport (a test double, a different launcher)
/// implements the same two calls.
public protocol Collective: AnyObject {
    /// This process's rank, 0 ..< size.
    var rank: Int { get }
    /// Number of ranks.
    var size: Int { get }
    /// Replaces `values` on every rank by their sum over the ranks. Every rank passes the same
    /// count. The terms must be added in rank order (0, 1, 2, …), so that every rank holds bitwise
    /// the same sum and the same N gives the same result run after run.
    func sumInRankOrder(_ values: FloatStorage) throws
    /// Every rank's `bytes` (lengths may differ), in rank order, on every rank.
    func allGather(_ bytes: [UInt8]) throws -> [[UInt8]]
}

/// Data-parallel training over a `Collective`: each rank takes its shard of every global batch,
/// gradients are summed over the ranks before one optimizer step, and every rank applies the same
/// step, so the model stays identical everywhere. Pruned weights exchange their kept entries only
/// (compressed layers their compressed gradient, dense-masked ones the entries their mask keeps);
/// unpruned weights and biases go whole. BatchNorm layers normalise with the global batch's
/// statistics (PyTorch's SyncBatchNorm, `BatchNorm.synchronization`), so the ranks together compute
/// what one process computes on the whole batch, running statistics included.
///
/// Set it on `TrainingConfig.dataParallel`. Fused optimizer steps are turned off (the step needs
/// the summed gradient).
public final class DataParallel: @unchecked Sendable {
    /// The transport the ranks exchange gradients and checks through.
    public let collective: any Collective
    /// This process's rank, 0 ..< `size` (the collective's).
    public var rank: Int { collective.rank }
    /// Number of ranks (the collective's).
    public var size: Int { collective.size }
    /// Floats carried by the last gradient exchange (gradients and the loss), and what a dense
    /// all-reduce of every trainable parameter's full gradient (DDP's) would carry.
    public private(set) var lastExchangeFloats = 0, lastDenseFloats = 0
    /// Totals over the run: exchanges and floats exchanged.
    public private(set) var exchanges = 0, exchangedFloats = 0

    /// Data parallelism over `collective`; the initializer exchanges nothing.
    public init(_ collective: any Collective) {
        self.collective = collective
    }

    /// The positions of `rank`'s shard in a global batch of `count`: contiguous, the first
    /// `count % size` ranks taking one more.
    public static func shard(count: Int, rank: Int, size: Int) -> Range<Int> {
        let base = count / size, extra = count % size
        let start = rank * base + min(rank, extra)
        return start..<(start + base + (rank < extra ? 1 : 0))
    }

    /// This rank's part of a global batch.
    public func shard(_ batch: [Int]) -> [Int] {
        Array(batch[DataParallel.shard(count: batch.count, rank: rank, size: size)])
    }

    /// Stops with one line when the ranks do not hold the same model (parameter values and masks,
    /// buffers) and settings: names the first rank that differs from rank 0 and what differs.
    public func checkAgreement(model: Model, settings: [String: String]) throws {
        var lines = settings.sorted { $0.key < $1.key }.map { "argument \($0.key) = \($0.value)" }
        for (name, p) in model.namedParameters {
            lines.append("parameter \(name) values \(DataParallel.fingerprint(p.value.storage))")
            lines.append("parameter \(name) mask \(p.mask.map { DataParallel.fingerprint($0.storage) } ?? "none")")
        }
        for (name, b) in model.namedBuffers { lines.append("buffer \(name) \(DataParallel.fingerprint(b.value.storage))") }
        let all = try collective.allGather(Array(lines.joined(separator: "\n").utf8))
        let reference = String(decoding: all[0], as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        for (r, bytes) in all.enumerated() where r > 0 {
            let other = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            if other == reference { continue }
            for i in 0..<max(other.count, reference.count) {
                let a = i < reference.count ? String(reference[i]) : "nothing", b = i < other.count ? String(other[i]) : "nothing"
                if a != b {
                    throw TrainingError.badSetting("rank \(r) disagrees with rank 0: it has \(b), rank 0 has \(a)")
                }
            }
        }
    }

    /// FNV-1a over the storage's bytes, as 16 hex digits.
    static func fingerprint<T>(_ s: AlignedStorage<T>) -> String {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        s.withUnsafeMutableBufferPointer { p in
            for byte in UnsafeRawBufferPointer(p) {
                h = (h ^ UInt64(byte)) &* 0x100_0000_01b3
            }
        }
        return String(h, radix: 16)
    }

    /// Sums this rank's gradients of `params` (each already scaled by its shard's share of the
    /// global batch) and its loss sum over the ranks. Afterwards every rank holds the global
    /// batch's mean gradient. Returns the global loss sum.
    func reduce(_ params: [Parameter], lossSum: Double) throws -> Double {
        var total = 1, dense = 0
        for p in params {
            total += payload(p)
            dense += p.count
        }
        let buf = FloatStorage(count: total)
        var at = 0
        for p in params {
            if let c = p.compressed {
                let g = p.compressedGrad ?? FloatStorage(count: c.stateCount)
                buf.copyElements(from: g, at: 0, to: at, count: g.count)
                at += g.count
            } else if let m = p.mask {
                at += buf.gatherKept(from: p.grad.storage, mask: m.storage, at: at)
            } else {
                buf.copyElements(from: p.grad.storage, at: 0, to: at, count: p.count)
                at += p.count
            }
        }
        buf[at] = Float(lossSum)
        try collective.sumInRankOrder(buf)
        at = 0
        for p in params {
            if let c = p.compressed {
                let g = FloatStorage(uninitializedCount: c.stateCount)
                g.copyElements(from: buf, at: at, to: 0, count: c.stateCount)
                p.compressedGrad = g
                at += c.stateCount
            } else if let m = p.mask {
                let g = Tensor(zeroed: p.shape)
                at += g.storage.scatterKept(from: buf, mask: m.storage, at: at, zero: 0)
                p.grad = g
            } else {
                let g = Tensor(zeroed: p.shape)
                g.storage.copyElements(from: buf, at: at, to: 0, count: p.count)
                p.grad = g
                at += p.count
            }
        }
        lastExchangeFloats = total
        lastDenseFloats = dense + 1
        exchanges += 1
        exchangedFloats += total
        return Double(buf[at])
    }

    /// Floats `p`'s gradient takes in an exchange.
    func payload(_ p: Parameter) -> Int {
        if let c = p.compressed { return c.stateCount }
        if let m = p.mask { return m.keptCount }
        return p.count
    }
}
