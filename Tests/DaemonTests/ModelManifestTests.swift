import Inference
import Testing

@testable import Daemon

@Suite("model.toml")
struct ModelManifestTests {
    @Test("the daemon spec's example parses, with paths resolved against the model directory")
    func specExample() throws {
        let manifest = try ModelManifest.parse(
            """
            name = "crohns-cs-mil"
            architecture = "resnet50"
            threshold = 0.5
            positive_label = "Crohn's disease"
            negative_label = "normal"
            backbone_20x = "simsiam-256.pth"
            backbone_10x = "simsiam-512.pth"
            backbone_5x  = "simsiam-1024.pth"
            heads = ["heads/0_model.pth", "heads/1_model.pth"]
            """, path: "/models/crohns/model.toml")
        #expect(manifest.name == "crohns-cs-mil")
        #expect(manifest.architecture == .resnet50)
        #expect(manifest.architecture.featureSize == 2048)
        #expect(manifest.positiveLabel == "Crohn's disease")
        #expect(manifest.bagsPerHead == 200)
        #expect(manifest.clusters == 8)
        #expect(manifest.seed == 1)
        #expect(manifest.backbone10x.resolvedPath == "/models/crohns/simsiam-512.pth")
        #expect(
            manifest.heads.map(\.resolvedPath) == [
                "/models/crohns/heads/0_model.pth", "/models/crohns/heads/1_model.pth",
            ])
        #expect(manifest.files.map(\.role) == ["backbone_20x", "backbone_10x", "backbone_5x", "heads[0]", "heads[1]"])
    }

    @Test("feature_normalization names csmil's optional feature standardisation, listed after the heads")
    func featureNormalization() throws {
        let text = """
            name = "m"
            architecture = "resnet18"
            backbone_20x = "a"
            backbone_10x = "b"
            backbone_5x = "c"
            heads = ["h"]
            """
        let plain = try ModelManifest.parse(text, path: "/m/model.toml")
        #expect(plain.featureNormalization == nil)
        let normalized = try ModelManifest.parse(
            text + "\nfeature_normalization = \"norm.safetensors\"", path: "/m/model.toml")
        #expect(normalized.featureNormalization?.resolvedPath == "/m/norm.safetensors")
        #expect(normalized.files.map(\.role).last == "feature_normalization")
        #expect {
            try ModelManifest.parse(text + "\nfeature_normalization = \"\"", path: "/m/model.toml")
        } throws: { error in
            (error as? ConfigurationError)?.problems.first?.key == "feature_normalization"
        }
    }

    @Test(
        "errors name the key and line",
        arguments: [
            ("threshold = 1.5", "threshold", ConfigurationError.Code.invalidValue),
            ("heads = []", "heads", .invalidValue),
            ("clusters = 0", "clusters", .invalidValue),
            ("architecture = 50", "architecture", .wrongType),
            ("classes = 2", "classes", .unknownKey),
        ])
    func errors(line: String, key: String, code: ConfigurationError.Code) {
        var lines = [
            "name = \"m\"", "architecture = \"resnet18\"", "backbone_20x = \"a\"", "backbone_10x = \"b\"",
            "backbone_5x = \"c\"", "heads = [\"h\"]",
        ]
        let index = lines.firstIndex { $0.hasPrefix(key + " ") } ?? lines.count
        if index < lines.count { lines[index] = line } else { lines.append(line) }
        #expect {
            try ModelManifest.parse(lines.joined(separator: "\n"), path: "/m/model.toml")
        } throws: { error in
            guard let problem = (error as? ConfigurationError)?.problems.first else { return false }
            return problem.key == key && problem.code == code && problem.line == index + 1
        }
    }

    @Test("a manifest without backbones or heads names each missing key")
    func missing() {
        #expect {
            try ModelManifest.parse("name = \"m\"\narchitecture = \"resnet34\"", path: "/m/model.toml")
        } throws: { error in
            let keys = (error as? ConfigurationError)?.problems.map(\.key) ?? []
            return keys == ["backbone_20x", "backbone_10x", "backbone_5x", "heads"]
        }
    }
}
