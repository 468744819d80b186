import Foundation

/// The slide artifacts `csmil synth --artifacts` paints (issue 16), so that QC is measured against known truth.
public enum SyntheticArtifactKind: String, Sendable, CaseIterable, Codable, Comparable {
    /// Marker-pen strokes (blue, green, black) drawn over tissue and glass, as pathologists circle regions.
    case pen
    /// Out-of-focus regions: the tissue under an ellipse blurred with a Gaussian.
    case blur
    /// Folded tissue: a band where the tissue lies twice, so it absorbs twice (its transmittance squared).
    case fold

    public static func < (lhs: Self, rhs: Self) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// Where a synthetic slide's artifacts lie and how they are painted over the tissue texture.
///
/// Layout (seeded, stream 20): up to ``perKind`` artifacts of each requested kind, placed a round at a time (pen,
/// blur, fold, then again), each centred on tissue and kept apart from the others (no two artifacts overlap, so each tile's truth names at most one kind). Sizes are in
/// micrometres, so a 40x slide holds the same artifacts at twice the pixels:
/// - pen: an arc of a circle 700–1,200 µm in radius over 100–200°, a stroke 250–500 µm wide, in blue, green or
///   black ink (per-channel transmittances, multiplied into the pixels, with ±12 % density grain);
/// - blur: an ellipse with semi-axes 450–800 µm, blurred by a Gaussian of σ 1–2 µm (2–4 pixels at 20x);
/// - fold: a straight band 1,600–2,600 µm long and 500–800 µm wide, its pixels' transmittance squared (two layers
///   of the same tissue: twice the optical density, darker and more saturated).
struct SyntheticArtifacts: Sendable {
    /// The most artifacts of each kind a slide gets.
    static let perKind = 2

    /// A pen stroke: a polyline and the half-width of the ink around it.
    struct Stroke: Sendable {
        var points: [(x: Double, y: Double)]
        var halfWidth: Double
        var colour: String
        /// Transmittance of the ink per channel (R, G, B), 0…1.
        var ink: SIMD3<Float>
    }

    /// An out-of-focus region.
    struct Blur: Sendable {
        var ellipse: SyntheticEllipse
        /// Gaussian σ in level-0 pixels.
        var sigma: Double
    }

    /// A fold: a straight band (the segment and the half-width around it).
    struct Fold: Sendable {
        var start: (x: Double, y: Double)
        var end: (x: Double, y: Double)
        var halfWidth: Double
    }

    var strokes: [Stroke] = []
    var blurs: [Blur] = []
    var folds: [Fold] = []

    /// Inks: name and transmittance of blue, green and black marker.
    static let inks: [(String, SIMD3<Float>)] = [
        ("blue", [0.16, 0.33, 0.72]), ("green", [0.18, 0.58, 0.30]), ("black", [0.10, 0.10, 0.12]),
    ]

    var isEmpty: Bool { strokes.isEmpty && blurs.isEmpty && folds.isEmpty }

