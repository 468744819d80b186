extension String {
    /// The string with every control character written as an escape — `\n`, `\r`, `\t`, and `\u{1B}` for the rest
    /// (C0, DEL, C1, and the format characters that reorder or hide text, such as U+202E) — so that a file name shown
    /// in a terminal or a log line cannot start a fake line, move the cursor or reverse what follows. File names may
    /// hold any byte but `/` and NUL; `csmil status` and the stderr log show them through this.
    var escapingControlCharacters: String {
        guard unicodeScalars.contains(where: Self.needsEscape) else { return self }
        var escaped = ""
        for scalar in unicodeScalars {
            switch scalar {
            case "\n": escaped += "\\n"
            case "\r": escaped += "\\r"
            case "\t": escaped += "\\t"
            case _ where Self.needsEscape(scalar):
                escaped += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped
    }

    private static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .control, .format, .lineSeparator, .paragraphSeparator: true
        default: false
        }
    }
}
