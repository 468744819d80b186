import Foundation
import Logging
import Store
import Testing

@testable import Notify

/// The ORU^R01 encoder, ACK judging and MLLP framing, on their own.
@Suite("HL7 v2 messages")
struct HL7Tests {
    static let timestamp = Date(timeIntervalSince1970: 1_740_821_400)  // 2025-03-01T09:30:00Z
    static let settings = HL7Settings(
        sendingApplication: "CSMIL", sendingFacility: "PATH|LAB", receivingApplication: "LIS",
        receivingFacility: "PATHLAB", resultStatus: "P")

    /// A scored report whose names hold every delimiter, a line break and non-ASCII letters.
    static func hostileReport() -> SlideReport {
        var report = Fixtures.scored()
        report.slide.name = "S26-01234 A|1^x~y\\z&w Ünïcødé.svs"
        report.identity = SlideIdentity(accession: "S26-01234", specimen: "A", block: "A1", slide: "1", patient: "P^7")
        report.result?.label = "Crohn's disease & colitis"
        report.result?.scaleAttention = [0.5, 0.25, 0.25]
        return report
    }

    @Test("escaping turns the five delimiters and control characters into escapes, and parsing undoes it")
    func escaping() throws {
        let text = "a|b^c~d\\e&f\rg\nh é"
        let escaped = HL7Message.escape(text)
        #expect(escaped == "a\\F\\b\\S\\c\\R\\d\\E\\e\\T\\f\\X0D\\g\\X0A\\h é")
        #expect(!escaped.contains("|") && !escaped.contains("^") && !escaped.contains("\r"))
        let message = try HL7Message(parsing: "MSH|^~\\&|A\rOBX|1|ST|X||\(escaped)\r")
        #expect(message.value("OBX", 5) == text)
    }

    @Test("an ORU^R01 has MSH-10 = event id, UTF-8 in MSH-18, the accession in ORC-3/OBR-3, and the OBX rows")
    func scoredMessage() throws {
        let report = Self.hostileReport()
        let message = HL7ResultMessage.make(
            report: report, settings: Self.settings, reportPath: "/r/a/report.json", timestamp: Self.timestamp)
        let parsed = try HL7Message(parsing: message.bytes)
        #expect(parsed.segments.map(\.id).prefix(4) == ["MSH", "PID", "ORC", "OBR"])
        #expect(parsed.value("MSH", 9, 1) == "ORU" && parsed.value("MSH", 9, 2) == "R01")
        #expect(parsed.value("MSH", 10) == report.eventID)
        #expect(parsed.value("MSH", 12) == "2.5.1" && parsed.value("MSH", 18) == "UNICODE UTF-8")
        #expect(parsed.value("MSH", 4) == "PATH|LAB")
        #expect(parsed.value("MSH", 7) == "20250301093000+0000")
        #expect(parsed.value("PID", 3) == "P^7" && parsed.value("PID", 3, 5) == "MR")
        // PID-5 (R in the base standard): valued with the name type U only, csmil knows no names.
        #expect(parsed.value("PID", 5) == "" && parsed.value("PID", 5, 7) == "U")
        #expect(parsed.value("ORC", 3) == "S26-01234" && parsed.value("OBR", 3) == "S26-01234")
        #expect(parsed.value("OBR", 4) == "cs-mil-demo" && parsed.value("OBR", 25) == "P")
        let rows = parsed.segments("OBX")
        func row(_ code: String) -> HL7Message.Segment? { rows.first { parsed.value(of: $0, 3) == code } }
        #expect(parsed.value(of: try #require(row("CSMIL-PROB")), 5) == "0.625")
        #expect(parsed.value(of: try #require(row("CSMIL-PROB")), 2) == "NM")
        #expect(parsed.value(of: try #require(row("CSMIL-LABEL")), 5, 2) == "Crohn's disease & colitis")
        #expect(parsed.value(of: try #require(row("CSMIL-SLIDE-FILE")), 5) == report.slide.name)
        #expect(parsed.value(of: try #require(row("CSMIL-REPORT")), 5) == "/r/a/report.json")
        #expect(rows.filter { parsed.value(of: $0, 3) == "CSMIL-SCALE" }.count == 3)
        #expect(rows.filter { parsed.value(of: $0, 3) == "CSMIL-MODEL-FILE" }.count == 2)
        #expect(rows.enumerated().allSatisfy { parsed.value(of: $1, 1) == String($0 + 1) })
        #expect(rows.allSatisfy { parsed.value(of: $0, 11) == "P" })
    }