    /// Lays out the artifacts of `kinds` over `tissue`.
    static func layOut(
        kinds: Set<SyntheticArtifactKind>, configuration: SyntheticSlide.Configuration, tissue: SyntheticTissue
    ) -> SyntheticArtifacts {
        var artifacts = SyntheticArtifacts()
        guard !kinds.isEmpty, !tissue.ellipses.isEmpty else { return artifacts }
        var random = SyntheticRandom(seed: configuration.seed, stream: 20)
        let perMicrometre = 1 / configuration.mpp
        let width = Double(configuration.width)
        let height = Double(configuration.height)
        // Each artifact's footprint as discs (centre, radius); footprints are kept 100 µm apart.
        typealias Disc = (x: Double, y: Double, radius: Double)
        var taken: [Disc] = []
        let margin = 100 * perMicrometre
        /// The first of up to 200 tissue points whose footprint is free; the footprint is then taken.
        func place(_ footprint: (Double, Double) -> [Disc]) -> (x: Double, y: Double)? {
            for _ in 0..<200 {
                let x = random.uniform(0...width)
                let y = random.uniform(0...height)
                guard tissue.contains(x, y) else { continue }
                let discs = footprint(x, y)
                let free = discs.allSatisfy { disc in
                    taken.allSatisfy { hypot($0.x - disc.x, $0.y - disc.y) > $0.radius + disc.radius + margin }
                }
                if free {
                    taken += discs
                    return (x, y)
                }
            }
            return nil
        }
        /// Discs covering everything within `radius` of the polyline `points`.
        func discs(along points: [(x: Double, y: Double)], radius: Double) -> [Disc] {
            var discs: [Disc] = []
            for index in 0..<max(points.count - 1, 1) {
                let a = points[index]
                let b = points[min(index + 1, points.count - 1)]
                let steps = max(1, Int((hypot(b.x - a.x, b.y - a.y) / radius).rounded(.up)))
                for step in 0...steps {
                    let t = Double(step) / Double(steps)
                    discs.append((a.x + (b.x - a.x) * t, a.y + (b.y - a.y) * t, radius * 1.12))
                }
            }
            return discs
        }
        var inkIndex = Int(random.next() % UInt64(inks.count))
        // Round by round, one of each kind, so that every kind gets a place before any gets a second.
        for _ in 0..<perKind {
            for kind in SyntheticArtifactKind.allCases where kinds.contains(kind) {
                switch kind {
                case .pen:
                    let radius = random.uniform(700...1200) * perMicrometre
                    let halfWidth = random.uniform(125...250) * perMicrometre
                    let span = random.uniform(100...200) * Double.pi / 180
                    let start = random.uniform(0...(2 * Double.pi))
                    func arc(_ x: Double, _ y: Double) -> [(x: Double, y: Double)] {
                        (0...24).map { step in
                            let angle = start + span * Double(step) / 24
                            return (x: x + radius * cos(angle), y: y + radius * sin(angle))
                        }
                    }
                    guard let centre = place({ discs(along: arc($0, $1), radius: halfWidth) }) else { continue }
                    let (name, ink) = inks[inkIndex % inks.count]
                    inkIndex += 1
                    artifacts.strokes.append(
                        Stroke(points: arc(centre.x, centre.y), halfWidth: halfWidth, colour: name, ink: ink))
                case .blur:
                    let major = random.uniform(450...800) * perMicrometre
                    let minor = major * random.uniform(0.6...1)
                    let angle = random.uniform(0...Double.pi)
                    guard let centre = place({ [($0, $1, major)] }) else { continue }
                    artifacts.blurs.append(
                        Blur(
                            ellipse: SyntheticEllipse(
                                centerX: centre.x, centerY: centre.y, semiMajor: major, semiMinor: minor, angle: angle),
                            sigma: random.uniform(1...2) * perMicrometre))
                case .fold:
                    let half = random.uniform(800...1300) * perMicrometre
                    let halfWidth = random.uniform(250...400) * perMicrometre
                    let angle = random.uniform(0...Double.pi)
                    let (dx, dy) = (half * cos(angle), half * sin(angle))
                    guard
                        let centre = place({
                            discs(along: [($0 - dx, $1 - dy), ($0 + dx, $1 + dy)], radius: halfWidth)
                        })
                    else { continue }
                    artifacts.folds.append(
                        Fold(
                            start: (centre.x - dx, centre.y - dy), end: (centre.x + dx, centre.y + dy),
                            halfWidth: halfWidth))
                }
            }
        }
        return artifacts
    }

    // MARK: - Geometry

    /// The x interval (continuous) where the horizontal line at `y` lies within `radius` of the segment from `a`
    /// to `b` (a capsule, which is convex, so the interval is one piece), or nil.
    static func capsuleSpan(
        _ a: (x: Double, y: Double), _ b: (x: Double, y: Double), radius: Double, y: Double
    ) -> (lower: Double, upper: Double)? {
        var lower = Double.infinity
        var upper = -Double.infinity
        for end in [a, b] {
            let dy = y - end.y
            guard abs(dy) <= radius else { continue }
            let half = (radius * radius - dy * dy).squareRoot()
            lower = min(lower, end.x - half)
            upper = max(upper, end.x + half)
        }
        // The rectangle: points whose projection on the segment falls inside it and whose distance from the line
        // is at most the radius; both conditions are linear in x along the row.
        let ux = b.x - a.x
        let uy = b.y - a.y
        let length = (ux * ux + uy * uy).squareRoot()
        if length > 0 {
            let (cx, cy) = (ux / length, uy / length)
            // t(x) = (x − a.x)·cx + (y − a.y)·cy ∈ [0, length]; n(x) = −(x − a.x)·cy + (y − a.y)·cx ∈ [−r, r].
            var low = -Double.infinity
            var high = Double.infinity
            func clip(_ slope: Double, _ offset: Double, _ minimum: Double, _ maximum: Double) {
                // minimum ≤ slope·(x − a.x) + offset ≤ maximum
                if abs(slope) < 1e-12 {
                    if offset < minimum || offset > maximum { low = .infinity }
                    return
                }
                let first = (minimum - offset) / slope + a.x
                let second = (maximum - offset) / slope + a.x
                low = max(low, min(first, second))
                high = min(high, max(first, second))
            }
            clip(cx, (y - a.y) * cy, 0, length)
            clip(-cy, (y - a.y) * cx, -radius, radius)
            if low <= high {
                lower = min(lower, low)
                upper = max(upper, high)
            }
        }
        return lower <= upper ? (lower, upper) : nil
    }

