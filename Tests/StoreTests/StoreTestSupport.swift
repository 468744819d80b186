import Foundation

/// Scratch folders for the store tests.
enum StoreTestSupport {
    /// One folder per test process under the temporary directory, removed when the process exits.
    static let scratchRoot: String = {
        let root = NSTemporaryDirectory() + "csmil-store-tests-" + UUID().uuidString
        atexit { try? FileManager.default.removeItem(atPath: StoreTestSupport.scratchRoot) }
        return root
    }()

    /// A fresh empty folder under `scratchRoot`.
    static func temporaryFolder() throws -> String {
        let path = scratchRoot + "/" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}
