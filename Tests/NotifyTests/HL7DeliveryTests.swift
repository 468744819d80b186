import Foundation
import Logging
import Store
import TestJudges
import Testing

@testable import Notify

/// HL7 delivery over real MLLP on loopback to an independent receiver (`tools/hl7_receiver.py`, the PyPI `hl7`
/// package), through the real outbox worker and a real SQLite file.
@Suite("HL7 delivery over MLLP, judged by the PyPI hl7 package", .serialized)
struct HL7DeliveryTests {
    /// An outbox with the HL7 message of `report` queued.
    final class Harness: @unchecked Sendable {
        let databasePath: String
        let outbox: Outbox
        var worker: OutboxDelivery?
        private var task: Task<Void, any Error>?

        init(_ reports: [SlideReport] = [HL7Tests.hostileReport()]) throws {
            databasePath = try Fixtures.temporaryFolder() + "/csmil.sqlite3"
            let database = try SQLiteDatabase(path: databasePath)
            try Outbox.installSchema(in: database)
            outbox = Outbox(database: database)
            // The rows the daemon queues: the destination's encoder, with the report folder `/r`.
            let encode = Harness.destination(url: "mllp://127.0.0.1:1").encode
            for report in reports { try outbox.enqueue(try encode(report, "/r", HL7Tests.timestamp)) }
        }

        func start(url: String, options: MLLPClientOptions = MLLPClientOptions(connectTimeout: 2, ackTimeout: 5)) {
            let worker = OutboxDelivery(
                configuration: configuration(url: url, options: options),
                logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
            task = Task { try await worker.run() }
            self.worker = worker
        }

        /// The HL7 destination at `url`, with small backoffs.
        static func destination(
            url: String, options: MLLPClientOptions = MLLPClientOptions(connectTimeout: 2, ackTimeout: 5)
        ) -> Destination {
            Destination.hl7(
                url: url, settings: HL7Tests.settings, options: options,
                retry: RetryPolicy(initialDelay: 0.05, maximumDelay: 0.2, window: 600))
        }

        /// The worker's configuration: the HL7 destination at `url`.
        func configuration(
            url: String, options: MLLPClientOptions = MLLPClientOptions(connectTimeout: 2, ackTimeout: 5)
        ) -> OutboxDelivery.Configuration {
            OutboxDelivery.Configuration(
                store: .sqlite(path: databasePath), destinations: [Harness.destination(url: url, options: options)],
                idlePoll: 0.5, randomFraction: { 1 })
        }

        /// The next attempt goes to `url` with `options` (as a reload does).
        func reconfigure(url: String, options: MLLPClientOptions) {
            worker?.reconfigure(configuration(url: url, options: options))
        }

        /// Waits until the worker has recorded at least `count` attempts on the row (while it stays pending).
        func attempts(_ count: Int, _ id: String = "evt_0123") async throws -> OutboxRow {
            while try row(id).attempts < count && row(id).state == .pending {
                try await Task.sleep(for: .milliseconds(20))
            }
            return try row(id)
        }

        func row(_ id: String = "evt_0123") throws -> OutboxRow {
            try #require(try outbox.row(eventID: id, destination: OutboxMessage.hl7))
        }

        /// Waits until the row leaves `pending` (the worker records every attempt).
        func settled(_ id: String = "evt_0123") async throws -> OutboxRow {
            while try row(id).state == .pending { try await Task.sleep(for: .milliseconds(20)) }
            return try row(id)
        }

        /// Stopping is cancelling the worker's task.
        deinit { task?.cancel() }
    }

