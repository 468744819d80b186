import Testing

@testable import Daemon

// MARK: - Helpers

/// Follows a path of keys through nested tables.
private func node(_ table: TOMLTable, _ path: String...) -> TOMLNode? {
    lookup(table, path)
}

private func value(_ table: TOMLTable, _ path: String...) -> TOMLValue? {
    lookup(table, path)?.value
}

private func lookup(_ table: TOMLTable, _ path: [String]) -> TOMLNode? {
    guard let first = path.first, let found = table[first] else { return nil }
    if path.count == 1 { return found }
    guard case .table(let next) = found.value else { return nil }
    return lookup(next, Array(path.dropFirst()))
}

private func string(_ text: String) throws -> TOMLValue? {
    try value(TOML.parse("s = \(text)"), "s")
}

/// Asserts that parsing `text` fails with exactly this line, column and message.
private func expectError(
    _ text: String, line: Int, column: Int, _ message: String,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(throws: TOMLError(line: line, column: column, message: message), sourceLocation: sourceLocation) {
        try TOML.parse(text)
    }
}

// MARK: - Documents

@Test("a realistic daemon config parses into tables, values and source lines")
func realisticConfig() throws {
    let doc = """
        # csmil daemon configuration
        [watch]
        directory = "/var/lib/csmil/incoming"   # scanner output
        settle_seconds = 30

        [webhook]
        url = ""
        """
    let root = try TOML.parse(doc)
    #expect(root.line == 1)
    #expect(root.keys == ["watch", "webhook"])
    #expect(node(root, "watch")?.line == 2)
    #expect(node(root, "watch", "directory") == TOMLNode(value: .string("/var/lib/csmil/incoming"), line: 3))
    #expect(node(root, "watch", "settle_seconds") == TOMLNode(value: .integer(30), line: 4))
    #expect(node(root, "webhook")?.line == 6)
    #expect(node(root, "webhook", "url") == TOMLNode(value: .string(""), line: 7))
}

@Test("an empty document or one with only comments and blank lines is an empty root table")
func emptyDocument() throws {
    #expect(try TOML.parse("") == TOMLTable(line: 1, entries: []))
    #expect(try TOML.parse("# only a comment\n\n   \t\n# another\n").entries.isEmpty)
}

@Test("every value type parses and reports its type name")
func everyValueType() throws {
    let root = try TOML.parse(
        """
        s = "text"
        i = -42
        f = 3.5
        b = true
        odt = 1979-05-27T07:32:00Z
        a = [1, 2]
        t = { x = 1 }
        """)
    #expect(value(root, "s") == .string("text"))
    #expect(value(root, "i") == .integer(-42))
    #expect(value(root, "f") == .float(3.5))
    #expect(value(root, "b") == .boolean(true))
    #expect(value(root, "odt") == .dateTime("1979-05-27T07:32:00Z"))
    #expect(value(root, "a") == .array([TOMLNode(value: .integer(1), line: 6), TOMLNode(value: .integer(2), line: 6)]))
    let names = root.entries.map(\.node.value.typeName)
    #expect(names == ["string", "integer", "float", "boolean", "date-time", "array", "table"])
}

@Test("the TOMLTable API keeps insertion order and compares order-sensitively")
func tableAPI() throws {
    let root = try TOML.parse("zeta = 1\nalpha = 2\nmid = 3")
    #expect(root.keys == ["zeta", "alpha", "mid"])
    #expect(root["alpha"] == TOMLNode(value: .integer(2), line: 2))
    #expect(root["missing"] == nil)
    #expect(try TOML.parse("a = 1\nb = 2") != TOML.parse("b = 2\na = 1"))
    #expect(try TOML.parse("a = 1\nb = 2") == TOML.parse("a = 1\nb = 2"))
}

@Test("TOMLError describes itself as 'line L, column C: message — fix'")
func errorDescription() {
    let error = TOMLError(line: 3, column: 12, message: "expected a value after '='")
    #expect(
        error.description
            == "line 3, column 12: expected a value after '=' — correct the TOML syntax (https://toml.io/en/v1.0.0)")
}

// MARK: - Keys

