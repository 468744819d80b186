import Inference
import Ingest
import Logging
import Store

/// The validated contents of `csmil.toml`. Paths are absolute (relative ones are resolved
/// against the folder that holds the configuration file).
struct Configuration: Sendable, Equatable {
    /// How the watch folder is observed (`auto`, `inotify`, `poll`): the watcher's own setting.
    typealias PollingMode = WatchSettings.Polling

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
        /// Glob patterns of file and folder names that are never slides.
        var ignore: [String] = Configuration.defaultIgnore
        /// The interval of the safety-net full rescan in inotify mode.
        var rescanSeconds: Double = 600
        /// The interval of the folder scan in polling mode.
        var pollSeconds: Double = 5
    }

    /// `[watch] ignore` when not set: the watcher's defaults (dot files and folders, files still being written).
    static let defaultIgnore = WatchSettings.defaultIgnore

    struct Output: Sendable, Equatable {
        /// Where each slide's report folder is written.
        var directory: String
    }

    struct State: Sendable, Equatable {
        /// The SQLite job store (unless `database` is set) and the feature spill files.
        var directory: String
        /// A PostgreSQL database that several hosts share (`[state] database`); nil for SQLite in `directory`.
        var database: PostgresURL? = nil
        /// The file holding the database's password.
        var databasePasswordFile: String? = nil
        /// This host's name in the shared store (`[state] host_name`, the machine's host name by default).
        var hostName: String = Configuration.machineHostName
        /// How long a claim on a slide (or an event being sent) holds without a heartbeat (`[state] lease_seconds`).
        var leaseSeconds: Double = 120
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
        /// Seconds to establish a connection (TCP and TLS).
        var connectTimeoutSeconds: Double = 10
        /// Seconds for a whole request.
        var timeoutSeconds: Double = 30
        /// A PEM bundle of CA certificates to trust instead of the system's; nil for the system's.
        var caFile: String?
        /// A PEM client certificate for mutual TLS; nil for none.
        var clientCertificate: String?
        /// The client certificate's PEM private key; nil for none (or when it is inside the certificate file).
        var clientKey: String?
        /// A proxy URL; nil for none (proxy environment variables are ignored).
        var proxy: String?
        /// With `format = "fhir"`: a transaction Bundle instead of one DiagnosticReport.
        var fhirBundle = false
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
    var pipeline = Pipeline()
    var identity = Identity()
    var hl7 = HL7()
    /// `[qc]`: quality control of each slide's tiles.
    var qc = QualitySettings()

    struct Pipeline: Sendable, Equatable {
        /// Slides scored at the same time, each by a worker of its own.
        var maxConcurrentSlides = 1
        /// Threads each slide's embedder uses; nil shares the cores among the slides.
        var threads: Int?
        /// Tiles per embedder batch; nil: 4 per thread (`TripletEmbedder.defaultBatchSize`).
        var batch: Int?
        /// The backbones' number format (`precision = "fp32" | "bf16"`).
        var precision: Precision = .fp32
        /// `bf16_recheck_margin`: at bf16, a slide whose probability is within this of the model's threshold is
        /// scored again at fp32 and reported with fp32's result; 0 never rechecks. Unused at fp32.
        var bf16RecheckMargin = Configuration.Pipeline.defaultRecheckMargin

        /// The default margin: above the largest bf16-vs-fp32 difference measured on the sweep slides (0.046,
        /// docs/precision.md), so that bf16 gives the published decision on every slide that was measured.
        static let defaultRecheckMargin = 0.05

        /// The threads per slide: `threads`, or the cores divided among the slides (at least 1).
        func threadsPerSlide(cores: Int) -> Int { threads ?? max(1, cores / maxConcurrentSlides) }

        /// Tiles per embedder batch for `threads` threads: `batch`, or 4 per thread.
        func batchSize(threads: Int) -> Int { batch ?? TripletEmbedder.defaultBatchSize(threads: threads) }
    }
}

extension Configuration.Watch {
    /// These keys as the watcher's settings (`WatchFolder` in Ingest).
    var settings: WatchSettings {
        return WatchSettings(
            directory: directory, settleSeconds: settleSeconds, polling: polling, ignore: ignore,
            rescanSeconds: rescanSeconds, pollSeconds: pollSeconds)
    }
}
