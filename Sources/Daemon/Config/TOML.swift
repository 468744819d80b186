import Errors

// A strict TOML 1.0.0 parser: a hand-written recursive-descent parser over the document's UTF-8 bytes.
//
// Values carry the 1-based line they were defined on, so configuration errors found later can point
// back into the file. Dates and times are validated but kept as their source text.

/// A TOML value with the 1-based line on which it (or its key) was defined.
struct TOMLNode: Sendable, Equatable {
    var value: TOMLValue
    var line: Int
}

/// A parsed TOML value.
indirect enum TOMLValue: Sendable, Equatable {
    case string(String)
    case integer(Int64)
    /// A float; `nan` compares unequal to itself, as `Double` does.
    case float(Double)
    case boolean(Bool)
    /// An offset date-time, local date-time, local date or local time, validated and kept as its source text.
    case dateTime(String)
    case array([TOMLNode])
    case table(TOMLTable)

    /// The TOML name of the value's type, for messages.
    var typeName: String {
        switch self {
        case .string: "string"
        case .integer: "integer"
        case .float: "float"
        case .boolean: "boolean"
        case .dateTime: "date-time"
        case .array: "array"
        case .table: "table"
        }
    }

    /// The type name with its indefinite article ("an integer", "a table").
    fileprivate var typeWithArticle: String {
        switch self {
        case .integer, .array: "an \(typeName)"
        default: "a \(typeName)"
        }
    }
}

/// A TOML table: its keys in the order they were first defined.
struct TOMLTable: Sendable, Equatable {
    /// Line of the `[header]` or key that defined the table; 1 for the root table. A table that is only
    /// implied by a deeper header (`b` in `[b.c]`) or dotted key keeps the line where it was first implied,
    /// until a `[b]` header defines it explicitly.
    var line: Int
    /// The table's entries in insertion order.
    var entries: [(key: String, node: TOMLNode)]

    init(line: Int = 1, entries: [(key: String, node: TOMLNode)] = []) {
        self.line = line
        self.entries = entries
    }

    /// The keys in insertion order.
    var keys: [String] { entries.map(\.key) }

    /// The node stored under `key`, if any.
    subscript(key: String) -> TOMLNode? {
        entries.first { $0.key == key }?.node
    }

    static func == (lhs: TOMLTable, rhs: TOMLTable) -> Bool {
        lhs.line == rhs.line
            && lhs.entries.count == rhs.entries.count
            && zip(lhs.entries, rhs.entries).allSatisfy { $0.key == $1.key && $0.node == $1.node }
    }
}

/// A syntax or semantic error in a TOML document, with its 1-based line and column (in Unicode scalars).
struct TOMLError: CSMILError, Sendable, Equatable {
    enum Code: String, ErrorCode {
        case syntax = "config.syntax"
    }

    var line: Int
    var column: Int
    var message: String

    var code: Code { .syntax }
    var subject: String { "line \(line), column \(column)" }
    var fix: String { "correct the TOML syntax (https://toml.io/en/v1.0.0)" }
}

/// Entry point of the TOML parser.
enum TOML {
    /// Parses a complete TOML 1.0.0 document into its root table.
    static func parse(_ text: String) throws(TOMLError) -> TOMLTable {
        var parser = TOMLParser(bytes: Array(text.utf8))
        return try parser.parseDocument()
    }
}

// MARK: - Bytes

private enum Byte {
    static let tab: UInt8 = 0x09, lf: UInt8 = 0x0A, cr: UInt8 = 0x0D, space: UInt8 = 0x20
    static let quote: UInt8 = 0x22, hash: UInt8 = 0x23, apostrophe: UInt8 = 0x27, plus: UInt8 = 0x2B
    static let comma: UInt8 = 0x2C, minus: UInt8 = 0x2D, dot: UInt8 = 0x2E, colon: UInt8 = 0x3A
    static let equals: UInt8 = 0x3D, backslash: UInt8 = 0x5C, underscore: UInt8 = 0x5F
    static let bracketOpen: UInt8 = 0x5B, bracketClose: UInt8 = 0x5D
    static let braceOpen: UInt8 = 0x7B, braceClose: UInt8 = 0x7D

    static func isDigit(_ byte: UInt8?) -> Bool {
        guard let byte else { return false }
        return byte >= 0x30 && byte <= 0x39
    }

