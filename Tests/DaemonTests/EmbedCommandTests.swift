import Foundation
import Images
import Inference
import Ingest
import Testing

@Suite("csmil embed")
struct EmbedCommandTests {
    static let fixtures = TestSupport.packageRoot.appendingPathComponent("Tests/InferenceTests/Fixtures/resnet")

    /// A SimSiam-style backbone file (keys prefixed `backbone.`, plus a projector the loader must
    /// ignore) holding the seeded ResNet-18 that tools/make_resnet_fixtures.py gave PyTorch.
    static func writeBackbone(to url: URL) throws {
        let weights = SeededWeights.resnet(.resnet18, seed: 20_261_127)
        var simsiam = StateDict()
        for name in weights.names { simsiam.set("backbone." + name, weights[name]!) }
        simsiam.set("projector.0.weight", Tensor(shape: [4, 512], values: .init(repeating: 1, count: 2048)))
        try CheckpointWriter.safetensors(simsiam).write(to: url)
    }

    /// The float32 matrix of a .npy file, after checking its header says [rows, columns].
    static func readNumPy(_ url: URL, rows: Int, columns: Int) throws -> [Float] {
        let data = try Data(contentsOf: url)
        #expect(data.prefix(6) == Data([0x93] + Array("NUMPY".utf8)))
        let headerLength = Int(data[8]) | Int(data[9]) << 8
        #expect((10 + headerLength) % 64 == 0)
        let header = String(decoding: data[10..<(10 + headerLength)], as: UTF8.self)
        #expect(header.contains("'descr': '<f4'"))
        #expect(header.contains("'fortran_order': False"))
        #expect(header.contains("'shape': (\(rows), \(columns))"))
        let body = data.subdata(in: (10 + headerLength)..<data.count)
        #expect(body.count == rows * columns * 4)
        return body.withUnsafeBytes { raw in
            (0..<(rows * columns)).map { raw.load(fromByteOffset: $0 * 4, as: Float.self) }
        }
    }

    @Test("PNG tiles of 256, 512 and 1024 px embed to PyTorch's features, rows in argument order")
    func embedsLikePyTorch() throws {
        let root = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let backbone = root.appendingPathComponent("simsiam-256.safetensors")
        try Self.writeBackbone(to: backbone)
        var paths: [String] = []
        for (index, side) in [256, 512, 1024].enumerated() {
            let pixels = SeededWeights.images(count: 2, size: side, seed: 42 + UInt64(index))
            for image in 0..<2 {
                let slice = Array(pixels[(image * side * side * 3)..<((image + 1) * side * side * 3)])
                let path = root.appendingPathComponent("tile-\(side)-\(image).png").path
                try RGBImage(width: side, height: side, pixels: slice).write(to: path)
                paths.append(path)
            }
        }
        let out = root.appendingPathComponent("features.npy")
        let result = try TestSupport.run(
            TestSupport.binary(),
            ["embed", "--backbone", backbone.path, "--arch", "resnet18", "--out", out.path, "--batch", "4"] + paths)
        #expect(result.status == 0, "\(result.stderr)")
        let ours = try Self.readNumPy(out, rows: 6, columns: 512)
        let reference = try Data(contentsOf: Self.fixtures.appendingPathComponent("resnet18.f32")).withUnsafeBytes {
            Array($0.bindMemory(to: Float.self))
        }
        for row in 0..<6 {
            let expected = reference[(row * 512)..<((row + 1) * 512)]
            let scale = expected.map(abs).max() ?? 1
            let error = zip(ours[(row * 512)..<((row + 1) * 512)], expected).map { abs($0 - $1) }.max() ?? 0
            #expect(error <= 1e-4 * scale, "row \(row): \(error) vs max \(scale)")
        }
    }

    @Test("a tile of another size is refused naming the file, and no .npy is left behind")
    func refusesOddSizes() throws {
        let root = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let backbone = root.appendingPathComponent("b.safetensors")
        try Self.writeBackbone(to: backbone)
        let odd = root.appendingPathComponent("odd.png").path
        try RGBImage(width: 300, height: 300, pixels: .init(repeating: 200, count: 300 * 300 * 3)).write(to: odd)
        let out = root.appendingPathComponent("f.npy")
        let result = try TestSupport.csmil(
            "embed", "--backbone", backbone.path, "--arch", "resnet18", "--out", out.path, odd)
        #expect(result.status != 0)
        #expect(result.stderr.contains("odd.png"))
        #expect(result.stderr.contains("256"))
        #expect(!FileManager.default.fileExists(atPath: out.path))
        #expect(!FileManager.default.fileExists(atPath: out.path + ".partial"))
    }

    @Test("a missing backbone or one of another architecture is an error naming the file")
    func badBackbone() throws {
        let root = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let png = root.appendingPathComponent("t.png").path
        try RGBImage(width: 256, height: 256, pixels: .init(repeating: 9, count: 256 * 256 * 3)).write(to: png)
        let missing = try TestSupport.csmil("embed", "--backbone", "/nonexistent/b.pth", "--out", "/tmp/x.npy", png)
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("/nonexistent/b.pth"))
        let backbone = root.appendingPathComponent("r18.safetensors")
        try Self.writeBackbone(to: backbone)
        let wrong = try TestSupport.csmil(
            "embed", "--backbone", backbone.path, "--arch", "resnet50", "--out", "/tmp/x.npy", png)
        #expect(wrong.status != 0)
        #expect(wrong.stderr.contains("r18.safetensors"))
        #expect(wrong.stderr.contains("layer1.0.conv3.weight"))
    }
}
