import Foundation
import Images

/// `report.html`: one self-contained page per slide for the pathologist (issue 16). Everything is inline (styles,
/// images as `data:` URIs); no script, no network, no font files. The overlays are switched with two checkboxes
/// and CSS alone, so the page works where scripts are blocked and cannot raise a script error.
///
/// Order: the slide's identity and the result (probability, label, threshold, QC status with its reasons) first;
/// then the thumbnail with the attention heatmap and the QC flags as overlays the reader switches, with a legend
/// whose colour scale carries values; the top-attention tiles as 20x crops with their 10x and 5x contexts (as the
/// model sees them) and their scale weights; QC's figures; the model (name, architecture, file hashes, versions);
/// the timings.
public struct ReportPage: Sendable {
    /// An image for the page, already encoded (PNG).
    public struct Image: Sendable, Equatable {
        public var png: Data
        public var width: Int
        public var height: Int

        public init(png: Data, width: Int, height: Int) {
            self.png = png
            self.width = width
            self.height = height
        }

        var dataURI: String { "data:image/png;base64," + png.base64EncodedString() }
    }

    /// One of the tiles the model attended to most.
    public struct TopTile: Sendable, Equatable {
        /// The tile's record (position, attention, scale weights).
        public var record: TileRecord
        /// The 20x tile, its 10x context and its 5x context, each 256 pixels as the backbones see them.
        public var views: [Image]

        public init(record: TileRecord, views: [Image]) {
            self.record = record
            self.views = views
        }
    }

    /// The report.
    public var report: SlideReport
    /// The slide's thumbnail (nil for a slide that could not be read).
    public var thumbnail: Image?
    /// The attention overlay: one pixel per grid tile (``overlayPixels(tiles:kind:)``), stretched over the
    /// thumbnail.
    public var attentionOverlay: Image?
    /// The QC overlay, one pixel per grid tile.
    public var qcOverlay: Image?
    /// The share of the thumbnail's width and height the overlays cover (the grid's columns × tile width over the
    /// slide's width; the last column may pass the slide's edge).
    public var overlayExtent: (width: Double, height: Double) = (1, 1)
    /// The lowest and highest attention among the drawn tiles (the colour scale's ends).
    public var attentionRange: (low: Float, high: Float)?
    /// The top-attention tiles, highest first.
    public var topTiles: [TopTile]

    public init(
        report: SlideReport, thumbnail: Image? = nil, attentionOverlay: Image? = nil, qcOverlay: Image? = nil,
        overlayExtent: (width: Double, height: Double) = (1, 1), attentionRange: (low: Float, high: Float)? = nil,
        topTiles: [TopTile] = []
    ) {
        self.report = report
        self.thumbnail = thumbnail
        self.attentionOverlay = attentionOverlay
        self.qcOverlay = qcOverlay
        self.overlayExtent = overlayExtent
        self.attentionRange = attentionRange
        self.topTiles = topTiles
    }

    /// What an overlay shows.
    public enum OverlayKind: Sendable {
        /// Drawn tiles in their viridis colour (scaled from the lowest to the highest attention).
        case attention
        /// Flagged tiles in their first check's colour, excluded ones more opaque.
        case qc
    }

    /// An overlay's RGBA pixels, one per grid tile (`columns × rows`, row-major), transparent where nothing is
    /// shown; nil when there are no tiles.
    public static func overlayPixels(
        tiles: [TileRecord], kind: OverlayKind
    ) -> (width: Int, height: Int, rgba: [UInt8])? {
        guard let columns = tiles.map(\.column).max().map({ $0 + 1 }), let rows = tiles.map(\.row).max().map({ $0 + 1 })
        else { return nil }
        var rgba = [UInt8](repeating: 0, count: columns * rows * 4)
        let drawn = tiles.compactMap(\.attention).filter(\.isFinite)
        let low = drawn.min() ?? 0
        let high = drawn.max() ?? 0
        for tile in tiles {
            let index = (tile.row * columns + tile.column) * 4
            let colour: RGBColour
            let alpha: UInt8
            switch kind {
            case .attention:
                guard let attention = tile.attention, attention.isFinite else { continue }
                colour = HeatmapRenderer.colour(at: high > low ? (attention - low) / (high - low) : 1)
                alpha = 160
            case .qc:
                guard let check = tile.qc.first else { continue }
                colour = QualityMaskRenderer.colour(of: check)
                alpha = tile.excluded ? 170 : 80
            }
            rgba[index] = colour.red
            rgba[index + 1] = colour.green
            rgba[index + 2] = colour.blue
            rgba[index + 3] = alpha
        }
        return (columns, rows, rgba)
    }

