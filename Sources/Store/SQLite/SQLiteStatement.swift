import CSQLite
import Foundation

/// A prepared statement (`sqlite3_stmt`), owned here: `deinit` finalises it. Bind parameters (1-based, as in
/// SQLite), ``step()`` through the rows and read columns (0-based) with the typed accessors. A statement belongs to
/// the ``SQLiteDatabase`` that prepared it and is used on the same thread.
///
/// Parameters numbered `$1 … $n` in the SQL (PostgreSQL's form, which the store's shared SQL uses) are read as
/// `?1 … ?n`.
public final class SQLiteStatement: DatabaseRow {
    /// The SQL text it was prepared from.
    public let sql: String
    let handle: OpaquePointer
    private let database: SQLiteDatabase

    init(database: SQLiteDatabase, sql: String) throws(SQLiteError) {
        self.database = database
        self.sql = sql
        var statement: OpaquePointer?
        let result = sqlite3_prepare_v2(database.handle, Self.numberedParameters(sql), -1, &statement, nil)
        guard result == SQLITE_OK, let statement else {
            throw SQLiteError.sqlite(
                result, "prepare \"\(Self.abbreviated(sql))\"", path: database.path, handle: database.handle)
        }
        handle = statement
    }

    deinit { sqlite3_finalize(handle) }

    /// Binds `values` to parameters 1… in order (`sqlite3_bind_*`), after clearing earlier bindings.
    public func bind(_ values: [DatabaseValue]) throws(SQLiteError) {
        sqlite3_clear_bindings(handle)
        for (offset, value) in values.enumerated() {
            try bind(value, at: Int32(offset + 1))
        }
    }

    /// Binds one value to the 1-based parameter `index`.
    public func bind(_ value: DatabaseValue, at index: Int32) throws(SQLiteError) {
        let result: Int32
        switch value {
        case .integer(let number):
            result = sqlite3_bind_int64(handle, index, number)
        case .real(let number):
            result = sqlite3_bind_double(handle, index, number)
        case .text(let text):
            var text = text
            result = text.withUTF8 { bytes -> Int32 in
                guard let base = bytes.baseAddress, !bytes.isEmpty else {
                    return csmil_sqlite3_bind_text(handle, index, "", 0)
                }
                return base.withMemoryRebound(to: CChar.self, capacity: bytes.count) {
                    csmil_sqlite3_bind_text(handle, index, $0, Int32(bytes.count))
                }
            }
        case .blob(let bytes):
            if bytes.isEmpty {
                // A NULL pointer would bind NULL, not an empty blob.
                result = sqlite3_bind_zeroblob(handle, index, 0)
            } else {
                result = bytes.withUnsafeBytes {
                    csmil_sqlite3_bind_blob(handle, index, $0.baseAddress, Int32($0.count))
                }
            }
        case .null:
            result = sqlite3_bind_null(handle, index)
        }
        guard result == SQLITE_OK else { throw failure(result, "bind parameter \(index) of") }
    }

    /// Advances to the next row (`sqlite3_step`): true when a row is available, false when the statement is done.
    @discardableResult
    public func step() throws(SQLiteError) -> Bool {
        let result = sqlite3_step(handle)
        switch result {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default:
            sqlite3_reset(handle)
            throw failure(result, "run")
        }
    }

    /// Makes the statement ready to run again with new bindings (`sqlite3_reset`).
    public func reset() {
        sqlite3_reset(handle)
    }

    /// The number of columns in a result row.
    public var columnCount: Int { Int(sqlite3_column_count(handle)) }

    /// The name of a result column.
    public func columnName(_ index: Int) -> String {
        sqlite3_column_name(handle, Int32(index)).map { String(cString: $0) } ?? ""
    }

    /// Whether the column of the current row is NULL.
    public func isNull(_ index: Int) -> Bool { sqlite3_column_type(handle, Int32(index)) == SQLITE_NULL }

    /// The column as an integer (`sqlite3_column_int64`); NULL reads as 0.
    public func int64(_ index: Int) -> Int64 { sqlite3_column_int64(handle, Int32(index)) }

    /// The column as a double (`sqlite3_column_double`); NULL reads as 0.
    public func double(_ index: Int) -> Double { sqlite3_column_double(handle, Int32(index)) }

    /// The column as text (`sqlite3_column_text`); NULL reads as "".
    public func string(_ index: Int) -> String {
        guard let text = sqlite3_column_text(handle, Int32(index)) else { return "" }
        let count = Int(sqlite3_column_bytes(handle, Int32(index)))
        return String(decoding: UnsafeBufferPointer(start: text, count: count), as: UTF8.self)
    }

    /// The column's bytes exactly (`sqlite3_column_blob`); NULL and an empty blob read as [].
    public func blob(_ index: Int) -> [UInt8] {
        guard let bytes = sqlite3_column_blob(handle, Int32(index)) else { return [] }
        let count = Int(sqlite3_column_bytes(handle, Int32(index)))
        return [UInt8](UnsafeRawBufferPointer(start: bytes, count: count))
    }

    /// The column as whichever storage class it holds.
    public func value(_ index: Int) -> DatabaseValue {
        switch sqlite3_column_type(handle, Int32(index)) {
        case SQLITE_INTEGER: return .integer(int64(index))
        case SQLITE_FLOAT: return .real(double(index))
        case SQLITE_TEXT: return .text(string(index))
        case SQLITE_BLOB: return .blob(blob(index))
        default: return .null
        }
    }

    private func failure(_ result: Int32, _ operation: String) -> SQLiteError {
        SQLiteError.sqlite(
            result, "\(operation) \"\(Self.abbreviated(sql))\"", path: database.path, handle: database.handle)
    }

    /// `sql` with each `$N` outside quotes turned into `?N`: SQLite would read `$1` as a parameter *named* "$1",
    /// numbered by first appearance, not as parameter 1.
    static func numberedParameters(_ sql: String) -> String {
        guard sql.contains("$") else { return sql }
        let characters = Array(sql)
        var output = ""
        output.reserveCapacity(characters.count)
        var quote: Character?
        for (index, character) in characters.enumerated() {
            if let open = quote {
                if character == open { quote = nil }
            } else if character == "'" || character == "\"" {
                quote = character
            } else if character == "$", index + 1 < characters.count, characters[index + 1].isASCII,
                characters[index + 1].isNumber
            {
                output.append("?")
                continue
            }
            output.append(character)
        }
        return output
    }

    static func abbreviated(_ sql: String) -> String {
        let flat = sql.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        return flat.count > 80 ? String(flat.prefix(77)) + "…" : flat
    }
}
