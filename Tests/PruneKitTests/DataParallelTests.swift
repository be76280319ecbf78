import Foundation
import XCTest
@testable import PruneKit

/// Shards of a global batch.
final class DataParallelShardTests: XCTestCase {
    func testShardsCoverTheBatchContiguouslyAndEvenly() {
        for count in [0, 1, 2, 5, 128, 129, 1000] {
            for size in 1...5 {
                let ranges = (0..<size).map { DataParallel.shard(count: count, rank: $0, size: size) }
                XCTAssertEqual(ranges.first?.lowerBound, 0)
                XCTAssertEqual(ranges.last?.upperBound, count, "count \(count), size \(size)")
                for r in 1..<size { XCTAssertEqual(ranges[r].lowerBound, ranges[r - 1].upperBound) }
                let lengths = ranges.map(\.count)
                XCTAssertLessThanOrEqual(lengths.max()! - lengths.min()!, 1, "count \(count), size \(size)")
            }
        }
    }
}

/// `prunekit` built with the MPI trait, run by mpirun with 2 and 3 ranks, against one process.
/// Needs PRUNEKIT_MPI_BINARY (scripts/run-tests.sh builds it); skipped without it unless
/// PRUNEKIT_REQUIRE_MPI=1, where it fails instead.
final class MPITests: XCTestCase {
    private var binary: String!
    private var dir: String!

    override func setUpWithError() throws {
        let env = ProcessInfo.processInfo.environment
        guard let b = env["PRUNEKIT_MPI_BINARY"], FileManager.default.isExecutableFile(atPath: b),
              FileManager.default.isExecutableFile(atPath: "/usr/bin/mpirun") else {
            if env["PRUNEKIT_REQUIRE_MPI"] == "1" {
                XCTFail("PRUNEKIT_REQUIRE_MPI=1 but PRUNEKIT_MPI_BINARY or /usr/bin/mpirun is missing")
                throw CocoaError(.fileNoSuchFile)
            }
            throw XCTSkip("no MPI build of prunekit (PRUNEKIT_MPI_BINARY) or no mpirun")
        }
        binary = b
        dir = NSTemporaryDirectory() + "pk-mpi-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try makeSmallFashionMNIST(from: try requireFashionMNIST(), into: dir + "/data", train: 1280, test: 1000)
    }

    override func tearDown() {
        if let dir { try? FileManager.default.removeItem(atPath: dir) }
    }

