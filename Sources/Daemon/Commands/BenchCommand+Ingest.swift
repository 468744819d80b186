import ArgumentParser
import Foundation
import Ingest
import Threads

extension BenchCommand {
    /// `csmil bench ingest`: reading and tiling throughput of one slide, without embedding.
    struct IngestSlide: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ingest",
            abstract:
                "Open a slide, find its tissue and stream every tile triplet (no embedding); prints one JSON line.",
            discussion: """
                Runs the ingest half of `csmil score` on SLIDE: open and resolution, tissue mask, tile grid, \
                then every 256/512/1024 tile triplet through TileStream in batches of --batch, as the \
                pipeline's reader thread does, and discards them. Prints {"benchmark": "ingest", "tiles", \
                "tiles_per_second", "seconds", "stages", "peak_rss_bytes", …}; tiles_per_second is over the \
                streaming stage, seconds over all stages, peak_rss_bytes is the process's VmHWM.
                """
        )

        @Argument(help: "The slide file.")
        var slide: String

        @Option(name: .long, help: "Stop streaming after this many seconds (default: stream every tile).")
        var seconds: Double?

        @Option(name: .long, help: "Tile triplets per batch.")
        var batch: Int = 16

        @OptionGroup var resolution: ResolutionOptions

        @OptionGroup var global: GlobalOptions

        func validate() throws {
            guard batch >= 1 && batch <= 256 else { throw ValidationError("--batch must be between 1 and 256") }
            if let seconds, !(seconds > 0) { throw ValidationError("--seconds must be positive") }
        }

        func run() async throws {
            _ = global.bootstrapLogging()
            let (slide, seconds, batch, assumeMPP) = (self.slide, self.seconds, self.batch, self.resolution.assumeMPP)
            let line = try await DedicatedThread.run(name: "csmil-bench") {
                try Self.measure(slide: slide, seconds: seconds, batch: batch, assumeMPP: assumeMPP).json()
            }
            print(line)
        }

        /// Opens, masks, tiles and streams `slide`; blocks (OpenSlide), so call it from a thread of your own.
        static func measure(
            slide path: String, seconds limit: Double?, batch: Int, assumeMPP: Double?
        ) throws
            -> BenchLine
        {
            var stages = StageClock()
            let slide = try Slide(path: path)
            let resolution = try SlideResolution(slide: slide, assumeMPP: assumeMPP)
            stages.lap("open")
            let mask = try TissueMask.compute(slide: slide, resolution: resolution)
            stages.lap("tissue")
            let grid = TileGrid(slide: slide, resolution: resolution, mask: mask)
            stages.lap("grid")

            var streamed = 0
            let cpuStarted = SystemInfo.cpuSeconds()
            if !grid.tiles.isEmpty {
                let stream = try TileStream(slide: slide, resolution: resolution, grid: grid)
                let triplets = TileTripletBatch(capacity: batch)
                let started = ContinuousClock.now
                while try stream.fill(triplets) {
                    streamed += triplets.count
                    if let limit, (ContinuousClock.now - started).seconds >= limit { break }
                }
            }
            stages.lap("stream")
            let streamCPU = SystemInfo.cpuSeconds() - cpuStarted

            let (width, height) = slide.dimensions(level: 0)
            let streamSeconds = stages.stages["stream"] ?? 0
            var line = BenchLine(benchmark: "ingest")
            line["slide"] = path
            line["width"] = width
            line["height"] = height
            line["resolution"] = resolution.describe
            line["grid_tiles"] = grid.tiles.count
            line["tiles"] = streamed
            line["complete"] = streamed == grid.tiles.count
            line["tiles_per_second"] = BenchLine.rounded(streamSeconds > 0 ? Double(streamed) / streamSeconds : 0)
            // The reader is one thread: tiles per CPU second is what it can give when it has a core to itself.
            line["stream_cpu_seconds"] = BenchLine.rounded(streamCPU)
            line["tiles_per_cpu_second"] = BenchLine.rounded(streamCPU > 0 ? Double(streamed) / streamCPU : 0)
            line["seconds"] = BenchLine.rounded(stages.total)
            line["stages"] = stages.rounded
            line["batch"] = batch
            line["peak_rss_bytes"] = SystemInfo.peakResidentBytes()
            return line
        }
    }
}

/// One benchmark's JSON line: keys sorted, slashes unescaped.
struct BenchLine {
    private var fields: [String: Any]

    init(benchmark: String) { fields = ["benchmark": benchmark] }

    subscript(key: String) -> Any? {
        get { fields[key] }
        set { fields[key] = newValue }
    }

    /// `value` to three decimals.
    static func rounded(_ value: Double) -> Double { (value * 1000).rounded() / 1000 }

    func json() -> String {
        let data =
            (try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys, .withoutEscapingSlashes]))
            ?? Data("{\"benchmark\":\"failed\"}".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}

/// Seconds per named stage, measured lap by lap.
struct StageClock {
    private let started = ContinuousClock.now
    private var lastLap = ContinuousClock.now
    /// Seconds of each stage lapped so far.
    private(set) var stages: [String: Double] = [:]

    /// Ends the current stage as `name`.
    mutating func lap(_ name: String) {
        let now = ContinuousClock.now
        stages[name] = (now - lastLap).seconds
        lastLap = now
    }

    /// Seconds since the clock was made.
    var total: Double { (ContinuousClock.now - started).seconds }

    /// The stages with their seconds to three decimals.
    var rounded: [String: Double] { stages.mapValues(BenchLine.rounded) }
}

extension Duration {
    /// The duration in seconds.
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}
