import Foundation
import Logging
import Testing

@testable import Daemon

@Suite("Logging")
struct LoggingTests {
    @Test("journal entries carry MESSAGE, PRIORITY and one upper-case field per metadata key")
    func journalFields() {
        let fields = JournalFields.fields(
            level: .warning, message: "slide failed",
            metadata: ["slide": "a.svs", "event_id": "evt_1", "stage": "ingest", "message_id": "5c3a"],
            file: "Daemon/Pipeline.swift", function: "run()", line: 42)
        // Plain `journalctl -u csmil` shows MESSAGE only: it names the slide and the reason, not just the event.
        #expect(fields.contains("MESSAGE=slide failed event_id=evt_1 slide=a.svs stage=ingest"))
        #expect(fields.contains("MESSAGE_ID=5c3a"))
        #expect(fields.contains("PRIORITY=4"))
        #expect(fields.contains("SYSLOG_IDENTIFIER=csmil"))
        #expect(fields.contains("SLIDE=a.svs"))
        #expect(fields.contains("EVENT_ID=evt_1"))
        #expect(fields.contains("STAGE=ingest"))
        #expect(fields.contains("CODE_LINE=42"))
    }

    @Test("metadata cannot overwrite the journal's own fields")
    func reservedFields() {
        let fields = JournalFields.fields(
            level: .info, message: "real", metadata: ["message": "forged", "priority": "0"], file: "f", function: "g",
            line: 1)
        #expect(fields.filter { $0.hasPrefix("MESSAGE=") } == ["MESSAGE=real message=forged priority=0"])
        #expect(fields.filter { $0.hasPrefix("PRIORITY=") } == ["PRIORITY=6"])
    }

    @Test(
        "metadata keys become valid journal field names",
        arguments: [
            ("slide", "SLIDE"), ("event-id", "EVENT_ID"), ("tiles.done", "TILES_DONE"), ("_private", "PRIVATE"),
            ("2fast", "FAST"), ("ü", nil), (String(repeating: "a", count: 80), String(repeating: "A", count: 64)),
        ])
    func fieldNames(key: String, expected: String?) {
        #expect(JournalFields.fieldName(key) == expected)
    }

    @Test("swift-log levels map to syslog priorities")
    func priorities() {
        #expect(Logger.Level.allCases.map(JournalFields.priority) == [7, 7, 6, 5, 4, 3, 2])
    }

    @Test("stderr lines are one line each, with sorted key=value metadata, quoted when needed")
    func stderrFormat() {
        let line = StderrFormat.line(
            date: Date(timeIntervalSince1970: 0), level: .info, message: "slide settled",
            metadata: ["slide": "a b.svs", "stage": "watch", "note": "x=\"y\"\nz"])
        #expect(line == #"1970-01-01T00:00:00Z info slide settled note="x=\"y\"\nz" slide="a b.svs" stage=watch"#)
    }

    @Test("the journal is chosen only when JOURNAL_STREAM names this process's stderr")
    func destination() {
        #expect(LogDestination.detect(environment: [:]) == .stderr)
        #expect(LogDestination.detect(environment: ["JOURNAL_STREAM": "garbage"]) == .stderr)
        var status = stat()
        #expect(fstat(STDERR_FILENO, &status) == 0)
        let mine = "\(status.st_dev):\(status.st_ino)"
        #expect(LogDestination.detect(environment: ["JOURNAL_STREAM": mine]) == .journal)
        #expect(
            LogDestination.detect(environment: ["JOURNAL_STREAM": "\(status.st_dev):\(status.st_ino + 1)"]) == .stderr)
    }
}
