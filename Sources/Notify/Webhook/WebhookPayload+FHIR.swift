import Foundation

extension WebhookPayload {
    /// The identifier system of the event id in FHIR resources (docs/fhir.md).
    public static let fhirEventIDSystem = "urn:csmil:event-id"
    /// The code system of csmil's own codes.
    public static let fhirCodeSystem = "urn:csmil:code"

    /// A FHIR R4 DiagnosticReport for the report (`format = "fhir"`); the mapping is documented in docs/fhir.md.
    ///
    /// Status `preliminary` (an algorithm's result awaiting a pathologist), category pathology (v2-0074 `PAT`),
    /// `identifier` = the event id (a resend can be deduplicated), `conclusion` in words, and two contained
    /// resources: an `Observation` with the probability (`valueQuantity`), the label (`interpretation`) and the
    /// threshold, and the algorithm as a `Device` with the model name, architecture and file hashes.
    public static func fhir(report: SlideReport, timestamp: Date) throws -> WebhookPayload {
        let instant = iso8601(timestamp)
        let resource = fhirDiagnosticReport(report: report, instant: instant)
        let body = try JSONSerialization.data(
            withJSONObject: resource, options: [.sortedKeys, .withoutEscapingSlashes])
        return WebhookPayload(
            eventID: report.eventID, type: eventType(of: report), contentType: "application/fhir+json",
            body: [UInt8](body))
    }

    static func fhirDiagnosticReport(report: SlideReport, instant: String) -> [String: Any] {
        let slide = report.slide
        let observation = fhirObservation(report: report, instant: instant)
        var resource: [String: Any] = [
            "resourceType": "DiagnosticReport",
            "identifier": [["system": fhirEventIDSystem, "value": report.eventID]],
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
            "contained": [observation, fhirDevice(report: report)],
            "result": [["reference": "#result", "display": "CS-MIL slide result"]],
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

    static func fhirObservation(report: SlideReport, instant: String) -> [String: Any] {
        var observation: [String: Any] = [
            "resourceType": "Observation",
            "id": "result",
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
            "code": [
                "coding": [["system": fhirCodeSystem, "code": "probability", "display": "CS-MIL slide probability"]],
                "text": "CS-MIL slide probability",
            ],
            "effectiveDateTime": instant,
            "device": ["reference": "#algorithm"],
            "note": [["text": "slide \(report.slide.name) (\(report.slide.fingerprint))"]],
        ]
        if let result = report.result {
            observation["valueQuantity"] = [
                "value": result.probability, "unit": "probability", "system": "http://unitsofmeasure.org",
                "code": "1",
            ]
            let positive = result.positive ?? (result.probability >= result.threshold)
            observation["interpretation"] = [
                [
                    "coding": [
                        [
                            "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                            "code": positive ? "POS" : "NEG", "display": positive ? "Positive" : "Negative",
                        ]
                    ],
                    "text": result.label,
                ]
            ]
            observation["referenceRange"] = [
                [
                    "high": [
                        "value": result.threshold, "unit": "probability", "system": "http://unitsofmeasure.org",
                        "code": "1",
                    ],
                    "text": "positive at or above the threshold \(result.threshold)",
                ]
            ]
        } else {
            // No value: say why (FHIR obs-6: dataAbsentReason only when there is no value).
            let failed = report.status == .failed
            observation["dataAbsentReason"] = [
                "coding": [
                    [
                        "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                        "code": failed ? "error" : "not-applicable", "display": failed ? "Error" : "Not Applicable",
                    ]
                ],
                "text": failed ? (report.error?.message ?? "scoring failed") : "no tissue on the slide",
            ]
        }
        return observation
    }

    static func fhirDevice(report: SlideReport) -> [String: Any] {
        let model = report.model
        var device: [String: Any] = [
            "resourceType": "Device",
            "id": "algorithm",
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

    static func fhirConclusion(report: SlideReport) -> String {
        // A slide QC sent to review says so before anything else.
        guard let qc = report.qc, qc.needsReview else { return fhirResultConclusion(report: report) }
        return "QC REVIEW (\(qc.reasons.joined(separator: ", "))): " + fhirResultConclusion(report: report)
    }

    static func fhirResultConclusion(report: SlideReport) -> String {
        switch report.status {
        case .scored:
            guard let result = report.result else { return "Scored, but no result was recorded." }
            return "\(result.label) (probability \(result.probability), threshold \(result.threshold)) "
                + "for slide \(report.slide.name); algorithmic result awaiting review by a pathologist."
        case .noTissue:
            return "No tissue found on slide \(report.slide.name); no score."
        case .failed:
            return "Slide \(report.slide.name) could not be scored: "
                + (report.error.map { "\($0.message) (\($0.code))" } ?? "unknown error")
        }
    }
}
