import Foundation
import Store

/// A real PostgreSQL server for tests, started from Debian's `postgresql` package (installed by `scripts/setup`):
/// `initdb` in a temporary folder, run as an unprivileged user (the `postgres` account when the tests run as root,
/// as PostgreSQL refuses root), listening on a private Unix socket and a free loopback port, stopped when the test
/// process ends.
///
/// One server per test process (``shared``); each test takes a database of its own (``makeDatabase()``). Tests that
/// stop the server start one of their own (``init()``), so the others are not disturbed. The
/// server runs under a small shell that stops it (fast shutdown) when its standard input closes — when the test
/// process ends, however it ends — and that can stop and start it again on request (``stop()``, ``start()``: the
/// "database away" scenarios). Durability settings are off (`fsync`, `synchronous_commit`): the tests check
/// behaviour, not disks.
public final class PostgresTestServer: @unchecked Sendable {
    /// Why the server could not be started.
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// The server of this test process, started on first use.
    public static var shared: PostgresTestServer {
        get throws {
            switch sharedResult {
            case .success(let server): return server
            case .failure(let error): throw error
            }
        }
    }

    private static let sharedResult: Result<PostgresTestServer, Failure> = {
        do {
            let server = try PostgresTestServer()
            atexit { try? PostgresTestServer.shared.shutDown() }
            return .success(server)
        } catch let error as Failure {
            return .failure(error)
        } catch {
            return .failure(Failure(description: "\(error)"))
        }
    }()

    /// The folder holding the data directory, the socket and the log.
    public let root: String
    /// The loopback TCP port.
    public let port: Int
    /// The folder of the Unix socket.
    public var socketDirectory: String { root + "/socket" }
    /// The server's log.
    public var logPath: String { root + "/postgres.log" }
    /// The role the store connects as, with a password (scram-sha-256 over TCP).
    public let user = "csmil"
    /// Its password, and a file holding it (mode 0600), as `[state] database_password_file` names it.
    public let password: String
    public var passwordFile: String { root + "/password" }
    /// The PostgreSQL programs (`/usr/lib/postgresql/<version>/bin`).
    public let binaries: String

    private let account: (uid: uid_t, gid: gid_t)?
    private let supervisor: Process
    private let commands: FileHandle
    private let lock = NSLock()
    private var databases = 0

