import Foundation
import Inference
import Sinks
import Testing

@testable import Daemon

/// `csmil requeue` and the event identity (issue 14, items 1 and 4) on a real daemon, real store and a real
/// receiver: a slide scored again with the same model keeps its event id and is not delivered twice; with a second
/// model (other weights) it is a new event that reaches the receiver.
@Suite("csmil requeue and event identity", .serialized)
struct RequeueTests {
    /// Waits until `condition` holds (polling the world), at most `timeout` seconds.
    static func wait(timeout: Double = 120, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try condition() { return true }
            usleep(50_000)
        }
        return try condition()
    }

    static func occurrences(of text: String, in log: String) -> Int { log.components(separatedBy: text).count - 1 }

    @Test("requeue: same model, same event id, delivered once; another model, a new event; --failed; unknown names")
    func requeueAndModelIdentity() throws {
        let setup = try WatchDaemonTests.Setup()
        defer { setup.cleanUp() }
        let config = setup.installation.config.path
        var process = try setup.start()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        #expect(setup.notify.wait(for: "READY=1", timeout: 60), "log:\n\(setup.log())")
        try setup.drop("case-1.svs", seed: 1)
        try Data(repeating: 7, count: 4096).write(to: setup.incoming.appendingPathComponent("broken.svs"))
        let first = setup.waitForEvents(2, timeout: 120)
        try #require(first.count == 2, "log:\n\(setup.log())")
        let firstBodies = try first.map(WatchDaemonTests.json)
        let scored = try #require(firstBodies.first { $0["type"] as? String == "slide.scored" })
        let firstID = try #require((scored["data"] as? [String: Any])?["event_id"] as? String)

        // Unknown names are refused, naming the fix.
        let unknown = try TestSupport.csmil("requeue", "nothing.svs", "--config", config)
        #expect(unknown.status != 0 && unknown.stderr.contains("csmil status"), "\(unknown)")

        // --failed takes the slide whose report is failed; the name takes case-1.svs. Same model: same ids.
        let failed = try TestSupport.csmil("requeue", "--failed", "--config", config)
        #expect(failed.status == 0 && failed.stdout.contains("requeued 1 failed job"), "\(failed)")
        let again = try TestSupport.csmil("requeue", "case-1.svs", "--config", config)
        #expect(again.status == 0 && again.stdout.contains("queued job"), "\(again)")
        #expect(Self.wait { Self.occurrences(of: "slide reported", in: setup.log()) == 4 }, "log:\n\(setup.log())")
        // Both are delivered again without a second request: the outbox knew their ids.
        #expect(
            try Self.wait {
                let status = try TestSupport.csmil("status", "--config", config, "--json")
                let object = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any]
                return ((object?["jobs"] as? [String: Any])?["counts"] as? [String: Int])?["delivered"] == 2
            })
        #expect(WatchDaemonTests.stop(process))

        // A second model: the same architecture, one head with other weights.
        let model2 = setup.installation.root.appendingPathComponent("model2")
        try FileManager.default.copyItem(at: setup.installation.model, to: model2)
        try CheckpointWriter.safetensors(SeededWeights.head(featureSize: 512, seed: 7)).write(
            to: model2.appendingPathComponent("heads/1_model.safetensors"))
        let text = try String(contentsOf: setup.installation.config, encoding: .utf8)
        try TestSupport.write(
            text.replacingOccurrences(of: "directory = \"model\"", with: "directory = \"model2\""),
            to: setup.installation.config)
        process = try setup.start(run: 1)
        #expect(setup.notify.wait(for: "READY=1", timeout: 60), "log:\n\(setup.log(1))")
        let requeued = try TestSupport.csmil("requeue", "case-1.svs", "--config", config)
        #expect(requeued.status == 0, "\(requeued)")
        let all = setup.waitForEvents(3, timeout: 120)
        try #require(all.count == 3, "log:\n\(setup.log(1))")
        let newest = try WatchDaemonTests.json(all[2])
        let data = try #require(newest["data"] as? [String: Any])
        #expect(newest["type"] as? String == "slide.scored")
        #expect((data["slide"] as? [String: Any])?["name"] as? String == "case-1.svs")
        let newID = try #require(data["event_id"] as? String)
        #expect(newID != firstID)
        #expect(all[2].request.headers["webhook-id"] == newID)
        let files = try #require((data["model"] as? [String: Any])?["files"] as? [String: String])
        let scoredFiles = try #require(
            ((scored["data"] as? [String: Any])?["model"] as? [String: Any])?["files"] as? [String: String])
        #expect(files["heads/1_model.safetensors"] != scoredFiles["heads/1_model.safetensors"])
        #expect(files["heads/0_model.safetensors"] == scoredFiles["heads/0_model.safetensors"])
        #expect(WatchDaemonTests.stop(process))
        // Every id reached the receiver once: the two same-model re-scores sent nothing.
        let ids = setup.sink.events.filter { $0.verdict == .verified }.compactMap { $0.request.headers["webhook-id"] }
        #expect(ids.count == 3 && Set(ids).count == 3, "\(ids)")
    }
}
