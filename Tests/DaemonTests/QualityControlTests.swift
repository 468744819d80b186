import Foundation
import Ingest
import Notify
import Testing

/// QC end to end (issue 16): measured against the truth of painted slides (`csmil bench qc`), a clean slide
/// scored the same with QC on and off, and a slide with pen ink sent to review in every output.
@Suite("QC in csmil score")
struct QualityControlTests {
    static func json(_ path: String) throws -> [String: Any] {
        try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
    }

    /// An installation whose configuration has `[qc]` set to `qc` (nil: the section left out, QC on by default).
    static func installation(qc: String?) throws -> Installation {
        let installation = try Installation()
        if let qc {
            try TestSupport.write(Installation.configText + "\n\n[qc]\n" + qc + "\n", to: installation.config)
        }
        return installation
    }

    /// `csmil score` on `slide` into `out`: its JSON line and report folder.
    static func score(_ installation: Installation, _ slide: String, out: String) throws -> ([String: Any], String) {
        let result = try TestSupport.csmil(
            "score", "--config", installation.config.path, "--out", out, "--log-level", "warning", slide)
        try #require(result.status == 0, "\(result.stderr)")
        let line = try #require(
            try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(result.stdout)")
        let report = try #require(line["report"] as? String)
        return (line, URL(fileURLWithPath: report).deletingLastPathComponent().path)
    }

    @Test("on slides painted with pen, blur and folds, flagged tiles match the truth (recall and precision ≥ 0.9)")
    func measuredAgainstTruth() throws {
        let run = try TestSupport.csmil(
            "bench", "qc", "--slides", "1", "--size", "10240", "--seed", "100", "--log-level", "warning")
        try #require(run.status == 0, "\(run.stderr)")
        let line = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        let checks = try #require(line["checks"] as? [String: [String: Any]])
        for check in ["pen", "blur", "fold"] {
            let counts = try #require(checks[check])
            let truth = try #require(counts["truth_tiles"] as? Int)
            #expect(truth >= 20, "\(check): the painted slide has too few \(check) tiles to measure (\(truth))")
            #expect((counts["recall"] as? Double ?? 0) >= 0.9, "\(check): \(counts)")
            #expect((counts["precision"] as? Double ?? 0) >= 0.9, "\(check): \(counts)")
        }
        let clean = try #require(line["clean_flagged_fraction"] as? Double)
        #expect(clean <= 0.01, "tiles flagged on the clean slide: \(clean)")
        let verdicts = try #require(line["verdicts"] as? [[String: Any]])
        #expect(verdicts.first?["status"] as? String == "review")
        #expect(verdicts.last?["status"] as? String == "pass")
    }

    @Test("a clean slide scores the same with QC on as with QC off, to the last bit, and passes")
    func cleanSlideUnchanged() throws {
        let off = try Self.installation(qc: "enabled = false")
        defer { off.cleanUp() }
        let on = try Self.installation(qc: nil)
        defer { on.cleanUp() }
        let slide = off.root.appendingPathComponent("clean.svs").path
        let synth = try TestSupport.csmil(
            "synth", "--out", slide, "--width", "2048", "--height", "2048", "--anomaly", "micro", "--positive", "0.5",
            "--seed", "11", "--tissue-fraction", "0.6", "--log-level", "warning")
        try #require(synth.status == 0, "\(synth.stderr)")

        let (offLine, offFolder) = try Self.score(off, slide, out: off.root.appendingPathComponent("out").path)
        let (onLine, onFolder) = try Self.score(on, slide, out: on.root.appendingPathComponent("out").path)
        let offReport = try Self.json(offFolder + "/report.json")
        let onReport = try Self.json(onFolder + "/report.json")
        let offResult = try #require(offReport["result"] as? [String: Any])
        let onResult = try #require(onReport["result"] as? [String: Any])
        #expect(onLine["probability"] as? Double == offLine["probability"] as? Double)
        #expect(onResult["head_probabilities"] as? [Double] == offResult["head_probabilities"] as? [Double])

        #expect(offReport["qc"] == nil && offLine["qc"] == nil)
        let qc = try #require(onReport["qc"] as? [String: Any])
        #expect(qc["status"] as? String == "pass" && (qc["reasons"] as? [String])?.isEmpty == true)
        #expect(qc["excluded"] as? Int == 0 && onLine["qc"] as? String == "pass")
        #expect(qc["usable"] as? Int == (onReport["tiles"] as? [String: Any])?["count"] as? Int)

        let csv = try String(contentsOfFile: onFolder + "/case_results_merge.csv", encoding: .utf8)
        #expect(csv.hasPrefix("case_name,label,prob,acc,qc\n") && csv.hasSuffix(",pass\n"))
        let csvOff = try String(contentsOfFile: offFolder + "/case_results_merge.csv", encoding: .utf8)
        #expect(csvOff.hasPrefix("case_name,label,prob,acc\n"))
        #expect(FileManager.default.fileExists(atPath: onFolder + "/qc_mask.png"))
        #expect(!FileManager.default.fileExists(atPath: offFolder + "/qc_mask.png"))
        let features = try #require(try Self.json(onFolder + "/tiles.geojson")["features"] as? [[String: Any]])
        #expect(features.allSatisfy { (($0["properties"] as? [String: Any])?["qc"] as? [Any])?.isEmpty == true })
        for folder in [offFolder, onFolder] {
            #expect(FileManager.default.fileExists(atPath: folder + "/report.html"))
        }
    }

