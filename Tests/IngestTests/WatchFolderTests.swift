import Foundation
import Testing
import Threads

@testable import Ingest

/// The watcher end to end: real inotify (or real polling) on temporary folders, real slides from the
/// synthetic writer, OpenSlide as the probe unless a test says otherwise.
@Suite("Watch: folder")
struct WatchFolderTests {
    static let modes: [WatchSettings.Polling] = [.inotify, .poll]

    @Test(
        "a slow writer (pauses longer than half the settle time) is settled once, after its last write",
        arguments: modes)
    func slowWriter(polling: WatchSettings.Polling) async throws {
        let settle = 1.5
        let harness = try WatchHarness(settle: settle, polling: polling)
        defer { harness.finish() }
        harness.start()
        let path = harness.path("slow.svs")
        let bytes = WatchSlides.svs
        #expect(FileManager.default.createFile(atPath: path, contents: nil))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        await harness.look()
        let chunks = 4
        let chunkSize = (bytes.count + chunks - 1) / chunks
        for start in stride(from: 0, to: bytes.count, by: chunkSize) {
            try handle.write(contentsOf: bytes[start..<min(start + chunkSize, bytes.count)])
            await harness.look()
            if start + chunkSize < bytes.count {
                await harness.advance(0.8 * settle)  // the writer's pause, on the watcher's clock
                #expect(harness.recorder.all.isEmpty, "nothing while the writer pauses")
            }
        }
        try handle.close()
        let lastWrite = harness.clock.now()
        await harness.look()
        await harness.settle()
        let settled = harness.recorder.settled
        #expect(settled.map(\.path) == [path])
        #expect(settled.first?.size == Int64(bytes.count))
        #expect(settled.first?.files == [path])
        #expect(harness.recorder.rejected.isEmpty, "never probed half-written")
        if let time = harness.recorder.settledTime(path) { #expect(time - lastWrite >= settle - 1e-9) }
        await harness.settle()
        #expect(harness.recorder.all.count == 1, "settled once")
    }

    @Test(
        "a file written elsewhere and renamed into the folder is settled; the .partial it was written as is ignored",
        arguments: modes)
    func writeThenRename(polling: WatchSettings.Polling) async throws {
        let harness = try WatchHarness(settle: 0.5, polling: polling)
        defer { harness.finish() }
        harness.start()
        let partial = try harness.write("in-place.svs.partial", WatchSlides.svs)
        await harness.look()
        #expect(rename(partial, harness.path("in-place.svs")) == 0)
        let prepared = harness.outside + "/moved.tif"
        try WatchSlides.tiff.write(to: URL(fileURLWithPath: prepared))
        #expect(rename(prepared, harness.path("moved.tif")) == 0)
        await harness.look()
        await harness.settle()
        #expect(Set(harness.recorder.settled.map(\.path)) == [harness.path("in-place.svs"), harness.path("moved.tif")])
        await harness.settle()
        #expect(harness.recorder.all.count == 2)
    }

    @Test("a file deleted before it settles produces nothing", arguments: modes)
    func deletedBeforeSettled(polling: WatchSettings.Polling) async throws {
        let settle = 1.2
        let harness = try WatchHarness(settle: settle, polling: polling)
        defer { harness.finish() }
        harness.start()
        let path = try harness.write("short-lived.svs", WatchSlides.svs)
        await harness.look()
        #expect(harness.watcher.status.pending == 1)
        await harness.advance(0.3)
        #expect(unlink(path) == 0)
        await harness.look()
        await harness.advance(2 * settle)
        #expect(harness.recorder.all.isEmpty)
        #expect(harness.watcher.status.pending == 0)
    }

    @Test("mkdir -p a/b/c followed at once by writes: every file is found", arguments: modes)
    func nestedFoldersWrittenAtOnce(polling: WatchSettings.Polling) async throws {
        let harness = try WatchHarness(settle: 0.5, polling: polling)
        defer { harness.finish() }
        harness.start()
        var expected: Set<String> = []
        for index in 0..<3 {
            let relative = "case\(index)/b/c/slide\(index).svs"
            expected.insert(try harness.write(relative, WatchSlides.svs))
            expected.insert(try harness.write("case\(index)/b/top\(index).tif", WatchSlides.tiff))
        }
        await harness.look()
        await harness.look()
        await harness.settle()
        #expect(Set(harness.recorder.settled.map(\.path)) == expected)
        await harness.settle()
        #expect(harness.recorder.settled.count == expected.count)
        if polling == .inotify { #expect(harness.watcher.status.watchedFolders == 1 + 3 * 3) }
    }

    /// Lowers `fs.inotify.max_queued_events` while `body` runs, when the test may (root, writable
    /// /proc/sys); the kernel reads it when an inotify instance is made, so only the watcher made
    /// inside `body` gets the small queue. Returns whether it was lowered.
    static func withSmallInotifyQueue(_ body: () -> Void) -> Bool {
        let knob = "/proc/sys/fs/inotify/max_queued_events"
        guard let original = try? String(contentsOfFile: knob, encoding: .utf8),
            (try? "64\n".write(toFile: knob, atomically: false, encoding: .utf8)) != nil
        else {
            body()
            return false
        }
        body()
        try? original.write(toFile: knob, atomically: false, encoding: .utf8)
        return true
    }

    @Test(
        "5,000 files dropped at once: the queue overflows, the rescan finds them all, each is delivered once",
        arguments: modes)
    func fiveThousandFiles(polling: WatchSettings.Polling) async throws {
        // The probe accepts every file (this test is about finding them, not about OpenSlide), but
        // holds the watch thread inside the probe of `gate.svs` while the 5,000 files are written,
        // so that nothing drains the kernel's queue meanwhile and it overflows for certain.
        let gate = Wakeup()
        let probing = Wakeup()
        let probe: WatchFolder.Probe = { path in
            if path.hasSuffix("/gate.svs") {
                probing.signal()
                gate.wait()
            }
            return .slide
        }
        var lowered = false
        let harness = try WatchHarness(settle: 0.5, polling: polling, probe: probe) { make in
            if polling == .inotify { lowered = Self.withSmallInotifyQueue(make) } else { make() }
        }
        defer { harness.finish() }
        // The files go into a folder that is already watched, so each raises events.
        try FileManager.default.createDirectory(atPath: harness.path("batch"), withIntermediateDirectories: true)
        harness.start()
        try harness.write("gate.svs", Data(repeating: 1, count: 16))
        await harness.look()
        // The gate's probe starts in the round at the settle time and blocks there: no round can end meanwhile.
        harness.clock.advance(by: harness.settings.settleSeconds)
        _ = harness.watcher.requestRound()
        try await DedicatedThread.run(name: "test-probing") { probing.wait() }
        let count = 5000
        let payload = Data(repeating: 7, count: 64)
        for index in 0..<count {
            try writeFile(harness.path(String(format: "batch/f%05d.svs", index)), payload)
        }
        if polling == .inotify && !lowered {
            // The kernel's queue (16,384 events by default) cannot be shrunk here, so 5,000 files
            // do not overflow it: take the overflow path through the test hook instead.
            harness.watcher.injectQueueOverflow()
        }
        gate.signal()
        await harness.look()
        await harness.look()
        await harness.settle()
        let paths = harness.recorder.settled.map(\.path)
        #expect(paths.count == count + 1, "each delivered once")
        #expect(Set(paths).count == count + 1)
        await harness.settle()
        #expect(harness.recorder.settled.count == count + 1)
        if polling == .inotify {
            let status = harness.watcher.status
            #expect(status.overflows >= 1, "max_queued_events lowered: \(lowered)")
            #expect(status.rescans >= 2, "the start-up scan and the overflow's")
        }
    }

    @Test(
        "a MIRAX folder arriving before its index: nothing until the .mrxs, then one slide with all its files",
        arguments: modes)
    func miraxFolderFirst(polling: WatchSettings.Polling) async throws {
        // OpenSlide cannot open these made-up MIRAX files; the probe accepts an .mrxs with its folder.
        let harness = try WatchHarness(settle: 0.5, polling: polling) { path in
            path.hasSuffix(".mrxs")
                && FileManager.default.fileExists(atPath: String(path.dropLast(5)) + "/Slidedat.ini")
                ? .slide : .rejected(code: "slide.not_a_slide", reason: "\(path): not a slide")
        }
        defer { harness.finish() }
        harness.start()
        try harness.write("slideA/Data0000.dat", Data(repeating: 1, count: 1000))
        try harness.write("slideA/Data0001.dat", Data(repeating: 2, count: 1000))
        try harness.write("slideA/Index.dat", Data(repeating: 3, count: 100))
        try harness.write("slideA/Slidedat.ini", Data("[GENERAL]\n".utf8))
        await harness.look()
        await harness.advance(2.6 * harness.settings.settleSeconds)
        #expect(harness.recorder.all.isEmpty, "data files are not slides of their own")

        let index = try harness.write("slideA.mrxs", Data("mirax index".utf8))
        await harness.look()
        // The folder is still being written after the index arrived: the set waits for it.
        let data = harness.path("slideA/Data0002.dat")
        #expect(FileManager.default.createFile(atPath: data, contents: nil))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: data))
        for _ in 0..<3 {
            await harness.advance(0.2)
            try handle.write(contentsOf: Data(repeating: 9, count: 500))
            await harness.look()
            #expect(harness.recorder.all.isEmpty)
        }
        try handle.close()
        let lastWrite = harness.clock.now()
        await harness.look()
        await harness.settle()
        let settled = harness.recorder.settled
        #expect(settled.map(\.path) == [index])
        #expect(settled.first?.files.count == 6)
        let expectedBytes: Int64 = 11 + 1000 + 1000 + 1500 + 100 + 10
        #expect(settled.first?.totalBytes == expectedBytes)
        if let time = harness.recorder.settledTime(index) { #expect(time - lastWrite >= 0.5 - 1e-9) }
        #expect(harness.recorder.rejected.isEmpty)
        await harness.settle()
        #expect(harness.recorder.all.count == 1)
    }

    @Test(
        "a file that is not a slide is rejected once with the reason, and again only when it changes", arguments: modes)
    func notASlide(polling: WatchSettings.Polling) async throws {
        let harness = try WatchHarness(settle: 0.4, polling: polling)
        defer { harness.finish() }
        harness.start()
        let path = try harness.write("notes.txt", Data("scanner log, not a slide\n".utf8))
        await harness.look()
        await harness.settle()
        #expect(harness.recorder.rejected.count == 1)
        harness.watcher.rescan()
        await harness.round()
        await harness.settle()
        let rejected = harness.recorder.rejected
        #expect(rejected.count == 1, "a rescan does not reject an unchanged file again")
        #expect(rejected.first?.path == path)
        #expect(rejected.first?.code == SlideError.Code.notASlide.rawValue)
        #expect(rejected.first?.reason.contains(path) == true)
        #expect(harness.recorder.settled.isEmpty)

        try writeFile(path, Data("scanner log, not a slide\nmore\n".utf8))
        await harness.look()
        await harness.settle()
        #expect(harness.recorder.rejected.count == 2)
        await harness.settle()
        #expect(harness.recorder.rejected.count == 2)
    }

    @Test("a corrupt slide among good ones is rejected; the good ones are settled", arguments: modes)
    func corruptAmongGood(polling: WatchSettings.Polling) async throws {
        let harness = try WatchHarness(settle: 0.5, polling: polling)
        defer { harness.finish() }
        harness.start()
        let good = [
            try harness.write("good1.svs", WatchSlides.svs), try harness.write("good2.tif", WatchSlides.tiff),
            try harness.write("good3.svs", WatchSlides.svs),
        ]
        let truncated = try harness.write("truncated.svs", WatchSlides.svs.prefix(WatchSlides.svs.count / 2))
        var scrambled = WatchSlides.tiff
        scrambled.replaceSubrange(0..<8, with: Data("GARBAGE!".utf8))
        let garbage = try harness.write("scrambled.tif", scrambled)
        await harness.look()
        await harness.settle()
        #expect(Set(harness.recorder.settled.map(\.path)) == Set(good))
        #expect(Set(harness.recorder.rejected.map(\.path)) == [truncated, garbage])
        await harness.settle()
        #expect(harness.recorder.all.count == 5)
        let status = harness.watcher.status
        #expect(status.settled == 3 && status.rejected == 2 && status.pending == 0)
    }

    @Test(
        "a folder renamed inside the watched folder: its slides are found under the new name, and so are new files in it",
        arguments: modes)
    func folderRenamed(polling: WatchSettings.Polling) async throws {
        let harness = try WatchHarness(settle: 0.4, polling: polling)
        defer { harness.finish() }
        harness.start()
        try harness.write("case/a/first.svs", WatchSlides.svs)
        await harness.look()
        await harness.settle()
        #expect(harness.recorder.settled.count == 1)
        #expect(rename(harness.path("case"), harness.path("renamed")) == 0)
        await harness.look()
        await harness.settle()
        #expect(harness.recorder.settled.count == 2)
        let second = try harness.write("renamed/a/second.tif", WatchSlides.tiff)
        await harness.look()
        await harness.settle()
        await harness.settle()
        #expect(
            harness.recorder.settled.map(\.path) == [
                harness.path("case/a/first.svs"), harness.path("renamed/a/first.svs"), second,
            ])
        if polling == .inotify { #expect(harness.watcher.status.watchedFolders == 3) }
        #expect(harness.watcher.status.pending == 0)
    }

    @Test("files already in the folder are found by the start-up scan")
    func startupScan() async throws {
        let harness = try WatchHarness(settle: 0.3)
        defer { harness.finish() }
        let path = try harness.write("before/start.svs", WatchSlides.svs)
        harness.start()
        await harness.look()
        await harness.settle()
        #expect(harness.recorder.settled.map(\.path) == [path])
    }

    @Test("the watched folder deleted and made again: reported, then watched again with its new files")
    func folderComesBack() async throws {
        let harness = try WatchHarness(settle: 0.3)
        defer { harness.finish() }
        harness.start()
        await harness.look()
        #expect(harness.watcher.status.rescans >= 1)
        try FileManager.default.removeItem(atPath: harness.root)
        await harness.look()
        #expect(!harness.watcher.status.folderAvailable)
        #expect(
            harness.recorder.all.first.map { if case .folderUnavailable = $0.event { true } else { false } } == true)
        let path = try harness.write("after/return.svs", WatchSlides.svs)
        await harness.advance(WatchLoop.folderRetrySeconds)
        await harness.look()
        await harness.settle()
        #expect(harness.recorder.settled.map(\.path) == [path])
        #expect(harness.watcher.status.folderAvailable)
        #expect(harness.recorder.all.contains { $0.event == .folderRestored(path: harness.root) })
    }

    @Test("a missing folder is refused at start naming it; the mode in use is exposed")
    func setup() async throws {
        #expect {
            try WatchFolder(
                settings: WatchSettings(directory: "/nonexistent-csmil/incoming"), logger: .init(label: "t")
            ) {
                _ in
            }
        } throws: { error in
            (error as? WatchError)?.code == .folderUnavailable
                && (error as? WatchError)?.path == "/nonexistent-csmil/incoming"
        }
        let inotify = try WatchHarness(settle: 1, polling: .auto)
        defer { inotify.finish() }
        #expect(inotify.watcher.mode.kind == (FileSystemType.of(inotify.root)!.isRemote ? .polling : .inotify))
        let polled = try WatchHarness(settle: 1, polling: .poll)
        defer { polled.finish() }
        #expect(polled.watcher.mode.kind == .polling)
        #expect(polled.watcher.mode.description.contains("polling = \"poll\""))
        #expect(polled.watcher.status.watchedFolders == 0)
    }

    @Test("stop() ends run(), even while a slide is waiting to settle", .timeLimit(.minutes(1)))
    func stops() async throws {
        let harness = try WatchHarness(settle: 30)
        harness.start()
        try harness.write("waiting.svs", WatchSlides.svs)
        await harness.look()
        #expect(harness.watcher.status.pending == 1)
        harness.finish()  // returns once the watch thread has ended
    }
}
