import Foundation
import Sinks
import Testing

@testable import Notify

/// `csmil hl7-sink`'s receiver over real MLLP on loopback, sent to by csmil's own MLLP client.
@Suite("HL7 sink")
struct HL7SinkTests {
    /// The ORU^R01 of the scored fixture report with event id `id`.
    static func message(_ id: String) -> [UInt8] {
        var report = Fixtures.scored()
        report.eventID = id
        return HL7ResultMessage.make(
            report: report, settings: HL7Tests.settings, reportPath: nil, timestamp: HL7Tests.timestamp
        ).bytes
    }

    @Test("--nack-first 1: the first message is answered AE, the next AA; each is recorded with its MSH-10")
    func nackFirstThenAccept() throws {
        let sink = HL7Sink(nackFirst: 1)
        try sink.start()
        defer { sink.stop() }
        let client = MLLPClient(options: MLLPClientOptions(connectTimeout: 10, ackTimeout: 30))
        let first = client.send(Self.message("evt_a"), to: sink.url)
        guard case .retry = first.outcome(forControlID: "evt_a") else {
            Issue.record("AE is a retry: \(first)")
            return
        }
        #expect(
            client.send(Self.message("evt_b"), to: sink.url).outcome(forControlID: "evt_b") == .delivered(status: nil))
        #expect(sink.messages.map(\.controlID) == ["evt_a", "evt_b"])
        #expect(sink.messages.map(\.ackCode) == ["AE", "AA"])
        #expect(sink.messages.first?.bytes == Self.message("evt_a"))
        #expect(sink.messages.last?.line.hasPrefix("ORU^R01 evt_b accession=") == true)
    }

    @Test("something that is not HL7 is answered AR; --reject answers AR to everything")
    func rejects() throws {
        let sink = HL7Sink()
        try sink.start()
        defer { sink.stop() }
        let client = MLLPClient(options: MLLPClientOptions(connectTimeout: 10, ackTimeout: 30))
        guard case .answer(let bytes) = client.send(Array("hello".utf8), to: sink.url) else {
            Issue.record("no answer")
            return
        }
        #expect(try HL7Acknowledgement(parsing: bytes).code == "AR")

        let rejecting = HL7Sink(reject: true)
        try rejecting.start()
        defer { rejecting.stop() }
        guard case .deadLetter = client.send(Self.message("evt_c"), to: rejecting.url).outcome(forControlID: "evt_c")
        else {
            Issue.record("AR is a dead letter")
            return
        }
        #expect(rejecting.messages.map(\.ackCode) == ["AR"])
    }

    @Test("a port in use is refused naming the address and the fix; stop() ends every thread")
    func portInUse() throws {
        let sink = HL7Sink()
        try sink.start()
        let second = HL7Sink(port: sink.port)
        #expect(throws: SinkError.self) { try second.start() }
        do {
            try second.start()
        } catch {
            #expect(error.code == .hl7Listen && error.subject == "127.0.0.1:\(sink.port)")
            #expect(error.fix.contains("--port"))
        }
        sink.stop()  // returns only once the accept and connection threads have ended
        #expect(throws: SinkError.self) { try HL7Sink(host: "localhost").start() }
    }
}
