import Foundation
import Inference
import Testing

@testable import Daemon

@Suite("csmil doctor")
struct DoctorTests {
    @Test("library versions are the ones the system's pkg-config and curl-config report")
    func libraryVersions() throws {
        let findings = Doctor.libraries()
        #expect(findings.map(\.subject) == ["OpenSlide", "OpenBLAS", "oneDNN", "libcurl", "libsystemd"])
        #expect(findings.allSatisfy { $0.severity == .ok })
        let openslide = try #require(try TestSupport.tool("pkg-config", ["--modversion", "openslide"]))
        #expect(
            findings[0].detail == "libopenslide " + openslide.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
        let openblas = try #require(try TestSupport.tool("pkg-config", ["--modversion", "openblas"]))
        #expect(
            findings[1].detail.hasPrefix("OpenBLAS " + openblas.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(findings[1].detail.contains("core "))
        let curl = try #require(try TestSupport.tool("curl-config", ["--version"]))
        let curlVersion = curl.stdout.trimmingCharacters(in: .whitespacesAndNewlines)  // "libcurl 7.88.1"
        #expect(findings[3].detail.hasPrefix(curlVersion + " with "))
        #expect(findings[4].detail.contains("libsystemd.so.0"))
        // oneDNN has no pkg-config file; the Debian package's version is the judge.
        let dnnl = try #require(try TestSupport.tool("dpkg-query", ["-W", "-f=${Version}", "libdnnl2"]))
        let packaged = dnnl.stdout.split(separator: "-").first.map(String.init) ?? "?"
        #expect(findings[2].detail.hasPrefix("libdnnl \(packaged), kernels for "), "\(findings[2].detail)")
    }

    @Test("CPU flags are read from /proc/cpuinfo text; missing AVX2/FMA is a warning, not a problem")
    func cpuFlags() {
        let modern = "processor : 0\nmodel name : Test CPU\nflags : fpu sse4_2 avx avx2 fma f16c\n"
        let old = "processor : 0\nmodel name : Old CPU\nflags : fpu sse4_2 avx\n"
        #expect(Doctor.cpu(cpuinfo: modern).severity == .ok)
        #expect(Doctor.cpu(cpuinfo: modern).detail.contains("AVX2 FMA F16C"))
        let finding = Doctor.cpu(cpuinfo: old)
        #expect(finding.severity == .warning)
        #expect(finding.detail.contains("Old CPU"))
        #expect(finding.fix?.contains("AVX2") == true)
        #expect(Doctor.cpu(cpuinfo: SystemInfo.readProcFile("/proc/cpuinfo")).detail.contains("core(s)"))
    }

    @Test("the precisions line says which precisions run natively, and a configured one this CPU lacks is a problem")
    func precisions() {
        let finding = Doctor.precisions()
        #expect(finding.severity == .ok)
        #expect(finding.detail.contains("fp32 native (\(Precision.fp32.kernelsDescription()))"))
        let native = Precision.bf16.unsupportedReason == nil
        #expect(finding.detail.contains(native ? "bf16 native (oneDNN" : "bf16 not native"), "\(finding.detail)")
        #expect(Doctor.precisions(configured: .fp32).severity == .ok)
        let bf16 = Doctor.precisions(configured: .bf16)
        #expect(bf16.severity == (native ? .ok : .problem))
        #expect(bf16.subject == "[pipeline] precision bf16" || bf16.subject == "[pipeline] precision")
    }

    @Test("a complete installation passes every check")
    func healthyInstallation() throws {
        let installation = try Installation()
        defer { installation.cleanUp() }
        let findings = Doctor.configuration(path: installation.config.path)
        #expect(findings.filter { $0.severity == .problem }.isEmpty, "\(findings)")
        let subjects = findings.map(\.subject)
        for subject in [
            "config", "[watch] directory", "[output] directory", "[state] directory", "[model] directory",
            "model", "model backbone_20x", "model backbone_10x", "model backbone_5x", "model heads[0]",
            "model heads[1]", "model weights", "[webhook] url", "[webhook] secret_file",
        ] {
            #expect(subjects.contains(subject), "missing check \(subject)")
        }
    }

    @Test("model files are hashed with SHA-256 exactly as sha256sum computes it")
    func modelHashes() throws {
        let installation = try Installation()
        defer { installation.cleanUp() }
        let findings = Doctor.model(directory: installation.model.path)
        for (role, name) in [
            ("backbone_20x", "b20.safetensors"), ("heads[1]", "heads/1_model.safetensors"),
            ("backbone_5x", "b5.safetensors"),
        ] {
            let file = installation.model.appendingPathComponent(name).path
            let sum = try #require(try TestSupport.tool("sha256sum", [file]))
            let expected = String(sum.stdout.prefix(64))
            let finding = try #require(findings.first { $0.subject == "model \(role)" })
            #expect(finding.severity == .ok)
            #expect(finding.detail.contains("sha256:\(expected)"), "\(finding.detail)")
        }
        #expect(findings.first { $0.subject == "model backbone_5x" }?.detail.contains("safetensors") == true)
        #expect(findings.first { $0.subject == "model weights" }?.severity == .ok)
    }

    @Test("a missing or unrecognisable model file is a problem naming the file")
    func badModelFiles() throws {
        let installation = try Installation()
        defer { installation.cleanUp() }
        try FileManager.default.removeItem(at: installation.model.appendingPathComponent("heads/1_model.safetensors"))
        try Data("#!/bin/sh\nrm -rf /\n".utf8).write(to: installation.model.appendingPathComponent("b10.safetensors"))
        let findings = Doctor.model(directory: installation.model.path)
        let missing = try #require(findings.first { $0.subject == "model heads[1]" })
        #expect(missing.severity == .problem)
        #expect(missing.detail.contains("heads/1_model.safetensors does not exist"))
        let garbage = try #require(findings.first { $0.subject == "model backbone_10x" })
        #expect(garbage.severity == .problem)
        #expect(garbage.detail.contains("b10.safetensors is neither a torch.save zip"))
        #expect(
            !findings.contains { $0.subject == "model weights" }, "weights are loaded only when every file is there")
    }

