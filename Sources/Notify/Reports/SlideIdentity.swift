/// The laboratory's own identifiers of a slide, read from its file name by `[identity] pattern` (report.json
/// `identity`, the CSV, `tiles.geojson`, every HL7 and FHIR message). A group the pattern does not have, or that did
/// not take part in the match, is nil and left out of the JSON.
public struct SlideIdentity: Codable, Sendable, Equatable {
    /// The group names a pattern may use, in the order the CSV lists them.
    public static let groupNames = ["accession", "specimen", "block", "slide", "patient"]

    /// The accession (case) number the LIS files results under, e.g. `S26-01234`.
    public var accession: String?
    /// The specimen (part) within the case, e.g. `A`.
    public var specimen: String?
    /// The tissue block, e.g. `A1`.
    public var block: String?
    /// The slide (level) within the block, e.g. `1`.
    public var slide: String?
    /// The patient identifier, when the file name carries one (HL7 PID-3, FHIR `subject`).
    public var patient: String?

    /// Makes an identity.
    public init(
        accession: String? = nil, specimen: String? = nil, block: String? = nil, slide: String? = nil,
        patient: String? = nil
    ) {
        self.accession = accession
        self.specimen = specimen
        self.block = block
        self.slide = slide
        self.patient = patient
    }

    /// The value of a group by name (one of ``groupNames``).
    public subscript(group: String) -> String? {
        get {
            switch group {
            case "accession": accession
            case "specimen": specimen
            case "block": block
            case "slide": slide
            case "patient": patient
            default: nil
            }
        }
        set {
            switch group {
            case "accession": accession = newValue
            case "specimen": specimen = newValue
            case "block": block = newValue
            case "slide": slide = newValue
            case "patient": patient = newValue
            default: break
            }
        }
    }

    /// Whether no group has a value (the name did not match).
    public var isEmpty: Bool { Self.groupNames.allSatisfy { self[$0] == nil } }

    /// The groups that have values, in ``groupNames`` order.
    public var values: [(group: String, value: String)] {
        Self.groupNames.compactMap { name in self[name].map { (name, $0) } }
    }
}
