import Errors
import Foundation
import Inference
import Ingest
import Logging
import Notify
import ServiceLifecycle
import Store
import Synchronization
import Threads
import UnixSignals

/// `csmil watch`: the daemon. Sets up every part, reports READY=1 to systemd once the configuration, the job
/// store, the model and the watches are up, and runs them as one `ServiceGroup` until SIGTERM or SIGINT:
///
/// - the watcher (`WatchFolder`, a ``BlockingService``: `poll` and OpenSlide probes block): settled slides →
///   fingerprint → job store (`settled`), rejected files → one `failed` record; wakes the workers;
/// - the workers (`SlideWorker`, ``BlockingService``s: OpenSlide and BLAS block): the queue, one slide at a time
///   each, report and outbox row in one transaction;
/// - the delivery worker (`OutboxDelivery`, an async service on a dedicated thread, in a ``DeliverySwitch``) when a
///   `[webhook]` or `[hl7]` url is set (a reload switches it on and off);
/// - the heartbeat (``HostHeartbeat``, a ``BlockingService``): renews the leases of the slides this host scores and
///   records its STATUS= line for `csmil status` on any host;
/// - with a shared database, the listener (``StoreListener``, a ``BlockingService``): `LISTEN` wakes idle workers
///   and the delivery worker when another host queued work (polling covers without it);
/// - the status timer: STATUS= and WATCHDOG=1 for systemd, `<state>/daemon.json` for `csmil status`;
/// - SIGHUP: the configuration file is read again; a bad file is logged and the old settings stay.
///
/// Shutdown (SIGTERM, SIGINT) is cancellation, service by service in reverse order: STOPPING=1, the watcher stops
/// taking slides, each worker puts the slide in progress back between two batches (it is scored again at the next
/// start), the delivery worker abandons its request (the row stays pending), the status timer writes a last
/// snapshot.
struct WatchDaemon {
    let configurationPath: String
    let configuration: Configuration
    let logger: Logger

    /// `<state>/daemon.json`: the live snapshot `csmil status` reads.
    static func snapshotPath(stateDirectory: String) -> String { stateDirectory + "/daemon.json" }

