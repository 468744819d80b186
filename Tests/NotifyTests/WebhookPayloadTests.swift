import Foundation
import Testing

@testable import Notify

@Suite("Webhook payloads")
struct WebhookPayloadTests {
    let timestamp = Date(timeIntervalSince1970: 1_740_821_400)  // 2025-03-01T09:30:00Z

    @Test("the event body is {type, timestamp, data} with data equal to report.json")
    func eventBody() throws {
        let report = Fixtures.scored()
        let payload = try WebhookPayload.event(report: report, timestamp: timestamp)
        #expect(payload.eventID == "evt_0123")
        #expect(payload.type == "slide.scored")
        #expect(payload.contentType == "application/json")
        let object = try Fixtures.jsonObject(Data(payload.body))
        #expect(Set(object.keys) == ["type", "timestamp", "data"])
        #expect(object["type"] as? String == "slide.scored")
        #expect(object["timestamp"] as? String == "2025-03-01T09:30:00Z")
        let data = try JSONSerialization.data(withJSONObject: try #require(object["data"]), options: [.sortedKeys])
        let report2 = try JSONSerialization.data(
            withJSONObject: try JSONSerialization.jsonObject(with: report.jsonData()), options: [.sortedKeys])
        #expect(data == report2)
        // Built once: the same report gives the same bytes.
        #expect(try WebhookPayload.event(report: report, timestamp: timestamp).body == payload.body)
        #expect(try WebhookPayload.event(report: Fixtures.failed(), timestamp: timestamp).type == "slide.failed")
        #expect(try WebhookPayload.event(report: Fixtures.noTissue(), timestamp: timestamp).type == "slide.scored")
    }

    @Test("the FHIR body is a structurally valid R4 DiagnosticReport for scored, no-tissue and failed slides")
    func fhirStructure() throws {
        for report in [Fixtures.scored(), Fixtures.noTissue(), Fixtures.failed()] {
            let payload = try WebhookPayload.fhir(report: report, timestamp: timestamp)
            #expect(payload.contentType == "application/fhir+json")
            let resource = try Fixtures.jsonObject(Data(payload.body))
            try FHIRCheck.diagnosticReport(resource, eventID: report.eventID)
        }
    }

    @Test("the FHIR Observation carries the probability, the label and the threshold; the Device the model files")
    func fhirContent() throws {
        let payload = try WebhookPayload.fhir(report: Fixtures.scored(), timestamp: timestamp)
        let resource = try Fixtures.jsonObject(Data(payload.body))
        let contained = try #require(resource["contained"] as? [[String: Any]])
        let observation = try #require(contained.first { $0["resourceType"] as? String == "Observation" })
        let quantity = try #require(observation["valueQuantity"] as? [String: Any])
        #expect(quantity["value"] as? Double == 0.625)
        let interpretation = try #require((observation["interpretation"] as? [[String: Any]])?.first)
        #expect(interpretation["text"] as? String == "positive")
        let coding = try #require((interpretation["coding"] as? [[String: Any]])?.first)
        #expect(coding["code"] as? String == "POS")
        let device = try #require(contained.first { $0["resourceType"] as? String == "Device" })
        let names = (device["deviceName"] as? [[String: Any]])?.compactMap { $0["name"] as? String }
        #expect(names == ["cs-mil-demo"])
        let properties = try #require(device["property"] as? [[String: Any]])
        let hashes = properties.compactMap { ($0["valueCode"] as? [[String: Any]])?.first?["text"] as? String }
        #expect(hashes == ["sha256:cd", "sha256:ab"])  // backbone.pt, heads.pt (sorted by file name)
        #expect((resource["conclusion"] as? String)?.contains("positive (probability 0.625") == true)
    }
}

/// A schema-like check of the FHIR R4 rules the payload must satisfy (no validator is installed here): required
/// elements and cardinalities, value sets of `status`, the formats of `instant`, `id` and `uri`, the invariants
/// dom-3 (every contained resource is referenced) and obs-6 (dataAbsentReason only without a value).
enum FHIRCheck {
    static let idPattern = #"^[A-Za-z0-9\-\.]{1,64}$"#
    static let instantPattern = #"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"#

    static func matches(_ text: String?, _ pattern: String) -> Bool {
        guard let text else { return false }
        return text.range(of: pattern, options: .regularExpression) != nil
    }

