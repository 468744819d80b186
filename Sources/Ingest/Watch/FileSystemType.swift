import Glibc

/// The file system holding a folder, from `statfs`'s `f_type` magic number (`<linux/magic.h>`),
/// and whether inotify sees changes made on it by other machines.
struct FileSystemType: Equatable, Sendable {
    /// `f_type`, truncated to 32 bits (the kernel's magic numbers are 32-bit; CIFS's is above `Int32.max`).
    var magic: UInt32
    /// A short name for status output.
    var name: String
    /// Network and FUSE file systems: changes made elsewhere raise no inotify events here.
    var isRemote: Bool

    /// Magic numbers of file systems whose changes inotify may miss.
    static let remote: [UInt32: String] = [
        0x6969: "nfs",
        0x517B: "smb",
        0xFF53_4D42: "cifs",
        0xFE53_4D42: "smb2",
        0x6573_5546: "fuse",
        0x0102_1997: "9p",
        0x00C3_6400: "ceph",
        0x5346_414F: "afs",
        0x6B41_4653: "afs",
        0x7375_7245: "coda",
        0x0BD0_0BD0: "lustre",
        0x0116_1970: "gfs2",
        0x7461_636F: "ocfs2",
        0x564C: "ncp",
    ]

    /// Magic numbers of common local file systems, for status output.
    static let local: [UInt32: String] = [
        0xEF53: "ext4",
        0x5846_5342: "xfs",
        0x9123_683E: "btrfs",
        0x0102_1994: "tmpfs",
        0x2FC1_2FC1: "zfs",
        0x794C_7630: "overlayfs",
        0x4D44: "vfat",
        0x5346_544E: "ntfs",
        0x2011_BAB0: "exfat",
        0xF2F5_2010: "f2fs",
    ]

    /// The type of `magic`.
    init(magic: UInt32) {
        self.magic = magic
        if let name = Self.remote[magic] {
            self.name = name
            isRemote = true
        } else {
            name = Self.local[magic] ?? "0x" + String(magic, radix: 16)
            isRemote = false
        }
    }

    /// The file system holding `path` (`statfs`); nil when the folder cannot be examined.
    ///
    /// Swift's Glibc module does not export `<sys/statfs.h>`, so `statfs` is looked up with
    /// `dlsym` and called through a C function pointer, into a buffer larger than `struct statfs`
    /// (120 bytes on 64-bit Linux), whose first field is `f_type` (a `long`; on 64-bit
    /// Linux other than s390x).
    static func of(_ path: String) -> FileSystemType? {
        guard let statfs = Self.statfs else { return nil }
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 512, alignment: 16)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: 512)
        guard statfs(path, buffer) == 0 else { return nil }
        return FileSystemType(magic: UInt32(truncatingIfNeeded: buffer.load(as: Int.self)))
    }

    private typealias StatFS = @convention(c) (UnsafePointer<CChar>?, UnsafeMutableRawPointer?) -> Int32

    /// glibc's `statfs`, found once.
    private static let statfs: StatFS? = {
        guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "statfs") else { return nil }
        return unsafeBitCast(symbol, to: StatFS.self)
    }()

    /// The mode for this file system under a `polling` setting.
    func mode(for polling: WatchSettings.Polling) -> WatchMode {
        switch polling {
        case .inotify: WatchMode(kind: .inotify, fileSystem: name, reason: "configured (polling = \"inotify\")")
        case .poll: WatchMode(kind: .polling, fileSystem: name, reason: "configured (polling = \"poll\")")
        case .auto:
            isRemote
                ? WatchMode(
                    kind: .polling, fileSystem: name, reason: "network or FUSE file system (polling = \"auto\")")
                : WatchMode(kind: .inotify, fileSystem: name, reason: "local file system (polling = \"auto\")")
        }
    }
}
