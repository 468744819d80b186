import Errors
import Foundation
import Glibc
import Logging
import SystemPackage
import Threads

/// The state and I/O of one ``WatchFolder``: inotify watches, scans, settle checks and probes.
/// Touched only by the thread inside ``WatchFolder/run()`` (and by `WatchFolder.init` before that).
final class WatchLoop {
    /// What other threads asked for since the last look.
    struct Requests {
        var stop: Bool
        var rescan: Bool
        var overflow: Bool
        /// The latest round asked for by a test (``WatchFolder/requestRound()``).
        var round: Int
    }

    /// How often a missing watched folder is looked for.
    static let folderRetrySeconds = 1.0
    /// The longest `poll` wait, so the status stays fresh.
    static let longestWaitSeconds = 60.0
    /// The events watched on every folder (`IN_UNMOUNT`, `IN_IGNORED` and `IN_Q_OVERFLOW` always come).
    static let watchMask: Inotify.Mask = [
        .closeWrite, .movedTo, .movedFrom, .create, .delete, .attrib, .deleteSelf, .moveSelf, .onlyDirectory,
    ]

    let settings: WatchSettings
    let root: String
    let layout: SlideSetLayout
    private(set) var mode: WatchMode
    private let logger: Logger
    private let probe: WatchFolder.Probe
    private let clock: @Sendable () -> Double
    private let handler: WatchFolder.Handler

    private var machine: SettleStateMachine
    private var inotify: Inotify?
    /// Watch descriptor → folder path, and back.
    private var folders: [Int32: String] = [:]
    private var watches: [String: Int32] = [:]
    private var rootWatch: Int32?
    private var folderAvailable = true
    /// Units to look at again at the next opportunity (event hints, coalesced).
    private var dirty: Set<String> = []
    private var rescanNeeded = true
    private var nextRescan = 0.0
    private var nextFolderCheck = 0.0
    private var settledCount = 0
    private var rejectedCount = 0
    private var overflows = 0
    private var rescans = 0
    private var lastRescan: Date?
    /// The latest requested round that a finished round began after.
    private var roundsServed = 0
    private var roundRequested = 0

    init(
        settings: WatchSettings, root: String, mode: WatchMode, logger: Logger, probe: @escaping WatchFolder.Probe,
        clock: @escaping @Sendable () -> Double, handler: @escaping WatchFolder.Handler
    ) throws(WatchError) {
        self.settings = settings
        self.root = root
        self.mode = mode
        self.logger = logger
        self.probe = probe
        self.clock = clock
        self.handler = handler
        layout = SlideSetLayout(root: root, ignore: settings.ignore)
        machine = SettleStateMachine(settleSeconds: settings.settleSeconds)
        if mode.kind == .inotify {
            inotify = try Inotify()
            watchTree(root)
        }
    }

    /// The status as of now.
    func status() -> WatchStatus {
        WatchStatus(
            mode: mode, folderAvailable: folderAvailable, watchedFolders: watches.count,
            pending: machine.pendingCount, settled: settledCount, rejected: rejectedCount, overflows: overflows,
            rescans: rescans, lastRescan: lastRescan, roundsServed: roundsServed)
    }

    // MARK: - The loop

    /// Runs until `sync` reports a stop. `sync` publishes the status (when given) and returns
    /// what other threads asked for.
    func run(wakeup: Wakeup, sync: (WatchStatus?) -> Requests) {
        /// Takes in what was asked; true when asked to stop.
        func apply(_ requests: Requests) -> Bool {
            if requests.overflow { queueOverflowed() }
            if requests.rescan { rescanNeeded = true }
            roundRequested = requests.round
            return requests.stop
        }
        var stop = apply(sync(nil))
        while !stop {
            let serving = roundRequested
            step()
            roundsServed = serving
            if apply(sync(status())) { break }
            wait(wakeup: wakeup, timeout: timeout())
            stop = apply(sync(nil))
        }
        logger.info("stopped watching folder", metadata: ["folder": "\(root)"])
    }

    /// One round of work: a due scan or folder check, then every dirty and due unit.
    private func step() {
        if !folderAvailable {
            if clock() >= nextFolderCheck { restoreFolder() }
        } else if rescanNeeded || clock() >= nextRescan {
            fullScan()
        }
        let units = dirty
        dirty = []
        for unit in units.sorted() { refresh(unit) }
        for unit in machine.dueUnits(now: clock()) { refresh(unit) }
    }

    /// Seconds until the next thing is due: a unit's quiet period, a scan, a folder check.
    private func timeout() -> Double {
        if !dirty.isEmpty || (rescanNeeded && folderAvailable) { return 0 }
        let now = clock()
        var next = now + Self.longestWaitSeconds
        if let deadline = machine.nextDeadline() { next = min(next, deadline) }
        next = min(next, folderAvailable ? nextRescan : nextFolderCheck)
        return max(next - now, 0)
    }