@Test("bare, quoted, literal and dotted keys (with whitespace around dots) are accepted")
func keys() throws {
    let root = try TOML.parse(
        """
        bare_key-1 = 1
        "quoted key" = 2
        'literal "key"' = 3
        "" = 4
        site . "google.com" . 'x' = 5
        1234 = 6
        """)
    #expect(root.keys == ["bare_key-1", "quoted key", "literal \"key\"", "", "site", "1234"])
    #expect(value(root, "site", "google.com", "x") == .integer(5))
    #expect(value(root, "") == .integer(4))
}

@Test("dotted keys create nested tables that carry the key's line")
func dottedKeyTables() throws {
    let root = try TOML.parse(
        """
        name = "x"
        physical.color = "orange"
        physical.shape = "round"
        """)
    #expect(node(root, "physical")?.line == 2)
    #expect(node(root, "physical", "shape") == TOMLNode(value: .string("round"), line: 3))
}

// MARK: - Strings

@Test("basic strings decode every escape, including \\u and \\U")
func basicStringEscapes() throws {
    #expect(try string(#""a\bb\tc\nd\fe\rf\"g\\h""#) == .string("a\u{08}b\tc\nd\u{0C}e\rf\"g\\h"))
    #expect(try string(#""\u00E9\U0001F600""#) == .string("é😀"))
    #expect(try string("\"tab\tinside\"") == .string("tab\tinside"))
}

@Test("literal strings keep backslashes verbatim")
func literalStrings() throws {
    #expect(try string(#"'C:\Users\nodejs\templates'"#) == .string(#"C:\Users\nodejs\templates"#))
    #expect(try string("''") == .string(""))
}

@Test("multi-line basic strings trim the first newline and line-ending backslashes")
func multilineBasicStrings() throws {
    #expect(try string("\"\"\"\nRoses\nViolets\"\"\"") == .string("Roses\nViolets"))
    #expect(try string("\"\"\"\nThe quick \\\n\n   brown \\   \n   fox.\"\"\"") == .string("The quick brown fox."))
    #expect(try string(#""""Here are two quotes: "". Done.""""#) == .string(#"Here are two quotes: "". Done."#))
    #expect(try string("\"\"\"ends with two quotes\"\"\"\"\"") == .string("ends with two quotes\"\""))
    #expect(try string("\"\"\"one\"\"\"\"") == .string("one\""))
}

@Test("multi-line literal strings trim the first newline and allow quotes next to the delimiter")
func multilineLiteralStrings() throws {
    #expect(try string("'''\nfirst\n  second\\n'''") == .string("first\n  second\\n"))
    #expect(try string("''''one quote''''") == .string("'one quote'"))
    #expect(try string("'''x'''''") == .string("x''"))
}

@Test("CRLF line endings are accepted and normalised to LF inside multi-line strings")
func crlf() throws {
    let root = try TOML.parse("a = 1\r\ns = \"\"\"\r\nx\r\ny\"\"\"\r\nb = 2\r\n")
    #expect(value(root, "s") == .string("x\ny"))
    #expect(node(root, "b")?.line == 5)
}

@Test("a UTF-8 byte order mark at the start is skipped")
func byteOrderMark() throws {
    let root = try TOML.parse("\u{FEFF}a = 1\nb = 2")
    #expect(root.keys == ["a", "b"])
    expectError("\u{FEFF}a = ", line: 1, column: 5, "expected a value after '='")
}

// MARK: - Numbers, booleans, dates

@Test("integers accept signs, underscores, hex/octal/binary and the full Int64 range")
func integers() throws {
    let root = try TOML.parse(
        """
        a = +99
        b = -17
        c = 0
        d = 1_000_000
        e = 0xDEAD_beef
        f = 0o755
        g = 0b1101_0110
        max = 9223372036854775807
        min = -9223372036854775808
        hexmax = 0x7fffffffffffffff
        """)
    #expect(value(root, "a") == .integer(99))
    #expect(value(root, "b") == .integer(-17))
    #expect(value(root, "c") == .integer(0))
    #expect(value(root, "d") == .integer(1_000_000))
    #expect(value(root, "e") == .integer(0xDEAD_BEEF))
    #expect(value(root, "f") == .integer(0o755))
    #expect(value(root, "g") == .integer(0b1101_0110))
    #expect(value(root, "max") == .integer(.max))
    #expect(value(root, "min") == .integer(.min))
    #expect(value(root, "hexmax") == .integer(.max))
}