    /// The tiles to show as crops: the `count` with the highest attention (ties: grid order), not excluded.
    public static func topTiles(_ tiles: [TileRecord], count: Int) -> [TileRecord] {
        let drawn = tiles.filter { !$0.excluded && ($0.attention?.isFinite ?? false) }
        let sorted = drawn.enumerated().sorted {
            ($0.element.attention ?? 0, -$0.offset) > ($1.element.attention ?? 0, -$1.offset)
        }
        return sorted.prefix(count).map(\.element)
    }

    // MARK: - HTML

    /// The page's HTML.
    public var html: String {
        var page = """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(escape(report.slide.name)) — \(escape(headline))</title>
            <style>\(Self.style)</style>
            </head>
            <body>

            """
        page += identitySection + viewerSection + topTilesSection + qualitySection + modelSection + timingSection
        page += """
            <footer>Written by csmil \(escape(report.versions?.csmil ?? "")) from report.json (\(escape(report.schema)), \
            event \(escape(report.eventID))). An algorithm's result for a pathologist to review; not a diagnosis.</footer>
            </body>
            </html>

            """
        return page
    }

    /// "REVIEW: …", the label with its probability, or why there is no score.
    var headline: String {
        var parts: [String] = []
        if let qc = report.qc, qc.needsReview { parts.append("QC review") }
        switch report.status {
        case .scored:
            if let result = report.result {
                parts.append("\(result.label) (p = \(Self.decimal(result.probability, 3)))")
            }
        case .noTissue: parts.append("no tissue to score")
        case .failed: parts.append("not scored: \(report.error?.code ?? "failed")")
        }
        return parts.joined(separator: " · ")
    }

    private var identitySection: String {
        let slide = report.slide
        var html = "<header>\n<h1>\(escape(slide.name))</h1>\n"
        // QC first: a slide to review says so before its score.
        if let qc = report.qc {
            if qc.needsReview {
                html += "<p class=\"banner review\" id=\"qc-status\"><strong>QC: review</strong> — "
                html += escape(Self.reasonsText(qc)) + ". The score below rests on the \(qc.usable) usable tiles.</p>\n"
            } else {
                html += "<p class=\"banner pass\" id=\"qc-status\"><strong>QC: pass</strong>"
                html += qc.excluded > 0 ? " — \(qc.excluded) tile(s) left out of scoring.</p>\n" : "</p>\n"
            }
        } else {
            html += "<p class=\"banner off\" id=\"qc-status\"><strong>QC: off</strong></p>\n"
        }
        html += "<div class=\"result\" id=\"result\">\n"
        switch report.status {
        case .scored:
            if let result = report.result {
                html += "<div class=\"probability\"><span class=\"label\">probability</span>"
                html += "<span class=\"value\" id=\"probability\">\(Self.decimal(result.probability, 3))</span></div>\n"
                html +=
                    "<div class=\"decision \(result.positive ?? (result.probability >= result.threshold) ? "positive" : "negative")\">"
                html += "<span class=\"label\">result</span><span class=\"value\">\(escape(result.label))</span>"
                html +=
                    "<span class=\"note\">positive at probability ≥ \(Self.decimal(result.threshold, 3))</span></div>\n"
                let heads = result.headProbabilities.map { Self.decimal($0, 3) }.joined(separator: ", ")
                html +=
                    "<div class=\"heads\"><span class=\"label\">heads</span><span class=\"value small\">\(heads)</span></div>\n"
            }
        case .noTissue:
            html += "<div class=\"decision none\"><span class=\"value\">No score</span><span class=\"note\">"
            html +=
                report.qc.map { $0.usable == 0 && report.tiles.count > 0 } == true
                ? "QC left no usable tile." : "No tissue was found on the slide."
            html += "</span></div>\n"
        case .failed:
            html += "<div class=\"decision none\"><span class=\"value\">Not scored</span><span class=\"note\">"
            html += escape(report.error.map { "\($0.message) (\($0.code))" } ?? "failed") + "</span></div>\n"
        }
        html += "</div>\n<table class=\"facts\">\n"
        var rows: [(String, String)] = [
            ("slide", slide.name), ("path", slide.path), ("fingerprint", slide.fingerprint),
            ("event id", report.eventID), ("status", report.status.rawValue),
        ]
        if let vendor = slide.vendor { rows.append(("format", vendor)) }
        if let width = slide.width, let height = slide.height { rows.append(("size", "\(width) × \(height) pixels")) }
        if let mpp = slide.mpp {
            rows.append(
                (
                    "scan",
                    "\(Self.decimal(mpp, 4)) µm/pixel" + (slide.magnification.map { ", \(Self.decimal($0, 1))x" } ?? "")
                ))
        }
        if let resolution = report.resolution {
            rows.append(
                (
                    "read at",
                    "level \(resolution.level), \(Self.decimal(resolution.mpp, 4)) µm/pixel (from \(resolution.source))"
                ))
        }
        if let tissue = report.tissue {
            rows.append(
                (
                    "tissue",
                    "\(Self.decimal(tissue.areaMM2, 2)) mm², \(Self.decimal(tissue.fraction * 100, 1)) % of the slide"
                ))
        }
        rows.append(
            (
                "tiles",
                "\(report.tiles.count) tissue tiles at 20x"
                    + (report.tiles.drawn.map { ", \($0) drawn into bags" } ?? "")
            ))
        for (name, value) in rows {
            html += "<tr><th>\(escape(name))</th><td>\(escape(value))</td></tr>\n"
        }
        html += "</table>\n</header>\n"
        return html
    }

