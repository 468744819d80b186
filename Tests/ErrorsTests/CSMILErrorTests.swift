import Errors
import Logging
import Testing

@Suite("One error protocol")
struct CSMILErrorTests {
    struct Sample: CSMILError {
        enum Code: String, ErrorCode { case broken = "sample.broken" }
        var code = Code.broken
        var subject: String
        var message = "is broken"
        var fix: String
    }

    struct Foreign: Error, CustomStringConvertible {
        var description: String { "something else went wrong" }
    }

    @Test("an error describes itself as 'subject: message — fix', leaving out what is empty")
    func description() {
        #expect(
            Sample(subject: "/in/a.svs", fix: "copy it again").description == "/in/a.svs: is broken — copy it again")
        #expect(Sample(subject: "", fix: "copy it again").description == "is broken — copy it again")
        #expect(Sample(subject: "/in/a.svs", fix: "").description == "/in/a.svs: is broken")
    }

    @Test("reports and the journal take code and text from the protocol; anything else is 'internal'")
    func summary() {
        let ours = ErrorSummary(Sample(subject: "/in/a.svs", fix: "copy it again"))
        #expect(ours == ErrorSummary(code: "sample.broken", text: "/in/a.svs: is broken — copy it again"))
        let foreign = ErrorSummary(Foreign())
        #expect(foreign == ErrorSummary(code: "internal", text: "something else went wrong"))
        let metadata = Logger.Metadata.error(Sample(subject: "/in/a.svs", fix: "copy it again"))
        #expect(metadata["code"] == "sample.broken")
        #expect(metadata["error"] == "/in/a.svs: is broken — copy it again")
    }

    struct Mixed: CSMILError {
        enum Code: String, ErrorCode {
            case setting = "sample.setting"
            case outage = "sample.outage"
            var needsConfigurationChange: Bool { self == .setting }
        }
        var code: Code
        var subject = "x"
        var message = "failed"
        var fix = ""
    }

    @Test("whether only a change of configuration helps: by the code's domain, or as the code type says")
    func needsConfigurationChange() {
        #expect(ErrorCodes.needsConfigurationChange("config.unknown_key"))
        #expect(ErrorCodes.needsConfigurationChange("model.missing_tensor"))
        #expect(!ErrorCodes.needsConfigurationChange("configuration.x"), "the whole domain, not a prefix of it")
        #expect(!ErrorCodes.needsConfigurationChange("state.locked"))
        #expect(!ErrorCodes.needsConfigurationChange(Sample(subject: "a", fix: "b")))
        #expect(ErrorCodes.needsConfigurationChange(Mixed(code: .setting)))
        #expect(!ErrorCodes.needsConfigurationChange(Mixed(code: .outage)))
        #expect(!ErrorCodes.needsConfigurationChange(Foreign()), "internal errors may pass on a retry")
    }
}
