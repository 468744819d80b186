import Foundation
import Testing

@Suite("systemd unit")
struct SystemdUnitTests {
    static let unit = TestSupport.packageRoot.appendingPathComponent("systemd/csmil.service")

    @Test("the unit is Type=notify, runs csmil watch on the default config as a fixed user")
    func essentials() throws {
        let text = try String(contentsOf: Self.unit, encoding: .utf8)
        let lines = Set(text.split(separator: "\n").map(String.init))
        #expect(lines.contains("Type=notify"))
        #expect(lines.contains("ExecStart=/usr/local/bin/csmil watch --config /etc/csmil/csmil.toml"))
        #expect(lines.contains("User=csmil"))
        #expect(lines.contains("StateDirectory=csmil"))
        #expect(lines.contains("ConfigurationDirectory=csmil"))
        #expect(lines.contains { $0.hasPrefix("TimeoutStopSec=") })
        #expect(lines.contains { $0.hasPrefix("WatchdogSec=") })
    }

    @Test("systemd-analyze security --offline=true scores the unit 2.0 or lower")
    func hardening() throws {
        guard let result = try TestSupport.tool("systemd-analyze", ["security", "--offline=true", Self.unit.path])
        else {
            // scripts/setup installs systemd; without it this check cannot run here.
            Issue.record("systemd-analyze is not installed; run scripts/setup")
            return
        }
        let output = result.stdout + result.stderr
        let line = try #require(output.split(separator: "\n").first { $0.contains("Overall exposure level") })
        let score = try #require(
            line.split(separator: ":").last?.split(separator: " ").first.flatMap { Double($0) }, "\(line)")
        #expect(score <= 2.0, "\(line)")
    }
}
