import Foundation

/// Reads typed values out of a parsed TOML document against a fixed schema, recording every
/// problem (unknown key, wrong type, missing key, impossible value) with its key and line
/// instead of stopping at the first one.
struct TOMLReader {
    private(set) var problems: [ConfigurationError.Problem] = []

    /// The text of a TOML file; a missing, unreadable or non-UTF-8 file is an `unreadable` error saying which
    /// (`TextFile.read`), with `fix` — or, when this process may not read it, how to give it access.
    static func read(path: String, what: String, fix: String) throws(ConfigurationError) -> String {
        do {
            return try TextFile.read(path: path)
        } catch {
            throw ConfigurationError(
                file: path,
                problems: [
                    .init(
                        code: .unreadable, key: nil, line: nil, message: "\(what) \(error.reason)",
                        fix: error.permissionDenied ? error.permissionFix : fix)
                ])
        }
    }

    /// The document's root table; a syntax error is a `syntax` error with its line and column.
    static func parse(_ text: String, path: String) throws(ConfigurationError) -> TOMLTable {
        do {
            return try TOML.parse(text)
        } catch {
            throw ConfigurationError(
                file: path,
                problems: [
                    .init(
                        code: .syntax, key: nil, line: error.line, message: "column \(error.column): \(error.message)",
                        fix: error.fix)
                ])
        }
    }

    /// Records a problem with a value that has the right type but cannot work.
    mutating func invalid(_ key: String, line: Int?, _ message: String, fix: String) {
        problems.append(.init(code: .invalidValue, key: key, line: line, message: message, fix: fix))
    }

    /// Reports each key of `table` that is not in `known`, suggesting the nearest known key.
    mutating func rejectUnknownKeys(in table: TOMLTable, section: String?, known: [String]) {
        for (key, node) in table.entries where !known.contains(key) {
            let dotted = Self.join(section, key)
            let place = section.map { "[\($0)]" } ?? "the top level"
            var fix = "remove it or correct the spelling"
            if let guess = Self.nearest(to: key, in: known) { fix += " (did you mean '\(guess)'?)" }
            fix += "; keys known in \(place): \(known.joined(separator: ", "))"
            problems.append(.init(code: .unknownKey, key: dotted, line: node.line, message: "unknown key", fix: fix))
        }
    }

    /// The sub-table `key` of `table`; an empty table when absent, nil when it is not a table.
    mutating func table(_ table: TOMLTable, _ key: String) -> TOMLTable? {
        guard let node = table[key] else { return TOMLTable(line: table.line, entries: []) }
        guard case .table(let sub) = node.value else {
            wrongType(key, node, expected: "a table ([\(key)])")
            return nil
        }
        return sub
    }

    /// The value of `key` as a `Value`; `fallback` when absent (nil fallback: the key is required). A value of
    /// another type is a `wrong_type` problem naming the key and its line.
    mutating func value<Value: TOMLReadable>(
        _ table: TOMLTable, _ key: String, section: String?, default fallback: Value?
    ) -> Value? {
        guard let node = present(table, key, section: section, hasDefault: fallback != nil) else { return fallback }
        guard let value = Value(node) else {
            wrongType(Self.join(section, key), node, expected: Value.expected)
            return nil
        }
        return value
    }

    /// A string value.
    mutating func string(_ table: TOMLTable, _ key: String, section: String?, default fallback: String?) -> String? {
        value(table, key, section: section, default: fallback)
    }

    /// A number of seconds or hours: an integer or a float.
    mutating func number(_ table: TOMLTable, _ key: String, section: String?, default fallback: Double?) -> Double? {
        value(table, key, section: section, default: fallback)
    }

    /// An integer value.
    mutating func integer(_ table: TOMLTable, _ key: String, section: String?, default fallback: Int64?) -> Int64? {
        value(table, key, section: section, default: fallback)
    }

    /// A boolean value.
    mutating func boolean(_ table: TOMLTable, _ key: String, section: String?, default fallback: Bool?) -> Bool? {
        value(table, key, section: section, default: fallback)
    }

