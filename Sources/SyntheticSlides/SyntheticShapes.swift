import Foundation

/// A rotated ellipse in level-0 pixel coordinates, with the coefficients of its quadratic form
/// `A dx² + B dx dy + C dy² ≤ 1` precomputed so a row of pixels can be tested in constant time.
struct SyntheticEllipse: Sendable, Equatable {
    var centerX: Double
    var centerY: Double
    var semiMajor: Double
    var semiMinor: Double
    /// Radians, counter-clockwise from the x axis to the major axis.
    var angle: Double

    private let a: Double
    private let b: Double
    private let c: Double
    /// Half the extent of the ellipse along y (its bounding box is centre ± these).
    let halfHeight: Double
    /// Half the extent along x.
    let halfWidth: Double

    init(centerX: Double, centerY: Double, semiMajor: Double, semiMinor: Double, angle: Double) {
        self.centerX = centerX
        self.centerY = centerY
        self.semiMajor = semiMajor
        self.semiMinor = semiMinor
        self.angle = angle
        let cosine = cos(angle)
        let sine = sin(angle)
        let major2 = 1 / (semiMajor * semiMajor)
        let minor2 = 1 / (semiMinor * semiMinor)
        a = cosine * cosine * major2 + sine * sine * minor2
        b = 2 * cosine * sine * (major2 - minor2)
        c = sine * sine * major2 + cosine * cosine * minor2
        halfWidth = ((semiMajor * cosine) * (semiMajor * cosine) + (semiMinor * sine) * (semiMinor * sine)).squareRoot()
        halfHeight = ((semiMajor * sine) * (semiMajor * sine) + (semiMinor * cosine) * (semiMinor * cosine))
            .squareRoot()
    }

    /// The same ellipse with both axes multiplied by `factor` about its centre.
    func scaled(by factor: Double) -> SyntheticEllipse {
        SyntheticEllipse(
            centerX: centerX, centerY: centerY, semiMajor: semiMajor * factor, semiMinor: semiMinor * factor,
            angle: angle)
    }

    /// The same ellipse with both axes shortened by `amount` (the inner edge of a ring).
    func inset(by amount: Double) -> SyntheticEllipse {
        SyntheticEllipse(
            centerX: centerX, centerY: centerY, semiMajor: max(semiMajor - amount, 1),
            semiMinor: max(semiMinor - amount, 1), angle: angle)
    }

    /// The quadratic form at `(x, y)`: ≤ 1 inside the ellipse.
    @inline(__always)
    func form(_ x: Double, _ y: Double) -> Double {
        let dx = x - centerX
        let dy = y - centerY
        return (a * dx + b * dy) * dx + c * dy * dy
    }

    /// The x interval covered on the horizontal line at `y`, or nil when the line misses.
    func span(atY y: Double) -> (lower: Double, upper: Double)? {
        let dy = y - centerY
        let linear = b * dy
        let discriminant = linear * linear - 4 * a * (c * dy * dy - 1)
        guard discriminant >= 0 else { return nil }
        let root = discriminant.squareRoot()
        return (centerX + (-linear - root) / (2 * a), centerX + (-linear + root) / (2 * a))
    }
}

/// The tissue of a synthetic slide: a union of ellipses. A level-0 pixel is tissue when its
/// centre `(x + 0.5, y + 0.5)` lies inside one of them.
struct SyntheticTissue: Sendable, Equatable {
    var ellipses: [SyntheticEllipse]

    /// The tissue pixels of row `y` (pixel centres at `y + 0.5`) within `0..<width`, as sorted,
    /// disjoint, half-open ranges of x.
    func spans(row y: Int, width: Int, into spans: inout [Range<Int>]) {
        spans.removeAll(keepingCapacity: true)
        self.spans(atY: Double(y) + 0.5, pixelWidth: width, into: &spans)
    }

    /// The pixel indices `i` in `0..<count` whose centre `x = i + 0.5` lies inside the tissue on
    /// the line at `y`, as sorted, disjoint, half-open ranges (appended to `spans`, which must be
    /// empty).
    func spans(atY y: Double, pixelWidth count: Int, into spans: inout [Range<Int>]) {
        for ellipse in ellipses {
            guard abs(y - ellipse.centerY) <= ellipse.halfHeight, let (lower, upper) = ellipse.span(atY: y) else {
                continue
            }
            // i + 0.5 ≥ lower and i + 0.5 ≤ upper.
            let first = max(0, Int((lower - 0.5).rounded(.up)))
            let last = min(count - 1, Int((upper - 0.5).rounded(.down)))
            if first <= last { spans.append(first..<(last + 1)) }
        }
        guard spans.count > 1 else { return }
        spans.sort { $0.lowerBound < $1.lowerBound }
        var merged = 0
        for index in 1..<spans.count {
            if spans[index].lowerBound <= spans[merged].upperBound {
                spans[merged] = spans[merged].lowerBound..<max(spans[merged].upperBound, spans[index].upperBound)
            } else {
                merged += 1
                spans[merged] = spans[index]
            }
        }
        spans.removeLast(spans.count - merged - 1)
    }

    /// Whether the point `(x, y)` (continuous level-0 coordinates) is tissue.
    func contains(_ x: Double, _ y: Double) -> Bool {
        ellipses.contains { $0.form(x, y) <= 1 }
    }
}
