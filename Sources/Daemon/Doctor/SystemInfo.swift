import Foundation

/// Facts about the machine that no library reports by itself.
enum SystemInfo {
    /// The instruction-set extensions that matter for the numerics, in the order shown.
    static let relevantCPUFlags = ["sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512_bf16", "amx_tile"]

    /// The CPU model name and its flags, from /proc/cpuinfo text.
    static func cpu(cpuinfo: String) -> (model: String?, flags: Set<String>) {
        var model: String?
        var flags: Set<String> = []
        for line in cpuinfo.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let key = parts[0].trimmingCharacters(in: .whitespaces)
            let value = parts[1].trimmingCharacters(in: .whitespaces)
            if key == "model name", model == nil { model = value }
            if key == "flags", flags.isEmpty { flags = Set(value.split(separator: " ").map(String.init)) }
        }
        return (model, flags)
    }

    /// The file a shared library was loaded from, found in /proc/self/maps by its name prefix
    /// (e.g. "libsystemd.so"), with symbolic links resolved so the real version shows.
    static func loadedLibrary(_ prefix: String, maps: String? = readProcFile("/proc/self/maps")) -> String? {
        guard let maps else { return nil }
        for line in maps.split(separator: "\n") {
            guard let slash = line.firstIndex(of: "/") else { continue }
            let path = String(line[slash...])
            if URL(fileURLWithPath: path).lastPathComponent.hasPrefix(prefix) {
                return URL(fileURLWithPath: path).resolvingSymlinksInPath().path
            }
        }
        return nil
    }

    /// The whole text of a /proc file. Such files report size 0 and arrive a page per read(2),
    /// so they are read until end of file rather than by their size.
    static func readProcFile(_ path: String) -> String? {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            bytes.append(contentsOf: buffer[0..<count])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// This process's peak resident set size: `VmHWM` of /proc/self/status. Not `getrusage`,
    /// whose `ru_maxrss` survives `execve` and so reports the parent's peak for a freshly
    /// spawned child (a `csmil` started by a large test runner would seem large).
    static func peakResidentBytes(status: String? = readProcFile("/proc/self/status")) -> Int {
        statusBytes("VmHWM:", status: status)
    }

    /// CPU time this process has used so far (user + system, all threads), in seconds.
    static func cpuSeconds() -> Double {
        var usage = rusage()
        guard getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage) == 0 else { return 0 }
        func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) * 1e-6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    /// This process's resident set size now (`VmRSS` of /proc/self/status), in bytes; 0 if unknown.
    static func residentBytes(status: String? = readProcFile("/proc/self/status")) -> Int {
        statusBytes("VmRSS:", status: status)
    }

    /// A "Name:   123 kB" line of /proc/self/status in bytes.
    private static func statusBytes(_ field: String, status: String?) -> Int {
        guard let status else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix(field) {
            let kilobytes =
                line.dropFirst(field.count).split(whereSeparator: { $0 == " " || $0 == "\t" }).first.flatMap {
                    Int($0)
                } ?? 0
            return kilobytes * 1024
        }
        return 0
    }

    /// Resets this process's peak resident set size (`VmHWM`) to its current resident size by writing "5" to
    /// /proc/self/clear_refs (Linux 4.0 and later), so that a benchmark can leave its set-up out of the peak.
    /// Returns false when the kernel refused.
    @discardableResult
    static func resetPeakResidentBytes() -> Bool {
        let descriptor = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        return write(descriptor, "5", 1) == 1
    }

    /// Free bytes for unprivileged users on the file system holding `path`.
    static func freeBytes(at path: String) -> UInt64? {
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return nil }
        return UInt64(info.f_bavail) * UInt64(info.f_frsize)
    }
}