    static func isLetter(_ byte: UInt8) -> Bool {
        (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
    }

    static func isBareKey(_ byte: UInt8) -> Bool {
        isLetter(byte) || isDigit(byte) || byte == underscore || byte == minus
    }

    /// Control characters that may not appear literally in strings or comments (tab is allowed).
    static func isControl(_ byte: UInt8) -> Bool {
        (byte < 0x20 && byte != tab) || byte == 0x7F
    }

    static func digitValue(_ byte: UInt8, radix: Int) -> Int? {
        let value: Int
        switch byte {
        case 0x30...0x39: value = Int(byte - 0x30)
        case 0x41...0x46: value = Int(byte - 0x41) + 10
        case 0x61...0x66: value = Int(byte - 0x61) + 10
        default: return nil
        }
        return value < radix ? value : nil
    }

    /// How a byte is shown in a message: `'x'` for printable ASCII, `U+000D` otherwise.
    static func describe(_ byte: UInt8?) -> String {
        guard let byte else { return "end of input" }
        if byte == lf { return "a newline" }
        if byte >= 0x20 && byte < 0x7F { return "'\(Character(Unicode.Scalar(byte)))'" }
        if byte >= 0x80 { return "a non-ASCII character" }
        let hex = String(byte, radix: 16, uppercase: true)
        return "U+" + String(repeating: "0", count: 4 - hex.count) + hex
    }
}

// MARK: - Table builder

/// A mutable table used while parsing; it records how each table was defined so the spec's
/// redefinition rules can be enforced, and is turned into a `TOMLTable` at the end.
private final class TableBuilder {
    enum Origin: Equatable {
        /// Created as the parent of a `[a.b]` header; may still be defined by a header later.
        case implicit
        /// Defined by a `[header]` or `[[header]]` (the root and inline tables count as one).
        case header
        /// Created by dotted keys in the header block with this id.
        case dotted(block: Int)
    }

    enum Entry {
        /// A plain value; inline tables and static arrays are stored here, which makes them immutable.
        case value(TOMLNode)
        case table(TableBuilder)
        case tableArray([TableBuilder], line: Int)

        var line: Int {
            switch self {
            case .value(let node): node.line
            case .table(let table): table.line
            case .tableArray(_, let line): line
            }
        }
    }

    var line: Int
    var origin: Origin
    private var order: [String] = []
    private var entries: [String: Entry] = [:]

    init(line: Int, origin: Origin) {
        self.line = line
        self.origin = origin
    }

    subscript(key: String) -> Entry? {
        get { entries[key] }
        set {
            if entries[key] == nil { order.append(key) }
            entries[key] = newValue
        }
    }

    /// Appends to an existing array of tables in place (no copy of the array).
    func append(_ table: TableBuilder, toTableArray key: String) {
        guard case .tableArray(var tables, let line)? = entries.removeValue(forKey: key) else { return }
        tables.append(table)
        entries[key] = .tableArray(tables, line: line)
    }

    func build() -> TOMLTable {
        var table = TOMLTable(line: line)
        for key in order {
            guard let entry = entries[key] else { continue }
            let node: TOMLNode
            switch entry {
            case .value(let value):
                node = value
            case .table(let sub):
                node = TOMLNode(value: .table(sub.build()), line: sub.line)
            case .tableArray(let tables, let line):
                let items = tables.map { TOMLNode(value: .table($0.build()), line: $0.line) }
                node = TOMLNode(value: .array(items), line: line)
            }
            table.entries.append((key: key, node: node))
        }
        return table
    }
}

/// One component of a (possibly dotted) key, with the byte offset where it starts.
private struct KeyPart {
    var name: String
    var offset: Int
}

/// Formats key components as they would be written, quoting the ones that are not bare keys.
private func keyText(_ parts: ArraySlice<KeyPart>) -> String {
    parts.map { part in
        if !part.name.isEmpty && part.name.utf8.allSatisfy(Byte.isBareKey) { return part.name }
        let escaped = part.name.replacingAll("\\", with: "\\\\").replacingAll("\"", with: "\\\"")
        return "\"\(escaped)\""
    }.joined(separator: ".")
}

private extension String {
    func replacingAll(_ target: Character, with replacement: String) -> String {
        var result = ""
        for character in self {
            if character == target { result += replacement } else { result.append(character) }
        }
        return result
    }
}

// MARK: - Parser

/// Recursive-descent parser state: the input bytes, the read position and the tables built so far.
private struct TOMLParser {
    /// Deepest nesting of arrays / inline tables, and most components in one key, before giving up.
    static let maxDepth = 128