@Test("floats accept fractions, exponents, underscores, inf and nan")
func floats() throws {
    let root = try TOML.parse(
        """
        a = +1.0
        b = -0.01
        c = 5e+22
        d = 1E06
        e = -2E-2
        f = 6.626e-34
        g = 224_617.445_991
        h = inf
        i = -inf
        j = +nan
        """)
    #expect(value(root, "a") == .float(1.0))
    #expect(value(root, "b") == .float(-0.01))
    #expect(value(root, "c") == .float(5e22))
    #expect(value(root, "d") == .float(1e6))
    #expect(value(root, "e") == .float(-0.02))
    #expect(value(root, "f") == .float(6.626e-34))
    #expect(value(root, "g") == .float(224_617.445_991))
    #expect(value(root, "h") == .float(.infinity))
    #expect(value(root, "i") == .float(-.infinity))
    guard case .float(let nan) = value(root, "j") else {
        Issue.record("nan did not parse as a float")
        return
    }
    #expect(nan.isNaN)
}

@Test("booleans are lowercase true and false only")
func booleans() throws {
    let root = try TOML.parse("on = true\noff = false")
    #expect(value(root, "on") == .boolean(true))
    #expect(value(root, "off") == .boolean(false))
    expectError("flag = True", line: 1, column: 8, "expected a value, found 'True' (strings must be quoted)")
}

@Test("offset and local date-times, local dates and local times are kept as source text")
func dateTimes() throws {
    let root = try TOML.parse(
        """
        odt1 = 1979-05-27T07:32:00Z
        odt2 = 1979-05-27T00:32:00.999999-07:00
        odt3 = 1979-05-27 07:32:00+05:30
        ldt = 1979-05-27t07:32:00
        ld = 2000-02-29
        lt = 00:32:00.5
        """)
    #expect(value(root, "odt1") == .dateTime("1979-05-27T07:32:00Z"))
    #expect(value(root, "odt2") == .dateTime("1979-05-27T00:32:00.999999-07:00"))
    #expect(value(root, "odt3") == .dateTime("1979-05-27 07:32:00+05:30"))
    #expect(value(root, "ldt") == .dateTime("1979-05-27t07:32:00"))
    #expect(value(root, "ld") == .dateTime("2000-02-29"))
    #expect(value(root, "lt") == .dateTime("00:32:00.5"))
}

@Test("a local date followed by a comment is not mistaken for a date-time")
func dateThenComment() throws {
    let root = try TOML.parse("d = 2024-01-31 # end of month")
    #expect(value(root, "d") == .dateTime("2024-01-31"))
}

// MARK: - Arrays and inline tables

@Test("arrays allow mixed types, nesting, trailing commas, newlines and comments; elements keep their lines")
func arrays() throws {
    let root = try TOML.parse(
        """
        mixed = [ 1, "two", 3.0, [4], { five = 5 } ]
        empty = []
        multi = [
            "a", # first
            # a comment line
            "b",
        ]
        """)
    guard case .array(let mixed) = value(root, "mixed"), case .array(let multi) = value(root, "multi") else {
        Issue.record("arrays did not parse")
        return
    }
    #expect(mixed.map(\.value.typeName) == ["integer", "string", "float", "array", "table"])
    #expect(value(root, "empty") == .array([]))
    #expect(multi == [TOMLNode(value: .string("a"), line: 4), TOMLNode(value: .string("b"), line: 6)])
}

@Test("inline tables hold nested and dotted keys")
func inlineTables() throws {
    let root = try TOML.parse(
        """
        name = { first = "Tom", last = "Preston-Werner" }
        animal = { type.name = "pug", type.size = "small" }
        empty = {}
        nested = { inner = { x = [1, 2] } }
        """)
    #expect(value(root, "name", "last") == .string("Preston-Werner"))
    #expect(value(root, "animal", "type", "size") == .string("small"))
    #expect(value(root, "empty") == .table(TOMLTable(line: 3, entries: [])))
    #expect(value(root, "nested", "inner", "x")?.typeName == "array")
}

