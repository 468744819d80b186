import Foundation
import Testing

@testable import Notify

@Suite("tiles.geojson")
struct TilesGeoJSONTests {
    @Test("the collection is valid JSON: one Feature per tile, closed polygons at the tile rectangles")
    func structure() throws {
        let object = try Fixtures.jsonObject(TilesGeoJSON.data(Fixtures.tiles))
        #expect(object["type"] as? String == "FeatureCollection")
        let features = try #require(object["features"] as? [[String: Any]])
        #expect(features.count == Fixtures.tiles.count)
        for (feature, tile) in zip(features, Fixtures.tiles) {
            #expect(feature["type"] as? String == "Feature")
            let geometry = try #require(feature["geometry"] as? [String: Any])
            #expect(geometry["type"] as? String == "Polygon")
            let rings = try #require(geometry["coordinates"] as? [[[Int]]])
            #expect(rings.count == 1)
            let ring = rings[0]
            #expect(ring.count == 5 && ring.first == ring.last)
            let xs = ring.map { $0[0] }
            let ys = ring.map { $0[1] }
            #expect(xs.min() == tile.x && xs.max() == tile.x + tile.width)
            #expect(ys.min() == tile.y && ys.max() == tile.y + tile.height)
            let properties = try #require(feature["properties"] as? [String: Any])
            #expect(properties["objectType"] as? String == "tile")
            #expect((properties["scale_weights"] as? [Double])?.map { Float($0) } == tile.scaleWeights)
            #expect((properties["scale_attention"] as? [Double])?.count == 3)
            let measurements = try #require(properties["measurements"] as? [String: Double])
            #expect(measurements["scale_weight_20x"].map { Float($0) } == tile.scaleWeights[0])
            let classification = try #require(properties["classification"] as? [String: Any])
            #expect(classification["name"] as? String == TileRecord.scaleNames[tile.dominantScale ?? -1])
        }
        let first = try #require(features[0]["properties"] as? [String: Any])
        #expect(first["attention"] as? Double == 2.5)
        let undrawn = try #require(features[2]["properties"] as? [String: Any])
        #expect(undrawn["attention"] is NSNull)
        #expect((undrawn["measurements"] as? [String: Double])?["attention"] == nil)
    }

    @Test("the streamed text equals a collection built in memory")
    func streamingMatchesReference() throws {
        var pieces: [String] = []
        TilesGeoJSON.write(Fixtures.tiles) { (piece: String) in pieces.append(piece) }
        #expect(pieces.count == Fixtures.tiles.count + 2)
        let streamed = try JSONSerialization.jsonObject(with: Data(pieces.joined().utf8)) as? NSDictionary
        let features: [[String: Any]] = Fixtures.tiles.map { tile in
            let r = [tile.x, tile.y, tile.x + tile.width, tile.y + tile.height]
            var measurements: [String: Any] = [:]
            if let attention = tile.attention { measurements["attention"] = Double(attention) }
            for (index, name) in TileRecord.scaleNames.enumerated() {
                measurements["scale_weight_" + name] = Double(tile.scaleWeights[index])
                measurements["scale_attention_" + name] = Double(tile.scaleAttention[index])
            }
            let scale = tile.dominantScale!
            let colour = HeatmapRenderer.scaleColours[scale]
            return [
                "type": "Feature",
                "geometry": [
                    "type": "Polygon",
                    "coordinates": [[[r[0], r[1]], [r[2], r[1]], [r[2], r[3]], [r[0], r[3]], [r[0], r[1]]]],
                ],
                "properties": [
                    "objectType": "tile", "column": tile.column, "row": tile.row, "qc": [String](),
                    "attention": tile.attention.map { Double($0) as Any } ?? NSNull(),
                    "scale_weights": tile.scaleWeights.map(Double.init),
                    "scale_attention": tile.scaleAttention.map(Double.init),
                    "classification": [
                        "name": TileRecord.scaleNames[scale],
                        "color": [Int(colour.red), Int(colour.green), Int(colour.blue)],
                    ],
                    "measurements": measurements,
                ],
            ]
        }
        let reference = try JSONSerialization.jsonObject(
            with: try JSONSerialization.data(withJSONObject: ["type": "FeatureCollection", "features": features]))
        #expect(
            Self.singlePrecision(streamed as Any) as? NSDictionary == Self.singlePrecision(reference) as? NSDictionary)
    }

    /// The JSON tree with every number rounded to `Float`, as the tiles hold them (the file writes `Float`s'
    /// shortest form, the reference their `Double` widening).
    static func singlePrecision(_ value: Any) -> Any {
        switch value {
        case let dictionary as [String: Any]: return dictionary.mapValues { singlePrecision($0) }
        case let array as [Any]: return array.map { singlePrecision($0) }
        case let number as NSNumber: return NSNumber(value: Double(Float(truncating: number)))
        default: return value
        }
    }

    @Test("an empty slide gives an empty, valid collection")
    func empty() throws {
        let object = try Fixtures.jsonObject(TilesGeoJSON.data([]))
        #expect((object["features"] as? [Any])?.isEmpty == true)
    }
}
