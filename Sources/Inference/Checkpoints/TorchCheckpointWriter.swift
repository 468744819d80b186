import Foundation

extension CheckpointWriter {
    /// Encodes tensors as `torch.save({'state_dict': OrderedDict(…)}, path)` writes them (spec §1),
    /// the layout the published CS-MIL code saves its heads in: a zip archive (stored entries, CRC-32,
    /// data aligned to 64 bytes) holding
    ///
    /// - `<archive>/data.pkl`: a protocol-2 pickle of `{'state_dict': OrderedDict(name → tensor)}`,
    ///   each tensor `torch._utils._rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())`
    ///   with its storage the persistent id `('storage', torch.FloatStorage, '<key>', 'cpu', numel)`;
    /// - `<archive>/byteorder`: `little` (read by PyTorch ≥ 2.1, ignored before);
    /// - `<archive>/data/<key>`: each tensor's float32 values, little-endian, contiguous;
    /// - `<archive>/version`: `3`.
    ///
    /// `torch.load` (PyTorch ≥ 1.6) and `Checkpoint.load` read it; the pickle only names the globals
    /// `Checkpoint.load` allows.
    ///
    /// - Parameter archiveName: the folder inside the zip (PyTorch uses the file's stem or `archive`).
    public static func torchSave(_ dict: StateDict, archiveName: String = "archive") -> Data {
        precondition(
            !archiveName.isEmpty && !archiveName.contains("/"), "the archive name is one non-empty path component")
        var pickle = PickleWriter()
        pickle.protocolHeader()
        pickle.emptyDict()
        pickle.string("state_dict")
        pickle.emptyOrderedDict()
        pickle.mark()
        for (key, name) in dict.names.enumerated() {
            let tensor = dict[name]!
            pickle.string(name)
            pickle.global(module: "torch._utils", name: "_rebuild_tensor_v2")
            pickle.mark()
            // The storage, by persistent id.
            pickle.mark()
            pickle.string("storage")
            pickle.global(module: "torch", name: "FloatStorage")
            pickle.string(String(key))
            pickle.string("cpu")
            pickle.integer(tensor.count)
            pickle.tuple()
            pickle.persistentID()
            pickle.integer(0)  // storage offset
            pickle.integers(tensor.shape)
            pickle.integers(contiguousStrides(tensor.shape))
            pickle.bool(false)  // requires_grad
            pickle.emptyOrderedDict()  // backward hooks
            pickle.tuple()
            pickle.reduce()
        }
        pickle.setItems()
        pickle.setItem()
        pickle.stop()

        var zip = ZipArchiveWriter()
        zip.add("\(archiveName)/data.pkl", pickle.bytes)
        zip.add("\(archiveName)/byteorder", Data("little".utf8))
        for (key, name) in dict.names.enumerated() {
            var bytes = Data(capacity: dict[name]!.count * 4)
            for value in dict[name]!.values {
                Swift.withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
            }
            zip.add("\(archiveName)/data/\(key)", bytes)
        }
        zip.add("\(archiveName)/version", Data("3\n".utf8))
        return zip.finish()
    }

    /// Row-major strides of a contiguous tensor, in elements, as PyTorch gives them.
    static func contiguousStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var step = 1
        for axis in shape.indices.reversed() {
            strides[axis] = step
            step *= max(shape[axis], 1)
        }
        return strides
    }
}

/// Writes the few pickle opcodes (protocol 2) a `torch.save` state_dict needs; no memo.
struct PickleWriter {
    private(set) var bytes = Data()

    mutating func protocolHeader() { bytes.append(contentsOf: [0x80, 2]) }  // PROTO 2
    mutating func stop() { bytes.append(0x2E) }  // STOP
    mutating func mark() { bytes.append(0x28) }  // MARK
    mutating func tuple() { bytes.append(0x74) }  // TUPLE: the items since the last MARK
    mutating func emptyTuple() { bytes.append(0x29) }  // EMPTY_TUPLE
    mutating func emptyDict() { bytes.append(0x7D) }  // EMPTY_DICT
    mutating func setItem() { bytes.append(0x73) }  // SETITEM
    mutating func setItems() { bytes.append(0x75) }  // SETITEMS: the pairs since the last MARK
    mutating func reduce() { bytes.append(0x52) }  // REDUCE
    mutating func persistentID() { bytes.append(0x51) }  // BINPERSID
    mutating func bool(_ value: Bool) { bytes.append(value ? 0x88 : 0x89) }  // NEWTRUE / NEWFALSE

    /// GLOBAL "module\nname\n".
    mutating func global(module: String, name: String) {
        bytes.append(0x63)
        bytes.append(contentsOf: Array((module + "\n" + name + "\n").utf8))
    }

    /// `collections.OrderedDict()`.
    mutating func emptyOrderedDict() {
        global(module: "collections", name: "OrderedDict")
        emptyTuple()
        reduce()
    }

    /// BINUNICODE: a UTF-8 string with a 4-byte length.
    mutating func string(_ text: String) {
        let utf8 = Array(text.utf8)
        bytes.append(0x58)
        Swift.withUnsafeBytes(of: UInt32(utf8.count).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: utf8)
    }

    /// The shortest of BININT1, BININT2, BININT and LONG1 that holds `value`.
    mutating func integer(_ value: Int) {
        switch value {
        case 0..<0x100:
            bytes.append(contentsOf: [0x4B, UInt8(value)])
        case 0x100..<0x1_0000:
            bytes.append(0x4D)
            Swift.withUnsafeBytes(of: UInt16(value).littleEndian) { bytes.append(contentsOf: $0) }
        case Int(Int32.min)...Int(Int32.max):
            bytes.append(0x4A)
            Swift.withUnsafeBytes(of: Int32(value).littleEndian) { bytes.append(contentsOf: $0) }
        default:
            bytes.append(contentsOf: [0x8A, 8])  // LONG1: 8 bytes, two's complement, little-endian
            Swift.withUnsafeBytes(of: Int64(value).littleEndian) { bytes.append(contentsOf: $0) }
        }
    }

    /// A tuple of integers (EMPTY_TUPLE for none).
    mutating func integers(_ values: [Int]) {
        guard !values.isEmpty else { return emptyTuple() }
        mark()
        for value in values { integer(value) }
        tuple()
    }
}