// MARK: - Tables

@Test("table headers nest; implicit parents carry the line where they were first implied")
func nestedTablesAndLines() throws {
    let root = try TOML.parse(
        """
        title = "t"

        [servers.alpha]
        ip = "10.0.0.1"

        [servers.beta]
        ip = "10.0.0.2"

        [ dog . "tater.man" ]
        type = "pug"
        """)
    #expect(node(root, "servers")?.line == 3)
    #expect(node(root, "servers", "alpha")?.line == 3)
    #expect(node(root, "servers", "beta")?.line == 6)
    #expect(node(root, "servers", "beta", "ip")?.line == 7)
    #expect(value(root, "dog", "tater.man", "type") == .string("pug"))
    guard case .table(let servers) = value(root, "servers") else {
        Issue.record("servers is not a table")
        return
    }
    #expect(servers.line == 3)
    #expect(servers.keys == ["alpha", "beta"])
}

@Test("a super-table may be defined after its sub-table and then takes its header's line")
func superTableAfterSubTable() throws {
    let root = try TOML.parse("[x.y.z]\na = 1\n[x]\nb = 2")
    #expect(node(root, "x")?.line == 3)
    #expect(node(root, "x", "y")?.line == 1)
    #expect(value(root, "x", "b") == .integer(2))
}

@Test("sub-tables may be added under tables created by dotted keys")
func subTableOfDottedTable() throws {
    let root = try TOML.parse(
        """
        [fruit]
        apple.color = "red"
        apple.taste.sweet = true
        [fruit.apple.texture]
        smooth = true
        """)
    #expect(value(root, "fruit", "apple", "taste", "sweet") == .boolean(true))
    #expect(node(root, "fruit", "apple", "texture")?.line == 4)
}

@Test("arrays of tables produce an array of table nodes, each with its header's line")
func arraysOfTables() throws {
    let root = try TOML.parse(
        """
        [[products]]
        name = "Hammer"

        [[products]]

        [[products]]
        name = "Nail"
        [products.size]
        mm = 3
        [[products.tags]]
        t = "a"
        """)
    guard case .array(let products) = value(root, "products") else {
        Issue.record("products is not an array")
        return
    }
    #expect(node(root, "products")?.line == 1)
    #expect(products.map(\.line) == [1, 4, 6])
    #expect(products[1].value == .table(TOMLTable(line: 4, entries: [])))
    guard case .table(let nail) = products[2].value else {
        Issue.record("element is not a table")
        return
    }
    #expect(nail["name"] == TOMLNode(value: .string("Nail"), line: 7))
    #expect(value(nail, "size", "mm") == .integer(3))
    #expect(nail["tags"]?.value.typeName == "array")
}

// MARK: - Errors: structure and redefinition

