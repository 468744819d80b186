import CLibPQ
import Foundation

/// One connection to a PostgreSQL server (libpq's `PGconn`), owned here: `deinit` closes it (`PQfinish`).
///
/// Statements go through `PQexecParams` (an unnamed statement parsed, bound and run in one round trip, no
/// server-side prepared statements and no session state), so the connection works through PgBouncer in transaction
/// mode. Parameters are sent typed (`int8`, `float8`, `text`, binary `bytea`), results read as text. A connection
/// that was lost is opened again (`PQreset`) before the next statement outside a transaction; a statement inside
/// a transaction fails with ``PostgresError/Code/unreachable`` and the transaction is gone (the server rolled it
/// back). Used from one thread at a time, like every libpq connection; its calls block, so callers run it on
/// threads of their own.
public final class PostgresConnection: StoreDatabase {
    /// The server, as configured.
    public let url: PostgresURL
    public var dialect: SQLDialect { .postgresql }
    public var location: String { url.redacted }

    /// Whether a transaction is open (`PQtransactionStatus`: in one, or in a failed one not yet rolled back).
    public var isInTransaction: Bool {
        guard let handle else { return false }
        let status = PQtransactionStatus(handle)
        return status == PQTRANS_INTRANS || status == PQTRANS_INERROR || status == PQTRANS_ACTIVE
    }

    private let password: String?
    private let applicationName: String
    private let connectTimeout: Int
    private var handle: OpaquePointer?
    private var savepoints = 0

    /// Connects.
    ///
    /// - Parameters:
    ///   - password: the password (from `[state] database_password_file`); nil to let libpq look elsewhere
    ///     (`~/.pgpass`, a trusted local socket).
    ///   - applicationName: what `pg_stat_activity` shows for this connection.
    ///   - connectTimeout: seconds to wait for the server, unless the URL says otherwise.
    /// - Throws: ``PostgresError``: `postgres.unreachable`, `postgres.authentication`, `postgres.tls`.
    public init(
        url: PostgresURL, password: String?, applicationName: String = "csmil", connectTimeout: Int = 10
    ) throws(PostgresError) {
        self.url = url
        self.password = password
        self.applicationName = applicationName
        self.connectTimeout = connectTimeout
        try connect()
    }

    deinit { PQfinish(handle) }

    /// Opens the connection (`PQconnectdbParams`). Settings before the URL are defaults the URL may override; the
    /// password comes last and is never part of the URL.
    private func connect() throws(PostgresError) {
        var parameters: [(String, String)] = [
            ("connect_timeout", "\(connectTimeout)"), ("application_name", applicationName),
            ("client_encoding", "UTF8"), ("keepalives", "1"), ("keepalives_idle", "30"),
            ("keepalives_interval", "10"), ("keepalives_count", "3"), ("dbname", url.text),
        ]
        if let password { parameters.append(("password", password)) }
        let connection = Self.withCStrings(parameters.map(\.0)) { keywords in
            Self.withCStrings(parameters.map(\.1)) { values in PQconnectdbParams(keywords, values, 1) }
        }
        guard let connection, PQstatus(connection) == CONNECTION_OK else {
            let message = connection.map { Self.message(PQerrorMessage($0)) } ?? "out of memory"
            PQfinish(connection)
            throw PostgresError.classify(
                sqlState: nil, message: message, operation: "connect", url: url.redacted, connectionLost: true)
        }
        // NOTICEs (e.g. "relation already exists, skipping") would go to stderr.
        PQsetNoticeProcessor(connection, { _, _ in }, nil)
        PQfinish(handle)
        handle = connection
        savepoints = 0
    }

    /// Reconnects when the connection was lost and no transaction is open.
    private func ensureConnected() throws(PostgresError) {
        if let handle, PQstatus(handle) == CONNECTION_OK { return }
        savepoints = 0
        try connect()
    }

    /// Whether the connection is encrypted (`PQsslInUse`).
    public var usesTLS: Bool { handle.map { PQsslInUse($0) == 1 } ?? false }

    /// The server's version as a number, e.g. 150018 (`PQserverVersion`).
    public var serverVersion: Int { handle.map { Int(PQserverVersion($0)) } ?? 0 }

    // MARK: - Statements

    @discardableResult
    public func execute(_ sql: String, _ values: [DatabaseValue]) throws -> Int {
        let result = try run(sql, values)
        defer { PQclear(result) }
        return Int(String(cString: PQcmdTuples(result))) ?? 0
    }

