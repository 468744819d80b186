import Foundation
import Images
import Ingest
import Testing

/// report.html and index.html in real headless Chromium (Debian's chromium and chromium-driver through Selenium,
/// installed by scripts/setup), loaded from file:// URLs: what a pathologist sees, with no console error.
/// tools/check_report_page.py drives the browser and reports; this test judges.
@Suite("report.html in Chromium")
struct ReportPageBrowserTests {
    @Test("the review slide's page shows QC first, the heatmap with its values, switches overlays, and logs nothing")
    func reviewPage() throws {
        let scored = try ReviewSlide.get()
        let shots = scored.installation.root.appendingPathComponent("browser").path
        let checker = TestSupport.packageRoot.appendingPathComponent("tools/check_report_page.py").path
        for program in ["/usr/bin/python3", "/usr/bin/chromium", "/usr/bin/chromedriver"] {
            try #require(
                FileManager.default.isExecutableFile(atPath: program),
                "\(program) is missing: run scripts/setup (make test does); it installs chromium, chromium-driver, python3-selenium"
            )
        }
        let run = try TestSupport.run(URL(fileURLWithPath: "/usr/bin/python3"), [checker, scored.folder, shots])
        try #require(run.status == 0, "the browser check failed: \(run.stderr)")
        let page = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])

        // Nothing in the console on either page (errors, failed loads, warnings alike).
        let console = try #require(page["console"] as? [[String: Any]])
        #expect(console.isEmpty, "browser console: \(console)")
        // A page with a missing image does log, so an empty console means something.
        let control = try #require(page["control_console"] as? [[String: Any]])
        #expect(!control.isEmpty, "the control page's failed load was not logged")

        // Identity and result first: QC review with its reason, then the probability as in report.json.
        let report = try QualityControlTests.json(scored.folder + "/report.json")
        let probability = try #require((report["result"] as? [String: Any])?["probability"] as? Double)
        #expect((page["qc_status"] as? String)?.hasPrefix("QC: review — pen ink on") == true)
        #expect(page["probability"] as? String == String(format: "%.3f", probability))
        #expect((page["title"] as? String)?.contains("QC review") == true)
        // The colour scale carries the lowest, middle and highest attention of the drawn tiles.
        let features = try #require(
            try QualityControlTests.json(scored.folder + "/tiles.geojson")["features"] as? [[String: Any]])
        let attention = features.compactMap { ($0["properties"] as? [String: Any])?["attention"] as? Double }
        let low = try #require(attention.min())
        let high = try #require(attention.max())
        let ticks = try #require(page["ticks"] as? [String])
        #expect(ticks.count == 3 && Double(ticks[0]).map { abs($0 - low) < 0.01 } == true)
        #expect(Double(ticks[2]).map { abs($0 - high) < 0.01 } == true)
        #expect((page["legend"] as? String)?.contains("Attention: how much weight the model gave a tile") == true)
        // Every image decoded; six top tiles with three views each.
        let images = try #require(page["images"] as? [[String: Any]])
        #expect(images.allSatisfy { $0["complete"] as? Bool == true && ($0["natural_width"] as? Int ?? 0) > 0 })
        #expect(page["top_tiles"] as? Int == 18)
        #expect(page["attention_visible_after_untick"] as? Bool == false)

        // The screenshot shows the heatmap over the thumbnail: viridis greens and yellows, which H&E never has,
        // inside the thumbnail's box; unticking the heatmap removes them.
        let stage = try #require(page["stage"] as? [String: Double])
        let screenshots = try #require(page["screenshots"] as? [String: String])
        let before = try Self.heatmapPixels(screenshots["report.png"], in: stage)
        let after = try Self.heatmapPixels(screenshots["report-no-attention.png"], in: stage)
        #expect(before > 2000, "heatmap pixels in the screenshot: \(before)")
        #expect(after < before / 20, "heatmap pixels left after unticking it: \(after) of \(before)")

        // index.html lists the slide, newest first, says review, and its link opens the page.
        let rows = try #require(page["index_rows"] as? [[String]])
        #expect(rows.first?[1] == "S16-0001-A1-1.svs" && rows.first?[2].hasPrefix("review") == true)
        #expect((page["followed_link_title"] as? String)?.hasPrefix("S16-0001-A1-1.svs") == true)
    }

    /// Pixels in the thumbnail's box of a screenshot that are green-dominant (the viridis heatmap blended over
    /// pink tissue); H&E tissue, glass and the QC colours have none.
    static func heatmapPixels(_ path: String?, in stage: [String: Double]) throws -> Int {
        let image = try RGBImage(contentsOfFile: try #require(path))
        let left = Int(stage["x"] ?? 0)
        let top = Int(stage["y"] ?? 0)
        let right = min(image.width, left + Int(stage["width"] ?? 0))
        let bottom = min(image.height, top + Int(stage["height"] ?? 0))
        var count = 0
        for y in top..<max(top, bottom) {
            for x in left..<max(left, right) {
                let index = (y * image.width + x) * 3
                let (r, g, b) = (Int(image.pixels[index]), Int(image.pixels[index + 1]), Int(image.pixels[index + 2]))
                if g >= r + 20 && g >= b - 10 { count += 1 }
            }
        }
        return count
    }
}