    let bytes: [UInt8]
    var pos = 0
    /// Byte offset at which each line starts (after skipping a BOM on the first line).
    let lineStarts: [Int]
    let root = TableBuilder(line: 1, origin: .header)
    /// The table that key/value pairs currently go into (the last header's table).
    var current: TableBuilder
    /// Id of the current header block; dotted keys may only extend tables created in the same block.
    var block = 0
    var nextBlock = 1
    var depth = 0

    init(bytes: [UInt8]) {
        self.bytes = bytes
        var starts = [0]
        for (index, byte) in bytes.enumerated() where byte == Byte.lf {
            starts.append(index + 1)
        }
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) {
            pos = 3
            starts[0] = 3
        }
        lineStarts = starts
        current = root
    }

    // MARK: Positions and errors

    func peek(_ offset: Int = 0) -> UInt8? {
        let index = pos + offset
        return index < bytes.count ? bytes[index] : nil
    }

    func line(at offset: Int) -> Int {
        var low = 0
        var high = lineStarts.count - 1
        while low < high {
            let mid = (low + high + 1) / 2
            if lineStarts[mid] <= offset { low = mid } else { high = mid - 1 }
        }
        return low + 1
    }

    func error(_ message: String, at offset: Int? = nil) -> TOMLError {
        let offset = min(offset ?? pos, bytes.count)
        let line = line(at: offset)
        let start = lineStarts[line - 1]
        var column = 1
        if offset > start {
            for byte in bytes[start..<offset] where byte & 0xC0 != 0x80 { column += 1 }
        }
        return TOMLError(line: line, column: column, message: message)
    }

    // MARK: Whitespace, comments, newlines

    mutating func skipWhitespace() {
        while let byte = peek(), byte == Byte.space || byte == Byte.tab { pos += 1 }
    }

    /// Consumes LF or CRLF; returns false if the next byte starts no newline.
    mutating func consumeNewline() throws(TOMLError) -> Bool {
        if peek() == Byte.lf {
            pos += 1
            return true
        }
        if peek() == Byte.cr {
            guard peek(1) == Byte.lf else { throw error("a carriage return must be followed by a line feed") }
            pos += 2
            return true
        }
        return false
    }

    /// Skips a comment up to (not including) the newline that ends it.
    mutating func skipComment() throws(TOMLError) {
        pos += 1
        while let byte = peek(), byte != Byte.lf {
            if byte == Byte.cr && peek(1) == Byte.lf { return }
            if Byte.isControl(byte) {
                throw error("control character \(Byte.describe(byte)) is not allowed in a comment")
            }
            pos += 1
        }
    }

    /// Skips whitespace, comments and newlines (inside arrays).
    mutating func skipWhitespaceCommentsAndNewlines() throws(TOMLError) {
        while true {
            skipWhitespace()
            if peek() == Byte.hash {
                try skipComment()
            } else if try !consumeNewline() {
                return
            }
        }
    }

    /// Expects optional whitespace and a comment, then a newline or the end of the input.
    mutating func expectLineEnd(_ context: String) throws(TOMLError) {
        skipWhitespace()
        if peek() == Byte.hash { try skipComment() }
        if pos >= bytes.count { return }
        if try consumeNewline() { return }
        throw error("expected a newline \(context), found \(Byte.describe(peek()))")
    }

    mutating func enterNesting() throws(TOMLError) {
        depth += 1
        if depth > Self.maxDepth { throw error("arrays and inline tables are nested too deeply") }
    }

    // MARK: Document structure

    mutating func parseDocument() throws(TOMLError) -> TOMLTable {
        while true {
            skipWhitespace()
            guard let byte = peek() else { break }
            switch byte {
            case Byte.hash, Byte.lf, Byte.cr:
                try expectLineEnd("after the comment")
            case Byte.bracketOpen:
                try parseHeader()
                try expectLineEnd("after the table header")
            default:
                try parseKeyValue(into: current, block: block)
                try expectLineEnd("after the value")
            }
        }
        return root.build()
    }

    /// Parses `[key]` or `[[key]]` and makes its table the current one.
    mutating func parseHeader() throws(TOMLError) {
        let start = pos
        let isArray = peek(1) == Byte.bracketOpen
        pos += isArray ? 2 : 1
        let parts = try parseKey()
        if isArray {
            guard peek() == Byte.bracketClose && peek(1) == Byte.bracketClose else {
                throw error("expected ']]' to close the array-of-tables header")
            }
            pos += 2
        } else {
            guard peek() == Byte.bracketClose else { throw error("expected ']' to close the table header") }
            pos += 1
        }
        current = try openTable(parts, headerOffset: start, isArray: isArray)
        block = nextBlock
        nextBlock += 1
    }