    public func query<Row>(
        _ sql: String, _ values: [DatabaseValue], row: (any DatabaseRow) throws -> Row
    ) throws -> [Row] {
        let result = try run(sql, values)
        defer { PQclear(result) }
        let count = Int(PQntuples(result))
        var rows: [Row] = []
        rows.reserveCapacity(count)
        for index in 0..<count {
            rows.append(try row(PostgresRow(result: result, row: Int32(index))))
        }
        return rows
    }

    /// Runs several statements without parameters (`PQexec`, the simple protocol): schema steps.
    public func executeScript(_ sql: String) throws(PostgresError) {
        try ensureConnected()
        guard let result = PQexec(handle, sql) else { throw failure(nil, sql) }
        defer { PQclear(result) }
        let status = PQresultStatus(result)
        guard status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK else { throw failure(result, sql) }
    }

    /// One statement through `PQexecParams`; the caller clears the result.
    private func run(_ sql: String, _ values: [DatabaseValue]) throws(PostgresError) -> OpaquePointer {
        try ensureConnected()
        var types: [Oid] = []
        var formats: [Int32] = []
        var lengths: [Int32] = []
        var buffers: [UnsafeMutablePointer<CChar>?] = []
        defer { for buffer in buffers { free(buffer) } }
        for value in values {
            switch value {
            case .integer(let number):
                types.append(20)  // int8
                formats.append(0)
                lengths.append(0)
                buffers.append(strdup(String(number)))
            case .real(let number):
                types.append(701)  // float8
                formats.append(0)
                lengths.append(0)
                buffers.append(strdup(Self.text(number)))
            case .text(let text):
                types.append(25)  // text
                formats.append(0)
                lengths.append(0)
                buffers.append(strdup(text))
            case .blob(let bytes):
                types.append(17)  // bytea, sent as binary
                formats.append(1)
                lengths.append(Int32(bytes.count))
                let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: max(bytes.count, 1))
                bytes.withUnsafeBytes { raw in
                    if let base = raw.baseAddress { memcpy(buffer, base, bytes.count) }
                }
                buffers.append(buffer)
            case .null:
                types.append(0)
                formats.append(0)
                lengths.append(0)
                buffers.append(nil)
            }
        }
        let result = buffers.withUnsafeBufferPointer { pointers in
            pointers.withMemoryRebound(to: UnsafePointer<CChar>?.self) { constPointers in
                PQexecParams(
                    handle, sql, Int32(values.count), types, constPointers.baseAddress, lengths, formats, 0)
            }
        }
        guard let result else { throw failure(nil, sql) }
        let status = PQresultStatus(result)
        guard status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK else {
            let error = failure(result, sql)
            PQclear(result)
            throw error
        }
        return result
    }

    /// The error of a failed statement; notes a lost connection (the open transaction is gone with it).
    private func failure(_ result: OpaquePointer?, _ sql: String) -> PostgresError {
        let field = { (code: UInt8) -> String? in
            guard let result, let value = PQresultErrorField(result, Int32(code)) else { return nil }
            return String(cString: value)
        }
        let sqlState = field(UInt8(ascii: "C"))
        let message = field(UInt8(ascii: "M")) ?? handle.map { Self.message(PQerrorMessage($0)) } ?? "no connection"
        let lost = handle.map { PQstatus($0) != CONNECTION_OK } ?? true
        if lost { savepoints = 0 }
        return PostgresError.classify(
            sqlState: sqlState, message: message, operation: "run \"\(Self.abbreviated(sql))\"",
            url: url.redacted, connectionLost: lost)
    }

    // MARK: - Transactions

    public func transaction<Result>(readOnly: Bool, _ body: () throws -> Result) throws -> Result {
        if isInTransaction {
            savepoints += 1
            let name = "csmil_\(savepoints)"
            try executeScript("SAVEPOINT \(name)")
            do {
                let result = try body()
                try executeScript("RELEASE SAVEPOINT \(name)")
                savepoints -= 1
                return result
            } catch {
                if isInTransaction { try? executeScript("ROLLBACK TO SAVEPOINT \(name); RELEASE SAVEPOINT \(name)") }
                savepoints = max(0, savepoints - 1)
                throw error
            }
        }
        // READ COMMITTED for writes: each statement sees what others committed, and claims lock the rows they take
        // (FOR UPDATE SKIP LOCKED). A read-only transaction reads one snapshot, so a summary's parts agree.
        try executeScript(readOnly ? "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY" : "BEGIN")
        do {
            let result = try body()
            try executeScript("COMMIT")
            return result
        } catch {
            if isInTransaction, let handle, PQstatus(handle) == CONNECTION_OK { PQclear(PQexec(handle, "ROLLBACK")) }
            savepoints = 0
            throw error
        }
    }

    // MARK: - Notifications

    /// Subscribes this connection to `channels` (`LISTEN`). A listening connection does nothing else: it waits in
    /// ``waitForNotifications(timeout:)``. Through PgBouncer in transaction mode notifications do not arrive; the
    /// hosts' polling covers for them.
    public func listen(_ channels: [StoreChannel]) throws(PostgresError) {
        try executeScript(channels.map { "LISTEN \($0.rawValue);" }.joined(separator: " "))
    }

    /// Waits up to `timeout` seconds for notifications and returns their channels (empty after a timeout).
    ///
    /// - Throws: `postgres.unreachable` when the connection is lost (listen again after reconnecting).
    public func waitForNotifications(timeout: Double) throws(PostgresError) -> [String] {
        var channels = drainNotifications()
        if !channels.isEmpty { return channels }
        guard let handle, PQstatus(handle) == CONNECTION_OK, PQsocket(handle) >= 0 else {
            throw PostgresError.unreachable(
                url: url.redacted, message: "the listening connection is closed", sqlState: nil)
        }
        var descriptor = pollfd(fd: PQsocket(handle), events: Int16(POLLIN), revents: 0)
        let milliseconds = Int32(max(0, min(timeout, 3600)) * 1000)
        if poll(&descriptor, 1, milliseconds) > 0 {
            guard PQconsumeInput(handle) == 1 else {
                throw PostgresError.unreachable(
                    url: url.redacted,
                    message: "the listening connection was lost: \(Self.message(PQerrorMessage(handle)))",
                    sqlState: nil)
            }
            channels = drainNotifications()
        }
        return channels
    }

    private func drainNotifications() -> [String] {
        guard let handle else { return [] }
        var channels: [String] = []
        while let notification = PQnotifies(handle) {
            channels.append(String(cString: notification.pointee.relname))
            PQfreemem(notification)
        }
        return channels
    }

    // MARK: - Helpers

    /// A double as PostgreSQL reads a `float8` literal, exactly (Swift prints the shortest round-tripping form).
    static func text(_ number: Double) -> String {
        if number.isNaN { return "NaN" }
        if number.isInfinite { return number < 0 ? "-Infinity" : "Infinity" }
        return "\(number)"
    }

    static func message(_ text: UnsafePointer<CChar>?) -> String {
        guard let text else { return "" }
        return String(cString: text).trimmingCharacters(in: .whitespacesAndNewlines)
            .replacingOccurrences(of: "\n", with: "; ")
    }

    static func abbreviated(_ sql: String) -> String {
        let flat = sql.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        return flat.count > 80 ? String(flat.prefix(77)) + "…" : flat
    }

    /// Calls `body` with a NULL-terminated array of C strings.
    private static func withCStrings<Result>(
        _ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> Result
    ) -> Result {
        let copies = strings.map { strdup($0) }
        defer { for copy in copies { free(copy) } }
        let pointers: [UnsafePointer<CChar>?] = copies.map { $0.map { UnsafePointer($0) } } + [nil]
        return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}

