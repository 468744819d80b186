import Foundation

/// Who sends and receives the HL7 messages, and the result status they carry (`[hl7]`).
public struct HL7Settings: Sendable, Equatable {
    /// MSH-3.
    public var sendingApplication: String
    /// MSH-4.
    public var sendingFacility: String
    /// MSH-5.
    public var receivingApplication: String
    /// MSH-6.
    public var receivingFacility: String
    /// OBR-25 and OBX-11: "P" (preliminary, an algorithm's result before sign-out; the default) or "F" (final).
    public var resultStatus: String

    /// Settings with the documented defaults.
    public init(
        sendingApplication: String = "CSMIL", sendingFacility: String = "", receivingApplication: String = "",
        receivingFacility: String = "", resultStatus: String = "P"
    ) {
        self.sendingApplication = sendingApplication
        self.sendingFacility = sendingFacility
        self.receivingApplication = receivingApplication
        self.receivingFacility = receivingFacility
        self.resultStatus = resultStatus
    }
}

/// One slide's result as an HL7 v2.5.1 ORU^R01 message (docs/hl7.md has the segment-by-segment mapping):
///
/// - `MSH`: MSH-7 the report's time, MSH-9 `ORU^R01^ORU_R01`, MSH-10 the event id (the same on every retry, so the
///   LIS can drop duplicates), MSH-11 `P`, MSH-12 `2.5.1`, MSH-18 `UNICODE UTF-8`; original-mode acknowledgement.
/// - `PID` only when `[identity] pattern` gave a `patient` group (PID-3; PID-5 `^^^^^^U`, a name of unspecified
///   type, as the base standard requires a name); the PATIENT group is optional in ORU_R01.
/// - `ORC` (`RE`) and `OBR` with the accession as filler order number (ORC-3, OBR-3), OBR-4 the model as universal
///   service id, OBR-7/OBR-22 the report's time, OBR-24 `PAT`, OBR-25 the result status.
/// - `OBX` rows (local codes, coding system `L`): the report's status; the probability (NM; with OBX-11 `X` and no
///   value when there is none); label (CWE); threshold; per-scale attention (NM, sub-ids 20x/10x/5x); tile count;
///   the model's name, architecture and each file's SHA-256; csmil's version; the slide file and the identity's
///   specimen/block/slide; for a failed slide its error code and message; the report's path.
/// - With QC on (issue 16), right after the status row: the QC status, its reasons, the share flagged per check
///   and the tiles excluded; a slide QC sent to review also gets an `NTE` after the `OBR` saying so first.
///
/// A failed slide is a result too. Its OBR-25 is `I` ("no results available; specimen received, procedure
/// incomplete") rather than `X` ("order canceled"): the slide reached csmil but could not be scored, and a rescan
/// (a new slide version) sends a normal result for the same accession later, which an LIS refuses on a cancelled
/// order. Its probability row carries OBX-11 `X` ("results cannot be obtained for this observation").
public enum HL7ResultMessage {
    /// The local coding system of csmil's codes (HL7 table 0396 "L": local general code).
    public static let codingSystem = "L"
    /// How the outbox labels the bytes.
    public static let contentType = "application/hl7-v2"

