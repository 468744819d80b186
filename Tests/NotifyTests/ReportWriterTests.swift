import Foundation
import Images
import Synchronization
import Testing

@testable import Notify

@Suite("report folder")
struct ReportWriterTests {
    let mask = Data([0x89, 0x50, 0x4E, 0x47, 1, 2, 3])
    let heatmap = Data([0x89, 0x50, 0x4E, 0x47, 4, 5, 6])

    func files(_ report: SlideReport = Fixtures.scored()) -> ReportFiles {
        ReportFiles(report: report, tissueMaskPNG: mask, heatmapPNG: heatmap, tiles: Fixtures.tiles)
    }

    @Test("the folder name is the slide name in safe characters plus 12 hex digits of the fingerprint")
    func folderName() {
        #expect(
            ReportWriter.folderName(slideName: "case 7 (HE).svs", fingerprint: Fixtures.fingerprint)
                == "case_7_HE_-0123456789ab")
        #expect(
            ReportWriter.folderName(slideName: "..hidden/slide?.svs", fingerprint: "sha256:ffffffffffffff")
                == "hidden_slide_-ffffffffffff")
        let odd = ReportWriter.folderName(slideName: "", fingerprint: "quickhash")
        #expect(odd.hasPrefix("slide-") && odd.count == "slide-".count + 12)
    }

    @Test("all files are written with the given contents and no temporary file remains")
    func writesAllFiles() throws {
        let output = try Fixtures.temporaryFolder() + "/reports/nested"
        let folder = try ReportWriter(outputDirectory: output).write(files())
        #expect(folder == output + "/case_7_HE_-0123456789ab")
        let names = try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
        #expect(
            names == [
                "attention_heatmap.png", "case_results_merge.csv", "report.html", "report.json", "tiles.geojson",
                "tissue_mask.png",
            ])
        #expect(FileManager.default.contents(atPath: folder + "/tissue_mask.png") == mask)
        #expect(FileManager.default.contents(atPath: folder + "/attention_heatmap.png") == heatmap)
        let report = try SlideReport.decode(
            from: try #require(FileManager.default.contents(atPath: folder + "/report.json")))
        #expect(report == Fixtures.scored())
        let csv = try #require(FileManager.default.contents(atPath: folder + "/case_results_merge.csv"))
        #expect(String(decoding: csv, as: UTF8.self).hasPrefix("case_name,label,prob,acc\ncase 7 (HE),0.0,0.5,"))
        let geojson = try #require(FileManager.default.contents(atPath: folder + "/tiles.geojson"))
        #expect(geojson == TilesGeoJSON.data(Fixtures.tiles))
    }

    @Test("report.json is renamed into place last, after every sibling")
    func reportLast() throws {
        let order = Mutex<[String]>([])
        var writer = ReportWriter(outputDirectory: try Fixtures.temporaryFolder())
        writer.onCommit = { name in order.withLock { $0.append(name) } }
        try writer.write(files())
        let names = order.withLock { $0 }
        #expect(names.last == "report.json")
        #expect(
            Set(names) == [
                "attention_heatmap.png", "case_results_merge.csv", "report.html", "report.json", "tiles.geojson",
                "tissue_mask.png",
            ])
    }

    @Test("rewriting a report replaces the folder whole: the old one is untouched until the new one takes its place")
    func rewriteReplacesWhole() throws {
        let output = try Fixtures.temporaryFolder()
        let folder = try ReportWriter(outputDirectory: output).write(files())
        let oldNames = try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
        let seen = Mutex<[[String]]>([])
        var writer = ReportWriter(outputDirectory: output)
        writer.onCommit = { _ in
            seen.withLock { $0.append((try? FileManager.default.contentsOfDirectory(atPath: folder).sorted()) ?? []) }
        }
        var failed = Fixtures.failed()
        failed.slide = Fixtures.slide()
        try writer.write(ReportFiles(report: failed))
        // While each new file landed (in the staging folder), the report folder still held the old report whole.
        #expect(seen.withLock { $0 } == [oldNames, oldNames, oldNames, oldNames])
        let names = try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
        #expect(names == ["case_results_merge.csv", "report.html", "report.json", "tiles.geojson"])
        let csv = try #require(FileManager.default.contents(atPath: folder + "/case_results_merge.csv"))
        #expect(String(decoding: csv, as: UTF8.self) == "case_name,label,prob,acc\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: output) == [(folder as NSString).lastPathComponent])
    }

    @Test("staging folders left by a process that died are removed; one of a live process is not")
    func leftoversRemoved() throws {
        let output = try Fixtures.temporaryFolder()
        let writer = ReportWriter(outputDirectory: output)
        let name = (writer.folderPath(for: Fixtures.scored()) as NSString).lastPathComponent
        // pid 2^22 + 1 is above Linux's pid_max ceiling: no such process.
        let dead = output + "/.csmil-tmp." + name + ".4194305.17"
        let live = output + "/.csmil-tmp." + name + ".1.18"  // pid 1 is alive
        for folder in [dead, live] {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            #expect(FileManager.default.createFile(atPath: folder + "/report.json", contents: Data("{".utf8)))
        }
        try writer.write(files())
        #expect(!FileManager.default.fileExists(atPath: dead))
        #expect(FileManager.default.fileExists(atPath: live))
    }

    @Test("a folder that cannot be created gives a ReportError naming the path and a fix")
    func unwritableFolder() throws {
        let base = try Fixtures.temporaryFolder()
        #expect(FileManager.default.createFile(atPath: base + "/file", contents: Data()))
        let writer = ReportWriter(outputDirectory: base + "/file/reports")
        let error = #expect(throws: ReportError.self) { try writer.write(files()) }
        #expect(error?.path == base + "/file/reports" || error?.path == base + "/file")
        #expect(error?.code == .notADirectory)
        #expect(error?.fix.isEmpty == false)
        #expect(error?.description.contains(base + "/file") == true)
    }

    @Test("a read-only folder gives a permission error (skipped as root)", .enabled(if: getuid() != 0))
    func readOnlyFolder() throws {
        let base = try Fixtures.temporaryFolder()
        #expect(chmod(base, 0o555) == 0)
        defer { chmod(base, 0o755) }
        let error = #expect(throws: ReportError.self) {
            try ReportWriter(outputDirectory: base).write(files())
        }
        #expect(error?.code == .permissionDenied)
        #expect(error?.path.hasPrefix(base) == true)
    }

    @Test("an inconsistent report is refused before anything is written")
    func inconsistentRefused() throws {
        let output = try Fixtures.temporaryFolder()
        var report = Fixtures.scored()
        report.result = nil
        let error = #expect(throws: ReportError.self) {
            try ReportWriter(outputDirectory: output).write(ReportFiles(report: report))
        }
        #expect(error?.code == .inconsistentReport)
        #expect(try FileManager.default.contentsOfDirectory(atPath: output).isEmpty)
    }
}
