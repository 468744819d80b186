import Foundation
import Testing

@Suite("The csmil command line")
struct CommandLineTests {
    static let subcommands = ["watch", "score", "embed", "synth", "train", "status", "doctor", "webhook-sink", "bench"]

    @Test("csmil --help lists every subcommand of the daemon spec")
    func helpListsSubcommands() throws {
        let result = try TestSupport.csmil("--help")
        #expect(result.status == 0)
        for name in Self.subcommands {
            #expect(result.stdout.contains("\n  \(name) "), "\(name) missing from --help")
        }
    }

    @Test("every subcommand has --help", arguments: subcommands + ["bench embed"])
    func subcommandHelp(name: String) throws {
        let result = try TestSupport.run(TestSupport.binary(), name.split(separator: " ").map(String.init) + ["--help"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("USAGE: csmil \(name)"))
    }

    @Test("score, embed and webhook-sink document the options the spec names")
    func specOptions() throws {
        let score = try TestSupport.csmil("score", "--help").stdout
        for option in ["--config", "--model", "--out", "--notify", "<slides>"] { #expect(score.contains(option)) }
        let embed = try TestSupport.csmil("embed", "--help").stdout
        for option in ["--backbone", "--arch", "--out", "<images>"] { #expect(embed.contains(option)) }
        let sink = try TestSupport.csmil("webhook-sink", "--help").stdout
        for option in ["--port", "--secret-file"] { #expect(sink.contains(option)) }
        let status = try TestSupport.csmil("status", "--help").stdout
        for option in ["--config", "--json"] { #expect(status.contains(option)) }
        #expect(try TestSupport.csmil("doctor", "--help").stdout.contains("--log-level"))
    }

    @Test(
        "watch and status with a configuration file that does not exist fail naming the file, printing nothing",
        arguments: [["watch"], ["status"], ["status", "--json"]])
    func missingConfiguration(arguments: [String]) throws {
        let path = "/nonexistent/csmil-\(UUID().uuidString).toml"
        let result = try TestSupport.run(TestSupport.binary(), arguments + ["--config", path])
        #expect(result.status != 0)
        #expect(result.stderr.contains(path))
        #expect(result.stdout.isEmpty, "must not print anything that looks like a result")
    }

    @Test("an unknown architecture or log level is a usage error naming the choices")
    func usageErrors() throws {
        let arch = try TestSupport.csmil("embed", "--backbone", "b", "--arch", "vgg", "--out", "o", "a.png")
        #expect(arch.status == 64)
        #expect(arch.stderr.contains("resnet18"))
        let level = try TestSupport.csmil("doctor", "--log-level", "loud")
        #expect(level.status == 64)
        #expect(level.stderr.contains("critical"))
    }

    @Test("csmil --version prints the version")
    func version() throws {
        let result = try TestSupport.csmil("--version")
        #expect(result.status == 0)
        #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "0.1.0")
    }
}
