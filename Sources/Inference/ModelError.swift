import Errors

/// Why a model could not be loaded from its `model.toml` and weight files: a stable code, the file and
/// the role `model.toml` gives it, what went wrong and what to do.
///
/// Wraps the `CheckpointError` (reading the file) or `HeadError` (its tensors do not make a CS-MIL
/// head) it came from, in `cause`.
public struct ModelError: CSMILError, Sendable, Equatable {
    /// A stable reason.
    public enum Code: String, ErrorCode {
        /// The file could not be read at all (missing, a directory, no permission).
        case unreadable = "model.unreadable"
        /// The file is neither a `torch.save` zip nor a safetensors file.
        case notACheckpoint = "model.not_a_checkpoint"
        /// The file is damaged: truncated, bad offsets, bad checksum, bad pickle.
        case corrupt = "model.corrupt"
        /// The file's pickle names a Python global that a weights file has no need of; it was not loaded.
        case forbiddenGlobal = "model.forbidden_global"
        /// The file uses a feature the loader does not implement (compression, the legacy format, a dtype).
        case unsupported = "model.unsupported"
        /// A tensor the role needs is not in the file.
        case missingTensor = "model.missing_tensor"
        /// A tensor the role needs has another shape in the file: most often a backbone of another
        /// architecture, or a head trained on another backbone's features.
        case wrongShape = "model.wrong_shape"
        /// A backbone file holds a ResNet of another architecture than `model.toml` names.
        case wrongArchitecture = "model.wrong_architecture"
        /// The manifest itself cannot describe a model (no heads, no bags, no clusters).
        case invalidManifest = "model.invalid_manifest"
    }

    /// The lower-level error a `ModelError` wraps.
    public enum Cause: Sendable, Equatable {
        /// Reading the file failed, or its tensors do not fit the backbone.
        case checkpoint(CheckpointError)
        /// The file was read, but its tensors are not a CS-MIL head.
        case head(HeadError)
    }

    public var code: Code
    /// The role `model.toml` gives the file: "backbone_20x", "backbone_10x", "backbone_5x", "heads[i]",
    /// or the manifest key at fault for `invalidManifest`.
    public var role: String
    /// The file, as resolved against the model directory ("model.toml" for `invalidManifest`).
    public var file: String
    /// What happened, naming the role.
    public var message: String
    /// What the user can do about it.
    public var fix: String
    /// The error of the checkpoint reader or of the head, if one caused this.
    public var cause: Cause?

    /// An error with every field given; `Model.init` makes them, naming role and file in `message`.
    public init(code: Code, role: String, file: String, message: String, fix: String, cause: Cause? = nil) {
        self.code = code
        self.role = role
        self.file = file
        self.message = message
        self.fix = fix
        self.cause = cause
    }

    /// The file.
    public var subject: String { file }
}

extension ModelError.Code {
    /// The model-level code of a checkpoint reader's error.
    init(_ code: CheckpointError.Code) {
        switch code {
        case .unreadable: self = .unreadable
        case .notACheckpoint: self = .notACheckpoint
        case .corrupt: self = .corrupt
        case .forbiddenGlobal: self = .forbiddenGlobal
        case .unsupported: self = .unsupported
        case .missingTensor: self = .missingTensor
        case .wrongShape: self = .wrongShape
        }
    }

    /// The model-level code of a head's error.
    init(_ code: HeadError.Code) {
        switch code {
        case .missingTensor: self = .missingTensor
        case .shapeMismatch: self = .wrongShape
        }
    }
}
