import Foundation
import Notify
import Store
import SyntheticSlides
import TestJudges
import Testing

@testable import Daemon

/// The HL7 side of the commands, run as the real binary: `csmil outbox deliver` killed while the LIS holds a
/// message, `csmil hl7-sink`, and `csmil score` with `[identity] required`. The LIS is the independent receiver on
/// the PyPI `hl7` package (`tools/hl7_receiver.py`).
@Suite("csmil and HL7: kill -9 mid-send, hl7-sink, identity required")
struct HL7CommandTests {
    /// A configuration whose only destination is `[hl7] url`, and its outbox.
    final class Setup {
        let folder: URL
        let config: String
        let outbox: Outbox

        deinit { try? FileManager.default.removeItem(at: folder) }

        init(hl7URL: String) throws {
            folder = try TestSupport.temporaryDirectory()
            let state = folder.appendingPathComponent("state")
            try FileManager.default.createDirectory(at: state, withIntermediateDirectories: true)
            config = folder.appendingPathComponent("csmil.toml").path
            // The ACK timeout is far beyond the test: the first process can only lose its message by being killed.
            try TestSupport.write(
                """
                [watch]
                directory = "incoming"
                [state]
                directory = "state"
                [model]
                directory = "model"
                [hl7]
                url = "\(hl7URL)"
                ack_timeout_seconds = 600
                retry_initial_seconds = 0.05
                retry_max_seconds = 0.2
                """, to: URL(fileURLWithPath: config))
            let database = try SQLiteDatabase(path: state.appendingPathComponent("csmil.sqlite3").path)
            try Outbox.installSchema(in: database)
            outbox = Outbox(database: database)
        }
    }

    /// A scored report with an accession, as the HL7 message of a slide.
    static func report(eventID: String) -> SlideReport {
        var report = SlideReportFixture.report
        report.eventID = eventID
        report.slide.name = "S26-01234-A1-1.svs"
        report.identity = SlideIdentity(accession: "S26-01234", block: "A1", slide: "1")
        return report
    }

    static func message(_ report: SlideReport) -> HL7Message {
        HL7ResultMessage.make(
            report: report, settings: HL7Settings(receivingApplication: "LIS"), reportPath: "/r/report.json",
            timestamp: Date(timeIntervalSince1970: 1_740_821_400))
    }

    @Test(
        "kill -9 of csmil outbox deliver while the LIS holds the message unanswered: delivered after the restart, the LIS sees the same MSH-10 and bytes twice"
    )
    func killedWhileHeld() throws {
        let receiver = try Judges.HL7Receiver(acks: ["SILENT"])
        let setup = try Setup(hl7URL: receiver.url)
        let report = Self.report(eventID: "evt_held")
        try setup.outbox.enqueue(OutboxMessage(hl7: Self.message(report), report: report))

        let process = Process()
        process.executableURL = try TestSupport.binary()
        process.arguments = ["outbox", "deliver", "--config", setup.config]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // The event: the judge has logged the message and holds its ACK back.
        let held = try receiver.waitForMessages(1, while: { process.isRunning })
        try #require(held.count == 1, "csmil outbox deliver ended (status \(process.terminationStatus)) before sending")
        #expect(held[0]["answer"] as? String == "SILENT")
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        #expect(process.terminationReason == .uncaughtSignal)
        let interrupted = try #require(try setup.outbox.row(eventID: "evt_held", destination: OutboxMessage.hl7))
        #expect(interrupted.state == .pending && interrupted.attempts == 0, "the killed attempt left no record")

        let restart = try TestSupport.csmil("outbox", "deliver", "--until-empty", "--config", setup.config)
        #expect(restart.status == 0, "\(restart.stderr)")
        let row = try #require(try setup.outbox.row(eventID: "evt_held", destination: OutboxMessage.hl7))
        #expect(row.state == .delivered && row.attempts == 1)
        // The restarted process has exited: the judge's log is complete.
        let messages = try receiver.messages()
        #expect(messages.map { $0["answer"] as? String } == ["SILENT", "AA"])
        #expect(messages.allSatisfy { $0["error"] == nil && $0["control_id"] as? String == "evt_held" })
        #expect(messages[0]["raw"] as? String == messages[1]["raw"] as? String, "the same bytes are resent")
        #expect(Judges.value(messages[1], "OBR", 3) == "S26-01234")
    }

    /// Reads `handle` until a line contains `text` or the pipe ends; what was read.
    static func read(_ handle: FileHandle, until text: String) -> String {
        var output = ""
        while !output.contains(text) {
            let data = handle.availableData
            if data.isEmpty { break }
            output += String(decoding: data, as: UTF8.self)
        }
        return output
    }

