import ArgumentParser

/// `csmil synth`: synthetic slides for tests, benchmarks and trying a deployment.
struct SynthCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synth",
        abstract:
            "Write synthetic pyramidal slides (tissue-like texture, the paper's toy anomalies) that OpenSlide opens."
    )

    @Argument(parsing: .allUnrecognized, help: .hidden)
    var arguments: [String] = []

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        throw NotImplementedYet(command: "synth", arrivesWith: "the scoring issue")
    }
}