    func run() async throws {
        let notifier = SystemdNotifier()
        let configuration = self.configuration
        let logger = self.logger
        let stateDirectory = configuration.state.directory
        // Before anything else: a TLS file that cannot be used (or a secret that cannot be read) would fail every
        // delivery for the whole retry window, so the daemon does not start (a configuration error naming the key,
        // the file and the fix, as csmil doctor reports it).
        let destinations = try configuration.deliveryDestinations()
        if let exposed = Doctor.exposedSecret(configuration) {
            logger.warning("the webhook secret is not private", metadata: ["problem": "\(exposed)"])
        }
        notifier.status("starting: opening the job store")
        try Self.createMissingFolders(configuration, logger: logger)
        let lock = try StateFolderLock(stateDirectory: stateDirectory)
        let workDirectory = try SpillFiles.workDirectory(state: stateDirectory)
        SpillFiles.removeLeftoverSpillFiles(in: workDirectory, logger: logger)

        let progress = DaemonProgress(
            watchFolder: configuration.watch.directory, watchMode: "starting",
            stallLimit: Self.stallLimit(notifier.watchdogInterval))
        let slots = configuration.pipeline.maxConcurrentSlides
        let host = configuration.state.hostName
        let location = configuration.storeLocation
        let health = StoreHealth(location: location.description, progress: progress, logger: logger)
        // A shared database may be away when csmil starts: it waits for it, saying so in STATUS= and the journal.
        var workerStores: [JobStore] = []
        for index in 0..<slots {
            workerStores.append(
                try await Self.openStore(
                    location, name: "csmil \(host) worker \(index)", notifier: notifier, health: health))
        }
        let watcherStore = try await Self.openStore(
            location, name: "csmil \(host) watcher", notifier: notifier, health: health)
        let heartbeatStore = try await Self.openStore(
            location, name: "csmil \(host) heartbeat", notifier: notifier, health: health)
        let heartbeat = HostHeartbeat(host: host, leaseSeconds: configuration.state.leaseSeconds)
        try heartbeatStore.registerHost(
            name: host, instance: heartbeat.instance, machine: Self.machine(stateDirectory: stateDirectory),
            pid: Int(getpid()), version: Product.version, leaseSeconds: heartbeat.leaseSeconds,
            now: Date().timeIntervalSince1970)
        // Jobs a previous run of this host left processing (it crashed) are claimable at once: this process holds
        // the state folder's lock, so no other process of this host works on them. Done before any worker claims.
        let interrupted = try watcherStore.expireLeases(holder: host, now: Date().timeIntervalSince1970)
        if interrupted > 0 {
            logger.notice("slides interrupted by a crash are scored again", metadata: ["count": "\(interrupted)"])
        }
        // Likewise events a previous run of this host was sending when it died: sent again now, with the same id.
        let unsent = try Outbox(database: watcherStore.database).releaseClaims(holder: host)
        if unsent > 0 {
            logger.notice("events interrupted mid-send by a crash are sent again", metadata: ["count": "\(unsent)"])
        }

        notifier.status("starting: loading the model")
        let (pipeline, modelName) = try await DedicatedThread.run(name: "csmil-load") {
            () throws -> (SlidePipeline, String) in
            let manifest = try ModelManifest.load(directory: configuration.model.directory)
            // A precision this CPU cannot run stops the start here, with the reason.
            let precision = configuration.pipeline.precision
            try precision.prepare(architecture: manifest.architecture)
            var pipeline = SlidePipeline(
                model: try Model(manifest: manifest, precision: precision),
                modelReport: try SlidePipeline.modelReport(for: manifest, precision: precision),
                writer: ReportWriter(outputDirectory: configuration.output.directory), workDirectory: workDirectory,
                logger: logger, assumeMPP: configuration.ingest.assumeMPP)
            pipeline.workers = configuration.pipeline.threadsPerSlide(cores: Parallel.workers)
            pipeline.batch = configuration.pipeline.batch
            pipeline.quality = configuration.qc
            pipeline.identityPattern = configuration.identity.compiled()
            pipeline.identityRequired = configuration.identity.required
            pipeline.recheck = try SlidePipeline.Recheck.load(
                manifest: manifest, precision: precision, margin: configuration.pipeline.bf16RecheckMargin,
                modelReport: pipeline.modelReport)
            return (pipeline, manifest.name)
        }

        let running = RunningFlags()
        let delivery = DeliverySwitch(
            destinations.isEmpty ? nil : try configuration.deliveryConfiguration(destinations: destinations),
            flags: running, logger: logger)
        let settings = LiveSettings(destinations)
        let gate = ResourceGate(progress: progress, logger: logger)
        let workers = workerStores.map { store in
            SlideWorker(
                store: store, host: host, heartbeat: heartbeat, health: health, pipeline: pipeline,
                settings: settings, progress: progress, gate: gate, stateDirectory: stateDirectory, logger: logger,
                wakeDelivery: { delivery.wake() })
        }

        notifier.status("starting: watching \(configuration.watch.directory)")
        // The watcher's own connection, used on its thread only; the lock says so to the compiler.
        let watcherConnection = Mutex(watcherStore)
        let watcherStop = StopSignal()
        let watcher = try WatchFolder(settings: configuration.watch.settings, logger: logger) { event in
            watcherConnection.withLock { store in
                Self.handle(
                    event, store: store, stateDirectory: stateDirectory, logger: logger,
                    eventID: { pipeline.eventID(fingerprint: $0) },
                    wakeWorker: { for worker in workers { worker.wake() } }, health: health, stop: watcherStop)
            }
        }
        // The heartbeat's own connection, used on its thread only.
        let heartbeatConnection = Mutex(heartbeatStore)
        progress.setWatchMode(watcher.mode.kind.rawValue)

        // SIGHUP is trapped before READY=1: systemd may send a reload as soon as it is told the service is up, and
        // SIGHUP's default action would end the daemon. Signals that come before ReloadService runs are buffered.
        let reloadSignals = await UnixSignalsSequence(trapping: .sighup)
        let reload = ReloadService(
            configurationPath: configurationPath, initial: configuration, settings: settings, delivery: delivery,
            signals: reloadSignals, notifier: notifier,
            acknowledgementFolder: ReloadAcknowledgement.folder(stateDirectory: stateDirectory), logger: logger)
        reload.acknowledge(generation: 0, applied: true, message: "started")
        var services: [any Service] = [
            StatusService(
                notifier: notifier, progress: progress,
                snapshotPath: Self.snapshotPath(stateDirectory: stateDirectory), running: running,
                needsDelivery: { delivery.isOn }, logger: logger),
            reload, delivery,
        ]
        for (index, worker) in workers.enumerated() {
            services.append(
                BlockingService(name: "csmil-worker-\(index)", body: { worker.run() }, stop: { worker.stop() }))
        }
        services.append(
            BlockingService(
                name: "csmil-heartbeat",
                body: {
                    heartbeatConnection.withLock { store in
                        heartbeat.run(
                            store: store, health: health, status: { progress.statusLine() }, logger: logger)
                    }
                }, stop: { heartbeat.stop() }))
        if location.isShared {
            let listener = StoreListener(
                location: location, logger: logger, onJobs: { for worker in workers { worker.wake() } },
                onOutbox: { delivery.wake() })
            services.append(
                BlockingService(name: "csmil-listen", body: { listener.run() }, stop: { listener.stop() }))
        }
        services.append(
            BlockingService(
                name: "csmil-watch",
                body: {
                    running.set(watcher: true)
                    watcher.run()
                    running.set(watcher: false)
                },
                stop: {
                    notifier.stopping(status: "stopping: finishing or putting back the slide in progress")
                    watcherStop.stop()
                    watcher.stop()
                }))

        notifier.ready(
            status:
                "ready: watching \(configuration.watch.directory) (\(watcher.mode.kind.rawValue)), model \(modelName)")
        logger.notice(
            "csmil watch ready",
            metadata: [
                "folder": "\(configuration.watch.directory)", "mode": "\(watcher.mode.kind.rawValue)",
                "model": "\(modelName)", "webhook": "\(configuration.webhook.url == nil ? "none" : "on")",
                "hl7": "\(configuration.hl7.url == nil ? "none" : "on")",
                "message_id": "\(MessageID.ready.rawValue)",
            ])
        let group = ServiceGroup(
            configuration: .init(
                services: services.map { .init(service: $0) }, gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
        heartbeatConnection.withLock { store in
            try? store.stopHost(name: host, instance: heartbeat.instance, now: Date().timeIntervalSince1970)
        }
        withExtendedLifetime(lock) {}
        logger.notice("csmil watch stopped", metadata: MessageID.stopped.metadata)
    }

    /// Opens the store, waiting (with backoff) while a shared database cannot be reached; other errors (a bad
    /// password, a schema too new, a damaged file) end the start at once.
    static func openStore(
        _ location: StoreLocation, name: String, notifier: SystemdNotifier, health: StoreHealth
    ) async throws -> JobStore {
        while true {
            do {
                // Connecting blocks (a server that does not answer: up to libpq's connect timeout).
                let store = try await DedicatedThread.run(name: "csmil-open") {
                    try JobStore.open(location, applicationName: name)
                }
                health.succeeded("start")
                return store
            } catch  where StoreHealth.mayPass(error) {
                let delay = health.failed("start", error)
                notifier.status(
                    "starting: waiting for the job store \(location) (\(ErrorSummary(error).text)); retrying in "
                        + "\(Int(delay)) s")
                // Waiting for the database is starting, not hanging: systemd's start timeout is pushed on.
                notifier.notify("EXTEND_TIMEOUT_USEC=\(Int((delay + 60) * 1_000_000))")
                try await Task.sleep(for: .seconds(delay))
            }
        }
    }

    /// What tells this host's own restart from another machine using its name: the machine id and the state
    /// folder (whose lock proves an earlier process of it gone).
    static func machine(stateDirectory: String) -> String {
        let id = (try? String(contentsOfFile: "/etc/machine-id", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines)
        return (id.flatMap { $0.isEmpty ? nil : $0 } ?? Configuration.machineHostName) + ":" + stateDirectory
    }

    /// One watcher event, on the watcher's thread with its own job store connection. While the store cannot be
    /// reached the watcher waits here, retrying (its folder keeps; a rescan would find the files anyway), until the
    /// store answers or `stop` is signalled.
    static func handle(
        _ event: WatchEvent, store: JobStore, stateDirectory: String, logger: Logger,
        eventID: (String) -> String,
        wakeWorker: @Sendable () -> Void, health: StoreHealth? = nil, stop: StopSignal? = nil
    ) {
        /// `body`, retried while the store is away (when a `health` is given); nil when stopped first.
        func recording<Result>(_ body: () throws -> Result) throws -> Result? {
            guard let health else { return try body() }
            return try health.retrying(
                "watcher", isStopping: { stop?.isStopped ?? false }, wait: { seconds in stop?.wait(seconds) }, body)
        }

        let now = Date().timeIntervalSince1970
        do {
            switch event {
            case .settled(let slide):
                let name = URL(fileURLWithPath: slide.path).lastPathComponent
                let fingerprint: String
                do {
                    fingerprint = try SlidePipeline.fingerprint(path: slide.path)
                } catch {
                    _ = try recording {
                        try recordUnreadable(
                            path: slide.path, size: slide.size, modified: slide.modified,
                            reason: ErrorSummary(error).text, store: store, now: now, logger: logger)
                    }
                    return
                }
                guard
                    let outcome = try recording({
                        try store.recordSettled(
                            path: slide.path, fingerprint: fingerprint, size: slide.size,
                            modified: slide.modified.timeIntervalSince1970, now: now)
                    })
                else { return }
                TestHooks.pauseIfRequested(.settled, stateDirectory: stateDirectory)
                switch outcome {
                case .queued, .newVersion:
                    logger.info(
                        "slide queued",
                        metadata: [
                            "slide": "\(name)", "event_id": "\(eventID(fingerprint))",
                            "stage": "watch", "message_id": "\(MessageID.slideQueued.rawValue)",
                        ])
                    wakeWorker()
                case .alreadyKnown(let job):
                    logger.info(
                        "slide already known by its content; not scored again",
                        metadata: [
                            "slide": "\(name)", "state": "\(job.state.rawValue)", "stage": "watch",
                            "message_id": "\(MessageID.slideDuplicate.rawValue)",
                        ])
                }
            case .rejected(let file)
            where slideExtensions.contains(URL(fileURLWithPath: file.path).pathExtension.lowercased()):
                // A slide's name but OpenSlide refuses it (corrupt, truncated): queued like a slide, so the worker
                // writes a `failed` report and sends `slide.failed`, and the lab hears about it. One csmil cannot
                // read at all (permissions) has no content to report: it is counted as failed, with the reason.
                let fingerprint: String
                do {
                    guard file.code != SlideError.Code.unreadable.rawValue else {
                        _ = try recording {
                            try recordUnreadable(
                                path: file.path, size: file.size, modified: file.modified, reason: file.reason,
                                store: store, now: now, logger: logger)
                        }
                        return
                    }
                    fingerprint = try SlidePipeline.fingerprint(path: file.path)
                } catch {
                    _ = try recording {
                        try recordUnreadable(
                            path: file.path, size: file.size, modified: file.modified,
                            reason: ErrorSummary(error).text, store: store, now: now, logger: logger)
                    }
                    return
                }
                guard
                    let outcome = try recording({
                        try store.recordSettled(
                            path: file.path, fingerprint: fingerprint, size: file.size,
                            modified: file.modified.timeIntervalSince1970, now: now)
                    })
                else { return }
                logger.warning(
                    "slide cannot be opened; it is reported as failed",
                    metadata: [
                        "slide": "\(URL(fileURLWithPath: file.path).lastPathComponent)", "reason": "\(file.reason)",
                        "stage": "watch",
                    ])
                if case .alreadyKnown = outcome { return }
                wakeWorker()
            case .rejected(let file):
                guard
                    try recording({
                        try store.recordRejected(
                            path: file.path, size: file.size, modified: file.modified.timeIntervalSince1970,
                            code: file.code, message: file.reason, now: now)
                    }) != nil
                else { return }
                logger.warning(
                    "file is not a slide",
                    metadata: [
                        "slide": "\(URL(fileURLWithPath: file.path).lastPathComponent)", "code": "\(file.code)",
                        "reason": "\(file.reason)", "stage": "watch",
                        "message_id": "\(MessageID.notASlide.rawValue)",
                    ])
            default:
                logger.info("watch folder event", metadata: ["event": "\(event)"])
            }
        } catch {
            logger.error("job store: cannot record a watch event", metadata: .error(error))
        }
    }

    /// A file csmil cannot read (permissions, a file gone unreadable since it settled): one `failed` record with the
    /// reason, so `csmil status` counts and names it. It is read again once it changes (or `csmil requeue`); a file
    /// that went away meanwhile is forgotten instead.
    static func recordUnreadable(
        path: String, size: Int64, modified: Date, reason: String, store: JobStore, now: Double, logger: Logger
    ) throws {
        let name = URL(fileURLWithPath: path).lastPathComponent
        if access(path, F_OK) != 0 && errno == ENOENT {
            try store.forgetDiscovered(path: path)
            logger.info("file went away before it was read", metadata: ["slide": "\(name)", "stage": "watch"])
            return
        }
        let message = reason + " (once csmil may read it, touch the file to have it read again)"
        try store.recordRejected(
            path: path, size: size, modified: modified.timeIntervalSince1970, code: SlideError.Code.unreadable.rawValue,
            message: message, now: now)
        logger.warning(
            "file cannot be read; counted as failed",
            metadata: [
                "slide": "\(name)", "code": "\(SlideError.Code.unreadable.rawValue)", "reason": "\(message)",
                "stage": "watch", "message_id": "\(MessageID.notASlide.rawValue)",
            ])
    }

    /// File name extensions of slide formats OpenSlide reads: a file so named that it refuses is a broken slide.
    static let slideExtensions: Set<String> = [
        "svs", "tif", "tiff", "ndpi", "vms", "vmu", "scn", "mrxs", "svslide", "bif", "dcm", "czi",
    ]

    /// A busy worker counts as stuck after the larger of 10 minutes and the watchdog interval without progress.
    static func stallLimit(_ watchdog: Duration?) -> Double {
        max(600, watchdog.map { Double($0.components.seconds) } ?? 0)
    }
}

/// Whether the parts that must run are running (for the watchdog).
final class RunningFlags: Sendable {
    private struct Flags {
        var watcher = false
        var delivery = false
    }

    private let flags = Mutex(Flags())

    func set(watcher value: Bool) { flags.withLock { $0.watcher = value } }
    func set(delivery value: Bool) { flags.withLock { $0.delivery = value } }
    func healthy(needsDelivery: Bool) -> Bool { flags.withLock { $0.watcher && ($0.delivery || !needsDelivery) } }
}

/// STATUS= and WATCHDOG=1 for systemd and `<state>/daemon.json` for `csmil status`, every 2 seconds (or twice per
/// watchdog interval if that is shorter).
struct StatusService: Service {
    let notifier: SystemdNotifier
    let progress: DaemonProgress
    let snapshotPath: String
    let running: RunningFlags
    /// Whether deliveries are on: then the watchdog needs the delivery worker running.
    let needsDelivery: @Sendable () -> Bool
    let logger: Logger

    func run() async throws {
        var period = 2.0
        if let interval = notifier.watchdogInterval {
            period = min(period, max(0.1, Double(interval.components.seconds) / 2))
        }
        let shown = await cancelWhenGracefulShutdown { [self, period] in
            var shown = Shown()
            while !Task.isCancelled {
                publish(&shown.line, &shown.writeError)
                try? await Task.sleep(for: .seconds(period))
            }
            return shown
        }
        var last = shown
        progress.setState("stopped")
        publish(&last.line, &last.writeError)
    }

    /// What was last sent as STATUS= and the last snapshot write error logged (each is sent or logged once).
    private struct Shown: Sendable {
        var line = ""
        var writeError = ""
    }

    private func publish(_ lastLine: inout String, _ lastWriteError: inout String) {
        let line = progress.statusLine()
        if line != lastLine {
            notifier.status(line)
            lastLine = line
        }
        if progress.shouldPingWatchdog(healthy: running.healthy(needsDelivery: needsDelivery())) {
            notifier.watchdog()
        }
        do {
            try progress.write(to: snapshotPath)
            lastWriteError = ""
        } catch {
            let text = "\(error)"
            if text != lastWriteError {
                logger.warning(
                    "cannot write the status snapshot", metadata: ["file": "\(snapshotPath)", "error": "\(text)"])
                lastWriteError = text
            }
        }
    }
}

/// SIGHUP: the configuration file is read again. The delivery settings (`[webhook]`, `[hl7]`, `[identity]`
/// accession_system: URLs, secret, formats, timeouts, retries) take effect at once, for queued events too (they
/// go to the URLs configured now), and so does delivery switched on or off; changes to other sections are logged as
/// needing a restart. A file that does not parse or validate is logged with every problem and the running settings
/// stay. Each outcome is acknowledged in `reload.json` (`ReloadAcknowledgement`) for `csmil reload`, after
/// RELOADING=1 … READY=1.
struct ReloadService: Service {
    let configurationPath: String
    let initial: Configuration
    let settings: LiveSettings
    let delivery: DeliverySwitch
    /// SIGHUP, trapped by the daemon before it reported READY=1.
    let signals: UnixSignalsSequence
    let notifier: SystemdNotifier
    /// Where `reload.json` goes; generation 0 is written before READY=1.
    let acknowledgementFolder: String
    let logger: Logger

    func run() async throws {
        var current = initial
        var generation = 0
        for await _ in signals.cancelOnGracefulShutdown() {
            notifier.reloading()
            generation += 1
            let (applied, message) = reload(&current)
            notifier.notify("READY=1")
            acknowledge(generation: generation, applied: applied, message: message)
        }
    }

    /// Writes `reload.json`; a failure is logged (csmil reload then times out, naming the journal).
    func acknowledge(generation: Int, applied: Bool, message: String) {
        do {
            try ReloadAcknowledgement(pid: getpid(), generation: generation, applied: applied, message: message)
                .write(folder: acknowledgementFolder)
        } catch {
            logger.error("cannot acknowledge the reload", metadata: .error(error))
        }
    }

    /// Reads the file again and applies what can be applied; returns whether it was taken and what happened.
    private func reload(_ current: inout Configuration) -> (applied: Bool, message: String) {
        let new: Configuration
        do {
            new = try Configuration.load(path: configurationPath)
        } catch {
            logger.error(
                "configuration not reloaded; the running settings stay",
                metadata: [
                    "file": "\(configurationPath)", "message_id": "\(MessageID.configurationRejected.rawValue)",
                ].merging(.error(error)) { $1 })
            return (false, "configuration not reloaded; the running settings stay: \(error)")
        }
        if new.webhook != current.webhook || new.hl7 != current.hl7 || new.identity != current.identity {
            // Switched on, changed or off at once: results reported from now on are queued (or, with every
            // destination off, not queued).
            do {
                let destinations = try new.deliveryDestinations()
                delivery.apply(
                    destinations.isEmpty ? nil : try new.deliveryConfiguration(destinations: destinations))
                settings.update(destinations)
            } catch {
                logger.error(
                    "delivery settings not reloaded; the running ones stay",
                    metadata: ["file": "\(configurationPath)"].merging(.error(error)) { $1 })
                return (false, "delivery settings not reloaded; the running ones stay: \(error)")
            }
            if current.publishes != new.publishes {
                logger.notice(
                    "delivery switched \(new.publishes ? "on" : "off")",
                    metadata: ["webhook": "\(new.webhook.url ?? "none")", "hl7": "\(new.hl7.url ?? "none")"])
            }
        }
        var restart: [String] = []
        if new.watch != current.watch { restart.append("[watch]") }
        if new.output != current.output { restart.append("[output]") }
        if new.state != current.state { restart.append("[state]") }
        if new.model != current.model { restart.append("[model]") }
        if new.log != current.log { restart.append("[log]") }
        if new.ingest != current.ingest { restart.append("[ingest]") }
        if new.identity.pattern != current.identity.pattern || new.identity.required != current.identity.required {
            restart.append("[identity]")
        }
        if new.qc != current.qc { restart.append("[qc]") }
        current = new
        if !restart.isEmpty {
            let sections = restart.joined(separator: " ")
            logger.warning(
                "configuration reloaded; these sections changed and apply after a restart",
                metadata: ["sections": "\(sections)"])
            return (
                true,
                "configuration reloaded from \(configurationPath); \(sections) changed and apply after a restart "
                    + "(systemctl restart csmil)"
            )
        }
        logger.notice(
            "configuration reloaded",
            metadata: [
                "file": "\(configurationPath)", "message_id": "\(MessageID.configurationReloaded.rawValue)",
            ])
        return (true, "configuration reloaded from \(configurationPath)")
    }
}
