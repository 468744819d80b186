/// Every trainable number of one CS-MIL head (spec §4), flat and in Double, in PyTorch's
/// `state_dict` order and layout: the tensors one after the other, each row-major as PyTorch stores
/// it (a 1×1 conv weight `[out, in, 1, 1]` is the same memory as a `[out, in]` matrix).
///
/// The same type holds a head's weights, their gradient and Adam's moment estimates, so the optimiser
/// is one loop over `values`. Training keeps the weights in Double; `stateDict()` rounds them to the
/// float32 tensors that `CSMILHead`, our checkpoint writers and PyTorch read.
public struct CSMILHeadParameters: Sendable, Equatable {
    /// One tensor of the head: its PyTorch name and shape, and where its values lie in `values`.
    public struct Entry: Sendable, Equatable {
        public var name: String
        public var shape: [Int]
        public var offset: Int
        public var count: Int { shape.reduce(1, *) }
        public var range: Range<Int> { offset..<(offset + count) }
    }

    /// Where each tensor lies in `values`, for a feature size D.
    struct Offsets: Sendable, Equatable {
        let embeddingWeight: Int  // 64 × D
        let embeddingBias: Int  // 64
        let scaleHiddenWeight: Int  // 32 × 64
        let scaleHiddenBias: Int  // 32
        let scaleOutputWeight: Int  // 32
        let scaleOutputBias: Int  // 1
        let attentionHiddenWeight: Int  // 32 × 64
        let attentionHiddenBias: Int  // 32
        let attentionOutputWeight: Int  // 32
        let attentionOutputBias: Int  // 1
        let classifierHiddenWeight: Int  // 32 × 64
        let classifierHiddenBias: Int  // 32
        let classifierOutputWeight: Int  // 32
        let classifierOutputBias: Int  // 1
        let total: Int

        init(featureSize d: Int) {
            let width = CSMILHead.embeddingSize
            let hidden = CSMILHead.hiddenSize
            var at = 0
            func take(_ count: Int) -> Int {
                defer { at += count }
                return at
            }
            embeddingWeight = take(width * d)
            embeddingBias = take(width)
            scaleHiddenWeight = take(hidden * width)
            scaleHiddenBias = take(hidden)
            scaleOutputWeight = take(hidden)
            scaleOutputBias = take(1)
            attentionHiddenWeight = take(hidden * width)
            attentionHiddenBias = take(hidden)
            attentionOutputWeight = take(hidden)
            attentionOutputBias = take(1)
            classifierHiddenWeight = take(hidden * width)
            classifierHiddenBias = take(hidden)
            classifierOutputWeight = take(hidden)
            classifierOutputBias = take(1)
            total = at
        }
    }

    /// D, the length of one scale's feature vector.
    public let featureSize: Int
    /// All parameters, tensor after tensor in `layout` order.
    public var values: [Double]

    let offsets: Offsets

    /// The tensors of a head for feature size D, in PyTorch's `state_dict` order (spec §4).
    public static func layout(featureSize d: Int) -> [Entry] {
        let width = CSMILHead.embeddingSize
        let hidden = CSMILHead.hiddenSize
        let shapes: [(String, [Int])] = [
            ("embedding_net.0.weight", [width, d, 1, 1]), ("embedding_net.0.bias", [width]),
            ("res_attention.0.weight", [hidden, width, 1, 1]), ("res_attention.0.bias", [hidden]),
            ("res_attention.2.weight", [1, hidden, 1, 1]), ("res_attention.2.bias", [1]),
            ("attention.0.weight", [hidden, width]), ("attention.0.bias", [hidden]),
            ("attention.2.weight", [1, hidden]), ("attention.2.bias", [1]),
            ("fc6.0.weight", [hidden, width]), ("fc6.0.bias", [hidden]),
            ("fc6.3.weight", [1, hidden]), ("fc6.3.bias", [1]),
        ]
        var offset = 0
        return shapes.map { name, shape in
            defer { offset += shape.reduce(1, *) }
            return Entry(name: name, shape: shape, offset: offset)
        }
    }