    @Test("the hl7 package parses every segment and field we send, names and delimiters intact; AA delivers")
    func acceptedAndParsed() async throws {
        let receiver = try Judges.HL7Receiver()
        let harness = try Harness()
        harness.start(url: receiver.url)
        let row = try await harness.settled()
        #expect(row.state == .delivered && row.attempts == 1)
        let messages = try receiver.messages()
        #expect(messages.count == 1)
        let message = try #require(messages.first)
        #expect(message["error"] == nil, "the hl7 package could not parse it: \(message["error"] ?? "")")
        let report = HL7Tests.hostileReport()
        #expect(Judges.value(message, "MSH", 9, 1) == "ORU" && Judges.value(message, "MSH", 9, 2) == "R01")
        #expect(Judges.value(message, "MSH", 10) == report.eventID)
        #expect(Judges.value(message, "MSH", 12) == "2.5.1")
        #expect(Judges.value(message, "MSH", 18) == "UNICODE UTF-8")
        #expect(Judges.value(message, "MSH", 4) == "PATH|LAB")
        #expect(Judges.value(message, "PID", 3) == "P^7")
        #expect(Judges.value(message, "PID", 5, 7) == "U", "PID-5: a name of unspecified type (R in the standard)")
        #expect(Judges.value(message, "ORC", 3) == "S26-01234" && Judges.value(message, "OBR", 3) == "S26-01234")
        #expect(Judges.value(message, "OBR", 25) == "P")
        var observations: [String: [String]] = [:]
        var occurrence = 1
        while !Judges.fields(message, "OBX", occurrence: occurrence).isEmpty {
            let fields = Judges.fields(message, "OBX", occurrence: occurrence)
            #expect(fields[0] == [String(occurrence)], "OBX-1 numbers the rows")
            observations[fields[2].first ?? "", default: []].append(
                fields.count >= 5 ? fields[4].joined(separator: "^") : "")
            occurrence += 1
        }
        #expect(observations["CSMIL-PROB"] == ["0.625"])
        #expect(observations["CSMIL-LABEL"] == ["POS^Crohn's disease & colitis^L"])
        #expect(observations["CSMIL-SLIDE-FILE"] == [report.slide.name])
        #expect(observations["CSMIL-SPECIMEN"] == ["A"] && observations["CSMIL-BLOCK"] == ["A1"])
        #expect(observations["CSMIL-SCALE"] == ["0.5", "0.25", "0.25"])
        #expect(observations["CSMIL-MODEL"] == ["cs-mil-demo"])
        // The ACK the package made names our message.
        receiver.stop()
    }

    @Test("AE then AA: retried with backoff, one delivery, the same MSH-10 both times")
    func errorThenAccept() async throws {
        let receiver = try Judges.HL7Receiver(acks: ["AE"])
        let harness = try Harness()
        harness.start(url: receiver.url)
        let row = try await harness.settled()
        #expect(row.state == .delivered && row.attempts == 2)
        let messages = try receiver.messages()
        #expect(messages.map { $0["answer"] as? String } == ["AE", "AA"])
        #expect(Set(messages.map { $0["control_id"] as? String }) == ["evt_0123"])
        #expect(messages[0]["raw"] as? String == messages[1]["raw"] as? String, "the same bytes are resent")
    }

    @Test("AR: a dead letter carrying the ACK's text; nothing is resent")
    func rejected() async throws {
        let receiver = try Judges.HL7Receiver(acks: ["AR"])
        let harness = try Harness()
        harness.start(url: receiver.url)
        let row = try await harness.settled()
        #expect(row.state == .dead && row.attempts == 1)
        #expect(row.lastError?.contains("ACK AR: judge answer AR to message 1") == true)
        #expect(try harness.outbox.summary().deadLetters.first?.destination == OutboxMessage.hl7)
        #expect(try receiver.messages().count == 1)
    }

    @Test("no ACK in time, or a closed connection: retried with the same MSH-10 until one is accepted")
    func silentAndClosed() async throws {
        let receiver = try Judges.HL7Receiver(acks: ["SILENT", "CLOSE"])
        let harness = try Harness()
        harness.start(url: receiver.url, options: MLLPClientOptions(connectTimeout: 2, ackTimeout: 0.5))
        let row = try await harness.settled()
        #expect(row.state == .delivered && row.attempts == 3)
        let messages = try receiver.messages()
        #expect(messages.map { $0["answer"] as? String } == ["SILENT", "CLOSE", "AA"])
        #expect(Set(messages.map { $0["control_id"] as? String }) == ["evt_0123"])
    }

    @Test("receiver down, then up on the same port: delivered once it listens")
    func downThenUp() async throws {
        // A free port: bind, read it, close (the receiver binds it again below).
        let probe = try Judges.HL7Receiver()
        let port = probe.port
        probe.stop()
        let harness = try Harness()
        harness.start(url: "mllp://127.0.0.1:\(port)")
        // The first attempts are refused; wait for one to be recorded before the receiver comes up.
        while try harness.row().attempts == 0 { try await Task.sleep(for: .milliseconds(20)) }
        #expect(try harness.row().lastError?.contains("cannot connect") == true)
        let receiver = try Judges.HL7Receiver(port: port)
        let row = try await harness.settled()
        #expect(row.state == .delivered && row.attempts >= 2)
        #expect(try receiver.messages().count == 1)
    }