    private var viewerSection: String {
        guard let thumbnail else { return "" }
        let width = Self.decimal(overlayExtent.width * 100, 4)
        let height = Self.decimal(overlayExtent.height * 100, 4)
        var html = "<section id=\"viewer\">\n<h2>Where the model looked</h2>\n"
        html +=
            "<input type=\"checkbox\" id=\"show-attention\" checked><label for=\"show-attention\">attention heatmap</label>\n"
        html += "<input type=\"checkbox\" id=\"show-qc\"\(report.qc?.needsReview == true ? " checked" : "")>"
        html += "<label for=\"show-qc\">QC flags</label>\n"
        html += "<div class=\"stage\" style=\"max-width:\(thumbnail.width)px\">\n"
        html += "<img class=\"thumbnail\" alt=\"slide thumbnail\" src=\"\(thumbnail.dataURI)\">\n"
        let style = "style=\"width:\(width)%;height:\(height)%\""
        if let overlay = attentionOverlay {
            html += "<img class=\"overlay attention\" alt=\"attention heatmap\" \(style) src=\"\(overlay.dataURI)\">\n"
        }
        if let overlay = qcOverlay {
            html += "<img class=\"overlay qc\" alt=\"QC flags\" \(style) src=\"\(overlay.dataURI)\">\n"
        }
        html += "</div>\n<div class=\"legend\" id=\"legend\">\n"
        if let (low, high) = attentionRange {
            let middle = (low + high) / 2
            html += "<div class=\"scale\"><span class=\"label\">attention</span><span class=\"bar\">"
            html += "<span class=\"ramp\"></span><span class=\"ticks\"><span>\(HeatmapRenderer.label(low))</span>"
            html += "<span>\(HeatmapRenderer.label(middle))</span><span>\(HeatmapRenderer.label(high))</span></span>"
            html += "</span></div>\n"
        }
        html += "<p>\(escape(HeatmapRenderer.attentionSentence)) Tiles without colour were never drawn into a bag "
        html += "or were left out by QC.</p>\n<p class=\"swatches\">QC flags: "
        for (check, colour, label) in QualityMaskRenderer.colours {
            html +=
                "<span class=\"swatch\" style=\"background:\(Self.css(colour))\"></span>\(escape(label)) (\(check)) "
        }
        html += "— strong colour: left out of scoring; faint: flagged, still scored.</p>\n</div>\n</section>\n"
        return html
    }

    private var topTilesSection: String {
        guard !topTiles.isEmpty else { return "" }
        var html = "<section id=\"top-tiles\">\n<h2>Tiles the model attended to most</h2>\n"
        html += "<p>Each tile at 20x (256 × 256 pixels, 128 µm), then its 10x and 5x contexts (512 and 1024 pixels "
        html += "around it, reduced to 256 as the model sees them; the square marks the tile). Scale weights r are "
        html += "the model's raw weights of each magnification for this tile, averaged over its heads; the share "
        html += "is their softmax.</p>\n<table class=\"tiles\">\n<tr><th>#</th><th>attention</th><th>20x</th>"
        html += "<th>10x context</th><th>5x context</th><th>scale weights</th></tr>\n"
        for (rank, tile) in topTiles.enumerated() {
            let record = tile.record
            html += "<tr><td>\(rank + 1)</td><td class=\"number\">"
            html += record.attention.map { HeatmapRenderer.label($0) } ?? "–"
            html +=
                "<br><span class=\"small\">column \(record.column), row \(record.row)<br>x \(record.x), y \(record.y)</span></td>"
            for (index, view) in tile.views.enumerated() {
                html += "<td><img class=\"crop\" alt=\"tile \(rank + 1) at \(TileRecord.scaleNames[min(index, 2)])\" "
                html += "width=\"\(view.width)\" height=\"\(view.height)\" src=\"\(view.dataURI)\"></td>"
            }
            html += "<td><table class=\"weights\"><tr><th></th><th>r</th><th>share</th></tr>"
            for (index, name) in TileRecord.scaleNames.enumerated() {
                let weight =
                    index < record.scaleWeights.count ? Self.decimal(Double(record.scaleWeights[index]), 3) : "–"
                let share = index < record.scaleAttention.count ? record.scaleAttention[index] : .nan
                let colour = HeatmapRenderer.scaleColours[index]
                html += "<tr><th><span class=\"swatch\" style=\"background:\(Self.css(colour))\"></span>\(name)</th>"
                html += "<td class=\"number\">\(weight)</td><td class=\"number\">"
                html += share.isFinite ? "\(Self.decimal(Double(share) * 100, 1)) %" : "–"
                html += "</td></tr>"
            }
            html += "</table></td></tr>\n"
        }
        html += "</table>\n</section>\n"
        return html
    }

