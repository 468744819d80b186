import Foundation
import Notify
import Testing

@testable import Daemon

/// `[identity] pattern`: named groups from file names, and the configuration checks.
@Suite("Slide identity from file names")
struct IdentityPatternTests {
    static let documented = #"(?<accession>S[0-9]{2}-[0-9]+)(-(?<block>[A-Z][0-9]+))?(-(?<slide>[0-9]+))?"#

    @Test("the spec's example pattern: full, partial and no match; the groups that did not take part are left out")
    func documentedPattern() throws {
        let pattern = try IdentityPattern(Self.documented)
        #expect(pattern.groups == ["accession", "block", "slide"])
        #expect(
            pattern.identity(forSlideName: "S26-01234-A1-1.svs")
                == SlideIdentity(accession: "S26-01234", block: "A1", slide: "1"))
        #expect(pattern.identity(forSlideName: "S26-01234.svs") == SlideIdentity(accession: "S26-01234"))
        #expect(pattern.identity(forSlideName: "scan 2026-01-01.svs").isEmpty)
        // MIRAX: the index file's name.
        #expect(pattern.identity(forSlideName: "S26-777-B2-3.mrxs").block == "B2")
    }

    @Test("the other documented style, SP-26-1234-A1-1, with specimen and patient groups")
    func otherStyle() throws {
        let pattern = try IdentityPattern(
            #"^(?<patient>[0-9]{6})_(?<accession>SP-[0-9]{2}-[0-9]+)-(?<specimen>[A-Z])(?<block>[0-9]+)-(?<slide>[0-9]+)"#
        )
        #expect(
            pattern.identity(forSlideName: "123456_SP-26-1234-A1-1.ndpi")
                == SlideIdentity(accession: "SP-26-1234", specimen: "A", block: "1", slide: "1", patient: "123456"))
        #expect(pattern.identity(forSlideName: "SP-26-1234-A1-1.ndpi").isEmpty)  // anchored: no patient, no match
    }

    @Test("unicode names match whether stored composed or decomposed")
    func unicodeNames() throws {
        let pattern = try IdentityPattern(#"(?<accession>Ü[0-9]+)"#)
        #expect(pattern.identity(forSlideName: "Ü12 Müller.svs").accession == "Ü12")
        #expect(pattern.identity(forSlideName: "U\u{308}12 Mu\u{308}ller.svs").accession?.count == 3)
    }

    @Test(
        "edge cases: searched anywhere (first match wins), empty or absent groups left out, an optional accession, (?i), \\d versus [0-9]"
    )
    func edgeCases() throws {
        let documented = try IdentityPattern(Self.documented)
        // Unanchored: found inside the name; of two accessions the first one is taken.
        #expect(
            documented.identity(forSlideName: "case 7 S26-01234-A1-1 (recut of S26-09999).svs")
                == SlideIdentity(accession: "S26-01234", block: "A1", slide: "1"))
        // A group that matched the empty string is left out: no accession at all.
        #expect(try IdentityPattern("(?<accession>[0-9]*)").identity(forSlideName: "scan.svs").isEmpty)
        // An optional accession group that did not take part: the other groups stay, the accession is absent (with
        // [identity] required the slide fails as slide.no_accession).
        let optional = try IdentityPattern(#"(?<accession>S[0-9]{2}-[0-9]+)?_(?<block>[A-Z][0-9]+)"#)
        let blockOnly = optional.identity(forSlideName: "_B2.svs")
        #expect(blockOnly.accession == nil && blockOnly.block == "B2" && !blockOnly.isEmpty)
        // (?i): matched case-insensitively, the value kept as written in the name.
        #expect(
            try IdentityPattern(#"(?i)(?<accession>s[0-9]{2}-[0-9]+)"#).identity(forSlideName: "S26-01234.svs")
                .accession == "S26-01234")
        // \d is any Unicode decimal digit (fullwidth ０-９ too); [0-9] only ASCII digits.
        let fullwidth = "S26-\u{FF10}\u{FF11}\u{FF12}.svs"
        #expect(try IdentityPattern(#"(?<accession>S\d{2}-\d+)"#).identity(forSlideName: fullwidth).accession != nil)
        #expect(documented.identity(forSlideName: fullwidth).isEmpty)
    }

    @Test("a pattern that does not compile, lacks an accession group or names an unknown group is refused")
    func refused() {
        #expect(throws: IdentityPatternError.self) { try IdentityPattern("(?<accession>S[0-9") }
        #expect(throws: IdentityPatternError.self) { try IdentityPattern("(?<block>[A-Z][0-9]+)") }
        #expect(throws: IdentityPatternError.self) { try IdentityPattern("(?<acession>S[0-9]+)") }
        #expect(
            IdentityPattern.namedGroups(in: #"(?<=x)(?<accession>a)\(?<no>b)(?P<block>c)"#) == ["accession", "block"])
    }

    @Test("csmil doctor: the pattern's groups, a pattern it cannot use, [hl7] without a pattern, unreadable TLS files")
    func doctorLines() {
        let documented = Configuration.Identity(pattern: Self.documented, required: true)
        #expect(
            Doctor.identity(documented) == [
                .ok(
                    "[identity] pattern", "groups accession, block, slide (required: a name without an accession fails)"
                )
            ])
        let missingGroup = Doctor.identity(Configuration.Identity(pattern: "(?<block>[A-Z][0-9]+)"))
        #expect(missingGroup.count == 1 && missingGroup[0].severity == .problem)
        #expect(missingGroup[0].fix?.contains("(?<accession>") == true, "\(missingGroup)")
        #expect(Doctor.identity(Configuration.Identity(required: true)).map(\.severity) == [.problem])
        #expect(Doctor.identity(Configuration.Identity()).map(\.severity) == [.ok])

        #expect(Doctor.hl7(Configuration.HL7(), identity: documented).map(\.severity) == [.ok])
        var hl7 = Configuration.HL7(url: "mllps://lis.example.org:6661")
        hl7.caFile = "/nonexistent/csmil-test-ca.pem"
        let findings = Doctor.hl7(hl7, identity: Configuration.Identity())
        // (Its TLS files are checked by Doctor.deliveryFiles with the webhook's: DeliveryFilesTests.)
        #expect(findings.map(\.severity) == [.ok, .warning], "\(findings)")
        #expect(findings[0].detail.hasPrefix("mllps://lis.example.org:6661 (TLS; ORU^R01 v2.5.1, result status P)"))
        #expect(findings[1].detail.contains("OBR-3"))
        let http = Doctor.hl7(Configuration.HL7(url: "https://lis.example.org"), identity: documented)
        #expect(http.map(\.severity) == [.problem] && http[0].subject == "[hl7] url", "\(http)")
    }

    @Test("[identity] and [hl7] in the configuration: defaults, and each bad value named with its key")
    func configuration() throws {
        let base = """
            [watch]
            directory = "/srv/in"
            [model]
            directory = "/srv/model"

            """
        let plain = try Configuration.parse(base, path: "/etc/csmil/csmil.toml")
        #expect(plain.identity.pattern == nil && !plain.identity.required && plain.hl7.url == nil)
        let configured = try Configuration.parse(
            base + """
                [identity]
                pattern = '\(Self.documented)'
                required = true
                [hl7]
                url = "mllps://lis.example.org:6661"
                receiving_application = "LIS"
                result_status = "F"
                [webhook]
                fhir_bundle = true
                """, path: "/etc/csmil/csmil.toml")
        #expect(configured.identity.required && configured.hl7.resultStatus == .final)
        #expect(configured.webhook.fhirBundle && configured.hl7.settings.receivingApplication == "LIS")
        for (text, key) in [
            ("[identity]\npattern = '(?<block>x)'", "identity.pattern"),
            ("[identity]\nrequired = true", "identity.required"),
            ("[hl7]\nurl = \"mllp://lis.example.org:2575\"", "hl7.url"),
            ("[hl7]\nurl = \"https://lis.example.org\"", "hl7.url"),
            ("[hl7]\nresult_status = \"X\"", "hl7.result_status"),
            ("[hl7]\nack_timeout_seconds = 0", "hl7.ack_timeout_seconds"),
        ] {
            #expect(throws: ConfigurationError.self) { try Configuration.parse(base + text, path: "/c.toml") }
            do {
                _ = try Configuration.parse(base + text, path: "/c.toml")
            } catch {
                #expect(error.problems.contains { $0.key == key }, "\(text): \(error)")
            }
        }
        // Plain MLLP beyond loopback only when allowed.
        #expect(
            try Configuration.parse(
                base + "[hl7]\nurl = \"mllp://lis.example.org:2575\"\nallow_plain = true", path: "/c.toml"
            ).hl7.allowPlain)
    }
}
