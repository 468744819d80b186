/// A dense, contiguous, row-major float32 tensor: what every weight becomes once loaded,
/// whatever its dtype and strides in the file.
public struct Tensor: Sendable, Equatable {
    /// The element type the tensor had in its file (values are always converted to Float).
    public enum SourceType: String, Sendable {
        case float32, float16, bfloat16, float64, int64, int32, int16, int8, uint8, bool
    }

    public var shape: [Int]
    public var values: [Float]
    public var sourceType: SourceType

    public init(shape: [Int], values: [Float], sourceType: SourceType = .float32) {
        precondition(shape.reduce(1, *) == values.count, "shape \(shape) does not hold \(values.count) values")
        self.shape = shape
        self.values = values
        self.sourceType = sourceType
    }

    /// The number of elements.
    public var count: Int { values.count }

    /// "[64, 2048, 1, 1]", as PyTorch prints shapes.
    public var shapeDescription: String { "[" + shape.map(String.init).joined(separator: ", ") + "]" }
}

/// Named tensors, as a PyTorch `state_dict` holds them, in the file's order.
public struct StateDict: Sendable, Equatable {
    public private(set) var names: [String] = []
    public private(set) var tensors: [String: Tensor] = [:]

    public init() {}

    public subscript(name: String) -> Tensor? { tensors[name] }

    /// Adds or replaces a tensor; a new name goes to the end of the order.
    public mutating func set(_ name: String, _ tensor: Tensor) {
        if tensors.updateValue(tensor, forKey: name) == nil { names.append(name) }
    }

    public var count: Int { names.count }
}
