import CSystemd
import Foundation
import Logging

/// Sends each event to the systemd journal as a structured entry through the native protocol
/// (`sd_journal_sendv`): `MESSAGE`, `PRIORITY`, `SYSLOG_IDENTIFIER`, the code location, and one
/// field per metadata key (`slide` → `SLIDE`, `event_id` → `EVENT_ID`), so
/// `journalctl -u csmil SLIDE=a.svs` finds every line about one slide.
struct JournalLogHandler: LogHandler {
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?
    let label: String

    init(label: String, level: Logger.Level, metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        self.logLevel = level
        self.metadataProvider = metadataProvider
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        let fields = Self.fields(
            level: event.level, message: event.message.description, metadata: merged, file: event.file,
            function: event.function, line: event.line)
        if Self.send(fields) < 0 {
            // The journal socket is gone (journald restarting); do not lose the line.
            let line = StderrLogHandler.format(
                date: Date(), level: event.level, message: event.message.description, metadata: merged)
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
    }

    /// The journal fields of one event, each "NAME=value".
    static func fields(
        level: Logger.Level, message: String, metadata: Logger.Metadata, file: String, function: String, line: UInt
    ) -> [String] {
        var fields = [
            "MESSAGE=" + message,
            "PRIORITY=\(priority(level))",
            "SYSLOG_IDENTIFIER=csmil",
            "CODE_FILE=" + file,
            "CODE_LINE=\(line)",
            "CODE_FUNC=" + function,
        ]
        let reserved: Set = ["MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "CODE_FILE", "CODE_LINE", "CODE_FUNC"]
        for key in metadata.keys.sorted() {
            guard let name = fieldName(key), !reserved.contains(name) else { continue }
            fields.append(name + "=" + metadata[key]!.description)
        }
        return fields
    }

    /// The syslog priority journald expects for a swift-log level.
    static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    /// A valid journal field name for a metadata key: upper case, `[A-Z0-9_]`, not starting with
    /// `_` or a digit, at most 64 characters; nil when nothing usable is left.
    static func fieldName(_ key: String) -> String? {
        var name = String(key.uppercased().map { ($0.isASCII && ($0.isLetter || $0.isNumber)) ? $0 : "_" })
        while name.first == "_" || (name.first?.isNumber ?? false) { name.removeFirst() }
        name = String(name.prefix(64))
        return name.isEmpty ? nil : name
    }

    /// Hands the fields to journald; returns 0 or a negative errno. The fields are laid out in
    /// one buffer and described by one iovec each.
    private static func send(_ fields: [String]) -> Int32 {
        var bytes: [UInt8] = []
        var ranges: [Range<Int>] = []
        for field in fields {
            let start = bytes.count
            bytes.append(contentsOf: field.utf8)
            ranges.append(start..<bytes.count)
        }
        return bytes.withUnsafeMutableBytes { storage in
            let vectors = ranges.map { iovec(iov_base: storage.baseAddress! + $0.lowerBound, iov_len: $0.count) }
            return csmil_sd_journal_send_fields(vectors, Int32(vectors.count))
        }
    }
}