    /// Finds or creates the table named by a header, enforcing the redefinition rules.
    func openTable(_ parts: [KeyPart], headerOffset: Int, isArray: Bool) throws(TOMLError) -> TableBuilder {
        let line = line(at: headerOffset)
        var table = root
        for index in parts.indices.dropLast() {
            let name = parts[index].name
            let path = keyText(parts[...index])
            switch table[name] {
            case nil:
                let created = TableBuilder(line: line, origin: .implicit)
                table[name] = .table(created)
                table = created
            case .table(let sub):
                table = sub
            case .tableArray(let tables, _):
                table = tables[tables.count - 1]
            case .value(let node):
                throw notATable(path, node, at: headerOffset)
            }
        }
        let last = parts[parts.count - 1]
        let path = keyText(parts[...])
        let created = TableBuilder(line: line, origin: .header)
        switch (table[last.name], isArray) {
        case (nil, false):
            table[last.name] = .table(created)
        case (nil, true):
            table[last.name] = .tableArray([created], line: line)
        case (.tableArray, true):
            table.append(created, toTableArray: last.name)
        case (.table(let sub), false):
            switch sub.origin {
            case .implicit:
                sub.origin = .header
                sub.line = line
                return sub
            case .header:
                throw error("duplicate table [\(path)] (first defined on line \(sub.line))", at: headerOffset)
            case .dotted:
                throw error(
                    "table [\(path)] was already defined by dotted keys on line \(sub.line)",
                    at: headerOffset)
            }
        case (.table(let sub), true):
            throw error(
                "cannot define [[\(path)]]: '\(path)' is already a table (line \(sub.line))",
                at: headerOffset)
        case (.tableArray(_, let arrayLine), false):
            throw error(
                "cannot define [\(path)]: '\(path)' is already an array of tables (line \(arrayLine))",
                at: headerOffset)
        case (.value(let node), _):
            if isArray, case .array = node.value {
                throw error(
                    "cannot append to static array '\(path)' (defined on line \(node.line)) with [[\(path)]]",
                    at: headerOffset)
            }
            if case .table = node.value {
                throw error("cannot redefine inline table '\(path)' (defined on line \(node.line))", at: headerOffset)
            }
            throw notATable(path, node, at: headerOffset)
        }
        return created
    }

    func notATable(_ path: String, _ node: TOMLNode, at offset: Int) -> TOMLError {
        if case .table = node.value {
            return error("cannot extend inline table '\(path)' (defined on line \(node.line))", at: offset)
        }
        return error("key '\(path)' is \(node.value.typeWithArticle) (line \(node.line)), not a table", at: offset)
    }

    /// Parses `key = value` and stores it in `table`.
    mutating func parseKeyValue(into table: TableBuilder, block: Int) throws(TOMLError) {
        let keyOffset = pos
        let parts = try parseKey()
        guard peek() == Byte.equals else {
            throw error("expected '=' after key '\(keyText(parts[...]))', found \(Byte.describe(peek()))")
        }
        pos += 1
        skipWhitespace()
        if let next = peek(), next != Byte.lf, next != Byte.cr, next != Byte.hash {
            let node = TOMLNode(value: try parseValue(), line: line(at: keyOffset))
            try assign(node, to: parts, in: table, block: block)
        } else {
            throw error("expected a value after '='")
        }
    }

    /// Stores a value under a (possibly dotted) key, creating intermediate tables.
    func assign(_ node: TOMLNode, to parts: [KeyPart], in start: TableBuilder, block: Int) throws(TOMLError) {
        var table = start
        for index in parts.indices.dropLast() {
            let name = parts[index].name
            let path = keyText(parts[...index])
            switch table[name] {
            case nil:
                let created = TableBuilder(line: node.line, origin: .dotted(block: block))
                table[name] = .table(created)
                table = created
            case .table(let sub):
                switch sub.origin {
                case .implicit:
                    sub.origin = .dotted(block: block)
                case .dotted(let owner) where owner == block:
                    break
                case .dotted, .header:
                    throw error(
                        "cannot add keys to table '\(path)' (defined on line \(sub.line)) with dotted keys "
                            + "outside its own section", at: parts[index].offset)
                }
                table = sub
            case .tableArray(_, let line):
                throw error(
                    "cannot add keys to array of tables '\(path)' (defined on line \(line)) with dotted keys",
                    at: parts[index].offset)
            case .value(let existing):
                throw notATable(path, existing, at: parts[index].offset)
            }
        }
        let name = parts[parts.count - 1].name
        if let existing = table[name] {
            throw error(
                "duplicate key '\(keyText(parts[...]))' (first defined on line \(existing.line))",
                at: parts[0].offset)
        }
        table[name] = .value(node)
    }

