import Foundation
import Testing

/// Helpers shared by the tests: temporary folders, the package root, and running the real
/// `csmil` binary that `swift build` produced.
enum TestSupport {
    /// The package root (the folder holding Package.swift).
    static let packageRoot: URL = {
        var url = URL(fileURLWithPath: #filePath)
        while url.path != "/" {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("Package.swift").path) { return url }
        }
        fatalError("Package.swift not found above \(#filePath)")
    }()

    /// The `csmil` executable built beside the test bundle.
    static func binary() throws -> URL {
        let besideTests = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("csmil")
        let candidates = [besideTests, packageRoot.appendingPathComponent(".build/debug/csmil")]
        return try #require(
            candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) },
            "build the csmil executable first (swift build)")
    }

    /// Runs a program to completion; returns its exit status and its stdout and stderr.
    @discardableResult
    static func run(
        _ executable: URL, _ arguments: [String], environment: [String: String]? = nil
    ) throws -> (
        status: Int32, stdout: String, stderr: String
    ) {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        if let environment { process.environment = environment }
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read both pipes before waiting so a chatty child cannot block on a full pipe.
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (
            process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self)
        )
    }

    /// Runs `csmil` with arguments.
    @discardableResult
    static func csmil(_ arguments: String...) throws -> (status: Int32, stdout: String, stderr: String) {
        try run(binary(), arguments)
    }

    /// Runs a program found on PATH, or returns nil when it is not installed.
    static func tool(_ name: String, _ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String)? {
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let candidate = URL(fileURLWithPath: String(directory)).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return try run(candidate, arguments) }
        }
        return nil
    }

    /// A fresh temporary folder, removed by the caller with `cleanUp`.
    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("csmil-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static func write(_ text: String, to url: URL, mode: Int = 0o644) throws {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: url)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: url.path)
    }
}
