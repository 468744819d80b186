import Foundation
import Testing

@testable import Notify

@Suite("report.json")
struct SlideReportTests {
    @Test(
        "a report survives encoding and decoding unchanged",
        arguments: [
            Fixtures.scored(), Fixtures.noTissue(), Fixtures.failed(),
        ])
    func roundTrip(report: SlideReport) throws {
        let decoded = try SlideReport.decode(from: try report.jsonData())
        #expect(decoded == report)
        #expect(decoded.schema == "csmil.report/1")
    }

    @Test("the spec's fields have exactly the spec's names")
    func fieldNames() throws {
        let object = try Fixtures.jsonObject(try Fixtures.scored().jsonData())
        let spec: Set = ["schema", "event_id", "status", "slide", "model", "result", "tiles", "timing"]
        let extras: Set = ["tissue", "resolution", "versions", "deviations"]
        #expect(Set(object.keys) == spec.union(extras))
        #expect(object["schema"] as? String == "csmil.report/1")
        #expect(object["status"] as? String == "scored")
        let slide = try #require(object["slide"] as? [String: Any])
        #expect(
            Set(slide.keys) == ["path", "name", "fingerprint", "vendor", "width", "height", "mpp", "magnification"])
        let model = try #require(object["model"] as? [String: Any])
        #expect(Set(model.keys) == ["name", "architecture", "files"])
        #expect((model["files"] as? [String: String])?["heads.pt"] == "sha256:ab")
        let result = try #require(object["result"] as? [String: Any])
        let resultSpec: Set = ["probability", "label", "threshold", "head_probabilities"]
        #expect(resultSpec.isSubset(of: Set(result.keys)))
        #expect(Set(result.keys).subtracting(resultSpec) == ["positive", "bag_count", "cluster_count", "seed"])
        #expect(result["head_probabilities"] as? [Double] == [0.5, 0.75])
        #expect((object["tiles"] as? [String: Any])?["count"] as? Int == 3)
        let timing = try #require(object["timing"] as? [String: Any])
        #expect(timing["seconds"] as? Double == 12.5)
        #expect((timing["stages"] as? [String: Double])?["embed"] == 10)
        #expect(Set((try #require(object["tissue"] as? [String: Any])).keys) == ["area_mm2", "fraction"])
    }

    @Test("error appears only when the slide failed, with code and message")
    func errorOnlyWhenFailed() throws {
        let failed = try Fixtures.jsonObject(try Fixtures.failed().jsonData())
        let error = try #require(failed["error"] as? [String: Any])
        #expect(Set(error.keys) == ["code", "message"])
        #expect(failed["status"] as? String == "failed")
        #expect(failed["result"] is NSNull)
        let slide = try #require(failed["slide"] as? [String: Any])
        #expect(slide["width"] is NSNull && slide["vendor"] is NSNull)
        for report in [Fixtures.scored(), Fixtures.noTissue()] {
            #expect(try Fixtures.jsonObject(try report.jsonData())["error"] == nil)
        }
    }

    @Test("a slide without tissue has no result and no extras it did not set")
    func noTissueHasNoResult() throws {
        let object = try Fixtures.jsonObject(try Fixtures.noTissue().jsonData())
        #expect(object["status"] as? String == "no_tissue")
        #expect(object["result"] is NSNull)
        #expect(Set(object.keys) == ["schema", "event_id", "status", "slide", "model", "result", "tiles", "timing"])
    }

    @Test("the same report always gives the same bytes, pretty printed with sorted keys")
    func deterministicBytes() throws {
        let first = try Fixtures.scored().jsonData()
        #expect(first == (try Fixtures.scored().jsonData()))
        let text = try #require(String(data: first, encoding: .utf8))
        #expect(text.hasSuffix("}\n"))
        #expect(text.contains("\n  \"deviations\""))
        let eventIndex = try #require(text.range(of: "\"event_id\"")).lowerBound
        let schemaIndex = try #require(text.range(of: "\"schema\"")).lowerBound
        #expect(eventIndex < schemaIndex)
        #expect(text.contains("/srv/scanner/"))
    }

    @Test("contradictions between status, result and error are found")
    func inconsistencies() {
        #expect(Fixtures.scored().inconsistencies.isEmpty)
        #expect(Fixtures.noTissue().inconsistencies.isEmpty)
        #expect(Fixtures.failed().inconsistencies.isEmpty)
        var scoredWithError = Fixtures.scored()
        scoredWithError.error = SlideReport.Failure(code: "x", message: "y")
        #expect(!scoredWithError.inconsistencies.isEmpty)
        var failedWithoutError = Fixtures.failed()
        failedWithoutError.error = nil
        #expect(!failedWithoutError.inconsistencies.isEmpty)
    }
}
