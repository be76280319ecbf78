import Foundation
import XCTest
@testable import PruneKit

/// Gradual pruning during sentence distillation (issue 17): the sparsity follows the schedule
/// (Zhu & Gupta's formula written out here, counts by the pinned rounding), masks only grow, N:M
/// and block runs end in their pattern, checkpointing leaves a run unchanged, and bad
/// arguments are refused with nothing written.
final class GradualPruningTests: XCTestCase {
    func sentencesFile(_ name: String, _ work: String) throws -> String {
        let e = try BertFamilyTests.expected(name)
        let text = work + "/s.txt"
        let lines = (0..<4).flatMap { _ in e.sentences.map { $0.text.replacingOccurrences(of: "\n", with: " ") } }
        try (lines.joined(separator: "\n") + "\n").write(toFile: text, atomically: true, encoding: .utf8)
        return text
    }

    func testScheduleMasksAndPatterns() throws {
        let dir = try BertFamilyTests.materialise("l3_h256_cls_cased")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (structure, target) in [(PruningRequest.Structure.unstructured, 0.7), (.nm(2, 4), 0.5), (.block(4, 4), 0.6)] {
            let (enc, _) = try SentenceEncoderFolder.load(dir, pooling: nil)
            let ws = enc.linears.map(\.weight)
            let plan = GradualPruning(target: target, structure: structure, method: .l1,
                                      scope: structure == .unstructured ? .layer : .layer, curve: .cubic, steps: 10, every: 3)
            let pruner = try GradualPruner(plan: plan, weights: ws, names: ws.indices.map { "w\($0)" })
            XCTAssertEqual(pruner.initialSparsity, 0)
            var previous = ws.map(\.effectiveMask)
            var g = SeededGenerator(seed: 7)
            for step in 1...12 {
                // weights move between updates, as in training (masked entries stay 0)
                for w in ws {
                    let noise = Tensor.normal(w.shape, rng: &g).scalars
                    try w.assign(try Tensor(shape: w.shape, scalars: zip(w.value.scalars, noise).map { $0 + 0.001 * $1 }))
                }
                try pruner.step(step)
                for (w, old) in zip(ws, previous) {
                    let m = w.effectiveMask
                    for i in 0..<w.count where !old[flat: i] { XCTAssertFalse(m[flat: i], "an entry came back at step \(step)") }
                }
                previous = ws.map(\.effectiveMask)
                guard [3, 6, 9, 10].contains(step) else { continue }
                let x = 1 - min(Double(step), 10) / 10
                let want = target * (1 - x * x * x)
                XCTAssertEqual(pruner.sparsity, want, accuracy: structure == .unstructured ? 1e-4 : 0.02, "\(structure) step \(step)")
            }
            XCTAssertEqual(pruner.history.map(\.step), [3, 6, 9, 10])
            XCTAssertEqual(pruner.sparsity, target, accuracy: 1e-4, "\(structure) ends at its target (each layer rounds its own count)")
            for w in ws {
                let rows = w.shape[0], cols = w.count / rows, m = w.effectiveMask
                switch structure {
                case .nm:
                    for r in 0..<rows { for g0 in stride(from: 0, to: cols, by: 4) {
                        XCTAssertEqual((0..<4).filter { m[flat: r * cols + g0 + $0] }.count, 2)
                    } }
                case .block:
                    for br in stride(from: 0, to: rows, by: 4) { for bc in stride(from: 0, to: cols, by: 4) {
                        let kept = (0..<16).filter { m[flat: (br + $0 / 4) * cols + bc + $0 % 4] }.count
                        XCTAssertTrue(kept == 0 || kept == 16, "a block is pruned whole")
                    } }
                default:
                    XCTAssertEqual(Double(m.prunedCount) / Double(w.count), target, accuracy: 1.0 / Double(w.count))
                }
            }
        }
    }

    /// With a row mask (a batch's token mask), padded rows count in no Wanda statistic: the scores
    /// and input means equal those recorded on the real rows alone.
    func testWandaStatisticsLeavePaddedRowsOut() throws {
        var g = SeededGenerator(seed: 3)
        let l = try Linear(6, 4, rng: &g)
        let x = Tensor.uniform([5, 6], -1, 1, rng: &g)
        let mask = FloatStorage([1, 0, 1, 1, 0])
        let masked = ActivationStatistics()
        masked.rowMask = { mask }
        try masked.recording([l]) { _ = try l.forward(x, training: false) }
        let real = try Tensor(shape: [3, 6], scalars: [0, 2, 3].flatMap { Array(x.scalars[($0 * 6)..<(($0 + 1) * 6)]) })
        let plain = ActivationStatistics(), all = ActivationStatistics()
        try plain.recording([l]) { _ = try l.forward(real, training: false) }
        try all.recording([l]) { _ = try l.forward(x, training: false) }
        XCTAssertEqual(try masked.wandaScores(for: l.weight).scalars, try plain.wandaScores(for: l.weight).scalars)
        XCTAssertEqual(try masked.inputMeans(for: l.weight), try plain.inputMeans(for: l.weight))
        XCTAssertNotEqual(try all.wandaScores(for: l.weight).scalars, try plain.wandaScores(for: l.weight).scalars)
    }

