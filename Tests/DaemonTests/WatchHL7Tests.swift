import Foundation
import Notify
import Store
import TestJudges
import Testing

@testable import Daemon

/// `csmil watch` with both destinations on: a signed webhook carrying a FHIR transaction Bundle and an HL7 ORU^R01
/// over MLLP, each slide keyed by its accession. Judged independently: the Standard Webhooks signature by Python's
/// hmac, the Bundle by `fhir.resources`, the ORU^R01 by the PyPI `hl7` package acting as the LIS.
@Suite("csmil watch with [webhook] and [hl7]")
struct WatchHL7Tests {
    static let pattern = #"(?<accession>S[0-9]{2}-[0-9]+)(-(?<block>[A-Z][0-9]+))?(-(?<slide>[0-9]+))?"#

    @Test(
        "one slide: one verified webhook (FHIR Bundle) and one acknowledged ORU^R01 by accession; kill -9 while the LIS holds the ORU: resent after the restart with the same MSH-10"
    )
    func webhookAndHL7() throws {
        // The LIS holds the first message unanswered; everything after it is acknowledged.
        let receiver = try Judges.HL7Receiver(acks: ["SILENT"])
        let setup = try WatchDaemonTests.Setup(
            extraConfiguration: """
                format = "fhir"
                fhir_bundle = true

                [identity]
                pattern = '\(Self.pattern)'
                required = true
                accession_system = "http://lab.example.org/accession"

                [hl7]
                url = "\(receiver.url)"
                receiving_application = "LIS"
                ack_timeout_seconds = 600
                retry_initial_seconds = 0.2
                retry_max_seconds = 1

                """)
        defer { setup.cleanUp() }
        let config = setup.installation.config.path
        let first = try setup.start(run: 0)
        defer { if first.isRunning { kill(first.processIdentifier, SIGKILL) } }
        #expect(setup.notify.wait(for: "READY=1", timeout: 60), "log:\n\(setup.log(0))")
        try setup.drop("S26-01234-A1-1.svs", seed: 7)

        // The events: the LIS has logged the ORU^R01 (and holds its ACK), the webhook receiver verified the event,
        // and the daemon recorded the webhook delivered.
        let held = try receiver.waitForMessages(1, while: { first.isRunning })
        try #require(held.count == 1, "log:\n\(setup.log(0))")
        let eventID = try #require(held[0]["control_id"] as? String)
        let events = setup.waitForEvents(1, timeout: 120)
        try #require(events.count == 1, "log:\n\(setup.log(0))")
        let outbox = Outbox(
            database: try SQLiteDatabase(path: setup.state.appendingPathComponent("csmil.sqlite3").path))
        while first.isRunning, try outbox.row(eventID: eventID, destination: OutboxMessage.webhook)?.state != .delivered
        {
            Thread.sleep(forTimeInterval: 0.05)
        }
        let status = try TestSupport.csmil("status", "--config", config)
        #expect(status.stdout.contains("  webhook: 0 waiting, 1 delivered, 0 dead"), "\(status.stdout)")
        #expect(status.stdout.contains("  hl7: 1 waiting, 0 delivered, 0 dead"), "\(status.stdout)")
        let list = try TestSupport.csmil("outbox", "--config", config)
        #expect(list.status == 0, "\(list.stderr)")
        #expect(list.stdout.contains("\(eventID) webhook delivered (slide.scored), 1 attempt\n"), "\(list.stdout)")
        #expect(list.stdout.contains("\(eventID) hl7 pending (slide.scored), 0 attempts"), "\(list.stdout)")

        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        let second = try setup.start(run: 1)
        defer { if second.isRunning { kill(second.processIdentifier, SIGKILL) } }
        let both = try receiver.waitForMessages(2, while: { second.isRunning })
        try #require(both.count == 2, "log:\n\(setup.log(1))")
        while second.isRunning, try outbox.row(eventID: eventID, destination: OutboxMessage.hl7)?.state != .delivered {
            Thread.sleep(forTimeInterval: 0.05)
        }
        #expect(WatchDaemonTests.stop(second), "csmil watch did not exit on SIGTERM")

        // Both daemons have ended: what the receivers hold now is all they will ever get.
        let webhooks = setup.sink.events
        #expect(webhooks.count == 1, "one webhook event for the slide, not resent after the restart")
        let event = try #require(webhooks.first)
        let headers = event.request.headers
        #expect(event.verdict == .verified && headers["webhook-id"] == eventID)
        let signature = try Judges.verifyWebhookSignature(
            secretFile: setup.installation.secret.path, id: headers["webhook-id"] ?? "",
            timestamp: headers["webhook-timestamp"] ?? "", signature: headers["webhook-signature"] ?? "",
            body: event.request.body)
        #expect(signature.status == 0, "Standard Webhooks check: \(signature.output)")
        let fhir = try #require(try Judges.validateFHIR([event.request.body]).first)
        #expect(fhir["ok"] as? Bool == true, "\(fhir["problems"] ?? "")")
        #expect(
            (fhir["resources"] as? [String])?.sorted()
                == ["Device", "DiagnosticReport", "Observation", "Observation", "Observation", "Specimen"])
        let bundle = String(decoding: event.request.body, as: UTF8.self)
        #expect(bundle.contains(#""system":"http://lab.example.org/accession","value":"S26-01234""#))

        let messages = try receiver.messages()
        #expect(messages.map { $0["answer"] as? String } == ["SILENT", "AA"])
        #expect(messages.allSatisfy { $0["error"] == nil && $0["control_id"] as? String == eventID })
        #expect(messages[0]["raw"] as? String == messages[1]["raw"] as? String, "the same bytes are resent")
        let oru = messages[1]
        #expect(Judges.value(oru, "MSH", 9, 1) == "ORU" && Judges.value(oru, "MSH", 9, 2) == "R01")
        #expect(Judges.value(oru, "MSH", 5) == "LIS")
        #expect(Judges.value(oru, "ORC", 3) == "S26-01234" && Judges.value(oru, "OBR", 3) == "S26-01234")
        let observations = Judges.observations(oru)
        #expect(observations["CSMIL-BLOCK"] == ["A1"] && observations["CSMIL-SLIDE"] == ["1"])
        #expect(observations["CSMIL-SLIDE-FILE"] == ["S26-01234-A1-1.svs"])
        // The probability is the report's.
        let folder = try #require(setup.reportFolders().first)
        let report = try #require(
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: setup.reports.appendingPathComponent(folder + "/report.json")))
                as? [String: Any])
        let probability = try #require((report["result"] as? [String: Any])?["probability"] as? Double)
        #expect(observations["CSMIL-PROB"].flatMap { $0.first }.flatMap(Double.init) == probability)
        #expect(observations["CSMIL-REPORT"]?.first?.hasSuffix(folder + "/report.json") == true)
        #expect(try outbox.row(eventID: eventID, destination: OutboxMessage.hl7)?.attempts == 1)
    }
}
