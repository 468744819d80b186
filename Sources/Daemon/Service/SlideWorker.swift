import Dispatch
import Errors
import Foundation
import Logging
import Notify
import Store
import Synchronization

/// Scores the job store's queue, one slide at a time, on a thread of its own (OpenSlide and BLAS block).
///
/// For each job: claim it (processing, under a lease the host's heartbeat renews) → `SlidePipeline` writes the
/// report folder → the file is checked again (a slide whose content changed meanwhile is discarded and queued
/// afresh by the watcher) → in one transaction the job becomes `reported` and its outbox rows (one per configured
/// destination: webhook, HL7) are queued → the delivery worker is woken. A failed slide gets a `failed` report and a `slide.failed` event like any
/// other result; a report that cannot be written (disk full) is retried later. On shutdown the slide in progress
/// is put back (released) between two batches and scored again at the next start.
///
/// With a shared store: a slide another host took over (this host's lease ran out) is dropped between two batches;
/// while the database is away the worker keeps its slide, and a finished report waits — retried with backoff —
/// until the database takes it, so no result is lost.
final class SlideWorker: @unchecked Sendable {
    /// Claims of one job that may end without an outcome (the process died) before it is reported as failed.
    static let maximumAttempts = 3

    private let store: JobStore
    private let host: String
    private let heartbeat: HostHeartbeat
    private let health: StoreHealth
    private let pipeline: SlidePipeline
    private let settings: LiveSettings
    private let progress: DaemonProgress
    private let stateDirectory: String
    private let logger: Logger
    private let wakeDelivery: @Sendable () -> Void
    private let signal = DispatchSemaphore(value: 0)
    private let stopRequested = Atomic<Bool>(false)

    init(
        store: JobStore, host: String, heartbeat: HostHeartbeat, health: StoreHealth, pipeline: SlidePipeline,
        settings: LiveSettings, progress: DaemonProgress,
        stateDirectory: String, logger: Logger, wakeDelivery: @escaping @Sendable () -> Void
    ) {
        self.store = store
        self.host = host
        self.heartbeat = heartbeat
        self.health = health
        self.pipeline = pipeline
        self.settings = settings
        self.progress = progress
        self.stateDirectory = stateDirectory
        self.logger = logger
        self.wakeDelivery = wakeDelivery
    }

    /// Something was queued: look at the store now rather than at the next poll.
    func wake() { signal.signal() }

    /// Asks `run()` to return; the slide in progress is put back at its next batch.
    func stop() {
        stopRequested.store(true, ordering: .sequentiallyConsistent)
        signal.signal()
    }

    var isStopping: Bool { stopRequested.load(ordering: .sequentiallyConsistent) }

    /// Works until `stop()`.
    func run() {
        progress.setState("idle")
        while !isStopping {
            do {
                progress.setQueued(try store.counts().settled)
                guard
                    let job = try store.claimNext(
                        now: Date().timeIntervalSince1970, leaseSeconds: heartbeat.leaseSeconds, holder: host)
                else {
                    health.succeeded("worker")
                    _ = signal.wait(timeout: .now() + 5)
                    continue
                }
                health.succeeded("worker")
                heartbeat.hold(job)
                defer { heartbeat.drop(job.id) }
                TestHooks.pauseIfRequested(.claimed, stateDirectory: stateDirectory)
                process(job)
            } catch {
                _ = signal.wait(timeout: .now() + health.failed("worker", error))
            }
        }
    }