    @Test("no PID without a patient group; a failed slide is a result with OBR-25 I and its error in OBX")
    func failedMessage() throws {
        var report = Fixtures.failed()
        report.error?.message = "line one\nline two | more"
        let parsed = try HL7Message(
            parsing: HL7ResultMessage.make(
                report: report, settings: HL7Settings(), reportPath: nil, timestamp: Self.timestamp
            ).bytes)
        #expect(parsed.segment("PID") == nil)
        #expect(parsed.value("OBR", 3) == "" && parsed.value("OBR", 25) == "I")
        let rows = parsed.segments("OBX")
        let probability = try #require(rows.first { parsed.value(of: $0, 3) == "CSMIL-PROB" })
        #expect(parsed.value(of: probability, 5) == "" && parsed.value(of: probability, 11) == "X")
        let error = try #require(rows.first { parsed.value(of: $0, 3) == "CSMIL-ERROR" })
        #expect(parsed.value(of: error, 5) == "slide.unreadable")
        let text = try #require(rows.first { parsed.value(of: $0, 3) == "CSMIL-ERROR-TEXT" })
        #expect(parsed.value(of: text, 5) == "line one\nline two | more")
        #expect(rows.allSatisfy { parsed.value(of: $0, 3) != "CSMIL-REPORT" })
    }

    @Test("ACKs: AA delivers, AE retries, AR is a dead letter with the ACK's text, another MSA-2 retries")
    func acknowledgements() throws {
        func ack(_ code: String, _ id: String, _ text: String = "") throws -> DeliveryOutcome {
            let reply =
                "MSH|^~\\&|LIS|L|CSMIL|C|20250301||ACK^R01^ACK|1|P|2.5.1\rMSA|\(code)|\(id)|\(text)\r"
                + "ERR|||207^Application internal error^HL70357|E||||unknown accession\r"
            return try HL7Acknowledgement(parsing: Array(reply.utf8)).outcome(forControlID: "evt_1")
        }
        #expect(try ack("AA", "evt_1") == .delivered(status: nil))
        #expect(try ack("CA", "evt_1") == .delivered(status: nil))
        guard case .retry(let reason, nil, nil) = try ack("AE", "evt_1", "busy") else {
            Issue.record("AE must be retried")
            return
        }
        #expect(reason.contains("ACK AE: busy"))
        guard case .deadLetter(nil, let text) = try ack("AR", "evt_1", "no such order") else {
            Issue.record("AR must be a dead letter")
            return
        }
        #expect(text.contains("no such order") && text.contains("unknown accession"))
        guard case .retry = try ack("AA", "evt_2") else {
            Issue.record("an ACK for another message must be retried")
            return
        }
        #expect(MLLPResponse.answer(Array("garbage".utf8)).outcome(forControlID: "x") != .delivered(status: nil))
        #expect(MLLPResponse.cancelled.outcome(forControlID: "x") == nil)
    }

    @Test("MLLP frames: VT message FS CR; bytes before VT dropped; an incomplete frame waits")
    func framing() {
        var buffer: [UInt8] = [0x41] + MLLPClient.frame([1, 2, 3]) + [0x0B, 9]
        #expect(MLLPClient.takeFrame(from: &buffer) == [1, 2, 3])
        #expect(buffer == [0x0B, 9])
        #expect(MLLPClient.takeFrame(from: &buffer) == nil)
        buffer += [0x1C, 0x0D]
        #expect(MLLPClient.takeFrame(from: &buffer) == [9])
    }

    @Test("mllp URLs: host and port; plain only to loopback unless allowed")
    func endpoints() throws {
        let local = try MLLPClient.Endpoint(url: "mllp://127.0.0.1:2575")
        #expect(!local.tls && local.isLoopback && local.port == 2575)
        #expect(try MLLPClient.Endpoint(url: "mllp://localhost").port == 2575)
        #expect(try MLLPClient.Endpoint(url: "mllp://[::1]:7000").isLoopback)
        let remote = try MLLPClient.Endpoint(url: "mllps://lis.example.org:6661")
        #expect(remote.tls && !remote.isLoopback)
        #expect(throws: HL7Error.self) { try MLLPClient.Endpoint(url: "https://lis.example.org") }
        #expect(throws: HL7Error.self) { try MLLPClient.Endpoint(url: "mllp://lis.example.org:1/path") }
        let refused = MLLPClient(options: MLLPClientOptions(connectTimeout: 1)).send([1], to: "mllp://10.1.2.3:2575")
        guard case .transportFailure(false, let message) = refused else {
            Issue.record("plain MLLP to a remote host must be refused")
            return
        }
        #expect(message.contains("allow_plain"))
    }
}
