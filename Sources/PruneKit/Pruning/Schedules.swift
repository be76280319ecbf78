import Foundation

/// Pruning schedules: one-shot, iterative (prune, fine-tune, repeat), gradual magnitude pruning with
/// the cubic schedule of Zhu & Gupta (2017) during training, and lottery-ticket rewinding.
public enum PruningSchedule {
    /// Prunes `fraction` of the remaining weights per round for `rounds` rounds, calling `fineTune`
    /// after each; the final sparsity is 1 − (1 − fraction)^rounds.
    public static func iterative(_ model: Model, rounds: Int, fraction: Double, request: PruningRequest,
                                 importance: Importance? = nil, fineTune: (Int) throws -> Void) throws {
        guard rounds >= 1 else { throw PruneError.amountOutOfRange("rounds \(rounds) must be at least 1") }
        for r in 0..<rounds {
            var q = request
            q.amount = .fraction(fraction)
            try ModelPruner.prune(model, q, importance: importance)
            try fineTune(r)
        }
    }

    /// Zhu & Gupta's cubic schedule: sparsity at step t for a ramp from `initial` at `start` to `final`
    /// over `steps` (s_t = s_f + (s_i − s_f)(1 − (t − t0)/n)³).
    public static func cubicSparsity(step t: Int, start t0: Int, steps n: Int, initial si: Double, final sf: Double) -> Double {
        if t <= t0 { return si }
        if t >= t0 + n { return sf }
        let x = 1 - Double(t - t0) / Double(n)
        return sf + (si - sf) * x * x * x
    }

    /// The fraction of the *remaining* weights to prune to move from sparsity `current` to `target`.
    public static func fractionToReach(current: Double, target: Double) -> Double {
        guard target > current, current < 1 else { return 0 }
        return min(1, (target - current) / (1 - current))
    }

    /// A training-step hook for gradual magnitude pruning: every `every` steps between `start` and
    /// `start + steps`, prunes (global L1 by default) up to the cubic schedule's sparsity.
    public static func gradualHook(model: Model, start: Int, steps: Int, every: Int, finalSparsity: Double,
                                   request: PruningRequest = PruningRequest(amount: 0.0)) -> (Int) throws -> Void {
        var current = 0.0
        return { step in
            guard step >= start, step <= start + steps, (step - start) % max(every, 1) == 0 else { return }
            let target = cubicSparsity(step: step, start: start, steps: steps, initial: 0, final: finalSparsity)
            let f = fractionToReach(current: current, target: target)
            guard f > 0 else { return }
            var q = request
            q.amount = .fraction(f)
            try ModelPruner.prune(model, q)
            current = target
        }
    }

    /// Lottery-ticket rewinding (Frankle & Carbin 2019): after pruning, the kept weights go back to
    /// their values in `snapshot` (taken at initialisation or an early step); pruned ones stay 0.
    public static func rewind(_ model: Model, to snapshot: [Tensor]) throws {
        let params = model.parameters
        guard snapshot.count == params.count else {
            throw PruneError.unsupported("snapshot has \(snapshot.count) tensors, the model \(params.count)")
        }
        for (p, s) in zip(params, snapshot) { try p.assign(s) } // assign re-applies the mask
    }

    /// The values to rewind to later.
    public static func snapshot(_ model: Model) -> [Tensor] { model.parameters.map(\.value) }
}
