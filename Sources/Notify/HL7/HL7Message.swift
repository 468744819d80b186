import Errors
import Foundation

/// An HL7 v2 message in the traditional "pipe and hat" encoding (ER7): segments separated by carriage returns,
/// fields by `|`, repetitions by `~`, components by `^`, subcomponents by `&`, and `\` the escape character
/// (HL7 v2.5.1 chapter 2, §2.5 and §2.7).
///
/// Built messages always use the default delimiters `|^~\&`; parsed ones use whatever their MSH-1 and MSH-2 say.
/// Hand-written rather than a library: no Swift HL7 v2 package is available here, and csmil needs only to build
/// one message type, read the few fields of an ACK and of its own messages (the sink); the PyPI `hl7` package
/// checks the result independently in the tests.
public struct HL7Message: Sendable, Equatable {
    /// One segment: its id (`MSH`, `OBX`, …) and its fields as encoded text (escaped, with their delimiters).
    public struct Segment: Sendable, Equatable {
        /// The three-letter segment id.
        public var id: String
        /// Field 1 onwards, encoded. For MSH, field 1 is the field separator itself and field 2 the encoding
        /// characters, as in the standard's numbering.
        public var fields: [String]

        /// A segment from encoded fields (see ``HL7Message/field(_:)``); trailing empty fields are dropped.
        public init(_ id: String, _ fields: [String]) {
            self.id = id
            var fields = fields
            while fields.last == "" { fields.removeLast() }
            self.fields = fields
        }

        /// Field `number` (1-based, as the standard counts), encoded; "" when absent.
        public func field(_ number: Int) -> String {
            number >= 1 && number <= fields.count ? fields[number - 1] : ""
        }
    }

    /// The segments, MSH first.
    public var segments: [Segment]
    /// The delimiters: field, component, repetition, escape, subcomponent.
    public var delimiters: Delimiters

    /// The five delimiter characters of a message.
    public struct Delimiters: Sendable, Equatable {
        public var field: Character = "|"
        public var component: Character = "^"
        public var repetition: Character = "~"
        public var escape: Character = "\\"
        public var subcomponent: Character = "&"

        /// The standard's defaults, `|^~\&`.
        public static let standard = Delimiters()

        /// MSH-2 for these delimiters.
        var encodingCharacters: String { String([component, repetition, escape, subcomponent]) }
    }

    /// A message with the standard delimiters.
    public init(segments: [Segment]) {
        self.segments = segments
        delimiters = .standard
    }

    /// The first segment with this id.
    public func segment(_ id: String) -> Segment? { segments.first { $0.id == id } }

    /// Every segment with this id, in order.
    public func segments(_ id: String) -> [Segment] { segments.filter { $0.id == id } }

    // MARK: - Encoding

    /// The message as bytes: UTF-8, each segment ended by a carriage return.
    public var bytes: [UInt8] { Array(text.utf8) }

    /// The message as text: each segment ended by a carriage return (the standard's segment terminator).
    public var text: String {
        var out = ""
        for segment in segments {
            out += segment.id
            if segment.id == "MSH" {
                // MSH-1 is the field separator itself, MSH-2 the encoding characters; fields go on from MSH-3.
                out += String(delimiters.field) + delimiters.encodingCharacters
                for field in segment.fields.dropFirst(2) { out += String(delimiters.field) + field }
            } else {
                for field in segment.fields { out += String(delimiters.field) + field }
            }
            out += "\r"
        }
        return out
    }

    /// Escapes text for a field, component or subcomponent (§2.7.4): the five delimiters become `\F\`, `\S\`,
    /// `\R\`, `\E\`, `\T\`, and control characters (a line break in an error message, …) become hex escapes
    /// `\Xhh\`. Everything else — non-ASCII letters included — is kept as is (the message declares UTF-8 in
    /// MSH-18).
    public static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "|": out += "\\F\\"
            case "^": out += "\\S\\"
            case "~": out += "\\R\\"
            case "\\": out += "\\E\\"
            case "&": out += "\\T\\"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                out += "\\X" + String(format: "%02X", scalar.value) + "\\"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// An encoded field from its components (each escaped; trailing empty components dropped). A component given as
    /// an array is made of subcomponents.
    public static func field(_ components: String?...) -> String {
        var parts = components.map { escape($0 ?? "") }
        while parts.last == "" { parts.removeLast() }
        return parts.joined(separator: "^")
    }

    // MARK: - Parsing

