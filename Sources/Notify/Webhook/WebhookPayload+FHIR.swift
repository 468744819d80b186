import Crypto
import Foundation

/// How the FHIR body is built (`[webhook] format = "fhir"`, `fhir_bundle`, `[identity] accession_system`).
public struct FHIROptions: Sendable, Equatable {
    /// `Identifier.system` of the accession number (the LIS's namespace for it).
    public var accessionSystem: String
    /// A `transaction` Bundle (POSTed to a FHIR server's base URL) instead of one DiagnosticReport.
    public var bundle: Bool

    /// Options with the documented defaults.
    public init(accessionSystem: String = FHIROptions.defaultAccessionSystem, bundle: Bool = false) {
        self.accessionSystem = accessionSystem
        self.bundle = bundle
    }

    /// The accession's identifier system when none is configured.
    public static let defaultAccessionSystem = "urn:csmil:accession"
}

extension WebhookPayload {
    /// The identifier system of the event id in FHIR resources (docs/fhir.md).
    public static let fhirEventIDSystem = "urn:csmil:event-id"
    /// The code system of csmil's own codes.
    public static let fhirCodeSystem = "urn:csmil:code"
    /// The identifier system of a model (a digest of its files' digests).
    public static let fhirModelSystem = "urn:csmil:model"
    /// The identifier system of a Specimen's conditional-create key: accession, specimen, block and slide joined by
    /// `-` (`S26-01234-A-A1-1`).
    public static let fhirSpecimenKeySystem = "urn:csmil:specimen-key"

    /// The FHIR R4 body for the report; the mapping is documented in docs/fhir.md.
    ///
    /// A `DiagnosticReport` (status `preliminary`, category pathology, `identifier` = the event id and the
    /// accession) whose `result` references Observations — the slide probability (`valueQuantity`), the label
    /// (`valueCodeableConcept`) and the per-scale attention summary (one component per scale) — each naming the
    /// algorithm, a `Device` with the model's name, architecture and file hashes, in `device`; with an accession,
    /// a `Specimen` carrying it. As one resource the others are `contained` (`#id` references); as a `transaction`
    /// Bundle (`options.bundle`) they are entries with `urn:uuid:` full URLs and conditional creates on their
    /// identifiers, so a resend or a second slide scored by the same model creates nothing twice.
    public static func fhir(
        report: SlideReport, timestamp: Date, options: FHIROptions = FHIROptions()
    ) throws -> WebhookPayload {
        let instant = iso8601(timestamp)
        let object =
            options.bundle
            ? fhirBundle(report: report, instant: instant, options: options)
            : fhirContainedReport(report: report, instant: instant, options: options)
        let body = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        return WebhookPayload(
            eventID: report.eventID, type: eventType(of: report), contentType: "application/fhir+json",
            body: [UInt8](body))
    }

    /// The resources of one report, their references made by `reference(localID)`.
    struct FHIRResources {
        var diagnosticReport: [String: Any]
        /// (local id, resource, identifier for a conditional create)
        var others: [(id: String, resource: [String: Any], identifier: (system: String, value: String)?)]
    }

    static func fhirResources(
        report: SlideReport, instant: String, options: FHIROptions, reference: (String) -> String
    ) -> FHIRResources {
        let identity = report.identity ?? SlideIdentity()
        var others: [(id: String, resource: [String: Any], identifier: (system: String, value: String)?)] = []
        let device = fhirDevice(report: report)
        let deviceIdentifier = (fhirModelSystem, modelDigest(report.model))
        let specimen = fhirSpecimen(identity: identity, options: options)
        let observations = fhirObservations(
            report: report, instant: instant, deviceReference: reference("algorithm"),
            specimenReference: specimen == nil ? nil : reference("specimen"))
        for (id, observation) in observations {
            others.append((id, observation, (fhirEventIDSystem, "\(report.eventID)/\(id)")))
        }
        others.append(("algorithm", device, deviceIdentifier))
        if let specimen {
            let value = identity.values.filter { $0.group != "patient" }.map(\.value).joined(separator: "-")
            // Its own system: `urn:csmil:specimen` is the specimen id alone (`A`), which recurs across accessions.
            others.append(("specimen", specimen, (fhirSpecimenKeySystem, value)))
        }
        var diagnosticReport = fhirDiagnosticReport(report: report, instant: instant, options: options)
        diagnosticReport["result"] = observations.map { id, observation in
            ["reference": reference(id), "display": (observation["code"] as? [String: Any])?["text"] ?? id]
        }
        if specimen != nil { diagnosticReport["specimen"] = [["reference": reference("specimen")]] }
        if let subject = fhirSubject(identity: identity) { diagnosticReport["subject"] = subject }
        return FHIRResources(diagnosticReport: diagnosticReport, others: others)
    }

