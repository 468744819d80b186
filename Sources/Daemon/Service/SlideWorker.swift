import Errors
import Foundation
import Logging
import Notify
import Store
import Synchronization
import Threads

/// Scores the job store's queue, one slide at a time, on a thread of its own (OpenSlide and BLAS block).
///
/// For each job: claim it (processing, under a lease the host's heartbeat renews) → `SlidePipeline` writes the
/// report folder → the file is checked again (a slide whose content changed meanwhile is discarded and queued
/// afresh by the watcher) → in one transaction the job becomes `reported` and its outbox rows (one per configured
/// destination: webhook, HL7) are queued → the delivery worker is woken. A failed slide gets a `failed` report and a `slide.failed` event like any
/// other result. A folder that is full or refuses writes (`ENOSPC`, `EDQUOT`, `EROFS`, `EACCES` on the output or
/// state folder, a full SQLite file) fails no slide: the worker waits (``ResourceGate``: every worker stops
/// claiming, STATUS= and `csmil status` say why) and goes on when writes go through again — a report already
/// scored is kept in memory and written then, a slide stopped by its spill file is put back and scored again, a
/// report the job store could not take is recorded then. Other failures to write a report are retried later. On
/// shutdown the slide in progress is put back (released) between two batches and scored again at the next start.
///
/// With a shared store: a slide another host took over (this host's lease ran out) is dropped between two batches;
/// while the database is away the worker keeps its slide, and a finished report waits — retried with backoff
/// (``StoreHealth``) — until the database takes it, so no result is lost.
///
/// `@unchecked Sendable`: `store` is used only on the worker's thread (inside ``run()``); other threads call only
/// ``wake()`` and ``stop()``, which touch a ``Wakeup`` and an `Atomic`.
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
    private let gate: ResourceGate
    private let stateDirectory: String
    private let logger: Logger
    private let wakeDelivery: @Sendable () -> Void
    private let signal = Wakeup()
    private let stopRequested = Atomic<Bool>(false)

    init(
        store: JobStore, host: String, heartbeat: HostHeartbeat, health: StoreHealth, pipeline: SlidePipeline,
        settings: LiveSettings, progress: DaemonProgress, gate: ResourceGate, stateDirectory: String, logger: Logger,
        wakeDelivery: @escaping @Sendable () -> Void
    ) {
        self.store = store
        self.host = host
        self.heartbeat = heartbeat
        self.health = health
        self.pipeline = pipeline
        self.settings = settings
        self.progress = progress
        self.gate = gate
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
            // A folder full or read-only: claim nothing until it takes writes again.
            if let delay = gate.probe() {
                signal.wait(timeout: delay)
                continue
            }
            do {
                progress.setQueued(try store.counts().settled)
                guard
                    let job = try store.claimNext(
                        now: Date().timeIntervalSince1970, leaseSeconds: heartbeat.leaseSeconds, holder: host)
                else {
                    health.succeeded("worker")
                    signal.wait(timeout: 5)
                    continue
                }
                health.succeeded("worker")
                heartbeat.hold(job)
                defer { heartbeat.drop(job.id) }
                TestHooks.pauseIfRequested(.claimed, stateDirectory: stateDirectory)
                TestHooks.holdIfRequested("claimed", stateDirectory: stateDirectory)
                process(job)
            } catch {
                if let problem = resourceProblem(error) {
                    signal.wait(timeout: gate.failed(problem, slide: nil))
                    continue
                }
                // The database away (a shared store): backoff 1 … 30 s, said in STATUS= and the journal.
                signal.wait(timeout: health.failed("worker", error))
            }
        }
    }

    private func process(_ job: Job) {
        let name = URL(fileURLWithPath: job.path).lastPathComponent
        var metadata: Logger.Metadata = ["slide": "\(name)", "stage": "score"]
        if let fingerprint = job.fingerprint {
            metadata["event_id"] = "\(pipeline.eventID(fingerprint: fingerprint))"
        }
        logger.info(
            "scoring slide",
            metadata: metadata.merging(["attempt": "\(job.attempts)"].merging(MessageID.slideScoring.metadata) { $1 }) {
                $1
            })
        progress.started(jobID: job.id, path: job.path)
        var outcome: SlidePipeline.Outcome
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
            outcome = pipeline.score(
                path: job.path, fingerprint: job.fingerprint, observer: Observer(worker: self, jobID: job.id))
        }
        TestHooks.holdIfRequested("scored", stateDirectory: stateDirectory)
        var status: String? = nil
        defer { progress.finished(jobID: job.id, status: status) }
        do {
            // Scored, but the output folder is full or refuses writes: keep the report, write it once it can be.
            while let problem = outcome.resource, let files = outcome.files {
                progress.finished(jobID: job.id, status: nil)  // waiting is not a stalled slide (watchdog)
                signal.wait(timeout: gate.failed(problem, slide: name))
                if isStopping {
                    outcome.cancelled = true
                    break
                }
                // The lease stays held meanwhile: the heartbeat renews it (``HostHeartbeat``).
                outcome = pipeline.write(files)
                if outcome.folder != nil { gate.cleared() }
            }
            if !outcome.cancelled, let problem = outcome.resource {
                // Stopped by the state folder (the spill file): not an attempt; scored again once there is room.
                _ = try untilStored(name) { _ = try store.release(jobID: job.id, token: job.leaseToken) }
                _ = gate.failed(problem, slide: name)
                return
            }
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
            // The report is written: the job store must take it, however long the state folder is full or the
            // database away.
            let recorded = try untilStored(name) {
                try store.complete(
                    jobID: job.id, eventID: report.eventID, reportDirectory: folder, result: result,
                    outbox: messages, now: Date().timeIntervalSince1970)
            }
            guard recorded else {
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

    /// The folder problem behind a failure (the state folder full: a full SQLite file, the spill file), if it is one.
    private func resourceProblem(_ error: any Error) -> ResourceProblem? {
        ResourceProblem.classify(
            error, outputDirectory: pipeline.writer.outputDirectory, stateDirectory: stateDirectory)
    }

    /// Runs a change of the job store until it goes through, waiting while the state folder is full
    /// (``ResourceGate``) or the database cannot be reached (``StoreHealth``: backoff 1 … 30 s); false when the
    /// daemon stops first. Other errors (a change the job's state refuses) are thrown.
    private func untilStored(_ slide: String, _ change: () throws -> Void) throws -> Bool {
        var waited = false
        var unreachable = false
        while true {
            do {
                try change()
                if waited { gate.cleared() }
                if unreachable { health.succeeded("worker") }
                return true
            } catch {
                if let problem = resourceProblem(error) {
                    if isStopping { return false }
                    waited = true
                    signal.wait(timeout: gate.failed(problem, slide: slide))
                } else if StoreHealth.mayPass(error) {
                    if isStopping { return false }
                    unreachable = true
                    signal.wait(timeout: health.failed("worker", error))
                } else {
                    throw error
                }
            }
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

/// The settings that a SIGHUP may change while the daemon runs: the destinations, whose `encode` makes each result's
/// outbox rows (the delivery worker gets the same destinations).
final class LiveSettings: Sendable {
    private let destinations: Mutex<[Destination]>

    init(_ destinations: [Destination]) { self.destinations = Mutex(destinations) }

    var current: [Destination] { destinations.withLock { $0 } }

    func update(_ new: [Destination]) { destinations.withLock { $0 = new } }
}
