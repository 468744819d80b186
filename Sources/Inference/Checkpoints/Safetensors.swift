import Foundation

/// Reads `.safetensors` files: an 8-byte little-endian header length, a JSON header mapping each tensor name
/// to `{"dtype", "shape", "data_offsets": [begin, end]}` (offsets relative to the data area that follows the
/// header), and the tensors' contiguous little-endian bytes. `__metadata__` is ignored.
enum Safetensors {
    /// Headers longer than this are refused (the reference implementation's limit is the same 100 MB).
    static let maximumHeaderLength = 100_000_000

    /// One header entry. All fields are optional so that `__metadata__` (a string map) decodes too.
    private struct HeaderEntry: Decodable {
        var dtype: String?
        var shape: [Int]?
        var dataOffsets: [Int]?

        enum CodingKeys: String, CodingKey {
            case dtype, shape
            case dataOffsets = "data_offsets"
        }
    }

    /// Element types by their safetensors names.
    private static let types: [String: Tensor.SourceType] = [
        "F32": .float32, "F16": .float16, "BF16": .bfloat16, "F64": .float64, "I64": .int64, "I32": .int32,
        "I16": .int16, "I8": .int8, "U8": .uint8, "BOOL": .bool,
    ]

    /// Loads every tensor, in the order of their data in the file.
    static func load(_ data: Data, file: String) throws(CheckpointError) -> StateDict {
        let length = data.count
        guard length >= 8 else { throw .corrupt(file, "it is too short to be a safetensors file") }
        let declared = LittleEndianBytes(copying: data, range: 0..<8).u64(0) ?? .max
        guard declared <= UInt64(maximumHeaderLength) else {
            throw .corrupt(
                file, "its safetensors header claims \(declared) bytes, more than the \(maximumHeaderLength) allowed")
        }
        let headerLength = Int(declared)
        guard headerLength <= length - 8 else {
            throw .corrupt(
                file, "its \(headerLength)-byte safetensors header runs past the end of the file (truncated?)")
        }
        let header = data.withUnsafeBytes { Data($0[8..<(8 + headerLength)]) }
        let entries: [String: HeaderEntry]
        do {
            entries = try JSONDecoder().decode([String: HeaderEntry].self, from: header)
        } catch {
            throw .corrupt(file, "its safetensors header is not the expected JSON")
        }

        let dataStart = 8 + headerLength
        let dataLength = length - dataStart
        var located: [(name: String, begin: Int, end: Int, type: Tensor.SourceType, shape: [Int])] = []
        for (name, entry) in entries where name != "__metadata__" {
            guard let dtype = entry.dtype, let shape = entry.shape, let offsets = entry.dataOffsets,
                offsets.count == 2
            else { throw .corrupt(file, "the safetensors entry \(name) lacks dtype, shape or data_offsets") }
            guard let type = types[dtype] else {
                throw .unsupported(
                    file, "tensor \(name) has the safetensors dtype \(Unpickler.printable(dtype))",
                    fix: "Save it as F32, F16, BF16, F64 or an integer type.")
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin >= 0, begin <= end, end <= dataLength else {
                throw .corrupt(
                    file, "tensor \(name) has data_offsets [\(begin), \(end)] outside the \(dataLength)-byte data area")
            }
            let layout = StridedLayout(shape: shape, strides: StridedLayout.contiguousStrides(shape), offset: 0)
            guard let count = layout.elementCount, count <= StridedLayout.maximumElementCount else {
                throw .corrupt(file, "tensor \(name) has an impossible shape \(Checkpoint.describe(shape))")
            }
            guard count * type.byteCount == end - begin else {
                throw .corrupt(
                    file,
                    "tensor \(name) of shape \(Checkpoint.describe(shape)) and dtype \(dtype) needs "
                        + "\(count * type.byteCount) bytes but its data_offsets span \(end - begin)")
            }
            located.append((name, begin, end, type, shape))
        }
        located.sort { ($0.begin, $0.name) < ($1.begin, $1.name) }

        var dict = StateDict()
        for tensor in located {
            let layout = StridedLayout(
                shape: tensor.shape, strides: StridedLayout.contiguousStrides(tensor.shape), offset: 0)
            let range = (dataStart + tensor.begin)..<(dataStart + tensor.end)
            let values = data.withUnsafeBytes { raw in
                Tensor.gather(UnsafeRawBufferPointer(rebasing: raw[range]), type: tensor.type, layout: layout)
            }
            dict.set(tensor.name, Tensor(shape: tensor.shape, values: values, sourceType: tensor.type))
        }
        return dict
    }
}
