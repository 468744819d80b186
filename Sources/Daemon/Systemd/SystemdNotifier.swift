import CSystemd
import Foundation

/// The service manager's notification protocol (`sd_notify(3)`): READY=1, STATUS=…, WATCHDOG=1,
/// STOPPING=1, RELOADING=1. Without `NOTIFY_SOCKET` in the environment (not started by systemd with
/// `Type=notify`) every call does nothing, so `csmil watch` runs the same in a terminal.
struct SystemdNotifier: Sendable {
    /// Whether the service manager listens (`NOTIFY_SOCKET` is set).
    let isEnabled: Bool
    /// How often systemd expects WATCHDOG=1 (`sd_watchdog_enabled`: `WatchdogSec=`), nil when it does not.
    let watchdogInterval: Duration?

    /// Reads the environment systemd gave this process.
    init() {
        isEnabled = (getenv("NOTIFY_SOCKET").map { String(cString: $0) } ?? "").isEmpty == false
        var microseconds: UInt64 = 0
        if sd_watchdog_enabled(0, &microseconds) > 0, microseconds > 0 {
            watchdogInterval = .microseconds(Int64(clamping: microseconds))
        } else {
            watchdogInterval = nil
        }
    }

    /// Sends `state` (newline-separated assignments) with `sd_notify`; false if it could not be sent.
    @discardableResult
    func notify(_ state: String) -> Bool {
        guard isEnabled else { return false }
        return csmil_sd_notify(state) > 0
    }

    /// READY=1 with a status line: configuration, job store, model and watches are up.
    func ready(status: String) { notify("READY=1\nSTATUS=\(Self.oneLine(status))") }

    /// STATUS=…, shown by `systemctl status csmil`.
    func status(_ text: String) { notify("STATUS=\(Self.oneLine(text))") }

    /// WATCHDOG=1: the daemon is alive and its work is moving.
    func watchdog() { notify("WATCHDOG=1") }

    /// STOPPING=1 with a status line: shutdown has begun.
    func stopping(status: String) { notify("STOPPING=1\nSTATUS=\(Self.oneLine(status))") }

    /// RELOADING=1 while the configuration is re-read, then READY=1 again.
    func reloading() { notify("RELOADING=1") }

    /// A status text is one line: newlines would start new assignments.
    static func oneLine(_ text: String) -> String {
        String(text.map { $0.isNewline ? " " : $0 })
    }
}
