import Logging

/// The validated contents of `csmil.toml`. Paths are absolute (relative ones are resolved
/// against the folder that holds the configuration file).
struct Configuration: Sendable, Equatable {
    /// How the watch folder is observed.
    enum PollingMode: String, Sendable, CaseIterable {
        /// Poll on network and FUSE file systems (NFS, SMB/CIFS, FUSE), inotify elsewhere.
        case auto
        /// Always inotify (plus the periodic safety rescan).
        case inotify
        /// Always poll.
        case poll
    }

    /// The body the webhook sends.
    enum WebhookFormat: String, Sendable, CaseIterable {
        /// `{"type", "timestamp", "data": report}` (daemon spec, Webhook).
        case event
        /// A FHIR R4 DiagnosticReport.
        case fhir
    }

    struct Watch: Sendable, Equatable {
        /// The folder the scanner writes into.
        var directory: String
        /// How long size and mtime must stay unchanged before a slide is read.
        var settleSeconds: Double
        var polling: PollingMode
    }

    struct Output: Sendable, Equatable {
        /// Where each slide's report folder is written.
        var directory: String
    }

    struct State: Sendable, Equatable {
        /// The job store and feature spill files.
        var directory: String
    }

    struct Model: Sendable, Equatable {
        /// A model directory holding `model.toml` and the files it names.
        var directory: String
    }

    struct Webhook: Sendable, Equatable {
        /// The LIS endpoint; nil when `url = ""` (no delivery).
        var url: String?
        /// The file holding the `whsec_…` signing secret; required when `url` is set.
        var secretFile: String?
        var format: WebhookFormat
        /// Plain http is allowed only when true (loopback tests).
        var allowHTTP: Bool
        var retryInitialSeconds: Double
        var retryMaxSeconds: Double
        var retryWindowHours: Double
    }

    struct Log: Sendable, Equatable {
        var level: Logger.Level
    }

    struct Ingest: Sendable, Equatable {
        /// The level-0 resolution (µm per pixel) assumed for slides without usable resolution metadata; nil
        /// (`assume_mpp = 0`) refuses such slides.
        var assumeMPP: Double?
    }

    /// The file this configuration was read from.
    var sourcePath: String
    var watch: Watch
    var output: Output
    var state: State
    var model: Model
    var webhook: Webhook
    var log: Log
    var ingest = Ingest()
}
