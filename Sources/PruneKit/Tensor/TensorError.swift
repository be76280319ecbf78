/// Bad shapes or values given to a tensor operation. Messages name the shapes involved.
public enum TensorError: Error, CustomStringConvertible, Equatable {
    case shapeMismatch(expected: [Int], got: [Int])
    case invalidShape([Int])
    case countMismatch(shape: [Int], count: Int)
    case indexOutOfRange(index: [Int], shape: [Int])
    case nonFinite(String)
    case tooLarge([Int])
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