/// Documents whose structure is wrong: missing values, duplicate keys and tables, tables extended the wrong
/// way, malformed headers, statements that do not end at their line.
let structureErrors: [ParseError] = [
    ParseError(
        text: "name = \"x\"\nport = 8080\nretries = \n", line: 3, column: 11, message: "expected a value after '='"),
    ParseError(text: "k =", line: 1, column: 4, message: "expected a value after '='"),
    ParseError(
        text: "[watch]\ndirectory = \"/a\"\nsettle_seconds = 30\n\n\n\ndirectory = \"/b\"", line: 7, column: 1,
        message: "duplicate key 'directory' (first defined on line 2)"),
    ParseError(text: "a.b = 1\na.b = 2", line: 2, column: 1, message: "duplicate key 'a.b' (first defined on line 1)"),
    ParseError(
        text: "t = { x = 1, x = 2 }", line: 1, column: 14, message: "duplicate key 'x' (first defined on line 1)"),
    ParseError(
        text: "[a]\nx = 1\n[b]\n[a]\n", line: 4, column: 1, message: "duplicate table [a] (first defined on line 1)"),
    ParseError(text: "[a.b]\n[a]\n[a]", line: 3, column: 1, message: "duplicate table [a] (first defined on line 2)"),
    ParseError(
        text: "[fruit]\napple.color = \"red\"\n[fruit.apple]\n", line: 3, column: 1,
        message: "table [fruit.apple] was already defined by dotted keys on line 2"),
    ParseError(
        text: "[a.b]\nx = 1\n[a]\nb.y = 2\n", line: 4, column: 1,
        message: "cannot add keys to table 'b' (defined on line 1) with dotted keys outside its own section"),
    ParseError(
        text: "[product]\ntype.name = \"x\"\n[other]\n[product.type.more]\n[product]", line: 5, column: 1,
        message: "duplicate table [product] (first defined on line 1)"),
    ParseError(
        text: "point = { x = 1 }\npoint.y = 2\n", line: 2, column: 1,
        message: "cannot extend inline table 'point' (defined on line 1)"),
    ParseError(
        text: "point = { x = 1 }\n[point]\n", line: 2, column: 1,
        message: "cannot redefine inline table 'point' (defined on line 1)"),
    ParseError(
        text: "point = { x = 1 }\n[point.z]\n", line: 2, column: 1,
        message: "cannot extend inline table 'point' (defined on line 1)"),
    ParseError(
        text: "hosts = [\"a\"]\n[[hosts]]\n", line: 2, column: 1,
        message: "cannot append to static array 'hosts' (defined on line 1) with [[hosts]]"),
    ParseError(
        text: "[[jobs]]\n[jobs]\n", line: 2, column: 1,
        message: "cannot define [jobs]: 'jobs' is already an array of tables (line 1)"),
    ParseError(
        text: "[job]\n[[job]]\n", line: 2, column: 1,
        message: "cannot define [[job]]: 'job' is already a table (line 1)"),
    ParseError(text: "x = 1\n[x]", line: 2, column: 1, message: "key 'x' is an integer (line 1), not a table"),
    ParseError(text: "a = [1]\n[a.b]", line: 2, column: 1, message: "key 'a' is an array (line 1), not a table"),
    ParseError(text: "[a\n", line: 1, column: 3, message: "expected ']' to close the table header"),
    ParseError(text: "[[a]\n", line: 1, column: 4, message: "expected ']]' to close the array-of-tables header"),
    ParseError(text: "[]", line: 1, column: 2, message: "expected a key, found ']'"),
    ParseError(text: "a = 1 b = 2", line: 1, column: 7, message: "expected a newline after the value, found 'b'"),
    ParseError(text: "key value", line: 1, column: 5, message: "expected '=' after key 'key', found 'v'"),
    ParseError(text: "\"\"\"k\"\"\" = 1", line: 1, column: 1, message: "a multi-line string cannot be used as a key"),
]

@Test("a structural error names the line, the column and what is wrong", arguments: structureErrors)
func badStructure(_ error: ParseError) {
    expectError(error.text, line: error.line, column: error.column, error.message)
}

// MARK: - Errors: values

/// A document that does not parse, and the error it must give.
struct ParseError: Sendable, CustomTestStringConvertible {
    var text: String
    var line: Int
    var column: Int
    var message: String
    var testDescription: String { message }
}

