/// The Python globals a checkpoint's pickle may reference: the tensor constructors, the storage types and
/// `OrderedDict`. Everything else is refused before anything is built.
enum PickleGlobal: Equatable, Sendable {
    case orderedDict
    /// `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])`.
    case rebuildTensorV2
    /// `torch._utils._rebuild_parameter(tensor, requires_grad, hooks)`: the tensor itself for our purposes.
    case rebuildParameter
    /// `torch.FloatStorage` and friends, naming the element type of a storage.
    case storageType(Tensor.SourceType)

    /// The allowed global with this module and name, or nil if it is not allowed.
    init?(module: String, name: String) {
        switch (module, name) {
        case ("collections", "OrderedDict"): self = .orderedDict
        case ("torch._utils", "_rebuild_tensor_v2"): self = .rebuildTensorV2
        case ("torch._utils", "_rebuild_parameter"): self = .rebuildParameter
        case ("torch", _):
            guard let type = Self.storageTypes[name] else { return nil }
            self = .storageType(type)
        default: return nil
        }
    }

    private static let storageTypes: [String: Tensor.SourceType] = [
        "FloatStorage": .float32, "HalfStorage": .float16, "BFloat16Storage": .bfloat16,
        "DoubleStorage": .float64, "LongStorage": .int64, "IntStorage": .int32, "ShortStorage": .int16,
        "CharStorage": .int8, "ByteStorage": .uint8, "BoolStorage": .bool,
    ]
}

/// A value of the restricted pickle machine. Containers live in `PickleGraph`'s arenas and are referred to
/// by index, so values never nest: releasing a deeply nested structure cannot overflow the stack, and
/// shared or self-referencing containers behave as in Python.
enum PickleValue: Equatable, Sendable {
    case none
    case bool(Bool)
    case int(Int64)
    case float(Double)
    case string(String)
    case bytes([UInt8])
    /// Index into `PickleGraph.tuples`.
    case tuple(Int)
    /// Index into `PickleGraph.lists`.
    case list(Int)
    /// Index into `PickleGraph.dicts` (plain dicts and `OrderedDict`s alike).
    case dict(Int)
    case global(PickleGlobal)
    /// Index into `PickleGraph.storages`: a persistent id `('storage', type, key, location, numel)`.
    case storage(Int)
    /// Index into `PickleGraph.tensors`: the result of `_rebuild_tensor_v2`.
    case tensor(Int)
}

/// A storage named by a persistent id: `('storage', torch.FloatStorage, key, location, numel)`.
struct StorageReference: Equatable, Sendable {
    var type: Tensor.SourceType
    /// The record `<prefix>/data/<key>` holds its bytes.
    var key: String
    /// Where it lived when saved ("cpu", "cuda:0"); ignored, everything loads to the CPU.
    var location: String
    /// The number of elements (not bytes) in the storage.
    var count: Int
}

/// A tensor as `_rebuild_tensor_v2` describes it: a view into a storage. Nothing is validated here;
/// `TorchCheckpoint` checks the view against the storage's real size.
struct TensorRecord: Equatable, Sendable {
    /// Index into `PickleGraph.storages`.
    var storage: Int
    var offset: Int
    var shape: [Int]
    var strides: [Int]
}

/// A dict or `OrderedDict`, in insertion order. Setting an existing string or integer key replaces its value.
struct PickleDict: Equatable, Sendable {
    var keys: [PickleValue] = []
    var values: [PickleValue] = []
    private var indexByKey: [Key: Int] = [:]

    private enum Key: Hashable, Sendable {
        case string(String), int(Int64)
    }

    mutating func set(_ key: PickleValue, _ value: PickleValue) {
        let hashable: Key? =
            switch key {
            case .string(let string): .string(string)
            case .int(let int): .int(int)
            default: nil
            }
        if let hashable, let index = indexByKey[hashable] {
            values[index] = value
            return
        }
        if let hashable { indexByKey[hashable] = keys.count }
        keys.append(key)
        values.append(value)
    }