    /// An array of strings.
    mutating func strings(_ table: TOMLTable, _ key: String, section: String?, default fallback: [String]?) -> [String]?
    {
        value(table, key, section: section, default: fallback)
    }

    /// One of a fixed set of string values.
    mutating func choice<Choice: RawRepresentable & CaseIterable>(
        _ table: TOMLTable, _ key: String, section: String?, default fallback: Choice?
    ) -> Choice? where Choice.RawValue == String {
        let allowed = Choice.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")
        guard let text = string(table, key, section: section, default: fallback?.rawValue) else { return nil }
        guard let value = Choice(rawValue: text) else {
            invalid(
                Self.join(section, key), line: table[key]?.line, "\"\(text)\" is not one of \(allowed)",
                fix: "set it to one of \(allowed)")
            return nil
        }
        return value
    }

    /// The line of `key` in `table`, or of the table itself when the key is absent.
    static func line(of key: String, in table: TOMLTable) -> Int? { table[key]?.line ?? table.line }

    /// "section.key", or "key" at the top level.
    static func join(_ section: String?, _ key: String) -> String { section.map { "\($0).\(key)" } ?? key }

    private mutating func present(_ table: TOMLTable, _ key: String, section: String?, hasDefault: Bool) -> TOMLNode? {
        if let node = table[key] { return node }
        if !hasDefault {
            let place = section.map { "[\($0)]" } ?? "the top level"
            problems.append(
                .init(
                    code: .missingKey, key: Self.join(section, key), line: table.line,
                    message: "required key is missing", fix: "add `\(key) = …` to \(place)"))
        }
        return nil
    }

    private mutating func wrongType(_ key: String, _ node: TOMLNode, expected: String) {
        problems.append(
            .init(
                code: .wrongType, key: key, line: node.line, message: "is a \(node.value.typeName)",
                fix: "write \(expected)"))
    }

    /// The known key closest to `key` by edit distance, if it is plausibly a typo of it.
    static func nearest(to key: String, in known: [String]) -> String? {
        let scored = known.map { ($0, editDistance(key, $0)) }.min { $0.1 < $1.1 }
        guard let (best, distance) = scored, distance <= max(2, key.count / 3) else { return nil }
        return best
    }

    /// Levenshtein distance over characters.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...max(b.count, 1) where !b.isEmpty {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = b.isEmpty ? [i] : current
        }
        return previous[b.count]
    }
}

/// A Swift type a TOML value can be read as, and how the error says what was expected.
protocol TOMLReadable {
    /// The value of `node`, or nil when it has another type.
    init?(_ node: TOMLNode)
    /// "a string in double quotes", "an integer", …
    static var expected: String { get }
}

extension String: TOMLReadable {
    init?(_ node: TOMLNode) {
        guard case .string(let value) = node.value else { return nil }
        self = value
    }
    static var expected: String { "a string in double quotes" }
}

extension Double: TOMLReadable {
    /// An integer or a finite float.
    init?(_ node: TOMLNode) {
        switch node.value {
        case .integer(let value): self = Double(value)
        case .float(let value) where value.isFinite: self = value
        default: return nil
        }
    }
    static var expected: String { "a finite number" }
}

extension Int64: TOMLReadable {
    init?(_ node: TOMLNode) {
        guard case .integer(let value) = node.value else { return nil }
        self = value
    }
    static var expected: String { "an integer" }
}

extension Bool: TOMLReadable {
    init?(_ node: TOMLNode) {
        guard case .boolean(let value) = node.value else { return nil }
        self = value
    }
    static var expected: String { "true or false" }
}

extension Array: TOMLReadable where Element == String {
    init?(_ node: TOMLNode) {
        guard case .array(let items) = node.value else { return nil }
        var values: [String] = []
        for item in items {
            guard let value = String(item) else { return nil }
            values.append(value)
        }
        self = values
    }
    static var expected: String { "an array of strings" }
}