    /// The first `train` and `test` examples of Fashion-MNIST, as raw IDX files.
    private func makeSmallFashionMNIST(from source: String, into folder: String, train: Int, test: Int) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for (name, n) in [("train-images-idx3-ubyte", train), ("train-labels-idx1-ubyte", train),
                          ("t10k-images-idx3-ubyte", test), ("t10k-labels-idx1-ubyte", test)] {
            let a = try IDXArray.read(source + "/" + name + ".gz")
            var dims = a.dimensions
            dims[0] = n
            var out = Data([0, 0, 8, UInt8(dims.count)])
            for d in dims { out.append(contentsOf: withUnsafeBytes(of: UInt32(d).bigEndian, Array.init)) }
            out.append(a.bytes.prefix(dims.reduce(1, *)))
            try out.write(to: URL(fileURLWithPath: folder + "/" + name))
        }
    }

    /// mpirun with `ranks` processes of `args` (or one argument list per rank).
    private func mpirun(_ ranks: Int, _ args: [String], perRank: [[String]]? = nil) throws -> (status: Int32, out: String, err: String) {
        var a = ["--allow-run-as-root", "--oversubscribe"]
        if let perRank {
            for (i, r) in perRank.enumerated() { a += (i > 0 ? [":"] : []) + ["-np", "1", binary] + r }
        } else {
            a += ["-np", "\(ranks)", binary] + args
        }
        return try runProcess("/usr/bin/mpirun", a)
    }

    private func json(_ text: String) throws -> [String: Any] {
        let line = text.split(separator: "\n").last(where: { $0.hasPrefix("{") }) ?? ""
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], text)
    }

    /// max over tensors of ‖a − b‖ / ‖b‖.
    private func relativeDifference(_ a: Model, _ b: Model) -> Double {
        var worst = 0.0
        for ((_, p), (_, q)) in zip(a.namedParameters, b.namedParameters) {
            let x = p.value.scalars, y = q.value.scalars
            var d = 0.0, n = 0.0
            for i in x.indices {
                d += Double(x[i] - y[i]) * Double(x[i] - y[i])
                n += Double(y[i]) * Double(y[i])
            }
            worst = max(worst, (d / max(n, 1e-30)).squareRoot())
        }
        return worst
    }

    /// One epoch on 2 and on 3 ranks (3 ranks: shards of 43 and 42) reaches the single-process
    /// weights within 1e-5 and its test accuracy within 0.1 point; the same N twice gives bitwise
    /// the same weights; a pruned model fine-tuned on 2 ranks keeps its masks, exchanges only kept
    /// entries, and matches one process too.
    func testRanksReproduceOneProcess() throws {
        let common = ["--epochs", "1", "--threads", "1", "--data", dir + "/data", "--json"]
        let train = ["train", "--model", "mlp", "--seed", "3"] + common
        let single = try runPrunekit(train + ["--out", dir + "/one.pk"])
        XCTAssertEqual(single.status, 0, single.err)
        let one = try ModelFile.load(dir + "/one.pk").model, oneAccuracy = try json(single.out)["test_accuracy"] as! Double
        for ranks in [2, 3] {
            let r = try mpirun(ranks, train + ["--out", dir + "/dp\(ranks).pk"])
            XCTAssertEqual(r.status, 0, r.err)
            let report = try json(r.out)
            XCTAssertEqual(report["ranks"] as? Int, ranks)
            XCTAssertEqual(report["test_accuracy"] as! Double, oneAccuracy, accuracy: 0.001, "\(ranks) ranks")
            let m = try ModelFile.load(dir + "/dp\(ranks).pk").model
            XCTAssertLessThan(relativeDifference(m, one), 1e-5, "\(ranks) ranks against one process")
            let again = try mpirun(ranks, train + ["--out", dir + "/dp\(ranks)b.pk"])
            XCTAssertEqual(again.status, 0, again.err)
            XCTAssertEqual(try ModelFile.load(dir + "/dp\(ranks)b.pk").model.parameters.map(\.value), m.parameters.map(\.value),
                           "\(ranks) ranks: bitwise the same run to run")
        }
        // pruned: 90% of every weight, fine-tuned on 2 ranks and on one
        let pruned = try runPrunekit(["prune", "--model-file", dir + "/one.pk", "--method", "l1", "--structure", "unstructured",
                                      "--scope", "global", "--amount", "0.9", "--out", dir + "/p.pk"])
        XCTAssertEqual(pruned.status, 0, pruned.err)
        let finetune = ["finetune", "--model-file", dir + "/p.pk", "--seed", "1"] + common
        let ftOne = try runPrunekit(finetune + ["--out", dir + "/ft1.pk"])
        XCTAssertEqual(ftOne.status, 0, ftOne.err)
        let ft = try mpirun(2, finetune + ["--out", dir + "/ft2.pk"])
        XCTAssertEqual(ft.status, 0, ft.err)
        let report = try json(ft.out)
        XCTAssertLessThanOrEqual(report["exchange_ratio_to_dense"] as! Double, 0.15, "only kept entries travel")
        let a = try ModelFile.load(dir + "/ft2.pk").model, b = try ModelFile.load(dir + "/ft1.pk").model
        let p = try ModelFile.load(dir + "/p.pk").model
        XCTAssertLessThan(relativeDifference(a, b), 1e-5, "fine-tuned on 2 ranks against one process")
        XCTAssertEqual(a.parameters.map { $0.mask?.kept }, p.parameters.map { $0.mask?.kept }, "masks unchanged")
    }

    /// Ranks started with different arguments stop at once with one line naming the rank and the
    /// difference; nothing is written.
    func testRanksThatDisagreeStop() throws {
        let base = ["train", "--model", "mlp", "--epochs", "1", "--threads", "1", "--data", dir + "/data", "--out", dir + "/x.pk"]
        let r = try mpirun(2, [], perRank: [base + ["--lr", "0.001"], base + ["--lr", "0.002"]])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("rank 1 disagrees with rank 0"), r.err)
        XCTAssertTrue(r.err.contains("train.lr"), r.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/x.pk"))
    }

    /// A rank killed mid-run ends the whole job within seconds and leaves no model file; resuming
    /// from the last checkpoint with the same N reproduces the uninterrupted run bitwise.
    func testKilledRankEndsTheJobAndTheRunResumes() throws {
        let base = ["train", "--model", "mlp", "--epochs", "6", "--batch", "32", "--threads", "1", "--data", dir + "/data"]
        let full = try mpirun(2, base + ["--out", dir + "/full.pk"])
        XCTAssertEqual(full.status, 0, full.err)
        let ck = dir + "/run.ckpt", part = dir + "/part.pk"
        let job = Process()
        job.executableURL = URL(fileURLWithPath: "/usr/bin/mpirun")
        job.arguments = ["--allow-run-as-root", "--oversubscribe", "-np", "2", binary] + base
            + ["--out", part, "--checkpoint", ck, "--checkpoint-every", "5"]
        job.standardOutput = FileHandle.nullDevice
        job.standardError = FileHandle.nullDevice
        try job.run()
        let deadline = Date().addingTimeInterval(120)
        while !FileManager.default.fileExists(atPath: ck) && Date() < deadline && job.isRunning { usleep(20_000) }
        // rank 1: the process whose command line names this run's output and whose MPI rank is 1
        let victim = processes(containing: part).first { pid in
            ((try? String(contentsOfFile: "/proc/\(pid)/environ", encoding: .isoLatin1)) ?? "")
                .split(separator: "\0").contains("OMPI_COMM_WORLD_RANK=1")
        }
        XCTAssertTrue(job.isRunning, "the run finished before it could be killed; make it longer")
        let victimPid = try XCTUnwrap(victim, "rank 1 not found")
        kill(victimPid, SIGKILL)
        let killedAt = Date()
        while job.isRunning && Date().timeIntervalSince(killedAt) < 30 { usleep(20_000) }
        let took = Date().timeIntervalSince(killedAt)
        XCTAssertFalse(job.isRunning, "the job still runs 30 s after rank 1 was killed")
        if job.isRunning { job.terminate() }
        job.waitUntilExit()
        XCTAssertLessThan(took, 10, "the job ended \(took) s after the kill")
        XCTAssertNotEqual(job.terminationStatus, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: part), "no model written by a failed job")
        XCTAssertNoThrow(try Checkpoint.load(ck), "the checkpoint on disk is whole")
        let resumed = try mpirun(2, base + ["--out", part, "--checkpoint", ck, "--checkpoint-every", "5", "--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.err)
        XCTAssertEqual(try ModelFile.load(part).model.parameters.map(\.value), try ModelFile.load(dir + "/full.pk").model.parameters.map(\.value),
                       "resumed on 2 ranks: bitwise the uninterrupted run")
    }

    /// Sentence-encoder distillation on 2 ranks: the whole model within 1e-5 of one process and the
    /// same losses; only kept entries travel. (Single tensors whose true gradient is zero, such as
    /// the attention key biases, carry only rounding, which Adam amplifies: the whole-model norm
    /// is the measure here.)
    func testSentenceDistillationOnTwoRanks() throws {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let teacher = ProcessInfo.processInfo.environment["PRUNEKIT_MINILM"] ?? repo.appendingPathComponent("models/all-MiniLM-L6-v2").path
        guard FileManager.default.fileExists(atPath: teacher + "/model.safetensors") else {
            throw XCTSkip("no MiniLM model in \(teacher): run scripts/get-minilm.sh")
        }
        let sentences = (0..<32).map { "sentence number \($0) is about \(["cats", "trains", "rain", "music"][$0 % 4]) and more" }
        try sentences.joined(separator: "\n").write(toFile: dir + "/s.txt", atomically: true, encoding: .utf8)
        let pruned = try runPrunekit(["prune", "--model", teacher, "--method", "l1", "--structure", "unstructured", "--amount", "0.9",
                                      "--out", dir + "/student"])
        XCTAssertEqual(pruned.status, 0, pruned.err)
        let args = ["finetune", "--model", dir + "/student", "--teacher", teacher, "--input", dir + "/s.txt", "--epochs", "1",
                    "--batch", "8", "--threads", "1", "--json"]
        let one = try runPrunekit(args + ["--out", dir + "/d1"])
        XCTAssertEqual(one.status, 0, one.err)
        let two = try mpirun(2, args + ["--out", dir + "/d2"])
        XCTAssertEqual(two.status, 0, two.err)
        let a = try json(one.out), b = try json(two.out)
        XCTAssertEqual((b["epoch_losses"] as! [Double])[0], (a["epoch_losses"] as! [Double])[0], accuracy: 1e-6)
        XCTAssertLessThanOrEqual(b["exchange_ratio_to_dense"] as! Double, 0.15)
        let x = try SafeTensors.read(dir + "/d2/model.safetensors").tensors, y = try SafeTensors.read(dir + "/d1/model.safetensors").tensors
        var d = 0.0, n = 0.0
        for (name, t) in y {
            let u = try XCTUnwrap(x[name], name).scalars, v = t.scalars
            for i in v.indices { d += Double(u[i] - v[i]) * Double(u[i] - v[i]); n += Double(v[i]) * Double(v[i]) }
        }
        XCTAssertLessThan((d / n).squareRoot(), 1e-5, "2 ranks against one process, whole model")
    }

    /// Process ids whose command line contains `text`.
    private func processes(containing text: String) -> [pid_t] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { e -> pid_t? in
            guard let pid = pid_t(e), let cmd = try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(e)/cmdline")) else { return nil }
            let words = cmd.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            return words.contains(text) && words.contains(where: { $0.hasSuffix("prunekit") }) ? pid : nil
        }
    }
}

