import Foundation
import Testing

@testable import Ingest

/// Which files make one slide, which names are ignored, and the small pieces around inotify: real
/// files in a temporary folder, no watcher.
@Suite("Watch: slide sets, ignored names, inotify records, file systems")
struct WatchLayoutTests {
    final class Folder {
        let url: URL
        var root: String { url.path }
        init() throws { url = try SlideFixtures.temporaryDirectory() }
        deinit { try? FileManager.default.removeItem(at: url) }

        @discardableResult
        func write(_ relative: String, _ text: String = "x") throws -> String {
            let path = root + "/" + relative
            try FileManager.default.createDirectory(
                atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            return path
        }
    }

    @Test(
        "default ignore patterns: dot files and folders, *.tmp, *.part, *.partial",
        arguments: [
            (".hidden.svs", true), ("scan.svs.tmp", true), ("scan.part", true), ("scan.svs.partial", true),
            (".sync/scan.svs", true), ("case 1/.DS_Store", true), ("scan.svs", false), ("case 1/scan.tif", false),
            ("tmp/scan.svs", false),
        ])
    func defaultIgnore(relative: String, ignored: Bool) {
        let layout = SlideSetLayout(root: "/in", ignore: WatchSettings.defaultIgnore)
        #expect(layout.isIgnored("/in/" + relative) == ignored)
        #expect((layout.unit(for: "/in/" + relative) == nil) == ignored)
    }

    @Test("patterns with a slash match the path below the folder; anything outside the folder is ignored")
    func pathPatterns() {
        let layout = SlideSetLayout(root: "/in/", ignore: ["export/*", "*.xml"])
        #expect(layout.root == "/in")
        #expect(layout.isIgnored("/in/export/a.svs"))
        #expect(!layout.isIgnored("/in/export/deeper/a.svs"), "FNM_PATHNAME: * stops at /")
        #expect(layout.isIgnored("/in/case/a.xml"))
        #expect(!layout.isIgnored("/in/.hidden.svs"), "the defaults are replaced, not extended")
        #expect(layout.isIgnored("/elsewhere/a.svs"))
        #expect(layout.isIgnored("/in"))
    }

    @Test(
        "MIRAX: the data folder's files belong to the .mrxs even before it exists, and all of them are in its snapshot")
    func mirax() throws {
        let folder = try Folder()
        let layout = SlideSetLayout(root: folder.root, ignore: WatchSettings.defaultIgnore)
        let data = try folder.write("slideA/Data0000.dat", "tiles")
        let other = try folder.write("slideA/extra.bin", "?")
        let index = folder.root + "/slideA.mrxs"
        #expect(layout.unit(for: data) == index, "a MIRAX data file name")
        #expect(layout.unit(for: other) == other, "not recognisable yet")
        try folder.write("slideA/Slidedat.ini", "[GENERAL]")
        #expect(layout.unit(for: other) == index, "the folder holds Slidedat.ini")
        #expect(layout.snapshot(of: index) == nil, "no .mrxs yet: nothing to settle")

        try folder.write("slideA.mrxs", "index")
        let snapshot = try #require(layout.snapshot(of: index))
        #expect(snapshot.main.path == index)
        #expect(
            snapshot.members.map(\.path)
                == ["Data0000.dat", "Slidedat.ini", "extra.bin"].map { folder.root + "/slideA/" + $0 })
        #expect(snapshot.totalBytes == Int64("index".count + "tiles".count + "[GENERAL]".count + 1))

        // A data file written again changes the set's snapshot.
        try Data("more tiles".utf8).write(to: URL(fileURLWithPath: data))
        #expect(layout.snapshot(of: index) != snapshot)
        // A plain subfolder of slides is not a MIRAX folder.
        let plain = try folder.write("case7/scan.svs")
        #expect(layout.unit(for: plain) == plain)
    }

    @Test("VMS/VMU: the files an index names belong to it; missing ones are part of its snapshot")
    func vms() throws {
        let folder = try Folder()
        let layout = SlideSetLayout(root: folder.root, ignore: WatchSettings.defaultIgnore)
        let jpeg = try folder.write("scan/image_0.jpg", "jpeg")
        #expect(layout.unit(for: jpeg) == jpeg, "no index yet: a file of its own")
        let index = try folder.write(
            "scan/slide.vms",
            "[Virtual Microscope Specimen]\r\nNoLayers=1\r\nImageFile=image_0.jpg\r\nImageFile(1,0)=image_1.jpg\r\n"
                + "MapFile=map.jpg\r\nOptimisationFile=slide.opt\r\nAuthCode=1234\r\n")
        #expect(SlideSetLayout.vmsMembers(of: index) == ["image_0.jpg", "image_1.jpg", "map.jpg", "slide.opt"])
        #expect(layout.unit(for: jpeg) == index)
        let first = try #require(layout.snapshot(of: index))
        #expect(first.members.map(\.path) == [jpeg])
        #expect(first.missing.count == 3)
        try folder.write("scan/image_1.jpg", "jpeg")
        try folder.write("scan/map.jpg", "jpeg")
        try folder.write("scan/slide.opt", "opt")
        let complete = try #require(layout.snapshot(of: index))
        #expect(complete.missing.isEmpty)
        #expect(complete.members.count == 4)
        #expect(SlideSetLayout.kind(of: folder.root + "/x.VMU") == .vms)
    }

