import ArgumentParser
import Foundation
import Inference
import Logging
import Notify
import Threads

extension BenchCommand {
    /// `csmil bench score`: whole-slide scoring throughput and memory through the real pipeline.
    struct ScoreSlide: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "score",
            abstract: "Score one slide through the real pipeline and print its timings as one JSON line.",
            discussion: """
                Runs `csmil score`'s pipeline on SLIDE with the model in --model DIR, or with --seeded ARCH: \
                seeded random weights for the three backbones and two heads, written to a temporary model \
                folder and loaded like any model. Its probability means nothing, so none is printed: only \
                tiles, tiles_per_second (tiles ÷ whole-slide seconds), seconds per stage and peak_rss_bytes \
                (VmHWM, reset after the set-up so that it covers model loading and scoring). Unless \
                --embed-seconds is 0, `bench embed` is measured first for the same architecture and the line \
                carries embedding_bound_tiles_per_second (images/s ÷ 3: three backbones per tile) and \
                fraction_of_embedding_bound. Reports and spill files go to a temporary folder, removed after.
                """
        )

        @Argument(help: "The slide file.")
        var slide: String

        @Option(name: .long, help: "A model directory holding model.toml.")
        var model: String?

        @Option(name: .long, help: "Seeded random weights of this architecture instead of a model: resnet18|34|50.")
        var seeded: Architecture?

        @Option(name: .long, help: "Seconds of `bench embed` measured first (0 skips it).")
        var embedSeconds: Double = 5

        @Option(name: .long, help: "The backbones' number format: fp32 (csmil's kernels) or bf16 (oneDNN).")
        var precision: Precision = .fp32

        @Option(name: [.customLong("threads"), .customLong("workers")], help: "Threads (default: one per core).")
        var threads: Int = Parallel.workers

        @Option(name: .long, help: "Tile triplets per embedder batch (default: 4 per thread, as the pipeline).")
        var batch: Int?

        @OptionGroup var resolution: ResolutionOptions

        @OptionGroup var global: GlobalOptions

        func validate() throws {
            guard (model == nil) != (seeded == nil) else {
                throw ValidationError("pass either --model DIR or --seeded resnet18|resnet34|resnet50")
            }
            guard embedSeconds >= 0 else { throw ValidationError("--embed-seconds must not be negative") }
            if let batch, !(1...256).contains(batch) { throw ValidationError("--batch must be between 1 and 256") }
            guard (1...256).contains(threads) else { throw ValidationError("--threads must be between 1 and 256") }
        }

        func run() async throws {
            // Warnings only unless --log-level says otherwise: the pipeline's "slide scored" line carries the
            // probability, which means nothing with seeded weights.
            let logger = global.bootstrapLogging(configured: .warning)
            let settings = Settings(
                slide: slide, model: model, seeded: seeded, embedSeconds: embedSeconds, precision: precision,
                threads: threads, batch: batch ?? TripletEmbedder.defaultBatchSize(threads: threads),
                assumeMPP: resolution.assumeMPP)
            let (line, failed) = try await DedicatedThread.run(name: "csmil-bench") {
                try Self.measure(settings, logger: logger)
            }
            print(line)
            if failed { throw ExitCode(1) }
        }

        /// What to measure.
        struct Settings: Sendable {
            var slide: String
            var model: String?
            var seeded: Architecture?
            var embedSeconds: Double
            var precision: Precision
            var threads: Int
            var batch: Int
            var assumeMPP: Double?
        }

        /// Scores the slide once; returns the JSON line and whether the slide failed. Blocks (OpenSlide, BLAS).
        static func measure(_ settings: Settings, logger: Logger) throws -> (line: String, failed: Bool) {
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("csmil-bench-\(UUID())")
            try FileManager.default.createDirectory(
                at: folder.appendingPathComponent("work"), withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: folder) }

            var line = BenchLine(benchmark: "score")
            line["slide"] = settings.slide
            let modelDirectory: String
            let architecture: Architecture
            if let seeded = settings.seeded {
                architecture = seeded
                modelDirectory = try writeSeededModel(seeded, in: folder.appendingPathComponent("model"))
                line["model"] = "seeded \(seeded.rawValue) (random weights: timings only)"
            } else {
                modelDirectory = settings.model ?? ""
                architecture = try ModelManifest.load(directory: modelDirectory).architecture
                line["model"] = modelDirectory
            }
            line["arch"] = architecture.rawValue
            line["precision"] = settings.precision.rawValue
            line["threads"] = settings.threads
            try settings.precision.prepare(architecture: architecture, subject: "--precision")

            var embeddingImagesPerSecond: Double?
            if settings.embedSeconds > 0 {
                // The embedder as the pipeline runs it: 3 images per tile of the batch.
                let embed = try Embed.measure(
                    .init(
                        arch: architecture, precision: settings.precision, threads: settings.threads,
                        batch: 3 * settings.batch, seconds: settings.embedSeconds))
                embeddingImagesPerSecond = embed["images_per_second"] as? Double
            }

            // The peak covers loading the model and scoring, not the set-up above.
            let peakReset = SystemInfo.resetPeakResidentBytes()
            let loadStarted = ContinuousClock.now
            let manifest = try ModelManifest.load(directory: modelDirectory)
            var pipeline = SlidePipeline(
                model: try Model(manifest: manifest, precision: settings.precision),
                modelReport: try SlidePipeline.modelReport(for: manifest, precision: settings.precision),
                writer: ReportWriter(outputDirectory: folder.appendingPathComponent("out").path),
                workDirectory: folder.appendingPathComponent("work").path, logger: logger,
                assumeMPP: settings.assumeMPP)
            pipeline.workers = settings.threads
            pipeline.batch = settings.batch
            let loadSeconds = (ContinuousClock.now - loadStarted).seconds
            line["rss_after_load_bytes"] = SystemInfo.residentBytes()
            line["batch"] = settings.batch

            let started = ContinuousClock.now
            let outcome = pipeline.score(path: settings.slide)
            let seconds = (ContinuousClock.now - started).seconds
            let report = outcome.report
            var stages = report.timing.stages ?? [:]
            stages["write"] = max(0, seconds - report.timing.seconds)
            let tilesPerSecond = Double(report.tiles.count) / seconds

            line["status"] = report.status.rawValue
            line["tiles"] = report.tiles.count
            line["tiles_per_second"] = BenchLine.rounded(tilesPerSecond)
            line["seconds"] = BenchLine.rounded(seconds)
            line["stages"] = stages.mapValues(BenchLine.rounded)
            line["model_load_seconds"] = BenchLine.rounded(loadSeconds)
            line["peak_rss_bytes"] = SystemInfo.peakResidentBytes()
            line["peak_rss_reset"] = peakReset
            if let width = report.slide.width, let height = report.slide.height {
                line["width"] = width
                line["height"] = height
            }
            if let error = report.error {
                line["error"] = ["code": error.code, "message": error.message]
            }
            if let embeddingImagesPerSecond {
                let bound = embeddingImagesPerSecond / 3
                line["embedding_images_per_second"] = embeddingImagesPerSecond
                line["embedding_bound_tiles_per_second"] = BenchLine.rounded(bound)
                if bound > 0, report.tiles.count > 0 {
                    line["fraction_of_embedding_bound"] = BenchLine.rounded(tilesPerSecond / bound)
                }
            }
            return (line.json(), report.status == .failed || outcome.folder == nil)
        }

        /// Writes a model folder of seeded random weights (one backbone file for all three scales, `heads` heads of
        /// seeds `headSeed`, `headSeed` + 1, …) and returns its path: `Model` loads only from files, and this keeps
        /// the benchmark on the real loading path.
        static func writeSeededModel(
            _ architecture: Architecture, in folder: URL, heads: Int = 2, headSeed: UInt64 = 11
        ) throws -> String {
            try FileManager.default.createDirectory(
                at: folder.appendingPathComponent("heads"), withIntermediateDirectories: true)
            try CheckpointWriter.safetensors(SeededWeights.resnet(architecture, seed: 1))
                .write(to: folder.appendingPathComponent("backbone.safetensors"))
            for head in 0..<heads {
                try CheckpointWriter.safetensors(
                    SeededWeights.head(featureSize: architecture.featureSize, seed: headSeed + UInt64(head))
                )
                .write(to: folder.appendingPathComponent("heads/\(head).safetensors"))
            }
            let files = (0..<heads).map { "\"heads/\($0).safetensors\"" }.joined(separator: ", ")
            let manifest = """
                name = "seeded-\(architecture.rawValue) (random weights, heads from seed \(headSeed))"
                architecture = "\(architecture.rawValue)"
                backbone_20x = "backbone.safetensors"
                backbone_10x = "backbone.safetensors"
                backbone_5x = "backbone.safetensors"
                heads = [\(files)]

                """
            try Data(manifest.utf8).write(to: folder.appendingPathComponent("model.toml"))
            return folder.path
        }
    }
}

extension BenchCommand {
    /// `csmil bench seeded-model`: the random model `bench score --seeded` scores, written to a folder to keep.
    struct SeededModel: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "seeded-model",
            abstract: "Write a model folder of seeded random weights (for timings and precision comparisons).",
            discussion: """
                One seeded backbone (stream 1) for all three scales and --heads random CS-MIL heads (streams \
                --head-seed, --head-seed + 1, …), with a model.toml: what `bench score --seeded` scores. Its \
                probabilities mean nothing about tissue; tools/bench_precision.py compares them across precisions.
                """
        )

        @Option(name: .long, help: "The architecture: resnet18, resnet34 or resnet50.")
        var arch: Architecture = .resnet50

        @Option(name: .long, help: "Random heads to write.")
        var heads: Int = 2

        @Option(name: .long, help: "The first head's seed.")
        var headSeed: UInt64 = 11

        @Option(name: .long, help: "The folder to write (created if missing).")
        var out: String

        func validate() throws {
            guard (1...64).contains(heads) else { throw ValidationError("--heads must be between 1 and 64") }
        }

        func run() throws {
            print(
                try ScoreSlide.writeSeededModel(
                    arch, in: URL(fileURLWithPath: out), heads: heads, headSeed: headSeed))
        }
    }
}
