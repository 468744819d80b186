import ArgumentParser
import Foundation
import Ingest
import SyntheticSlides

/// `csmil synth`: synthetic slides for tests, benchmarks and trying a deployment.
struct SynthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synth",
        abstract:
            "Write synthetic pyramidal slides (tissue-like texture, the paper's toy anomalies) that OpenSlide opens.",
        discussion: """
            Writes the slide (through FILE.partial, renamed when complete), its truth mask beside it as \
            <name>.truth.png (white where tissue, one pixel per 16 level-0 pixels or coarser for very \
            large slides) and <name>.truth.json (geometry, levels, tissue fraction achieved, anomaly \
            regions and which are positive, artifacts), then prints one JSON line describing what was written.

            svs: Aperio SVS (OpenSlide vendor "aperio"): 256-pixel JPEG tiles, an "Aperio Image \
            Library" description with AppMag and MPP, a thumbnail, levels at downsample 4 and 16. \
            tiff: generic pyramidal tiled TIFF (vendor "generic-tiff"): resolution tags in pixels per \
            centimetre, levels at downsample 2, 4, 8 … until the long side is at most 512 pixels.

            Anomalies (model spec §7), laid out on a grid of 1024 µm regions: micro = scattered dark \
            discs, in positive regions some carry a checkerboard "+" that is visible at 20x and averages \
            away at 10x and 5x; macro = thick dark rings with light interiors, ellipses in positive \
            regions and circles in negative ones, 280–400 µm across. The same options and seed give \
            the same bytes.

            --declared-levels W×H[,W×H…] writes instead a tiled TIFF whose levels declare those sizes but hold no \
            pixels (every tile missing, read as white): a header bomb (a small file declaring 1000000x1000000) or a \
            huge single-level slide, for checking that csmil refuses or bounds what a header asks for. --mpp sets \
            its level-0 µm per pixel (none: no resolution tags). No truth files.
            """
    )

    @Option(name: .long, help: ArgumentHelp("The slide file to write.", valueName: "file"))
    var out: String

    @Option(
        name: .long,
        help: "File layout: svs (Aperio) or tiff (generic tiled TIFF). Default: tiff for .tif/.tiff, else svs.")
    var format: SyntheticSlide.Format?

    @Option(name: .long, help: "Level-0 width in pixels.")
    var width: Int = 8192

    @Option(name: .long, help: "Level-0 height in pixels.")
    var height: Int = 8192

    @Option(name: .long, help: "Scanning magnification: 20 (0.5 µm/px) or 40 (0.25 µm/px).")
    var magnification: Int = 20

    @Option(name: .long, help: "Seed of the geometry and texture.")
    var seed: UInt64 = 1

    @Option(name: .long, help: "Share of the slide covered by tissue, 0…1 (0 makes a blank slide).")
    var tissueFraction: Double = 0.5

    @Option(name: .long, help: "Toy anomaly: none, micro or macro.")
    var anomaly: SyntheticSlide.Anomaly = .none

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Share of tissue-bearing regions that are positive, 0…1; 0 makes a negative slide, any value above 0 "
                + "at least one positive region.", valueName: "fraction"))
    var positive: Double = 0

    @Option(name: .long, help: "JPEG quality of the tiles, 1…100.")
    var quality: Int = 70

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Artifacts to paint, comma-separated: pen (blue, green, black marker strokes), blur (out-of-focus "
                + "regions), fold (folded tissue); listed with their geometry in <name>.truth.json.",
            valueName: "list"))
    var artifacts: String = ""

    /// `--artifacts` as kinds.
    var artifactKinds: Set<SyntheticArtifactKind> {
        get throws {
            var kinds = Set<SyntheticArtifactKind>()
            for name in artifacts.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) })
            where !name.isEmpty {
                guard let kind = SyntheticArtifactKind(rawValue: name) else {
                    throw ValidationError(
                        "--artifacts: unknown artifact \"\(name)\"; use pen, blur and fold, comma-separated")
                }
                kinds.insert(kind)
            }
            return kinds
        }
    }

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Write a slide whose levels only declare these sizes (no pixels), e.g. 1000000x1000000,976x976.",
            valueName: "WxH,…"))
    var declaredLevels: String?

    @Option(name: .long, help: "With --declared-levels: level-0 µm per pixel written in the TIFF resolution tags.")
    var mpp: Double?

    @OptionGroup var global: GlobalOptions

    /// `--declared-levels` as sizes; nil when it does not parse.
    static func parseLevels(_ text: String) -> [(width: Int, height: Int)]? {
        let levels = text.split(separator: ",").map { level -> (width: Int, height: Int)? in
            let sides = level.lowercased().split(separator: "x").compactMap { Int($0) }
            return sides.count == 2 && sides[0] > 0 && sides[1] > 0 ? (sides[0], sides[1]) : nil
        }
        guard !levels.isEmpty, levels.allSatisfy({ $0 != nil }) else { return nil }
        return levels.compactMap { $0 }
    }

    func validate() throws {
        if let declaredLevels {
            guard Self.parseLevels(declaredLevels) != nil else {
                throw ValidationError("--declared-levels must be sizes like 1000000x1000000,976x976")
            }
            guard mpp.map({ $0 > 0 && $0.isFinite }) ?? true else { throw ValidationError("--mpp must be positive") }
            return
        }
        guard [20, 40].contains(magnification) else { throw ValidationError("--magnification must be 20 or 40") }
        guard (0...1).contains(tissueFraction) else { throw ValidationError("--tissue-fraction must be in 0…1") }
        guard (0...1).contains(positive) else { throw ValidationError("--positive must be in 0…1") }
        guard (1...100).contains(quality) else { throw ValidationError("--quality must be in 1…100") }
        _ = try artifactKinds
        let side = 1...SyntheticSlide.maximumSide
        guard side.contains(width), side.contains(height) else {
            throw ValidationError("--width and --height must be in 1…\(SyntheticSlide.maximumSide)")
        }
    }

    func run() throws {
        let logger = global.bootstrapLogging()
        if let declaredLevels, let levels = Self.parseLevels(declaredLevels) {
            try DeclaredSizeSlide(levels: levels, micronsPerPixel: mpp).write(to: out)
            let bytes = (try? FileManager.default.attributesOfItem(atPath: out)[.size] as? Int) ?? 0
            let line: [String: Any] = [
                "slide": out, "levels": levels.map { [$0.width, $0.height] }, "mpp": mpp ?? NSNull(), "bytes": bytes,
            ]
            let data = try JSONSerialization.data(
                withJSONObject: line, options: [.sortedKeys, .withoutEscapingSlashes])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        let started = ContinuousClock.now
        let resolvedFormat =
            format ?? (["tif", "tiff"].contains(URL(fileURLWithPath: out).pathExtension.lowercased()) ? .tiff : .svs)
        var configuration = SyntheticSlide.Configuration(
            width: width, height: height, magnification: magnification, seed: seed, tissueFraction: tissueFraction,
            anomaly: anomaly, positiveFraction: positive, format: resolvedFormat, quality: quality)
        configuration.artifacts = try artifactKinds
        let slide = try SyntheticSlide(configuration)
        logger.info(
            "writing synthetic slide",
            metadata: ["file": "\(out)", "size": "\(width)x\(height)", "format": "\(resolvedFormat.rawValue)"])
        let written = try slide.write(to: out)
        let elapsed = ContinuousClock.now - started
        let truth = written.truth
        let summary = SynthSummary(
            slide: written.slide, truthMask: written.truthMask, truthJson: written.truthJSON, format: truth.format,
            vendor: truth.vendor, width: truth.width, height: truth.height, mpp: truth.mpp,
            magnification: truth.magnification, seed: truth.seed,
            levels: truth.levels.map { [$0.width, $0.height, $0.downsample] },
            tissueFraction: (truth.tissueFraction * 10_000).rounded() / 10_000, anomaly: truth.anomaly,
            label: truth.label, positiveRegions: truth.regions.filter(\.positive).count,
            artifacts: (truth.artifacts ?? []).map(\.kind), bytes: written.bytes,
            seconds: ((Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18) * 100)
                .rounded() / 100,
            peakRssBytes: Self.peakResidentBytes())
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        print(String(decoding: try encoder.encode(summary), as: UTF8.self))
    }

    private static func peakResidentBytes() -> Int { SystemInfo.peakResidentBytes() }
}

/// The JSON line `csmil synth` prints.
private struct SynthSummary: Encodable {
    var slide: String
    var truthMask: String
    var truthJson: String
    var format: String
    var vendor: String
    var width: Int
    var height: Int
    var mpp: Double
    var magnification: Int
    var seed: UInt64
    /// [width, height, downsample] per level.
    var levels: [[Int]]
    var tissueFraction: Double
    var anomaly: String
    var label: String
    var positiveRegions: Int
    /// The kind of each artifact painted.
    var artifacts: [String]
    var bytes: Int
    var seconds: Double
    var peakRssBytes: Int
}

extension SyntheticSlide.Format: ExpressibleByArgument {}
extension SyntheticSlide.Anomaly: ExpressibleByArgument {}
