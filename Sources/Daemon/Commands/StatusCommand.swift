import ArgumentParser
import Foundation
import Store

/// `csmil status`: what the daemon knows.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the queue, the slide in progress, recent results, the outbox backlog and failures.",
        discussion: """
            Reads the job store (<state>/csmil.sqlite3, or the shared [state] database) and the daemon's live \
            snapshot (<state>/daemon.json, written every 2 seconds by csmil watch). With a shared database it \
            lists every host (name, last heartbeat, slides in progress) and the queue they share. Works whether or \
            not the daemon is running. Exit status 0, or 1 when the configuration or the job store cannot be read.
            """
    )

    @Option(name: .long, help: "The configuration file.")
    var config: String = Configuration.defaultPath

    @Flag(name: .long, help: "Print JSON instead of text.")
    var json = false

    @Option(name: .long, help: "Recent results and failures to show.")
    var limit: Int = 10

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let configuration = try Configuration.load(path: config)
        _ = global.bootstrapLogging(configured: .warning)
        let now = Date().timeIntervalSince1970
        let summary: JobSummary
        do {
            let store = try JobStore.open(configuration.storeLocation, applicationName: "csmil status")
            summary = try store.summary(now: now, recent: limit)
        } catch {
            FileHandle.standardError.write(Data("csmil status: \(error)\n".utf8))
            throw ExitCode(1)
        }
        let snapshot = DaemonProgress.read(
            from: WatchDaemon.snapshotPath(stateDirectory: configuration.state.directory))
        let daemon = DaemonLiveness(snapshot: snapshot, now: now)
        let warnings = Self.warnings(configuration)
        if json {
            print(try Self.json(summary: summary, daemon: daemon, snapshot: snapshot, warnings: warnings))
        } else {
            print(Self.text(summary: summary, daemon: daemon, snapshot: snapshot, now: now), terminator: "")
            for warning in warnings { print("warning: " + warning.escapingControlCharacters) }
        }
    }

    /// Whether the daemon that wrote the snapshot is alive: its process exists and it wrote recently.
    struct DaemonLiveness: Codable {
        var running: Bool
        var reason: String

        init(snapshot: DaemonProgress.Snapshot?, now: Double) {
            guard let snapshot else {
                running = false
                reason = "no daemon.json: csmil watch has not run with this state folder"
                return
            }
            let alive = kill(snapshot.pid, 0) == 0 || errno == EPERM
            let fresh = now - snapshot.updatedAt < 30
            running = alive && fresh && snapshot.state != "stopped"
            reason =
                running
                ? "running (pid \(snapshot.pid))"
                : snapshot.state == "stopped"
                    ? "stopped" : "not running (last seen \(Int(now - snapshot.updatedAt)) s ago)"
        }
    }

    /// "scanner-1: running (pid 12), heartbeat 3s ago, scoring a.svs; queue 2; …".
    static func describe(_ host: HostRecord, now: Double) -> String {
        var line = "\(host.name): "
        if host.alive {
            line +=
                "running (pid \(host.pid)), heartbeat \(DaemonProgress.duration(max(0, now - host.heartbeatAt))) ago"
        } else if let stopped = host.stoppedAt {
            line += "stopped \(DaemonProgress.duration(max(0, now - stopped))) ago"
        } else {
            line +=
                "silent for \(DaemonProgress.duration(max(0, now - host.heartbeatAt))) (gone; its slides go to others)"
        }
        if !host.processing.isEmpty { line += ", holds " + host.processing.joined(separator: ", ") }
        if host.alive && !host.status.isEmpty { line += " — " + host.status }
        return line
    }

    /// What is wrong with the delivery settings as configured now (the daemon warned at start or would refuse to
    /// start again): a webhook secret every user can read, a TLS file that cannot be used (changed since the start).
    static func warnings(_ configuration: Configuration) -> [String] {
        var warnings = [Doctor.exposedSecret(configuration)].compactMap { $0 }
        for check in configuration.deliveryFileChecks() {
            guard case .failure(let error) = check.result else { continue }
            warnings.append("\(check.key): \(error.file) \(error.message); deliveries fail — \(error.fix)")
        }
        return warnings
    }

    static func json(
        summary: JobSummary, daemon: DaemonLiveness, snapshot: DaemonProgress.Snapshot?, warnings: [String] = []
    ) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        let jobs = try JSONSerialization.jsonObject(with: try encoder.encode(summary))
        var object: [String: Any] = ["jobs": jobs]
        var daemonObject: [String: Any] = ["running": daemon.running, "reason": daemon.reason]
        if let snapshot {
            daemonObject["snapshot"] = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(snapshot))
        }
        object["daemon"] = daemonObject
        object["warnings"] = warnings
        let data = try JSONSerialization.data(
            withJSONObject: object, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }

    /// The text form. Every value that comes from outside (file names, folders, messages, URLs) goes through
    /// `shown` (``Swift/String/escapingControlCharacters``): a file name holding newlines or terminal escapes shows as
    /// written, `\n` and `\u{1B}`, and cannot draw lines of its own.
    static func text(
        summary: JobSummary, daemon: DaemonLiveness, snapshot: DaemonProgress.Snapshot?, now: Double
    ) -> String {
        func shown(_ value: String) -> String { value.escapingControlCharacters }
        var out = "csmil: \(daemon.reason)\n"
        if let snapshot {
            out += "  watching \(shown(snapshot.watchFolder)) (\(snapshot.watchMode))\n"
            if daemon.running, let waiting = snapshot.waiting {
                out += "  " + shown(waiting) + "\n"
            }
            if daemon.running {
                // The snapshot is up to 2 s old: a slide the store no longer has processing has just finished.
                let processing = Set(summary.processing.map(\.id))
                for current in snapshot.current where processing.contains(current.jobID) {
                    out += "  " + shown(DaemonProgress.describe(current)) + "\n"
                }
            }
        }
        if !summary.hosts.isEmpty {
            out += "hosts:\n"
            for host in summary.hosts {
                out += "  " + Self.describe(host, now: now) + "\n"
            }
        }
        let counts = summary.counts
        out +=
            "jobs: \(counts.discovered) settling, \(counts.settled) queued, \(counts.processing) processing, "
            + "\(counts.reported) reported, \(counts.delivered) delivered, \(counts.failed) failed\n"
        if summary.qc.pass + summary.qc.review > 0 {
            out += "qc: \(summary.qc.review) to review, \(summary.qc.pass) passed\n"
        }
        if !summary.queue.isEmpty {
            out += "queue:\n"
            for job in summary.queue {
                out += "  \(shown(job.name))\(job.attempts > 0 ? " (attempt \(job.attempts + 1))" : "")\n"
            }
        }
        if !summary.recent.isEmpty {
            out += "recent results:\n"
            for result in summary.recent {
                var line = "  \(shown(result.name)): \(result.status)"
                if let probability = result.probability { line += String(format: " p=%.3f", probability) }
                if let label = result.label { line += " (\(shown(label)))" }
                if result.qcStatus == "review" {
                    line += " QC review (\(result.qcReasons.map(shown).joined(separator: ", ")))"
                }
                if let code = result.errorCode { line += " error \(code)" }
                line += ", \(result.state.rawValue), event \(result.eventID)"
                out += line + "\n"
            }
        }
        if !summary.failures.isEmpty {
            out += "failures:\n"
            for failure in summary.failures {
                out += "  \(shown(failure.name)): \(failure.code): \(shown(failure.message))\n"
            }
        }
        let outbox = summary.outbox
        out += "outbox: \(outbox.backlog) waiting, \(outbox.delivered) delivered, \(outbox.deadCount) dead"
        if let age = outbox.oldestUndeliveredAge { out += ", oldest waiting \(DaemonProgress.duration(age))" }
        out += "\n"
        for destination in outbox.destinations {
            out +=
                "  \(destination.name): \(destination.backlog) waiting, \(destination.delivered) delivered, "
                + "\(destination.deadCount) dead"
            if let age = destination.oldestUndeliveredAge { out += ", oldest waiting \(DaemonProgress.duration(age))" }
            out += "\n"
        }
        for letter in outbox.deadLetters {
            out +=
                "  dead (\(letter.destination)): \(letter.eventID) \(shown(letter.reason ?? "")) — replay with csmil outbox "
                + "retry \(letter.eventID) --destination \(letter.destination)\n"
        }
        for endpoint in outbox.disabledEndpoints {
            out +=
                "  endpoint disabled (\(endpoint.destination)): \(shown(endpoint.url)) "
                + "(\(shown(endpoint.reason ?? "410 Gone")))\n"
        }
        return out
    }
}
