/// Paints rows of a synthetic slide at level 0: white background, H&E-like texture inside the
/// tissue (eosin-pink to haematoxylin-purple, seeded noise, nuclei), and the toy anomalies.
///
/// Texture, nuclei and micro discs are laid out in 20x pixels (0.5 µm), so a 40x slide shows the
/// same tissue at twice the pixels; micro discs and their crosses are painted per 20x pixel, so at
/// 40x each 20x pixel is a uniform 2 × 2 block and the spec's 2 × 2 mean gives back the 20x image.
struct TissuePainter: Sendable {
    /// Per-thread working memory, reused from row to row.
    struct Scratch {
        var spans: [Range<Int>] = []
        var noise: [Float] = []
        var nuclei: [Nucleus] = []
        var nucleusKey: (row: Int, first: Int, count: Int) = (-1, 0, 0)
        var discs: [Disc] = []
        var discKey: (row: Int, first: Int, count: Int) = (-1, 0, 0)
        var rings: [Int] = []

        /// Empty scratch memory.
        init() {}
    }

    /// A nucleus: a dark purple disc in one 16 µm cell, in 20x pixel coordinates.
    struct Nucleus {
        var centerX: Float
        var centerY: Float
        var radius2: Float
        var shade: Float
    }

    /// A micro-anomaly disc in one 48 µm cell; its centre `(centerX, centerY)` is a pixel corner
    /// in 20x pixels (both odd).
    struct Disc {
        var centerX: Int
        var centerY: Int
        var present: Bool
        var cross: Bool
    }

    private let slide: SyntheticSlide
    private let seed: UInt64
    private let grainKey: UInt64
    /// Level-0 pixels per 20x pixel: 1 or 2.
    private let factor: Int
    private let width: Int

    /// The eosin-pink and haematoxylin-purple ends of the texture.
    private static let eosin: SIMD3<Float> = [240, 172, 208]
    private static let purple: SIMD3<Float> = [198, 126, 188]
    private static let nucleus: SIMD3<Float> = [92, 52, 140]
    /// A micro disc is mid-dark purple so that its cross can be a checkerboard of near-white and
    /// near-black whose mean equals the disc: `bright + dark == 2 · disc` in every channel.
    private static let disc: (UInt8, UInt8, UInt8) = (128, 112, 144)
    private static let crossBright: (UInt8, UInt8, UInt8) = (255, 224, 255)
    private static let crossDark: (UInt8, UInt8, UInt8) = (1, 0, 33)
    private static let ring: SIMD3<Float> = [72, 32, 98]

    /// Texture noise lattice, nucleus cells and micro-disc cells, in 20x pixels.
    static let noiseCell = 64
    static let nucleusCell = 32
    static let discCell = 96
    /// Micro disc radius and cross half-length, in 20x pixels (7 µm and 6.5 µm).
    static let discRadius = 14
    static let crossHalfLength = 13

    init(slide: SyntheticSlide) {
        self.slide = slide
        seed = slide.configuration.seed
        grainKey = SyntheticRandom.pixelKey(seed: seed, stream: 10)
        factor = slide.configuration.magnification / 20
        width = slide.configuration.width
    }

