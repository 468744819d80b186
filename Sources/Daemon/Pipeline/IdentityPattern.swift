import Errors
import Notify

/// `[identity] pattern`: a regular expression with named groups (`accession`, `specimen`, `block`, `slide`,
/// `patient`; any subset, `accession` required) searched for in a slide's file name — for MIRAX and VMS sets the
/// index file's name (`S26-01234-A1-1.mrxs`). Anchor it with `^…$` to match the whole name.
///
/// Swift's `Regex` syntax (Perl/ICU-like): `(?<name>…)` groups, `\d`, `[A-Z]`, `{2}`, `?`, `(?i)` for case
/// insensitivity. Matching is on Unicode characters, so a name stored decomposed (NFD, as macOS writes it) matches a
/// pattern written composed.
///
/// `@unchecked Sendable`: `Regex<AnyRegexOutput>` is not Sendable, but it is immutable once compiled and matching
/// does not change it.
struct IdentityPattern: @unchecked Sendable {
    /// The pattern as configured.
    let source: String
    /// The named groups the pattern has (of ``SlideIdentity/groupNames``).
    let groups: [String]
    // Regex<AnyRegexOutput> is immutable once compiled; matching does not change it.
    private let regex: Regex<AnyRegexOutput>

    /// Compiles the pattern; fails naming what is wrong: a syntax error, no `accession` group, or a group name
    /// csmil does not know (a typo such as `acession`).
    init(_ source: String) throws(IdentityPatternError) {
        self.source = source
        do {
            regex = try Regex(source)
        } catch {
            throw IdentityPatternError(
                source: source, message: "does not compile: \(error)",
                fix: "write a regular expression with named groups, e.g. "
                    + #"'(?<accession>S\d{2}-\d+)(-(?<block>[A-Z]\d+))?(-(?<slide>\d+))?'"#)
        }
        let named = Self.namedGroups(in: source)
        let unknown = named.filter { !SlideIdentity.groupNames.contains($0) }
        guard unknown.isEmpty else {
            throw IdentityPatternError(
                source: source, message: "has groups csmil does not know: \(unknown.joined(separator: ", "))",
                fix: "name groups only \(SlideIdentity.groupNames.joined(separator: ", "))")
        }
        guard regex.contains(captureNamed: "accession") else {
            throw IdentityPatternError(
                source: source, message: "has no (?<accession>…) group",
                fix: "add a named group for the accession number, e.g. (?<accession>S\\d{2}-\\d+)")
        }
        let compiled = regex
        groups = SlideIdentity.groupNames.filter { compiled.contains(captureNamed: $0) }
    }

    /// The identity in `name` (the first match; groups that did not take part, or matched nothing, are left out);
    /// an empty identity when the name does not match.
    func identity(forSlideName name: String) -> SlideIdentity {
        var identity = SlideIdentity()
        guard let match = try? regex.firstMatch(in: name) else { return identity }
        for group in groups {
            if let text = match.output[group]?.substring, !text.isEmpty { identity[group] = String(text) }
        }
        return identity
    }

    /// The names of `(?<name>…)`, `(?P<name>…)` and `(?'name'…)` groups in the pattern's text.
    static func namedGroups(in source: String) -> [String] {
        var names: [String] = []
        let characters = Array(source)
        var index = 0
        while index < characters.count {
            if characters[index] == "\\" {
                index += 2
                continue
            }
            if characters[index] == "(", index + 2 < characters.count, characters[index + 1] == "?" {
                var start = index + 2
                if characters[start] == "P" { start += 1 }
                if start < characters.count, characters[start] == "<" || characters[start] == "'" {
                    let close: Character = characters[start] == "<" ? ">" : "'"
                    let nameStart = start + 1
                    // (?<= and (?<! are lookbehinds, not names.
                    if nameStart < characters.count, characters[nameStart] != "=", characters[nameStart] != "!",
                        let end = characters[nameStart...].firstIndex(of: close)
                    {
                        names.append(String(characters[nameStart..<end]))
                    }
                }
            }
            index += 1
        }
        return names
    }
}

/// `[identity] pattern` cannot be used.
struct IdentityPatternError: CSMILError, Sendable, Equatable {
    enum Code: String, ErrorCode {
        /// The pattern does not compile, has no accession group or names an unknown group.
        case pattern = "identity.pattern"
    }

    var code = Code.pattern
    /// The pattern.
    var source: String
    var message: String
    var fix: String

    var subject: String { "[identity] pattern '\(source)'" }
}
