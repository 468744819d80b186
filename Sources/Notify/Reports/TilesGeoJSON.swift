import Foundation

/// `tiles.geojson`: a GeoJSON `FeatureCollection` with one `Feature` per tile, in a form QuPath imports
/// (File › Import objects, or drag and drop).
///
/// Each feature's geometry is the tile's square as a closed `Polygon` in level-0 pixel coordinates (five points,
/// the last equal to the first). Its properties hold the daemon spec's `attention` (number, or `null` when the
/// tile was never drawn), `scale_weights` and `scale_attention` (20x, 10x, 5x), the tile's grid `column` and
/// `row`, `qc` (the QC checks that flagged the tile, `[]` when clean), `excluded: true` for a tile QC left out of
/// scoring (its attention and scale weights are `null`), and QuPath's own keys: `objectType: "tile"` (QuPath's
/// tile objects), a `classification` named after the dominant scale (`20x`, `10x` or `5x`, coloured as in the
/// heatmap), or `QC pen`, `QC blur`, … for an excluded tile (coloured as in `qc_mask.png`), and `measurements`,
/// a name → number map (QuPath 0.4 and later) holding `attention` when there is one and
/// `scale_weight_*`/`scale_attention_*`.
///
/// When the slide has an identity (`[identity] pattern`), the collection carries it as a foreign member
/// (RFC 7946 §6.1), `"identity": {"accession": …}`, once rather than in each of the features.
///
/// Written streaming: one feature's text at a time goes to the output, so 100,000 tiles never become one string.
public enum TilesGeoJSON {
    /// Writes the whole collection, handing the text out piece by piece (a header, one piece per feature, a footer).
    public static func write<Tiles: Sequence<TileRecord>, Failure: Error>(
        _ tiles: Tiles, identity: SlideIdentity? = nil, to output: (String) throws(Failure) -> Void
    ) throws(Failure) {
        var header = "{\"type\":\"FeatureCollection\","
        if let identity {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            let json = (try? encoder.encode(identity)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
            header += "\"identity\":\(json),"
        }
        try output(header + "\"features\":[")
        var first = true
        for tile in tiles {
            try output((first ? "\n" : ",\n") + feature(tile))
            first = false
        }
        try output("\n]}\n")
    }

    /// The whole collection in memory (for small sets and tests; the report writer streams).
    public static func data(_ tiles: [TileRecord], identity: SlideIdentity? = nil) -> Data {
        var data = Data()
        write(tiles, identity: identity) { (piece: String) in data.append(contentsOf: piece.utf8) }
        return data
    }

    /// One tile's `Feature`, as compact JSON text.
    public static func feature(_ tile: TileRecord) -> String {
        let left = tile.x
        let top = tile.y
        let right = tile.x + tile.width
        let bottom = tile.y + tile.height
        let ring = "[[\(left),\(top)],[\(right),\(top)],[\(right),\(bottom)],[\(left),\(bottom)],[\(left),\(top)]]"
        var text = "{\"type\":\"Feature\",\"geometry\":{\"type\":\"Polygon\",\"coordinates\":[\(ring)]},"
        text += "\"properties\":{\"objectType\":\"tile\""
        if let check = tile.qc.first, tile.excluded {
            let colour = QualityMaskRenderer.colour(of: check)
            text += ",\"classification\":{\"name\":\"QC \(tile.qc.joined(separator: "+"))\","
            text += "\"color\":[\(colour.red),\(colour.green),\(colour.blue)]}"
        } else if let scale = tile.dominantScale, scale < TileRecord.scaleNames.count {
            let colour = HeatmapRenderer.scaleColours[scale]
            text += ",\"classification\":{\"name\":\"\(TileRecord.scaleNames[scale])\","
            text += "\"color\":[\(colour.red),\(colour.green),\(colour.blue)]}"
        }
        text += ",\"column\":\(tile.column),\"row\":\(tile.row)"
        text += ",\"qc\":[" + tile.qc.map { "\"\($0)\"" }.joined(separator: ",") + "]"
        if tile.excluded { text += ",\"excluded\":true" }
        text += ",\"attention\":" + number(tile.attention)
        text += ",\"scale_weights\":[" + tile.scaleWeights.map { number($0) }.joined(separator: ",") + "]"
        text += ",\"scale_attention\":[" + tile.scaleAttention.map { number($0) }.joined(separator: ",") + "]"
        var measurements: [String] = []
        if let attention = tile.attention, attention.isFinite {
            measurements.append("\"attention\":\(number(attention))")
        }
        for (index, name) in TileRecord.scaleNames.enumerated() {
            if index < tile.scaleWeights.count, tile.scaleWeights[index].isFinite {
                measurements.append("\"scale_weight_\(name)\":\(number(tile.scaleWeights[index]))")
            }
            if index < tile.scaleAttention.count, tile.scaleAttention[index].isFinite {
                measurements.append("\"scale_attention_\(name)\":\(number(tile.scaleAttention[index]))")
            }
        }
        text += ",\"measurements\":{" + measurements.joined(separator: ",") + "}}}"
        return text
    }

    /// A JSON number (Swift's shortest round-trip form, which is valid JSON), or `null` for nil, NaN and infinities.
    static func number(_ value: Float?) -> String {
        guard let value, value.isFinite else { return "null" }
        return value.description
    }
}