    /// The distance from `(x, y)` to the segment from `a` to `b`.
    static func distance(_ x: Double, _ y: Double, _ a: (x: Double, y: Double), _ b: (x: Double, y: Double)) -> Double {
        let ux = b.x - a.x
        let uy = b.y - a.y
        let squared = ux * ux + uy * uy
        let t = squared > 0 ? min(max(((x - a.x) * ux + (y - a.y) * uy) / squared, 0), 1) : 0
        return hypot(x - a.x - t * ux, y - a.y - t * uy)
    }

    /// Pixel index ranges of row `y` (pixel centres at `y + 0.5`) within `0..<width` covered by a capsule chain.
    static func spans(
        of points: [(x: Double, y: Double)], radius: Double, row y: Int, width: Int
    ) -> [Range<Int>] {
        let centre = Double(y) + 0.5
        var spans: [Range<Int>] = []
        for index in 0..<max(points.count - 1, 1) {
            let a = points[index]
            let b = points[min(index + 1, points.count - 1)]
            guard let (lower, upper) = capsuleSpan(a, b, radius: radius, y: centre) else { continue }
            let first = max(0, Int((lower - 0.5).rounded(.up)))
            let last = min(width - 1, Int((upper - 0.5).rounded(.down)))
            if first <= last { spans.append(first..<(last + 1)) }
        }
        guard spans.count > 1 else { return spans }
        spans.sort { $0.lowerBound < $1.lowerBound }
        var merged = [spans[0]]
        for span in spans.dropFirst() {
            if span.lowerBound <= merged[merged.count - 1].upperBound {
                merged[merged.count - 1] =
                    merged[merged.count - 1].lowerBound..<max(merged[merged.count - 1].upperBound, span.upperBound)
            } else {
                merged.append(span)
            }
        }
        return merged
    }

    // MARK: - Painting

    /// Paints the artifacts over full-width level-0 rows `rows` already painted into `strip` (rows of `width × 3`
    /// bytes): folds, then blur (from the painter's pixels around the region), then ink on top.
    func apply(
        to strip: UnsafeMutablePointer<UInt8>, rows: Range<Int>, width: Int, height: Int, painter: TissuePainter,
        seed: UInt64
    ) {
        guard !isEmpty else { return }
        for y in rows {
            let line = strip + (y - rows.lowerBound) * width * 3
            for fold in folds {
                for span in Self.spans(of: [fold.start, fold.end], radius: fold.halfWidth, row: y, width: width) {
                    Self.fold(line, span, origin: 0)
                }
            }
        }
        for blur in blurs { applyBlur(blur, to: strip, rows: rows, width: width, height: height, painter: painter) }
        let grainKey = SyntheticRandom.pixelKey(seed: seed, stream: 21)
        for y in rows {
            let line = strip + (y - rows.lowerBound) * width * 3
            for stroke in strokes {
                for span in Self.spans(of: stroke.points, radius: stroke.halfWidth, row: y, width: width) {
                    for x in span {
                        let grain = SyntheticRandom.pixelHash(x, y, key: grainKey)
                        let density = 0.88 + Float(grain & 0xFF) / 255 * 0.24
                        let pixel = line + x * 3
                        for channel in 0..<3 {
                            let transmittance = pow(stroke.ink[channel], density)
                            pixel[channel] = UInt8(min(max(Float(pixel[channel]) * transmittance + 0.5, 0), 255))
                        }
                    }
                }
            }
        }
    }

    /// Two layers of the same tissue: each channel's transmittance squared.
    /// `line` holds the pixels from column `origin` on.
    private static func fold(_ line: UnsafeMutablePointer<UInt8>, _ span: Range<Int>, origin: Int) {
        for x in span {
            for channel in 0..<3 {
                let index = (x - origin) * 3 + channel
                let value = Int(line[index])
                line[index] = UInt8((value * value + 127) / 255)
            }
        }
    }

