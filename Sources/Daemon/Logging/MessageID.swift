import Logging

/// The journal's `MESSAGE_ID=` of each kind of event the daemon logs (a fixed 128-bit id per kind, as
/// `sd-id128(3)` asks), so that `journalctl MESSAGE_ID=…` finds, say, every slide reported, whatever its wording:
///
///     journalctl -u csmil MESSAGE_ID=5c3a8e0f1d2b4c6e9a7f0b1c2d3e4f50   # slides reported
///
/// Put in a log line's metadata as `message_id`; the stderr sink prints it like any other key.
enum MessageID: String, CaseIterable {
    case ready = "5c3a8e0f1d2b4c6e9a7f0b1c2d3e4f01"
    case stopped = "5c3a8e0f1d2b4c6e9a7f0b1c2d3e4f02"
    case slideQueued = "5c3a8e0f1d2b4c6e9a7f0b1c2d3e4f10"
    case slideDuplicate = "5c3a8e0f1d2b4c6e9a7f0b1c2d3e4f11"
    case notASlide = "5c3a8e0f1d2b4c6e9a7f0b1c2d3e4f12"
    case slideScoring = "5c3a8e0f1d2b4c6e9a7f0b1c2d3e4f20"
    case slideReported = "5c3a8e0f1d2b4c6e9a7f0b1c2d3e4f50"
    case slideChanged = "5c3a8e0f1d2b4c6e9a7f0b1c2d3e4f51"
    case slideInterrupted = "5c3a8e0f1d2b4c6e9a7f0b1c2d3e4f52"
    case reportNotWritten = "5c3a8e0f1d2b4c6e9a7f0b1c2d3e4f53"
    /// A folder csmil writes to is full or refuses writes: the daemon waits (``ResourceGate``).
    case resourceWait = "5c3a8e0f1d2b4c6e9a7f0b1c2d3e4f54"
    /// The folder takes writes again.
    case resourceRecovered = "5c3a8e0f1d2b4c6e9a7f0b1c2d3e4f55"
    case configurationReloaded = "5c3a8e0f1d2b4c6e9a7f0b1c2d3e4f60"
    case configurationRejected = "5c3a8e0f1d2b4c6e9a7f0b1c2d3e4f61"

    /// `["message_id": id]`, to merge into a log line's metadata.
    var metadata: Logger.Metadata { ["message_id": .string(rawValue)] }
}
