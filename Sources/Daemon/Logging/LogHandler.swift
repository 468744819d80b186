import Foundation
import Logging

/// csmil's swift-log handler: the same level, metadata and provider handling for both places
/// a line can go — the systemd journal (structured fields) or standard error (one line).
struct CSMILLogHandler: LogHandler {
    enum Sink: Equatable {
        /// Native journal protocol, one field per metadata key (see `JournalFields`).
        case journal
        /// `StderrFormat` lines.
        case stderr
    }

    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?
    let label: String
    let sink: Sink

    init(label: String, level: Logger.Level, sink: Sink, metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        self.logLevel = level
        self.sink = sink
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
        let message = event.message.description
        if sink == .journal {
            let fields = JournalFields.fields(
                level: event.level, message: message, metadata: merged, file: event.file, function: event.function,
                line: event.line)
            // When the journal socket is gone (journald restarting) the line still goes to stderr.
            if JournalFields.send(fields) >= 0 { return }
        }
        let line = StderrFormat.line(date: Date(), level: event.level, message: message, metadata: merged)
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}