/// One row of a text-format result.
struct PostgresRow: DatabaseRow {
    let result: OpaquePointer
    let row: Int32

    func isNull(_ index: Int) -> Bool { PQgetisnull(result, row, Int32(index)) == 1 }

    func string(_ index: Int) -> String {
        guard let value = PQgetvalue(result, row, Int32(index)) else { return "" }
        return String(cString: value)
    }

    func int64(_ index: Int) -> Int64 {
        let text = string(index)
        if let number = Int64(text) { return number }
        if text == "t" { return 1 }
        if text == "f" { return 0 }
        return Double(text).map { Int64($0) } ?? 0
    }

    func double(_ index: Int) -> Double { Double(string(index)) ?? 0 }

    /// `bytea` in the hex output format: `\x` and two hex digits per byte.
    func blob(_ index: Int) -> [UInt8] {
        let text = Array(string(index).utf8)
        guard text.count >= 2, text[0] == UInt8(ascii: "\\"), text[1] == UInt8(ascii: "x") else { return [] }
        var bytes: [UInt8] = []
        bytes.reserveCapacity((text.count - 2) / 2)
        var index = 2
        while index + 1 < text.count {
            bytes.append(Self.nibble(text[index]) << 4 | Self.nibble(text[index + 1]))
            index += 2
        }
        return bytes
    }

    private static func nibble(_ character: UInt8) -> UInt8 {
        switch character {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): character - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): character - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): character - UInt8(ascii: "A") + 10
        default: 0
        }
    }
}