    /// Starts a server of its own (stopped when released).
    public init() throws {
        binaries = try Self.findBinaries()
        account = try Self.unprivilegedAccount()
        root =
            FileManager.default.temporaryDirectory.appendingPathComponent(
                "csmil-pg-" + UUID().uuidString.prefix(8).lowercased()
            ).path
        try FileManager.default.createDirectory(
            atPath: root + "/socket", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        chmod(root, 0o700)
        let password = "csmil-test-" + UUID().uuidString.prefix(8).lowercased()
        self.password = password
        try Data((password + "\n").utf8).write(to: URL(fileURLWithPath: root + "/password"))
        chmod(root + "/password", 0o600)
        let superPassword = root + "/superuser-password"
        try Data("postgres\n".utf8).write(to: URL(fileURLWithPath: superPassword))
        if let account {
            for path in [root, root + "/socket", superPassword] { chown(path, account.uid, account.gid) }
        }
        port = try Self.freePort()

        let initdb = try Self.run(
            [
                binaries + "/initdb", "-D", root + "/data", "-U", "postgres", "--pwfile", superPassword,
                "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "-N",
            ], as: account, in: root)
        guard initdb.status == 0 else {
            throw Failure(description: "initdb failed (\(initdb.status)): \(initdb.output)")
        }

        // The supervisor: starts postgres, stops and starts it on request, and stops it when stdin closes.
        let options = [
            "-p", "\(port)", "-k", root + "/socket", "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
            "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=200",
            "-c", "shared_buffers=32MB", "-c", "log_min_messages=warning", "-c", "logging_collector=off",
        ].map { "'" + $0 + "'" }.joined(separator: " ")
        // No `wait` in the shell: dash can miss the child's exit and hang; pg_ctl waits on the pid file instead.
        let postgres = "'\(binaries)/postgres' -D '\(root)/data' \(options) >>'\(root)/postgres.log' 2>&1 &"
        let stop = "'\(binaries)/pg_ctl' -D '\(root)/data' -m fast -w -t 120 stop >>'\(root)/postgres.log' 2>&1"
        let script = """
            \(postgres)
            while read -r command; do
                case "$command" in
                    stop) \(stop); echo stopped ;;
                    start) \(postgres) echo started ;;
                esac
            done
            \(stop)
            """
        supervisor = Process()
        supervisor.executableURL = URL(fileURLWithPath: "/bin/sh")
        supervisor.arguments = ["-c", script]
        if let account {
            supervisor.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            supervisor.arguments = Self.setpriv(account) + ["/bin/sh", "-c", script]
        }
        supervisor.currentDirectoryURL = URL(fileURLWithPath: root)
        let input = Pipe()
        let output = Pipe()
        supervisor.standardInput = input
        supervisor.standardOutput = output
        commands = input.fileHandleForWriting
        replies = output.fileHandleForReading
        try supervisor.run()
        try waitUntilReady()

        let admin = try connect(database: "postgres", asSuperuser: true)
        try admin.execute("CREATE ROLE \(user) LOGIN PASSWORD '\(password)'")
    }

    private let replies: FileHandle

    /// A URL to `database` over TCP as ``user`` (the password comes from ``passwordFile``).
    public func url(database: String) throws -> PostgresURL {
        try PostgresURL("postgresql://\(user)@127.0.0.1:\(port)/\(database)?sslmode=disable")
    }

    /// A fresh, empty database owned by ``user``; returns its name.
    public func makeDatabase() throws -> String {
        let name = lock.withLock {
            databases += 1
            return "csmil_test_\(databases)_\(UUID().uuidString.prefix(6).lowercased())"
        }
        let admin = try connect(database: "postgres", asSuperuser: true)
        try admin.execute("CREATE DATABASE \(name) OWNER \(user)")
        return name
    }

    /// Where a store in a fresh database is.
    public func makeStoreLocation() throws -> StoreLocation {
        .postgresql(url: try url(database: try makeDatabase()), passwordFile: passwordFile)
    }

    /// A connection to `database`: as ``user`` over TCP with the password, or as the superuser over the socket.
    public func connect(database: String, asSuperuser: Bool = false) throws -> PostgresConnection {
        if asSuperuser {
            return try PostgresConnection(
                url: try PostgresURL("postgresql:///\(database)?host=\(socketDirectory)&port=\(port)&user=postgres"),
                password: nil, applicationName: "csmil tests")
        }
        return try PostgresConnection(
            url: try url(database: database), password: password, applicationName: "csmil tests")
    }

    /// Stops the server (fast shutdown: connections are cut, as when a database is restarted).
    public func stop() throws {
        try command("stop", reply: "stopped")
    }

    /// Starts it again and waits until it accepts connections.
    public func start() throws {
        try command("start", reply: "started")
        try waitUntilReady()
    }

    private func command(_ text: String, reply: String) throws {
        try lock.withLock {
            commands.write(Data((text + "\n").utf8))
            var line = Data()
            while true {
                let byte = replies.readData(ofLength: 1)
                guard !byte.isEmpty else { throw Failure(description: "the PostgreSQL supervisor ended") }
                if byte == Data("\n".utf8) { break }
                line.append(byte)
            }
            guard String(decoding: line, as: UTF8.self) == reply else {
                throw Failure(
                    description: "the PostgreSQL supervisor answered \(String(decoding: line, as: UTF8.self))")
            }
        }
    }

    /// Waits until the server accepts a connection (`pg_isready`), at most two minutes.
    private func waitUntilReady() throws {
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline {
            let ready = try Self.run(
                [binaries + "/pg_isready", "-q", "-h", socketDirectory, "-p", "\(port)", "-U", "postgres"], as: nil,
                in: root)
            if ready.status == 0 { return }
            guard supervisor.isRunning else { break }
            Thread.sleep(forTimeInterval: 0.1)
        }
        let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        throw Failure(description: "PostgreSQL did not come up on port \(port); its log:\n\(log.suffix(2000))")
    }

    deinit { try? shutDown() }

    /// Stops the server and removes its folder (when released, and at process exit for ``shared``).
    func shutDown() throws {
        try? commands.close()
        supervisor.waitUntilExit()
        try? FileManager.default.removeItem(atPath: root)
    }

    // MARK: - Helpers

    /// The newest `/usr/lib/postgresql/<version>/bin` holding `initdb` and `postgres`.
    static func findBinaries() throws -> String {
        let base = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []).compactMap(Int.init)
            .sorted()
        for version in versions.reversed() {
            let bin = "\(base)/\(version)/bin"
            if FileManager.default.isExecutableFile(atPath: bin + "/initdb"),
                FileManager.default.isExecutableFile(atPath: bin + "/postgres")
            {
                return bin
            }
        }
        throw Failure(
            description: "PostgreSQL's server programs are not installed (\(base)/<version>/bin/initdb); run "
                + "scripts/setup, which installs Debian's postgresql package")
    }

    /// When the tests run as root: the account the server runs as (`postgres`, else `nobody`).
    static func unprivilegedAccount() throws -> (uid: uid_t, gid: gid_t)? {
        guard geteuid() == 0 else { return nil }
        for name in ["postgres", "nobody"] {
            if let entry = getpwnam(name) { return (entry.pointee.pw_uid, entry.pointee.pw_gid) }
        }
        throw Failure(
            description: "the tests run as root, and there is no postgres or nobody account to run PostgreSQL as")
    }

    static func setpriv(_ account: (uid: uid_t, gid: gid_t)) -> [String] {
        ["--reuid=\(account.uid)", "--regid=\(account.gid)", "--clear-groups", "--"]
    }

    /// A free TCP port on loopback (bound once with port 0).
    public static func freePort() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(descriptor, pointer, length) == 0 && getsockname(descriptor, pointer, &length) == 0
            }
        }
        guard bound else { throw Failure(description: "no free port on 127.0.0.1") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Runs a program to completion (as `account` when given); its status and combined output.
    static func run(
        _ arguments: [String], as account: (uid: uid_t, gid: gid_t)?, in folder: String
    ) throws -> (status: Int32, output: String) {
        let process = Process()
        if let account {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            process.arguments = setpriv(account) + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: arguments[0])
            process.arguments = Array(arguments.dropFirst())
        }
        process.currentDirectoryURL = URL(fileURLWithPath: folder)
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }
}
