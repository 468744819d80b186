import Dispatch
import Synchronization

/// Turns RGB tiles (u8, 256, 512 or 1024 px square) into backbone features on `threads` threads.
///
/// Each call's images are cut into small pieces (at most `pieceSize` images of one backbone) that the threads
/// take one after another from a shared counter, each running its piece start to finish (normalisation, then the
/// whole network) on its own workspace with single-threaded kernels. A thread that is slowed down (another
/// process on its core) simply takes fewer pieces; pieces get smaller towards the end of a call (guided
/// scheduling: at most the remaining images ÷ 2 × threads), so the threads also finish together. The earlier
/// scheme, each of two threads running half of every batch, ran at the pace of the slower one: with one busy
/// process beside it, csmil fell to about half its speed.
///
/// All memory is allocated once, per thread: a normalised input of `pieceSize` images and the network's
/// activations for that many (fp32 ResNet-50: about 100 MB per thread, bf16: about 35 MB). One embedder belongs to
/// one caller at a time.
public final class Embedder {
    /// Images per piece unless set otherwise: batches of 4 run about 10 % faster per image than single images
    /// (larger GEMMs at the deepest layers), and more gains nothing measurable.
    public static let defaultPieceSize = 4

    /// The backbone `embed` runs unless it is given another.
    public let backbone: Backbone
    /// Threads that share each call's images.
    public let threads: Int
    /// The most images one thread runs at a time.
    public let pieceSize: Int
    /// How images are handed to the threads.
    public var schedule = Schedule.guided
    private let workspaces: [BackboneWorkspace]

    /// How a call's images are handed to the threads.
    public enum Schedule: String, Sendable, CaseIterable {
        /// Pieces taken from a shared counter, smaller towards the end (the default).
        case guided
        /// Each thread gets an equal contiguous share of each segment up front, as csmil did before: kept to measure
        /// the difference (`csmil bench embed --schedule shares`).
        case shares
    }

    /// - Parameters:
    ///   - threads: threads per call (default: one per core); 1 runs everything on the calling thread.
    ///   - pieceSize: the most images a thread runs at a time (at most 4 for bf16).
    public init(backbone: Backbone, threads: Int = Parallel.workers, pieceSize: Int = Embedder.defaultPieceSize) {
        precondition(threads > 0 && pieceSize > 0)
        if case .oneDNN(let network) = backbone { precondition(pieceSize <= network.largestBatch) }
        self.backbone = backbone
        self.threads = threads
        self.pieceSize = pieceSize
        workspaces = (0..<threads).map { _ in BackboneWorkspace(capacity: pieceSize) }
    }

    /// An embedder of a csmil fp32 network.
    public convenience init(network: ResNet, threads: Int = Parallel.workers) {
        self.init(backbone: .csmil(network), threads: threads)
    }

    /// D, the features per image.
    public var featureSize: Int { backbone.featureSize }

    /// Embeds `count` images with `backbone` (default: the embedder's own; any backbone of the same architecture
    /// and precision); `image(i)` hands image i's pixels (interleaved RGB) and side to the closure it is given,
    /// and is called from the embedding threads, several at once. Writes `count` × D floats to `output`.
    public func embed(
        count: Int, into output: UnsafeMutablePointer<Float>, backbone: Backbone? = nil,
        image: (Int, (UnsafePointer<UInt8>, Int) -> Void) -> Void
    ) {
        let d = featureSize
        run(segments: [(backbone ?? self.backbone, count)], image: image) { output + $0 * d }
    }