    @Test("no-tissue and failed slides are results the hl7 package parses, with OBR-25 and OBX-11 as documented")
    func otherStatuses() async throws {
        let receiver = try Judges.HL7Receiver()
        let harness = try Harness([Fixtures.noTissue(), Fixtures.failed()])
        harness.start(url: receiver.url)
        #expect(try await harness.settled("evt_0124").state == .delivered)
        #expect(try await harness.settled("evt_0125").state == .delivered)
        let messages = try receiver.messages()
        #expect(messages.count == 2 && messages.allSatisfy { $0["error"] == nil })
        let failed = try #require(messages.first { $0["control_id"] as? String == "evt_0125" })
        #expect(Judges.value(failed, "OBR", 25) == "I")
        let noTissue = try #require(messages.first { $0["control_id"] as? String == "evt_0124" })
        #expect(Judges.value(noTissue, "OBR", 25) == "P")
    }

    @Test("QC: a review slide says so in an NTE before the OBX rows and in QC rows after the status; a pass slide too")
    func qualityControl() async throws {
        let receiver = try Judges.HL7Receiver()
        var review = ReportPageTests.review()
        review.eventID = "evt_0126"
        var pass = Fixtures.scored()
        pass.eventID = "evt_0127"
        pass.qc = SlideReport.QualityControl(
            status: "pass", reasons: [], fractions: ["pen": 0, "blur": 0.005, "fold": 0], excluded: 0, usable: 100,
            exclude: ["pen", "blur", "fold"])
        let harness = try Harness([review, pass])
        harness.start(url: receiver.url)
        #expect(try await harness.settled("evt_0126").state == .delivered)
        #expect(try await harness.settled("evt_0127").state == .delivered)
        let messages = try receiver.messages()
        #expect(messages.count == 2 && messages.allSatisfy { $0["error"] == nil })

        /// (OBX-3, OBX-4, OBX-5 components joined by ^) per row, in order, and the segment names in order.
        func read(_ message: [String: Any]) -> (rows: [(String, String, String)], ids: [String]) {
            var rows: [(String, String, String)] = []
            var occurrence = 1
            while true {
                let fields = Judges.fields(message, "OBX", occurrence: occurrence)
                if fields.isEmpty { break }
                rows.append(
                    (
                        fields[2].first ?? "", fields.count >= 4 ? fields[3].joined(separator: "^") : "",
                        fields.count >= 5 ? fields[4].joined(separator: "^") : ""
                    ))
                occurrence += 1
            }
            let ids = (message["segments"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
            return (rows, ids)
        }

        let reviewed = try #require(messages.first { $0["control_id"] as? String == "evt_0126" })
        let (rows, ids) = read(reviewed)
        // The note comes right after OBR, before any OBX: what an LIS shows first.
        #expect(Array(ids.prefix(4)) == ["MSH", "ORC", "OBR", "NTE"])
        #expect(Judges.value(reviewed, "NTE", 2) == "L")
        #expect(
            Judges.value(reviewed, "NTE", 3)
                == "QC REVIEW (pen, fold): pen ink on 12.5 % of tissue tiles; tissue folds on 11.0 % of tissue tiles; "
                + "the score rests on the 70 usable tiles.")
        let codes = rows.map(\.0)
        let status = try #require(codes.firstIndex(of: "CSMIL-STATUS"))
        #expect(codes[status + 1] == "CSMIL-QC")
        #expect(try #require(codes.firstIndex(of: "CSMIL-PROB")) > status + 1)
        #expect(
            rows.first { $0.0 == "CSMIL-QC" }?.2
                == "review^QC review: pen ink on 12.5 % of tissue tiles; tissue folds on 11.0 % of tissue tiles^L")
        #expect(
            rows.filter { $0.0 == "CSMIL-QC-REASON" }.map { "\($0.1) \($0.2)" }
                == ["1 pen^Pen ink^L", "2 fold^Tissue folds^L"])
        #expect(
            rows.filter { $0.0 == "CSMIL-QC-FRACTION" }.map { "\($0.1) \($0.2)" } == [
                "pen 0.125", "blur 0.0", "fold 0.11",
            ])
        #expect(rows.filter { $0.0 == "CSMIL-QC-EXCLUDED" }.map(\.2) == ["30"])
        #expect(rows.first { $0.0 == "CSMIL-PROB" }?.2 == "0.625", "a review slide keeps its probability")