    // MARK: Keys

    /// Parses a simple or dotted key, with optional whitespace around it and around the dots.
    mutating func parseKey() throws(TOMLError) -> [KeyPart] {
        var parts: [KeyPart] = []
        while true {
            skipWhitespace()
            parts.append(try parseSimpleKey())
            if parts.count > Self.maxDepth { throw error("key has too many dotted parts") }
            skipWhitespace()
            guard peek() == Byte.dot else { return parts }
            pos += 1
        }
    }

    mutating func parseSimpleKey() throws(TOMLError) -> KeyPart {
        let start = pos
        switch peek() {
        case Byte.quote, Byte.apostrophe:
            if peek(1) == peek() && peek(2) == peek() { throw error("a multi-line string cannot be used as a key") }
            return KeyPart(name: try parseString(), offset: start)
        default:
            while let byte = peek(), Byte.isBareKey(byte) { pos += 1 }
            guard pos > start else { throw error("expected a key, found \(Byte.describe(peek()))") }
            return KeyPart(name: String(decoding: bytes[start..<pos], as: UTF8.self), offset: start)
        }
    }

    // MARK: Values

    mutating func parseValue() throws(TOMLError) -> TOMLValue {
        guard let byte = peek() else { throw error("expected a value, found end of input") }
        switch byte {
        case Byte.quote, Byte.apostrophe:
            return .string(try parseString())
        case Byte.bracketOpen:
            return try parseArray()
        case Byte.braceOpen:
            return try parseInlineTable()
        case _ where looksLikeDateOrTime():
            return try parseDateTime()
        case _ where Byte.isDigit(byte) || Byte.isLetter(byte) || byte == Byte.plus || byte == Byte.minus:
            return try parseScalarToken()
        default:
            throw error("expected a value, found \(Byte.describe(byte))")
        }
    }

    mutating func parseArray() throws(TOMLError) -> TOMLValue {
        let openLine = line(at: pos)
        pos += 1
        try enterNesting()
        defer { depth -= 1 }
        var items: [TOMLNode] = []
        while true {
            try skipWhitespaceCommentsAndNewlines()
            if peek() == Byte.bracketClose { break }
            if peek() == nil { throw error("expected ']' to close the array opened on line \(openLine)") }
            let itemLine = line(at: pos)
            items.append(TOMLNode(value: try parseValue(), line: itemLine))
            try skipWhitespaceCommentsAndNewlines()
            if peek() == Byte.comma {
                pos += 1
            } else if peek() != Byte.bracketClose {
                throw error("expected ',' or ']' after an array element, found \(Byte.describe(peek()))")
            }
        }
        pos += 1
        return .array(items)
    }

    mutating func parseInlineTable() throws(TOMLError) -> TOMLValue {
        let table = TableBuilder(line: line(at: pos), origin: .header)
        let tableBlock = nextBlock
        nextBlock += 1
        pos += 1
        try enterNesting()
        defer { depth -= 1 }
        skipWhitespace()
        if peek() == Byte.braceClose {
            pos += 1
            return .table(table.build())
        }
        while true {
            skipWhitespace()
            if peek() == Byte.lf || peek() == Byte.cr || peek() == Byte.hash {
                throw error("newlines are not allowed in an inline table")
            }
            if peek() == Byte.braceClose { throw error("trailing comma is not allowed in an inline table") }
            try parseKeyValue(into: table, block: tableBlock)
            skipWhitespace()
            switch peek() {
            case Byte.comma:
                pos += 1
            case Byte.braceClose:
                pos += 1
                return .table(table.build())
            case Byte.lf, Byte.cr, Byte.hash:
                throw error("newlines are not allowed in an inline table; expected ',' or '}'")
            default:
                throw error("expected ',' or '}' in inline table, found \(Byte.describe(peek()))")
            }
        }
    }

    // MARK: Strings

