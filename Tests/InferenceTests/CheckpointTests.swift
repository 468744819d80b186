import Foundation
import Testing

@testable import Inference

/// Loading CS-MIL checkpoints without PyTorch and without running anything in them. Reference values come
/// from PyTorch itself: tools/make_checkpoint_fixtures.py wrote the files and `expected.json`.
@Suite("Checkpoints")
struct CheckpointTests {
    // MARK: - Every fixture equals PyTorch's values

    @Test(
        "every fixture loads to exactly the values PyTorch gives after .contiguous().float()",
        arguments: [
            "head.pth", "head_module.pth", "head.safetensors", "simsiam.pth", "torchvision_plain.pth", "dtypes.pth",
            "dtypes.safetensors", "noncontiguous.pth", "nested.pth", "nested_p4.pth", "tiny.pth", "tiny_zip64.pth",
        ])
    func fixtureMatchesPyTorch(_ file: String) throws {
        let loaded = try Checkpoint.load(path: CheckpointFixtures.path(file))
        let expected = try CheckpointFixtures.expected().tensors(of: file)
        #expect(loaded.names == expected.map(\.name))
        for tensor in expected {
            let actual = try #require(loaded[tensor.name], "\(file) lacks \(tensor.name)")
            #expect(actual.shape == tensor.shape, "\(file): \(tensor.name)")
            #expect(actual.sourceType.rawValue == tensor.dtype, "\(file): \(tensor.name)")
            #expect(actual.values.map(\.bitPattern) == tensor.bits, "\(file): \(tensor.name) values differ")
        }
    }

    @Test("the {'state_dict': …} wrapper and DataParallel's module. prefixes are removed; legacy keys are ignored")
    func unwrapsStateDictAndModulePrefix() throws {
        let plain = try Checkpoint.load(path: CheckpointFixtures.path("head.pth"))
        let parallel = try Checkpoint.load(path: CheckpointFixtures.path("head_module.pth"))
        #expect(CheckpointFixtures.bits(parallel) == CheckpointFixtures.bits(plain))
        #expect(plain.names.first == "embedding_net.0.weight")
        #expect(!parallel.names.contains { $0.hasPrefix("module.") || $0 == "epoch" || $0.hasPrefix("arch") })
    }