    /// One DiagnosticReport holding the other resources as `contained` (dom-3: each is referenced).
    static func fhirContainedReport(report: SlideReport, instant: String, options: FHIROptions) -> [String: Any] {
        let resources = fhirResources(report: report, instant: instant, options: options) { "#" + $0 }
        var resource = resources.diagnosticReport
        resource["contained"] = resources.others.map { id, inner, _ in
            var inner = inner
            inner["id"] = id
            return inner
        }
        return resource
    }

    /// A `transaction` Bundle: the DiagnosticReport and each other resource as a POST entry with a `urn:uuid:`
    /// full URL derived from the event id (the same bytes on every build), and `ifNoneExist` on its identifier.
    static func fhirBundle(report: SlideReport, instant: String, options: FHIROptions) -> [String: Any] {
        let uuid = { (id: String) in "urn:uuid:" + deterministicUUID("\(report.eventID)/\(id)") }
        let resources = fhirResources(report: report, instant: instant, options: options, reference: uuid)
        func entry(
            _ id: String, _ resource: [String: Any], _ identifier: (system: String, value: String)?
        )
            -> [String: Any]
        {
            var request: [String: Any] = ["method": "POST", "url": resource["resourceType"] ?? ""]
            if let identifier { request["ifNoneExist"] = "identifier=\(identifier.system)|\(identifier.value)" }
            return ["fullUrl": uuid(id), "resource": resource, "request": request]
        }
        var entries = [entry("report", resources.diagnosticReport, (fhirEventIDSystem, report.eventID))]
        for (id, resource, identifier) in resources.others {
            var resource = resource
            if let identifier {
                var identifiers = resource["identifier"] as? [[String: Any]] ?? []
                if !identifiers.contains(where: { ($0["system"] as? String) == identifier.system }) {
                    identifiers.insert(["system": identifier.system, "value": identifier.value], at: 0)
                }
                resource["identifier"] = identifiers
            }
            entries.append(entry(id, resource, identifier))
        }
        return [
            "resourceType": "Bundle", "type": "transaction", "timestamp": instant,
            "identifier": ["system": fhirEventIDSystem, "value": report.eventID], "entry": entries,
        ]
    }

    static func fhirDiagnosticReport(report: SlideReport, instant: String, options: FHIROptions) -> [String: Any] {
        let slide = report.slide
        var identifiers: [[String: Any]] = [["system": fhirEventIDSystem, "value": report.eventID]]
        if let accession = report.identity?.accession {
            identifiers.append([
                "type": [
                    "coding": [
                        [
                            "system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN",
                            "display": "Accession ID",
                        ]
                    ]
                ],
                "system": options.accessionSystem, "value": accession,
            ])
        }
        var resource: [String: Any] = [
            "resourceType": "DiagnosticReport",
            "identifier": identifiers,
            "status": "preliminary",
            "category": [
                [
                    "coding": [
                        [
                            "system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "PAT",
                            "display": "Pathology (gross & histopath, not surgical)",
                        ]
                    ]
                ]
            ],
            "code": [
                "coding": [
                    [
                        "system": fhirCodeSystem, "code": "cs-mil-wsi",
                        "display": "CS-MIL whole-slide image classification",
                    ]
                ],
                "text": "AI whole-slide image classification (\(report.model.name))",
            ],
            "effectiveDateTime": instant,
            "issued": instant,
            "conclusion": fhirConclusion(report: report),
            "extension": [
                ["url": "urn:csmil:slide-name", "valueString": slide.name],
                ["url": "urn:csmil:slide-fingerprint", "valueString": slide.fingerprint],
            ],
        ]
        if let label = report.result?.label {
            resource["conclusionCode"] = [["text": label]]
        }
        if let qc = report.qc, var extensions = resource["extension"] as? [[String: Any]] {
            // Quality control (issue 16): the status, and each reason, as csmil extensions; docs/fhir.md.
            extensions.append(["url": "urn:csmil:qc-status", "valueString": qc.status])
            for reason in qc.reasons { extensions.append(["url": "urn:csmil:qc-reason", "valueString": reason]) }
            resource["extension"] = extensions
        }
        return resource
    }