/// A `Collective` of threads in one process (tests): ranks meet at a barrier, each adds its vector
/// into the shared sum in rank order.
final class ThreadCollective: Collective {
    final class Group: @unchecked Sendable {
        let size: Int
        let cond = NSCondition()
        var arrived = 0, generation = 0
        var slots: [[Float]]
        init(size: Int) {
            self.size = size
            slots = Array(repeating: [], count: size)
        }
        /// Every rank's contribution, once all have arrived.
        func exchange(_ rank: Int, _ v: [Float]) -> [[Float]] {
            cond.lock()
            defer { cond.unlock() }
            let gen = generation
            slots[rank] = v
            arrived += 1
            if arrived == size {
                arrived = 0
                generation += 1
                cond.broadcast()
            } else {
                while generation == gen { cond.wait() }
            }
            let all = slots
            // second barrier: nobody overwrites a slot before everyone has read them
            let gen2 = generation
            arrived += 1
            if arrived == size {
                arrived = 0
                generation += 1
                cond.broadcast()
            } else {
                while generation == gen2 { cond.wait() }
            }
            return all
        }
    }
    let rank: Int, size: Int
    let group: Group
    init(rank: Int, group: Group) {
        self.rank = rank
        self.size = group.size
        self.group = group
    }
    func sumInRankOrder(_ values: FloatStorage) throws {
        let all = group.exchange(rank, values.toArray())
        for i in 0..<values.count {
            var s = all[0][i]
            for r in 1..<size { s += all[r][i] }
            values[i] = s
        }
    }
    func allGather(_ bytes: [UInt8]) throws -> [[UInt8]] {
        group.exchange(rank, bytes.map(Float.init)).map { $0.map { UInt8($0) } }
    }
}

