import Foundation

/// The slide fixtures of Tests/IngestTests/Fixtures (made by tools/make_ingest_fixtures.py) and
/// temporary files for the damaged-input tests.
enum SlideFixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
        "Fixtures")

    /// The path of a committed fixture.
    static func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// A fresh temporary folder; the caller removes it.
    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("csmil-ingest-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}
