import ArgumentParser
import Foundation
import Inference
import Threads

/// `csmil bench`: throughput benchmarks, printed as one JSON line each.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure throughput; each benchmark prints one JSON line.",
        subcommands: [
            Embed.self, IngestSlide.self, ScoreSlide.self, SeededModel.self, Quality.self, StoreOverhead.self,
        ]
    )

    /// `csmil bench embed`: backbone images per second.
    struct Embed: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "embed",
            abstract: "Backbone throughput on seeded weights and images; prints {\"images_per_second\": …}.",
            discussion: """
                Runs the embedder the pipeline uses (normalisation of u8 256×256 tiles, then the backbone, in \
                pieces the threads take from a shared counter) on seeded weights and images for --seconds after \
                one warm-up call. Besides images_per_second (wall clock) the line carries cpu_seconds and \
                images_per_cpu_second (the process's user + system time), which moves less than the wall clock \
                when other processes share the machine. tools/bench_precision.py runs it beside ONNX Runtime.
                """
        )

        @Option(name: .long, help: "The architecture: resnet18, resnet34 or resnet50.")
        var arch: Architecture = .resnet50

        @Option(name: .long, help: "The number format: fp32 or bf16 (oneDNN; on CPUs with AVX512_BF16 or AMX).")
        var precision: Precision = .fp32

        @Option(name: .long, help: "The kernels: csmil or onednn (default: the precision's on this CPU).")
        var kernels: Backbone.Kernels?

        @Option(name: [.customLong("threads"), .customLong("workers")], help: "Threads (default: one per core).")
        var threads: Int = Parallel.workers

        @Option(
            name: .long, help: "Images per call (default: 12 per thread, what a batch of 4 tiles per thread gives).")
        var batch: Int?

        @Option(name: .long, help: "How long to measure, in seconds.")
        var seconds: Double = 20

        @Option(name: .long, help: ArgumentHelp("The most images a thread runs at a time.", visibility: .hidden))
        var piece: Int = Embedder.defaultPieceSize

        @Option(
            name: .long,
            help:
                "How images go to the threads: guided (pieces from a shared counter) or shares (equal parts, the old way)."
        )
        var schedule: Embedder.Schedule = .guided

        @OptionGroup var global: GlobalOptions

        func validate() throws {
            if precision == .bf16 && kernels == .csmil { throw ValidationError("bf16 runs on --kernels onednn only") }
            if let batch, !(1...1024).contains(batch) { throw ValidationError("--batch must be between 1 and 1024") }
            guard seconds > 0 else { throw ValidationError("--seconds must be positive") }
            guard (1...256).contains(threads) else { throw ValidationError("--threads must be between 1 and 256") }
            guard (1...Embedder.defaultPieceSize).contains(piece) else {
                throw ValidationError("--piece must be between 1 and \(Embedder.defaultPieceSize)")
            }
        }

        func run() async throws {
            let settings = Settings(
                arch: arch, precision: precision, threads: threads, batch: batch ?? 12 * threads, seconds: seconds,
                piece: piece, schedule: schedule, kernels: kernels)
            let result = try await DedicatedThread.run(name: "csmil-bench") { try Self.measure(settings).json() }
            print(result)
        }

        /// What to measure.
        struct Settings: Sendable {
            var arch: Architecture
            var precision: Precision
            var threads: Int
            var batch: Int
            var seconds: Double
            var piece = Embedder.defaultPieceSize
            var schedule = Embedder.Schedule.guided
            var kernels: Backbone.Kernels?
        }

        /// Times the backbone; returns the result line. Blocks: call it from a thread of your own.
        static func measure(_ settings: Settings) throws -> BenchLine {
            let (arch, batch) = (settings.arch, settings.batch)
            try settings.precision.prepare(architecture: arch, kernels: settings.kernels, subject: "--precision")
            let backbone = try Backbone(
                architecture: arch, weights: SeededWeights.resnet(arch, seed: 1), precision: settings.precision,
                kernels: settings.kernels)
            let embedder = Embedder(backbone: backbone, threads: settings.threads, pieceSize: settings.piece)
            embedder.schedule = settings.schedule
            let side = Preprocessing.outputSide
            let plane = side * side * 3
            let images = SeededWeights.images(count: batch, size: side, seed: 2)
            var features = [Float](repeating: 0, count: batch * backbone.featureSize)
            func runBatch() {
                images.withUnsafeBufferPointer { rgb in
                    features.withUnsafeMutableBufferPointer { out in
                        embedder.embed(count: batch, into: out.baseAddress!) { index, body in
                            body(rgb.baseAddress! + index * plane, side)
                        }
                    }
                }
            }
            runBatch()
            let cpuStart = SystemInfo.cpuSeconds()
            let start = ContinuousClock.now
            var imagesDone = 0
            while (ContinuousClock.now - start).seconds < settings.seconds || imagesDone == 0 {
                runBatch()
                imagesDone += batch
            }
            let elapsed = (ContinuousClock.now - start).seconds
            let cpu = SystemInfo.cpuSeconds() - cpuStart
            let rate = Double(imagesDone) / elapsed
            var line = BenchLine(benchmark: "embed")
            line["arch"] = arch.rawValue
            line["precision"] = settings.precision.rawValue
            line["kernels"] = settings.precision.kernelsDescription(backbone.kernels)
            line["threads"] = embedder.threads
            line["batch"] = batch
            line["piece"] = embedder.pieceSize
            line["schedule"] = embedder.schedule.rawValue
            line["side"] = side
            line["images"] = imagesDone
            line["seconds"] = BenchLine.rounded(elapsed)
            line["images_per_second"] = BenchLine.rounded(rate)
            line["cpu_seconds"] = BenchLine.rounded(cpu)
            line["images_per_cpu_second"] = BenchLine.rounded(cpu > 0 ? Double(imagesDone) / cpu : 0)
            line["gflops_per_second"] = (rate * Double(backbone.floatingPointOperations) / 1e9 * 10).rounded() / 10
            line["blas_core"] = BLASRuntime.coreName
            line["peak_rss_bytes"] = SystemInfo.peakResidentBytes()
            return line
        }
    }
}

extension Precision: ExpressibleByArgument {}
extension Embedder.Schedule: ExpressibleByArgument {}
extension Backbone.Kernels: ExpressibleByArgument {}