    /// Paints `count` pixels of level-0 row `y` starting at column `x0` into `out` (RGB).
    /// Pixels outside the slide are white.
    func paint(row y: Int, from x0: Int, count: Int, into out: UnsafeMutablePointer<UInt8>, scratch: inout Scratch) {
        out.update(repeating: 255, count: count * 3)
        guard y >= 0, y < slide.configuration.height else { return }
        slide.tissue.spans(row: y, width: width, into: &scratch.spans)
        guard !scratch.spans.isEmpty else { return }
        let x1 = x0 + count
        let y20 = y / factor
        let inverseFactor = 1 / Float(factor)
        let v20 = (Float(y) + 0.5) * inverseFactor
        prepareNoise(row: y20, x0: x0, x1: x1, scratch: &scratch)
        prepareNuclei(row: y20, x0: x0, x1: x1, scratch: &scratch)
        let micro = slide.configuration.anomaly == .micro
        if micro { prepareDiscs(row: y20, x0: x0, x1: x1, scratch: &scratch) }
        scratch.rings.removeAll(keepingCapacity: true)
        let centerY = Double(y) + 0.5
        for (index, ring) in slide.rings.enumerated()
        where abs(centerY - ring.shape.centerY) <= ring.shape.halfHeight
            && ring.shape.centerX + ring.shape.halfWidth >= Double(x0)
            && ring.shape.centerX - ring.shape.halfWidth <= Double(x1)
        {
            scratch.rings.append(index)
        }
        let noiseFirst = (x0 / factor) / Self.noiseCell
        let nucleusFirst = scratch.nucleusKey.first
        let discFirst = scratch.discKey.first
        for span in scratch.spans {
            let lower = max(span.lowerBound, x0)
            let upper = min(span.upperBound, x1)
            guard lower < upper else { continue }
            for x in lower..<upper {
                let pixel = out + (x - x0) * 3
                let x20 = x / factor
                // Micro-anomaly disc, painted per 20x pixel without noise.
                if micro {
                    let cell = scratch.discs[x20 / Self.discCell - discFirst]
                    if cell.present {
                        let dx = 2 * (x20 - cell.centerX) + 1
                        let dy = 2 * (y20 - cell.centerY) + 1
                        if dx * dx + dy * dy <= 4 * Self.discRadius * Self.discRadius {
                            var color = Self.disc
                            if cell.cross {
                                let half = 2 * Self.crossHalfLength
                                let onVertical = (dx == -1 || dx == 1) && abs(dy) < half
                                let onHorizontal = (dy == -1 || dy == 1) && abs(dx) < half
                                if onVertical || onHorizontal {
                                    color = (x20 + y20) & 1 == 0 ? Self.crossBright : Self.crossDark
                                }
                            }
                            pixel[0] = color.0
                            pixel[1] = color.1
                            pixel[2] = color.2
                            continue
                        }
                    }
                }
                // Texture: value noise between eosin and purple, plus fine grain.
                let u = x20 & (Self.noiseCell - 1)
                let cellX = x20 / Self.noiseCell - noiseFirst
                let t =
                    scratch.noise[cellX] + (scratch.noise[cellX + 1] - scratch.noise[cellX]) * Float(u)
                    * (1 / Float(Self.noiseCell))
                let grain = SyntheticRandom.pixelHash(x, y, key: grainKey)
                let fine = Float(Int(grain & 15) - 7)
                var r = Self.eosin.x + (Self.purple.x - Self.eosin.x) * t + fine
                var g = Self.eosin.y + (Self.purple.y - Self.eosin.y) * t + fine
                var b = Self.eosin.z + (Self.purple.z - Self.eosin.z) * t + fine
                // Nuclei.
                let nucleus = scratch.nuclei[x20 / Self.nucleusCell - nucleusFirst]
                let ndx = (Float(x) + 0.5) * inverseFactor - nucleus.centerX
                let ndy = v20 - nucleus.centerY
                if ndx * ndx + ndy * ndy <= nucleus.radius2 {
                    let jitter = Float(Int((grain >> 8) & 7) - 3)
                    r = Self.nucleus.x * nucleus.shade + jitter
                    g = Self.nucleus.y * nucleus.shade + jitter
                    b = Self.nucleus.z * nucleus.shade + jitter
                }
                // Macro-anomaly rings: a dark band, a pale interior.
                for index in scratch.rings {
                    let px = Double(x) + 0.5
                    guard slide.rings[index].shape.form(px, centerY) <= 1 else { continue }
                    if slide.rings[index].inner.form(px, centerY) > 1 {
                        let jitter = Float(Int((grain >> 16) & 7) - 3)
                        r = Self.ring.x + jitter
                        g = Self.ring.y + jitter
                        b = Self.ring.z + jitter
                    } else {
                        r = 255 - (255 - r) * 0.3
                        g = 255 - (255 - g) * 0.3
                        b = 255 - (255 - b) * 0.3
                    }
                    break
                }
                pixel[0] = Self.byte(r)
                pixel[1] = Self.byte(g)
                pixel[2] = Self.byte(b)
            }
        }
    }

