import Foundation
import Logging

/// Writes one line per event to standard error: time, level, message, then `key=value`
/// metadata, so a person at a terminal and `grep` can both read it.
struct StderrLogHandler: LogHandler {
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
        let line = Self.format(date: Date(), level: event.level, message: event.message.description, metadata: merged)
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    /// `2026-11-27T15:40:00Z info slide settled slide=a.svs stage=watch` (metadata sorted by key;
    /// values with spaces, quotes or `=` are quoted).
    static func format(date: Date, level: Logger.Level, message: String, metadata: Logger.Metadata) -> String {
        var line = date.formatted(.iso8601) + " " + level.rawValue + " " + message
        for key in metadata.keys.sorted() {
            line += " " + key + "=" + quoted(metadata[key]!.description)
        }
        return line
    }

    private static func quoted(_ value: String) -> String {
        guard value.isEmpty || value.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" || $0.isNewline }) else {
            return value
        }
        let escaped = value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
        return "\"" + escaped + "\""
    }
}
