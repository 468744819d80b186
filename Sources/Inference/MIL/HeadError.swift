import Errors

/// A CS-MIL head's `state_dict` that does not have the tensors of spec §4.
public struct HeadError: CSMILError, Sendable, Equatable {
    /// What is wrong, stable across releases.
    public enum Code: String, ErrorCode {
        /// A tensor of spec §4 is not in the state_dict.
        case missingTensor = "head.missing_tensor"
        /// A tensor has another shape than spec §4 gives it.
        case shapeMismatch = "head.shape_mismatch"
    }

    public var code: Code
    /// The PyTorch name of the tensor, e.g. "embedding_net.0.weight".
    public var tensor: String
    /// The shape spec §4 gives it.
    public var expectedShape: [Int]
    /// The shape it has in the file (nil when it is missing).
    public var foundShape: [Int]?

    public init(code: Code, tensor: String, expectedShape: [Int], foundShape: [Int]?) {
        self.code = code
        self.tensor = tensor
        self.expectedShape = expectedShape
        self.foundShape = foundShape
    }

    public var subject: String { "CS-MIL head tensor \(tensor)" }

    public var message: String {
        let expected = Self.describe(expectedShape)
        switch code {
        case .missingTensor: return "\(expected) is missing"
        case .shapeMismatch: return "has shape \(foundShape.map(Self.describe) ?? "nothing"), expected \(expected)"
        }
    }

    public var fix: String {
        switch code {
        case .missingTensor:
            "check that this is a CS-MIL head checkpoint (the `N_model….pth` files) and not a backbone"
        case .shapeMismatch:
            "check that the head was trained on features of the backbone named in model.toml"
        }
    }

    private static func describe(_ shape: [Int]) -> String {
        "[" + shape.map(String.init).joined(separator: ", ") + "]"
    }
}
