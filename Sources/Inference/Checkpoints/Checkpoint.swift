import Errors
import Foundation

/// Why a weight file could not be loaded: a stable code, the file, what went wrong and what to do.
///
/// Loading never executes anything from the file, so a refusal (`forbiddenGlobal`) means the file was
/// read as data only and then rejected.
public struct CheckpointError: CSMILError, Sendable, Equatable {
    /// A stable reason.
    public enum Code: String, ErrorCode {
        /// The file could not be read at all (missing, a directory, no permission).
        case unreadable = "checkpoint.unreadable"
        /// The file is readable but is neither a `torch.save` zip nor a safetensors file.
        case notACheckpoint = "checkpoint.not_a_checkpoint"
        /// The file has the right format but is damaged: truncated, bad offsets, bad checksum, bad pickle.
        case corrupt = "checkpoint.corrupt"
        /// The pickle names a Python global other than the tensor and container types a checkpoint needs.
        case forbiddenGlobal = "checkpoint.forbidden_global"
        /// A valid file using a feature this loader does not implement (compression, legacy format, a dtype).
        case unsupported = "checkpoint.unsupported"
        /// A tensor the model needs is not in the file.
        case missingTensor = "checkpoint.missing_tensor"
        /// A tensor the model needs has a different shape in the file.
        case wrongShape = "checkpoint.wrong_shape"
    }

    public var code: Code
    /// The path of the file, as it was given to the loader.
    public var file: String
    /// What happened (naming the tensor or entry where there is one).
    public var message: String
    /// What the user can do about it.
    public var fix: String

    public init(code: Code, file: String, message: String, fix: String) {
        self.code = code
        self.file = file
        self.message = message
        self.fix = fix
    }

    public var subject: String { file }
}

extension CheckpointError {
    /// The file has the right format but its content is damaged.
    static func corrupt(_ file: String, _ problem: String) -> CheckpointError {
        CheckpointError(
            code: .corrupt, file: file, message: problem,
            fix: "The file is damaged or incomplete; copy it again from its source and compare checksums.")
    }

    /// The file uses a feature this loader does not implement; `fix` says how to convert it.
    static func unsupported(_ file: String, _ problem: String, fix: String) -> CheckpointError {
        CheckpointError(code: .unsupported, file: file, message: problem, fix: fix)
    }

    /// The file is not a checkpoint at all.
    static func notACheckpoint(_ file: String, _ problem: String) -> CheckpointError {
        CheckpointError(
            code: .notACheckpoint, file: file, message: problem,
            fix: "Give the .pth file that torch.save wrote, or a .safetensors file with the same tensor names.")
    }

    /// The pickle references a Python global outside the allowed list.
    static func forbiddenGlobal(_ file: String, _ global: String) -> CheckpointError {
        CheckpointError(
            code: .forbiddenGlobal, file: file,
            message: "refused: its pickle references the global \(global); checkpoints may only contain tensors "
                + "and plain containers, so this file was not loaded and nothing in it ran",
            fix: "If you trust its source, re-save just the weights with PyTorch "
                + "(torch.save({'state_dict': model.state_dict()}, path)) or convert them to .safetensors.")
    }

    /// Fix text for files whose layout needs to be re-saved by PyTorch.
    static let resaveFix =
        "Re-save the weights with PyTorch ≥ 1.6 (torch.save({'state_dict': model.state_dict()}, path)) "
        + "or convert them to .safetensors."
}

/// Loads PyTorch checkpoints (`torch.save` zip files) and safetensors files into `StateDict`s, safely.
///
/// Unlike `torch.load`, nothing in the file is ever executed: the pickle inside a `.pth` file is read by
/// a restricted interpreter that only knows tensors and plain containers (see `Unpickler`), and every
/// offset and size in the file is checked against the file before it is used.
public enum Checkpoint {
    /// Loads every tensor of a .pth (torch.save zip) or .safetensors file (chosen by content, not extension).
    /// Unwraps {'state_dict': …}; strips a leading "module." (DataParallel) from names.
    ///
    /// Tensors inside nested containers are named by their path, joined with dots (`a.0.b`); plain values
    /// (numbers, strings, booleans, None) are skipped. Every tensor is converted to contiguous float32.
    public static func load(path: String) throws(CheckpointError) -> StateDict {
        try load(read(path), file: path)
    }

    /// Loads a checkpoint's bytes as `load(path:)` does; `file` names it in errors.
    static func load(_ data: Data, file: String) throws(CheckpointError) -> StateDict {
        let loaded: StateDict
        switch Format(detecting: data) {
        case .empty:
            throw .notACheckpoint(file, "the file is empty")
        case .torchZip:
            loaded = try TorchCheckpoint.load(data, file: file)
        case .safetensors:
            loaded = try Safetensors.load(data, file: file)
        case .legacyPickle:
            throw .unsupported(
                file, "it is a bare pickle (PyTorch's pre-1.6 format, or pickle.dump), which cannot be read safely",
                fix: CheckpointError.resaveFix)
        case .unknown:
            throw .notACheckpoint(file, "it is neither a torch.save zip archive nor a safetensors file")
        }
        return try strippingDataParallelPrefix(loaded, file: file)
    }