    /// Runs image i (0 ≤ i < the sum of the segments' counts) through the backbone of the segment it falls in,
    /// writing its D features at `row(i)`. `image` and `row` are called from the embedding threads, several at
    /// once: they must only read shared state.
    func run(
        segments: [(backbone: Backbone, count: Int)], image: (Int, (UnsafePointer<UInt8>, Int) -> Void) -> Void,
        row: (Int) -> UnsafeMutablePointer<Float>
    ) {
        for (backbone, _) in segments {
            precondition(
                backbone.architecture == self.backbone.architecture && backbone.precision == self.backbone.precision
                    && backbone.kernels == self.backbone.kernels, "a backbone of another architecture or precision")
        }
        let pieces = Pieces(
            segments: segments.map(\.count), largest: pieceSize, threads: threads, shares: schedule == .shares)
        let d = featureSize
        let workspaces = self.workspaces
        func work(_ thread: Int) {
            let workspace = workspaces[thread]
            withUnsafeTemporaryAllocation(of: Float.self, capacity: pieceSize * d) { features in
                while let (segment, range) = pieces.next(thread: thread) {
                    for (slot, index) in range.enumerated() {
                        image(index) { pixels, side in
                            Preprocessing.normalise(rgb: pixels, side: side, into: workspace.input(slot))
                        }
                    }
                    workspace.run(segments[segment].backbone, count: range.count, into: features.baseAddress!)
                    for (slot, index) in range.enumerated() {
                        row(index).update(from: features.baseAddress! + slot * d, count: d)
                    }
                }
            }
        }
        let parallel = { (body: (Int) -> Void) in
            if self.threads == 1 {
                body(0)
            } else {
                withoutActuallyEscaping(body) { body in
                    let shared = UncheckedSendable(value: body)
                    DispatchQueue.concurrentPerform(iterations: self.threads) { shared.value($0) }
                }
            }
        }
        // OpenBLAS runs single-threaded inside each piece: the threads are ours.
        BLASRuntime.withThreadCount(1) { parallel(work) }
    }

    /// Hands out the images of a call as pieces: contiguous ranges inside one segment, at most `largest` images,
    /// and at most the remaining images ÷ (2 × threads) (at least one), so that the last pieces are small. With
    /// `shares`, thread t instead gets the t-th of `threads` equal parts of each segment, in pieces of `largest`.
    final class Pieces: Sendable {
        private let bounds: [Int]
        private let largest: Int
        private let threads: Int
        private let divisor: Int
        private let next_ = Mutex(0)
        /// For `shares`: each thread's pieces, and how many it has taken.
        private let shares: [[(segment: Int, range: Range<Int>)]]?
        private let taken: Mutex<[Int]>

        init(segments: [Int], largest: Int, threads: Int, shares: Bool = false) {
            var bounds: [Int] = []
            var total = 0
            for count in segments {
                total += count
                bounds.append(total)
            }
            self.bounds = bounds
            self.largest = largest
            self.threads = threads
            divisor = 2 * threads
            taken = Mutex([Int](repeating: 0, count: threads))
            self.shares =
                shares
                ? (0..<threads).map { thread in
                    segments.indices.flatMap { segment -> [(segment: Int, range: Range<Int>)] in
                        let start = segment == 0 ? 0 : bounds[segment - 1]
                        let count = segments[segment]
                        let part = (start + count * thread / threads)..<(start + count * (thread + 1) / threads)
                        return stride(from: part.lowerBound, to: part.upperBound, by: largest).map {
                            (segment, $0..<min($0 + largest, part.upperBound))
                        }
                    }
                } : nil
        }

        /// The next piece for `thread`: its segment and its image indices; nil when there is none left for it.
        func next(thread: Int = 0) -> (segment: Int, range: Range<Int>)? {
            if let shares {
                return taken.withLock { taken in
                    guard taken[thread] < shares[thread].count else { return nil }
                    taken[thread] += 1
                    return shares[thread][taken[thread] - 1]
                }
            }
            return next_.withLock { next in
                guard let segment = bounds.firstIndex(where: { $0 > next }) else { return nil }
                let remaining = bounds.last! - next
                let size = min(largest, max(1, remaining / divisor), bounds[segment] - next)
                let range = next..<(next + size)
                next += size
                return (segment, range)
            }
        }
    }
}
