import Foundation

/// How `csmil reload` (the unit's `ExecReload=`) learns that the daemon has read its configuration again, and
/// whether it took the new file. systemd 252 (Debian 12) has no `Type=notify-reload`: with `ExecReload=kill -HUP`
/// it would say "Reloaded" before the file was read, and never that it was refused.
///
/// The daemon writes `reload.json` into its runtime folder — `$RUNTIME_DIRECTORY` (the unit's
/// `RuntimeDirectory=csmil`, /run/csmil), else the [state] directory — at start (generation 0) and after each
/// SIGHUP it handled (generation + 1), atomically (temporary file, rename):
/// `{"pid": 1234, "generation": 2, "applied": false, "message": "…the reason…"}`.
struct ReloadAcknowledgement: Codable, Equatable, Sendable {
    /// The daemon that wrote it.
    var pid: Int32
    /// 0 at start, then one more per reload handled (SIGHUPs that arrive together are one reload).
    var generation: Int
    /// Whether the file was read and its settings are in use; false: refused, the running settings stay.
    var applied: Bool
    /// What happened, in words (the reason when refused; the sections that need a restart when applied).
    var message: String

    static let fileName = "reload.json"

    /// The folder of `reload.json`: `$RUNTIME_DIRECTORY` (its first entry) under systemd, else the state folder.
    static func folder(
        stateDirectory: String, environment: [String: String] = ProcessInfo.processInfo.environment
    )
        -> String
    {
        if let runtime = environment["RUNTIME_DIRECTORY"]?.split(separator: ":").first, !runtime.isEmpty {
            return String(runtime)
        }
        return stateDirectory
    }

    /// The acknowledgement in `folder`, or nil when there is none (or it cannot be read).
    static func read(folder: String) -> ReloadAcknowledgement? {
        guard let data = FileManager.default.contents(atPath: folder + "/" + fileName) else { return nil }
        return try? JSONDecoder().decode(ReloadAcknowledgement.self, from: data)
    }

    /// Replaces `reload.json` in `folder` atomically.
    func write(folder: String) throws {
        let path = folder + "/" + Self.fileName
        let temporary = path + ".tmp"
        try JSONEncoder().encode(self).write(to: URL(fileURLWithPath: temporary))
        guard rename(temporary, path) == 0 else {
            throw DaemonError(
                code: .runtimeUnwritable, subject: path,
                message: "cannot be written (\(String(cString: strerror(errno))))",
                fix: "check that the csmil user may write \(folder); until then csmil reload cannot learn the outcome")
        }
    }
}
