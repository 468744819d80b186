import ArgumentParser
import Foundation
import Ingest
import SyntheticSlides
import Threads

extension BenchCommand {
    /// `csmil bench qc`: QC's tile-level recall and precision on synthetic slides with painted artifacts.
    struct Quality: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "qc",
            abstract:
                "Measure QC against the truth of synthetic slides with pen, blur and folds; prints one JSON line.",
            discussion: """
                Writes --slides synthetic slides with pen, blur and fold artifacts and as many clean ones \
                (csmil synth, seeds from --seed, tissue fraction 0.45–0.7, the toy anomalies of --anomalies in \
                turn), streams each slide's tiles through QC as csmil score does (no model) and compares every \
                tile's flags with the truth computed from <name>.truth.json (16 × 16 points per tile): a tile is \
                truly pen when ink covers at least 5 % of its area, blur or fold when at least half of its tissue \
                lies in the artifact. Prints per check the tiles flagged, true positives, recall and precision on \
                the artifact slides, the share of tiles flagged on the clean slides, and each slide's verdict. \
                The [qc] section of --config sets the thresholds (default: the documented defaults).
                """
        )

        @Option(name: .long, help: "Slides with artifacts (and as many clean ones).")
        var slides: Int = 6

        @Option(name: .long, help: "Level-0 side of each slide in pixels.")
        var size: Int = 12288

        @Option(name: .long, help: "The first seed; slide i uses seed + i.")
        var seed: UInt64 = 100

        @Option(name: .long, help: "Scanning magnification of the slides: 20 or 40.")
        var magnification: Int = 20

        @Option(
            name: .long,
            help: ArgumentHelp(
                "Toy anomalies the slides cycle through, comma-separated: none, micro, macro.", valueName: "list"))
        var anomalies: String = "none,micro"

        @Option(name: .long, help: "A configuration file whose [qc] section sets the thresholds.")
        var config: String?

        @Option(
            name: .long,
            help:
                "Keep the slides in this folder and reuse those already there (default: a temporary folder, removed after)."
        )
        var keep: String?

        @OptionGroup var global: GlobalOptions

        func validate() throws {
            guard slides >= 1 && slides <= 200 else { throw ValidationError("--slides must be between 1 and 200") }
            guard size >= 2048 && size <= 100_000 else { throw ValidationError("--size must be in 2048…100000") }
            guard [20, 40].contains(magnification) else { throw ValidationError("--magnification must be 20 or 40") }
            _ = try anomalyList
        }

        /// `--anomalies` as a list.
        var anomalyList: [SyntheticSlide.Anomaly] {
            get throws {
                let list = try anomalies.split(separator: ",").map { name in
                    guard let anomaly = SyntheticSlide.Anomaly(rawValue: name.trimmingCharacters(in: .whitespaces))
                    else { throw ValidationError("--anomalies: \"\(name)\" is not none, micro or macro") }
                    return anomaly
                }
                guard !list.isEmpty else {
                    throw ValidationError("--anomalies: name at least one of none, micro, macro")
                }
                return list
            }
        }

        func run() async throws {
            _ = global.bootstrapLogging()
            let settings = try config.map { try Configuration.load(path: $0).qc } ?? QualitySettings()
            let (slides, size, seed, magnification, keep) = (
                self.slides, self.size, self.seed, self.magnification, self.keep
            )
            let anomalies = try anomalyList
            let line = try await DedicatedThread.run(name: "csmil-bench") {
                try Self.measure(
                    slides: slides, size: size, seed: seed, magnification: magnification, anomalies: anomalies,
                    settings: settings, keep: keep
                ).json()
            }
            print(line)
        }

        /// A tile's truth for one check: the coverage from `NAME.truth.json` at which a tile counts as that artifact.
        static func isTruly(_ kind: SyntheticArtifactKind, area: Double, tissue: Double) -> Bool {
            switch kind {
            case .pen: area >= 0.05
            case .blur, .fold: tissue >= 0.5
            }
        }

        /// Counts for one check.
        struct Counts {
            var flagged = 0
            var truePositives = 0
            var truth = 0
            var cleanFlagged = 0

            var recall: Double { truth > 0 ? Double(truePositives) / Double(truth) : 1 }
            var precision: Double { flagged > 0 ? Double(truePositives) / Double(flagged) : 1 }
        }

        /// Writes and measures the slides; blocks (OpenSlide), so call it from a thread of your own.
        static func measure(
            slides: Int, size: Int, seed: UInt64, magnification: Int, anomalies: [SyntheticSlide.Anomaly],
            settings: QualitySettings, keep: String?
        ) throws -> BenchLine {
            let folder: String
            if let keep {
                try FileManager.default.createDirectory(atPath: keep, withIntermediateDirectories: true)
                folder = keep
            } else {
                folder = FileManager.default.temporaryDirectory.appendingPathComponent("csmil-bench-qc-\(UUID())").path
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            }
            defer { if keep == nil { try? FileManager.default.removeItem(atPath: folder) } }

            var counts = [SyntheticArtifactKind: Counts]()
            // Each check's measure on the tiles truly of its kind and on the others (clean slides included).
            var measures = [SyntheticArtifactKind: (positive: [Double], negative: [Double])]()
            var cleanTiles = 0
            var cleanFlagged = 0
            var artifactTiles = 0
            var verdicts: [[String: Any]] = []
            let started = ContinuousClock.now
            for index in 0..<(2 * slides) {
                let withArtifacts = index < slides
                let slideSeed = seed + UInt64(index)
                var configuration = SyntheticSlide.Configuration(
                    width: size, height: size, magnification: magnification, seed: slideSeed,
                    tissueFraction: 0.45 + 0.25 * Double(index % 4) / 3,
                    anomaly: anomalies[index % anomalies.count],
                    positiveFraction: 0.5)
                if withArtifacts { configuration.artifacts = Set(SyntheticArtifactKind.allCases) }
                let path =
                    folder + "/qc-\(withArtifacts ? "artifacts" : "clean")-\(configuration.anomaly.rawValue)-"
                    + "\(magnification)x-\(size)-\(slideSeed).svs"
                // A kept folder's slides are reused when they are there (same options, same seed: same bytes).
                let truthPath = SyntheticSlide.truthStem(forSlide: path) + ".truth.json"
                if keep == nil || !FileManager.default.fileExists(atPath: truthPath) {
                    try SyntheticSlide(configuration).write(to: path)
                }
                let truth = try JSONDecoder.snakeCase.decode(
                    SyntheticSlideTruth.self, from: Data(contentsOf: URL(fileURLWithPath: truthPath)))

                let slide = try Slide(path: path)
                let resolution = try SlideResolution(slide: slide)
                let mask = try TissueMask.compute(slide: slide, resolution: resolution)
                let grid = TileGrid(slide: slide, resolution: resolution, mask: mask)
                let measurements = SlideQualityMeasurements(tileCount: grid.tiles.count)
                if !grid.tiles.isEmpty {
                    let stream = try TileStream(slide: slide, resolution: resolution, grid: grid)
                    let batch = TileTripletBatch(capacity: 8)
                    while try stream.fill(batch) { measurements.measure(batch) }
                }
                let quality = QualityControl.decide(measurements, settings: settings, baseMPP: resolution.baseMPP)

                for (tileIndex, tile) in grid.tiles.enumerated() {
                    let flags = quality.flags[tileIndex]
                    if !withArtifacts {
                        cleanTiles += 1
                        if !flags.isEmpty { cleanFlagged += 1 }
                    } else {
                        artifactTiles += 1
                    }
                    for kind in SyntheticArtifactKind.allCases {
                        let check = QualityCheck(rawValue: kind.rawValue)!
                        let flagged = flags.contains(QualityFlags(check))
                        let coverage = truth.coverage(
                            of: kind, x: tile.level0.x, y: tile.level0.y, width: tile.level0.width,
                            height: tile.level0.height)
                        let truly = isTruly(kind, area: coverage.area, tissue: coverage.tissue)
                        let measure: Double? =
                            switch kind {
                            case .pen: quality.inkFraction[tileIndex]
                            case .blur: quality.blurFraction[tileIndex]
                            case .fold: quality.denseFraction[tileIndex]
                            }
                        if let measure {
                            if truly {
                                measures[kind, default: ([], [])].positive.append(measure)
                            } else if kind == .pen || coverage.tissue == 0 {
                                measures[kind, default: ([], [])].negative.append(measure)
                            }
                        }
                        if withArtifacts {
                            counts[kind, default: Counts()].flagged += flagged ? 1 : 0
                            counts[kind, default: Counts()].truth += truly ? 1 : 0
                            counts[kind, default: Counts()].truePositives += flagged && truly ? 1 : 0
                        } else {
                            counts[kind, default: Counts()].cleanFlagged += flagged ? 1 : 0
                        }
                    }
                }
                verdicts.append([
                    "slide": URL(fileURLWithPath: path).lastPathComponent, "tiles": grid.tiles.count,
                    "status": quality.status.rawValue, "reasons": quality.reasons.map(\.rawValue),
                    "excluded": quality.excludedCount,
                    "artifacts": (truth.artifacts ?? []).map(\.kind),
                    "focus_reference": BenchLine.rounded(quality.focusReference ?? 0),
                    "density_reference": BenchLine.rounded(quality.densityReference ?? 0),
                ])
            }

            var line = BenchLine(benchmark: "qc")
            line["slides_with_artifacts"] = slides
            line["clean_slides"] = slides
            line["size"] = size
            line["magnification"] = magnification
            line["anomalies"] = anomalies.map(\.rawValue)
            line["first_seed"] = Int(seed)
            line["artifact_slide_tiles"] = artifactTiles
            line["clean_slide_tiles"] = cleanTiles
            line["clean_flagged_fraction"] = cleanTiles > 0 ? Double(cleanFlagged) / Double(cleanTiles) : 0
            var checks: [String: Any] = [:]
            for kind in SyntheticArtifactKind.allCases {
                let count = counts[kind] ?? Counts()
                checks[kind.rawValue] = [
                    "truth_tiles": count.truth, "flagged": count.flagged, "true_positives": count.truePositives,
                    "recall": BenchLine.rounded(count.recall), "precision": BenchLine.rounded(count.precision),
                    "clean_flagged": count.cleanFlagged,
                    "measure_on_truth": quantiles(measures[kind]?.positive ?? []),
                    "measure_elsewhere": quantiles(measures[kind]?.negative ?? []),
                ]
            }
            line["checks"] = checks
            line["verdicts"] = verdicts
            line["seconds"] = BenchLine.rounded((ContinuousClock.now - started).seconds)
            return line
        }
    }
}

/// The 0, 1, 5, 50, 95, 99 and 100th percentiles of `values` (nearest rank), rounded.
private func quantiles(_ values: [Double]) -> [String: Double] {
    guard !values.isEmpty else { return [:] }
    let sorted = values.sorted()
    var result: [String: Double] = [:]
    for percent in [0, 1, 5, 50, 95, 99, 100] {
        let rank = min(sorted.count - 1, Int((Double(percent) / 100 * Double(sorted.count - 1)).rounded()))
        result["p\(percent)"] = BenchLine.rounded(sorted[rank])
    }
    return result
}

extension JSONDecoder {
    /// A decoder for csmil's snake_case files (`NAME.truth.json`).
    static var snakeCase: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }
}