/// Bad values of every kind: escapes, control characters, unterminated strings and arrays, integers, floats,
/// dates and times, inline tables, and columns counted in Unicode scalars.
let valueErrors: [ParseError] = [
    ParseError(text: #"s = "bad \q escape""#, line: 1, column: 10, message: #"invalid escape sequence '\q'"#),
    ParseError(text: #"s = "\uD800""#, line: 1, column: 6, message: #"'\uD800' is not a valid Unicode scalar value"#),
    ParseError(
        text: #"s = "\U00110000""#, line: 1, column: 6, message: #"'\U00110000' is not a valid Unicode scalar value"#),
    ParseError(text: #"s = "\u12""#, line: 1, column: 6, message: #"expected 4 hexadecimal digits after '\u'"#),
    ParseError(text: "s = \"\"\"a \\ b\"\"\"", line: 1, column: 10, message: #"invalid escape sequence '\'"#),
    ParseError(
        text: "s = \"tab\tok bell\u{07}\"", line: 1, column: 17,
        message: "control character U+0007 must be escaped in a string"),
    ParseError(
        text: "s = 'del\u{7F}'", line: 1, column: 9, message: "control character U+007F must be escaped in a string"),
    ParseError(
        text: "a = 1 # bell\u{07}", line: 1, column: 13, message: "control character U+0007 is not allowed in a comment"
    ),
    ParseError(text: "a = 1\rb = 2", line: 1, column: 6, message: "a carriage return must be followed by a line feed"),
    ParseError(
        text: "s = \"open\nx = 1", line: 1, column: 10,
        message: "expected '\"' to close the string before the end of the line"),
    ParseError(text: "s = '''never closed\n", line: 2, column: 1, message: "expected \"'''\" to close the string"),
    ParseError(
        text: "a = [1, 2\n", line: 2, column: 1,
        message: "expected ',' or ']' after an array element, found end of input"),
    ParseError(text: "a = [1 2]", line: 1, column: 8, message: "expected ',' or ']' after an array element, found '2'"),
    ParseError(
        text: "big = 9223372036854775808", line: 1, column: 7,
        message: "integer '9223372036854775808' does not fit in 64 bits"),
    ParseError(
        text: "h = 0x8000000000000000", line: 1, column: 5,
        message: "integer '0x8000000000000000' does not fit in 64 bits"),
    ParseError(text: "n = 012", line: 1, column: 5, message: "leading zeros are not allowed in '012'"),
    ParseError(text: "n = 1__000", line: 1, column: 6, message: "an underscore in a number must be between two digits"),
    ParseError(text: "n = 1_", line: 1, column: 6, message: "an underscore in a number must be between two digits"),
    ParseError(
        text: "n = -0x1F", line: 1, column: 5, message: "a sign is not allowed on hexadecimal, octal or binary integers"
    ),
    ParseError(text: "n = 0b102", line: 1, column: 9, message: "unexpected '2' in number"),
    ParseError(text: "f = 1.", line: 1, column: 7, message: "expected a digit after the decimal point"),
    ParseError(text: "f = .5", line: 1, column: 5, message: "expected a value, found '.'"),
    ParseError(text: "f = 1e", line: 1, column: 7, message: "expected a digit in the exponent"),
    ParseError(text: "f = 1.5.2", line: 1, column: 8, message: "unexpected '.' in number"),
    ParseError(text: "d = 2024-13-01", line: 1, column: 10, message: "month must be between 01 and 12"),
    ParseError(text: "d = 2023-02-29", line: 1, column: 13, message: "day must be between 01 and 28 for month 2"),
    ParseError(text: "d = 2024-04-31", line: 1, column: 13, message: "day must be between 01 and 30 for month 4"),
    ParseError(text: "t = 24:00:00", line: 1, column: 5, message: "hour must be between 00 and 23"),
    ParseError(text: "t = 12:60:00", line: 1, column: 8, message: "minute must be between 00 and 59"),
    ParseError(text: "t = 07:32", line: 1, column: 10, message: "expected ':' after the minute, found end of input"),
    ParseError(
        text: "d = 1979-05-27T07:32:00+25:00", line: 1, column: 25, message: "offset hour must be between 00 and 23"),
    ParseError(
        text: "d = 1979-05-27T", line: 1, column: 16, message: "expected 2 digits for the hour, found end of input"),
    ParseError(
        text: "p = { a = 1,\n b = 2 }", line: 1, column: 13, message: "newlines are not allowed in an inline table"),
    ParseError(
        text: "p = { a = 1, }", line: 1, column: 14, message: "trailing comma is not allowed in an inline table"),
    ParseError(
        text: "p = { a = 1 b = 2 }", line: 1, column: 13, message: "expected ',' or '}' in inline table, found 'b'"),
    ParseError(text: "name = \"é😀\" x", line: 1, column: 13, message: "expected a newline after the value, found 'x'"),
]

@Test(
    "a bad value is reported with its line, its column (in Unicode scalars) and what was expected",
    arguments: valueErrors)
func badValue(_ error: ParseError) {
    expectError(error.text, line: error.line, column: error.column, error.message)
}

@Test("deeply nested arrays are rejected instead of exhausting the stack")
func nestingLimit() {
    let deep = "a = " + String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
    #expect(throws: TOMLError.self) { try TOML.parse(deep) }
    let fine = "a = " + String(repeating: "[", count: 50) + String(repeating: "]", count: 50)
    #expect(throws: Never.self) { try TOML.parse(fine) }
}