/// Synchronised BatchNorm: ranks holding shards of a batch compute what one BatchNorm computes on
/// the whole batch (outputs, running statistics, input gradients; γ and β gradients summed).
final class SyncBatchNormTests: XCTestCase {
    func testShardsMatchTheWholeBatch() throws {
        var g = SeededGenerator(seed: 5)
        let (n, c, h) = (7, 3, 5)
        // an offset mean, so that the combination of the ranks' statistics is exercised
        let x = Tensor.uniform([n, c, h, h], 2, 4, rng: &g), dy = Tensor.uniform([n, c, h, h], -1, 1, rng: &g)
        let gamma = Tensor.uniform([c], 0.5, 1.5, rng: &g), beta = Tensor.uniform([c], -1, 1, rng: &g)
        func layer() throws -> BatchNorm {
            let bn = try BatchNorm(c)
            try bn.weight!.assign(gamma)
            try bn.bias!.assign(beta)
            return bn
        }
        let whole = try layer()
        let y = try whole.forward(x, training: true)
        let dx = try whole.backward(dy, needInputGradient: true)!
        for size in [2, 3] {
            let group = ThreadCollective.Group(size: size)
            let per = x.count / n
            final class Rank: @unchecked Sendable {
                let bn: BatchNorm, x: Tensor, dy: Tensor, coll: ThreadCollective
                var out: (y: [Float], dx: [Float], dg: [Float], db: [Float], rm: [Float], rv: [Float])?
                init(bn: BatchNorm, x: Tensor, dy: Tensor, coll: ThreadCollective) { (self.bn, self.x, self.dy, self.coll) = (bn, x, dy, coll) }
                func run() throws {
                    bn.synchronization = BatchNorm.StatisticsSync(rank: coll.rank, size: coll.size) { [coll] in try coll.sumInRankOrder($0) }
                    let ys = try bn.forward(x, training: true)
                    let dxs = try bn.backward(dy, needInputGradient: true)!
                    out = (ys.scalars, dxs.scalars, bn.weight!.grad.scalars, bn.bias!.grad.scalars,
                           bn.runningMean.value.scalars, bn.runningVar.value.scalars)
                }
            }
            let ranks = try (0..<size).map { r -> Rank in
                let range = DataParallel.shard(count: n, rank: r, size: size)
                let xs = try Tensor(shape: [range.count, c, h, h], scalars: Array(x.scalars[(range.lowerBound * per)..<(range.upperBound * per)]))
                let ds = try Tensor(shape: [range.count, c, h, h], scalars: Array(dy.scalars[(range.lowerBound * per)..<(range.upperBound * per)]))
                return Rank(bn: try layer(), x: xs, dy: ds, coll: ThreadCollective(rank: r, group: group))
            }
            // one thread per rank (a pool narrower than the ranks would leave one waiting forever)
            let done = DispatchGroup()
            for r in ranks {
                done.enter()
                Thread { try! r.run(); done.leave() }.start()
            }
            done.wait()
            let results = ranks.map(\.out)
            let all = results.map { $0! }
            assertClose(all.flatMap(\.y), y.scalars, rtol: 1e-5, atol: 1e-5, "\(size) ranks: outputs")
            assertClose(all.flatMap(\.dx), dx.scalars, rtol: 1e-6, atol: 1e-7, "\(size) ranks: input gradients")
            let dg = (0..<c).map { ch in all.reduce(Float(0)) { $0 + $1.dg[ch] } }, db = (0..<c).map { ch in all.reduce(Float(0)) { $0 + $1.db[ch] } }
            assertClose(dg, whole.weight!.grad.scalars, rtol: 1e-4, atol: 1e-4, "\(size) ranks: γ gradient")
            assertClose(db, whole.bias!.grad.scalars, rtol: 1e-4, atol: 1e-4, "\(size) ranks: β gradient")
            for r in all {
                assertClose(r.rm, whole.runningMean.value.scalars, rtol: 1e-6, atol: 1e-6, "\(size) ranks: running mean")
                assertClose(r.rv, whole.runningVar.value.scalars, rtol: 1e-5, atol: 1e-6, "\(size) ranks: running variance")
            }
        }
    }
}

