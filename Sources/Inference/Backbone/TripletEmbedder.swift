/// The three images of one tile (spec §2), interleaved u8 RGB: the 256-px tile at 20x, and its
/// 512-px and 1024-px contexts at 20x pixels (resized to 256 on the way in, which makes them 10x and
/// 5x). The pointers only have to stay valid during the `TripletEmbedder.embed` call that asked for them.
public struct TileTriplet {
    /// 256 × 256 × 3 bytes.
    public var tile: UnsafePointer<UInt8>
    /// 512 × 512 × 3 bytes, centred on the tile.
    public var context10x: UnsafePointer<UInt8>
    /// 1024 × 1024 × 3 bytes, centred on the tile.
    public var context5x: UnsafePointer<UInt8>

    /// The three images of one tile, each interleaved RGB with rows of `side × 3` bytes.
    public init(tile: UnsafePointer<UInt8>, context10x: UnsafePointer<UInt8>, context5x: UnsafePointer<UInt8>) {
        self.tile = tile
        self.context10x = context10x
        self.context5x = context5x
    }
}

/// Embeds tile triplets with a model's three backbones, each scale through its own (`backbone_20x`
/// for the tile, `_10x` and `_5x` for the contexts), into the `[tile][scale][D]` features that
/// `Model.score` and `SlideScorer` read.
///
/// One `Embedder` serves the three backbones (they share an architecture and a precision): each batch's 3 ×
/// `batchSize` images go to the embedding threads as small pieces, so that a batch of 4 tiles per thread keeps
/// every thread busy until its end. All memory is allocated once: the threads' inputs and network workspaces
/// (see `Embedder`). One triplet embedder belongs to one thread at a time.
public final class TripletEmbedder {
    /// Tiles per batch; `embed` takes any count and runs it in batches of this size.
    public let batchSize: Int
    /// The backbones of scales 0, 1 and 2.
    private let backbones: [Backbone]
    /// One embedder (one set of workspaces) serves the three backbones.
    private let embedder: Embedder
    /// The triplets of the batch in progress.
    private var triplets: [TileTriplet] = []
    /// Applied to each batch's features, when the model has one.
    private let normalization: FeatureNormalization?

    /// The input side of each scale: 256, 512 and 1024 px at 20x.
    private static let sides = Preprocessing.inputSides

    /// Tiles per batch unless set otherwise: 4 per thread (12 images), enough pieces for the threads to share
    /// evenly, few enough that a batch of 1024-px contexts (4 MB a tile) stays small.
    public static func defaultBatchSize(threads: Int) -> Int { 4 * max(1, threads) }

    /// - Parameters:
    ///   - backbones: the 20x, 10x and 5x backbones, of one architecture and precision.
    ///   - threads: threads that share each batch (see `Embedder`).
    ///   - normalization: applied to every tile's features (nil: the backbones' features as they are).
    public init(
        backbones: [Backbone], batchSize: Int, threads: Int = Parallel.workers,
        normalization: FeatureNormalization? = nil
    ) {
        precondition(backbones.count == 3, "one backbone per scale: 20x, 10x, 5x")
        precondition(
            backbones.allSatisfy {
                $0.architecture == backbones[0].architecture && $0.precision == backbones[0].precision
                    && $0.kernels == backbones[0].kernels
            }, "backbones of one architecture, precision and kernels")
        precondition(batchSize > 0, "a batch holds at least one tile")
        self.batchSize = batchSize
        self.backbones = backbones
        precondition(
            normalization.map { $0.featureSize == backbones[0].featureSize } ?? true,
            "a normalisation for the backbones' feature size")
        self.normalization = normalization
        embedder = Embedder(backbone: backbones[0], threads: threads)
        triplets.reserveCapacity(batchSize)
    }

    /// Three csmil fp32 networks.
    public convenience init(
        backbones: [ResNet], batchSize: Int, threads: Int = Parallel.workers,
        normalization: FeatureNormalization? = nil
    ) {
        self.init(
            backbones: backbones.map(Backbone.csmil), batchSize: batchSize, threads: threads,
            normalization: normalization)
    }

    /// D, the features per image.
    public var featureSize: Int { embedder.featureSize }

    /// Threads that share each batch.
    public var threads: Int { embedder.threads }

    /// Embeds `count` tiles: `triplet(i)` gives tile i's three images (asked once per tile, in order),
    /// and `output` receives `count × 3 × D` floats, tile after tile, each tile's 20x features, then its
    /// 10x, then its 5x (normalised when the embedder has a `FeatureNormalization`).
    public func embed(count: Int, into output: UnsafeMutablePointer<Float>, triplet: (Int) -> TileTriplet) {
        precondition(count >= 0, "a negative tile count")
        let d = featureSize
        var start = 0
        while start < count {
            let rows = min(batchSize, count - start)
            triplets.removeAll(keepingCapacity: true)
            for i in 0..<rows { triplets.append(triplet(start + i)) }
            // Image i of the batch: scale i / rows, tile i % rows.
            let triplets = self.triplets
            let first = start
            embedder.run(segments: backbones.map { ($0, rows) }) { i, normalise in
                let (scale, tile) = i.quotientAndRemainder(dividingBy: rows)
                let images = triplets[tile]
                normalise(
                    scale == 0 ? images.tile : scale == 1 ? images.context10x : images.context5x, Self.sides[scale])
            } row: { i in
                let (scale, tile) = i.quotientAndRemainder(dividingBy: rows)
                return output + ((first + tile) * 3 + scale) * d
            }
            normalization?.apply(output + start * 3 * d, tileCount: rows)
            start += rows
        }
    }
}
