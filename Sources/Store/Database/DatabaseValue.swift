import Foundation

/// A value bound to a statement parameter or read from a column, in either backend: SQLite's five storage classes,
/// which PostgreSQL's `bigint`, `double precision`, `text` and `bytea` columns hold too.
public enum DatabaseValue: Sendable, Equatable, Hashable {
    /// A 64-bit signed integer.
    case integer(Int64)
    /// An IEEE double.
    case real(Double)
    /// UTF-8 text.
    case text(String)
    /// Bytes, stored exactly.
    case blob([UInt8])
    /// SQL NULL.
    case null

    /// An integer value.
    public static func int(_ value: Int) -> DatabaseValue { .integer(Int64(value)) }

    /// Bytes from `Data`.
    public static func data(_ value: Data) -> DatabaseValue { .blob([UInt8](value)) }

    /// The wrapped value, or `.null` when nil: `.optional(row.lastError.map { .text($0) })`.
    public static func optional(_ value: DatabaseValue?) -> DatabaseValue { value ?? .null }
}

extension DatabaseValue: ExpressibleByIntegerLiteral {
    public init(integerLiteral value: Int64) { self = .integer(value) }
}

extension DatabaseValue: ExpressibleByFloatLiteral {
    public init(floatLiteral value: Double) { self = .real(value) }
}

extension DatabaseValue: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self = .text(value) }
}

extension DatabaseValue: ExpressibleByNilLiteral {
    public init(nilLiteral: ()) { self = .null }
}
