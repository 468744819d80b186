import Foundation
import Inference
import Testing

@testable import Daemon

/// `[pipeline] precision` end to end: bf16 where this CPU runs it, the refusal where it does not. oneDNN reads
/// `DNNL_MAX_CPU_ISA` once per process, so a child csmil with the cap set is a CPU without AVX512_BF16 as far as
/// oneDNN can tell: the refusal is checked on every machine, also on one that runs bf16.
@Suite("precision: bf16 where the CPU runs it, refused where it does not")
struct PrecisionCommandTests {
    /// The environment of a CPU whose best is AVX-512 with VNNI but no BF16 (Cascade Lake, Zen 3 with AVX-512 off).
    static var withoutBF16: [String: String] {
        ProcessInfo.processInfo.environment.merging(["DNNL_MAX_CPU_ISA": "AVX512_CORE_VNNI"]) { $1 }
    }

    @Test("without AVX512_BF16, bench embed, score and watch refuse bf16 at start, naming the setting and the reason")
    func refusedWithoutBF16() throws {
        let installation = try Installation()
        defer { installation.cleanUp() }
        let binary = try TestSupport.binary()

        let bench = try TestSupport.run(
            binary, ["bench", "embed", "--precision", "bf16", "--arch", "resnet18", "--seconds", "0.1"],
            environment: Self.withoutBF16)
        #expect(bench.status != 0)
        #expect(bench.stdout.isEmpty)
        #expect(bench.stderr.contains("--precision = \"bf16\""), "\(bench.stderr)")
        #expect(bench.stderr.contains("AVX512_BF16") && bench.stderr.contains("fp32"), "\(bench.stderr)")

        let out = installation.root.appendingPathComponent("out").path
        let score = try TestSupport.run(
            binary, ["score", "--config", installation.config.path, "--precision", "bf16", "--out", out, "none.svs"],
            environment: Self.withoutBF16)
        #expect(score.status != 0)
        #expect(score.stdout.isEmpty, "no slide is touched")
        #expect(score.stderr.contains("AVX512_BF16"), "\(score.stderr)")

        let text = try String(contentsOf: installation.config, encoding: .utf8)
        try TestSupport.write(text + "\n[pipeline]\nprecision = \"bf16\"\n", to: installation.config)
        // timeout(1) only guards against a daemon that would start anyway (the failure this test looks for); the
        // refusal comes while the model loads, long before.
        let watch = try TestSupport.run(
            URL(fileURLWithPath: "/usr/bin/timeout"),
            ["600", binary.path, "watch", "--config", installation.config.path],
            environment: Self.withoutBF16)
        // Exit 78 (EX_CONFIG): the unit's RestartPreventExitStatus= keeps systemd from restarting it in a loop.
        #expect(watch.status == WatchCommand.configurationExitStatus, "\(watch.stderr)")
        #expect(watch.stderr.contains("[pipeline] precision = \"bf16\""), "\(watch.stderr)")

        let doctor = try TestSupport.run(
            binary, ["doctor", "--config", installation.config.path], environment: Self.withoutBF16)
        #expect(doctor.status != 0)
        #expect(doctor.stdout.contains("bf16 not native"), "\(doctor.stdout)")
        #expect(doctor.stdout.contains("csmil watch will refuse to start"), "\(doctor.stdout)")
        #expect(doctor.stdout.contains("DNNL_MAX_CPU_ISA=AVX512_CORE_VNNI"), "\(doctor.stdout)")
    }

    @Test("on a CPU with AVX512_BF16 or AMX, bench embed runs bf16 and score records it; the probability moves < 0.005")
    func bf16Runs() throws {
        guard Precision.bf16.unsupportedReason == nil else {
            // This CPU cannot: the refusal above is all there is to check here.
            let result = try TestSupport.csmil("bench", "embed", "--precision", "bf16", "--seconds", "0.1")
            #expect(result.status != 0)
            return
        }
        let bench = try TestSupport.csmil(
            "bench", "embed", "--precision", "bf16", "--arch", "resnet18", "--threads", "2", "--seconds", "0.2")
        #expect(bench.status == 0, "\(bench.stderr)")
        let line = try #require(
            try JSONSerialization.jsonObject(with: Data(bench.stdout.utf8)) as? [String: Any], "\(bench.stdout)")
        #expect(line["precision"] as? String == "bf16")
        #expect((line["kernels"] as? String)?.hasPrefix("oneDNN ") == true)
        #expect(line["threads"] as? Int == 2)
        #expect((line["images"] as? Int ?? 0) > 0 && (line["images_per_second"] as? Double ?? 0) > 0)

        let installation = try Installation()
        defer { installation.cleanUp() }
        let slide = installation.root.appendingPathComponent("case.svs").path
        let synth = try TestSupport.csmil(
            "synth", "--out", slide, "--width", "1536", "--height", "1280", "--seed", "4", "--tissue-fraction", "0.5")
        try #require(synth.status == 0, "\(synth.stderr)")
        var probabilities: [String: Double] = [:]
        for precision in ["fp32", "bf16"] {
            let out = installation.root.appendingPathComponent("out-\(precision)").path
            let result = try TestSupport.csmil(
                "score", "--config", installation.config.path, "--precision", precision, "--out", out, slide)
            #expect(result.status == 0, "\(result.stderr)")
            let summary = try #require(
                try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(result.stdout)")
            probabilities[precision] = summary["probability"] as? Double
            let reportPath = try #require(summary["report"] as? String)
            let report = try #require(
                try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: reportPath)))
                    as? [String: Any])
            let model = try #require(report["model"] as? [String: Any])
            #expect(model["precision"] as? String == precision)
            #expect(model["kernels"] as? String == Precision(rawValue: precision)?.kernelsDescription())
        }
        let fp32 = try #require(probabilities["fp32"])
        let bf16 = try #require(probabilities["bf16"])
        #expect(abs(fp32 - bf16) <= 0.005, "fp32 \(fp32), bf16 \(bf16)")
    }
}