    private func process(_ job: Job) {
        let name = URL(fileURLWithPath: job.path).lastPathComponent
        var metadata: Logger.Metadata = ["slide": "\(name)", "stage": "score"]
        if let fingerprint = job.fingerprint {
            metadata["event_id"] = "\(SlidePipeline.eventID(fingerprint: fingerprint))"
        }
        logger.info(
            "scoring slide",
            metadata: metadata.merging(["attempt": "\(job.attempts)"].merging(MessageID.slideScoring.metadata) { $1 }) {
                $1
            })
        progress.started(jobID: job.id, path: job.path)
        let outcome: SlidePipeline.Outcome
        if job.attempts > Self.maximumAttempts {
            // Claimed this often without an outcome: each attempt ended with the process (a crash in a decoder, the
            // OOM killer). Reported as failed instead of crashing the daemon again and again.
            outcome = pipeline.fail(
                path: job.path,
                error: PipelineError(
                    code: .crashed, subject: job.path,
                    message: "scoring stopped the daemon \(job.attempts - 1) times (a crash or the memory limit)",
                    fix: "check the journal; the slide may be damaged or too large for this machine"))
        } else {
            outcome = pipeline.score(path: job.path, observer: Observer(worker: self, jobID: job.id))
        }
        TestHooks.holdIfRequested("scored", stateDirectory: stateDirectory)
        var status: String? = nil
        defer { progress.finished(jobID: job.id, status: status) }
        do {
            if outcome.cancelled, heartbeat.isLost(job.id) {
                logger.warning(
                    "slide taken over by another host after this host's lease ran out; dropped here",
                    metadata: metadata)
                return
            }
            if outcome.cancelled {
                try store.release(jobID: job.id, token: job.leaseToken)
                logger.notice(
                    "slide put back for the next start",
                    metadata: metadata.merging(MessageID.slideInterrupted.metadata) { $1 })
                return
            }
            // The file must still hold the content that was settled and scored.
            if let fingerprint = job.fingerprint, (try? SlidePipeline.fingerprint(path: job.path)) != fingerprint {
                if let folder = outcome.folder { try? FileManager.default.removeItem(atPath: folder) }
                try store.discard(jobID: job.id, now: Date().timeIntervalSince1970)
                if access(job.path, F_OK) != 0 && errno == ENOENT {
                    // Deleted (or moved away) while it was scored: no file will settle at this path again, so the
                    // discarded row must not wait there as a slide still settling. A copy elsewhere in the folder
                    // is found by the watcher as a new file.
                    try store.forgetDiscovered(path: job.path)
                    logger.warning(
                        "slide deleted while it was scored; forgotten",
                        metadata: metadata.merging(MessageID.slideChanged.metadata) { $1 })
                    return
                }
                logger.warning(
                    "slide changed while it was scored; discarded, it is scored again once it settles",
                    metadata: metadata.merging(MessageID.slideChanged.metadata) { $1 })
                return
            }
            guard let folder = outcome.folder else {
                let failure = ErrorSummary(
                    outcome.writeError
                        ?? PipelineError(
                            code: .reportNotWritten, subject: job.path, message: "the report could not be written",
                            fix: PipelineError.reportBug))
                let decision = try store.retryLater(
                    jobID: job.id, token: job.leaseToken, code: failure.code, message: failure.text,
                    now: Date().timeIntervalSince1970)
                logger.error(
                    "report not written",
                    metadata: metadata.merging(
                        [
                            "code": "\(failure.code)", "error": "\(failure.text)", "decision": "\(decision)",
                            "message_id": "\(MessageID.reportNotWritten.rawValue)",
                        ]) { $1 })
                status = decision == .gaveUp ? "failed" : nil
                return
            }
            TestHooks.pauseIfRequested(.reportWritten, stateDirectory: stateDirectory)
            let report = outcome.report
            let result = JobResult(
                status: report.status.rawValue, probability: report.result?.probability, label: report.result?.label,
                errorCode: report.error?.code, errorMessage: report.error?.message, qcStatus: report.qc?.status,
                qcReasons: report.qc?.reasons ?? [])
            let messages = try settings.current.messages(for: report, folder: folder)
            // The report is written: the database must take it, however long it is away.
            let recorded: Void? = try health.retrying(
                "worker", isStopping: { isStopping }, wait: { _ = signal.wait(timeout: .now() + $0) }
            ) {
                try store.complete(
                    jobID: job.id, eventID: report.eventID, reportDirectory: folder, result: result, outbox: messages,
                    now: Date().timeIntervalSince1970)
            }
            guard recorded != nil else {
                logger.warning(
                    "stopped before the job store took the report; the slide is scored again at the next start",
                    metadata: metadata.merging(["report": "\(folder)"]) { $1 })
                return
            }
            TestHooks.pauseIfRequested(.committed, stateDirectory: stateDirectory)
            status = report.status.rawValue
            if !messages.isEmpty { wakeDelivery() }
            logger.info(
                "slide reported",
                metadata: metadata.merging(
                    [
                        "event_id": "\(report.eventID)", "status": "\(report.status.rawValue)",
                        "report": "\(folder)", "stage": "report",
                        "message_id": "\(MessageID.slideReported.rawValue)",
                    ]) { $1 })
        } catch {
            logger.error(
                "job store: cannot record the slide's outcome", metadata: metadata.merging(.error(error)) { $1 })
        }
    }

    /// Feeds progress to `DaemonProgress` (status, watchdog), and stops the slide on shutdown or when another
    /// host took it over. (The lease is the heartbeat's: ``HostHeartbeat``.)
    private final class Observer: SlidePipeline.Observer {
        let worker: SlideWorker
        let jobID: Int64

        init(worker: SlideWorker, jobID: Int64) {
            self.worker = worker
            self.jobID = jobID
        }

        func tilesFound(_ total: Int) { worker.progress.tilesFound(total, jobID: jobID) }

        func tilesEmbedded(_ count: Int) { worker.progress.tilesEmbedded(count, jobID: jobID) }

        var shouldStop: Bool { worker.isStopping || worker.heartbeat.isLost(jobID) }
    }
}

/// The settings that a SIGHUP may change while the daemon runs: what each result becomes in the outbox.
final class LiveSettings: Sendable {
    private let publishing: Mutex<Publishing>

    init(_ publishing: Publishing) { self.publishing = Mutex(publishing) }

    var current: Publishing { publishing.withLock { $0 } }

    func update(_ new: Publishing) { publishing.withLock { $0 = new } }
}
