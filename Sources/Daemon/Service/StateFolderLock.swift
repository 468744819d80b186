import Foundation
import SystemPackage

/// An exclusive `flock` on `<state>/csmil.lock`, held for the daemon's life, so that two daemons never share one
/// job store (the second refuses to start). The kernel drops it when the process dies, even by `kill -9`, so a
/// crash leaves nothing to clean up.
final class StateFolderLock {
    let path: String
    private let file: FileDescriptor

    init(stateDirectory: String) throws(DaemonError) {
        path = stateDirectory + "/csmil.lock"
        do {
            file = try FileDescriptor.open(
                path, .readWrite, options: [.create, .closeOnExec], permissions: [.ownerReadWrite, .groupRead])
        } catch {
            throw DaemonError(
                code: .stateUnwritable, subject: path, message: "cannot be created (\(error))",
                fix: "check that [state] directory exists and the csmil user may write it")
        }
        guard flock(file.rawValue, LOCK_EX | LOCK_NB) == 0 else {
            try? file.close()
            throw DaemonError(
                code: .stateLocked, subject: path, message: "another csmil watch is running with this state folder",
                fix: "stop it first (systemctl stop csmil), or give this one another [state] directory")
        }
    }

    deinit { try? file.close() }
}
