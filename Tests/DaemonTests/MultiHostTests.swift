import Foundation
import Notify
import Sinks
import Store
import StoreTesting
import SyntheticSlides
import Testing

@testable import Daemon

/// Several `csmil watch` processes — each with its own state folder, as on its own host — sharing one PostgreSQL
/// database (a real server the tests start), one watch folder (polled, as on NFS), one output folder and one
/// receiver. What the lab sees: every slide scored once and delivered once, whatever happens to a host or to the
/// database. Waits are for events (a marker file, a log line, the receiver's count, the store's state), bounded by
/// generous timeouts that only turn a hang into a failure.
@Suite("Several hosts on PostgreSQL", .serialized)
struct MultiHostTests {
    /// The shared folders, the database, the receiver, and one configuration per host.
    final class Cluster: @unchecked Sendable {
        let installation: Installation
        let sink: WebhookSink
        let notify: WatchDaemonTests.NotifySocket
        let location: StoreLocation
        let url: PostgresURL
        let passwordFile: String
        var root: URL { installation.root }

        /// A cluster on a fresh database of `server`; with `bouncer`, the hosts reach it through PgBouncer.
        init(
            server: PostgresTestServer, hosts: Int, leaseSeconds: Double = 120, bouncer: PgBouncerTestServer? = nil
        ) throws {
            installation = try Installation()
            sink = WebhookSink(secret: try WebhookSecret.load(path: installation.secret.path))
            try sink.start()
            notify = try WatchDaemonTests.NotifySocket(in: installation.root)
            let database = try server.makeDatabase()
            url = try bouncer?.url(database: database) ?? server.url(database: database)
            passwordFile = server.passwordFile
            location = .postgresql(url: url, passwordFile: passwordFile)
            for host in 0..<hosts { try writeConfig(host: host, leaseSeconds: leaseSeconds) }
        }

        func writeConfig(host: Int, leaseSeconds: Double, database: String? = nil) throws {
            try TestSupport.write(
                """
                [watch]
                directory = "incoming"
                settle_seconds = 0.5
                polling = "poll"
                poll_seconds = 0.5

                [output]
                directory = "reports"

                [state]
                directory = "state-\(host)"
                database = "\(database ?? url.text)"
                database_password_file = "\(passwordFile)"
                host_name = "host-\(host)"
                lease_seconds = \(leaseSeconds)

                [model]
                directory = "model"

                [webhook]
                url = "\(sink.url)hook"
                allow_http = true
                secret_file = "webhook.secret"
                retry_initial_seconds = 0.2
                retry_max_seconds = 1
                """, to: config(host))
        }

        func config(_ host: Int) -> URL { root.appendingPathComponent("host-\(host).toml") }
        func state(_ host: Int) -> URL { root.appendingPathComponent("state-\(host)") }

        func cleanUp() {
            sink.stop()
            notify.close()
            installation.cleanUp()
        }

        /// Starts `csmil watch` as host `host`; its output goes to `<root>/host-H-R.log`.
        func start(_ host: Int, run: Int = 0, pauseAt: String? = nil) throws -> Process {
            try FileManager.default.createDirectory(at: state(host), withIntermediateDirectories: true)
            let process = Process()
            process.executableURL = try TestSupport.binary()
            process.arguments = ["watch", "--config", config(host).path, "--log-level", "debug"]
            var environment = ProcessInfo.processInfo.environment
            environment["NOTIFY_SOCKET"] = notify.path
            environment["CSMIL_TEST_PAUSE_AT"] = pauseAt
            process.environment = environment
            let log = root.appendingPathComponent("host-\(host)-\(run).log")
            _ = FileManager.default.createFile(atPath: log.path, contents: nil)
            let handle = try FileHandle(forWritingTo: log)
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
            return process
        }

        func log(_ host: Int, run: Int = 0) -> String {
            (try? String(contentsOf: root.appendingPathComponent("host-\(host)-\(run).log"), encoding: .utf8)) ?? ""
        }

        /// Every host's log, for failure messages.
        func logs() -> String {
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? [])
                .filter { $0.hasSuffix(".log") }.sorted()
            return names.map {
                "--- \($0)\n" + ((try? String(contentsOf: root.appendingPathComponent($0), encoding: .utf8)) ?? "")
            }
            .joined(separator: "\n")
        }

