import Foundation
import Logging

/// The line written to standard error for one event: time, level, message, then `key=value`
/// metadata, so a person at a terminal and `grep` can both read it.
enum StderrFormat {
    /// `2026-11-27T15:40:00Z info slide settled slide=a.svs stage=watch` (metadata sorted by key;
    /// values with spaces, quotes or `=` are quoted).
    static func line(date: Date, level: Logger.Level, message: String, metadata: Logger.Metadata) -> String {
        date.formatted(.iso8601) + " " + level.rawValue + " " + text(message: message, metadata: metadata)
    }

    /// `slide settled slide=a.svs stage=watch`: the message, then the metadata sorted by key (values with spaces,
    /// quotes or `=` quoted). The journal's MESSAGE is this text too.
    static func text(message: String, metadata: Logger.Metadata) -> String {
        var text = message
        for key in metadata.keys.sorted() {
            text += " " + key + "=" + quoted(metadata[key]!.description)
        }
        return text
    }

    /// A value as it is written: as it is when it is plain, else quoted with `\` and `"` escaped and every control
    /// character escaped (``Swift/String/escapingControlCharacters``), so no value can start a line of its own.
    private static func quoted(_ value: String) -> String {
        let plain = !value.isEmpty && !value.contains { $0 == " " || $0 == "\"" || $0 == "=" }
        if plain && value.escapingControlCharacters == value { return value }
        let escaped = value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
        return "\"" + escaped.escapingControlCharacters + "\""
    }
}