    /// The Observations, by local id: `probability` always (a value, or `dataAbsentReason` saying why there is
    /// none), `label` and `scale-attention` for a scored slide.
    static func fhirObservations(
        report: SlideReport, instant: String, deviceReference: String, specimenReference: String?
    ) -> [(String, [String: Any])] {
        func observation(code: String, text: String) -> [String: Any] {
            var observation: [String: Any] = [
                "resourceType": "Observation",
                "status": "preliminary",
                "category": [
                    [
                        "coding": [
                            [
                                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                "code": "laboratory", "display": "Laboratory",
                            ]
                        ]
                    ]
                ],
                "code": ["coding": [["system": fhirCodeSystem, "code": code, "display": text]], "text": text],
                "effectiveDateTime": instant,
                "device": ["reference": deviceReference],
                "note": [["text": "slide \(report.slide.name) (\(report.slide.fingerprint))"]],
            ]
            if let specimenReference { observation["specimen"] = ["reference": specimenReference] }
            return observation
        }
        let unity: [String: Any] = ["unit": "probability", "system": "http://unitsofmeasure.org", "code": "1"]
        var probability = observation(code: "probability", text: "CS-MIL slide probability")
        guard let result = report.result else {
            // No value: say why (FHIR obs-6: dataAbsentReason only when there is no value).
            let failed = report.status == .failed
            probability["dataAbsentReason"] = [
                "coding": [
                    [
                        "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                        "code": failed ? "error" : "not-applicable", "display": failed ? "Error" : "Not Applicable",
                    ]
                ],
                "text": failed
                    ? "\(report.error?.code ?? "failed"): \(report.error?.message ?? "scoring failed")"
                    : "no tissue on the slide",
            ]
            return [("probability", probability)]
        }
        probability["valueQuantity"] = unity.merging(["value": result.probability]) { $1 }
        let positive = result.positive ?? (result.probability >= result.threshold)
        let interpretation: [String: Any] = [
            "coding": [
                [
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                    "code": positive ? "POS" : "NEG", "display": positive ? "Positive" : "Negative",
                ]
            ],
            "text": result.label,
        ]
        probability["interpretation"] = [interpretation]
        probability["referenceRange"] = [
            [
                "high": unity.merging(["value": result.threshold]) { $1 },
                "text": "positive at or above the threshold \(result.threshold)",
            ]
        ]
        var label = observation(code: "label", text: "CS-MIL slide label")
        label["valueCodeableConcept"] = [
            "coding": [
                ["system": fhirCodeSystem, "code": positive ? "positive" : "negative", "display": result.label]
            ],
            "text": result.label,
        ]
        label["interpretation"] = [interpretation]
        var observations = [("probability", probability), ("label", label)]
        if let scales = result.scaleAttention, scales.count == 3 {
            var attention = observation(code: "scale-attention", text: "CS-MIL per-scale attention")
            attention["component"] = zip(["20x", "10x", "5x"], scales).map { scale, value -> [String: Any] in
                [
                    "code": [
                        "coding": [
                            [
                                "system": fhirCodeSystem, "code": "scale-attention-\(scale)",
                                "display": "attention at \(scale)",
                            ]
                        ],
                        "text": "attention at \(scale)",
                    ],
                    "valueQuantity": unity.merging(["value": value, "unit": "fraction"]) { $1 },
                ]
            }
            observations.append(("scale-attention", attention))
        }
        return observations
    }

