import ArgumentParser
import Foundation
import Store

/// `csmil requeue SLIDE | --failed`: score a slide again (after a fix: room on a disk, a new model, a repaired
/// file). The job goes back to the queue in the job store; the running daemon picks it up within seconds.
struct RequeueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "requeue",
        abstract: "Queue a failed, reported or delivered slide (or every failed one) to be scored again.",
        discussion: """
            SLIDE is a job id, an event id, a fingerprint, or the slide's path or file name, as `csmil status` \
            lists them. The job goes back to the queue (its attempts, result and error cleared) and the running \
            daemon scores it again within seconds. Scored with the same model it keeps its event id, which is not \
            delivered twice; with another model it is a new event. A file recorded as not a slide is forgotten \
            instead and read again at the daemon's next scan of the watch folder.
            """
    )

    @Argument(help: "The slide: a job id, an event id, a fingerprint, or its path or file name.")
    var slide: String?

    @Flag(name: .long, help: "Requeue every failed slide.")
    var failed = false

    @Option(name: .long, help: "The configuration file (its [state] directory holds csmil.sqlite3).")
    var config: String = Configuration.defaultPath

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard (slide != nil) != failed else { throw ValidationError("name one SLIDE or pass --failed") }
    }

    func run() async throws {
        let configuration = try Configuration.load(path: config)
        _ = global.bootstrapLogging(configured: .warning)
        let location = configuration.storeLocation
        if case .sqlite(let path) = location, !FileManager.default.fileExists(atPath: path) {
            throw CommandError(
                code: .notFound, subject: path, message: "no job store here",
                fix: "check [state] directory in \(configuration.sourcePath) (the daemon creates the file when it "
                    + "first runs)")
        }
        let store = try JobStore.open(location, applicationName: "csmil requeue")
        let now = Date().timeIntervalSince1970
        let jobs: [Job]
        if let slide {
            let named = try store.jobs(named: slide)
            guard !named.isEmpty else {
                throw CommandError(
                    code: .notFound, subject: slide, message: "no job has this id, event id, fingerprint, path or name",
                    fix: "`csmil status` lists the slides with their event ids")
            }
            guard named.count == 1 else {
                let list = named.map { "\($0.id) (\($0.path), \($0.state.rawValue))" }.joined(separator: ", ")
                throw CommandError(
                    code: .usage, subject: slide, message: "names \(named.count) jobs: \(list)",
                    fix: "name one by its job id: csmil requeue \(named[0].id)")
            }
            jobs = named
        } else {
            jobs = try store.failedJobs()
        }
        for job in jobs {
            let name = URL(fileURLWithPath: job.path).lastPathComponent.escapingControlCharacters
            switch try store.requeue(jobID: job.id, now: now) {
            case .queued:
                print("queued job \(job.id) (\(name)) again; it was \(job.state.rawValue)")
            case .forgotten:
                print(
                    "forgot job \(job.id) (\(name)), a file that was not read as a slide; it is read again at the next scan"
                )
            }
        }
        if slide == nil { print("requeued \(jobs.count) failed job\(jobs.count == 1 ? "" : "s")") }
    }
}