    /// Builds the message for `report` (written to `reportPath`), time-stamped `timestamp`.
    public static func make(
        report: SlideReport, settings: HL7Settings, reportPath: String?, timestamp: Date
    ) -> HL7Message {
        let time = dateTime(timestamp)
        let status = settings.resultStatus
        let identity = report.identity ?? SlideIdentity()
        let accession = identity.accession ?? ""
        var segments: [HL7Message.Segment] = [
            HL7Message.Segment(
                "MSH",
                [
                    "|", "^~\\&", HL7Message.field(settings.sendingApplication),
                    HL7Message.field(settings.sendingFacility), HL7Message.field(settings.receivingApplication),
                    HL7Message.field(settings.receivingFacility), time, "", "ORU^R01^ORU_R01",
                    HL7Message.field(report.eventID), "P", "2.5.1", "", "", "", "", "", "UNICODE UTF-8",
                ])
        ]
        if let patient = identity.patient {
            // PID-5 is required (R) in the base standard, and csmil knows no names: an XPN valued only with the
            // name type U ("unspecified", HL7 table 0200). docs/hl7.md says what to do when a profile needs more.
            segments.append(
                HL7Message.Segment(
                    "PID",
                    [
                        "1", "", HL7Message.field(patient, nil, nil, nil, "MR"), "",
                        HL7Message.field(nil, nil, nil, nil, nil, nil, "U"),
                    ]))
        }
        let service = HL7Message.field(report.model.name, "CS-MIL \(report.model.name)", codingSystem)
        segments.append(HL7Message.Segment("ORC", ["RE", "", HL7Message.field(accession), "", "", "", "", "", time]))
        var obr = [String](repeating: "", count: 25)
        obr[0] = "1"
        obr[2] = HL7Message.field(accession)
        obr[3] = service
        obr[6] = time
        obr[21] = time
        obr[23] = "PAT"
        obr[24] = report.status == .failed ? "I" : HL7Message.field(status)
        segments.append(HL7Message.Segment("OBR", obr))
        if let qc = report.qc, qc.needsReview {
            // A slide QC sent to review says so before the result: a note on the order (NTE-2 `L`, from the filler).
            let note =
                "QC REVIEW (\(qc.reasons.joined(separator: ", "))): \(ReportPage.reasonsText(qc)); "
                + "the score rests on the \(qc.usable) usable tiles."
            segments.append(HL7Message.Segment("NTE", ["1", "L", HL7Message.field(note)]))
        }

        var rows = Observations(time: time, status: status)
        let statusText = ["scored": "Scored", "no_tissue": "No tissue", "failed": "Failed"][report.status.rawValue]
        rows.add(
            "CWE", "CSMIL-STATUS", "Result status",
            HL7Message.field(report.status.rawValue, statusText, codingSystem))
        if let qc = report.qc { addQualityControl(qc, to: &rows) }
        if let result = report.result {
            rows.add("NM", "CSMIL-PROB", "Slide probability", number(result.probability), units: "1^^UCUM")
            let positive = result.positive ?? (result.probability >= result.threshold)
            rows.add(
                "CWE", "CSMIL-LABEL", "Slide label",
                HL7Message.field(positive ? "POS" : "NEG", result.label, codingSystem))
            rows.add("NM", "CSMIL-THRESHOLD", "Decision threshold", number(result.threshold), units: "1^^UCUM")
            if let scales = result.scaleAttention {
                for (scale, value) in zip(["20x", "10x", "5x"], scales) {
                    rows.add(
                        "NM", "CSMIL-SCALE", "Scale attention", number(value), units: "1^^UCUM", subID: scale)
                }
            }
        } else {
            rows.add("NM", "CSMIL-PROB", "Slide probability", "", units: "1^^UCUM", resultStatus: "X")
        }
        rows.add("NM", "CSMIL-TILES", "Tissue tiles", String(report.tiles.count))
        rows.add("ST", "CSMIL-MODEL", "Model name", HL7Message.field(report.model.name))
        rows.add("ST", "CSMIL-ARCH", "Model architecture", HL7Message.field(report.model.architecture))
        for (index, name) in report.model.files.keys.sorted().enumerated() {
            rows.add(
                "ST", "CSMIL-MODEL-FILE", "Model file SHA-256",
                HL7Message.field("\(name) \(report.model.files[name] ?? "")"), subID: String(index + 1))
        }
        if let version = report.versions?.csmil {
            rows.add("ST", "CSMIL-VERSION", "Software version", HL7Message.field("csmil \(version)"))
        }
        rows.add("ST", "CSMIL-SLIDE-FILE", "Slide file", HL7Message.field(report.slide.name))
        for (group, label) in [("specimen", "Specimen"), ("block", "Block"), ("slide", "Slide")] {
            if let value = identity[group] {
                rows.add("ST", "CSMIL-\(group.uppercased())", label, HL7Message.field(value))
            }
        }
        if let error = report.error {
            rows.add("CWE", "CSMIL-ERROR", "Error", HL7Message.field(error.code, error.code, codingSystem))
            rows.add("TX", "CSMIL-ERROR-TEXT", "Error message", HL7Message.field(error.message))
        }
        if let reportPath {
            rows.add("ST", "CSMIL-REPORT", "Report", HL7Message.field(reportPath))
        }
        segments += rows.segments
        return HL7Message(segments: segments)
    }

