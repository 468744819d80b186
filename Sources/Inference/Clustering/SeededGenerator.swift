import Foundation

/// The seeded pseudo-random generator behind k-means++ seeding and bag sampling: xoshiro256**
/// (Blackman and Vigna, 2018), its 256-bit state filled from the seed by SplitMix64.
///
/// Every draw this project makes goes through the methods below rather than the standard
/// library's `random(in:using:)`, whose algorithms are not promised to stay the same across
/// Swift releases: a seed gives the same numbers on every platform and toolchain (the normal
/// draw uses `log`, `sqrt` and `cos` from the C library, which are correctly rounded in practice
/// on glibc but not guaranteed to be bit-identical everywhere).
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var s0: UInt64
    private var s1: UInt64
    private var s2: UInt64
    private var s3: UInt64

    /// A generator whose state is four successive SplitMix64 outputs from `seed`.
    public init(seed: UInt64) {
        var splitMix = SplitMix64(state: seed)
        s0 = splitMix.next()
        s1 = splitMix.next()
        s2 = splitMix.next()
        s3 = splitMix.next()
    }

    /// The next 64 random bits (xoshiro256**).
    public mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = s3 << 45 | s3 >> 19
        return result
    }

    /// A uniform double in [0, 1): the top 53 bits of one draw, times 2⁻⁵³.
    public mutating func nextUniform() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    /// A uniform integer in `0 ..< bound` (Lemire's multiply-and-reject, unbiased).
    public mutating func nextInt(below bound: Int) -> Int {
        precondition(bound > 0, "bound must be positive")
        let range = UInt64(bound)
        var product = next().multipliedFullWidth(by: range)
        if product.low < range {
            let threshold = (0 &- range) % range
            while product.low < threshold {
                product = next().multipliedFullWidth(by: range)
            }
        }
        return Int(product.high)
    }

    /// A normal draw with the given mean and standard deviation (Box–Muller, one value per two
    /// uniform draws; the second value is discarded so that each call consumes exactly two draws).
    public mutating func nextNormal(mean: Double = 0, standardDeviation: Double = 1) -> Double {
        let u1 = 1 - nextUniform()  // (0, 1]: log never sees 0
        let u2 = nextUniform()
        let z = (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
        return mean + standardDeviation * z
    }
}
