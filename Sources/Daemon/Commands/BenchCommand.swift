import ArgumentParser
import Inference

/// `csmil bench`: throughput benchmarks, printed as one JSON line each.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure throughput; each benchmark prints one JSON line.",
        subcommands: [Embed.self]
    )

    /// `csmil bench embed`: backbone images per second.
    struct Embed: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "embed",
            abstract: "Backbone throughput on random weights and images; prints {\"images_per_second\": …}."
        )

        @Option(name: .long, help: "The architecture: resnet18, resnet34 or resnet50.")
        var arch: Architecture = .resnet50

        @Option(name: .long, help: "Images per batch.")
        var batch: Int = 16

        @Option(name: .long, help: "How long to measure, in seconds.")
        var seconds: Double = 20

        @OptionGroup var global: GlobalOptions

        func run() async throws {
            throw NotImplementedYet(command: "bench embed", arrivesWith: "the inference issue")
        }
    }
}
