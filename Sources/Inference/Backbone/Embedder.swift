/// Turns RGB tiles (u8, 256, 512 or 1024 px square) into backbone features, a batch at a time,
/// with all memory allocated once: the normalised input batch and the network's workspace.
/// One embedder belongs to one thread at a time.
public final class Embedder {
    public let network: ResNet
    public let batchSize: Int
    private let workspace: ResNetWorkspace
    private let input: UnsafeMutablePointer<Float>
    private static let plane = Preprocessing.outputSide * Preprocessing.outputSide * 3

    public init(network: ResNet, batchSize: Int) {
        precondition(batchSize > 0)
        self.network = network
        self.batchSize = batchSize
        workspace = ResNetWorkspace(architecture: network.architecture, batch: batchSize)
        input = .allocate(capacity: batchSize * Self.plane)
        input.initialize(repeating: 0, count: batchSize * Self.plane)
    }

    deinit { input.deallocate() }

    /// D, the features per image.
    public var featureSize: Int { network.featureSize }

    /// Embeds up to `batchSize` images; `image(i)` hands image i's pixels (interleaved RGB)
    /// and side to the closure it is given. Writes `count` × D floats to `output`.
    public func embed(
        count: Int, into output: UnsafeMutablePointer<Float>,
        image: (Int, (UnsafePointer<UInt8>, Int) -> Void) -> Void
    ) {
        precondition(count <= batchSize)
        for index in 0..<count {
            image(index) { pixels, side in
                Preprocessing.normalise(rgb: pixels, side: side, into: input + index * Self.plane)
            }
        }
        network.embed(input, count: count, into: output, workspace: workspace)
    }
}
