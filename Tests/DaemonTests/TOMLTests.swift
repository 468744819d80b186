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

@Test("a missing value after '=' reports the position after the '='")
func missingValue() {
    expectError("name = \"x\"\nport = 8080\nretries = \n", line: 3, column: 11, "expected a value after '='")
    expectError("k =", line: 1, column: 4, "expected a value after '='")
}

@Test("a duplicate key names the key and the line it was first defined on")
func duplicateKey() {
    let doc = """
        [watch]
        directory = "/a"
        settle_seconds = 30



        directory = "/b"
        """
    expectError(doc, line: 7, column: 1, "duplicate key 'directory' (first defined on line 2)")
    expectError("a.b = 1\na.b = 2", line: 2, column: 1, "duplicate key 'a.b' (first defined on line 1)")
    expectError("t = { x = 1, x = 2 }", line: 1, column: 14, "duplicate key 'x' (first defined on line 1)")
}

@Test("defining the same table twice is an error")
func duplicateTable() {
    expectError("[a]\nx = 1\n[b]\n[a]\n", line: 4, column: 1, "duplicate table [a] (first defined on line 1)")
    expectError("[a.b]\n[a]\n[a]", line: 3, column: 1, "duplicate table [a] (first defined on line 2)")
}

@Test("a header cannot define a table already created by dotted keys")
func headerAfterDottedKeys() {
    expectError(
        "[fruit]\napple.color = \"red\"\n[fruit.apple]\n", line: 3, column: 1,
        "table [fruit.apple] was already defined by dotted keys on line 2")
}

@Test("dotted keys cannot extend a table defined by a header in another block")
func dottedKeysIntoOtherBlock() {
    expectError(
        "[a.b]\nx = 1\n[a]\nb.y = 2\n", line: 4, column: 1,
        "cannot add keys to table 'b' (defined on line 1) with dotted keys outside its own section")
    expectError(
        "[product]\ntype.name = \"x\"\n[other]\n[product.type.more]\n[product]", line: 5, column: 1,
        "duplicate table [product] (first defined on line 1)")
}

@Test("inline tables cannot be extended by dotted keys or headers")
func inlineTablesAreImmutable() {
    expectError(
        "point = { x = 1 }\npoint.y = 2\n", line: 2, column: 1,
        "cannot extend inline table 'point' (defined on line 1)")
    expectError(
        "point = { x = 1 }\n[point]\n", line: 2, column: 1,
        "cannot redefine inline table 'point' (defined on line 1)")
    expectError(
        "point = { x = 1 }\n[point.z]\n", line: 2, column: 1,
        "cannot extend inline table 'point' (defined on line 1)")
}

@Test("a static array cannot be appended to with [[…]]")
func staticArrayIsNotAnArrayOfTables() {
    expectError(
        "hosts = [\"a\"]\n[[hosts]]\n", line: 2, column: 1,
        "cannot append to static array 'hosts' (defined on line 1) with [[hosts]]")
}

@Test("tables and arrays of tables cannot be confused")
func tableVersusArrayOfTables() {
    expectError(
        "[[jobs]]\n[jobs]\n", line: 2, column: 1,
        "cannot define [jobs]: 'jobs' is already an array of tables (line 1)")
    expectError("[job]\n[[job]]\n", line: 2, column: 1, "cannot define [[job]]: 'job' is already a table (line 1)")
}

@Test("a header cannot pass through a key that holds a plain value")
func headerThroughValue() {
    expectError("x = 1\n[x]", line: 2, column: 1, "key 'x' is an integer (line 1), not a table")
    expectError("a = [1]\n[a.b]", line: 2, column: 1, "key 'a' is an array (line 1), not a table")
}

@Test("malformed headers say which bracket was expected")
func malformedHeaders() {
    expectError("[a\n", line: 1, column: 3, "expected ']' to close the table header")
    expectError("[[a]\n", line: 1, column: 4, "expected ']]' to close the array-of-tables header")
    expectError("[]", line: 1, column: 2, "expected a key, found ']'")
}

@Test("a statement must end at the end of its line")
func trailingGarbage() {
    expectError("a = 1 b = 2", line: 1, column: 7, "expected a newline after the value, found 'b'")
    expectError("key value", line: 1, column: 5, "expected '=' after key 'key', found 'v'")
}

@Test("multi-line strings cannot be keys")
func multilineKey() {
    expectError("\"\"\"k\"\"\" = 1", line: 1, column: 1, "a multi-line string cannot be used as a key")
}

// MARK: - Errors: values