    /// Parses a basic (`"…"`), literal (`'…'`), multi-line basic (`"""…"""`) or multi-line literal
    /// (`'''…'''`) string. Multi-line strings drop a newline right after the opening delimiter and
    /// normalise CRLF to LF.
    mutating func parseString() throws(TOMLError) -> String {
        let delimiter = bytes[pos]
        let multiline = peek(1) == delimiter && peek(2) == delimiter
        let quotes = String(repeating: delimiter == Byte.quote ? "\"" : "'", count: multiline ? 3 : 1)
        let closer = delimiter == Byte.quote ? "'\(quotes)'" : "\"\(quotes)\""
        pos += multiline ? 3 : 1
        if multiline { _ = try consumeNewline() }
        var out: [UInt8] = []
        while true {
            guard let byte = peek() else { throw error("expected \(closer) to close the string") }
            if byte == delimiter {
                guard multiline else {
                    pos += 1
                    return String(decoding: out, as: UTF8.self)
                }
                if let string = closeMultiline(delimiter, content: &out) { return string }
            } else if byte == Byte.backslash && delimiter == Byte.quote {
                if multiline, let end = lineEndingBackslashEnd() {
                    pos = end
                    try skipWhitespaceAndNewlines()
                } else {
                    try parseEscape(into: &out)
                }
            } else if byte == Byte.lf || byte == Byte.cr {
                guard multiline else {
                    throw error("expected \(closer) to close the string before the end of the line")
                }
                _ = try consumeNewline()
                out.append(Byte.lf)
            } else if Byte.isControl(byte) {
                throw error("control character \(Byte.describe(byte)) must be escaped in a string")
            } else {
                out.append(byte)
                pos += 1
            }
        }
    }

    /// At a run of delimiter quotes: up to two are content; three to five close the string (the extra ones
    /// belong to the content). Returns the finished string, or nil if the run was only content.
    mutating func closeMultiline(_ quote: UInt8, content out: inout [UInt8]) -> String? {
        var count = 0
        while peek(count) == quote && count < 5 { count += 1 }
        pos += count
        if count < 3 {
            out.append(contentsOf: repeatElement(quote, count: count))
            return nil
        }
        out.append(contentsOf: repeatElement(quote, count: count - 3))
        return String(decoding: out, as: UTF8.self)
    }

    /// If the backslash at `pos` is followed only by whitespace up to a newline (a line-ending backslash),
    /// returns the offset of that newline.
    func lineEndingBackslashEnd() -> Int? {
        var next = pos + 1
        while next < bytes.count && (bytes[next] == Byte.space || bytes[next] == Byte.tab) { next += 1 }
        guard next < bytes.count else { return nil }
        let crlf = bytes[next] == Byte.cr && next + 1 < bytes.count && bytes[next + 1] == Byte.lf
        return bytes[next] == Byte.lf || crlf ? next : nil
    }

    mutating func skipWhitespaceAndNewlines() throws(TOMLError) {
        while true {
            skipWhitespace()
            if try !consumeNewline() { return }
        }
    }

