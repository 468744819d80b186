import Dispatch

/// Turns RGB tiles (u8, 256, 512 or 1024 px square) into backbone features, a batch at a time,
/// with all memory allocated once: the normalised input batch and one network workspace per
/// worker. One embedder belongs to one thread at a time.
///
/// Each batch is split between `workers` threads that run the network on their share with
/// single-threaded OpenBLAS ("data parallel"). On two cores this is about 15 % faster than
/// running the whole batch through two-threaded GEMMs, because the memory-bound passes between
/// GEMMs no longer wait for each other and OpenBLAS needs no synchronisation. Both orders give
/// the same features up to float rounding (a few 1e-7 of the largest).
public final class Embedder {
    public let network: ResNet
    public let batchSize: Int
    /// Threads that each run a share of every batch.
    public let workers: Int
    private let share: Int
    private let workspaces: [ResNetWorkspace]
    private let input: UnsafeMutablePointer<Float>
    private static let plane = Preprocessing.outputSide * Preprocessing.outputSide * 3

    /// - Parameters:
    ///   - workers: threads per batch (default: one per core). With 1 the batch runs on the
    ///     calling thread with OpenBLAS's own threads.
    public init(network: ResNet, batchSize: Int, workers: Int = Parallel.workers) {
        precondition(batchSize > 0 && workers > 0)
        self.network = network
        self.batchSize = batchSize
        let workers = min(workers, batchSize)
        let share = (batchSize + workers - 1) / workers
        let threadsPerWorkspace = workers == 1 ? Parallel.workers : 1
        self.workers = workers
        self.share = share
        workspaces = (0..<workers).map { _ in
            ResNetWorkspace(architecture: network.architecture, batch: share, threads: threadsPerWorkspace)
        }
        input = .allocate(capacity: batchSize * Self.plane)
        input.initialize(repeating: 0, count: batchSize * Self.plane)
    }

    deinit { input.deallocate() }

    /// D, the features per image.
    public var featureSize: Int { network.featureSize }

    /// Embeds up to `batchSize` images; `image(i)` hands image i's pixels (interleaved RGB)
    /// and side to the closure it is given. Writes `count` × D floats to `output`.
    /// `network` (default: the embedder's own) may be any backbone of the same architecture,
    /// so the three scales of a model share one set of workspaces.
    public func embed(
        count: Int, into output: UnsafeMutablePointer<Float>, network: ResNet? = nil,
        image: (Int, (UnsafePointer<UInt8>, Int) -> Void) -> Void
    ) {
        precondition(count <= batchSize)
        let network = network ?? self.network
        precondition(network.architecture == self.network.architecture, "a backbone of another architecture")
        for index in 0..<count {
            image(index) { pixels, side in
                Preprocessing.normalise(rgb: pixels, side: side, into: input + index * Self.plane)
            }
        }
        embedNormalised(count: count, into: output, network: network)
    }

    /// Embeds `count` images already normalised into the input buffer.
    private func embedNormalised(count: Int, into output: UnsafeMutablePointer<Float>, network: ResNet) {
        let parts = (count + share - 1) / share
        guard parts > 1 else {
            network.embed(input, count: count, into: output, workspace: workspaces[0])
            return
        }
        // Each part reads its own images and writes its own rows and workspace.
        let (d, share, plane) = (featureSize, share, Self.plane)
        let job = UncheckedSendable(value: (input: input, output: output, workspaces: workspaces))
        BLASRuntime.withThreadCount(1) {
            DispatchQueue.concurrentPerform(iterations: parts) { part in
                let first = part * share
                network.embed(
                    job.value.input + first * plane, count: min(share, count - first),
                    into: job.value.output + first * d, workspace: job.value.workspaces[part])
            }
        }
    }
}
