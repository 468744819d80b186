import Foundation

/// An exclusive `flock` on `<state>/csmil.lock`, held for the daemon's life, so that two daemons never share one
/// job store (the second refuses to start). The kernel drops it when the process dies, even by `kill -9`, so a
/// crash leaves nothing to clean up.
final class StateFolderLock {
    let path: String
    private let descriptor: Int32

    init(stateDirectory: String) throws(DaemonError) {
        path = stateDirectory + "/csmil.lock"
        descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o640)
        guard descriptor >= 0 else {
            throw DaemonError(
                code: "state.unwritable",
                message: "\(path): cannot be created (\(String(cString: strerror(errno)))) — "
                    + "check that [state] directory exists and the csmil user may write it")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            close(descriptor)
            throw DaemonError(
                code: "state.locked",
                message: "\(path): another csmil watch is running with this state folder — "
                    + "stop it first (systemctl stop csmil), or give this one another [state] directory")
        }
    }

    deinit { close(descriptor) }
}

/// A failure to start or run the daemon, with a stable code and a message naming the thing and the fix.
struct DaemonError: Error, CustomStringConvertible {
    var code: String
    var message: String
    var description: String { message }
}