    @Test("weights of another architecture, or a head of the wrong size, are problems naming the file")
    func wrongWeights() throws {
        let installation = try Installation()
        defer { installation.cleanUp() }
        try TestSupport.write(
            Installation.modelText.replacingOccurrences(of: "resnet18", with: "resnet50"),
            to: installation.model.appendingPathComponent("model.toml"))
        let findings = Doctor.model(directory: installation.model.path)
        let weights = try #require(findings.first { $0.subject == "model weights" })
        #expect(weights.severity == .problem)
        #expect(weights.detail.contains("safetensors"), "\(weights.detail)")
        #expect(weights.fix?.isEmpty == false)
    }

    @Test("torch.save zips and safetensors files are told apart by their first bytes")
    func weightFileFormats() throws {
        let pth = TestSupport.packageRoot.appendingPathComponent("Tests/InferenceTests/Fixtures/heads/head_d24.pth")
        #expect(WeightFileFormat(head: Array(try Data(contentsOf: pth).prefix(16))) == .torchZip)
        let safetensors = CheckpointWriter.safetensors(SeededWeights.head(featureSize: 8, seed: 1))
        #expect(WeightFileFormat(head: Array(safetensors.prefix(16))) == .safetensors)
        #expect(WeightFileFormat(head: Array("#!/bin/sh\n".utf8)) == nil)
    }

    @Test("an invalid model.toml is reported with its key and line")
    func badManifest() throws {
        let installation = try Installation()
        defer { installation.cleanUp() }
        try TestSupport.write(
            Installation.modelText.replacingOccurrences(of: "resnet18", with: "vgg16"),
            to: installation.model.appendingPathComponent("model.toml"))
        let findings = Doctor.model(directory: installation.model.path)
        #expect(findings.count == 1)
        #expect(findings.first?.severity == .problem)
        #expect(findings.first?.detail.contains("model.toml:2 architecture") == true)
        #expect(findings.first?.fix?.contains("\"resnet50\"") == true)
    }

