import Foundation
import Notify

extension Doctor {
    /// `[identity]`: the pattern compiles and has an `accession` group (the configuration check refuses it
    /// otherwise), and which groups it gives, with an example when one is configured.
    static func identity(_ identity: Configuration.Identity) -> [Finding] {
        guard let source = identity.pattern else {
            if identity.required {
                return [.problem("[identity] pattern", "required = true without a pattern", fix: "set pattern")]
            }
            return [.ok("[identity]", "no pattern: reports carry no accession (HL7 and FHIR messages neither)")]
        }
        do {
            let pattern = try IdentityPattern(source)
            let mode = identity.required ? "required: a name without an accession fails" : "optional"
            return [.ok("[identity] pattern", "groups \(pattern.groups.joined(separator: ", ")) (\(mode))")]
        } catch {
            return [.problem("[identity] pattern", error.message, fix: error.fix)]
        }
    }

    /// `[hl7]`: off, or a URL csmil may send to.
    static func hl7(_ hl7: Configuration.HL7, identity: Configuration.Identity) -> [Finding] {
        guard let url = hl7.url else {
            return [.ok("[hl7]", "url is empty: no HL7 messages are sent")]
        }
        var findings: [Finding] = []
        do {
            let endpoint = try MLLPClient.Endpoint(url: url)
            findings.append(
                .ok(
                    "[hl7] url",
                    "\(url) (\(endpoint.tls ? "TLS" : "plain MLLP"); ORU^R01 v2.5.1, result status "
                        + "\(hl7.resultStatus.rawValue))"))
        } catch {
            findings.append(.problem("[hl7] url", error.message, fix: error.fix))
        }
        // Its TLS files: `deliveryFiles(_:)`, as the webhook's.
        if identity.pattern == nil {
            findings.append(
                .warning(
                    "[hl7]", "no [identity] pattern: every ORU^R01 has an empty filler order number (OBR-3)",
                    fix: "set [identity] pattern so that each result carries its accession (and required = true)"))
        }
        return findings
    }
}
