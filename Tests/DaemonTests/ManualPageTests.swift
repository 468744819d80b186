import Foundation
import Testing

@testable import Daemon

/// csmil.toml(5) is made from etc/csmil.toml by tools/csmil_toml_manpage.py (as `make deb` and `make release` do):
/// every key csmil reads must be in the page, and nothing else.
@Suite("man pages")
struct ManualPageTests {
    static func page() throws -> String {
        let root = TestSupport.packageRoot
        let python = try #require(
            try TestSupport.tool(
                "python3",
                [
                    root.appendingPathComponent("tools/csmil_toml_manpage.py").path,
                    root.appendingPathComponent("etc/csmil.toml").path, Product.version,
                ]), "python3 is not installed; run scripts/setup")
        #expect(python.status == 0, "\(python.stderr)")
        return python.stdout
    }

    @Test("csmil.toml(5) documents exactly the keys of the configuration schema, each under its section")
    func everyKey() throws {
        var section = ""
        var documented: Set<String> = []
        var expectKey = false
        for line in try Self.page().split(separator: "\n").map(String.init) {
            if line.hasPrefix(".SH ") { section = "" }
            if line.hasPrefix(".SS [") { section = String(line.dropFirst(5).dropLast()) }
            if section.isEmpty { continue }
            if line == ".TP" || line == ".TQ" {
                expectKey = true
                continue
            }
            if expectKey, line.hasPrefix(".B ") {
                let key = line.dropFirst(3).split(separator: " ").first.map(String.init) ?? ""
                documented.insert(section + "." + key.replacingOccurrences(of: "\\-", with: "-"))
            }
            expectKey = false
        }
        let schema = Set(Configuration.schema.flatMap { entry in entry.keys.map { entry.section + "." + $0 } })
        #expect(
            documented == schema, "missing: \(schema.subtracting(documented)); extra: \(documented.subtracting(schema))"
        )
    }

    @Test("groff reads csmil.toml(5) without a warning")
    func groffClean() throws {
        let folder = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("csmil.toml.5")
        try TestSupport.write(try Self.page(), to: file)
        let groff = try #require(
            try TestSupport.tool("groff", ["-k", "-man", "-ww", "-z", "-Tutf8", file.path]),
            "groff is not installed; run scripts/setup")
        #expect(groff.status == 0)
        #expect(groff.stderr.isEmpty, "\(groff.stderr)")
    }
}