    /// The value of a string key.
    subscript(key: String) -> PickleValue? {
        indexByKey[.string(key)].map { values[$0] }
    }

    var count: Int { keys.count }
}

/// Everything a pickle built: its root value and the arenas its containers, storages and tensors live in.
struct PickleGraph: Equatable, Sendable {
    var root: PickleValue = .none
    var tuples: [[PickleValue]] = []
    var lists: [[PickleValue]] = []
    var dicts: [PickleDict] = []
    var storages: [StorageReference] = []
    var tensors: [TensorRecord] = []

    /// The value of a string key if `value` is a dict that has it.
    func lookup(_ key: String, in value: PickleValue) -> PickleValue? {
        guard case .dict(let index) = value else { return nil }
        return dicts[index][key]
    }

    /// The items of a tuple or list, if `value` is one.
    func items(of value: PickleValue) -> [PickleValue]? {
        switch value {
        case .tuple(let index): tuples[index]
        case .list(let index): lists[index]
        default: nil
        }
    }
}

/// A restricted pickle machine for the pickles `torch.save` writes (protocols 2 to 5).
///
/// It implements only the opcodes needed for tensors and plain containers. It resolves only the globals in
/// `PickleGlobal`, calls (`REDUCE`, `NEWOBJ`) only those, and runs nothing: "calling" `_rebuild_tensor_v2`
/// records a `TensorRecord`. Any other global, callable, `BUILD` target or opcode is an error. The stack,
/// memo, marks and container sizes are capped, and every length is checked against the input, so work and
/// memory stay proportional to the pickle's size.
struct Unpickler {
    /// Caps that keep a hostile pickle from using unbounded memory.
    static let maximumStackDepth = 1 << 20
    static let maximumMarkDepth = 1 << 16
    static let maximumMemoSize = 1 << 20
    static let maximumContainerItems = 1 << 24
    static let maximumGlobalNameLength = 1024

    private let bytes: [UInt8]
    private let file: String
    private var position = 0
    private var stack: [PickleValue] = []
    /// Stack heights at each MARK.
    private var marks: [Int] = []
    private var memo: [Int: PickleValue] = [:]
    private var containerItems = 0
    private var graph = PickleGraph()

    /// Runs `bytes` (the contents of `data.pkl`) and returns what it built. `file` is for error messages.
    static func unpickle(_ bytes: [UInt8], file: String) throws(CheckpointError) -> PickleGraph {
        var machine = Unpickler(bytes: bytes, file: file)
        return try machine.run()
    }

    private init(bytes: [UInt8], file: String) {
        self.bytes = bytes
        self.file = file
    }

    // MARK: - The machine

