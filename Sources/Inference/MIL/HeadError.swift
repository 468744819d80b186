/// A CS-MIL head's `state_dict` that does not have the tensors of spec §4.
public struct HeadError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong, stable across releases.
    public enum Code: String, Sendable {
        /// A tensor of spec §4 is not in the state_dict.
        case missingTensor = "head.missing-tensor"
        /// A tensor has another shape than spec §4 gives it.
        case shapeMismatch = "head.shape-mismatch"
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

    public var description: String {
        let expected = "[" + expectedShape.map(String.init).joined(separator: ", ") + "]"
        switch code {
        case .missingTensor:
            return "CS-MIL head: tensor \(tensor) \(expected) is missing; is this a CS-MIL head checkpoint "
                + "(the `N_model….pth` files) and not a backbone?"
        case .shapeMismatch:
            let found = foundShape.map { "[" + $0.map(String.init).joined(separator: ", ") + "]" } ?? "nothing"
            return "CS-MIL head: tensor \(tensor) has shape \(found), expected \(expected); check that the head "
                + "was trained on features of the backbone named in model.toml"
        }
    }
}