    private var qualitySection: String {
        guard let qc = report.qc else { return "" }
        var html = "<section id=\"qc\">\n<h2>Quality control</h2>\n<table class=\"facts\">\n"
        html +=
            "<tr><th>status</th><td>\(escape(qc.status))\(qc.reasons.isEmpty ? "" : " (" + escape(qc.reasons.joined(separator: ", ")) + ")")</td></tr>\n"
        for check in ["pen", "blur", "fold"] {
            let fraction = qc.fractions[check] ?? 0
            let excluded = qc.exclude.contains(check) ? "excluded" : "flagged only"
            html +=
                "<tr><th>\(check)</th><td>\(Self.decimal(fraction * 100, 1)) % of tissue tiles (\(excluded))</td></tr>\n"
        }
        html += "<tr><th>tiles</th><td>\(qc.usable) scored, \(qc.excluded) left out</td></tr>\n"
        if let focus = qc.focusReference {
            html +=
                "<tr><th>focus reference</th><td>\(Self.decimal(focus, 3)) (the slide's median block focus)</td></tr>\n"
        }
        if let density = qc.densityReference {
            html +=
                "<tr><th>density reference</th><td>\(Self.decimal(density, 3)) (the slide's median tissue optical density)</td></tr>\n"
        }
        html += "</table>\n</section>\n"
        return html
    }

    private var modelSection: String {
        let model = report.model
        var html = "<section id=\"model\">\n<h2>Model</h2>\n<table class=\"facts\">\n"
        html += "<tr><th>name</th><td>\(escape(model.name))</td></tr>\n"
        html += "<tr><th>architecture</th><td>\(escape(model.architecture))</td></tr>\n"
        if let result = report.result {
            html += "<tr><th>bags</th><td>\(result.bagCount.map(String.init) ?? "–") per head, "
            html +=
                "\(result.clusterCount.map(String.init) ?? "–") clusters, seed \(result.seed.map(String.init) ?? "–")</td></tr>\n"
        }
        for name in model.files.keys.sorted() {
            html += "<tr><th>\(escape(name))</th><td class=\"hash\">\(escape(model.files[name] ?? ""))</td></tr>\n"
        }
        if let versions = report.versions {
            let text = [("csmil", versions.csmil), ("OpenSlide", versions.openslide), ("OpenBLAS", versions.openblas)]
                .compactMap { name, value in value.map { "\(name) \($0)" } }.joined(separator: "; ")
            html += "<tr><th>software</th><td>\(escape(text))</td></tr>\n"
        }
        html += "</table>\n</section>\n"
        return html
    }

    private var timingSection: String {
        var html = "<section id=\"timing\">\n<h2>Timings</h2>\n<table class=\"facts\">\n"
        html += "<tr><th>total</th><td>\(Self.decimal(report.timing.seconds, 2)) s</td></tr>\n"
        for (stage, seconds) in (report.timing.stages ?? [:]).sorted(by: { $0.key < $1.key }) {
            html += "<tr><th>\(escape(stage))</th><td>\(Self.decimal(seconds, 2)) s</td></tr>\n"
        }
        html += "</table>\n</section>\n"
        return html
    }

    // MARK: - Helpers

