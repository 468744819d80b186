import Foundation
import Testing

@testable import Daemon

@Suite("systemd unit")
struct SystemdUnitTests {
    static let unit = TestSupport.packageRoot.appendingPathComponent("systemd/csmil.service")

    static func lines(_ url: URL) throws -> [String] {
        try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map(String.init)
    }

    @Test("the unit is Type=notify, runs csmil watch on the default config as a fixed user")
    func essentials() throws {
        let lines = Set(try Self.lines(Self.unit))
        #expect(lines.contains("Type=notify"))
        #expect(lines.contains("ExecStart=/usr/bin/csmil watch --config /etc/csmil/csmil.toml"))
        #expect(lines.contains("User=csmil"))
        #expect(lines.contains("StateDirectory=csmil"))
        #expect(lines.contains { $0.hasPrefix("TimeoutStopSec=") })
        #expect(lines.contains { $0.hasPrefix("WatchdogSec=") })
        #expect(lines.contains("Documentation=man:csmil(1) man:csmil.toml(5)"))
    }

    @Test("/etc/csmil stays read-only to the daemon: no ConfigurationDirectory= (which makes it writable)")
    func configurationReadOnly() throws {
        let lines = try Self.lines(Self.unit)
        #expect(!lines.contains { $0.hasPrefix("ConfigurationDirectory") })
        #expect(lines.contains("ProtectSystem=strict"))
    }

    @Test("reload waits for the daemon's answer: ExecReload= runs csmil reload with $MAINPID in /run/csmil")
    func reloadWaits() throws {
        let lines = Set(try Self.lines(Self.unit))
        #expect(lines.contains("ExecReload=/usr/bin/csmil reload --config /etc/csmil/csmil.toml --pid $MAINPID"))
        #expect(lines.contains("RuntimeDirectory=csmil"))
    }

    @Test("a configuration error is not restarted (exit 78); other failures end in failed after the start limit")
    func startLimit() throws {
        let lines = Set(try Self.lines(Self.unit))
        #expect(lines.contains("RestartPreventExitStatus=\(WatchCommand.configurationExitStatus)"))
        #expect(lines.contains("Restart=on-failure"))
        #expect(lines.contains { $0.hasPrefix("StartLimitBurst=") })
        #expect(lines.contains { $0.hasPrefix("StartLimitIntervalSec=") })
    }

    @Test("tmpfiles.d makes the folders the default configuration names, for group csmil, and sysusers.d its user")
    func folders() throws {
        let root = TestSupport.packageRoot
        let tmpfiles = try Self.lines(root.appendingPathComponent("systemd/csmil.tmpfiles.conf"))
            .filter { !$0.hasPrefix("#") && !$0.isEmpty }
            .map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
        func entry(_ path: String) -> [String]? { tmpfiles.first { $0[0] == "d" && $0[1] == path } }
        let configuration = try Configuration.load(path: root.appendingPathComponent("etc/csmil.toml").path)
        #expect(entry(configuration.watch.directory)?[2...4] == ["2770", "csmil", "csmil"])
        #expect(entry(configuration.output.directory)?[2...4] == ["2750", "csmil", "csmil"])
        #expect(entry(configuration.state.directory)?[2...4] == ["0700", "csmil", "csmil"])
        #expect(entry("/etc/csmil")?[2...4] == ["0750", "root", "csmil"])
        #expect(
            tmpfiles.contains {
                $0[0] == "a+" && $0[1] == configuration.watch.directory
                    && $0.last?.contains("default:group:csmil:rwx") == true
            })
        let sysusers = try Self.lines(root.appendingPathComponent("systemd/csmil.sysusers.conf"))
        #expect(sysusers.contains { $0.hasPrefix("u csmil ") })
    }

    @Test("sudo make install runs no build and no apt: it copies what make release built")
    func installBuildsNothing() throws {
        let root = TestSupport.packageRoot.path
        let make = try #require(try TestSupport.tool("make", ["-n", "-C", root, "install", "DESTDIR=/nonexistent"]))
        #expect(make.status == 0, "\(make.stderr)")
        for forbidden in ["swift build", "apt-get", "scripts/setup", "dpkg-buildpackage"] {
            #expect(!make.stdout.contains(forbidden), "make install would run \(forbidden)")
        }
        #expect(make.stdout.contains("run make release first"))
    }

    @Test("the Debian package's version is csmil --version")
    func packageVersion() throws {
        let changelog = TestSupport.packageRoot.appendingPathComponent("debian/changelog").path
        guard let result = try TestSupport.tool("dpkg-parsechangelog", ["-l", changelog, "-S", "Version"]) else {
            Issue.record("dpkg-parsechangelog is not installed (dpkg-dev); run scripts/setup deb")
            return
        }
        #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == Product.version)
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