        let passed = try #require(messages.first { $0["control_id"] as? String == "evt_0127" })
        let (passRows, passIDs) = read(passed)
        #expect(!passIDs.contains("NTE"))
        #expect(passRows.first { $0.0 == "CSMIL-QC" }?.2 == "pass^QC pass^L")
        #expect(!passRows.contains { $0.0 == "CSMIL-QC-REASON" })
        #expect(passRows.filter { $0.0 == "CSMIL-QC-FRACTION" }.map(\.2) == ["0.0", "0.005", "0.0"])
        receiver.stop()
    }

    @Test("a reconfigured URL applies to queued rows: the next attempt goes to the new receiver")
    func reconfiguredURL() async throws {
        let old = try Judges.HL7Receiver(acks: ["AE", "AE", "AE", "AE", "AE", "AE", "AE", "AE", "AE", "AE"])
        let new = try Judges.HL7Receiver()
        let harness = try Harness()
        harness.start(url: old.url)
        while try old.messages().isEmpty { try await Task.sleep(for: .milliseconds(20)) }
        harness.worker?.reconfigure(harness.configuration(url: new.url))
        #expect(try await harness.settled().state == .delivered)
        #expect(try new.messages().map { $0["control_id"] as? String } == ["evt_0123"])
    }

    // MARK: - mllps:// against the judge speaking TLS, with certificates made by openssl in the test

    static func tlsOptions(
        _ certificates: TestCertificates, ca: String? = nil, clientCertificate: Bool = true
    ) -> MLLPClientOptions {
        MLLPClientOptions(
            connectTimeout: 10, ackTimeout: 10, caFile: ca ?? certificates.caCertificate,
            clientCertificate: clientCertificate ? certificates.clientCertificate : nil,
            clientKey: clientCertificate ? certificates.clientKey : nil)
    }

    @Test("mllps:// with mutual TLS: without the client certificate the receiver asks for, retried; with it, delivered")
    func mutualTLS() async throws {
        let pki = try TestCertificates()
        let receiver = try Judges.HL7Receiver(
            tls: (cert: pki.serverCertificate, key: pki.serverKey, clientCA: pki.caCertificate))
        let harness = try Harness()
        // The certificate names localhost and 127.0.0.1; the host name is checked too.
        let url = "mllps://localhost:\(receiver.port)"
        harness.start(url: url, options: Self.tlsOptions(pki, clientCertificate: false))
        let refused = try await harness.attempts(2)
        #expect(refused.state == .pending, "a refused client certificate is retried, not a dead letter")
        #expect(refused.lastError?.contains("[hl7] client_certificate") == true, "\(refused.lastError ?? "")")
        harness.reconfigure(url: url, options: Self.tlsOptions(pki))
        let row = try await harness.settled()
        #expect(row.state == .delivered, "\(row.lastError ?? "")")
        let messages = try receiver.messages()
        #expect(messages.count == 1, "the judge parsed only the message sent with the client certificate")
        #expect(messages.first?["error"] == nil && messages.first?["control_id"] as? String == "evt_0123")
        #expect(messages.first?["answer"] as? String == "AA")
    }

    @Test(
        "mllps:// trusting the wrong CA: nothing is sent, the error names [hl7] ca_file, retried until the CA is right")
    func wrongCA() async throws {
        let pki = try TestCertificates()
        let receiver = try Judges.HL7Receiver(tls: (cert: pki.serverCertificate, key: pki.serverKey, clientCA: nil))
        let harness = try Harness()
        let url = "mllps://127.0.0.1:\(receiver.port)"
        harness.start(url: url, options: Self.tlsOptions(pki, ca: pki.otherCACertificate))
        let failing = try await harness.attempts(2)
        #expect(failing.state == .pending, "an untrusted certificate is retried (the CA may be fixed by a reload)")
        let error = failing.lastError ?? ""
        #expect(error.contains("cannot connect to \(url)") && error.contains("[hl7] ca_file"), "\(error)")
        // A missing CA file is named too.
        harness.reconfigure(url: url, options: Self.tlsOptions(pki, ca: pki.folder + "/missing-ca.pem"))
        while try harness.row().lastError == error { try await Task.sleep(for: .milliseconds(20)) }
        let missing = try harness.row().lastError ?? ""
        #expect(missing.contains("ca_file"), "\(missing)")
        harness.reconfigure(url: url, options: Self.tlsOptions(pki))
        #expect(try await harness.settled().state == .delivered)
        #expect(try receiver.messages().map { $0["control_id"] as? String } == ["evt_0123"])
    }
}
