/// Bad pruning requests. Thrown before anything changes: a failed call leaves every mask as it was.
public enum PruneError: Error, CustomStringConvertible, Equatable {
    /// Thrown for an amount outside its range (a fraction outside [0, 1], a count below 0 or above what is
    /// still unpruned, a ratio or round count out of bounds), or one that would remove a whole group.
    case amountOutOfRange(String)
    /// Thrown when importance scores, or the weights ranked directly, hold NaN or infinity; the string
    /// names them.
    case nonFiniteScores(String)
    /// Thrown when `dim` (negative counts from the end) is not a dimension of a tensor of `shape`.
    case invalidDimension(dim: Int, shape: [Int])
    /// Thrown for a malformed pattern: N:M without 0 ≤ N ≤ M and M ≥ 1 or on a weight of rank below 2, a
    /// block under 1×1, an unsupported norm order, or an unknown structure name.
    case invalidPattern(String)
    /// Thrown when a method lacks the statistics it needs (calibration, gradients, a Gram matrix) or a
    /// calibration gets no examples.
    case missingStatistics(String)
    /// Thrown for a request PruneKit does not carry out: a method or scope the structure does not take, a
    /// layer it cannot trace, or a removal that would disconnect the network or change its outputs.
    case unsupported(String)

    public var description: String {
        switch self {
        case let .amountOutOfRange(s): return "amount out of range: \(s)"
        case let .nonFiniteScores(s): return "\(s) contains NaN or infinite values; nothing was pruned"
        case let .invalidDimension(d, s): return "dimension \(d) is invalid for a tensor of shape \(s)"
        case let .invalidPattern(s): return "invalid pattern: \(s)"
        case let .missingStatistics(s): return "missing statistics: \(s)"
        case let .unsupported(s): return "unsupported: \(s)"
        }
    }
}

/// How much to prune: a fraction of the entries (or units) still unpruned, or an absolute count —
/// PyTorch's rule (a float is a fraction, an int a count). The count of a fraction is
/// round-half-to-even(fraction × remaining).
public enum Amount: Sendable, Equatable, ExpressibleByFloatLiteral, ExpressibleByIntegerLiteral, CustomStringConvertible {
    /// A fraction in [0, 1] of what is still unpruned; the count is rounded half to even.
    case fraction(Double)
    /// Exactly this many, from 0 to what is still unpruned.
    case count(Int)

    public init(floatLiteral value: Double) { self = .fraction(value) }
    public init(integerLiteral value: Int) { self = .count(value) }

    /// How many of `remaining` to prune; throws when the amount is out of range.
    public func count(of remaining: Int) throws -> Int {
        switch self {
        case let .fraction(f):
            guard f.isFinite, f >= 0, f <= 1 else { throw PruneError.amountOutOfRange("fraction \(f) is not in [0, 1]") }
            return Int((f * Double(remaining)).rounded(.toNearestOrEven))
        case let .count(n):
            guard n >= 0 else { throw PruneError.amountOutOfRange("count \(n) is negative") }
            guard n <= remaining else {
                throw PruneError.amountOutOfRange("count \(n) exceeds the \(remaining) entries still unpruned")
            }
            return n
        }
    }

    public var description: String {
        switch self {
        case let .fraction(f): return "\(f)"
        case let .count(n): return "\(n)"
        }
    }
}
