import Foundation

/// Training progress on stderr: a live bar (epoch, batch, loss, samples/s, ETA) on a terminal, and
/// one plain line per epoch when stderr is a file or a pipe.
public final class ProgressBar {
    private let interactive: Bool
    private var lastDraw = Date.distantPast
    private let label: String
    private let enabled: Bool

    /// `enabled` false prints nothing (the ranks of a data-parallel run other than rank 0).
    public init(label: String = "train", interactive: Bool? = nil, enabled: Bool = true) {
        self.label = label
        self.interactive = interactive ?? (isatty(STDERR_FILENO) != 0)
        self.enabled = enabled
    }

    /// Reports `p`: on a terminal, redraws the bar at most every 0.1 s and on an epoch's last batch (then
    /// ends the line); otherwise writes one line per epoch. Prints nothing when disabled.
    public func update(_ p: BatchProgress) {
        guard enabled else { return }
        if interactive {
            let now = Date()
            guard p.epochDone || now.timeIntervalSince(lastDraw) > 0.1 else { return }
            lastDraw = now
            let width = 24
            let frac = Double(p.batch) / Double(max(p.batches, 1))
            let filled = Int(frac * Double(width))
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            let done = Double((p.epoch - 1) * p.batches + p.batch)
            let total = Double(p.epochs * p.batches)
            let eta = p.elapsed / max(done, 1) * (total - done)
            let line = String(format: "\r%@ epoch %d/%d [%@] %d/%d loss %.4f %.0f samples/s ETA %@",
                              label, p.epoch, p.epochs, bar, p.batch, p.batches, p.loss, p.samplesPerSecond,
                              Self.duration(eta))
            FileHandle.standardError.write(Data((line + "\u{1B}[K").utf8))
            if p.epochDone { FileHandle.standardError.write(Data("\n".utf8)) }
        } else if p.epochDone {
            let line = String(format: "%@ epoch %d/%d: loss %.4f, %.0f samples/s, %.1f s elapsed\n",
                              label, p.epoch, p.epochs, p.loss, p.samplesPerSecond, p.elapsed)
            FileHandle.standardError.write(Data(line.utf8))
        }
    }

    static func duration(_ s: Double) -> String {
        let t = Int(s.rounded())
        return t >= 60 ? "\(t / 60)m\(String(format: "%02d", t % 60))s" : "\(t)s"
    }
}
