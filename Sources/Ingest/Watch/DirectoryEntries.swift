import Glibc

/// One name in a folder, as `readdir` reports it.
struct DirectoryEntry: Equatable, Sendable {
    enum Kind: Equatable, Sendable {
        /// A folder (not a link to one: the watcher never follows links into folders, so it cannot loop).
        case directory
        /// A regular file, or a link to one.
        case file
        /// Anything else: sockets, FIFOs, devices, dangling links, links to folders.
        case other
    }

    var name: String
    var kind: Kind

    /// The entries of `folder` without "." and ".." (`opendir`/`readdir`); nil when it cannot be
    /// opened (gone, not a folder, no permission). `d_type` is trusted when the file system fills
    /// it in; otherwise (`DT_UNKNOWN`) and for links, `lstat`/`stat` decide.
    static func list(_ folder: String) -> [DirectoryEntry]? {
        guard let stream = opendir(folder) else { return nil }
        defer { closedir(stream) }
        var entries: [DirectoryEntry] = []
        while let entry = readdir(stream) {
            let name = withUnsafePointer(to: &entry.pointee.d_name) {
                String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self))
            }
            if name == "." || name == ".." { continue }
            let kind: Kind
            switch Int32(entry.pointee.d_type) {
            case Int32(DT_DIR): kind = .directory
            case Int32(DT_REG): kind = .file
            case Int32(DT_LNK), Int32(DT_UNKNOWN): kind = Self.examine(folder + "/" + name)
            default: kind = .other
            }
            entries.append(DirectoryEntry(name: name, kind: kind))
        }
        return entries
    }

    /// The kind of `path` by `lstat` (folders only when not a link) then `stat` (files through links).
    private static func examine(_ path: String) -> Kind {
        var info = stat()
        guard lstat(path, &info) == 0 else { return .other }
        if (info.st_mode & S_IFMT) == S_IFDIR { return .directory }
        if (info.st_mode & S_IFMT) == S_IFREG { return .file }
        guard (info.st_mode & S_IFMT) == S_IFLNK, stat(path, &info) == 0 else { return .other }
        return (info.st_mode & S_IFMT) == S_IFREG ? .file : .other
    }
}