    @Test("a checkpoint's optimizer state and epoch are ignored: only its state_dict is loaded")
    func ignoresOptimizerState() throws {
        let simsiam = try Checkpoint.load(path: CheckpointFixtures.path("simsiam.pth"))
        #expect(
            simsiam.names.allSatisfy {
                $0.hasPrefix("backbone.") || $0.hasPrefix("projector.") || $0.hasPrefix("predictor.")
            })
        #expect(simsiam["backbone.bn1.num_batches_tracked"]?.values == [1234])
        #expect(simsiam["backbone.bn1.num_batches_tracked"]?.shape == [])
        #expect(simsiam["backbone.bn1.num_batches_tracked"]?.sourceType == .int64)
    }

    @Test("loadBackbone keeps backbone.* without the prefix and drops projector.*, predictor.* and fc.*")
    func backbonePrefixIsStripped() throws {
        let path = CheckpointFixtures.path("simsiam.pth")
        let backbone = try Checkpoint.loadBackbone(path: path)
        let all = try Checkpoint.load(path: path)
        let expected = try CheckpointFixtures.expected().backbones["simsiam.pth"]
        #expect(backbone.names == expected)
        #expect(backbone.names.contains("conv1.weight") && !backbone.names.contains("fc.weight"))
        for name in backbone.names {
            #expect(backbone[name] == all["backbone." + name])
        }
    }

    @Test("loadBackbone uses plain torchvision names (a bare OrderedDict) as they are, minus fc.*")
    func plainTorchvisionBackbone() throws {
        let path = CheckpointFixtures.path("torchvision_plain.pth")
        let backbone = try Checkpoint.loadBackbone(path: path)
        let expected = try CheckpointFixtures.expected().backbones["torchvision_plain.pth"]
        #expect(backbone.names == expected)
        #expect(try Checkpoint.load(path: path).names.contains("fc.weight"))
    }

    @Test("views load row-major: transposed, stepped, offset, zero-stride expanded, 0-d and empty tensors")
    func nonContiguousTensors() throws {
        let views = try Checkpoint.load(path: CheckpointFixtures.path("noncontiguous.pth"))
        // Independent of expected.json: these are small enough to write down.
        #expect(views["transposed"]?.shape == [4, 3])
        #expect(views["transposed"]?.values == [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11])
        #expect(views["expanded"]?.values == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
        #expect(views["broadcast_scalar"]?.values == [2.5, 2.5, 2.5, 2.5, 2.5, 2.5])
        #expect(views["offset"]?.values == (7..<19).map { Float($0) * 0.5 - 7 })
        #expect(views["column"]?.values == [2, 6, 10])
        #expect(views["scalar"]?.shape == [] && views["scalar"]?.values == [3.25])
        #expect(views["empty"]?.shape == [0, 3] && views["empty"]?.values == [])
        #expect(views["int_stepped"]?.values == [1, 3, 11, 13] && views["int_stepped"]?.sourceType == .int64)
    }

    @Test("half to float conversion is exact for all 65,536 bit patterns")
    func halfConversionIsExact() {
        var mismatches: [String] = []
        for bits in 0...UInt16.max {
            let reference = Float(Float16(bitPattern: bits))
            let converted = Tensor.floatFromHalf(bits)
            let same = reference.isNaN ? converted.isNaN : converted.bitPattern == reference.bitPattern
            if !same { mismatches.append("0x" + String(bits, radix: 16)) }
        }
        #expect(mismatches.isEmpty, "half bit patterns converted wrongly: \(mismatches.prefix(10))")
    }

    @Test("nested lists, tuples and dicts: tensors get dotted names, plain values decode, protocols 2 and 4 agree")
    func nestedContainers() throws {
        let nested = try Checkpoint.load(path: CheckpointFixtures.path("nested.pth"))
        #expect(nested.names == ["a.0", "a.1.0", "a.2.b", "c", "7"])
        #expect(nested["a.0"] == nested["c"])  // one tensor, referenced twice through the memo
        let protocol4 = try Checkpoint.load(path: CheckpointFixtures.path("nested_p4.pth"))
        #expect(CheckpointFixtures.bits(protocol4) == CheckpointFixtures.bits(nested))

        for file in ["nested.pth", "nested_p4.pth"] {
            let data = try Data(contentsOf: CheckpointFixtures.url(file))
            let graph = try TorchCheckpoint.open(data, file: file).graph
            let meta = try #require(graph.lookup("meta", in: graph.root))
            #expect(graph.lookup("epoch", in: meta) == .int(3))
            #expect(graph.lookup("lr", in: meta) == .float(0.1))
            #expect(graph.lookup("name", in: meta) == .string("csmil"))
            #expect(graph.lookup("big", in: meta) == .int(1 << 40))
            #expect(graph.lookup("neg", in: meta) == .int(-5))
            #expect(graph.lookup("flags", in: meta).flatMap(graph.items(of:)) == [.bool(true), .bool(false), .none])
            #expect(graph.lookup("tuple", in: meta).flatMap(graph.items(of:)) == [.int(1), .float(2.5), .string("z")])
            let empty = try #require(graph.lookup("empty", in: meta))
            guard case .dict(let index) = empty else { Issue.record("meta.empty is not a dict"); continue }
            #expect(graph.dicts[index].count == 0)
        }
    }

    // MARK: - Hostile files

    @Test(
        "a pickle that calls a Python function is refused, naming the global, and nothing runs",
        arguments: ["malicious.pth", "malicious_eval.pth"])
    func maliciousPickleIsRefused(_ file: String) throws {
        let hostile = try #require(try CheckpointFixtures.expected().malicious.first { $0.file == file })
        try? FileManager.default.removeItem(atPath: hostile.marker)
        let path = CheckpointFixtures.path(file)
        let error = try #require(CheckpointFixtures.loadError(path))
        #expect(error.code == .forbiddenGlobal)
        #expect(error.file == path)
        #expect(error.message.contains("the global \(hostile.global)"))
        #expect(error.description.contains(path) && error.message.contains("nothing in it ran"))
        #expect(!error.fix.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: hostile.marker), "the payload ran: \(hostile.marker) exists")
    }

    @Test(
        "globals outside the allow-list are refused whichever opcode names them",
        arguments: [
            (
                "GLOBAL", PickleBytes.proto + PickleBytes.global("__builtin__", "getattr") + PickleBytes.stop,
                "__builtin__.getattr"
            ),
            (
                "STACK_GLOBAL",
                PickleBytes.proto + PickleBytes.string("os") + PickleBytes.string("system") + [0x93]
                    + PickleBytes.stop, "os.system"
            ),
            (
                "INST", PickleBytes.proto + [0x28] + [0x69] + Array("posix\nsystem\n".utf8) + PickleBytes.stop,
                "posix.system"
            ),
            (
                "GLOBAL torch.load", PickleBytes.proto + PickleBytes.global("torch", "load") + PickleBytes.stop,
                "torch.load"
            ),
        ])
    func forbiddenGlobals(_ opcode: String, _ pickle: [UInt8], _ global: String) {
        let error = CheckpointFixtures.unpickleError(pickle)
        #expect(error?.code == .forbiddenGlobal, "\(opcode)")
        #expect(error?.message.contains("the global \(global);") == true, "\(opcode): \(String(describing: error))")
    }

    @Test(
        "the pickle machine refuses calls, BUILDs and opcodes a checkpoint does not need",
        arguments: [
            // REDUCE of a storage type, BUILD on a list, APPEND to a dict, SETITEM on a list.
            PickleBytes.proto + PickleBytes.global("torch", "FloatStorage") + [0x29, 0x52] + PickleBytes.stop,
            PickleBytes.proto + [0x5D, 0x4E, 0x62] + PickleBytes.stop,
            PickleBytes.proto + [0x7D, 0x4E, 0x61] + PickleBytes.stop,
            PickleBytes.proto + [0x5D, 0x4E, 0x4E, 0x73] + PickleBytes.stop,
            // NEWOBJ of a tensor constructor, a persistent id that is not a storage tuple.
            PickleBytes.proto + PickleBytes.global("torch._utils", "_rebuild_tensor_v2") + [0x29, 0x81]
                + PickleBytes.stop,
            PickleBytes.proto + PickleBytes.string("storage") + [0x51] + PickleBytes.stop,
            // _rebuild_tensor_v2 with the wrong arguments.
            PickleBytes.proto + PickleBytes.global("torch._utils", "_rebuild_tensor_v2") + [0x4E, 0x85, 0x52]
                + PickleBytes.stop,
            // Unknown and unneeded opcodes, a missing STOP, a memo read before write, an unbalanced stack.
            PickleBytes.proto + [0xFF], PickleBytes.proto + Array("I1\n.".utf8), PickleBytes.proto + [0x4E],
            PickleBytes.proto + [0x68, 0x05] + PickleBytes.stop, PickleBytes.proto + [0x30] + PickleBytes.stop,
            PickleBytes.proto + [0x74] + PickleBytes.stop, PickleBytes.proto + [0x58, 0xFF, 0xFF, 0xFF, 0x7F],
            PickleBytes.proto + [0x8A, 0x09] + [UInt8](repeating: 0x7F, count: 9) + PickleBytes.stop,
            [0x80, 0x06] + PickleBytes.stop,
        ])
    func unsupportedPickles(_ pickle: [UInt8]) {
        let error = CheckpointFixtures.unpickleError(pickle)
        #expect(error?.code == .corrupt || error?.code == .unsupported, "\(String(describing: error))")
    }

    @Test("deeply nested, self-referencing and exponentially shared containers are refused, not overflowed")
    func hostileContainerShapes() throws {
        // 200,000 nested one-element tuples (NONE, TUPLE1 × 200,000).
        let deep = PickleBytes.proto + [0x4E] + [UInt8](repeating: 0x85, count: 200_000) + PickleBytes.stop
        // A list that contains itself (EMPTY_LIST, BINPUT 0, BINGET 0, APPEND).
        let loop = PickleBytes.proto + [0x5D, 0x71, 0x00, 0x68, 0x00, 0x61] + PickleBytes.stop
        // 40 levels of t = (t, t) (NONE, DUP, then TUPLE2, DUP × 40, POP): 2⁴⁰ paths in 80 bytes.
        let doubling = (0..<40).flatMap { _ in [0x86, 0x32] as [UInt8] }
        let shared = PickleBytes.proto + [0x4E, 0x32] + doubling + [0x30] + PickleBytes.stop
        for pickle in [deep, loop, shared] {
            let archive = TestZip.make([("archive/data.pkl", pickle)])
            let error = try #require(CheckpointFixtures.loadError(archive))
            #expect(error.code == .corrupt, "\(error)")
        }
    }

    // MARK: - Tensors that do not fit their storage

    @Test("a hand-built checkpoint with a valid view loads (the builder used below is sound)")
    func craftedCheckpointLoads() throws {
        let archive = TestZip.tensorArchive(count: 6, offset: 1, shape: [2, 2], strides: [1, 2])
        let loaded = try Checkpoint.load(TestZip.data(archive), file: "crafted.pth")
        #expect(loaded["w"]?.values == [1, 3, 2, 4])
    }

    @Test(
        "offsets, strides and sizes that leave the storage, or ask for too much, are refused",
        arguments: [
            (6, 0, [2, 3], [3, 2]), (6, 5, [2], [1]), (6, 0, [7], [1]), (6, 7, [0], [1]), (6, 0, [2, 2], [-1, 1]),
            (6, 0, [1 << 20, 1 << 20], [0, 0]), (6, 0, [2, 2], [1]), (6, 0, [2, Int(Int32.max)], [1, Int(Int32.max)]),
        ] as [(Int, Int, [Int], [Int])])
    func viewsOutsideTheirStorage(_ count: Int, _ offset: Int, _ shape: [Int], _ strides: [Int]) throws {
        let archive = TestZip.tensorArchive(count: count, offset: offset, shape: shape, strides: strides)
        let error = try #require(CheckpointFixtures.loadError(archive))
        #expect(error.code == .corrupt)
        #expect(error.message.contains("tensor w"), "\(error)")
    }

    @Test("a storage record of the wrong size, or a missing one, is refused")
    func storageRecordMismatch() throws {
        let short = TestZip.tensorArchive(count: 6, offset: 0, shape: [6], strides: [1], storageBytes: 20)
        #expect(CheckpointFixtures.loadError(short)?.code == .corrupt)
        let pickle = TestZip.tensorPickle(count: 6, offset: 0, shape: [6], strides: [1])
        let missing = TestZip.make([("archive/data.pkl", pickle)])
        let error = try #require(CheckpointFixtures.loadError(missing))
        #expect(error.code == .corrupt && error.message.contains("archive/data/0"))
    }

    // MARK: - Damaged and foreign files

    @Test(
        "every prefix of a small archive gives an error, never a crash",
        arguments: ["tiny.pth", "tiny_zip64.pth", "dtypes.safetensors"])
    func everyTruncationFails(_ file: String) throws {
        let bytes = try CheckpointFixtures.bytes(file)
        for length in 0..<bytes.count {
            #expect(CheckpointFixtures.loadError(Array(bytes.prefix(length))) != nil, "\(file) cut at \(length)")
        }
    }

    @Test("a large archive cut at several points gives clear errors")
    func truncatedHead() throws {
        let bytes = try CheckpointFixtures.bytes("head.pth")
        let count = bytes.count
        for length in [0, 3, 4, 21, 22, 100, count / 3, count / 2, count - 200, count - 98, count - 23, count - 1] {
            let path = try CheckpointFixtures.temporaryFile(Array(bytes.prefix(length)))
            defer { try? FileManager.default.removeItem(atPath: path) }
            let error = try #require(CheckpointFixtures.loadError(path), "cut at \(length)")
            #expect([.corrupt, .notACheckpoint].contains(error.code), "cut at \(length): \(error)")
            #expect(error.description.contains(path))
        }
    }

    @Test("damage to the central directory and end records is reported as corrupt")
    func corruptCentralDirectory() throws {
        let bytes = try CheckpointFixtures.bytes("tiny.pth")
        let directory = try #require(TestZip.centralDirectoryOffset(bytes))
        func patched(_ offset: Int, _ value: UInt32, width: Int = 4) -> [UInt8] {
            var copy = bytes
            for index in 0..<width { copy[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * index)) }
            return copy
        }
        let damaged = [
            patched(directory, 0x1234_5678),  // signature
            patched(directory + 42, 0x7FFF_FFF0),  // local header offset
            patched(directory + 42, 0x10),  // local header offset inside another entry
            patched(directory + 20, 0x7FFF_FFF0),  // compressed size
            patched(directory + 24, 0x10),  // uncompressed size differs from the stored size
            patched(directory + 28, 0xFFFF, width: 2),  // name length
            patched(directory + 16, 0xDEAD_BEEF),  // CRC-32 of data.pkl
            patched(bytes.count - 6, 0x7FFF_FFF0),  // classic end record: directory offset
            patched(bytes.count - 22 - 20 - 56 + 48, 0x7FFF_FFF0),  // zip64 end record: directory offset
            patched(bytes.count - 22 - 20 - 56 + 32, 0x00FF_FFFF),  // zip64 end record: entry count
        ]
        for (index, archive) in damaged.enumerated() {
            let error = CheckpointFixtures.loadError(archive)
            #expect(error?.code == .corrupt, "damage #\(index): \(String(describing: error))")
        }
        // And random damage anywhere in the directory and end records: an error or a load, never a crash.
        var random = SplitMix64(seed: 7)
        for _ in 0..<500 {
            var copy = bytes
            for _ in 0..<random.next(below: 4) + 1 {
                copy[directory + random.next(below: bytes.count - directory)] = UInt8(random.next(below: 256))
            }
            _ = CheckpointFixtures.loadError(copy)
        }
    }

    @Test("zip archives that are not one little-endian torch.save archive are told apart")
    func foreignZipArchives() throws {
        let pickle = TestZip.tensorPickle(count: 1, offset: 0, shape: [], strides: [])
        let storage = PickleBytes.littleEndian(Float(1).bitPattern)
        let noPickle = TestZip.make([("photos/cat.jpg", [0xFF, 0xD8])])
        #expect(CheckpointFixtures.loadError(noPickle)?.code == .notACheckpoint)
        let duplicate = TestZip.make([("a/data.pkl", pickle), ("a/data/0", storage), ("a/data.pkl", pickle)])
        #expect(CheckpointFixtures.loadError(duplicate)?.code == .corrupt)
        let twoPrefixes = TestZip.make([("a/data.pkl", pickle), ("a/data/0", storage), ("b/data.pkl", pickle)])
        #expect(CheckpointFixtures.loadError(twoPrefixes)?.code == .corrupt)
        let single = TestZip.make([("a/data.pkl", pickle), ("a/data/0", storage)])
        #expect(try Checkpoint.load(TestZip.data(single), file: "single.pth")["w"]?.values == [1])
        // PyTorch ≥ 2.1 writes a byteorder record: "little" loads, "big" is refused.
        let little = TestZip.make([
            ("a/data.pkl", pickle), ("a/byteorder", Array("little".utf8)), ("a/data/0", storage),
        ])
        #expect(try Checkpoint.load(TestZip.data(little), file: "little.pth")["w"]?.values == [1])
        let big = TestZip.make([("a/data.pkl", pickle), ("a/byteorder", Array("big".utf8)), ("a/data/0", storage)])
        #expect(CheckpointFixtures.loadError(big)?.code == .unsupported)
    }

    @Test("a flipped byte in data.pkl or in a storage fails the CRC-32 check")
    func checksumMismatch() throws {
        let bytes = try CheckpointFixtures.bytes("tiny.pth")
        let archive = try ZipArchive(data: Data(bytes), file: "tiny.pth")
        for name in ["tiny/data.pkl", "tiny/data/1"] {
            let entry = try #require(archive.entry(named: name))
            var copy = bytes
            copy[entry.dataRange.lowerBound + entry.dataRange.count / 2] ^= 0x01
            let error = try #require(CheckpointFixtures.loadError(copy))
            #expect(error.code == .corrupt && error.message.contains("CRC-32"), "\(error)")
            #expect(error.description.contains(name), "\(error)")
        }
    }

    @Test("a zip whose entries are deflated is refused as unsupported compression")
    func deflatedEntry() throws {
        let error = try #require(CheckpointFixtures.loadError(CheckpointFixtures.path("tiny_deflated.pth")))
        #expect(error.code == .unsupported)
        #expect(error.message.contains("compressed (deflate)") && error.message.contains("tiny/data.pkl"))
    }

    @Test("empty, random, legacy-format, missing, directory and device paths give distinct clear errors")
    func foreignFiles() throws {
        let empty = try CheckpointFixtures.temporaryFile([])
        var random = SplitMix64(seed: 3)
        // Random bytes, except that the first is not a pickle's 0x80 (that would be a legacy file).
        let noise = try CheckpointFixtures.temporaryFile(
            [0x13] + (1..<4096).map { _ in UInt8(random.next(below: 256)) })
        let text = try CheckpointFixtures.temporaryFile(Array("model weights go here\n".utf8))
        defer { for path in [empty, noise, text] { try? FileManager.default.removeItem(atPath: path) } }

        #expect(CheckpointFixtures.loadError(empty)?.code == .notACheckpoint)
        #expect(CheckpointFixtures.loadError(noise)?.code == .notACheckpoint)
        #expect(CheckpointFixtures.loadError(text)?.code == .notACheckpoint)
        let legacy = CheckpointFixtures.loadError(CheckpointFixtures.path("tiny_legacy.pth"))
        #expect(legacy?.code == .unsupported && legacy?.message.contains("pre-1.6") == true)
        let missing = CheckpointFixtures.loadError(CheckpointFixtures.path("no-such-file.pth"))
        #expect(missing?.code == .unreadable && missing?.description.contains("no-such-file.pth") == true)
        #expect(CheckpointFixtures.loadError(NSTemporaryDirectory())?.code == .unreadable)
        #expect(CheckpointFixtures.loadError("/dev/null")?.code == .unreadable)  // a device: never read
    }

    @Test("fuzzing data.pkl: 2,000 seeded mutations each load or throw, never crash or hang", .timeLimit(.minutes(2)))
    func fuzzedPickles() throws {
        let bytes = try CheckpointFixtures.bytes("nested.pth")
        let records = try TestZip.records(bytes)
        let pickleIndex = try #require(records.firstIndex { $0.name.hasSuffix("/data.pkl") })
        let original = records[pickleIndex].data
        var random = SplitMix64(seed: 2024)
        var loaded = 0
        for _ in 0..<2000 {
            var pickle = original
            for _ in 0..<random.next(below: 4) + 1 {
                let at = random.next(below: pickle.count)
                switch random.next(below: 5) {
                case 0: pickle[at] = UInt8(random.next(below: 256))
                case 1: pickle[at] ^= UInt8(1 << random.next(below: 8))
                case 2: pickle.insert(UInt8(random.next(below: 256)), at: at)
                case 3: pickle.remove(at: at)
                default: pickle.removeLast(random.next(below: min(16, pickle.count)))
                }
                if pickle.isEmpty { pickle = [0x2E] }
            }
            var mutated = records
            mutated[pickleIndex].data = pickle
            if (try? Checkpoint.load(TestZip.data(TestZip.make(mutated.map { ($0.name, $0.data) })), file: "fuzz"))
                != nil
            {
                loaded += 1
            }
        }
        // Some mutations keep the pickle valid (a changed key or value), most reach the error paths.
        #expect(loaded > 0 && loaded < 2000)
    }

    // MARK: - Shape checks

    @Test("check accepts the CS-MIL head's shapes and names every missing tensor and wrong shape")
    func shapeCheck() throws {
        let path = CheckpointFixtures.path("head.pth")
        let head = try Checkpoint.load(path: path)
        let expected: [(name: String, shape: [Int])] = [
            ("embedding_net.0.weight", [64, 16, 1, 1]), ("embedding_net.0.bias", [64]),
            ("res_attention.0.weight", [32, 64, 1, 1]), ("res_attention.0.bias", [32]),
            ("res_attention.2.weight", [1, 32, 1, 1]), ("res_attention.2.bias", [1]),
            ("attention.0.weight", [32, 64]), ("attention.0.bias", [32]), ("attention.2.weight", [1, 32]),
            ("attention.2.bias", [1]), ("fc6.0.weight", [32, 64]), ("fc6.0.bias", [32]), ("fc6.3.weight", [1, 32]),
            ("fc6.3.bias", [1]),
        ]
        try Checkpoint.check(head, expected: expected, file: path)

        var missing = expected
        missing.append(("fc6.4.weight", [1, 1]))
        #expect(throws: CheckpointError.self) { try Checkpoint.check(head, expected: missing, file: path) }
        let missingError = try #require(CheckpointFixtures.checkError(head, missing, path))
        #expect(missingError.code == .missingTensor && missingError.message.contains("fc6.4.weight"))
        #expect(missingError.message.contains("[1, 1]") && missingError.file == path)

        var wrong = expected
        wrong[0].shape = [64, 2048, 1, 1]
        let wrongError = try #require(CheckpointFixtures.checkError(head, wrong, path))
        #expect(wrongError.code == .wrongShape && wrongError.message.contains("embedding_net.0.weight"))
        #expect(wrongError.message.contains("[64, 16, 1, 1]") && wrongError.message.contains("[64, 2048, 1, 1]"))
        #expect(wrongError.description.contains(wrongError.fix))
    }

    // MARK: - Safetensors

    @Test("safetensors files load to the same tensors as the .pth files")
    func safetensorsEqualPth() throws {
        let pth = try Checkpoint.load(path: CheckpointFixtures.path("head.pth"))
        let safetensors = try Checkpoint.load(path: CheckpointFixtures.path("head.safetensors"))
        #expect(CheckpointFixtures.bits(safetensors) == CheckpointFixtures.bits(pth))
        let dtypes = try Checkpoint.load(path: CheckpointFixtures.path("dtypes.safetensors"))
        let dtypesPth = try Checkpoint.load(path: CheckpointFixtures.path("dtypes.pth"))
        #expect(CheckpointFixtures.bits(dtypes) == CheckpointFixtures.bits(dtypesPth))
    }

    @Test(
        "safetensors headers with bad offsets, sizes, dtypes or lengths are refused",
        arguments: [
            (#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,80]}}"#, 8, CheckpointError.Code.corrupt),
            (#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}}"#, 8, .corrupt),
            (#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, 8, .corrupt),
            (#"{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, 8, .corrupt),
            (#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#, 8, .corrupt),
            (#"{"w":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}}"#, 8, .unsupported),
            (#"{"w":{"dtype":"F32","shape":[2]}}"#, 8, .corrupt),
            (#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#, 8, .corrupt),
            (#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, 4, .corrupt),
        ] as [(String, Int, CheckpointError.Code)])
    func badSafetensors(_ header: String, _ dataBytes: Int, _ code: CheckpointError.Code) throws {
        let valid = TestZip.safetensors(#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, dataBytes: 8)
        #expect(try Checkpoint.load(TestZip.data(valid), file: "valid.safetensors")["w"]?.values == [0, 0])
        let error = CheckpointFixtures.loadError(TestZip.safetensors(header, dataBytes: dataBytes))
        #expect(error?.code == code, "\(String(describing: error))")
    }

    @Test("a safetensors header length beyond 100 MB, or beyond the file, is refused before reading it")
    func hugeSafetensorsHeader() throws {
        for length in [UInt64(1) << 40, UInt64.max, 100_000_001, 64] {
            let bytes = (0..<8).map { UInt8(truncatingIfNeeded: length >> (8 * $0)) } + Array(#"{"a":1}"#.utf8)
            let error = CheckpointFixtures.loadError(bytes)
            #expect(
                error?.code == .corrupt && error?.message.contains("header") == true, "\(String(describing: error))")
        }
    }
}

// MARK: - Fixtures and helpers

/// The checkpoint fixtures and the values PyTorch gave for them.
enum CheckpointFixtures {
    struct Expectations: Decodable {
        struct ExpectedTensor: Decodable {
            var name: String
            var shape: [Int]
            var dtype: String
            var f32le: String

            /// The float32 bit patterns of the values, row-major.
            var bits: [UInt32] {
                let raw = [UInt8](Data(base64Encoded: f32le) ?? Data())
                return stride(from: 0, to: raw.count, by: 4).map { index in
                    (0..<4).reduce(UInt32(0)) { $0 | UInt32(raw[index + $1]) << (8 * $1) }
                }
            }
        }

        struct File: Decodable {
            var tensors: [ExpectedTensor]?
            var sameAs: String?

            enum CodingKeys: String, CodingKey {
                case tensors
                case sameAs = "same_as"
            }
        }

        struct Hostile: Decodable {
            var file: String
            var global: String
            var marker: String
        }

        var files: [String: File]
        var backbones: [String: [String]]
        var malicious: [Hostile]

        func tensors(of file: String) throws -> [ExpectedTensor] {
            let entry = try #require(files[file], "expected.json has no entry for \(file)")
            if let other = entry.sameAs { return try tensors(of: other) }
            return try #require(entry.tensors)
        }
    }

    static func url(_ name: String) -> URL { Fixtures.url("checkpoints").appendingPathComponent(name) }
    static func path(_ name: String) -> String { url(name).path }
    static func bytes(_ name: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: url(name))) }

    static func expected() throws -> Expectations {
        try JSONDecoder().decode(Expectations.self, from: Data(contentsOf: url("expected.json")))
    }

    /// A state dict as comparable bits: NaN equals NaN and -0 differs from +0, unlike `Float ==`.
    static func bits(_ dict: StateDict) -> [String] {
        dict.names.map { name in
            guard let tensor = dict[name] else { return name + ": missing" }
            let values = tensor.values.map { String($0.bitPattern, radix: 16) }.joined(separator: ",")
            return "\(name) \(tensor.shape) \(tensor.sourceType): \(values)"
        }
    }

    /// The error loading `path` gives, or nil if it loads.
    static func loadError(_ path: String) -> CheckpointError? {
        do {
            _ = try Checkpoint.load(path: path)
            return nil
        } catch {
            return error
        }
    }

    /// The error loading these bytes gives, or nil if they load.
    static func loadError(_ bytes: [UInt8]) -> CheckpointError? {
        do {
            _ = try Checkpoint.load(Data(bytes), file: "test.pth")
            return nil
        } catch {
            return error
        }
    }

    /// The error unpickling these bytes gives, or nil if they unpickle.
    static func unpickleError(_ pickle: [UInt8]) -> CheckpointError? {
        do {
            _ = try Unpickler.unpickle(pickle, file: "test.pth")
            return nil
        } catch {
            return error
        }
    }

    static func checkError(
        _ dict: StateDict, _ expected: [(name: String, shape: [Int])], _ file: String
    ) -> CheckpointError? {
        do {
            try Checkpoint.check(dict, expected: expected, file: file)
            return nil
        } catch {
            return error
        }
    }

    /// Writes `bytes` to a new file in the temporary directory and returns its path.
    static func temporaryFile(_ bytes: [UInt8]) throws -> String {
        let path = NSTemporaryDirectory() + "csmil-checkpoint-test-\(UUID().uuidString).pth"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }
}

/// Pieces of protocol-2 pickles, for hand-built test pickles.
enum PickleBytes {
    static let proto: [UInt8] = [0x80, 0x02]
    static let stop: [UInt8] = [0x2E]

    static func global(_ module: String, _ name: String) -> [UInt8] { [0x63] + Array("\(module)\n\(name)\n".utf8) }

    static func string(_ text: String) -> [UInt8] {
        let utf8 = Array(text.utf8)
        return [0x58] + littleEndian(UInt32(utf8.count)) + utf8
    }

    static func int(_ value: Int) -> [UInt8] { [0x4A] + littleEndian(UInt32(truncatingIfNeeded: value)) }

    static func tuple(_ items: [[UInt8]]) -> [UInt8] { [0x28] + items.flatMap { $0 } + [0x74] }

    static func littleEndian(_ value: UInt32) -> [UInt8] {
        (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
    }
}

/// Builds small stored zip archives (and safetensors files) in memory, as torch.save would lay them out.
enum TestZip {
    /// A zip archive of stored entries.
    static func make(_ records: [(String, [UInt8])]) -> [UInt8] {
        var out: [UInt8] = []
        var central: [UInt8] = []
        func u16(_ value: Int) -> [UInt8] { [UInt8(value & 0xFF), UInt8((value >> 8) & 0xFF)] }
        func u32(_ value: UInt32) -> [UInt8] { PickleBytes.littleEndian(value) }
        for (name, data) in records {
            let offset = UInt32(out.count)
            let crc = data.withUnsafeBytes { CRC32.checksum($0) }
            let encoded = Array(name.utf8)
            out += u32(0x0403_4B50) + u16(20) + u16(0) + u16(0) + u16(0) + u16(0x21) + u32(crc)
            out += u32(UInt32(data.count)) + u32(UInt32(data.count)) + u16(encoded.count) + u16(0) + encoded + data
            central += u32(0x0201_4B50) + u16(20) + u16(20) + u16(0) + u16(0) + u16(0) + u16(0x21) + u32(crc)
            central += u32(UInt32(data.count)) + u32(UInt32(data.count)) + u16(encoded.count) + u16(0) + u16(0)
            central += u16(0) + u16(0) + u32(0) + u32(offset) + encoded
        }
        let directoryOffset = UInt32(out.count)
        out += central
        out += u32(0x0605_4B50) + u16(0) + u16(0) + u16(records.count) + u16(records.count)
        out += u32(UInt32(central.count)) + u32(directoryOffset) + u16(0)
        return out
    }

    static func data(_ bytes: [UInt8]) -> Data { Data(bytes) }

    /// The pickle of `{'w': <float32 view of storage '0' with this layout>}`.
    static func tensorPickle(count: Int, offset: Int, shape: [Int], strides: [Int]) -> [UInt8] {
        let storage = PickleBytes.tuple([
            PickleBytes.string("storage"), PickleBytes.global("torch", "FloatStorage"), PickleBytes.string("0"),
            PickleBytes.string("cpu"), PickleBytes.int(count),
        ])
        let hooks = PickleBytes.global("collections", "OrderedDict") + [0x29, 0x52]
        let arguments = PickleBytes.tuple([
            storage + [0x51], PickleBytes.int(offset), PickleBytes.tuple(shape.map(PickleBytes.int)),
            PickleBytes.tuple(strides.map(PickleBytes.int)), [0x89], hooks,
        ])
        let tensor = PickleBytes.global("torch._utils", "_rebuild_tensor_v2") + arguments + [0x52]
        return PickleBytes.proto + [0x7D] + PickleBytes.string("w") + tensor + [0x73] + PickleBytes.stop
    }

    /// A torch.save-like archive holding one float32 tensor `w` over a storage of 1, 2, 3, … .
    static func tensorArchive(
        count: Int, offset: Int, shape: [Int], strides: [Int], storageBytes: Int? = nil
    ) -> [UInt8] {
        let values = (0..<count).flatMap { PickleBytes.littleEndian(Float($0).bitPattern) }
        let storage = Array(values.prefix(storageBytes ?? values.count))
        return make([
            ("archive/data.pkl", tensorPickle(count: count, offset: offset, shape: shape, strides: strides)),
            ("archive/data/0", storage), ("archive/version", Array("3\n".utf8)),
        ])
    }

    /// A safetensors file: header length, header, then `dataBytes` zero bytes.
    static func safetensors(_ header: String, dataBytes: Int) -> [UInt8] {
        let json = Array(header.utf8)
        let length = UInt64(json.count)
        return (0..<8).map { UInt8(truncatingIfNeeded: length >> (8 * $0)) } + json
            + [UInt8](repeating: 0, count: dataBytes)
    }

    /// The records of a stored zip archive, read through the loader's own zip reader.
    static func records(_ bytes: [UInt8]) throws -> [(name: String, data: [UInt8])] {
        let archive = try ZipArchive(data: Data(bytes), file: "records")
        var records: [(name: String, data: [UInt8])] = []
        for entry in archive.entries {
            records.append((entry.name, try archive.bytes(of: entry)))
        }
        return records
    }

    /// The central directory's offset, from the classic end-of-central-directory record.
    static func centralDirectoryOffset(_ bytes: [UInt8]) -> Int? {
        guard let end = find([0x50, 0x4B, 0x05, 0x06], in: bytes) else { return nil }
        return (0..<4).reduce(0) { $0 | Int(bytes[end + 16 + $1]) << (8 * $1) }
    }

    /// Where `needle` first occurs in `haystack`.
    static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        return (0...(haystack.count - needle.count)).first { haystack[$0..<($0 + needle.count)].elementsEqual(needle) }
    }
}

/// A small seeded generator (SplitMix64), so that the random tests are reproducible.
struct SplitMix64 {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A value in 0..<bound (bound > 0).
    mutating func next(below bound: Int) -> Int { Int(next() % UInt64(bound)) }
}
