import Foundation
import Store
import Testing

@testable import Daemon

/// QC in the job store and `csmil status` (issue 16).
@Suite("csmil status: QC")
struct StatusQualityTests {
    @Test("QC status and reasons are kept with the result; csmil status counts slides to review")
    func qualityCounts() throws {
        let folder = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let store = try JobStore(path: folder.appendingPathComponent("csmil.sqlite3").path)
        for (name, qc, reasons) in [("a.svs", "review", ["pen", "blur"]), ("b.svs", "pass", []), ("c.svs", nil, [])] {
            _ = try store.recordSettled(
                path: folder.appendingPathComponent(name).path, fingerprint: "sha256:" + name, size: 10, modified: 1,
                now: 1000)
            let job = try #require(try store.claimNext(now: 1001, leaseSeconds: 600))
            var result = JobResult(status: "scored", probability: 0.82, label: "Crohn's disease")
            result.qcStatus = qc
            result.qcReasons = reasons
            try store.complete(
                jobID: job.id, eventID: SlidePipeline.eventID(fingerprint: "sha256:" + name, resultKey: ""),
                reportDirectory: "/reports/" + name, result: result, outbox: [], now: 1100)
            #expect(try store.job(id: job.id)?.result == result)
        }
        let summary = try store.summary(now: 1200)
        #expect(summary.qc == JobSummary.QualityCounts(pass: 1, review: 1))
        let review = try #require(summary.recent.first { $0.name == "a.svs" })
        #expect(review.qcStatus == "review" && review.qcReasons == ["pen", "blur"])
        #expect(summary.recent.first { $0.name == "c.svs" }?.qcStatus == nil)
        let text = StatusCommand.text(
            summary: summary, daemon: StatusCommand.DaemonLiveness(snapshot: nil, now: 1200), snapshot: nil, now: 1200)
        #expect(text.contains("qc: 1 to review, 1 passed"))
        #expect(text.contains("a.svs: scored p=0.820 (Crohn's disease) QC review (pen, blur)"))
    }
}