    @Test("a slide with pen ink says review first in every output, and its inked tiles are left out of the bags")
    func reviewSlide() throws {
        let scored = try ReviewSlide.get()
        let report = try Self.json(scored.folder + "/report.json")
        let qc = try #require(report["qc"] as? [String: Any])
        #expect(qc["status"] as? String == "review")
        #expect(qc["reasons"] as? [String] == ["pen"])
        let excluded = try #require(qc["excluded"] as? Int)
        let usable = try #require(qc["usable"] as? Int)
        let tiles = try #require(report["tiles"] as? [String: Any])
        #expect(excluded > 0 && (excluded + usable) == (tiles["count"] as? Int ?? -1))
        #expect((tiles["drawn"] as? Int ?? .max) <= usable)
        #expect(((qc["fractions"] as? [String: Double])?["pen"] ?? 0) > 0.1)
        #expect(report["status"] as? String == "scored" && report["result"] is [String: Any])
        #expect(scored.lineQC == "review")

        // tiles.geojson: every excluded tile carries its flag and no attention; none of them was drawn.
        let features = try #require(try Self.json(scored.folder + "/tiles.geojson")["features"] as? [[String: Any]])
        let properties = features.compactMap { $0["properties"] as? [String: Any] }
        let excludedTiles = properties.filter { $0["excluded"] as? Bool == true }
        #expect(excludedTiles.count == excluded)
        #expect(
            excludedTiles.allSatisfy { ($0["qc"] as? [String])?.contains("pen") == true && $0["attention"] is NSNull })
        #expect(properties.filter { $0["attention"] is Double }.count == tiles["drawn"] as? Int)

        let csv = try String(contentsOfFile: scored.folder + "/case_results_merge.csv", encoding: .utf8)
        #expect(csv.split(separator: "\n").dropFirst().allSatisfy { $0.hasSuffix(",review") })

        // The webhook bodies built from this report: the event carries qc, FHIR says review before the result.
        let decoded = try SlideReport.decode(
            from: Data(contentsOf: URL(fileURLWithPath: scored.folder + "/report.json")))
        let event = try WebhookPayload.make(.event, report: decoded, timestamp: Date())
        let eventObject = try #require(try JSONSerialization.jsonObject(with: Data(event.body)) as? [String: Any])
        #expect(((eventObject["data"] as? [String: Any])?["qc"] as? [String: Any])?["status"] as? String == "review")
        let fhir = try WebhookPayload.make(.fhir, report: decoded, timestamp: Date())
        let resource = try #require(try JSONSerialization.jsonObject(with: Data(fhir.body)) as? [String: Any])
        #expect((resource["conclusion"] as? String)?.hasPrefix("QC REVIEW (pen): ") == true)
        let extensions = try #require(resource["extension"] as? [[String: Any]])
        #expect(
            extensions.contains {
                $0["url"] as? String == "urn:csmil:qc-status" && $0["valueString"] as? String == "review"
            })

        let index = try String(contentsOfFile: scored.output + "/index.html", encoding: .utf8)
        #expect(index.contains(URL(fileURLWithPath: scored.folder).lastPathComponent + "/report.html"))
    }
}

/// One slide with a pen stroke, scored once for the tests that look at its outputs (the review test and the
/// browser test): 3072 × 3072 pixels at 20x, micro anomaly, a marker arc over a third of its tissue. Its folder is
/// removed when the test process exits.
enum ReviewSlide {
    struct Scored: Sendable {
        var installation: Installation
        /// The `qc` of csmil score's JSON line.
        var lineQC: String?
        /// The report folder.
        var folder: String
        /// The output folder.
        var output: String
    }

    private static let result: Result<Scored, any Error> = Result {
        let installation = try Installation()
        atexit { try? ReviewSlide.get().installation.cleanUp() }
        let slide = installation.root.appendingPathComponent("S16-0001-A1-1.svs").path
        let synth = try TestSupport.csmil(
            "synth", "--out", slide, "--width", "3072", "--height", "3072", "--anomaly", "micro", "--positive", "0.5",
            "--seed", "1", "--tissue-fraction", "0.6", "--artifacts", "pen", "--log-level", "warning")
        guard synth.status == 0 else { throw ReviewSlideError(message: synth.stderr) }
        let output = installation.root.appendingPathComponent("out").path
        let (line, folder) = try QualityControlTests.score(installation, slide, out: output)
        return Scored(
            installation: installation, lineQC: line["qc"] as? String, folder: folder, output: output)
    }

    /// The scored slide (scoring it on the first call).
    static func get() throws -> Scored { try result.get() }
}

struct ReviewSlideError: Error, CustomStringConvertible {
    var message: String
    var description: String { "csmil synth failed: \(message)" }
}
