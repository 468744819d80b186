import ArgumentParser

/// `csmil score`: one-shot scoring of slides named on the command line.
struct ScoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "score",
        abstract: "Score slides once and write their reports; print one JSON summary line per slide.",
        discussion: "Exit status 0 if every slide was scored, 1 if any failed. No webhook unless --notify."
    )

    @Option(name: .long, help: "A configuration file (for the model, output folder and webhook).")
    var config: String?

    @Option(name: .long, help: "A model directory holding model.toml (overrides the configuration).")
    var model: String?

    @Option(name: .long, help: "Where to write the report folders (overrides the configuration).")
    var out: String?

    @Flag(name: .long, help: "Also deliver each result through the configured webhook.")
    var notify = false

    @Argument(help: "Slide files (SVS, TIFF, NDPI, MRXS, … as OpenSlide reads them).")
    var slides: [String]

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        throw NotImplementedYet(command: "score", arrivesWith: "the scoring issue")
    }
}