    @Test("inotify records are parsed with their names, NUL padding removed; a truncated record is dropped")
    func parseEvents() {
        func record(watch: Int32, mask: UInt32, cookie: UInt32, name: String, padded: Int) -> [UInt8] {
            var bytes: [UInt8] = []
            withUnsafeBytes(of: watch.littleEndian) { bytes += $0 }
            withUnsafeBytes(of: mask.littleEndian) { bytes += $0 }
            withUnsafeBytes(of: cookie.littleEndian) { bytes += $0 }
            withUnsafeBytes(of: UInt32(padded).littleEndian) { bytes += $0 }
            var nameBytes = Array(name.utf8)
            nameBytes += Array(repeating: 0, count: padded - nameBytes.count)
            return bytes + nameBytes
        }
        let bytes =
            record(watch: 1, mask: UInt32(IN_CLOSE_WRITE), cookie: 0, name: "a.svs", padded: 16)
            + record(watch: -1, mask: UInt32(IN_Q_OVERFLOW), cookie: 0, name: "", padded: 0)
            + record(watch: 2, mask: UInt32(IN_MOVED_TO) | UInt32(IN_ISDIR), cookie: 9, name: "case", padded: 8)
            + Array(record(watch: 3, mask: 2, cookie: 0, name: "cut", padded: 16).prefix(20))
        let events = bytes.withUnsafeBytes { Inotify.parse($0) }
        #expect(
            events == [
                .init(watch: 1, mask: .closeWrite, cookie: 0, name: "a.svs"),
                .init(watch: -1, mask: .queueOverflow, cookie: 0, name: ""),
                .init(watch: 2, mask: [.movedTo, .isDirectory], cookie: 9, name: "case"),
            ])
        #expect(Inotify.Mask([.movedTo, .isDirectory]).description == "MOVED_TO|ISDIR")
    }

    @Test("auto polls on network and FUSE file systems and uses inotify elsewhere; explicit settings win")
    func modes() throws {
        let nfs = FileSystemType(magic: 0x6969)
        let cifs = FileSystemType(magic: 0xFF53_4D42)
        let fuse = FileSystemType(magic: 0x6573_5546)
        let ext4 = FileSystemType(magic: 0xEF53)
        for remote in [nfs, cifs, fuse, FileSystemType(magic: 0xFE53_4D42), FileSystemType(magic: 0x517B)] {
            #expect(remote.isRemote)
            #expect(remote.mode(for: .auto).kind == .polling)
            #expect(remote.mode(for: .inotify).kind == .inotify)
        }
        #expect(nfs.name == "nfs" && cifs.name == "cifs" && fuse.name == "fuse")
        #expect(!ext4.isRemote && ext4.name == "ext4")
        #expect(ext4.mode(for: .auto).kind == .inotify)
        #expect(ext4.mode(for: .poll).kind == .polling)
        #expect(FileSystemType(magic: 0x1234).name == "0x1234")
        // statfs on a real folder: the temporary folder is local here.
        let tmp = try #require(FileSystemType.of(NSTemporaryDirectory()))
        #expect(tmp.magic != 0)
        #expect(FileSystemType.of("/nonexistent-csmil-folder") == nil)
        if let proc = FileSystemType.of("/proc") { #expect(proc.magic == 0x9FA0, "procfs's magic number") }
    }

    @Test("settings that cannot work are refused naming the setting")
    func invalidSettings() {
        let cases: [(WatchSettings, String)] = [
            (WatchSettings(directory: "/in", settleSeconds: -1), "[watch] settle_seconds"),
            (WatchSettings(directory: "/in", rescanSeconds: 0), "[watch] rescan_seconds"),
            (WatchSettings(directory: "/in", pollSeconds: .nan), "[watch] poll_seconds"),
            (WatchSettings(directory: "/in", ignore: [""]), "[watch] ignore"),
        ]
        for (settings, name) in cases {
            #expect(throws: WatchError.self) { try settings.validate() }
            do { try settings.validate() } catch { #expect(error.path == name && error.code == .invalidSetting) }
        }
    }
}
