import Foundation
import TestJudges
import Testing

@testable import Notify

/// The FHIR bodies judged by an independent validator: `tools/fhir_validate.py` on the PyPI `fhir.resources`
/// package (R4B models).
@Suite("FHIR bodies, judged by fhir.resources")
struct FHIRValidationTests {
    static let timestamp = Date(timeIntervalSince1970: 1_740_821_400)

    static func reports() -> [SlideReport] {
        var scored = Fixtures.scored()
        scored.identity = SlideIdentity(
            accession: "S26-01234", specimen: "A", block: "A1", slide: "1", patient: "MRN-7")
        scored.result?.scaleAttention = [0.6, 0.3, 0.1]
        var noTissue = Fixtures.noTissue()
        noTissue.identity = SlideIdentity(accession: "S26-01235")
        return [scored, noTissue, Fixtures.failed()]
    }

    @Test("scored, no-tissue and failed slides: the DiagnosticReport and the transaction Bundle validate")
    func validates() throws {
        var bodies: [[UInt8]] = []
        for report in Self.reports() {
            for bundle in [false, true] {
                let options = FHIROptions(accessionSystem: "http://lab.example.org/accession", bundle: bundle)
                bodies.append(try WebhookPayload.fhir(report: report, timestamp: Self.timestamp, options: options).body)
            }
        }
        let results = try Judges.validateFHIR(bodies)
        #expect(results.count == bodies.count)
        for result in results {
            #expect(result["ok"] as? Bool == true, "\(result["file"] ?? ""): \(result["problems"] ?? "")")
        }
        // What the validator saw: the Bundle of the scored slide holds the report, three Observations, the
        // Device and the Specimen.
        let kinds = try #require(results[1]["resources"] as? [String])
        #expect(
            kinds.sorted()
                == ["Device", "DiagnosticReport", "Observation", "Observation", "Observation", "Specimen"])
    }

    @Test("the Bundle: POST entries with urn:uuid full URLs, conditional creates, references inside the Bundle")
    func bundleShape() throws {
        let report = Self.reports()[0]
        let body = try WebhookPayload.fhir(
            report: report, timestamp: Self.timestamp, options: FHIROptions(bundle: true)
        ).body
        let bundle = try Fixtures.jsonObject(Data(body))
        #expect(bundle["type"] as? String == "transaction")
        let entries = try #require(bundle["entry"] as? [[String: Any]])
        let urls = Set(entries.compactMap { $0["fullUrl"] as? String })
        #expect(urls.count == entries.count && urls.allSatisfy { $0.hasPrefix("urn:uuid:") })
        let diagnostic = try #require(entries.first)
        let resource = try #require(diagnostic["resource"] as? [String: Any])
        let identifiers = try #require(resource["identifier"] as? [[String: Any]])
        #expect(identifiers.contains { $0["value"] as? String == "S26-01234" })
        let request = try #require(diagnostic["request"] as? [String: Any])
        #expect(request["ifNoneExist"] as? String == "identifier=urn:csmil:event-id|evt_0123")
        // Every conditional create names an identifier its own resource carries: a resend finds what the first
        // send created (a server runs `ifNoneExist` as a search on the type).
        for entry in entries {
            let request = try #require(entry["request"] as? [String: Any])
            let condition = try #require(request["ifNoneExist"] as? String)
            let created = try #require(entry["resource"] as? [String: Any])
            let carried = (created["identifier"] as? [[String: Any]] ?? []).map {
                "identifier=\($0["system"] as? String ?? "")|\($0["value"] as? String ?? "")"
            }
            #expect(carried.contains(condition), "\(request["url"] ?? ""): \(condition) not in \(carried)")
        }
        let specimen = try #require(
            entries.compactMap { $0["resource"] as? [String: Any] }.first {
                $0["resourceType"] as? String == "Specimen"
            })
        #expect(
            (specimen["accessionIdentifier"] as? [String: Any])?["value"] as? String == "S26-01234"
                && (specimen["identifier"] as? [[String: Any]])?.contains {
                    $0["system"] as? String == "urn:csmil:specimen" && $0["value"] as? String == "A"
                } == true)
        let results = (resource["result"] as? [[String: Any]] ?? []).compactMap { $0["reference"] as? String }
        #expect(results.count == 3 && results.allSatisfy(urls.contains))
        // Built twice, the same bytes (the same UUIDs).
        #expect(
            try WebhookPayload.fhir(report: report, timestamp: Self.timestamp, options: FHIROptions(bundle: true)).body
                == body)
    }
}