    /// Quality control (issue 16), after the result status and before the probability: `CWE CSMIL-QC`
    /// (`pass`/`review`, with the reasons in words), one `CWE CSMIL-QC-REASON` per reason (OBX-4 numbering them),
    /// `NM CSMIL-QC-FRACTION` per check (OBX-4 `pen`/`blur`/`fold`: the share of tissue tiles it flagged) and
    /// `NM CSMIL-QC-EXCLUDED` (tiles left out of the score).
    private static func addQualityControl(_ qc: SlideReport.QualityControl, to rows: inout Observations) {
        let text = qc.needsReview ? "QC review: " + ReportPage.reasonsText(qc) : "QC pass"
        rows.add("CWE", "CSMIL-QC", "Quality control", HL7Message.field(qc.status, text, codingSystem))
        let reasonNames = [
            "pen": "Pen ink", "blur": "Out of focus", "fold": "Tissue folds", "too_few_tiles": "Too few usable tiles",
            "resolution": "Scan resolution coarser than the model's",
        ]
        for (index, reason) in qc.reasons.enumerated() {
            rows.add(
                "CWE", "CSMIL-QC-REASON", "Quality control reason",
                HL7Message.field(reason, reasonNames[reason] ?? reason, codingSystem), subID: String(index + 1))
        }
        for check in ["pen", "blur", "fold"] {
            guard let fraction = qc.fractions[check] else { continue }
            rows.add(
                "NM", "CSMIL-QC-FRACTION", "Share of tissue tiles flagged by QC", number(fraction), units: "1^^UCUM",
                subID: check)
        }
        rows.add("NM", "CSMIL-QC-EXCLUDED", "Tiles excluded by QC", String(qc.excluded))
    }

    /// The OBX rows, numbered as they are added.
    private struct Observations {
        let time: String
        let status: String
        var segments: [HL7Message.Segment] = []

        mutating func add(
            _ type: String, _ code: String, _ text: String, _ value: String, units: String = "",
            subID: String = "", resultStatus: String? = nil
        ) {
            var fields = [String](repeating: "", count: 14)
            fields[0] = String(segments.count + 1)
            fields[1] = type
            fields[2] = HL7Message.field(code, text, HL7ResultMessage.codingSystem)
            fields[3] = HL7Message.field(subID)
            fields[4] = value
            fields[5] = units
            fields[10] = HL7Message.field(resultStatus ?? status)
            fields[13] = time
            segments.append(HL7Message.Segment("OBX", fields))
        }
    }

    /// An HL7 DTM in UTC with seconds: `YYYYMMDDHHMMSS+0000`.
    public static func dateTime(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMddHHmmss"
        return formatter.string(from: date) + "+0000"
    }

    /// An NM value: Swift's shortest round-trip decimal, never exponent notation (NM allows none).
    static func number(_ value: Double) -> String {
        guard value.isFinite else { return "" }
        let text = value.description
        guard text.contains("e") || text.contains("E") else { return text }
        var fixed = String(format: "%.17f", value)
        while fixed.hasSuffix("0") { fixed.removeLast() }
        if fixed.hasSuffix(".") { fixed.removeLast() }
        return fixed
    }
}
