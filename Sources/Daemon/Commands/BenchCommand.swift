import ArgumentParser
import Foundation
import Inference

/// `csmil bench`: throughput benchmarks, printed as one JSON line each.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure throughput; each benchmark prints one JSON line.",
        subcommands: [Embed.self, IngestSlide.self, ScoreSlide.self, StoreOverhead.self]
    )

    /// `csmil bench embed`: backbone images per second.
    struct Embed: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "embed",
            abstract: "Backbone throughput on seeded weights and images; prints {\"images_per_second\": …}.",
            discussion: """
                Runs the embedder the pipeline uses (normalisation of u8 256×256 tiles, then the \
                backbone) on seeded weights and images for --seconds after one warm-up batch. \
                tools/bench_embed_vs_onnxruntime.py runs it beside ONNX Runtime.
                """
        )

        @Option(name: .long, help: "The architecture: resnet18, resnet34 or resnet50.")
        var arch: Architecture = .resnet50

        @Option(name: .long, help: "Images per batch (the pipeline's default: 8).")
        var batch: Int = SlidePipeline.defaultBatchSize

        @Option(name: .long, help: "How long to measure, in seconds.")
        var seconds: Double = 20

        @Option(name: .long, help: "Threads sharing each batch (default: one per core; 1 = OpenBLAS threads only).")
        var workers: Int = Parallel.workers

        @OptionGroup var global: GlobalOptions

        func validate() throws {
            guard batch >= 1 && batch <= 256 else { throw ValidationError("--batch must be between 1 and 256") }
            guard seconds > 0 else { throw ValidationError("--seconds must be positive") }
            guard workers >= 1 && workers <= 64 else { throw ValidationError("--workers must be between 1 and 64") }
        }

        func run() async throws {
            let result = try Self.measure(arch: arch, batch: batch, seconds: seconds, workers: workers)
            let data = try JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        }

        /// Times the backbone; returns the JSON fields of the result line.
        static func measure(arch: Architecture, batch: Int, seconds: Double, workers: Int) throws -> [String: Any] {
            let network = try ResNet(architecture: arch, weights: SeededWeights.resnet(arch, seed: 1))
            let embedder = Embedder(network: network, batchSize: batch, workers: workers)
            let side = Preprocessing.outputSide
            let plane = side * side * 3
            let images = SeededWeights.images(count: batch, size: side, seed: 2)
            var features = [Float](repeating: 0, count: batch * network.featureSize)
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
            let clock = ContinuousClock()
            let start = clock.now
            var imagesDone = 0
            while clock.now - start < .milliseconds(Int(seconds * 1000)) || imagesDone == 0 {
                runBatch()
                imagesDone += batch
            }
            let elapsed = clock.now - start
            let elapsedSeconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
            let rate = Double(imagesDone) / elapsedSeconds
            return [
                "benchmark": "embed", "arch": arch.rawValue, "batch": batch, "side": side, "images": imagesDone,
                "seconds": (elapsedSeconds * 1000).rounded() / 1000,
                "images_per_second": (rate * 1000).rounded() / 1000,
                "gflops_per_second": (rate * Double(network.floatingPointOperations()) / 1e9 * 10).rounded() / 10,
                "workers": embedder.workers, "blas_threads": BLASRuntime.threadCount, "blas_core": BLASRuntime.coreName,
            ]
        }
    }
}
