import ArgumentParser

/// `csmil train`: CS-MIL heads from embedded slides and labels (model spec §6).
struct TrainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train CS-MIL heads from embedded slides and labels."
    )

    @Argument(parsing: .allUnrecognized, help: .hidden)
    var arguments: [String] = []

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        throw NotImplementedYet(command: "train", arrivesWith: "the training issue")
    }
}
