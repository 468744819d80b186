/// SplitMix64 (Steele, Lea and Flood, 2014, with Stafford's "mix13" finaliser), the one copy of it: the seeding of
/// ``SeededGenerator``, the counter-based stream of ``SeededWeights`` and the synthetic slides' texture.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    /// The golden-ratio increment between successive states.
    public static let increment: UInt64 = 0x9E37_79B9_7F4A_7C15

    /// The state; the next output is `mix(state + increment)`.
    public var state: UInt64

    public init(state: UInt64) { self.state = state }

    /// The next 64 random bits.
    @inlinable
    public mutating func next() -> UInt64 {
        state &+= Self.increment
        return Self.mix(state)
    }

    /// The finaliser: a bijective mix of 64 bits.
    @inlinable @inline(__always)
    public static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Output `index` (0, 1, …) of the generator started at `seed`, without stepping through the ones before.
    @inlinable @inline(__always)
    public static func output(seed: UInt64, index: UInt64) -> UInt64 {
        mix(seed &+ (index &+ 1) &* increment)
    }
}
