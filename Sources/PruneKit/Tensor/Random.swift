/// A small, fast, seedable generator (xoshiro256**, seeded by SplitMix64). The same seed gives the
/// same stream on every platform, which makes training reproducible.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    /// State from the first four SplitMix64 outputs for `seed`; every seed, 0 included, is valid.
    public init(seed: UInt64) {
        var x = seed
        func next() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s = (next(), next(), next(), next())
    }

    /// The generator's full state (four words), for checkpoints.
    public var state: [UInt64] {
        get { [s.0, s.1, s.2, s.3] }
        set {
            precondition(newValue.count == 4, "a SeededGenerator state has four words")
            s = (newValue[0], newValue[1], newValue[2], newValue[3])
        }
    }

    public mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = (s.3 << 45) | (s.3 >> 19)
        return result
    }

    /// Uniform in [0, 1) with 24 random bits.
    public mutating func nextUnitFloat() -> Float { Float(next() >> 40) * 0x1p-24 }

    /// Uniform in [lo, hi).
    public mutating func uniform(_ lo: Float, _ hi: Float) -> Float { lo + (hi - lo) * nextUnitFloat() }

    /// Standard normal (Box–Muller).
    public mutating func normal() -> Float {
        let u1 = max(Double(next() >> 11) * 0x1p-53, 1e-300)
        let u2 = Double(next() >> 11) * 0x1p-53
        return Float((-2 * _log(u1)).squareRoot() * _cos(2 * Double.pi * u2))
    }
}

import Foundation
@inline(__always) private func _log(_ x: Double) -> Double { Foundation.log(x) }
@inline(__always) private func _cos(_ x: Double) -> Double { Foundation.cos(x) }

extension Tensor {
    /// Uniform values in [lo, hi) from `rng`.
    public static func uniform(_ shape: [Int], _ lo: Float, _ hi: Float, rng: inout SeededGenerator) -> Tensor {
        let t = Tensor(zeroed: shape)
        t.storage.update { _, _ in rng.uniform(lo, hi) }
        return t
    }

    /// Standard-normal values times `scale` from `rng`.
    public static func normal(_ shape: [Int], scale: Float = 1, rng: inout SeededGenerator) -> Tensor {
        let t = Tensor(zeroed: shape)
        t.storage.update { _, _ in scale * rng.normal() }
        return t
    }
}