        /// A small real slide, written elsewhere and renamed into the shared folder.
        func drop(_ name: String, seed: UInt64) throws {
            let staging = root.appendingPathComponent("staging-" + name)
            try SyntheticSlide(
                .init(width: 768, height: 512, magnification: 20, seed: seed, tissueFraction: 0.5, format: .svs)
            ).write(to: staging.path)
            try FileManager.default.moveItem(
                at: staging, to: root.appendingPathComponent("incoming").appendingPathComponent(name))
        }

        /// The receiver's verified 2xx events.
        var delivered: [WebhookSink.Event] {
            sink.events.filter { $0.verdict == .verified && $0.status / 100 == 2 }
        }

        /// A connection of the test's own to the shared store.
        func store() throws -> JobStore { try JobStore.open(location, applicationName: "csmil tests") }

        /// Report folders holding a report.json.
        func reportFolders() -> [String] {
            let reports = root.appendingPathComponent("reports")
            return ((try? FileManager.default.contentsOfDirectory(atPath: reports.path)) ?? []).filter {
                FileManager.default.fileExists(atPath: reports.appendingPathComponent($0 + "/report.json").path)
            }
        }

        /// Waits (up to `timeout` seconds, a bound that only turns a hang into a failure) until `condition` holds.
        @discardableResult
        func wait(_ timeout: Double, until condition: () throws -> Bool) rethrows -> Bool {
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline {
                if try condition() { return true }
                Thread.sleep(forTimeInterval: 0.1)
            }
            return try condition()
        }