/// Data-parallel training through `Trainer` with thread ranks: the same weights as one process on
/// the whole batch, for a model without BatchNorm and for ResNet-20 (synchronised BatchNorm).
final class ThreadDataParallelTests: XCTestCase {
    /// ‖a − b‖ / ‖b‖.
    private func relative(_ a: Tensor, _ b: Tensor) -> Double {
        let x = a.scalars, y = b.scalars
        var d = 0.0, n = 0.0
        for j in x.indices { d += Double(x[j] - y[j]) * Double(x[j] - y[j]); n += Double(y[j]) * Double(y[j]) }
        return (d / max(n, 1e-30)).squareRoot()
    }

    /// N thread ranks through `Trainer` (two Adam steps, half of every weight pruned): every rank
    /// holds the same weights, and every rank's masks are the ones pruned. Without
    /// BatchNorm they match one rank and one process within 1e-5. With BatchNorm (ResNet-20), one
    /// rank already differs from one process by rounding alone (SyncBatchNorm adds the same sums in
    /// another order), and Adam turns that into large relative differences in the parameters
    /// BatchNorm makes nearly scale- or shift-invariant (their gradients are sums that almost
    /// cancel): N ranks must stay no further from one rank than that.
    func testThreadRanksTrainLikeOneProcess() throws {
        var g = SeededGenerator(seed: 21)
        let count = 48
        let images = Tensor.uniform([count, 784], -1, 1, rng: &g)
        let data = try LabeledImages(images: images, labels: (0..<count).map { _ in Int32(g.nextUnitFloat() * 10) % 10 })
        for arch in ["mlp", "cnn", "resnet20"] {
            // half of every weight pruned (the same random masks everywhere): masks must survive as they are
            @Sendable func pruned() throws -> Model {
                let m = try Model.make(arch, seed: 3)
                for (k, p) in m.parameters.enumerated() where p.isPrunable {
                    try Prune.randomUnstructured(p, amount: .fraction(0.5), seed: UInt64(k + 1))
                }
                return m
            }
            let masks = try pruned().parameters.map { $0.mask?.kept }
            @Sendable func train(_ dp: DataParallel?) throws -> [Tensor] {
                let m = try pruned()
                _ = try Trainer.train(m, data: data, optimizer: try Adam(learningRate: 1e-3),
                                      config: TrainingConfig(epochs: 1, batchSize: 24, seed: 1, dataParallel: dp))
                // masks as the ranks hold them after training, checked against the masks pruned
                guard m.parameters.map({ $0.mask?.kept }) == masks else { throw TrainingError.badSetting("a mask changed") }
                return m.parameters.map(\.value)
            }
            func ranks(_ size: Int) -> [[Tensor]] {
                let group = ThreadCollective.Group(size: size)
                final class Box: @unchecked Sendable { var out: [[Tensor]] = []; let lock = NSLock() }
                let box = Box()
                box.out = Array(repeating: [], count: size)
                let done = DispatchGroup()
                for r in 0..<size {
                    done.enter()
                    Thread {
                        let w = (try? train(DataParallel(ThreadCollective(rank: r, group: group)))) ?? [] // empty: it failed
                        box.lock.lock(); box.out[r] = w; box.lock.unlock()
                        done.leave()
                    }.start()
                }
                done.wait()
                return box.out
            }
            let plain = try withThreads(1) { try train(nil) }
            let one = ranks(1)[0]
            XCTAssertEqual(one.count, plain.count, "\(arch): one rank failed or changed a mask")
            var worstPlain = 0.0
            for (a, b) in zip(one, plain) { worstPlain = max(worstPlain, relative(a, b)) }
            if arch != "resnet20" { XCTAssertLessThan(worstPlain, 1e-5, "\(arch): one rank against one process") }
            for size in [2, 3] {
                let out = ranks(size)
                for r in 0..<size { XCTAssertEqual(out[r].count, one.count, "\(arch), \(size) ranks: rank \(r) failed or changed a mask") }
                for r in 1..<size { XCTAssertEqual(out[r], out[0], "\(arch), \(size) ranks: rank \(r) holds other weights") }
                var worst = 0.0
                for (a, b) in zip(out[0], one) { worst = max(worst, relative(a, b)) }
                if arch == "resnet20" {
                    // no further from one rank than one rank is from one process (the same sums in
                    // another order)
                    XCTAssertLessThanOrEqual(worst, worstPlain, "\(arch), \(size) ranks against one rank")
                } else {
                    XCTAssertLessThan(worst, 1e-5, "\(arch), \(size) ranks against one rank")
                }
                print("data-parallel \(arch): \(size) ranks vs one rank \(worst); one rank vs one process \(worstPlain)")
            }
        }
    }
}
