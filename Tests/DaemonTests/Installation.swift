import Foundation

/// A complete, valid csmil installation in a temporary folder: watch, output and state folders,
/// a model directory whose files have the right container formats, a private webhook secret and
/// a configuration file pointing at all of it. Tests break one part and look at what is reported.
struct Installation {
    let root: URL
    var config: URL { root.appendingPathComponent("csmil.toml") }
    var model: URL { root.appendingPathComponent("model") }
    var secret: URL { root.appendingPathComponent("webhook.secret") }

    /// The configuration text; relative paths resolve against `root`.
    static let configText = """
        [watch]
        directory = "incoming"
        settle_seconds = 0

        [output]
        directory = "reports"

        [state]
        directory = "state"

        [model]
        directory = "model"

        [webhook]
        url = "http://127.0.0.1:9/hook"
        allow_http = true
        secret_file = "webhook.secret"
        """

    static let modelText = """
        name = "test-model"
        architecture = "resnet18"
        threshold = 0.5
        backbone_20x = "b20.pth"
        backbone_10x = "b10.pth"
        backbone_5x = "b5.safetensors"
        heads = ["heads/0_model.pth", "heads/1_model.pth"]
        """

    init() throws {
        root = try TestSupport.temporaryDirectory()
        for folder in ["incoming", "reports", "state"] {
            try FileManager.default.createDirectory(
                at: root.appendingPathComponent(folder), withIntermediateDirectories: true)
        }
        try TestSupport.write(Self.configText, to: config)
        try TestSupport.write(
            "whsec_" + Data((0..<32).map { UInt8($0) }).base64EncodedString() + "\n", to: secret, mode: 0o600)
        try TestSupport.write(Self.modelText, to: model.appendingPathComponent("model.toml"))
        let zipHead: [UInt8] = [0x50, 0x4B, 0x03, 0x04] + Array(repeating: 7, count: 60)
        for name in ["b20.pth", "b10.pth", "heads/0_model.pth", "heads/1_model.pth"] {
            let url = model.appendingPathComponent(name)
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(zipHead + Array(name.utf8)).write(to: url)
        }
        let header = Array("{\"__metadata__\":{}}".utf8)
        var length = UInt64(header.count).littleEndian
        let safetensors = withUnsafeBytes(of: &length) { Array($0) } + header
        try Data(safetensors).write(to: model.appendingPathComponent("b5.safetensors"))
    }

    func cleanUp() {
        try? FileManager.default.removeItem(at: root)
    }
}