    /// Starts `csmil hl7-sink` on a free port with `arguments`; the process, its stdout and its URL.
    static func startSink(_ arguments: [String]) throws -> (Process, Pipe, String) {
        let process = Process()
        process.executableURL = try TestSupport.binary()
        process.arguments = ["hl7-sink", "--port", "0"] + arguments
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        // The event: it says where it listens (port 0 picks a free one).
        let said = read(errors.fileHandleForReading, until: "\n")
        let url = try #require(
            said.split(separator: " ").first { $0.hasPrefix("mllp://") }.map(String.init), "hl7-sink said: \(said)")
        return (process, output, url)
    }

    static func send(_ bytes: [UInt8], to url: String) throws -> HL7Acknowledgement {
        let client = MLLPClient(options: MLLPClientOptions(connectTimeout: 10, ackTimeout: 30))
        guard case .answer(let answer) = client.send(bytes, to: url) else {
            throw JudgeError(message: "no answer from csmil hl7-sink at \(url)")
        }
        return try HL7Acknowledgement(parsing: answer)
    }

    static func stopSink(_ process: Process, _ output: Pipe) -> [String] {
        process.terminate()
        process.waitUntilExit()
        #expect(process.terminationReason == .exit && process.terminationStatus == 0, "SIGTERM stops it cleanly")
        return String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .split(separator: "\n").map(String.init)
    }

    @Test("csmil hl7-sink prints one line per message and answers AE to the first N, then AA; AR with --reject")
    func sinkCommand() throws {
        let bytes = Self.message(Self.report(eventID: "evt_sink")).bytes
        let (process, output, url) = try Self.startSink(["--nack-first", "1"])
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let first = try Self.send(bytes, to: url)
        #expect(first.code == "AE" && first.controlID == "evt_sink")
        #expect(first.text.contains("--nack-first 1"), "\(first.text)")
        #expect(try Self.send(bytes, to: url).code == "AA")
        #expect(try Self.send(Array("not HL7 at all".utf8), to: url).code == "AR")
        let lines = Self.stopSink(process, output)
        #expect(
            lines == [
                "ORU^R01 evt_sink accession=S26-01234 probability=0.75 label=positive → AE",
                "ORU^R01 evt_sink accession=S26-01234 probability=0.75 label=positive → AA",
                "? (not an HL7 v2 message) → AR",
            ])

        let (rejecting, rejected, rejectURL) = try Self.startSink(["--reject"])
        defer { if rejecting.isRunning { kill(rejecting.processIdentifier, SIGKILL) } }
        let answer = try Self.send(bytes, to: rejectURL)
        #expect(answer.code == "AR" && answer.text.contains("--reject"))
        #expect(
            Self.stopSink(rejecting, rejected) == [
                "ORU^R01 evt_sink accession=S26-01234 probability=0.75 label=positive → AR"
            ])
    }

    /// The report.json a summary line of `csmil score` names.
    static func reportJSON(_ line: [String: Any]) throws -> [String: Any] {
        let path = try #require(line["report"] as? String, "no report in \(line)")
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))
        return try #require(object as? [String: Any])
    }

    @Test(
        "[identity] required: a name without an accession fails with slide.no_accession naming the pattern; a MIRAX set's identity is its index file's name"
    )
    func scoreRequiresAccession() throws {
        let installation = try Installation()
        defer { installation.cleanUp() }
        let pattern = #"(?<accession>S[0-9]{2}-[0-9]+)(-(?<block>[A-Z][0-9]+))?(-(?<slide>[0-9]+))?"#
        try TestSupport.write(
            Installation.configText + "\n\n[identity]\npattern = '\(pattern)'\nrequired = true\n",
            to: installation.config)
        // A unicode name that does not match, read no further than its fingerprint.
        let unmatched = installation.root.appendingPathComponent("Schnitt Müller 2026-01-01.svs").path
        try SyntheticSlide(
            .init(width: 512, height: 512, magnification: 20, seed: 1, tissueFraction: 0.5, format: .svs)
        ).write(to: unmatched)
        // A MIRAX set: the index file names the slide; the data folder's files do not (OpenSlide cannot open
        // these made-up files, so it fails later, with its identity).
        let mirax = installation.root.appendingPathComponent("S26-00777-B2-3.mrxs").path
        try TestSupport.write("[GENERAL]\n", to: URL(fileURLWithPath: mirax))
        for name in ["Slidedat.ini", "Index.dat", "Data0000.dat"] {
            try TestSupport.write(
                "made up \(name)\n", to: installation.root.appendingPathComponent("S26-00777-B2-3/\(name)"))
        }
        let out = installation.root.appendingPathComponent("out").path
        let result = try TestSupport.csmil(
            "score", "--config", installation.config.path, "--out", out, unmatched, mirax)
        #expect(result.status == 1, "\(result.stderr)")
        let lines = try result.stdout.split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        try #require(lines.count == 2, "\(result.stdout)\n\(result.stderr)")
        #expect(lines[0]["status"] as? String == "failed")
        let error = try #require(lines[0]["error"] as? [String: Any])
        #expect(error["code"] as? String == "slide.no_accession")
        let report = try Self.reportJSON(lines[0])
        let reported = try #require(report["error"] as? [String: Any])
        #expect(reported["code"] as? String == "slide.no_accession")
        // The message names the slide and the pattern; its fix ("subject: message — fix") names the pattern's key.
        let text = reported["message"] as? String ?? ""
        #expect(text.hasPrefix("Schnitt Müller 2026-01-01.svs: ") && text.contains("'\(pattern)'"), "\(text)")
        #expect(text.contains(" — rename the slide") && text.contains("or change [identity] pattern"), "\(text)")
        #expect(error["message"] as? String == text)
        #expect((report["identity"] as? [String: Any])?.isEmpty == true, "a pattern without a match: identity {}")
        #expect((report["slide"] as? [String: Any])?["name"] as? String == "Schnitt Müller 2026-01-01.svs")

        #expect(lines[1]["status"] as? String == "failed")
        #expect((lines[1]["error"] as? [String: Any])?["code"] as? String != "slide.no_accession")
        let miraxReport = try Self.reportJSON(lines[1])
        #expect(
            miraxReport["identity"] as? [String: String] == ["accession": "S26-00777", "block": "B2", "slide": "3"],
            "\(miraxReport["identity"] ?? "none")")
    }
}
