import ArgumentParser

/// The `csmil` command: the daemon and its tools.
@main
struct CSMIL: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "csmil",
        abstract: "Score whole-slide images with a CS-MIL model and deliver the results to the LIS.",
        discussion: """
            csmil watches the folder a slide scanner writes into, scores each new slide with a \
            cross-scale multi-instance learning model, writes a report and sends it to the laboratory \
            information system through a signed webhook. `csmil watch` is what the systemd unit runs.
            """,
        version: Product.version,
        subcommands: [
            WatchCommand.self, ScoreCommand.self, EmbedCommand.self, SynthCommand.self, EmbedSlidesCommand.self,
            TrainCommand.self, SeededBackbonesCommand.self,
            StatusCommand.self, ReloadCommand.self, DoctorCommand.self, WebhookSinkCommand.self, HL7SinkCommand.self,
            OutboxCommand.self, RequeueCommand.self,
            BenchCommand.self,
        ]
    )
}
