import Foundation

extension SyntheticSlideTruth {
    /// One painted artifact (`csmil synth --artifacts`), in level-0 pixels.
    public struct Artifact: Codable, Sendable, Equatable {
        /// `pen`, `blur` or `fold`.
        public var kind: String
        /// Pen: the ink, `blue`, `green` or `black`.
        public var colour: String?
        /// Pen: the ink's transmittance per channel (R, G, B), 0…1, multiplied into the pixels under it.
        public var ink: [Double]?
        /// Pen and fold: the centre line, `[[x, y], …]`; everything within `half_width` of it is covered.
        public var path: [[Double]]?
        /// Pen and fold: the half-width of the stroke or band.
        public var halfWidth: Double?
        /// Blur: the region blurred.
        public var ellipse: Ellipse?
        /// Blur: the Gaussian's σ, level-0 pixels.
        public var sigma: Double?

        public init(
            kind: String, colour: String? = nil, ink: [Double]? = nil, path: [[Double]]? = nil,
            halfWidth: Double? = nil, ellipse: Ellipse? = nil, sigma: Double? = nil
        ) {
            self.kind = kind
            self.colour = colour
            self.ink = ink
            self.path = path
            self.halfWidth = halfWidth
            self.ellipse = ellipse
            self.sigma = sigma
        }

        /// Whether the level-0 point `(x, y)` lies under the artifact.
        public func contains(_ x: Double, _ y: Double) -> Bool {
            if let ellipse {
                return SyntheticEllipse(ellipse).form(x, y) <= 1
            }
            guard let path, let halfWidth, !path.isEmpty else { return false }
            let points = path.map { (x: $0[0], y: $0[1]) }
            for index in 0..<max(points.count - 1, 1) {
                let a = points[index]
                let b = points[min(index + 1, points.count - 1)]
                if SyntheticArtifacts.distance(x, y, a, b) <= halfWidth { return true }
            }
            return false
        }
    }

    /// How much of a level-0 rectangle an artifact kind covers, sampled on a `samples × samples` lattice of
    /// point centres: `area` is the share of the rectangle under the artifact; `tissue` the share of its tissue
    /// (by `tissue_ellipses`) under the artifact (0 without tissue).
    public func coverage(
        of kind: SyntheticArtifactKind, x: Double, y: Double, width: Double, height: Double, samples: Int = 16
    ) -> (area: Double, tissue: Double) {
        let artifacts = (self.artifacts ?? []).filter { $0.kind == kind.rawValue }
        guard !artifacts.isEmpty else { return (0, 0) }
        let ellipses = tissueEllipses.map(SyntheticEllipse.init)
        var covered = 0
        var tissue = 0
        var coveredTissue = 0
        for j in 0..<samples {
            for i in 0..<samples {
                let px = x + width * (Double(i) + 0.5) / Double(samples)
                let py = y + height * (Double(j) + 0.5) / Double(samples)
                let under = artifacts.contains { $0.contains(px, py) }
                let isTissue = ellipses.contains { $0.form(px, py) <= 1 }
                if under { covered += 1 }
                if isTissue { tissue += 1 }
                if under && isTissue { coveredTissue += 1 }
            }
        }
        return (
            Double(covered) / Double(samples * samples), tissue > 0 ? Double(coveredTissue) / Double(tissue) : 0
        )
    }
}

extension SyntheticEllipse {
    init(_ truth: SyntheticSlideTruth.Ellipse) {
        self.init(
            centerX: truth.centerX, centerY: truth.centerY, semiMajor: truth.semiMajor, semiMinor: truth.semiMinor,
            angle: truth.angle)
    }
}