    /// `value` rounded and clamped to 0…255.
    @inline(__always)
    private static func byte(_ value: Float) -> UInt8 {
        UInt8(min(max(value + 0.5, 0), 255))
    }

    /// The value-noise lattice interpolated to 20x row `y20`, for the lattice columns under x0..<x1.
    private func prepareNoise(row y20: Int, x0: Int, x1: Int, scratch: inout Scratch) {
        let first = (x0 / factor) / Self.noiseCell
        let last = ((x1 - 1) / factor) / Self.noiseCell + 1
        let gridY = y20 / Self.noiseCell
        let fy = Float(y20 % Self.noiseCell) / Float(Self.noiseCell)
        scratch.noise.removeAll(keepingCapacity: true)
        for gridX in first...last {
            let top = Float(SyntheticRandom.unit(gridX, gridY, seed: seed, stream: 11))
            let bottom = Float(SyntheticRandom.unit(gridX, gridY + 1, seed: seed, stream: 11))
            scratch.noise.append(top + (bottom - top) * fy)
        }
    }

    /// The nuclei of the nucleus-cell row holding 20x row `y20` (cached while the row stays).
    private func prepareNuclei(row y20: Int, x0: Int, x1: Int, scratch: inout Scratch) {
        let cellY = y20 / Self.nucleusCell
        let first = (x0 / factor) / Self.nucleusCell
        let count = ((x1 - 1) / factor) / Self.nucleusCell - first + 1
        guard scratch.nucleusKey != (cellY, first, count) else { return }
        scratch.nucleusKey = (cellY, first, count)
        scratch.nuclei.removeAll(keepingCapacity: true)
        let side = Float(Self.nucleusCell)
        for cellX in first..<(first + count) {
            let bits = SyntheticRandom.hash(cellX, cellY, seed: seed, stream: 12)
            let present = bits & 0xFF < 150
            let radius = 4 + Float((bits >> 8) & 0xFF) / 255 * 3.5
            let room = side - 2 * radius - 1
            let centerX = Float(cellX) * side + radius + 0.5 + room * Float((bits >> 16) & 0xFF) / 255
            let centerY = Float(cellY) * side + radius + 0.5 + room * Float((bits >> 24) & 0xFF) / 255
            let shade = 0.8 + Float((bits >> 32) & 0xFF) / 255 * 0.35
            scratch.nuclei.append(
                Nucleus(centerX: centerX, centerY: centerY, radius2: present ? radius * radius : -1, shade: shade))
        }
    }

    /// The micro discs of the disc-cell row holding 20x row `y20` (cached while the row stays).
    private func prepareDiscs(row y20: Int, x0: Int, x1: Int, scratch: inout Scratch) {
        let cellY = y20 / Self.discCell
        let first = (x0 / factor) / Self.discCell
        let count = ((x1 - 1) / factor) / Self.discCell - first + 1
        guard scratch.discKey != (cellY, first, count) else { return }
        scratch.discKey = (cellY, first, count)
        scratch.discs.removeAll(keepingCapacity: true)
        for cellX in first..<(first + count) {
            scratch.discs.append(disc(cellX: cellX, cellY: cellY))
        }
    }

    /// The micro disc of one cell: present in 55 % of cells; in a positive region 80 % of the
    /// discs carry a cross (about three crosses per 256-px tile at 20x).
    func disc(cellX: Int, cellY: Int) -> Disc {
        let bits = SyntheticRandom.hash(cellX, cellY, seed: seed, stream: 13)
        let margin = Self.discRadius + 2
        let room = (Self.discCell - 2 * margin) / 2
        // Odd centres (pixel edges), so the cross's arms, the two pixels either side of the
        // centre, start on even 20x pixels and 2 × 2 means never straddle them.
        let centerX = cellX * Self.discCell + margin + 2 * Int((bits >> 8) % UInt64(room)) + 1
        let centerY = cellY * Self.discCell + margin + 2 * Int((bits >> 24) % UInt64(room)) + 1
        let present = bits & 0xFF < 141
        let cross =
            present && (bits >> 40) & 0xFF < 205 && slide.isPositive(x: centerX * factor, y: centerY * factor)
        return Disc(centerX: centerX, centerY: centerY, present: present, cross: cross)
    }
}
