import Foundation

/// Reads the zip-based `torch.save` format (PyTorch ≥ 1.6): `<prefix>/data.pkl`, a pickle of the saved
/// object whose tensors point at storages by persistent id, and `<prefix>/data/<key>`, each storage's raw
/// little-endian bytes.
enum TorchCheckpoint {
    /// Loads the tensors of a `torch.save` archive: those of its `state_dict` entry when the top-level
    /// object is a dict that has one, otherwise all of them, named by their path in the containers.
    static func load(_ data: Data, file: String) throws(CheckpointError) -> StateDict {
        let (archive, prefix, graph) = try open(data, file: file)
        var root = graph.root
        if let wrapped = graph.lookup("state_dict", in: root), case .dict = wrapped { root = wrapped }
        let named = try namedTensors(in: graph, from: root, file: file)
        guard !named.isEmpty else { throw .notACheckpoint(file, "its pickle holds no tensors") }

        var storages = StorageReader(archive: archive, prefix: prefix)
        var converted: [Int: Tensor] = [:]
        var dict = StateDict()
        for (name, index) in named {
            if let tensor = converted[index] {
                dict.set(name, tensor)
                continue
            }
            let tensor = try storages.tensor(graph.tensors[index], in: graph, name: name)
            converted[index] = tensor
            dict.set(name, tensor)
        }
        return dict
    }

    /// Opens the archive, finds its pickle and runs it through the restricted unpickler.
    static func open(
        _ data: Data, file: String
    ) throws(CheckpointError) -> (archive: ZipArchive, prefix: String, graph: PickleGraph) {
        let archive = try ZipArchive(data: data, file: file)
        let pickles = archive.entries.filter { entry in
            let parts = entry.name.split(separator: "/", omittingEmptySubsequences: false)
            return parts.count == 2 && parts[1] == "data.pkl" && !parts[0].isEmpty
        }
        guard let pickle = pickles.first else {
            throw .notACheckpoint(file, "it is a zip archive without the <name>/data.pkl that torch.save writes")
        }
        guard pickles.count == 1 else {
            throw .corrupt(file, "it holds \(pickles.count) data.pkl records, so it is unclear which one to read")
        }
        guard pickle.uncompressedSize <= maximumPickleSize else {
            throw .unsupported(
                file,
                "its data.pkl is \(pickle.uncompressedSize) bytes, more than the \(maximumPickleSize) "
                    + "a checkpoint's pickle may have (state_dict pickles are kilobytes)",
                fix: CheckpointError.resaveFix)
        }
        let prefix = String(pickle.name.dropLast("/data.pkl".count))
        // PyTorch ≥ 2.1 records the byte order of the storages; older versions only wrote little-endian ones.
        if let order = archive.entry(named: "\(prefix)/byteorder") {
            let text = String(decoding: try archive.bytes(of: order), as: UTF8.self)
            guard text.trimmingCharacters(in: .whitespacesAndNewlines) == "little" else {
                throw .unsupported(
                    file, "its tensors are stored \(Unpickler.printable(text))-endian, not little-endian",
                    fix: "Re-save it with PyTorch on a little-endian machine (x86-64 or ARM) or convert it to "
                        + ".safetensors.")
            }
        }
        let bytes = try archive.bytes(of: pickle)
        let graph = try Unpickler.unpickle(bytes, file: file)
        return (archive, prefix, graph)
    }

    /// The largest `data.pkl` read. The pickle only describes tensors (their bytes are separate records), so
    /// even a model with thousands of tensors has a pickle well under a megabyte.
    static let maximumPickleSize = 64 << 20

    // MARK: - Naming the tensors in nested containers

    /// The most containers visited while looking for tensors, and the deepest nesting allowed: shared
    /// sub-containers are visited once per reference, so this bounds the work a hostile pickle can cause.
    static let maximumVisitedValues = 1 << 20
    static let maximumNesting = 64