    /// Parses ER7 text: segments separated by CR (LF and CRLF are accepted too), the delimiters taken from the MSH
    /// segment, which must come first.
    public init(parsing text: String) throws(HL7Error) {
        let lines = text.split(omittingEmptySubsequences: true) { $0 == "\r" || $0 == "\n" || $0 == "\r\n" }
        guard let first = lines.first, first.hasPrefix("MSH"), first.count >= 8 else {
            throw HL7Error(
                code: .notAMessage, subject: String(text.prefix(40)),
                message: "does not start with an MSH segment", fix: "send an HL7 v2 message in ER7 encoding")
        }
        var delimiters = Delimiters()
        let header = Array(first)
        delimiters.field = header[3]
        delimiters.component = header[4]
        delimiters.repetition = header[5]
        delimiters.escape = header[6]
        delimiters.subcomponent = header[7]
        self.delimiters = delimiters
        segments = lines.map { line in
            let parts = line.split(separator: delimiters.field, omittingEmptySubsequences: false).map(String.init)
            let id = parts.first ?? ""
            if id == "MSH" {
                // "MSH|^~\&|A" splits into MSH, ^~\&, A: field 1 is the separator, field 2 the encoding characters.
                return Segment(id, [String(delimiters.field)] + parts.dropFirst())
            }
            return Segment(id, Array(parts.dropFirst()))
        }
    }

    /// Parses UTF-8 bytes (invalid sequences are replaced, not fatal: an ACK's text is for people).
    public init(parsing bytes: [UInt8]) throws(HL7Error) {
        try self.init(parsing: String(decoding: bytes, as: UTF8.self))
    }

    /// Component `component` (1-based) of field `field` of the first segment `id`, first repetition, unescaped;
    /// nil when the segment is missing, "" when the value is empty.
    public func value(_ id: String, _ field: Int, _ component: Int = 1) -> String? {
        guard let segment = segment(id) else { return nil }
        return value(of: segment, field, component)
    }

    /// Component `component` (1-based) of field `field` of `segment`, first repetition, unescaped.
    public func value(of segment: Segment, _ field: Int, _ component: Int = 1) -> String {
        if segment.id == "MSH" && field <= 2 { return segment.field(field) }
        let text = segment.field(field)
        let repetition = text.split(separator: delimiters.repetition, omittingEmptySubsequences: false).first ?? ""
        let components = repetition.split(separator: delimiters.component, omittingEmptySubsequences: false)
        guard component >= 1, component <= components.count else { return "" }
        return unescape(String(components[component - 1]))
    }

    /// Undoes ``escape(_:)`` with this message's delimiters; unknown escapes are dropped, as §2.7 allows.
    public func unescape(_ text: String) -> String {
        guard text.contains(delimiters.escape) else { return text }
        var out = ""
        var bytes: [UInt8] = []
        var sequence: String?
        for character in text {
            if var current = sequence {
                if character == delimiters.escape {
                    switch current {
                    case "F": out.append(delimiters.field)
                    case "S": out.append(delimiters.component)
                    case "R": out.append(delimiters.repetition)
                    case "E": out.append(delimiters.escape)
                    case "T": out.append(delimiters.subcomponent)
                    case ".br": out += "\r"
                    case _ where current.hasPrefix("X"):
                        bytes.removeAll()
                        var digits = current.dropFirst()
                        while digits.count >= 2 {
                            if let byte = UInt8(digits.prefix(2), radix: 16) { bytes.append(byte) }
                            digits = digits.dropFirst(2)
                        }
                        out += String(decoding: bytes, as: UTF8.self)
                    default: break
                    }
                    sequence = nil
                } else {
                    current.append(character)
                    sequence = current
                }
            } else if character == delimiters.escape {
                sequence = ""
            } else {
                out.append(character)
            }
        }
        return out
    }
}

/// An HL7 message that could not be built, parsed or delivered, naming the thing and the fix.
public struct HL7Error: CSMILError, Sendable, Equatable {
    /// The kinds of failure.
    public enum Code: String, ErrorCode {
        /// Bytes that do not start with an MSH segment.
        case notAMessage = "hl7.not_a_message"
        /// An answer without an MSA segment.
        case ackWithoutMSA = "hl7.ack_without_msa"
        /// A URL that is not `mllp://` or `mllps://` HOST:PORT.
        case url = "hl7.url"

        /// The configured URL only; a peer's answer is not ours to fix.
        public var needsConfigurationChange: Bool { self == .url }
    }

    /// What kind of failure this is.
    public var code: Code
    /// The message, URL or file concerned.
    public var subject: String
    /// What happened.
    public var message: String
    /// What to do about it.
    public var fix: String

    /// Makes an error.
    public init(code: Code, subject: String, message: String, fix: String) {
        self.code = code
        self.subject = subject
        self.message = message
        self.fix = fix
    }
}