        /// Proof that nothing more will be sent: every job reported has been delivered and no outbox row is
        /// pending, so no host has anything left to send.
        func settledAndDelivered(_ count: Int) throws -> Bool {
            let summary = try store().summary(now: Date().timeIntervalSince1970)
            return summary.counts.delivered == count && summary.outbox.backlog == 0 && summary.counts.processing == 0
                && summary.counts.settled == 0
        }
    }

    static func stop(_ process: Process) -> Bool { WatchDaemonTests.stop(process, timeout: 60) }

    @Test("three hosts, one database, one polled folder, 12 slides: 12 reports, 12 deliveries, no event id twice")
    func threeHostsTwelveSlides() throws {
        let cluster = try Cluster(server: try PostgresTestServer.shared, hosts: 3)
        defer { cluster.cleanUp() }
        let hosts = try (0..<3).map { try cluster.start($0) }
        defer { for host in hosts where host.isRunning { kill(host.processIdentifier, SIGKILL) } }
        #expect(
            cluster.wait(120) { cluster.notify.drain().filter { $0.contains("READY=1") }.count >= 3 },
            "not every host is ready:\n\(cluster.logs())")
        for index in 0..<12 { try cluster.drop("case-\(index).svs", seed: UInt64(100 + index)) }

        #expect(
            cluster.wait(600) { cluster.delivered.count >= 12 }, "\(cluster.delivered.count) of 12:\n\(cluster.logs())")
        try #require(try cluster.wait(60) { try cluster.settledAndDelivered(12) }, "\(cluster.logs())")
        let events = cluster.delivered
        let ids = events.compactMap { $0.request.headers["webhook-id"] }
        #expect(events.count == 12, "each event once")
        #expect(Set(ids).count == 12, "no event id twice")
        #expect(cluster.reportFolders().count == 12)

        let store = try cluster.store()
        let jobs = try store.database.query("SELECT id FROM jobs WHERE state = 'delivered'", []) { $0.int64(0) }
        #expect(jobs.count == 12)
        for job in jobs {
            let attempts = try store.attempts(jobID: job)
            #expect(attempts.count == 1 && attempts.first?.outcome == .reported, "scored once: \(attempts)")
        }
        let scorers = Set(try store.database.query("SELECT DISTINCT host FROM job_attempts", []) { $0.string(0) })
        #expect(scorers.isSubset(of: ["host-0", "host-1", "host-2"]) && scorers.count >= 2, "\(scorers)")

        // csmil status on any host shows every host and the shared queue.
        let status = try TestSupport.csmil("status", "--config", cluster.config(1).path, "--json")
        #expect(status.status == 0, "\(status.stderr)")
        let json = try #require(JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any])
        let summary = try #require(json["jobs"] as? [String: Any])
        let listed = try #require(summary["hosts"] as? [[String: Any]])
        #expect(listed.compactMap { $0["name"] as? String } == ["host-0", "host-1", "host-2"])
        #expect(listed.allSatisfy { $0["alive"] as? Bool == true })
        #expect((summary["counts"] as? [String: Any])?["delivered"] as? Int == 12)
        let text = try TestSupport.csmil("status", "--config", cluster.config(2).path)
        #expect(text.stdout.contains("hosts:") && text.stdout.contains("host-0: running"), "\(text.stdout)")

        for host in hosts { #expect(Self.stop(host)) }
        #expect(hosts.allSatisfy { $0.terminationStatus == 0 }, "\(cluster.logs())")
        #expect(try store.hosts(now: Date().timeIntervalSince1970).allSatisfy { $0.stoppedAt != nil && !$0.alive })
    }

    @Test(
        "kill -9 of the host scoring a slide: another host takes it over when the lease runs out; one report, one delivery (all through PgBouncer in transaction mode)"
    )
    func killNineTakeover() throws {
        let server = try PostgresTestServer.shared
        let bouncer = try PgBouncerTestServer(server: server)
        let cluster = try Cluster(server: server, hosts: 2, leaseSeconds: 4, bouncer: bouncer)
        defer {
            cluster.cleanUp()
            withExtendedLifetime(bouncer) {}
        }
        let first = try cluster.start(0, pauseAt: "claimed")
        defer { if first.isRunning { kill(first.processIdentifier, SIGKILL) } }
        try cluster.drop("taken-over.svs", seed: 7)
        let marker = cluster.state(0).appendingPathComponent("paused-at-claimed").path
        try #require(
            cluster.wait(120) { FileManager.default.fileExists(atPath: marker) }, "never claimed:\n\(cluster.logs())")
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()

        let second = try cluster.start(1)
        defer { if second.isRunning { kill(second.processIdentifier, SIGKILL) } }
        #expect(cluster.wait(300) { cluster.delivered.count >= 1 }, "\(cluster.logs())")
        try #require(try cluster.wait(60) { try cluster.settledAndDelivered(1) }, "\(cluster.logs())")
        #expect(cluster.delivered.count == 1, "delivered once")
        #expect(cluster.reportFolders().count == 1)
        let store = try cluster.store()
        let job = try #require(try store.database.queryOne("SELECT id FROM jobs", []) { $0.int64(0) })
        let attempts = try store.attempts(jobID: job)
        #expect(attempts.map(\.host) == ["host-0", "host-1"], "\(attempts)")
        #expect(attempts.map(\.outcome) == [.leaseExpired, .reported])
        #expect(Self.stop(second))
    }

    @Test("PostgreSQL stopped for 30 s mid-run and started again: every slide delivered, nothing twice, no host down")
    func databaseAway() throws {
        let server = try PostgresTestServer()
        let cluster = try Cluster(server: server, hosts: 2)
        defer { cluster.cleanUp() }
        let hosts = try (0..<2).map { try cluster.start($0) }
        defer { for host in hosts where host.isRunning { kill(host.processIdentifier, SIGKILL) } }
        #expect(cluster.wait(120) { cluster.notify.drain().filter { $0.contains("READY=1") }.count >= 2 })
        for index in 0..<6 { try cluster.drop("away-\(index).svs", seed: UInt64(200 + index)) }
        try #require(cluster.wait(300) { cluster.delivered.count >= 1 }, "\(cluster.logs())")

        try server.stop()
        let stopped = Date()
        // Each host notices (a log line and STATUS=) and keeps running; the database stays away 30 s in all.
        #expect(
            cluster.wait(120) { (0..<2).allSatisfy { cluster.log($0).contains("the job store cannot be reached") } },
            "\(cluster.logs())")
        #expect(cluster.wait(60) { cluster.notify.drain().contains { $0.contains("database unreachable") } })
        while Date().timeIntervalSince(stopped) < 30 { Thread.sleep(forTimeInterval: 0.5) }
        let running = hosts.allSatisfy { $0.isRunning }
        #expect(running, "a host ended while the database was away:\n\(cluster.logs())")
        try server.start()

        #expect(
            cluster.wait(600) { cluster.delivered.count >= 6 }, "\(cluster.delivered.count) of 6:\n\(cluster.logs())")
        try #require(try cluster.wait(120) { try cluster.settledAndDelivered(6) }, "\(cluster.logs())")
        let ids = cluster.delivered.compactMap { $0.request.headers["webhook-id"] }
        #expect(ids.count == 6 && Set(ids).count == 6, "nothing twice: \(ids)")
        #expect(cluster.reportFolders().count == 6)
        #expect((0..<2).allSatisfy { cluster.log($0).contains("the job store answers again") })
        for host in hosts { #expect(Self.stop(host)) }
        #expect(hosts.allSatisfy { $0.terminationStatus == 0 })
    }

    @Test("the database unreachable at start: a clear error naming the URL (no password), retries, then it starts")
    func unreachableAtStart() throws {
        let server = try PostgresTestServer()
        let cluster = try Cluster(server: server, hosts: 1)
        defer { cluster.cleanUp() }
        try server.stop()
        let host = try cluster.start(0)
        defer { if host.isRunning { kill(host.processIdentifier, SIGKILL) } }
        #expect(
            cluster.wait(60) { cluster.log(0).contains("the job store cannot be reached") }, "\(cluster.log(0))")
        #expect(cluster.wait(60) { cluster.notify.drain().contains { $0.contains("waiting for the job store") } })
        #expect(
            cluster.notify.drain().contains { $0.contains("EXTEND_TIMEOUT_USEC=") }, "systemd's start timeout pushed on"
        )
        let log = cluster.log(0)
        #expect(log.contains(cluster.url.redacted), "names the URL")
        #expect(!log.contains(server.password), "never the password")
        #expect(!cluster.notify.drain().contains { $0.contains("READY=1") }, "not ready without its store")
        #expect(cluster.wait(60) { cluster.log(0).components(separatedBy: "cannot be reached").count > 2 }, "retries")

        try server.start()
        #expect(cluster.wait(120) { cluster.notify.drain().contains { $0.contains("READY=1") } }, "\(cluster.log(0))")
        try cluster.drop("late.svs", seed: 9)
        #expect(cluster.wait(300) { cluster.delivered.count >= 1 }, "\(cluster.log(0))")
        #expect(Self.stop(host))
    }

    @Test(
        "csmil store migrate: a SQLite state folder into PostgreSQL and back, every row kept; the slide is not scored again"
    )
    func storeMigrate() throws {
        let server = try PostgresTestServer.shared
        let cluster = try Cluster(server: server, hosts: 1)
        defer { cluster.cleanUp() }
        // A lab on SQLite: one slide scored and delivered.
        let sqliteConfig = cluster.root.appendingPathComponent("sqlite.toml")
        try TestSupport.write(
            (try String(contentsOf: cluster.config(0), encoding: .utf8))
                .replacingOccurrences(of: "database = \"\(cluster.url.text)\"", with: "database = \"\"")
                .replacingOccurrences(of: "database_password_file = \"\(cluster.passwordFile)\"", with: ""),
            to: sqliteConfig)
        try FileManager.default.createDirectory(at: cluster.state(0), withIntermediateDirectories: true)
        let local = Process()
        local.executableURL = try TestSupport.binary()
        local.arguments = ["watch", "--config", sqliteConfig.path]
        let localLog = cluster.root.appendingPathComponent("sqlite-host.log")
        _ = FileManager.default.createFile(atPath: localLog.path, contents: nil)
        local.standardOutput = try FileHandle(forWritingTo: localLog)
        local.standardError = local.standardOutput
        local.environment = ProcessInfo.processInfo.environment.merging(["NOTIFY_SOCKET": cluster.notify.path]) { $1 }
        try local.run()
        defer { if local.isRunning { kill(local.processIdentifier, SIGKILL) } }
        try cluster.drop("migrated.svs", seed: 11)
        try #require(cluster.wait(300) { cluster.delivered.count >= 1 }, "\(cluster.logs())")

        // Refused while the daemon runs; then copied.
        let busy = try TestSupport.csmil("store", "migrate", "--config", sqliteConfig.path, "--to", cluster.url.text)
        #expect(busy.status != 0 && busy.stderr.contains("csmil watch is running"), "\(busy.stderr)")
        #expect(Self.stop(local))
        let sqlitePath = cluster.state(0).appendingPathComponent("csmil.sqlite3").path
        let original = try StoreCopy.dump(try SQLiteDatabase(path: sqlitePath))
        let migrate = try TestSupport.csmil(
            "store", "migrate", "--config", sqliteConfig.path, "--to", cluster.url.text, "--password-file",
            cluster.passwordFile)
        #expect(migrate.status == 0, "\(migrate.stderr)")
        #expect(migrate.stdout.contains("copied 1 jobs") && migrate.stdout.contains("next: set [state] database"))
        #expect(try StoreCopy.dump(try cluster.location.open()) == original)
        let again = try TestSupport.csmil(
            "store", "migrate", "--config", sqliteConfig.path, "--to", cluster.url.text, "--password-file",
            cluster.passwordFile)
        #expect(again.status != 0 && again.stderr.contains("already holds"), "\(again.stderr)")

        // Back into a new SQLite file: the same rows.
        let back = cluster.root.appendingPathComponent("back.sqlite3").path
        let reverse = try TestSupport.csmil("store", "migrate", "--config", cluster.config(0).path, "--to", back)
        #expect(reverse.status == 0, "\(reverse.stderr)")
        #expect(try StoreCopy.dump(try SQLiteDatabase(path: back)) == original)

        // The lab moved: a host on PostgreSQL knows the slide and does not score or send it again.
        let host = try cluster.start(0)
        defer { if host.isRunning { kill(host.processIdentifier, SIGKILL) } }
        #expect(cluster.wait(120) { cluster.log(0).contains("already known") }, "\(cluster.log(0))")
        #expect(cluster.delivered.count == 1 && cluster.reportFolders().count == 1)
        #expect(Self.stop(host))
    }

    @Test("csmil doctor checks the connection, TLS, the schema version and the password file's mode")
    func doctor() throws {
        let server = try PostgresTestServer.shared
        let cluster = try Cluster(server: server, hosts: 1)
        defer { cluster.cleanUp() }
        var run = try TestSupport.csmil("doctor", "--config", cluster.config(0).path)
        #expect(run.stdout.contains("connected, PostgreSQL"), "\(run.stdout)")
        #expect(run.stdout.contains("not encrypted (sslmode=disable); the server is on this machine"))
        #expect(run.stdout.contains("empty database: csmil watch creates the tables"))
        #expect(run.stdout.contains("(mode 600)") && !run.stdout.contains(server.password))
        _ = try JobStore.open(cluster.location)
        run = try TestSupport.csmil("doctor", "--config", cluster.config(0).path)
        #expect(run.stdout.contains("version \(StoreSchema.postgresqlVersion) (current)"), "\(run.stdout)")

        // A password file every user can read, a server nobody listens on.
        let loose = cluster.root.appendingPathComponent("loose.password")
        try TestSupport.write(server.password + "\n", to: loose, mode: 0o644)
        let port = try PostgresTestServer.freePort()
        try cluster.writeConfig(
            host: 0, leaseSeconds: 120, database: "postgresql://csmil@127.0.0.1:\(port)/nowhere?sslmode=disable")
        var text = try String(contentsOf: cluster.config(0), encoding: .utf8)
        text = text.replacingOccurrences(of: cluster.passwordFile, with: loose.path)
        try TestSupport.write(text, to: cluster.config(0))
        run = try TestSupport.csmil("doctor", "--config", cluster.config(0).path)
        #expect(run.status != 0)
        #expect(run.stdout.contains("can be read or changed by every user (mode 644)"), "\(run.stdout)")
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: loose.path)
        run = try TestSupport.csmil("doctor", "--config", cluster.config(0).path)
        #expect(run.status != 0)
        #expect(run.stdout.contains("127.0.0.1:\(port)/nowhere") && run.stdout.contains("pg_isready"), "\(run.stdout)")
    }
}