    /// The tensors of this head, in `state_dict` order.
    public var layout: [Entry] { Self.layout(featureSize: featureSize) }

    /// All zeros: the start of a gradient or of Adam's moments.
    public init(zerosFor featureSize: Int) {
        precondition(featureSize >= 1, "the feature size must be positive")
        self.featureSize = featureSize
        offsets = Offsets(featureSize: featureSize)
        values = [Double](repeating: 0, count: offsets.total)
    }

    /// A freshly initialised head with the distribution PyTorch gives `Conv2d` and `Linear` layers by
    /// default (`kaiming_uniform_(a=√5)` for weights and the bias rule): every value uniform in
    /// ±1/√fan_in, fan_in being the layer's input width. Drawn from `SeededGenerator(seed:)`, tensor
    /// after tensor in `layout` order; PyTorch's own stream is not reproduced, only its distribution.
    public init(featureSize: Int, seed: UInt64) {
        self.init(zerosFor: featureSize)
        var generator = SeededGenerator(seed: seed)
        var fanIn = 1
        for entry in layout {
            // Each weight comes right before its bias, which shares its fan-in.
            if entry.shape.count > 1 { fanIn = entry.shape.dropFirst().reduce(1, *) }
            let bound = 1 / Double(fanIn).squareRoot()
            for i in entry.range { values[i] = (2 * generator.nextUniform() - 1) * bound }
        }
    }

    /// The head in `stateDict`, by its spec §4 names (a `module.` prefix is accepted); extra tensors
    /// are ignored.
    ///
    /// - Parameter featureSize: D; when nil, taken from `embedding_net.0.weight`.
    /// - Throws: `HeadError` naming the first tensor that is missing or has the wrong shape.
    public init(stateDict: StateDict, featureSize: Int? = nil) throws(HeadError) {
        let d =
            featureSize
            ?? (stateDict["embedding_net.0.weight"] ?? stateDict["module.embedding_net.0.weight"]).flatMap {
                $0.shape.count == 4 && $0.shape[1] > 0 ? $0.shape[1] : nil
            } ?? 2048
        self.init(zerosFor: d)
        for entry in layout {
            guard let tensor = stateDict[entry.name] ?? stateDict["module." + entry.name] else {
                throw HeadError(code: .missingTensor, tensor: entry.name, expectedShape: entry.shape, foundShape: nil)
            }
            guard tensor.shape == entry.shape else {
                throw HeadError(
                    code: .shapeMismatch, tensor: entry.name, expectedShape: entry.shape, foundShape: tensor.shape)
            }
            for (i, value) in zip(entry.range, tensor.values) { values[i] = Double(value) }
        }
    }

    /// The head as float32 tensors named and shaped as PyTorch's `state_dict`, in its order: what
    /// `CSMILHead(stateDict:)` and `CheckpointWriter.torchSave` take.
    public func stateDict() -> StateDict {
        var dict = StateDict()
        for entry in layout {
            dict.set(entry.name, Tensor(shape: entry.shape, values: values[entry.range].map { Float($0) }))
        }
        return dict
    }

    /// The same function with the sign of its scale weights turned over: `res_attention.2` (weight and
    /// bias) negates every r[n][s], so h = Σ r·e and M = Σ α·h change sign; negating `attention.0.weight`
    /// and `fc6.0.weight`, the two layers that read h and M, undoes it. Every attention α and bag
    /// probability is unchanged (an exact symmetry of spec §4; PyTorch computes the same): only the sign
    /// of r, which softmax(r) displays, is a convention.
    public func flippingScaleWeights() -> CSMILHeadParameters {
        var flipped = self
        for entry in layout
        where ["res_attention.2.weight", "res_attention.2.bias", "attention.0.weight", "fc6.0.weight"]
            .contains(entry.name)
        {
            for i in entry.range { flipped.values[i] = -values[i] }
        }
        return flipped
    }

    /// The values of the tensor named `name` (a spec §4 name), or nil if the head has no such tensor.
    public subscript(name: String) -> ArraySlice<Double>? {
        layout.first { $0.name == name }.map { values[$0.range] }
    }
}