@Test("invalid escapes and escapes of non-scalar code points are rejected")
func badEscapes() {
    expectError(#"s = "bad \q escape""#, line: 1, column: 10, #"invalid escape sequence '\q'"#)
    expectError(#"s = "\uD800""#, line: 1, column: 6, #"'\uD800' is not a valid Unicode scalar value"#)
    expectError(#"s = "\U00110000""#, line: 1, column: 6, #"'\U00110000' is not a valid Unicode scalar value"#)
    expectError(#"s = "\u12""#, line: 1, column: 6, #"expected 4 hexadecimal digits after '\u'"#)
    expectError("s = \"\"\"a \\ b\"\"\"", line: 1, column: 10, #"invalid escape sequence '\'"#)
}

@Test("control characters other than tab are rejected in strings and comments")
func controlCharacters() {
    expectError(
        "s = \"tab\tok bell\u{07}\"", line: 1, column: 17,
        "control character U+0007 must be escaped in a string")
    expectError("s = 'del\u{7F}'", line: 1, column: 9, "control character U+007F must be escaped in a string")
    expectError("a = 1 # bell\u{07}", line: 1, column: 13, "control character U+0007 is not allowed in a comment")
    expectError("a = 1\rb = 2", line: 1, column: 6, "a carriage return must be followed by a line feed")
}

@Test("unterminated strings and arrays are reported")
func unterminated() {
    expectError(
        "s = \"open\nx = 1", line: 1, column: 10,
        "expected '\"' to close the string before the end of the line")
    expectError("s = '''never closed\n", line: 2, column: 1, "expected \"'''\" to close the string")
    expectError("a = [1, 2\n", line: 2, column: 1, "expected ',' or ']' after an array element, found end of input")
    expectError("a = [1 2]", line: 1, column: 8, "expected ',' or ']' after an array element, found '2'")
}

@Test("integers reject overflow, leading zeros, stray underscores and signed prefixes")
func badIntegers() {
    expectError(
        "big = 9223372036854775808", line: 1, column: 7,
        "integer '9223372036854775808' does not fit in 64 bits")
    expectError("h = 0x8000000000000000", line: 1, column: 5, "integer '0x8000000000000000' does not fit in 64 bits")
    expectError("n = 012", line: 1, column: 5, "leading zeros are not allowed in '012'")
    expectError("n = 1__000", line: 1, column: 6, "an underscore in a number must be between two digits")
    expectError("n = 1_", line: 1, column: 6, "an underscore in a number must be between two digits")
    expectError("n = -0x1F", line: 1, column: 5, "a sign is not allowed on hexadecimal, octal or binary integers")
    expectError("n = 0b102", line: 1, column: 9, "unexpected '2' in number")
}

@Test("floats need digits on both sides of the point and in the exponent")
func badFloats() {
    expectError("f = 1.", line: 1, column: 7, "expected a digit after the decimal point")
    expectError("f = .5", line: 1, column: 5, "expected a value, found '.'")
    expectError("f = 1e", line: 1, column: 7, "expected a digit in the exponent")
    expectError("f = 1.5.2", line: 1, column: 8, "unexpected '.' in number")
}

@Test("dates and times are validated for shape and range")
func badDateTimes() {
    expectError("d = 2024-13-01", line: 1, column: 10, "month must be between 01 and 12")
    expectError("d = 2023-02-29", line: 1, column: 13, "day must be between 01 and 28 for month 2")
    expectError("d = 2024-04-31", line: 1, column: 13, "day must be between 01 and 30 for month 4")
    expectError("t = 24:00:00", line: 1, column: 5, "hour must be between 00 and 23")
    expectError("t = 12:60:00", line: 1, column: 8, "minute must be between 00 and 59")
    expectError("t = 07:32", line: 1, column: 10, "expected ':' after the minute, found end of input")
    expectError("d = 1979-05-27T07:32:00+25:00", line: 1, column: 25, "offset hour must be between 00 and 23")
    expectError("d = 1979-05-27T", line: 1, column: 16, "expected 2 digits for the hour, found end of input")
}

@Test("inline tables must stay on one line and have no trailing comma")
func badInlineTables() {
    expectError("p = { a = 1,\n b = 2 }", line: 1, column: 13, "newlines are not allowed in an inline table")
    expectError("p = { a = 1, }", line: 1, column: 14, "trailing comma is not allowed in an inline table")
    expectError("p = { a = 1 b = 2 }", line: 1, column: 13, "expected ',' or '}' in inline table, found 'b'")
}

@Test("error columns count Unicode scalars, not bytes")
func columnsCountCharacters() {
    expectError("name = \"é😀\" x", line: 1, column: 13, "expected a newline after the value, found 'x'")
}

@Test("deeply nested arrays are rejected instead of exhausting the stack")
func nestingLimit() {
    let deep = "a = " + String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
    #expect(throws: TOMLError.self) { try TOML.parse(deep) }
    let fine = "a = " + String(repeating: "[", count: 50) + String(repeating: "]", count: 50)
    #expect(throws: Never.self) { try TOML.parse(fine) }
}
