import Foundation
import Inference
import Testing

/// Debian's interpreter, whose python3-torch the published layout is checked against.
private let python = "/usr/bin/python3"

/// Whether `python` can `import torch` (checked once).
private let pythonHasTorch: Bool = {
    guard FileManager.default.isExecutableFile(atPath: python) else { return false }
    return (try? runPython(["-c", "import torch"]))?.status == 0
}()

private func runPython(_ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: python)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: output, as: UTF8.self))
}

/// Loads a head written by `CheckpointWriter.torchSave` with `torch.load`, into the reference module of
/// tools/make_head_fixtures.py (`load_state_dict`, strict), and prints p of one bag in float64.
private let torchScript = """
    import sys, numpy as np, torch
    sys.path.insert(0, sys.argv[1])
    from make_head_fixtures import CSMILHead
    path, features_path, d, sizes = sys.argv[2], sys.argv[3], int(sys.argv[4]), [int(s) for s in sys.argv[5].split(",")]
    checkpoint = torch.load(path)
    # Plain tensors and containers only: torch's restricted unpickler accepts it too.
    assert list(torch.load(path, weights_only=True)["state_dict"].keys()) == list(checkpoint["state_dict"].keys())
    assert list(checkpoint.keys()) == ["state_dict"], checkpoint.keys()
    state = checkpoint["state_dict"]
    assert type(state).__name__ == "OrderedDict"
    assert all(t.dtype == torch.float32 and t.is_contiguous() for t in state.values())
    head = CSMILHead(d, cluster_num=len(sizes))
    head.load_state_dict(state, strict=True)
    head = head.double().eval()
    features = np.fromfile(features_path, dtype="<f4").reshape(-1, 3, d)
    clusters, mask, at = [], [], 0
    for size in sizes:
        if size == 0:
            clusters.append(torch.zeros(1, d, 3, 1, dtype=torch.float64)); mask.append(0.0); at += 1
        else:
            block = features[at:at + size]; at += size
            clusters.append(torch.from_numpy(np.transpose(block, (0, 2, 1))[..., None].astype(np.float64)))
            mask.extend([1.0] * size)
    with torch.no_grad():
        p, _, _ = head(clusters, torch.tensor([mask], dtype=torch.float64))
    print("p=%.17g" % float(p.reshape(-1)[0]))
    """

@Suite("Training: heads written in the published torch.save layout")
struct TrainingHeadWriterTests {
    /// A head and a bag from the training fixture, with its weights moved off the fixture's (one Adam
    /// step), as a trained head would be.
    private func trainedHead() throws -> (StateDict, TrainingFixture.Bag, Int) {
        let fixture = try TrainingFixture.load()
        var parameters = try fixture.parameters()
        let pass = CSMILHeadBackpropagation(parameters: parameters)
        var gradient = CSMILHeadParameters(zerosFor: fixture.featureSize)
        let bag = fixture.bags[0]
        _ = bag.features.values.withUnsafeBufferPointer {
            pass.accumulateGradient(
                bag: $0, mask: bag.mask.map { $0 != 0 }, label: bag.label, dropout: nil, into: &gradient)
        }
        var optimizer = AdamOptimizer(parameterCount: parameters.values.count)
        optimizer.update(&parameters, gradient: gradient)
        return (parameters.stateDict(), bag, fixture.featureSize)
    }

    private func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("csmil-train-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @Test("our loader reads a written head back bit for bit, in state_dict order")
    func roundTripThroughOurLoader() throws {
        let (weights, _, _) = try trainedHead()
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("0_model_7.pth").path
        try CheckpointWriter.torchSave(weights).write(to: URL(fileURLWithPath: path))
        let loaded = try Checkpoint.load(path: path)
        #expect(loaded.names == weights.names)
        for name in weights.names {
            #expect(loaded[name]?.shape == weights[name]?.shape)
            #expect(loaded[name]?.values.map(\.bitPattern) == weights[name]?.values.map(\.bitPattern))
        }
        let head = try CSMILHead(stateDict: loaded)
        #expect(head.featureSize == 16)
    }

    @Test("the zip is well formed: stored entries, correct CRC-32, storages 64-byte aligned")
    func zipLayout() throws {
        let (weights, _, _) = try trainedHead()
        let data = CheckpointWriter.torchSave(weights, archiveName: "head")
        // Walk the local headers.
        var offset = 0
        var names: [String] = []
        func u16(_ at: Int) -> Int { Int(data[at]) | Int(data[at + 1]) << 8 }
        func u32(_ at: Int) -> Int { u16(at) | u16(at + 2) << 16 }
        while u32(offset) == 0x0403_4B50 {
            let size = u32(offset + 18)
            let nameLength = u16(offset + 26)
            let extraLength = u16(offset + 28)
            let name = String(decoding: data[(offset + 30)..<(offset + 30 + nameLength)], as: UTF8.self)
            let start = offset + 30 + nameLength + extraLength
            #expect(u16(offset + 8) == 0, "\(name) is stored")
            #expect(start % 64 == 0, "\(name) data at \(start)")
            names.append(name)
            offset = start + size
        }
        #expect(names.first == "head/data.pkl")
        #expect(names.contains("head/version"))
        #expect(names.filter { $0.hasPrefix("head/data/") }.count == weights.count)
        #expect(u32(offset) == 0x0201_4B50)
    }

    @Test("Debian's python3-torch loads a written head and gives the bag probability our forward pass gives")
    func pyTorchLoadsWrittenHead() throws {
        guard pythonHasTorch else {
            print("skipped: \(python) cannot import torch (install python3-torch to run this check)")
            return
        }
        let (weights, bag, d) = try trainedHead()
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let headPath = directory.appendingPathComponent("0_model_12.pth").path
        let featuresPath = directory.appendingPathComponent("bag.f32").path
        try CheckpointWriter.torchSave(weights).write(to: URL(fileURLWithPath: headPath))
        try bag.features.values.withUnsafeBytes { Data($0) }.write(to: URL(fileURLWithPath: featuresPath))

        let tools = Fixtures.directory.deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
            .appendingPathComponent("tools").path
        let sizes = bag.clusterSizes.map(String.init).joined(separator: ",")
        let (status, output) = try runPython(["-c", torchScript, tools, headPath, featuresPath, String(d), sizes])
        #expect(status == 0, "python3 failed: \(output)")
        let line = try #require(output.split(separator: "\n").last { $0.hasPrefix("p=") })
        let torchProbability = try #require(Double(line.dropFirst(2)))

        let head = try CSMILHead(stateDict: try Checkpoint.load(path: headPath))
        let ours = bag.features.values.withUnsafeBufferPointer {
            head.forward(bag: $0, mask: bag.mask.map { $0 != 0 }, workspace: CSMILHeadWorkspace())
        }
        print(
            "written head: PyTorch p \(torchProbability), ours \(ours.probability), "
                + "|Δ| \(abs(torchProbability - ours.probability))")
        #expect(abs(torchProbability - ours.probability) < 1e-6)
    }
}