    /// Blurs the strip's pixels inside `blur`'s ellipse: paints the region's rows and columns with a margin of 3σ
    /// (folds applied, as in the strip) and convolves them with a separable Gaussian.
    private func applyBlur(
        _ blur: Blur, to strip: UnsafeMutablePointer<UInt8>, rows: Range<Int>, width: Int, height: Int,
        painter: TissuePainter
    ) {
        let ellipse = blur.ellipse
        let top = max(rows.lowerBound, Int((ellipse.centerY - ellipse.halfHeight).rounded(.down)))
        let bottom = min(rows.upperBound, Int((ellipse.centerY + ellipse.halfHeight).rounded(.up)) + 1)
        guard top < bottom else { return }
        let margin = Int((3 * blur.sigma).rounded(.up))
        let left = max(0, Int((ellipse.centerX - ellipse.halfWidth).rounded(.down)) - margin)
        let right = min(width, Int((ellipse.centerX + ellipse.halfWidth).rounded(.up)) + 1 + margin)
        guard left < right else { return }
        let windowTop = max(0, top - margin)
        let windowBottom = min(height, bottom + margin)
        let columns = right - left
        let windowRows = windowBottom - windowTop
        // The window's pixels as the strip would hold them before blurring.
        var window = [UInt8](repeating: 255, count: columns * windowRows * 3)
        var scratch = TissuePainter.Scratch()
        window.withUnsafeMutableBufferPointer { buffer in
            for row in 0..<windowRows {
                let y = windowTop + row
                let out = buffer.baseAddress! + row * columns * 3
                painter.paint(row: y, from: left, count: columns, into: out, scratch: &scratch)
                for fold in folds {
                    for span in Self.spans(of: [fold.start, fold.end], radius: fold.halfWidth, row: y, width: width)
                    where span.upperBound > left && span.lowerBound < right {
                        Self.fold(out, max(span.lowerBound, left)..<min(span.upperBound, right), origin: left)
                    }
                }
            }
        }
        // Separable Gaussian, clamped at the window's edges.
        let kernel = (-margin...margin).map { exp(-Double($0 * $0) / (2 * blur.sigma * blur.sigma)) }
        let total = kernel.reduce(0, +)
        let weights = kernel.map { Float($0 / total) }
        var horizontal = [Float](repeating: 0, count: columns * windowRows * 3)
        for row in 0..<windowRows {
            for column in 0..<columns {
                var sum: SIMD3<Float> = .zero
                for (offset, weight) in weights.enumerated() {
                    let source = min(max(column + offset - margin, 0), columns - 1)
                    let index = (row * columns + source) * 3
                    sum += weight * SIMD3(Float(window[index]), Float(window[index + 1]), Float(window[index + 2]))
                }
                let index = (row * columns + column) * 3
                horizontal[index] = sum.x
                horizontal[index + 1] = sum.y
                horizontal[index + 2] = sum.z
            }
        }
        for y in top..<bottom {
            let row = y - windowTop
            guard let (lower, upper) = ellipse.span(atY: Double(y) + 0.5) else { continue }
            let first = max(left, Int((lower - 0.5).rounded(.up)))
            let last = min(right - 1, Int((upper - 0.5).rounded(.down)))
            guard first <= last else { continue }
            let line = strip + (y - rows.lowerBound) * width * 3
            for x in first...last {
                let column = x - left
                var sum: SIMD3<Float> = .zero
                for (offset, weight) in weights.enumerated() {
                    let source = min(max(row + offset - margin, 0), windowRows - 1)
                    let index = (source * columns + column) * 3
                    sum += weight * SIMD3(horizontal[index], horizontal[index + 1], horizontal[index + 2])
                }
                line[x * 3] = UInt8(min(max(sum.x + 0.5, 0), 255))
                line[x * 3 + 1] = UInt8(min(max(sum.y + 0.5, 0), 255))
                line[x * 3 + 2] = UInt8(min(max(sum.z + 0.5, 0), 255))
            }
        }
    }

    // MARK: - Truth

    /// The artifacts as `NAME.truth.json` lists them.
    var truth: [SyntheticSlideTruth.Artifact] {
        strokes.map {
            SyntheticSlideTruth.Artifact(
                kind: SyntheticArtifactKind.pen.rawValue, colour: $0.colour,
                ink: [Double($0.ink.x), Double($0.ink.y), Double($0.ink.z)], path: $0.points.map { [$0.x, $0.y] },
                halfWidth: $0.halfWidth)
        }
            + blurs.map {
                SyntheticSlideTruth.Artifact(
                    kind: SyntheticArtifactKind.blur.rawValue,
                    ellipse: .init(
                        centerX: $0.ellipse.centerX, centerY: $0.ellipse.centerY, semiMajor: $0.ellipse.semiMajor,
                        semiMinor: $0.ellipse.semiMinor, angle: $0.ellipse.angle), sigma: $0.sigma)
            }
            + folds.map {
                SyntheticSlideTruth.Artifact(
                    kind: SyntheticArtifactKind.fold.rawValue,
                    path: [[$0.start.x, $0.start.y], [$0.end.x, $0.end.y]],
                    halfWidth: $0.halfWidth)
            }
    }
}