    func testCommandRunsWithCheckpointsAndRefuses() throws {
        let name = "l3_h256_cls_cased"
        let dir = try BertFamilyTests.materialise(name)
        let work = NSTemporaryDirectory() + "gradual-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir); try? FileManager.default.removeItem(atPath: work) }
        let text = try sentencesFile(name, work)
        // the sparsity rises over the whole run (2 epochs of batches of 4), so a resume lands mid-schedule
        let lines = try String(contentsOfFile: text, encoding: .utf8).split(separator: "\n").count
        let steps = 2 * ((lines + 3) / 4)
        let common = ["finetune", "--model", dir, "--teacher", dir, "--input", text, "--epochs", "2", "--batch", "4", "--lr", "1e-4",
                      "--target-sparsity", "0.5", "--method", "wanda", "--prune-every", "2", "--schedule-steps", "\(steps)", "--json"]
        // uninterrupted
        let a = try runPrunekit(common + ["--out", work + "/a"])
        XCTAssertEqual(a.status, 0, a.err)
        let ra = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(a.out.utf8)) as? [String: Any])
        XCTAssertEqual(try XCTUnwrap(ra["sparsity"] as? Double), 0.5, accuracy: 1e-3)
        // with checkpoints on, the same run gives the same weights
        let ck = work + "/ck.safetensors"
        let b = try runPrunekit(common + ["--out", work + "/b", "--checkpoint", ck, "--checkpoint-every", "4"])
        XCTAssertEqual(b.status, 0, b.err)
        XCTAssertTrue(FileManager.default.fileExists(atPath: ck))
        let wa = try SafeTensors.read(work + "/a/model.safetensors").tensors
        let wb = try SafeTensors.read(work + "/b/model.safetensors").tensors
        XCTAssertEqual(Set(wa.keys), Set(wb.keys))
        for (k, v) in wa { XCTAssertEqual(v.scalars, wb[k]?.scalars, k) }
        // killed after its first checkpoint and resumed (weights, masks, Adam state and the schedule's
        // position; checkpoints every 4 steps fall on mask updates every 2, so no Wanda statistics are
        // pending), the run ends with the uninterrupted run's weights
        let ck2 = work + "/ck2.safetensors"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: prunekitBinary)
        p.arguments = common + ["--out", work + "/c", "--checkpoint", ck2, "--checkpoint-every", "4"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        let deadline = Date().addingTimeInterval(120)
        while !FileManager.default.fileExists(atPath: ck2) && Date() < deadline && p.isRunning { usleep(10_000) }
        let killedEarly = p.isRunning
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        XCTAssertTrue(killedEarly, "the run finished before it could be killed")
        XCTAssertFalse(FileManager.default.fileExists(atPath: work + "/c"), "no output before the end")
        let c = try runPrunekit(common + ["--out", work + "/c", "--checkpoint", ck2, "--checkpoint-every", "4", "--resume"])
        XCTAssertEqual(c.status, 0, c.err)
        XCTAssertTrue(c.err.contains("resuming from"), c.err)
        let rc = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(c.out.utf8)) as? [String: Any])
        // the checkpoint lies mid-run: mask updates came after the step it resumed from
        let line = try XCTUnwrap(c.err.split(separator: "\n").first { $0.hasPrefix("resuming from") }, c.err)
        let from = try XCTUnwrap(line.components(separatedBy: "step ").last.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }, c.err)
        let updates = try XCTUnwrap((ra["gradual"] as? [String: Any])?["updates"] as? [[String: Any]]).compactMap { $0["step"] as? Int }
        XCTAssertGreaterThan(from, 0)
        XCTAssertTrue(updates.contains { $0 > from }, "resumed at step \(from), updates at \(updates)")
        XCTAssertEqual(try XCTUnwrap(rc["sparsity"] as? Double), 0.5, accuracy: 1e-3)
        let wc = try SafeTensors.read(work + "/c/model.safetensors").tensors
        for (k, v) in wa { XCTAssertEqual(v.scalars, wc[k]?.scalars, "resumed: \(k)") }
        // refusals: one line naming the argument, nothing written
        for (extra, words) in [(["--target-sparsity", "1.0"], "--target-sparsity"), (["--structure", "2:8"], "2:8"),
                               (["--schedule-steps", "1000"], "--schedule-steps"), (["--structure", "block:5x5"], "block"),
                               (["--schedule", "exp"], "--schedule")] {
            var args = common
            if let i = args.firstIndex(of: extra[0]) { args[i + 1] = extra[1] } else { args += extra }
            let r = try runPrunekit(args + ["--out", work + "/bad"])
            XCTAssertNotEqual(r.status, 0, "\(extra)")
            XCTAssertTrue(r.err.contains(words), "\(extra): \(r.err)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: work + "/bad"), "\(extra) wrote a folder")
        }
    }
}