    static func codeableConcept(_ value: Any?, _ path: String) throws {
        let concept = try #require(value as? [String: Any], "\(path) must be a CodeableConcept")
        #expect(Set(concept.keys).isSubset(of: ["coding", "text"]), "\(path) has unknown elements")
        for coding in concept["coding"] as? [[String: Any]] ?? [] {
            #expect(Set(coding.keys).isSubset(of: ["system", "code", "display", "version"]), "\(path).coding")
            #expect(matches(coding["system"] as? String, #"^[a-z]+:\S+$"#), "\(path).coding.system must be a uri")
            #expect(coding["code"] is String, "\(path).coding.code")
        }
        #expect(concept["coding"] != nil || concept["text"] != nil, "\(path) is empty")
    }

    static func diagnosticReport(_ resource: [String: Any], eventID: String) throws {
        let allowed: Set<String> = [
            "resourceType", "identifier", "status", "category", "code", "effectiveDateTime", "issued", "contained",
            "result", "conclusion", "conclusionCode", "extension", "subject", "specimen",
        ]
        #expect(
            Set(resource.keys).isSubset(of: allowed), "unexpected elements \(Set(resource.keys).subtracting(allowed))")
        #expect(resource["resourceType"] as? String == "DiagnosticReport")
        #expect(resource["status"] as? String == "preliminary")
        let identifier = try #require((resource["identifier"] as? [[String: Any]])?.first)
        #expect(identifier["value"] as? String == eventID)
        #expect(matches(identifier["system"] as? String, #"^[a-z]+:\S+$"#))
        try codeableConcept(resource["code"], "DiagnosticReport.code")
        let categories = try #require(resource["category"] as? [[String: Any]])
        try codeableConcept(categories.first, "DiagnosticReport.category")
        let category = try #require((categories.first?["coding"] as? [[String: Any]])?.first)
        #expect(category["system"] as? String == "http://terminology.hl7.org/CodeSystem/v2-0074")
        #expect(category["code"] as? String == "PAT")
        #expect(matches(resource["issued"] as? String, instantPattern))
        #expect(matches(resource["effectiveDateTime"] as? String, instantPattern))
        #expect(!((resource["conclusion"] as? String) ?? "").isEmpty)
        for item in resource["extension"] as? [[String: Any]] ?? [] {
            #expect(matches(item["url"] as? String, #"^[a-z]+:\S+$"#))
            #expect(item.keys.filter { $0.hasPrefix("value") }.count == 1)
        }

        let contained = try #require(resource["contained"] as? [[String: Any]])
        var references = Set((resource["result"] as? [[String: Any]] ?? []).compactMap { $0["reference"] as? String })
        for inner in contained {
            #expect(inner["contained"] == nil, "contained resources must not contain resources")
            let id = try #require(inner["id"] as? String)
            #expect(matches(id, idPattern))
            switch inner["resourceType"] as? String {
            case "Observation":
                #expect(["registered", "preliminary", "final", "amended"].contains(inner["status"] as? String))
                try codeableConcept(inner["code"], "Observation.code")
                let hasValue = inner.keys.contains { $0.hasPrefix("value") }
                #expect(!(hasValue && inner["dataAbsentReason"] != nil), "obs-6")
                #expect(hasValue || inner["dataAbsentReason"] != nil || inner["component"] != nil, "no value")
                if let quantity = inner["valueQuantity"] as? [String: Any] {
                    let value = try #require(quantity["value"] as? Double)
                    #expect((0...1).contains(value))
                    #expect(quantity["system"] as? String == "http://unitsofmeasure.org")
                }
                if let device = (inner["device"] as? [String: Any])?["reference"] as? String {
                    references.insert(device)
                }
                if let specimen = (inner["specimen"] as? [String: Any])?["reference"] as? String {
                    references.insert(specimen)
                }
            case "Device":
                let names = try #require(inner["deviceName"] as? [[String: Any]])
                for name in names {
                    #expect(name["name"] is String)
                    #expect(
                        [
                            "udi-label-name", "user-friendly-name", "patient-reported-name", "manufacturer-name",
                            "model-name", "other",
                        ].contains(name["type"] as? String))
                }
                for property in inner["property"] as? [[String: Any]] ?? [] {
                    try codeableConcept(property["type"], "Device.property.type")
                }
            case "Specimen":
                #expect(inner["accessionIdentifier"] != nil)
            default:
                Issue.record("unexpected contained resource \(inner["resourceType"] ?? "nil")")
            }
        }
        let containedIDs = Set(contained.compactMap { $0["id"] as? String }.map { "#" + $0 })
        #expect(containedIDs == references, "dom-3: every contained resource is referenced, every #ref resolves")
    }
}
