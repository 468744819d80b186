import ArgumentParser
import Foundation
import Store
import Threads

extension BenchCommand {
    /// `csmil bench store`: what the job store adds to each slide, on SQLite and (given) on PostgreSQL.
    struct StoreOverhead: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "store",
            abstract: "Time the job store's work per slide (settle, claim, heartbeats, completion, delivery).",
            discussion: """
                Runs the store's part of N slides' lives as the daemon does them — settle, claim (FOR UPDATE SKIP \
                LOCKED on PostgreSQL), --heartbeats lease renewals, completion with its outbox row, the outbox \
                claim and the delivery record — on a fresh SQLite file in a temporary folder and, with \
                --database, in that PostgreSQL database (it must be empty; its tables are created). Prints one JSON \
                line per backend: milliseconds per slide for each step (median and 95th percentile) and in total.
                """
        )

        @Option(name: .long, help: "Slides to simulate.")
        var slides: Int = 200

        @Option(name: .long, help: "Heartbeats per slide (a 120 s lease is renewed every 30 s).")
        var heartbeats: Int = 4

        @Option(name: .long, help: "An empty PostgreSQL database to measure too: postgresql://USER@HOST/DB?….")
        var database: String?

        @Option(name: .long, help: "The file holding that database's password.")
        var passwordFile: String?

        @OptionGroup var global: GlobalOptions

        func validate() throws {
            guard slides >= 1 && slides <= 100_000 else { throw ValidationError("--slides must be 1…100000") }
            guard heartbeats >= 0 && heartbeats <= 1000 else { throw ValidationError("--heartbeats must be 0…1000") }
        }

        func run() async throws {
            _ = global.bootstrapLogging(configured: .warning)
            var locations: [StoreLocation] = []
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
                "csmil-bench-store-" + UUID().uuidString
            ).path
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: folder) }
            locations.append(.sqlite(path: folder + "/csmil.sqlite3"))
            if let database {
                locations.append(
                    try StoreCommand.Migrate.location(database, passwordFile: passwordFile))
            }
            let (slides, heartbeats) = (self.slides, self.heartbeats)
            for location in locations {
                let line = try await DedicatedThread.run(name: "csmil-bench") {
                    try Self.measure(location, slides: slides, heartbeats: heartbeats)
                }
                print(line)
            }
        }

        /// The steps of `slides` slides' lives on `location`, timed one by one; the result as one JSON line.
        static func measure(_ location: StoreLocation, slides: Int, heartbeats: Int) throws -> String {
            let store = try JobStore.open(location, applicationName: "csmil bench")
            let counts = try store.counts()
            guard JobState.allCases.allSatisfy({ counts[$0] == 0 }) else {
                throw CommandError(
                    code: .usage, subject: location.description, message: "the store is not empty",
                    fix: "give an empty database (createdb) to the benchmark")
            }
            let outbox = Outbox(database: store.database)
            let run = UUID().uuidString.prefix(8)
            var times: [String: [Double]] = [:]
            let clock = ContinuousClock()
            func timed<Result>(_ step: String, _ body: () throws -> Result) rethrows -> Result {
                let start = clock.now
                let result = try body()
                let elapsed = clock.now - start
                times[step, default: []].append(
                    Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) * 1e-15)
                return result
            }
            let body = [UInt8](repeating: 0x7b, count: 4096)
            var now = Date().timeIntervalSince1970
            for index in 0..<slides {
                now += 1
                let path = "/bench/\(run)/slide-\(index).svs"
                let fingerprint = "sha256:\(run)-\(index)"
                _ = try timed("settle") {
                    try store.recordSettled(
                        path: path, fingerprint: fingerprint, size: 1 << 30, modified: now, now: now)
                }
                guard
                    let job = try timed("claim", { try store.claimNext(now: now, leaseSeconds: 120, holder: "bench") })
                else { throw CommandError(code: .usage, subject: "bench", message: "nothing claimed", fix: "") }
                for _ in 0..<heartbeats {
                    try timed("heartbeat") {
                        try store.renewLease(jobID: job.id, token: job.leaseToken, now: now, leaseSeconds: 120)
                    }
                }
                let eventID = "evt_\(run)_\(index)"
                try timed("complete") {
                    try store.complete(
                        jobID: job.id, eventID: eventID, reportDirectory: "/bench/report-\(index)",
                        result: JobResult(status: "scored", probability: 0.5, label: "x"),
                        outbox: [
                            OutboxMessage(
                                eventID: eventID, slideKey: fingerprint, eventType: "slide.scored",
                                destination: OutboxMessage.webhook, contentType: "application/json", body: body)
                        ],
                        now: now)
                }
                guard
                    let row = try timed(
                        "outbox_claim",
                        {
                            try outbox.claimNextDue(
                                now: now, destinations: [OutboxMessage.webhook: "https://lis.example.org/in"],
                                holder: "bench", leaseSeconds: 90)
                        })
                else { throw CommandError(code: .usage, subject: "bench", message: "no outbox row", fix: "") }
                _ = try timed("deliver") {
                    try outbox.record(OutboxAttempt(.delivered, status: 200), for: row, now: now)
                }
            }
            var fields: [String: Any] = [
                "benchmark": "store", "backend": location.isShared ? "postgresql" : "sqlite", "slides": slides,
                "heartbeats_per_slide": heartbeats,
            ]
            var total = 0.0
            for (step, values) in times.sorted(by: { $0.key < $1.key }) {
                let sorted = values.sorted()
                let perSlide = values.reduce(0, +) / Double(slides)
                total += perSlide
                fields["\(step)_ms_median"] = (sorted[sorted.count / 2] * 1000).rounded() / 1000
                fields["\(step)_ms_p95"] =
                    (sorted[min(sorted.count - 1, sorted.count * 95 / 100)] * 1000).rounded() / 1000
            }
            fields["total_ms_per_slide"] = (total * 1000).rounded() / 1000
            let data = try JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])
            return String(decoding: data, as: UTF8.self)
        }
    }
}
