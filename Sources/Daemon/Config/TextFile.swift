import Foundation

/// Reads a small UTF-8 text file (a configuration, a model manifest) and, when that fails, says why in words an
/// operator can act on: it does not exist, this user may not read it (naming the user), it is a folder, or it is
/// not UTF-8 text.
enum TextFile {
    struct Failure: Error, Sendable, Equatable {
        /// "does not exist", "cannot be read: permission denied for user csmil (uid 999)", …
        var reason: String
        /// This process lacks the permission (EACCES, EPERM): the fix is access, not a different file.
        var permissionDenied: Bool
        /// How to let this process's user read `path`.
        var permissionFix: String
    }

    static func read(path: String) throws(Failure) -> String {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw failure(path: path, errno: errno) }
        let handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
        let data: Data
        do {
            data = try handle.readToEnd() ?? Data()
        } catch {
            // open(2) succeeds on a folder; read(2) then fails with EISDIR.
            throw failure(path: path, errno: (error as NSError).code == EISDIR ? EISDIR : EIO)
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw Failure(reason: "cannot be read as UTF-8 text", permissionDenied: false, permissionFix: "")
        }
        return text
    }

    static func failure(path: String, errno code: Int32) -> Failure {
        let user = currentUser
        let fix =
            "let user \(user.name) read it: chgrp \(user.group) \(path) && chmod g+r \(path) (and let it search every "
            + "folder above it), or run csmil as a user that may read it"
        switch code {
        case ENOENT, ENOTDIR:
            return Failure(reason: "does not exist", permissionDenied: false, permissionFix: fix)
        case EACCES, EPERM:
            return Failure(
                reason: "cannot be read: permission denied for user \(user.name) (uid \(geteuid()))",
                permissionDenied: true, permissionFix: fix)
        case EISDIR:
            return Failure(reason: "is a folder, not a file", permissionDenied: false, permissionFix: fix)
        default:
            return Failure(
                reason: "cannot be read (\(String(cString: strerror(code))))", permissionDenied: false,
                permissionFix: fix)
        }
    }

    /// The name and primary group of the effective user, or their numbers when the user database has no entry.
    static var currentUser: (name: String, group: String) {
        let name = getpwuid(geteuid()).map { String(cString: $0.pointee.pw_name) } ?? "\(geteuid())"
        let group = getgrgid(getegid()).map { String(cString: $0.pointee.gr_name) } ?? "\(getegid())"
        return (name, group)
    }
}