    /// Blocks in `poll` on the wake-up descriptor and inotify until one is readable or `timeout` passes.
    private func wait(wakeup: Wakeup, timeout: Double) {
        var descriptors = [pollfd(fd: wakeup.fileDescriptor, events: Int16(POLLIN), revents: 0)]
        if let inotify { descriptors.append(pollfd(fd: inotify.fileDescriptor, events: Int16(POLLIN), revents: 0)) }
        let milliseconds = Int32(min((timeout * 1000).rounded(.up), Self.longestWaitSeconds * 1000))
        let ready = poll(&descriptors, nfds_t(descriptors.count), milliseconds)
        guard ready > 0 else { return }
        if descriptors[0].revents != 0 { wakeup.drain() }
        if descriptors.count > 1, descriptors[1].revents != 0, let inotify {
            for event in inotify.readEvents() { handle(event) }
        }
    }

    // MARK: - Units

    /// Looks at a unit again and does what the state machine says.
    private func refresh(_ unit: String) {
        if SlideSetLayout.kind(of: unit) == .single, layout.unit(for: unit) != unit {
            // Now part of a set (its index arrived) or ignored: no longer a unit of its own.
            _ = machine.observe(unit, nil, now: clock())
            if let owner = layout.unit(for: unit), owner != unit { refresh(owner) }
            return
        }
        if let action = machine.observe(unit, layout.snapshot(of: unit), now: clock()) { perform(action) }
    }

    private func perform(_ action: SettleStateMachine.Action) {
        switch action {
        case .probe(let unit, let snapshot):
            let outcome = probe(unit)
            let after = layout.snapshot(of: unit)
            if let next = machine.probeFinished(unit, probed: snapshot, outcome: outcome, after: after, now: clock()) {
                perform(next)
            }
        case .settled(let unit, let snapshot):
            settledCount += 1
            logger.info(
                "slide settled",
                metadata: [
                    "slide": "\(unit)", "bytes": "\(snapshot.totalBytes)", "files": "\(snapshot.members.count + 1)",
                ])
            handler(
                .settled(
                    SettledSlide(
                        path: unit, size: snapshot.main.size, modified: snapshot.main.modified,
                        files: [unit] + snapshot.members.map(\.path), totalBytes: snapshot.totalBytes)))
        case .rejected(let unit, let snapshot, let code, let reason):
            rejectedCount += 1
            logger.warning("file is not a readable slide", metadata: ["slide": "\(unit)", "code": "\(code)"])
            handler(
                .rejected(
                    RejectedFile(
                        path: unit, size: snapshot.main.size, modified: snapshot.main.modified, code: code,
                        reason: reason)))
        }
    }

    // MARK: - Scans

    /// Walks the whole folder: every unit found and every unit known is looked at again (so units
    /// whose files went away are forgotten); in inotify mode every folder is (re)watched.
    private func fullScan() {
        rescanNeeded = false
        guard isFolder(root) else {
            folderLost("it no longer exists or is not a folder")
            return
        }
        var units = Set(machine.entries.keys)
        walk(root) { units.insert($0) }
        for unit in units.sorted() { refresh(unit) }
        rescans += 1
        lastRescan = Date()
        let interval = mode.kind == .polling ? settings.pollSeconds : settings.rescanSeconds
        nextRescan = clock() + interval
        logger.debug("scanned folder", metadata: ["folder": "\(root)", "units": "\(units.count)"])
    }

    /// Calls `found` with the unit of every file below `folder` that is not ignored; in inotify
    /// mode watches each folder on the way (watching a watched folder again is harmless).
    private func walk(_ folder: String, found: (String) -> Void) {
        var stack = [folder]
        while let current = stack.popLast() {
            if inotify != nil { watch(current) }
            guard let entries = DirectoryEntry.list(current) else { continue }
            for entry in entries {
                let path = current + "/" + entry.name
                guard !layout.isIgnored(path) else { continue }
                switch entry.kind {
                case .directory: stack.append(path)
                case .file: if let unit = layout.unit(for: path) { found(unit) }
                case .other: break
                }
            }
        }
    }

    // MARK: - inotify

    /// Watches `folder` and every folder below it that is not ignored.
    private func watchTree(_ folder: String) {
        var stack = [folder]
        while let current = stack.popLast(), inotify != nil {
            guard watch(current) else { continue }
            for entry in DirectoryEntry.list(current) ?? [] where entry.kind == .directory {
                let path = current + "/" + entry.name
                if !layout.isIgnored(path) { stack.append(path) }
            }
        }
    }

