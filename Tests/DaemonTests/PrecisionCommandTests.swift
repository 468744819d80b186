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

    @Test("with AVX512_BF16 or AMX: bench embed runs bf16, score records it, the demo model's p moves ≤ 0.005")
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

        // A regression check of bf16's fidelity, not a proof of the bound: the demo model (seeded backbones,
        // the committed trained heads and feature statistics) on two slides of the documented sweep
        // (`tools/bench_precision.py --only sweep --sweep-side 2048`: seeds 30000 and 30001, micro anomaly, positive
        // and negative, 2,048² px, 43-45 tiles), where k-means finds the same partition at both precisions: each
        // probability within 0.005 at bf16 (measured 0.0001 and 0.0008). The macro slides would test nothing (the
        // demo model gives them p = 1.0 at both precisions). Where the partition changes the probability moves by
        // up to 0.03: docs/precision.md, "Fidelity of bf16", has the measurements and why.
        let root = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let model = root.appendingPathComponent("model")
        let demo = TestSupport.packageRoot.appendingPathComponent("models/demo")
        let seeded = try TestSupport.csmil(
            "seeded-backbones", "--arch", "resnet18", "--seed", "1", "--out", model.path, "--log-level", "warning")
        try #require(seeded.status == 0, "\(seeded.stderr)")
        for name in ["heads", "feature_normalization.safetensors", "model.toml"] {
            try FileManager.default.copyItem(
                at: demo.appendingPathComponent(name), to: model.appendingPathComponent(name))
        }
        var slides: [String] = []
        for (index, positive) in ["0.5", "0"].enumerated() {
            let slide = root.appendingPathComponent("sweep-\(index)-micro-\(positive).svs").path
            let synth = try TestSupport.csmil(
                "synth", "--out", slide, "--width", "2048", "--height", "2048", "--anomaly", "micro", "--positive",
                positive, "--seed", "\(30000 + index)", "--log-level", "warning")
            try #require(synth.status == 0, "\(synth.stderr)")
            slides.append(slide)
        }
        var probabilities: [String: [String: Double]] = [:]
        for precision in ["fp32", "bf16"] {
            let out = root.appendingPathComponent("out-\(precision)").path
            let result = try TestSupport.run(
                TestSupport.binary(),
                ["score", "--model", model.path, "--precision", precision, "--out", out, "--log-level", "warning"]
                    + slides)
            #expect(result.status == 0, "\(result.stderr)")
            for text in result.stdout.split(separator: "\n") {
                let summary = try #require(
                    try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "\(text)")
                #expect(summary["status"] as? String == "scored", "\(text)")
                let slide = try #require(summary["slide"] as? String)
                probabilities[slide, default: [:]][precision] = summary["probability"] as? Double
                let reportPath = try #require(summary["report"] as? String)
                let report = try #require(
                    try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: reportPath)))
                        as? [String: Any])
                let recorded = try #require(report["model"] as? [String: Any])
                #expect(recorded["precision"] as? String == precision)
                #expect(recorded["kernels"] as? String == Precision(rawValue: precision)?.kernelsDescription())
            }
        }
        #expect(probabilities.count == slides.count, "\(probabilities)")
        for (slide, pair) in probabilities.sorted(by: { $0.key < $1.key }) {
            let fp32 = try #require(pair["fp32"], "\(slide)")
            let bf16 = try #require(pair["bf16"], "\(slide)")
            #expect(abs(fp32 - bf16) <= 0.005, "\(slide): fp32 \(fp32), bf16 \(bf16)")
        }

        // The recheck (`--bf16-recheck-margin`, `[pipeline] bf16_recheck_margin`): the runs above used the default
        // 0.05 and no slide came near the threshold, so each report said bf16. With margin 0.5 the micro-negative
        // slide (p ≈ 0.1, not saturated) is scored again at fp32: its report carries fp32's probability exactly,
        // says fp32, and keeps bf16's probability in model.recheck.
        let slide = slides[1]
        let bf16 = try #require(probabilities[slide]?["bf16"])
        let fp32 = try #require(probabilities[slide]?["fp32"])
        try #require(abs(bf16 - 0.5) < 0.5, "the slide must not be saturated: \(bf16)")
        let out = root.appendingPathComponent("out-recheck").path
        let recheck = try TestSupport.run(
            TestSupport.binary(),
            [
                "score", "--model", model.path, "--precision", "bf16", "--bf16-recheck-margin", "0.5", "--out", out,
                "--log-level", "notice", slide,
            ])
        #expect(recheck.status == 0, "\(recheck.stderr)")
        #expect(recheck.stderr.contains("scoring the slide again at fp32"), "\(recheck.stderr)")
        let summary = try #require(
            try JSONSerialization.jsonObject(with: Data(recheck.stdout.utf8)) as? [String: Any], "\(recheck.stdout)")
        #expect(summary["probability"] as? Double == fp32, "fp32 \(fp32), bf16 \(bf16): \(summary)")
        let reportPath = try #require(summary["report"] as? String)
        let report = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: reportPath))) as? [String: Any]
        )
        let recorded = try #require(report["model"] as? [String: Any])
        #expect(recorded["precision"] as? String == "fp32")
        #expect(recorded["kernels"] as? String == Precision.fp32.kernelsDescription())
        let first = try #require(recorded["recheck"] as? [String: Any], "\(recorded)")
        #expect(first["from"] as? String == "bf16")
        #expect(first["probability"] as? Double == bf16)
        #expect(first["margin"] as? Double == 0.5)
    }
}