    /// Every tensor reachable from `root`, with its dotted path ("layer1.0.conv1.weight", "a.0.b"), in order.
    static func namedTensors(
        in graph: PickleGraph, from root: PickleValue, file: String
    ) throws(CheckpointError) -> [(name: String, tensor: Int)] {
        var result: [(name: String, tensor: Int)] = []
        var seen: Set<String> = []
        var visited = 0

        func keyName(_ key: PickleValue) throws(CheckpointError) -> String {
            switch key {
            case .string(let string): return string
            case .int(let int): return String(int)
            case .bool(let bool): return bool ? "True" : "False"
            case .none: return "None"
            default:
                throw .unsupported(
                    file, "a dict in its pickle has a key that is not a string or number",
                    fix: CheckpointError.resaveFix)
            }
        }

        func visit(_ value: PickleValue, path: [String]) throws(CheckpointError) {
            visited += 1
            guard visited <= maximumVisitedValues, path.count <= maximumNesting else {
                throw .corrupt(
                    file,
                    "its containers nest more than \(maximumNesting) deep, contain themselves, or share parts too often"
                )
            }
            switch value {
            case .tensor(let index):
                let name = path.joined(separator: ".")
                guard seen.insert(name).inserted else { throw .corrupt(file, "two tensors are both named '\(name)'") }
                result.append((name, index))
            case .tuple, .list:
                for (index, item) in (graph.items(of: value) ?? []).enumerated() {
                    try visit(item, path: path + [String(index)])
                }
            case .dict(let index):
                let dict = graph.dicts[index]
                for (key, item) in zip(dict.keys, dict.values) {
                    try visit(item, path: path + [try keyName(key)])
                }
            case .none, .bool, .int, .float, .string, .bytes, .global, .storage:
                break
            }
        }

        try visit(root, path: [])
        return result
    }

    // MARK: - Storages and tensors

    /// Finds and validates storage records, each once.
    private struct StorageReader {
        let archive: ZipArchive
        let prefix: String
        /// Validated byte ranges by key (checked for CRC once).
        private var verified: [String: Range<Int>] = [:]

        init(archive: ZipArchive, prefix: String) {
            self.archive = archive
            self.prefix = prefix
        }

        /// Builds the contiguous float32 tensor that `record` describes, checking it against its storage.
        mutating func tensor(
            _ record: TensorRecord, in graph: PickleGraph, name: String
        ) throws(CheckpointError) -> Tensor {
            let file = archive.file
            let storage = graph.storages[record.storage]
            let range = try bytes(of: storage)
            let elementSize = storage.type.byteCount
            let (byteCount, overflow) = storage.count.multipliedReportingOverflow(by: elementSize)
            guard !overflow, byteCount == range.count else {
                throw .corrupt(
                    file,
                    "the storage of tensor \(name) should hold \(storage.count) \(storage.type.rawValue) "
                        + "values but its record '\(prefix)/data/\(storage.key)' has \(range.count) bytes")
            }
            let layout = StridedLayout(shape: record.shape, strides: record.strides, offset: record.offset)
            if let problem = layout.problem(storageCount: storage.count) {
                throw .corrupt(file, "tensor \(name) \(problem)")
            }
            let values = archive.data.withUnsafeBytes { raw in
                Tensor.gather(UnsafeRawBufferPointer(rebasing: raw[range]), type: storage.type, layout: layout)
            }
            return Tensor(shape: record.shape, values: values, sourceType: storage.type)
        }

        private mutating func bytes(of storage: StorageReference) throws(CheckpointError) -> Range<Int> {
            if let range = verified[storage.key] { return range }
            let name = "\(prefix)/data/\(storage.key)"
            guard let entry = archive.entry(named: name) else {
                throw .corrupt(archive.file, "its pickle refers to the storage record '\(name)', which is missing")
            }
            let range = try archive.contents(of: entry, verifyingChecksum: true)
            verified[storage.key] = range
            return range
        }
    }
}

/// Where a tensor's elements lie in its storage: `offset + Σ index[d] · strides[d]`, in elements.
struct StridedLayout: Equatable, Sendable {
    var shape: [Int]
    var strides: [Int]
    var offset: Int

    /// The most elements one tensor may have (1 GiB of float32), so that a tiny storage expanded with
    /// zero strides cannot ask for unbounded memory.
    static let maximumElementCount = 1 << 28