    /// Adds (or refreshes) the watch on one folder; false when it could not be watched.
    @discardableResult
    private func watch(_ folder: String) -> Bool {
        guard let inotify else { return false }
        switch inotify.addWatch(folder, mask: Self.watchMask) {
        case .success(let descriptor):
            if let old = folders[descriptor], old != folder { watches[old] = nil }
            folders[descriptor] = folder
            watches[folder] = descriptor
            if folder == root { rootWatch = descriptor }
            return true
        case .failure(let error) where error == .noSpace:
            fallBackToPolling(
                "the inotify watch limit is reached",
                fix: "raise fs.inotify.max_user_watches (sysctl), or set [watch] polling = \"poll\"")
            return false
        case .failure(let error) where error == .noSuchFileOrDirectory || error == .notDirectory:
            return false
        case .failure(let error):
            logger.warning(
                "cannot watch folder; its files are found by the periodic rescan only",
                metadata: ["folder": "\(folder)"].merging(.error(error)) { $1 })
            return false
        }
    }

    /// Forgets the watches on `folder` and below (it was deleted or moved).
    private func unwatchTree(_ folder: String) {
        let prefix = folder + "/"
        for (path, descriptor) in watches where path == folder || path.hasPrefix(prefix) {
            inotify?.removeWatch(descriptor)
            watches[path] = nil
            folders[descriptor] = nil
        }
    }

    private func handle(_ event: Inotify.Event) {
        if event.mask.contains(.queueOverflow) {
            queueOverflowed()
            return
        }
        guard let folder = folders[event.watch] else { return }
        if event.mask.contains(.ignored) {
            folders[event.watch] = nil
            if watches[folder] == event.watch { watches[folder] = nil }
            if event.watch == rootWatch { folderLost("its watch was removed") }
            return
        }
        if event.watch == rootWatch, !event.mask.isDisjoint(with: [.deleteSelf, .moveSelf, .unmount]) {
            let reason =
                event.mask.contains(.unmount)
                ? "its file system was unmounted"
                : event.mask.contains(.deleteSelf) ? "it was deleted" : "it was moved or renamed"
            folderLost(reason)
            return
        }
        if event.mask.contains(.unmount) {
            rescanNeeded = true
            return
        }
        guard !event.name.isEmpty else { return }
        let path = folder + "/" + event.name
        guard !layout.isIgnored(path) else { return }
        if event.mask.contains(.isDirectory) {
            if !event.mask.isDisjoint(with: [.create, .movedTo]) {
                // `walk` watches each folder before listing it: a file written right after
                // `mkdir` is either seen by the listing or raises an event on the new watch.
                walk(path) { dirty.insert($0) }
                dirty.insert(path + ".mrxs")
            }
            if !event.mask.isDisjoint(with: [.delete, .movedFrom]) {
                unwatchTree(path)
                dirty.formUnion(machine.units(below: path))
                dirty.insert(path + ".mrxs")
            }
            return
        }
        if let unit = layout.unit(for: path) { dirty.insert(unit) }
        if machine.entries[path] != nil { dirty.insert(path) }
    }

    private func queueOverflowed() {
        overflows += 1
        rescanNeeded = true
        logger.warning(
            "inotify queue overflowed; rescanning the folder",
            metadata: ["folder": "\(root)", "overflows": "\(overflows)"])
    }

    private func fallBackToPolling(_ reason: String, fix: String) {
        guard inotify != nil else { return }
        logger.error(
            "inotify cannot watch the whole folder; polling instead",
            metadata: ["folder": "\(root)", "reason": "\(reason)", "fix": "\(fix)"])
        dropWatches()
        inotify = nil
        mode = WatchMode(kind: .polling, fileSystem: mode.fileSystem, reason: reason)
        nextRescan = 0
    }

    private func dropWatches() {
        for descriptor in folders.keys { inotify?.removeWatch(descriptor) }
        folders = [:]
        watches = [:]
        rootWatch = nil
    }

    // MARK: - The folder going away and coming back

    private func folderLost(_ reason: String) {
        dropWatches()
        nextFolderCheck = clock() + Self.folderRetrySeconds
        guard folderAvailable else { return }
        folderAvailable = false
        logger.error(
            "watched folder is gone; waiting for it to come back",
            metadata: ["folder": "\(root)", "reason": "\(reason)"])
        handler(.folderUnavailable(path: root, reason: reason))
    }

    private func restoreFolder() {
        guard isFolder(root) else {
            nextFolderCheck = clock() + Self.folderRetrySeconds
            return
        }
        folderAvailable = true
        if settings.polling == .auto, let fileSystem = FileSystemType.of(root) {
            // It may have come back on another file system (a share mounted again).
            mode = fileSystem.mode(for: .auto)
        }
        if mode.kind == .inotify && inotify == nil {
            do {
                inotify = try Inotify()
            } catch {
                mode = WatchMode(kind: .polling, fileSystem: mode.fileSystem, reason: error.message)
            }
        }
        if inotify != nil { watchTree(root) }
        logger.notice("watched folder is back", metadata: ["folder": "\(root)", "mode": "\(mode)"])
        fullScan()
        handler(.folderRestored(path: root))
    }

    private func isFolder(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }
}
