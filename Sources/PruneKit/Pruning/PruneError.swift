/// Bad pruning requests. Thrown before anything changes: a failed call leaves every mask as it was.
public enum PruneError: Error, CustomStringConvertible, Equatable {
    case amountOutOfRange(String)
    case nonFiniteScores(String)
    case invalidDimension(dim: Int, shape: [Int])
    case invalidPattern(String)
    case missingStatistics(String)
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
    case fraction(Double)
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
