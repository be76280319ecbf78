/// Bad shapes or values given to a tensor operation. Messages name the shapes involved.
public enum TensorError: Error, CustomStringConvertible, Equatable {
    /// An operand's shape is not the one the operation needs (a mask unlike its weight, labels unlike the batch).
    case shapeMismatch(expected: [Int], got: [Int])
    /// A negative dimension, or a size the operation cannot take (a batch of 0, a weight of rank below 2).
    case invalidShape([Int])
    /// Element data whose count is not the product of `shape`.
    case countMismatch(shape: [Int], count: Int)
    /// A multi-index of the wrong rank or outside `shape`, or a row range outside the first dimension
    /// (then `index` is [start, n]).
    case indexOutOfRange(index: [Int], shape: [Int])
    /// NaN or an infinity where finite values are required; the string names the value.
    case nonFinite(String)
    /// A shape whose element count overflows or exceeds Int.max / 4.
    case tooLarge([Int])
    /// A reshape to a shape with a different element count.
    case cannotReshape(from: [Int], to: [Int])

    public var description: String {
        switch self {
        case let .shapeMismatch(e, g): return "shape mismatch: expected \(e), got \(g)"
        case let .invalidShape(s): return "invalid shape \(s): dimensions must be non-negative"
        case let .countMismatch(s, c): return "shape \(s) needs \(s.reduce(1, *)) elements, got \(c)"
        case let .indexOutOfRange(i, s): return "index \(i) out of range for shape \(s)"
        case let .nonFinite(what): return "\(what) contains NaN or infinite values"
        case let .tooLarge(s): return "shape \(s) has more elements than memory can address"
        case let .cannotReshape(f, t): return "cannot view shape \(f) (\(f.reduce(1, *)) elements) as \(t) (\(t.reduce(1, *)) elements)"
        }
    }
}
