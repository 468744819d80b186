import Foundation
import Testing

@testable import Daemon

@Suite("Slide fingerprints")
struct FingerprintTests {
    @Test("the same bytes under another name give the same fingerprint; one changed byte gives another")
    func contentNotName() throws {
        let folder = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        var bytes = [UInt8](repeating: 0, count: 3 << 20)
        for index in bytes.indices { bytes[index] = UInt8(truncatingIfNeeded: index &* 2_654_435_761 >> 13) }
        let a = folder.appendingPathComponent("a.svs")
        let b = folder.appendingPathComponent("b.svs")
        try Data(bytes).write(to: a)
        try Data(bytes).write(to: b)
        #expect(try SlidePipeline.fingerprint(path: a.path) == SlidePipeline.fingerprint(path: b.path))
        bytes[bytes.count - 10] ^= 1
        try Data(bytes).write(to: b)
        #expect(try SlidePipeline.fingerprint(path: a.path) != SlidePipeline.fingerprint(path: b.path))
        #expect(throws: (any Error).self) {
            try SlidePipeline.fingerprint(path: folder.appendingPathComponent("none").path)
        }
    }

    @Test("two MIRAX slides with identical .mrxs files but different data folders have different fingerprints")
    func miraxIncludesItsFolder() throws {
        let folder = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        for (name, data) in [("one", "first slide"), ("two", "second slide")] {
            try Data("mirax index".utf8).write(to: folder.appendingPathComponent(name + ".mrxs"))
            let data = Data(data.utf8)
            try TestSupport.write("[GENERAL]\n", to: folder.appendingPathComponent(name + "/Slidedat.ini"))
            try data.write(to: folder.appendingPathComponent(name + "/Data0000.dat"))
        }
        let one = try SlidePipeline.fingerprint(path: folder.appendingPathComponent("one.mrxs").path)
        let two = try SlidePipeline.fingerprint(path: folder.appendingPathComponent("two.mrxs").path)
        #expect(one != two)
        try Data("second slide".utf8).write(to: folder.appendingPathComponent("one/Data0000.dat"))
        #expect(try SlidePipeline.fingerprint(path: folder.appendingPathComponent("one.mrxs").path) == two)
    }
}
