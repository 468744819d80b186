import CSystemd
import Foundation
import Logging

/// A structured journal entry for each event, sent through the native protocol
/// (`sd_journal_sendv`): `MESSAGE`, `PRIORITY`, `SYSLOG_IDENTIFIER`, the code location, and one
/// field per metadata key (`slide` → `SLIDE`, `event_id` → `EVENT_ID`), so
/// `journalctl -u csmil SLIDE=a.svs` finds every line about one slide. `MESSAGE` also carries the metadata as
/// `key=value` text (as the stderr lines do), since plain `journalctl -u csmil` shows only `MESSAGE`: "slide
/// reported slide=a.svs status=scored …", not a bare "slide reported".
enum JournalFields {
    /// The journal fields of one event, each "NAME=value".
    static func fields(
        level: Logger.Level, message: String, metadata: Logger.Metadata, file: String, function: String, line: UInt
    ) -> [String] {
        var fields = [
            "MESSAGE=" + StderrFormat.text(message: message, metadata: metadata.filter { $0.key != "message_id" }),
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
    static func send(_ fields: [String]) -> Int32 {
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