    /// The row-major strides of a contiguous tensor of this shape.
    static func contiguousStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var step = 1
        for dimension in shape.indices.reversed() {
            strides[dimension] = step
            step = step &* max(shape[dimension], 1)
        }
        return strides
    }

    /// The number of elements, or nil if a size is negative or the product overflows.
    var elementCount: Int? {
        var count = 1
        for size in shape {
            guard size >= 0 else { return nil }
            let (product, overflow) = count.multipliedReportingOverflow(by: size)
            if overflow { return nil }
            count = product
        }
        return count
    }

    /// Why the layout cannot be read from a storage of `storageCount` elements, or nil if every element
    /// it addresses lies inside the storage.
    func problem(storageCount: Int) -> String? {
        guard shape.count == strides.count else {
            return "has \(shape.count) sizes but \(strides.count) strides"
        }
        guard let count = elementCount else { return "has an impossible shape \(shape)" }
        guard count <= Self.maximumElementCount else {
            return "has \(count) elements, more than the \(Self.maximumElementCount) one tensor may have"
        }
        guard offset >= 0, strides.allSatisfy({ $0 >= 0 }) else { return "has a negative offset or stride" }
        guard count > 0 else {
            return offset <= storageCount
                ? nil : "starts at element \(offset), past its \(storageCount)-element storage"
        }
        var last = offset
        for (size, stride) in zip(shape, strides) {
            let (step, overflow) = (size - 1).multipliedReportingOverflow(by: stride)
            let (sum, overflow2) = last.addingReportingOverflow(step)
            if overflow || overflow2 { return "has strides that overflow" }
            last = sum
        }
        guard last < storageCount else {
            return "reaches element \(last) (offset \(offset), shape \(shape), strides \(strides)) "
                + "of a storage of \(storageCount) elements"
        }
        return nil
    }

    /// Calls `body` with the storage index of every element, in row-major order. The layout must be valid.
    @inline(__always)
    func forEachIndex(_ body: (Int) -> Void) {
        guard let count = elementCount, count > 0 else { return }
        if strides == Self.contiguousStrides(shape) {
            for index in offset..<(offset + count) { body(index) }
            return
        }
        var counters = [Int](repeating: 0, count: shape.count)
        var position = offset
        for _ in 0..<count {
            body(position)
            // Advance the odometer: the last dimension fastest.
            var dimension = shape.count - 1
            while dimension >= 0 {
                // Wrapping arithmetic: a size-1 dimension may carry any stride; the indices used are valid.
                counters[dimension] += 1
                position &+= strides[dimension]
                if counters[dimension] < shape[dimension] { break }
                position &-= strides[dimension] &* shape[dimension]
                counters[dimension] = 0
                dimension -= 1
            }
        }
    }
}

extension Tensor.SourceType {
    /// Bytes per element in a storage.
    var byteCount: Int {
        switch self {
        case .float64, .int64: 8
        case .float32, .int32: 4
        case .float16, .bfloat16, .int16: 2
        case .int8, .uint8, .bool: 1
        }
    }
}

extension Tensor {
    /// The elements `layout` addresses in a little-endian `storage` of `type`, converted to Float in
    /// row-major order, as PyTorch's `.contiguous().float()` gives them (half and bfloat16 exactly; float64
    /// and integers rounded to nearest). The layout must have been validated against the storage.
    static func gather(_ storage: UnsafeRawBufferPointer, type: SourceType, layout: StridedLayout) -> [Float] {
        let count = layout.elementCount ?? 0
        return [Float](unsafeUninitializedCapacity: count) { output, initialized in
            var next = 0
            func fill(_ load: (Int) -> Float) {
                layout.forEachIndex { index in
                    output[next] = load(index)
                    next += 1
                }
            }
            func u16(_ index: Int) -> UInt16 {
                UInt16(littleEndian: storage.loadUnaligned(fromByteOffset: index &* 2, as: UInt16.self))
            }
            func u32(_ index: Int) -> UInt32 {
                UInt32(littleEndian: storage.loadUnaligned(fromByteOffset: index &* 4, as: UInt32.self))
            }
            func u64(_ index: Int) -> UInt64 {
                UInt64(littleEndian: storage.loadUnaligned(fromByteOffset: index &* 8, as: UInt64.self))
            }
            switch type {
            case .float32: fill { Float(bitPattern: u32($0)) }
            case .float16: fill { floatFromHalf(u16($0)) }
            case .bfloat16: fill { Float(bitPattern: UInt32(u16($0)) << 16) }
            case .float64: fill { Float(Double(bitPattern: u64($0))) }
            case .int64: fill { Float(Int64(bitPattern: u64($0))) }
            case .int32: fill { Float(Int32(bitPattern: u32($0))) }
            case .int16: fill { Float(Int16(bitPattern: u16($0))) }
            case .int8: fill { Float(Int8(bitPattern: storage[$0])) }
            case .uint8: fill { Float(storage[$0]) }
            case .bool: fill { storage[$0] == 0 ? 0 : 1 }
            }
            initialized = next
        }
    }

    /// IEEE half precision to single precision, exactly (NaNs keep their payload and become quiet).
    static func floatFromHalf(_ bits: UInt16) -> Float {
        let sign = UInt32(bits & 0x8000) << 16
        let exponent = UInt32(bits >> 10) & 0x1F
        let mantissa = UInt32(bits & 0x3FF)
        switch exponent {
        case 0x1F:
            let quiet: UInt32 = mantissa == 0 ? 0 : 0x0040_0000
            return Float(bitPattern: sign | 0x7F80_0000 | quiet | mantissa << 13)
        case 0:
            // Zero or subnormal: mantissa × 2⁻²⁴, exact in float32.
            let magnitude = Float(mantissa) * 0x1p-24
            return sign == 0 ? magnitude : -magnitude
        default:
            return Float(bitPattern: sign | (exponent + 112) << 23 | mantissa << 13)
        }
    }
}
