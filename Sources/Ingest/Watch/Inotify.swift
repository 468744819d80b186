import Glibc
import SystemPackage

/// One inotify instance (`inotify_init1(IN_NONBLOCK | IN_CLOEXEC)`), closed in `deinit` and nowhere else.
///
/// A thin wrapper: ``addWatch(_:mask:)`` is `inotify_add_watch`, ``removeWatch(_:)`` is
/// `inotify_rm_watch`, and ``readEvents()`` drains the non-blocking descriptor with `read` and
/// parses the `struct inotify_event` records. Used by one thread at a time (the watch loop).
final class Inotify {
    /// The kernel's event bits (`<sys/inotify.h>`), as they appear in a watch mask or an event.
    struct Mask: OptionSet, Hashable, Sendable, CustomStringConvertible {
        var rawValue: UInt32

        /// `IN_ATTRIB`: metadata changed (permissions, timestamps).
        static let attrib = Mask(rawValue: UInt32(IN_ATTRIB))
        /// `IN_CLOSE_WRITE`: a file opened for writing was closed.
        static let closeWrite = Mask(rawValue: UInt32(IN_CLOSE_WRITE))
        /// `IN_MOVED_FROM`: a name left the watched folder.
        static let movedFrom = Mask(rawValue: UInt32(IN_MOVED_FROM))
        /// `IN_MOVED_TO`: a name arrived in the watched folder.
        static let movedTo = Mask(rawValue: UInt32(IN_MOVED_TO))
        /// `IN_CREATE`: a file or folder was created in the watched folder.
        static let create = Mask(rawValue: UInt32(IN_CREATE))
        /// `IN_DELETE`: a file or folder was deleted from the watched folder.
        static let delete = Mask(rawValue: UInt32(IN_DELETE))
        /// `IN_DELETE_SELF`: the watched folder itself was deleted.
        static let deleteSelf = Mask(rawValue: UInt32(IN_DELETE_SELF))
        /// `IN_MOVE_SELF`: the watched folder itself was moved.
        static let moveSelf = Mask(rawValue: UInt32(IN_MOVE_SELF))
        /// `IN_UNMOUNT`: the file system holding the watched folder was unmounted.
        static let unmount = Mask(rawValue: UInt32(IN_UNMOUNT))
        /// `IN_Q_OVERFLOW`: the kernel's event queue overflowed and events were lost.
        static let queueOverflow = Mask(rawValue: UInt32(IN_Q_OVERFLOW))
        /// `IN_IGNORED`: the watch was removed (explicitly, or because its folder went away).
        static let ignored = Mask(rawValue: UInt32(IN_IGNORED))
        /// `IN_ONLYDIR`: only watch the path if it is a folder.
        static let onlyDirectory = Mask(rawValue: UInt32(IN_ONLYDIR))
        /// `IN_ISDIR`: the event's subject is a folder.
        static let isDirectory = Mask(rawValue: UInt32(IN_ISDIR))

        var description: String {
            let names: [(Mask, String)] = [
                (.attrib, "ATTRIB"), (.closeWrite, "CLOSE_WRITE"), (.movedFrom, "MOVED_FROM"),
                (.movedTo, "MOVED_TO"), (.create, "CREATE"), (.delete, "DELETE"), (.deleteSelf, "DELETE_SELF"),
                (.moveSelf, "MOVE_SELF"), (.unmount, "UNMOUNT"), (.queueOverflow, "Q_OVERFLOW"),
                (.ignored, "IGNORED"), (.isDirectory, "ISDIR"),
            ]
            return names.filter { contains($0.0) }.map(\.1).joined(separator: "|")
        }
    }

    /// One parsed `struct inotify_event`.
    struct Event: Equatable, Sendable {
        /// The watch descriptor the event belongs to; -1 for `IN_Q_OVERFLOW`.
        var watch: Int32
        var mask: Mask
        /// Pairs the `IN_MOVED_FROM` and `IN_MOVED_TO` of one rename.
        var cookie: UInt32
        /// The name inside the watched folder; empty for events about the folder itself.
        var name: String
    }

    /// The size of `struct inotify_event` without its name.
    static let headerSize = 16

    /// The descriptor, readable when events are waiting (for `poll`).
    let fileDescriptor: Int32

    /// Makes an instance: `inotify_init1(IN_NONBLOCK | IN_CLOEXEC)`.
    init() throws(WatchError) {
        let descriptor = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard descriptor >= 0 else {
            let reason = String(cString: strerror(errno))
            throw WatchError(
                code: .inotifyFailed, path: "inotify", message: "inotify_init1 failed (\(reason))",
                fix: "raise fs.inotify.max_user_instances (sysctl), or set [watch] polling = \"poll\"")
        }
        fileDescriptor = descriptor
    }

    deinit { close(fileDescriptor) }

    /// Watches a folder: `inotify_add_watch`. Watching an already watched folder (the same inode)
    /// returns its existing descriptor with the new mask. Returns the watch descriptor, or the
    /// `errno` of the failure (`ENOSPC`: the user's watch limit is reached; `ENOENT`, `ENOTDIR`).
    func addWatch(_ path: String, mask: Mask) -> Result<Int32, Errno> {
        let watch = inotify_add_watch(fileDescriptor, path, mask.rawValue)
        return watch >= 0 ? .success(watch) : .failure(Errno(rawValue: errno))
    }

    /// Stops a watch: `inotify_rm_watch`. An `IN_IGNORED` event for it follows.
    func removeWatch(_ watch: Int32) {
        _ = inotify_rm_watch(fileDescriptor, watch)
    }

    /// Reads the events waiting now (`read` until `EAGAIN`, at most `maximumReads` reads of 64 KiB,
    /// so a flood of events cannot keep the caller from its other work); empty when none is waiting.
    func readEvents(maximumReads: Int = 16) -> [Event] {
        var events: [Event] = []
        // Room for at least one event with the longest name (NAME_MAX), as inotify(7) asks.
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        for _ in 0..<maximumReads {
            let count = buffer.withUnsafeMutableBytes { read(fileDescriptor, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            buffer.withUnsafeBytes { events += Self.parse(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
        }
        return events
    }

    /// Parses the `struct inotify_event` records of one `read`: a 16-byte header (`wd`, `mask`,
    /// `cookie`, `len`) followed by `len` bytes of NUL-padded name. A truncated trailing record is dropped.
    static func parse(_ bytes: UnsafeRawBufferPointer) -> [Event] {
        var events: [Event] = []
        var offset = 0
        while offset + headerSize <= bytes.count {
            let watch = bytes.loadUnaligned(fromByteOffset: offset, as: Int32.self)
            let mask = bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
            let cookie = bytes.loadUnaligned(fromByteOffset: offset + 8, as: UInt32.self)
            let length = Int(bytes.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
            guard offset + headerSize + length <= bytes.count else { break }
            let nameBytes = bytes[(offset + headerSize)..<(offset + headerSize + length)]
            let name = String(decoding: nameBytes.prefix { $0 != 0 }, as: UTF8.self)
            events.append(Event(watch: watch, mask: Mask(rawValue: mask), cookie: cookie, name: name))
            offset += headerSize + length
        }
        return events
    }
}
