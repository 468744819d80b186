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
/// One `Embedder` serves the three backbones in turn (they share an architecture), so all memory
/// is allocated once: one input batch, the network workspaces (for ResNet-50 about 25 MB of
/// activations per image of `batchSize`) and one batch of features. One triplet embedder belongs
/// to one thread at a time.
public final class TripletEmbedder {
    /// Tiles per batch; `embed` takes any count and runs it in batches of this size.
    public let batchSize: Int
    /// The backbones of scales 0, 1 and 2.
    private let backbones: [ResNet]
    /// One embedder (one set of workspaces) serves the three backbones in turn.
    private let embedder: Embedder
    /// One batch of one scale's features, `batchSize × D`, before they are interleaved.
    private let scratch: UnsafeMutablePointer<Float>
    /// The triplets of the batch in progress.
    private var triplets: [TileTriplet] = []
    /// Applied to each batch's features, when the model has one.
    private let normalization: FeatureNormalization?

    /// The input side of each scale: 256, 512 and 1024 px at 20x.
    private static let sides = Preprocessing.inputSides

    /// - Parameters:
    ///   - backbones: the 20x, 10x and 5x backbones, of one architecture.
    ///   - workers: threads that share each batch (see `Embedder`).
    ///   - normalization: applied to every tile's features (nil: the backbones' features as they are).
    public init(
        backbones: [ResNet], batchSize: Int, workers: Int = Parallel.workers,
        normalization: FeatureNormalization? = nil
    ) {
        precondition(backbones.count == 3, "one backbone per scale: 20x, 10x, 5x")
        precondition(
            backbones.allSatisfy { $0.architecture == backbones[0].architecture }, "backbones of one architecture")
        precondition(batchSize > 0, "a batch holds at least one tile")
        self.batchSize = batchSize
        self.backbones = backbones
        precondition(
            normalization.map { $0.featureSize == backbones[0].featureSize } ?? true,
            "a normalisation for the backbones' feature size")
        self.normalization = normalization
        embedder = Embedder(network: backbones[0], batchSize: batchSize, workers: workers)
        let count = batchSize * backbones[0].featureSize
        scratch = .allocate(capacity: count)
        scratch.initialize(repeating: 0, count: count)
        triplets.reserveCapacity(batchSize)
    }

    deinit { scratch.deallocate() }

    /// D, the features per image.
    public var featureSize: Int { embedder.featureSize }

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
            for (scale, backbone) in backbones.enumerated() {
                let side = Self.sides[scale]
                embedder.embed(count: rows, into: scratch, network: backbone) { i, normalise in
                    let images = triplets[i]
                    normalise(scale == 0 ? images.tile : scale == 1 ? images.context10x : images.context5x, side)
                }
                for i in 0..<rows {
                    (output + ((start + i) * 3 + scale) * d).update(from: scratch + i * d, count: d)
                }
            }
            normalization?.apply(output + start * 3 * d, tileCount: rows)
            start += rows
        }
    }
}