    /// Parses an escape sequence starting at the backslash and appends its UTF-8 bytes.
    mutating func parseEscape(into out: inout [UInt8]) throws(TOMLError) {
        let start = pos
        pos += 1
        let letter = peek()
        pos += 1
        switch letter {
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "n"): out.append(0x0A)
        case UInt8(ascii: "f"): out.append(0x0C)
        case UInt8(ascii: "r"): out.append(0x0D)
        case Byte.quote: out.append(Byte.quote)
        case Byte.backslash: out.append(Byte.backslash)
        case UInt8(ascii: "u"), UInt8(ascii: "U"):
            let count = letter == UInt8(ascii: "u") ? 4 : 8
            let escape = letter == UInt8(ascii: "u") ? "\\u" : "\\U"
            var code: UInt32 = 0
            for _ in 0..<count {
                guard let byte = peek(), let digit = Byte.digitValue(byte, radix: 16) else {
                    throw error("expected \(count) hexadecimal digits after '\(escape)'", at: start)
                }
                code = code * 16 + UInt32(digit)
                pos += 1
            }
            guard let scalar = Unicode.Scalar(code) else {
                let text = String(decoding: bytes[start..<pos], as: UTF8.self)
                throw error("'\(text)' is not a valid Unicode scalar value", at: start)
            }
            out.append(contentsOf: String(Character(scalar)).utf8)
        default:
            let shown = letter.map { $0 >= 0x21 && $0 < 0x7F ? "'\\\(Character(Unicode.Scalar($0)))'" : "" } ?? ""
            throw error("invalid escape sequence \(shown.isEmpty ? "'\\'" : shown)", at: start)
        }
    }

    // MARK: Numbers and booleans

    /// Parses `true`, `false`, an integer or a float from a run of token characters.
    mutating func parseScalarToken() throws(TOMLError) -> TOMLValue {
        let start = pos
        while let byte = peek(),
            Byte.isLetter(byte) || Byte.isDigit(byte) || byte == Byte.underscore || byte == Byte.plus
                || byte == Byte.minus || byte == Byte.dot
        {
            pos += 1
        }
        let token = Array(bytes[start..<pos])
        if token.elementsEqual("true".utf8) { return .boolean(true) }
        if token.elementsEqual("false".utf8) { return .boolean(false) }
        return try parseNumber(token, at: start)
    }

    func parseNumber(_ token: [UInt8], at start: Int) throws(TOMLError) -> TOMLValue {
        let text = String(decoding: token, as: UTF8.self)
        let signed = token[0] == Byte.plus || token[0] == Byte.minus
        let negative = token[0] == Byte.minus
        let body = signed ? 1 : 0
        if token[body...].elementsEqual("inf".utf8) { return .float(negative ? -.infinity : .infinity) }
        if token[body...].elementsEqual("nan".utf8) { return .float(.nan) }
        guard body < token.count, Byte.isDigit(token[body]) else {
            if Byte.isLetter(token[0]) {
                throw error("expected a value, found '\(text)' (strings must be quoted)", at: start)
            }
            throw error("invalid number '\(text)'", at: start)
        }

        // Hexadecimal, octal and binary integers.
        let radixes: [UInt8: Int] = [UInt8(ascii: "x"): 16, UInt8(ascii: "o"): 8, UInt8(ascii: "b"): 2]
        if token[body] == 0x30, body + 1 < token.count, let radix = radixes[token[body + 1]] {
            if signed { throw error("a sign is not allowed on hexadecimal, octal or binary integers", at: start) }
            let (digits, end) = try scanDigits(token, from: 2, radix: radix, tokenStart: start)
            try expectTokenEnd(token, end, tokenStart: start)
            guard let value = Self.int64(digits, radix: radix, negative: false) else { throw overflow(text, start) }
            return .integer(value)
        }

        let (integerDigits, integerEnd) = try scanDigits(token, from: body, radix: 10, tokenStart: start)
        if integerDigits.count > 1 && integerDigits[0] == 0x30 {
            throw error("leading zeros are not allowed in '\(text)'", at: start + body)
        }
        var index = integerEnd
        var isFloat = false
        if index < token.count && token[index] == Byte.dot {
            isFloat = true
            guard index + 1 < token.count, Byte.isDigit(token[index + 1]) else {
                throw error("expected a digit after the decimal point", at: start + index + 1)
            }
            index = try scanDigits(token, from: index + 1, radix: 10, tokenStart: start).end
        }
        if index < token.count && (token[index] == UInt8(ascii: "e") || token[index] == UInt8(ascii: "E")) {
            isFloat = true
            index += 1
            if index < token.count && (token[index] == Byte.plus || token[index] == Byte.minus) { index += 1 }
            guard index < token.count, Byte.isDigit(token[index]) else {
                throw error("expected a digit in the exponent", at: start + index)
            }
            index = try scanDigits(token, from: index, radix: 10, tokenStart: start).end
        }
        try expectTokenEnd(token, index, tokenStart: start)
        if isFloat {
            let cleaned = String(decoding: token.filter { $0 != Byte.underscore }, as: UTF8.self)
            guard let value = Double(cleaned) else { throw error("invalid float '\(text)'", at: start) }
            return .float(value)
        }
        guard let value = Self.int64(integerDigits, radix: 10, negative: negative) else { throw overflow(text, start) }
        return .integer(value)
    }

    /// The digits of a number (underscores removed) and the token index just past them.
    typealias Digits = (digits: [UInt8], end: Int)

    /// Scans digits of `radix` with single underscores allowed only between digits.
    func scanDigits(_ token: [UInt8], from first: Int, radix: Int, tokenStart: Int) throws(TOMLError) -> Digits {
        var digits: [UInt8] = []
        var index = first
        guard index < token.count, Byte.digitValue(token[index], radix: radix) != nil else {
            throw error(
                "expected a digit, found \(Byte.describe(index < token.count ? token[index] : nil))",
                at: tokenStart + index)
        }
        while index < token.count {
            let byte = token[index]
            if Byte.digitValue(byte, radix: radix) != nil {
                digits.append(byte)
            } else if byte == Byte.underscore {
                guard index + 1 < token.count, Byte.digitValue(token[index + 1], radix: radix) != nil else {
                    throw error("an underscore in a number must be between two digits", at: tokenStart + index)
                }
            } else {
                break
            }
            index += 1
        }
        return (digits, index)
    }

    func expectTokenEnd(_ token: [UInt8], _ index: Int, tokenStart: Int) throws(TOMLError) {
        guard index < token.count else { return }
        throw error("unexpected \(Byte.describe(token[index])) in number", at: tokenStart + index)
    }

    func overflow(_ text: String, _ start: Int) -> TOMLError {
        error("integer '\(text)' does not fit in 64 bits", at: start)
    }

    /// Converts validated digits to an `Int64`; nil if the value does not fit.
    static func int64(_ digits: [UInt8], radix: Int, negative: Bool) -> Int64? {
        var value: Int64 = 0
        for byte in digits {
            let digit = Int64(Byte.digitValue(byte, radix: radix) ?? 0)
            let (shifted, overflow1) = value.multipliedReportingOverflow(by: Int64(radix))
            let (next, overflow2) =
                negative
                ? shifted.subtractingReportingOverflow(digit)
                : shifted.addingReportingOverflow(digit)
            if overflow1 || overflow2 { return nil }
            value = next
        }
        return value
    }

    // MARK: Dates and times

    func looksLikeDateOrTime() -> Bool {
        let isDate = (0..<4).allSatisfy { Byte.isDigit(peek($0)) } && peek(4) == Byte.minus
        let isTime = Byte.isDigit(peek()) && Byte.isDigit(peek(1)) && peek(2) == Byte.colon
        return isDate || isTime
    }

    /// Parses an offset date-time, local date-time, local date or local time.
    mutating func parseDateTime() throws(TOMLError) -> TOMLValue {
        let start = pos
        if peek(2) == Byte.colon {
            try parseTime()
        } else {
            try parseDate()
            let separator = peek()
            let spaceThenTime =
                separator == Byte.space && Byte.isDigit(peek(1)) && Byte.isDigit(peek(2))
                && peek(3) == Byte.colon
            if separator == UInt8(ascii: "T") || separator == UInt8(ascii: "t") || spaceThenTime {
                pos += 1
                try parseTime()
                try parseOffset()
            }
        }
        return .dateTime(String(decoding: bytes[start..<pos], as: UTF8.self))
    }

    mutating func parseDate() throws(TOMLError) {
        let year = try parseField(digits: 4, name: "year", range: 0...9999)
        try expectSeparator(Byte.minus, after: "year")
        let month = try parseField(digits: 2, name: "month", range: 1...12)
        try expectSeparator(Byte.minus, after: "month")
        let dayOffset = pos
        let day = try parseField(digits: 2, name: "day", range: 1...31)
        let isLeap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let daysInMonth = [31, isLeap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]
        guard day <= daysInMonth else {
            throw error("day must be between 01 and \(daysInMonth) for month \(month)", at: dayOffset)
        }
    }

    mutating func parseTime() throws(TOMLError) {
        _ = try parseField(digits: 2, name: "hour", range: 0...23)
        try expectSeparator(Byte.colon, after: "hour")
        _ = try parseField(digits: 2, name: "minute", range: 0...59)
        try expectSeparator(Byte.colon, after: "minute")
        _ = try parseField(digits: 2, name: "second", range: 0...59)
        if peek() == Byte.dot {
            pos += 1
            guard Byte.isDigit(peek()) else { throw error("expected digits after the decimal point in the time") }
            while Byte.isDigit(peek()) { pos += 1 }
        }
    }

    mutating func parseOffset() throws(TOMLError) {
        switch peek() {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            pos += 1
        case Byte.plus, Byte.minus:
            pos += 1
            _ = try parseField(digits: 2, name: "offset hour", range: 0...23)
            try expectSeparator(Byte.colon, after: "offset hour")
            _ = try parseField(digits: 2, name: "offset minute", range: 0...59)
        default:
            break
        }
    }

    /// Reads exactly `digits` decimal digits and checks that the value lies in `range`.
    mutating func parseField(digits: Int, name: String, range: ClosedRange<Int>) throws(TOMLError) -> Int {
        let start = pos
        var value = 0
        for _ in 0..<digits {
            guard let byte = peek(), Byte.isDigit(byte) else {
                throw error("expected \(digits) digits for the \(name), found \(Byte.describe(peek()))")
            }
            value = value * 10 + Int(byte - 0x30)
            pos += 1
        }
        guard range.contains(value) else {
            let low = String(range.lowerBound), high = String(range.upperBound)
            let padded = String(repeating: "0", count: max(0, digits - low.count)) + low
            throw error("\(name) must be between \(padded) and \(high)", at: start)
        }
        return value
    }

    mutating func expectSeparator(_ separator: UInt8, after name: String) throws(TOMLError) {
        guard peek() == separator else {
            throw error("expected \(Byte.describe(separator)) after the \(name), found \(Byte.describe(peek()))")
        }
        pos += 1
    }
}