    /// The QC reasons in words, e.g. "pen ink on 12.5 % of tissue tiles; only 9 usable tiles".
    public static func reasonsText(_ qc: SlideReport.QualityControl) -> String {
        qc.reasons.map { reason in
            let percent = decimal((qc.fractions[reason] ?? 0) * 100, 1)
            switch reason {
            case "pen": return "pen ink on \(percent) % of tissue tiles"
            case "blur": return "out of focus on \(percent) % of tissue tiles"
            case "fold": return "tissue folds on \(percent) % of tissue tiles"
            case "too_few_tiles": return "only \(qc.usable) usable tiles"
            case "resolution": return "scanned coarser than the model's 20x"
            default: return reason
            }
        }.joined(separator: "; ")
    }

    /// `value` with at most `digits` decimals, trailing zeros kept to `digits` (fixed notation).
    static func decimal(_ value: Double, _ digits: Int) -> String {
        guard value.isFinite else { return "–" }
        return String(format: "%.\(digits)f", value)
    }

    static func css(_ colour: RGBColour) -> String {
        "rgb(\(colour.red),\(colour.green),\(colour.blue))"
    }

    /// The viridis ramp as a CSS gradient.
    static var viridisGradient: String {
        "linear-gradient(to right, "
            + HeatmapRenderer.viridis.map(css).joined(separator: ", ") + ")"
    }

    static let style = """
        body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0 auto;\
        max-width:1180px;padding:16px 24px;color:#1b1b1b;background:#fff}
        h1{font-size:22px;margin:4px 0 10px;word-break:break-all}h2{font-size:18px;margin:26px 0 8px;\
        border-bottom:1px solid #ddd;padding-bottom:4px}
        .banner{padding:10px 14px;border-radius:6px;margin:8px 0 14px;font-size:16px}
        .banner.review{background:#fff1c2;border:2px solid #c98a00}.banner.pass{background:#e5f5e5;\
        border:1px solid #5a9a5a}.banner.off{background:#eee;border:1px solid #aaa}
        .result{display:flex;gap:28px;flex-wrap:wrap;align-items:flex-end;margin:6px 0 14px}
        .result .label{display:block;font-size:12px;text-transform:uppercase;color:#666;letter-spacing:.04em}
        .result .value{display:block;font-size:30px;font-weight:600}.result .value.small{font-size:16px;font-weight:400}
        .result .note{display:block;font-size:13px;color:#555}
        .decision.positive .value{color:#a01818}.decision.negative .value{color:#1c5e1c}
        table.facts{border-collapse:collapse;font-size:14px}table.facts th{text-align:left;font-weight:500;\
        color:#555;padding:2px 14px 2px 0;vertical-align:top;white-space:nowrap}table.facts td{padding:2px 0;\
        word-break:break-all}
        .hash{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12px}
        input[type=checkbox]{margin:0 4px 10px 0}label{margin-right:18px}
        .stage{position:relative;line-height:0;border:1px solid #ccc}
        .stage img.thumbnail{width:100%;height:auto;display:block}
        .stage img.overlay{position:absolute;left:0;top:0;image-rendering:pixelated;image-rendering:crisp-edges}
        #show-attention:not(:checked)~.stage .attention{display:none}
        #show-qc:not(:checked)~.stage .qc{display:none}
        .legend{margin-top:10px;font-size:14px}.legend .scale{display:flex;align-items:center;gap:10px;\
        flex-wrap:wrap}
        .legend .ramp{display:inline-block;width:260px;height:16px;border:1px solid #444;background:\
        \(viridisGradient)}
        .legend .bar{display:inline-flex;flex-direction:column;gap:2px}.legend .ticks{display:flex;\
        justify-content:space-between;width:262px;font-variant-numeric:tabular-nums}
        .swatch{display:inline-block;width:12px;height:12px;border:1px solid #333;margin:0 4px 0 8px;\
        vertical-align:-1px}
        table.tiles{border-collapse:collapse}table.tiles td,table.tiles th{border-top:1px solid #e2e2e2;\
        padding:6px 8px;vertical-align:top;text-align:left}
        img.crop{display:block;image-rendering:auto;border:1px solid #999}
        .number{font-variant-numeric:tabular-nums;text-align:right}.small{font-size:12px;color:#555}
        table.weights{border-collapse:collapse;font-size:13px}table.weights td,table.weights th{border:none;\
        padding:1px 6px}
        footer{margin:30px 0 10px;font-size:12px;color:#666;border-top:1px solid #ddd;padding-top:8px}
        """
}

/// Text made safe for HTML element content and attribute values.
func escape(_ text: String) -> String {
    var escaped = ""
    escaped.reserveCapacity(text.utf8.count)
    for character in text {
        switch character {
        case "&": escaped += "&amp;"
        case "<": escaped += "&lt;"
        case ">": escaped += "&gt;"
        case "\"": escaped += "&quot;"
        case "'": escaped += "&#39;"
        default: escaped.append(character)
        }
    }
    return escaped
}
