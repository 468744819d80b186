import Foundation
import Synchronization

/// Named points where a test may freeze the daemon to kill it there (`kill -9`), set by the environment
/// variable `CSMIL_TEST_PAUSE_AT` (a comma-separated list of point names). When the daemon reaches a listed point
/// it writes `<state>/paused-at-<point>` and sleeps forever. Unset in production: a lookup that finds nothing.
enum TestHooks {
    /// The points: a settled slide recorded, a job claimed, a report written but not committed, a report and its
    /// outbox row committed.
    enum Point: String, CaseIterable {
        case settled, claimed, reportWritten = "report-written", committed
    }

    static let pausePoints: Set<String> = Set(
        (ProcessInfo.processInfo.environment["CSMIL_TEST_PAUSE_AT"] ?? "").split(separator: ",").map(String.init))

    /// Points named in `CSMIL_TEST_HOLD_AT` (`scored`: a slide's pipeline has returned, its outcome is not looked at
    /// yet): the daemon writes `<state>/held-at-<point>` there and waits until the test removes it, so that the test
    /// can change the world (delete the slide) at a known moment.
    static let holdPoints: Set<String> = Set(
        (ProcessInfo.processInfo.environment["CSMIL_TEST_HOLD_AT"] ?? "").split(separator: ",").map(String.init))

    /// Freezes the calling thread at `point` if a test asked for it.
    static func pauseIfRequested(_ point: Point, stateDirectory: String) {
        guard pausePoints.contains(point.rawValue) else { return }
        _ = FileManager.default.createFile(atPath: stateDirectory + "/paused-at-" + point.rawValue, contents: Data())
        while true { sleep(3600) }
    }

    /// Points already held at: each point holds the first time it is reached only.
    private static let held = Mutex<Set<String>>([])

    /// Waits at `point` while `<state>/held-at-<point>` exists, if a test asked for it (`CSMIL_TEST_HOLD_AT`); the
    /// first time the daemon reaches `point` only (a slide scored again later goes through).
    static func holdIfRequested(_ point: String, stateDirectory: String) {
        guard holdPoints.contains(point), held.withLock({ $0.insert(point).inserted }) else { return }
        let marker = stateDirectory + "/held-at-" + point
        _ = FileManager.default.createFile(atPath: marker, contents: Data())
        while FileManager.default.fileExists(atPath: marker) { usleep(10_000) }
    }
}
