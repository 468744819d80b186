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
                code: .stateUnwritable, subject: path,
                message: "cannot be created (\(String(cString: strerror(errno))))",
                fix: "check that [state] directory exists and the csmil user may write it")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            close(descriptor)
            throw DaemonError(
                code: .stateLocked, subject: path, message: "another csmil watch is running with this state folder",
                fix: "stop it first (systemctl stop csmil), or give this one another [state] directory")
        }
    }

    deinit { close(descriptor) }
}
