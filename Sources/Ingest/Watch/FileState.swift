import Foundation
import Glibc

/// What a settle check compares of one file: its size, its modification and change times (to the
/// nanosecond) and its inode, so a file replaced by another of the same size is a change too.
struct FileState: Hashable, Sendable {
    var path: String
    var size: Int64
    var modifiedSeconds: Int
    var modifiedNanoseconds: Int
    var changedSeconds: Int
    var changedNanoseconds: Int
    var inode: UInt64

    /// The modification time as a date.
    var modified: Date {
        Date(timeIntervalSince1970: Double(modifiedSeconds) + Double(modifiedNanoseconds) / 1e9)
    }

    /// The state of the regular file at `path` (`stat`, following links); nil when it does not
    /// exist or is not a regular file.
    static func of(_ path: String) -> FileState? {
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
        return FileState(
            path: path, size: Int64(info.st_size), modifiedSeconds: info.st_mtim.tv_sec,
            modifiedNanoseconds: info.st_mtim.tv_nsec, changedSeconds: info.st_ctim.tv_sec,
            changedNanoseconds: info.st_ctim.tv_nsec, inode: UInt64(info.st_ino))
    }
}

/// The state of a watch unit: a slide file, or a slide set (MIRAX, VMS/VMU) named by its index
/// file. Two snapshots are equal when no file of the unit changed in between.
struct UnitSnapshot: Hashable, Sendable {
    /// The slide file (for a set, its index: the `.mrxs`, `.vms` or `.vmu`).
    var main: FileState
    /// The other files of a set, sorted by path; empty for a single file.
    var members: [FileState] = []
    /// Files a VMS/VMU index names that do not exist (yet).
    var missing: [String] = []

    /// The bytes of every file of the unit.
    var totalBytes: Int64 { members.reduce(main.size) { $0 + $1.size } }
}
