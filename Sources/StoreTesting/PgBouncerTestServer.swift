import Foundation
import Store

/// PgBouncer (Debian's `pgbouncer`) in transaction mode in front of a ``PostgresTestServer``, as labs put it
/// between many clients and one server: each transaction may run on another server connection, so anything tied to
/// a session (named prepared statements, session advisory locks, `LISTEN`) does not work through it. Stopped when
/// the test process ends.
public final class PgBouncerTestServer: @unchecked Sendable {
    /// The port clients connect to.
    public let port: Int
    private let server: PostgresTestServer
    private let supervisor: Process
    private let stdin: FileHandle

    /// Starts PgBouncer for every database of `server`.
    public init(server: PostgresTestServer) throws {
        self.server = server
        let program = "/usr/sbin/pgbouncer"
        guard FileManager.default.isExecutableFile(atPath: program) else {
            throw PostgresTestServer.Failure(
                description: "\(program) is not installed; run scripts/setup, which installs Debian's pgbouncer")
        }
        port = try PostgresTestServer.freePort()
        let folder = server.root + "/pgbouncer-\(port)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try """
        [databases]
        * = host=127.0.0.1 port=\(server.port)

        [pgbouncer]
        listen_addr = 127.0.0.1
        listen_port = \(port)
        unix_socket_dir =
        auth_type = scram-sha-256
        auth_file = \(folder)/userlist.txt
        pool_mode = transaction
        max_client_conn = 200
        default_pool_size = 4
        logfile = \(folder)/pgbouncer.log
        pidfile = \(folder)/pgbouncer.pid
        """.write(toFile: folder + "/pgbouncer.ini", atomically: true, encoding: .utf8)
        try "\"\(server.user)\" \"\(server.password)\"\n".write(
            toFile: folder + "/userlist.txt", atomically: true, encoding: .utf8)
        let account = try PostgresTestServer.unprivilegedAccount()
        if let account {
            for name in ["", "/pgbouncer.ini", "/userlist.txt"] { chown(folder + name, account.uid, account.gid) }
        }
        // Stopped with SIGKILL when stdin closes: it holds no state, and it may not see SIGINT with the signal
        // mask a test runner's child inherits.
        let script = """
            '\(program)' '\(folder)/pgbouncer.ini' >>'\(folder)/pgbouncer.out' 2>&1 & pid=$!
            cat >/dev/null
            kill -KILL "$pid" 2>/dev/null
            """
        supervisor = Process()
        supervisor.executableURL = URL(fileURLWithPath: "/bin/sh")
        supervisor.arguments = ["-c", script]
        if let account {
            supervisor.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            supervisor.arguments = PostgresTestServer.setpriv(account) + ["/bin/sh", "-c", script]
        }
        supervisor.currentDirectoryURL = URL(fileURLWithPath: folder)
        let input = Pipe()
        supervisor.standardInput = input
        supervisor.standardOutput = FileHandle.nullDevice
        stdin = input.fileHandleForWriting
        try supervisor.run()

        // Ready once a client gets through to the server.
        let deadline = Date().addingTimeInterval(60)
        var lastError: (any Error)?
        while Date() < deadline {
            do {
                _ = try PostgresConnection(url: try url(database: "postgres"), password: server.password)
                return
            } catch {
                lastError = error
                Thread.sleep(forTimeInterval: 0.1)
            }
        }
        let log = (try? String(contentsOfFile: folder + "/pgbouncer.log", encoding: .utf8)) ?? ""
        throw PostgresTestServer.Failure(
            description:
                "PgBouncer did not come up on port \(port): \(lastError.map { "\($0)" } ?? "")\n\(log.suffix(2000))")
    }

    deinit {
        try? stdin.close()
        supervisor.waitUntilExit()
    }

    /// A URL to `database` through PgBouncer.
    public func url(database: String) throws -> PostgresURL {
        try PostgresURL("postgresql://\(server.user)@127.0.0.1:\(port)/\(database)?sslmode=disable")
    }

    /// Where a store in a fresh database of the server is, reached through PgBouncer.
    public func makeStoreLocation() throws -> StoreLocation {
        .postgresql(url: try url(database: try server.makeDatabase()), passwordFile: server.passwordFile)
    }
}
