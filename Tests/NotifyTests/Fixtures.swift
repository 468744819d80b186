import Foundation
import Testing

@testable import Notify

/// Reports, tiles and folders shared by the Notify tests.
enum Fixtures {
    static let fingerprint = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

    static func slide(name: String = "case 7 (HE).svs") -> SlideReport.Slide {
        SlideReport.Slide(
            path: "/srv/scanner/" + name, name: name, fingerprint: fingerprint, vendor: "aperio", width: 4096,
            height: 2048, mpp: 0.5, magnification: 20)
    }

    static let model = SlideReport.Model(
        name: "cs-mil-demo", architecture: "resnet50", files: ["heads.pt": "sha256:ab", "backbone.pt": "sha256:cd"])

    static func scored() -> SlideReport {
        SlideReport(
            eventID: "evt_0123", status: .scored, slide: slide(), model: model,
            result: SlideReport.Result(
                probability: 0.625, label: "positive", threshold: 0.5, headProbabilities: [0.5, 0.75],
                positive: true, bagCount: 200, clusterCount: 8, seed: 1),
            tiles: SlideReport.Tiles(count: 3, drawn: 2, size: 256),
            timing: SlideReport.Timing(seconds: 12.5, stages: ["embed": 10, "tissue": 0.5]),
            tissue: SlideReport.Tissue(areaMM2: 1.5, fraction: 0.25),
            resolution: SlideReport.Resolution(level: 0, mpp: 0.5, magnification: 20, source: "mpp"),
            versions: SlideReport.Versions(csmil: "0.1.0", openslide: "4.0.0", openblas: "0.3.21"),
            deviations: ["kmeans-own-implementation"])
    }

    static func noTissue() -> SlideReport {
        SlideReport(
            eventID: "evt_0124", status: .noTissue, slide: slide(), model: model, tiles: SlideReport.Tiles(count: 0),
            timing: SlideReport.Timing(seconds: 1))
    }

    static func failed() -> SlideReport {
        SlideReport(
            eventID: "evt_0125", status: .failed,
            slide: SlideReport.Slide(path: "/srv/scanner/broken.svs", name: "broken.svs", fingerprint: fingerprint),
            model: model, tiles: SlideReport.Tiles(count: 0), timing: SlideReport.Timing(seconds: 0.25),
            error: SlideReport.Failure(code: "slide.unreadable", message: "not a slide OpenSlide can read"))
    }

    static let tiles: [TileRecord] = [
        TileRecord(x: 0, y: 0, width: 256, height: 256, column: 0, row: 0, attention: 2.5, scaleWeights: [3, 0, 0]),
        TileRecord(x: 256, y: 0, width: 256, height: 256, column: 1, row: 0, attention: 0.5, scaleWeights: [0, 0, 3]),
        TileRecord(
            x: 512, y: 256, width: 256, height: 256, column: 2, row: 1, attention: nil, scaleWeights: [0, 1, 0]),
    ]

    /// One folder per test process under the temporary directory, removed when the process exits.
    static let scratchRoot: String = {
        let root = NSTemporaryDirectory() + "csmil-notify-tests-" + UUID().uuidString
        atexit {
            // Folders a test made read-only are made writable again so that they can go too.
            let files = FileManager.default
            for case let item as String in files.enumerator(atPath: Fixtures.scratchRoot)?.allObjects ?? [] {
                chmod(Fixtures.scratchRoot + "/" + item, 0o755)
            }
            try? files.removeItem(atPath: Fixtures.scratchRoot)
        }
        return root
    }()

    /// A fresh empty folder under `scratchRoot`.
    static func temporaryFolder() throws -> String {
        let path = scratchRoot + "/" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// A JSON file parsed with JSONSerialization.
    static func jsonObject(_ data: Data) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }
}