    private mutating func run() throws(CheckpointError) -> PickleGraph {
        while true {
            let opcodePosition = position
            let opcode = try readByte()
            switch opcode {
            case 0x80:  // PROTO
                let version = try readByte()
                guard version <= 5 else { throw unsupported("pickle protocol \(version)") }
            case 0x95:  // FRAME: a length hint only
                _ = try readLength(8)
            case 0x2E:  // STOP
                graph.root = try pop()
                return graph
            case 0x28:  // MARK
                guard marks.count < Self.maximumMarkDepth else { throw malformed("too many nested MARKs") }
                marks.append(stack.count)
            case 0x30:  // POP
                _ = try pop()
            case 0x31:  // POP_MARK
                _ = try popToMark()
            case 0x32:  // DUP
                try push(try top())
            case 0x4E:  // NONE
                try push(.none)
            case 0x88:  // NEWTRUE
                try push(.bool(true))
            case 0x89:  // NEWFALSE
                try push(.bool(false))
            case 0x4A:  // BININT
                try push(.int(Int64(Int32(bitPattern: UInt32(try readLittleEndian(4))))))
            case 0x4B:  // BININT1
                try push(.int(Int64(try readByte())))
            case 0x4D:  // BININT2
                try push(.int(Int64(try readLittleEndian(2))))
            case 0x8A:  // LONG1
                try push(.int(try readLong(byteCount: Int(try readByte()))))
            case 0x8B:  // LONG4
                try push(.int(try readLong(byteCount: try readLength(4))))
            case 0x47:  // BINFLOAT: big-endian IEEE double
                let bits = try readBytes(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                try push(.float(Double(bitPattern: bits)))
            case 0x8C:  // SHORT_BINUNICODE
                try push(.string(try readUTF8(length: try readLength(1))))
            case 0x58:  // BINUNICODE
                try push(.string(try readUTF8(length: try readLength(4))))
            case 0x8D:  // BINUNICODE8
                try push(.string(try readUTF8(length: try readLength(8))))
            case 0x55:  // SHORT_BINSTRING (Python 2 str)
                try push(.string(try readLegacyString(length: try readLength(1))))
            case 0x54:  // BINSTRING (Python 2 str), signed length
                try push(.string(try readLegacyString(length: try readLength(4, signed: true))))
            case 0x43:  // SHORT_BINBYTES
                try push(.bytes(try readBytes(try readLength(1))))
            case 0x42:  // BINBYTES
                try push(.bytes(try readBytes(try readLength(4))))
            case 0x8E:  // BINBYTES8
                try push(.bytes(try readBytes(try readLength(8))))
            case 0x29:  // EMPTY_TUPLE
                try push(makeTuple([]))
            case 0x74:  // TUPLE
                let items = try popToMark()
                try push(makeTuple(items))
            case 0x85:  // TUPLE1
                let items = try pop(count: 1)
                try push(makeTuple(items))
            case 0x86:  // TUPLE2
                let items = try pop(count: 2)
                try push(makeTuple(items))
            case 0x87:  // TUPLE3
                let items = try pop(count: 3)
                try push(makeTuple(items))
            case 0x5D:  // EMPTY_LIST
                try push(makeList([]))
            case 0x6C:  // LIST
                let items = try popToMark()
                try push(makeList(items))
            case 0x61:  // APPEND
                let item = try pop()
                try append([item], to: try top())
            case 0x65:  // APPENDS
                let items = try popToMark()
                try append(items, to: try top())
            case 0x7D:  // EMPTY_DICT
                try push(makeDict())
            case 0x64:  // DICT
                let items = try popToMark()
                let dict = makeDict()
                try setItems(items, in: dict)
                try push(dict)
            case 0x73:  // SETITEM
                let pair = try pop(count: 2)
                try setItems(pair, in: try top())
            case 0x75:  // SETITEMS
                let items = try popToMark()
                try setItems(items, in: try top())
            case 0x63:  // GLOBAL: "module\nname\n"
                let module = try readLine()
                let name = try readLine()
                try push(.global(try resolve(module: module, name: name)))
            case 0x93:  // STACK_GLOBAL
                let pair = try pop(count: 2)
                guard case .string(let module) = pair[0], case .string(let name) = pair[1] else {
                    throw malformed("STACK_GLOBAL needs two strings")
                }
                try push(.global(try resolve(module: module, name: name)))
            case 0x69:  // INST: names a class to instantiate, like GLOBAL + REDUCE
                let module = try readLine()
                let name = try readLine()
                _ = try resolve(module: module, name: name)
                throw unsupported("the INST opcode")
            case 0x52:  // REDUCE
                let arguments = try pop()
                let callable = try pop()
                try push(try reduce(callable, arguments))
            case 0x81:  // NEWOBJ: cls.__new__(cls, *args)
                let arguments = try pop()
                let type = try pop()
                guard type == .global(.orderedDict), graph.items(of: arguments) != nil else {
                    throw malformed("NEWOBJ of something other than OrderedDict")
                }
                try push(makeDict())
            case 0x62:  // BUILD: applies a state to the object below it
                _ = try pop()
                // An OrderedDict's state is its attribute dict (a state_dict's `_metadata`): not needed.
                guard case .dict = try top() else { throw malformed("BUILD on an object that is not a dict") }
            case 0x71:  // BINPUT
                try store(at: Int(try readByte()))
            case 0x72:  // LONG_BINPUT
                try store(at: try readLength(4))
            case 0x94:  // MEMOIZE
                try store(at: memo.count)
            case 0x68:  // BINGET
                try push(try fetch(Int(try readByte())))
            case 0x6A:  // LONG_BINGET
                try push(try fetch(try readLength(4)))
            case 0x51:  // BINPERSID
                try push(try persistentLoad(try pop()))
            default:
                position = opcodePosition
                if let name = Self.unsupportedOpcodes[opcode] {
                    throw unsupported("the pickle opcode \(name)")
                }
                throw malformed("unknown opcode 0x\(String(opcode, radix: 16, uppercase: true))")
            }
        }
    }

    /// Real pickle opcodes that a checkpoint does not need, named for the error message.
    private static let unsupportedOpcodes: [UInt8: String] = [
        0x49: "INT", 0x4C: "LONG", 0x46: "FLOAT", 0x53: "STRING", 0x56: "UNICODE", 0x50: "PERSID",
        0x67: "GET", 0x70: "PUT", 0x6F: "OBJ", 0x82: "EXT1", 0x83: "EXT2", 0x84: "EXT4", 0x8F: "EMPTY_SET",
        0x90: "ADDITEMS", 0x91: "FROZENSET", 0x92: "NEWOBJ_EX", 0x96: "BYTEARRAY8", 0x97: "NEXT_BUFFER",
        0x98: "READONLY_BUFFER",
    ]

    // MARK: - Globals, calls and persistent ids

    private func resolve(module: String, name: String) throws(CheckpointError) -> PickleGlobal {
        guard let global = PickleGlobal(module: module, name: name) else {
            throw .forbiddenGlobal(file, Self.printable(module) + "." + Self.printable(name))
        }
        return global
    }

    /// "Calls" an allowed callable: builds a container or records a tensor. Nothing runs.
    private mutating func reduce(
        _ callable: PickleValue, _ arguments: PickleValue
    ) throws(CheckpointError) -> PickleValue {
        guard case .tuple(let argumentsIndex) = arguments else { throw malformed("REDUCE arguments are not a tuple") }
        let args = graph.tuples[argumentsIndex]
        switch callable {
        case .global(.orderedDict):
            let dict = makeDict()
            if args.count == 1, let pairs = graph.items(of: args[0]) {
                for pair in pairs {
                    guard let keyValue = graph.items(of: pair), keyValue.count == 2 else {
                        throw malformed("OrderedDict items are not pairs")
                    }
                    try setItems(keyValue, in: dict)
                }
            } else if !args.isEmpty {
                throw malformed("OrderedDict called with unexpected arguments")
            }
            return dict
        case .global(.rebuildTensorV2):
            guard args.count == 6 || args.count == 7, case .storage(let storage) = args[0],
                case .int(let offset) = args[1], let shape = integers(args[2]), let strides = integers(args[3]),
                case .bool = args[4]
            else { throw malformed("_rebuild_tensor_v2 called with unexpected arguments") }
            guard let offset = Int(exactly: offset) else { throw malformed("a storage offset is out of range") }
            graph.tensors.append(TensorRecord(storage: storage, offset: offset, shape: shape, strides: strides))
            return .tensor(graph.tensors.count - 1)
        case .global(.rebuildParameter):
            guard args.count == 3, case .tensor = args[0], case .bool = args[1] else {
                throw malformed("_rebuild_parameter called with unexpected arguments")
            }
            return args[0]
        case .global(.storageType):
            throw malformed("REDUCE of a storage type")
        default:
            throw malformed("REDUCE of something that is not a known callable")
        }
    }

    /// Resolves `('storage', torch.XStorage, key, location, numel)` to a storage reference.
    private mutating func persistentLoad(_ id: PickleValue) throws(CheckpointError) -> PickleValue {
        guard let fields = graph.items(of: id), fields.count == 5, fields[0] == .string("storage"),
            case .global(.storageType(let type)) = fields[1], case .string(let key) = fields[2],
            case .string(let location) = fields[3], case .int(let numel) = fields[4]
        else { throw malformed("a persistent id is not ('storage', type, key, location, numel)") }
        guard !key.isEmpty, let count = Int(exactly: numel), count >= 0 else {
            throw malformed("a persistent id has an empty key or a negative size")
        }
        graph.storages.append(StorageReference(type: type, key: key, location: location, count: count))
        return .storage(graph.storages.count - 1)
    }

    /// The values of a tuple (or list) of integers that fit in `Int`.
    private func integers(_ value: PickleValue) -> [Int]? {
        guard let items = graph.items(of: value) else { return nil }
        var result: [Int] = []
        result.reserveCapacity(items.count)
        for item in items {
            guard case .int(let int) = item, let int = Int(exactly: int) else { return nil }
            result.append(int)
        }
        return result
    }

    // MARK: - Containers

    private mutating func makeTuple(_ items: [PickleValue]) throws(CheckpointError) -> PickleValue {
        try count(items.count)
        graph.tuples.append(items)
        return .tuple(graph.tuples.count - 1)
    }

    private mutating func makeList(_ items: [PickleValue]) throws(CheckpointError) -> PickleValue {
        try count(items.count)
        graph.lists.append(items)
        return .list(graph.lists.count - 1)
    }

    private mutating func makeDict() -> PickleValue {
        graph.dicts.append(PickleDict())
        return .dict(graph.dicts.count - 1)
    }

    private mutating func append(_ items: [PickleValue], to target: PickleValue) throws(CheckpointError) {
        guard case .list(let index) = target else { throw malformed("APPEND to something that is not a list") }
        try count(items.count)
        graph.lists[index].append(contentsOf: items)
    }

    /// Sets alternating keys and values in the dict `target`.
    private mutating func setItems(_ items: [PickleValue], in target: PickleValue) throws(CheckpointError) {
        guard case .dict(let index) = target else { throw malformed("SETITEM on something that is not a dict") }
        guard items.count % 2 == 0 else { throw malformed("SETITEMS with an odd number of values") }
        try count(items.count / 2)
        for pair in stride(from: 0, to: items.count, by: 2) {
            graph.dicts[index].set(items[pair], items[pair + 1])
        }
    }

    /// Counts items put into containers against the cap.
    private mutating func count(_ items: Int) throws(CheckpointError) {
        containerItems += items
        guard containerItems <= Self.maximumContainerItems else { throw malformed("too many container items") }
    }

    // MARK: - Stack and memo

    private mutating func push(_ value: PickleValue) throws(CheckpointError) {
        guard stack.count < Self.maximumStackDepth else { throw malformed("the stack grows too deep") }
        stack.append(value)
    }

    private mutating func pop() throws(CheckpointError) -> PickleValue {
        guard stack.count > (marks.last ?? 0), let value = stack.popLast() else {
            throw malformed("pop from an empty stack")
        }
        return value
    }

    /// The top `count` values, bottom first.
    private mutating func pop(count: Int) throws(CheckpointError) -> [PickleValue] {
        guard stack.count - (marks.last ?? 0) >= count else { throw malformed("pop from an empty stack") }
        let values = Array(stack.suffix(count))
        stack.removeLast(count)
        return values
    }

    private func top() throws(CheckpointError) -> PickleValue {
        guard stack.count > (marks.last ?? 0), let value = stack.last else {
            throw malformed("the stack is empty")
        }
        return value
    }

    /// The values pushed since the last MARK, bottom first; the mark is removed.
    private mutating func popToMark() throws(CheckpointError) -> [PickleValue] {
        guard let mark = marks.popLast() else { throw malformed("no MARK to pop to") }
        let values = Array(stack[mark...])
        stack.removeSubrange(mark...)
        return values
    }

    private mutating func store(at index: Int) throws(CheckpointError) {
        let value = try top()
        guard memo.count < Self.maximumMemoSize || memo[index] != nil else { throw malformed("the memo is too big") }
        memo[index] = value
    }

    private func fetch(_ index: Int) throws(CheckpointError) -> PickleValue {
        guard let value = memo[index] else { throw malformed("memo entry \(index) is read before it is written") }
        return value
    }

    // MARK: - Reading the input

    private mutating func readByte() throws(CheckpointError) -> UInt8 {
        guard position < bytes.count else { throw malformed("the pickle ends without STOP") }
        defer { position += 1 }
        return bytes[position]
    }

    private mutating func readBytes(_ count: Int) throws(CheckpointError) -> [UInt8] {
        guard count >= 0, count <= bytes.count - position else {
            throw malformed("a length of \(count) bytes runs past the end of the pickle")
        }
        defer { position += count }
        return Array(bytes[position..<(position + count)])
    }

    /// An unsigned little-endian integer of `size` bytes.
    private mutating func readLittleEndian(_ size: Int) throws(CheckpointError) -> UInt64 {
        try readBytes(size).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
    }

    /// A length field, which must fit in the rest of the input (so it can be used to read that many bytes).
    private mutating func readLength(_ size: Int, signed: Bool = false) throws(CheckpointError) -> Int {
        let raw = try readLittleEndian(size)
        let value: Int64 = signed ? Int64(Int32(bitPattern: UInt32(truncatingIfNeeded: raw))) : Int64(bitPattern: raw)
        guard value >= 0, value <= Int64(bytes.count) else {
            throw malformed("a length or index of \(raw) is larger than the pickle")
        }
        return Int(value)
    }

    /// A two's-complement little-endian integer (LONG1/LONG4); it must fit in 64 bits.
    private mutating func readLong(byteCount: Int) throws(CheckpointError) -> Int64 {
        let digits = try readBytes(byteCount)
        guard let last = digits.last else { return 0 }
        let negative = last & 0x80 != 0
        // Bytes beyond the eighth must only repeat the sign.
        for byte in digits.dropFirst(8) where byte != (negative ? 0xFF : 0x00) {
            throw unsupported("an integer wider than 64 bits")
        }
        var value: UInt64 = negative ? .max : 0
        for (index, byte) in digits.prefix(8).enumerated() {
            value &= ~(UInt64(0xFF) << (8 * index))
            value |= UInt64(byte) << (8 * index)
        }
        let result = Int64(bitPattern: value)
        guard digits.count <= 8 || (result < 0) == negative else { throw unsupported("an integer wider than 64 bits") }
        return result
    }

    private mutating func readUTF8(length: Int) throws(CheckpointError) -> String {
        let raw = try readBytes(length)
        guard let string = String(validating: raw, as: UTF8.self) else { throw malformed("a string is not UTF-8") }
        return string
    }

    /// Python 2 `str`: UTF-8 when it is, Latin-1 otherwise (it is only ever a name or a key).
    private mutating func readLegacyString(length: Int) throws(CheckpointError) -> String {
        let raw = try readBytes(length)
        return String(validating: raw, as: UTF8.self) ?? String(raw.map { Character(Unicode.Scalar($0)) })
    }

    /// A newline-terminated UTF-8 line (GLOBAL's module and name).
    private mutating func readLine() throws(CheckpointError) -> String {
        let limit = min(bytes.count, position + Self.maximumGlobalNameLength)
        guard let newline = bytes[position..<limit].firstIndex(of: 0x0A) else {
            throw malformed("a global's name is not terminated")
        }
        let line = try readUTF8(length: newline - position)
        position += 1
        return line
    }

    // MARK: - Errors

    private func malformed(_ problem: String) -> CheckpointError {
        .corrupt(file, "its data.pkl is not a valid checkpoint pickle (\(problem), at byte \(position))")
    }

    private func unsupported(_ what: String) -> CheckpointError {
        .unsupported(file, "its data.pkl uses \(what), which checkpoints do not need", fix: CheckpointError.resaveFix)
    }

    /// A name from the file, shortened and with control characters escaped, fit for an error message.
    static func printable(_ text: String) -> String {
        let escaped = text.unicodeScalars.prefix(200).map { scalar in
            scalar.properties.generalCategory == .control ? scalar.escaped(asASCII: true) : String(scalar)
        }
        return escaped.joined() + (text.unicodeScalars.count > 200 ? "…" : "")
    }
}
