import ArgumentParser
import Inference

/// `csmil embed`: backbone features of PNG images, for building training sets.
struct EmbedCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed",
        abstract: "Embed PNG images (256, 512 or 1024 px square) with a backbone into a float32 .npy [N, D]."
    )

    @Option(name: .long, help: "The backbone checkpoint (.pth as published, or .safetensors).")
    var backbone: String

    @Option(name: .long, help: "The backbone architecture: resnet18, resnet34 or resnet50.")
    var arch: Architecture = .resnet50

    @Option(name: .long, help: "The .npy file to write.")
    var out: String

    @Argument(help: "PNG images, embedded in argument order.")
    var images: [String]

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        throw NotImplementedYet(command: "embed", arrivesWith: "the inference issue")
    }
}

extension Architecture: ExpressibleByArgument {}
