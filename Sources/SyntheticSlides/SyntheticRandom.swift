import Inference

/// The random numbers behind a synthetic slide: a seeded generator for its geometry and a
/// stateless hash for per-pixel and per-cell texture, so any strip of the slide can be painted
/// on its own and every run with the same seed paints the same bytes.
struct SyntheticRandom: RandomNumberGenerator {
    private var generator: SplitMix64

    /// A SplitMix64 generator started from `seed` and a `stream` that separates independent uses.
    init(seed: UInt64, stream: UInt64 = 0) {
        generator = SplitMix64(state: seed ^ (stream &* 0xD1B5_4A32_D192_ED03))
    }

    /// The next 64 random bits (SplitMix64).
    mutating func next() -> UInt64 { generator.next() }

    /// A uniform `Double` in `range`.
    mutating func uniform(_ range: ClosedRange<Double>) -> Double {
        range.lowerBound + (range.upperBound - range.lowerBound) * Double(next() >> 11) * 0x1p-53
    }

    /// SplitMix64's finaliser: a bijective mix of 64 bits.
    @inline(__always)
    static func mix(_ value: UInt64) -> UInt64 { SplitMix64.mix(value) }

    /// 64 random bits for integer coordinates `(x, y)` in a named `stream` of a slide's `seed`.
    @inline(__always)
    static func hash(_ x: Int, _ y: Int, seed: UInt64, stream: UInt64) -> UInt64 {
        mix(seed &+ mix(UInt64(bitPattern: Int64(x)) &+ mix(UInt64(bitPattern: Int64(y)) ^ (stream << 56))))
    }

    /// 64 random bits for a pixel `(x, y)` (both below 2³²) under a `key` made by `pixelKey`:
    /// one mix, for the per-pixel grain.
    @inline(__always)
    static func pixelHash(_ x: Int, _ y: Int, key: UInt64) -> UInt64 {
        mix(key ^ (UInt64(truncatingIfNeeded: y) << 32 | UInt64(truncatingIfNeeded: x)))
    }

    /// The key of `pixelHash` for a seed and stream.
    static func pixelKey(seed: UInt64, stream: UInt64) -> UInt64 {
        mix(mix(seed) ^ stream)
    }

    /// A uniform `Double` in [0, 1) for `(x, y)`.
    @inline(__always)
    static func unit(_ x: Int, _ y: Int, seed: UInt64, stream: UInt64) -> Double {
        Double(hash(x, y, seed: seed, stream: stream) >> 11) * 0x1p-53
    }
}
