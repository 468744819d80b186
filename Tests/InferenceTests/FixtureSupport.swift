import Foundation

/// Where the committed reference fixtures live (made by the scripts in tools/).
enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
        "Fixtures")

    static func url(_ name: String) -> URL { directory.appendingPathComponent(name) }
}