    /// A backbone: keys starting "backbone." with that prefix stripped (SimSiam layout; `projector.*` and
    /// `predictor.*` ignored); if no key starts with "backbone.", the plain torchvision names are used as they
    /// are. `fc.*` dropped.
    public static func loadBackbone(path: String) throws(CheckpointError) -> StateDict {
        let all = try load(path: path)
        let prefix = "backbone."
        let hasBackbonePrefix = all.names.contains { $0.hasPrefix(prefix) }
        var backbone = StateDict()
        for name in all.names {
            guard let tensor = all[name] else { continue }
            let local: String
            if hasBackbonePrefix {
                guard name.hasPrefix(prefix) else { continue }
                local = String(name.dropFirst(prefix.count))
            } else {
                local = name
            }
            if local.hasPrefix("fc.") { continue }
            backbone.set(local, tensor)
        }
        return backbone
    }

    /// Checks that every (name, shape) in `expected` is present with that shape: errors name the tensor,
    /// expected and found shape.
    ///
    /// Every problem is listed in one error (the first ten in full); the code is that of the first problem.
    /// Tensors in `dict` that `expected` does not mention are allowed.
    public static func check(
        _ dict: StateDict, expected: [(name: String, shape: [Int])], file: String
    ) throws(CheckpointError) {
        var problems: [String] = []
        var firstCode: CheckpointError.Code?
        for (name, shape) in expected {
            let wanted = describe(shape)
            guard let tensor = dict[name] else {
                problems.append("tensor \(name) (expected shape \(wanted)) is missing")
                firstCode = firstCode ?? .missingTensor
                continue
            }
            if tensor.shape != shape {
                problems.append("tensor \(name) has shape \(tensor.shapeDescription) but the model expects \(wanted)")
                firstCode = firstCode ?? .wrongShape
            }
        }
        guard let code = firstCode else { return }
        var listed = problems.prefix(10).joined(separator: "; ")
        if problems.count > 10 { listed += "; and \(problems.count - 10) more" }
        let count = problems.count == 1 ? "1 problem" : "\(problems.count) problems"
        throw CheckpointError(
            code: code, file: file,
            message: "does not fit the model (\(count)): \(listed)",
            fix: "Check that model.toml names the right architecture and that this file has the role it is "
                + "given (backbone or head, and which scale).")
    }

    // MARK: - Reading and format detection

    /// The kinds of file told apart by their first bytes.
    enum Format: Equatable {
        case empty, torchZip, safetensors, legacyPickle, unknown

        init(detecting data: Data) {
            let head = [UInt8](data.prefix(9))
            if head.isEmpty {
                self = .empty
            } else if head.starts(with: [0x50, 0x4B, 0x03, 0x04]) || head.starts(with: [0x50, 0x4B, 0x05, 0x06]) {
                self = .torchZip
            } else if head.count == 9 && head[8] == UInt8(ascii: "{") {
                self = .safetensors
            } else if head[0] == 0x80 {
                self = .legacyPickle
            } else {
                self = .unknown
            }
        }
    }

    /// The file's bytes, memory-mapped where the platform allows it. Only regular files (or links to them)
    /// are read, so a path naming a directory, a FIFO or a device fails at once instead of hanging.
    static func read(_ path: String) throws(CheckpointError) -> Data {
        func unreadable(_ problem: String, fix: String) -> CheckpointError {
            CheckpointError(code: .unreadable, file: path, message: problem, fix: fix)
        }
        var status = stat()
        guard stat(path, &status) == 0 else {
            let reason = String(cString: strerror(errno))
            throw unreadable(
                reason.lowercased(),
                fix: "Check the path in model.toml (relative paths are resolved against the model directory) "
                    + "and that the user running csmil may read it.")
        }
        switch status.st_mode & S_IFMT {
        case S_IFREG:
            break
        case S_IFDIR:
            throw unreadable("it is a directory, not a file", fix: "Point the model at the weight file inside it.")
        default:
            throw unreadable("it is not a regular file", fix: "Point the model at the weight file itself.")
        }
        do {
            return try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        } catch {
            throw unreadable(
                "reading it failed (\(error.localizedDescription))",
                fix: "Check that the user running csmil may read it.")
        }
    }

    /// Strips a leading "module." (what `nn.DataParallel` adds) from every name that has one.
    static func strippingDataParallelPrefix(_ dict: StateDict, file: String) throws(CheckpointError) -> StateDict {
        let prefix = "module."
        guard dict.names.contains(where: { $0.hasPrefix(prefix) }) else { return dict }
        var stripped = StateDict()
        for name in dict.names {
            guard let tensor = dict[name] else { continue }
            let local = name.hasPrefix(prefix) ? String(name.dropFirst(prefix.count)) : name
            guard stripped[local] == nil else {
                throw .corrupt(file, "both \(local) and module.\(local) are in the file, so the names are ambiguous")
            }
            stripped.set(local, tensor)
        }
        return stripped
    }

    /// "[64, 2048, 1, 1]", as PyTorch prints shapes.
    static func describe(_ shape: [Int]) -> String { "[" + shape.map(String.init).joined(separator: ", ") + "]" }
}