    static func fhirDevice(report: SlideReport) -> [String: Any] {
        let model = report.model
        var device: [String: Any] = [
            "resourceType": "Device",
            "identifier": [["system": fhirModelSystem, "value": modelDigest(model)]],
            "deviceName": [["name": model.name, "type": "model-name"]],
            "type": ["text": "AI algorithm (cross-scale multi-instance learning, \(model.architecture))"],
            "property": model.files.keys.sorted().map { name -> [String: Any] in
                ["type": ["text": "file \(name)"], "valueCode": [["text": model.files[name] ?? ""]]]
            },
        ]
        var versions: [[String: Any]] = [["type": ["text": "architecture"], "value": model.architecture]]
        if let csmil = report.versions?.csmil {
            versions.append(["type": ["text": "csmil"], "value": csmil])
        }
        device["version"] = versions
        return device
    }

    /// A Specimen carrying the accession (and the specimen, block and slide ids) when the identity has one.
    static func fhirSpecimen(identity: SlideIdentity, options: FHIROptions) -> [String: Any]? {
        guard let accession = identity.accession else { return nil }
        var specimen: [String: Any] = [
            "resourceType": "Specimen",
            "accessionIdentifier": ["system": options.accessionSystem, "value": accession],
        ]
        let parts = identity.values.filter { ["specimen", "block", "slide"].contains($0.group) }
        if !parts.isEmpty {
            specimen["identifier"] = parts.map { group, value -> [String: Any] in
                ["type": ["text": group], "system": "urn:csmil:\(group)", "value": value]
            }
        }
        return specimen
    }

    /// A logical reference to the patient by identifier, when the identity has one (nothing to resolve).
    static func fhirSubject(identity: SlideIdentity) -> [String: Any]? {
        guard let patient = identity.patient else { return nil }
        return [
            "identifier": [
                "type": [
                    "coding": [
                        [
                            "system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR",
                            "display": "Medical record number",
                        ]
                    ]
                ],
                "value": patient,
            ]
        ]
    }

    static func fhirConclusion(report: SlideReport) -> String {
        // A slide QC sent to review says so before anything else.
        guard let qc = report.qc, qc.needsReview else { return fhirResultConclusion(report: report) }
        return "QC REVIEW (\(qc.reasons.joined(separator: ", "))): " + fhirResultConclusion(report: report)
    }

    static func fhirResultConclusion(report: SlideReport) -> String {
        let accession = report.identity?.accession.map { " (accession \($0))" } ?? ""
        switch report.status {
        case .scored:
            guard let result = report.result else { return "Scored, but no result was recorded." }
            return "\(result.label) (probability \(result.probability), threshold \(result.threshold)) "
                + "for slide \(report.slide.name)\(accession); algorithmic result awaiting review by a pathologist."
        case .noTissue:
            return "No tissue found on slide \(report.slide.name)\(accession); no score."
        case .failed:
            return "Slide \(report.slide.name)\(accession) could not be scored: "
                + (report.error.map { "\($0.message) (\($0.code))" } ?? "unknown error")
        }
    }

    /// The model's identity: SHA-256 over its files' names and digests (sorted), 32 hex digits.
    static func modelDigest(_ model: SlideReport.Model) -> String {
        let text = model.files.keys.sorted().map { "\($0)=\(model.files[$0] ?? "")\n" }.joined()
        return SHA256.hash(data: Data(text.utf8)).prefix(16).map { String(format: "%02x", $0) }.joined()
    }

    /// A UUID (version 8 layout, RFC 9562) from the SHA-256 of `name`: the same name always gives the same UUID.
    static func deterministicUUID(_ name: String) -> String {
        var bytes = Array(SHA256.hash(data: Data(name.utf8)).prefix(16))
        bytes[6] = (bytes[6] & 0x0F) | 0x80
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        let hex = bytes.map { String(format: "%02x", $0) }.joined()
        let characters = Array(hex)
        return [0..<8, 8..<12, 12..<16, 16..<20, 20..<32].map { String(characters[$0]) }.joined(separator: "-")
    }
}