    @Test("missing folders and a file where a folder belongs are problems with a fix")
    func folders() throws {
        let root = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let missing = Doctor.directory(
            root.appendingPathComponent("nope").path, subject: "[state] directory", writable: true)
        #expect(missing.severity == .problem)
        #expect(missing.detail.hasSuffix("does not exist"))
        #expect(missing.fix?.contains("mkdir -p") == true)
        let file = root.appendingPathComponent("file")
        try TestSupport.write("x", to: file)
        let notFolder = Doctor.directory(file.path, subject: "[output] directory", writable: true)
        #expect(notFolder.severity == .problem)
        #expect(notFolder.detail.hasSuffix("is not a folder"))
        #expect(Doctor.directory(root.path, subject: "[output] directory", writable: true).severity == .ok)
    }

    @Test(
        "a folder the user cannot write is a problem (not as root, who may write anywhere)", .enabled(if: getuid() != 0)
    )
    func unwritableFolder() throws {
        let root = try TestSupport.temporaryDirectory()
        defer {
            chmod(root.path, 0o755)
            try? FileManager.default.removeItem(at: root)
        }
        chmod(root.path, 0o555)
        let finding = Doctor.directory(root.path, subject: "[state] directory", writable: true)
        #expect(finding.severity == .problem)
        #expect(finding.detail.contains("not readable and writable"))
    }

    @Test("the webhook secret must exist, be private and hold whsec_ + base64")
    func secret() throws {
        let root = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let file = root.appendingPathComponent("secret")
        let good = "whsec_" + Data(repeating: 42, count: 32).base64EncodedString()

        try TestSupport.write(good, to: file, mode: 0o600)
        #expect(Doctor.secret(path: file.path).severity == .ok)
        #expect(!Doctor.secret(path: file.path).detail.contains(good), "the secret must never be printed")

        try TestSupport.write(good, to: file, mode: 0o644)
        let exposed = Doctor.secret(path: file.path)
        #expect(exposed.severity == .problem)
        #expect(exposed.detail.contains("readable by every user (mode 644)"))
        #expect(exposed.fix?.contains("chmod 600") == true)

        try TestSupport.write("hunter2", to: file, mode: 0o600)
        #expect(Doctor.secret(path: file.path).severity == .problem)
        try TestSupport.write("whsec_c2hvcnQ=", to: file, mode: 0o600)  // 5 bytes: too short a key
        #expect(Doctor.secret(path: file.path).severity == .problem)

        let absent = Doctor.secret(path: root.appendingPathComponent("absent").path)
        #expect(absent.severity == .problem)
        #expect(absent.detail.hasSuffix("does not exist"))
    }

    @Test("a configuration with errors yields one problem per configuration error")
    func brokenConfiguration() throws {
        let installation = try Installation()
        defer { installation.cleanUp() }
        try TestSupport.write(Installation.configText + "\nmistake = 1\n", to: installation.config)
        let findings = Doctor.configuration(path: installation.config.path)
        #expect(findings.count == 1)
        #expect(findings.first?.severity == .problem)
        #expect(findings.first?.detail.contains("csmil.toml:18 webhook.mistake: unknown key") == true)
    }

    @Test("csmil doctor exits 0 on a healthy installation and 1 with a problem, printing the fix")
    func commandExitStatus() throws {
        let installation = try Installation()
        defer { installation.cleanUp() }
        let healthy = try TestSupport.csmil("doctor", "--config", installation.config.path)
        #expect(healthy.status == 0, "\(healthy.stdout)\(healthy.stderr)")
        #expect(healthy.stdout.contains("OpenSlide"))

        try FileManager.default.removeItem(at: installation.root.appendingPathComponent("state"))
        let broken = try TestSupport.csmil("doctor", "--config", installation.config.path)
        #expect(broken.status == 1)
        #expect(broken.stdout.contains("problem [state] directory"))
        #expect(broken.stdout.contains("fix: create it"))
        #expect(broken.stdout.contains("1 problem(s)"))
    }
}
