/// Comma-separated values as pandas writes and reads them (RFC 4180): a field is quoted only when it holds `,`,
/// `"` or a line break, and a quote inside a quoted field is doubled. The one writer and the one reader of csmil's
/// CSV files (`case_results_merge.csv`, the training labels).
public enum CSV {
    /// `field` as it stands in a line: quoted when it must be (pandas' default `QUOTE_MINIMAL`).
    public static func quoted(_ field: String) -> String {
        guard field.unicodeScalars.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else {
            return field
        }
        return "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// One record of a CSV text: its fields and the line it starts on (1-based).
    public struct Record: Sendable, Equatable {
        public var line: Int
        public var fields: [String]
    }

    /// The records of `text`, blank lines left out. Unquoted fields are trimmed of spaces and tabs; quoted ones
    /// are taken as written (commas, quotes and line breaks included). A quote that is never closed ends the
    /// field at the end of the text.
    public static func records(_ text: String) -> [Record] {
        var records: [Record] = []
        var fields: [String] = []
        var field = ""
        var quoted = false
        var inQuotes = false
        var line = 1
        var recordLine = 1
        var scalars = Array(text.unicodeScalars)[...]

        func endField() {
            fields.append(quoted ? field : field.trimmingSpaces())
            field = ""
            quoted = false
        }
        func endRecord() {
            endField()
            if !(fields.count == 1 && fields[0].isEmpty) { records.append(Record(line: recordLine, fields: fields)) }
            fields = []
        }

        while let scalar = scalars.popFirst() {
            if inQuotes {
                if scalar == "\"" {
                    if scalars.first == "\"" {
                        scalars.removeFirst()
                        field.unicodeScalars.append("\"")
                    } else {
                        inQuotes = false
                    }
                } else {
                    if scalar == "\n" { line += 1 }
                    field.unicodeScalars.append(scalar)
                }
                continue
            }
            switch scalar {
            case "\"" where field.trimmingSpaces().isEmpty:
                field = ""
                quoted = true
                inQuotes = true
            case ",":
                endField()
            case "\r" where scalars.first == "\n":
                break
            case "\n", "\r":
                endRecord()
                line += 1
                recordLine = line
            default:
                field.unicodeScalars.append(scalar)
            }
        }
        if !field.isEmpty || quoted || !fields.isEmpty { endRecord() }
        return records
    }
}

extension String {
    fileprivate func trimmingSpaces() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { $0 != " " && $0 != "\t" }) else { return "" }
        let last = scalars.lastIndex(where: { $0 != " " && $0 != "\t" })!
        return String(scalars[first...last])
    }
}
