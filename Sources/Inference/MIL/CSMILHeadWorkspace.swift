/// Scratch memory for `CSMILHead`'s forward pass, reused from bag to bag (and shared by the heads
/// of an ensemble: nothing in it depends on the feature size D).
///
/// Not thread-safe: one workspace per thread. It grows, never shrinks, when a bag holds more
/// instances than it has room for.
public final class CSMILHeadWorkspace {
    private(set) var capacity = 0
    /// 3N × 64, `W_emb · f` of every instance and scale (float32, the one big GEMM).
    private(set) var products: UnsafeMutablePointer<Float>
    /// e[n][s]: 3N × 64, `relu(W_emb · f + b_emb)`.
    private(set) var embeddings: UnsafeMutablePointer<Double>
    /// 3N × 32, `W_r1 · e`, then reused as N × 32 for `W_a1 · h`.
    private(set) var hidden: UnsafeMutablePointer<Double>
    /// r[n][s]: 3N raw scale weights.
    private(set) var scaleWeights: UnsafeMutablePointer<Double>
    /// h[n]: N × 64, the cross-scale fused embeddings.
    private(set) var fused: UnsafeMutablePointer<Double>
    /// a[n]: N attention logits.
    private(set) var logits: UnsafeMutablePointer<Double>
    /// α[n]: N attention weights of the last pooled bag.
    private(set) var attention: UnsafeMutablePointer<Double>

    /// A workspace with room for `instances` instances per call.
    public init(instances: Int = 64) {
        products = .allocate(capacity: 0)
        embeddings = .allocate(capacity: 0)
        hidden = .allocate(capacity: 0)
        scaleWeights = .allocate(capacity: 0)
        fused = .allocate(capacity: 0)
        logits = .allocate(capacity: 0)
        attention = .allocate(capacity: 0)
        reserve(instances: max(1, instances))
    }

    deinit { release() }

    /// Makes room for `instances` instances (3 rows each).
    func reserve(instances: Int) {
        guard instances > capacity else { return }
        release()
        let size = max(instances, capacity * 2)
        let e = CSMILHead.embeddingSize
        products = .allocate(capacity: 3 * size * e)
        embeddings = .allocate(capacity: 3 * size * e)
        hidden = .allocate(capacity: 3 * size * CSMILHead.hiddenSize)
        scaleWeights = .allocate(capacity: 3 * size)
        fused = .allocate(capacity: size * e)
        logits = .allocate(capacity: size)
        attention = .allocate(capacity: size)
        capacity = size
    }

    private func release() {
        products.deallocate()
        embeddings.deallocate()
        hidden.deallocate()
        scaleWeights.deallocate()
        fused.deallocate()
        logits.deallocate()
        attention.deallocate()
    }
}
