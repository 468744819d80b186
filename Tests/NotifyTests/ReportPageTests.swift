import Foundation
import Testing

@testable import Notify

/// report.html's content (the browser test renders it: Tests/DaemonTests/ReportPageBrowserTests.swift).
@Suite("report.html")
struct ReportPageTests {
    static func review() -> SlideReport {
        var report = Fixtures.scored()
        report.qc = SlideReport.QualityControl(
            status: "review", reasons: ["pen", "fold"], fractions: ["pen": 0.125, "blur": 0, "fold": 0.11],
            excluded: 30, usable: 70, exclude: ["blur", "fold", "pen"], focusReference: 1.5, densityReference: 0.41)
        return report
    }

    @Test("QC review and the result come before the viewer, the tiles, the model and the timings")
    func order() throws {
        let image = ReportPage.Image(png: Data([0x89, 0x50]), width: 4, height: 2)
        let html = ReportPage(
            report: Self.review(), thumbnail: image, attentionOverlay: image, qcOverlay: image,
            attentionRange: (0.25, 2.5)
        ).html
        let positions = try [
            "id=\"qc-status\"", "QC: review", "pen ink on 12.5 % of tissue tiles; tissue folds on 11.0 %",
            "id=\"probability\">0.625<", "id=\"viewer\"", "<span>0.25</span><span>1.38</span><span>2.50</span>",
            "id=\"qc\"", "id=\"model\"", "sha256:ab", "id=\"timing\"",
        ].map { try #require(html.range(of: $0), "\($0) missing").lowerBound }
        #expect(positions == positions.sorted())
        #expect(html.contains("data:image/png;base64,iVA="))
        #expect(!html.contains("<script"), "the page needs no script")
        #expect(!html.contains("http://") && !html.contains("https://"), "the page loads nothing from a network")
    }

    @Test("text from the slide is escaped")
    func escaping() {
        var report = Fixtures.scored()
        report.slide.name = "<script>alert('x')</script> & \"co\".svs"
        let html = ReportPage(report: report).html
        #expect(!html.contains("<script>alert"))
        #expect(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;co&quot;.svs"))
    }

    @Test("a failed slide's page says why, a slide without QC says QC is off")
    func failedAndOff() {
        let html = ReportPage(report: Fixtures.failed()).html
        #expect(html.contains("Not scored") && html.contains("not a slide OpenSlide can read (slide.unreadable)"))
        #expect(html.contains("QC: off"))
        #expect(!html.contains("id=\"viewer\""))
    }

    @Test("overlays have one pixel per grid tile: attention on the colormap, QC flags, transparent elsewhere")
    func overlays() throws {
        var tiles = Fixtures.tiles
        tiles[2].qc = ["fold"]
        tiles[2].excluded = true
        let attention = try #require(ReportPage.overlayPixels(tiles: tiles, kind: .attention))
        #expect(attention.width == 3 && attention.height == 2)
        func pixel(_ rgba: [UInt8], _ x: Int, _ y: Int) -> [UInt8] {
            Array(rgba[((y * 3 + x) * 4)..<((y * 3 + x) * 4 + 4)])
        }
        let top = HeatmapRenderer.colour(at: 1)
        #expect(pixel(attention.rgba, 0, 0) == [top.red, top.green, top.blue, 160])
        #expect(pixel(attention.rgba, 2, 1)[3] == 0, "an undrawn tile is transparent")
        #expect(pixel(attention.rgba, 0, 1)[3] == 0, "no tile there")
        let qc = try #require(ReportPage.overlayPixels(tiles: tiles, kind: .qc))
        let fold = QualityMaskRenderer.colour(of: "fold")
        #expect(pixel(qc.rgba, 2, 1) == [fold.red, fold.green, fold.blue, 170])
        #expect(pixel(qc.rgba, 0, 0)[3] == 0)
    }

    @Test("the top tiles are the highest attention among tiles not excluded")
    func topTiles() {
        var tiles = Fixtures.tiles
        tiles[0].excluded = true
        #expect(ReportPage.topTiles(tiles, count: 5).map(\.column) == [1])
        #expect(ReportPage.topTiles(Fixtures.tiles, count: 1).map(\.column) == [0])
    }
}

@Suite("index.html")
struct ReportIndexTests {
    func report(_ name: String, fingerprint: String, qc: String? = nil) -> SlideReport {
        var report = Fixtures.scored()
        report.slide = Fixtures.slide(name: name)
        report.slide.fingerprint = fingerprint
        report.eventID = "evt_" + name
        if let qc {
            report.qc = SlideReport.QualityControl(
                status: qc, reasons: qc == "review" ? ["blur"] : [], fractions: [:], excluded: 0, usable: 3,
                exclude: [])
        }
        return report
    }

    @Test("newest first, one entry per report folder, both files replaced whole, no temporary file left")
    func newestFirst() throws {
        let output = try Fixtures.temporaryFolder()
        let index = ReportIndex(outputDirectory: output)
        try index.record(report("a.svs", fingerprint: "sha256:aaaaaaaaaaaaaaaa"), folder: output + "/a-aaaaaaaaaaaa")
        try index.record(
            report("b.svs", fingerprint: "sha256:bbbbbbbbbbbbbbbb", qc: "review"), folder: output + "/b-bbbbbbbbbbbb")
        let entries = try index.record(
            report("a.svs", fingerprint: "sha256:aaaaaaaaaaaaaaaa", qc: "pass"), folder: output + "/a-aaaaaaaaaaaa")
        #expect(entries.map(\.folder) == ["a-aaaaaaaaaaaa", "b-bbbbbbbbbbbb"])
        #expect(index.entriesOnDisk() == entries)
        let html = try String(contentsOfFile: output + "/index.html", encoding: .utf8)
        let a = try #require(html.range(of: "href=\"a-aaaaaaaaaaaa/report.html\""))
        let b = try #require(html.range(of: "href=\"b-bbbbbbbbbbbb/report.html\""))
        #expect(a.lowerBound < b.lowerBound)
        #expect(html.contains("1 to review") && html.contains("qc-review\">review</span> <span class=\"small\">blur"))
        let names = try FileManager.default.contentsOfDirectory(atPath: output)
        #expect(!names.contains { $0.hasPrefix(".csmil-tmp") })
    }

    @Test("writers on several threads take turns: every report ends up in the index")
    func concurrentWriters() throws {
        let output = try Fixtures.temporaryFolder()
        DispatchQueue.concurrentPerform(iterations: 12) { number in
            let name = "s\(number).svs"
            let fingerprint = "sha256:" + String(repeating: String(number % 10), count: 16)
            _ = try? ReportIndex(outputDirectory: output).record(
                report(name, fingerprint: fingerprint), folder: output + "/s\(number)-\(number)")
        }
        #expect(Set(ReportIndex(outputDirectory: output).entriesOnDisk().map(\.slide)).count == 12)
    }

    @Test("the index keeps the most recent entries only")
    func capacity() throws {
        let output = try Fixtures.temporaryFolder()
        let index = ReportIndex(outputDirectory: output, capacity: 4)
        for number in 0..<7 {
            try index.record(report("s\(number).svs", fingerprint: "sha256:0"), folder: output + "/f\(number)")
        }
        #expect(index.entriesOnDisk().map(\.folder) == ["f6", "f5", "f4", "f3"])
        #expect(ReportIndex(outputDirectory: output).capacity == 500)
    }
}
