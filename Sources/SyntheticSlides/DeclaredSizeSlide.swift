import CTIFF
import Foundation

/// A tiled BigTIFF whose directories declare levels of any size but store one tile: every tile of every level points
/// at the same white, deflate-compressed tile. So a file of a megabyte can declare 10⁶ × 10⁶ pixels — the header bomb
/// of issue 14 — or a real-sized single-level slide whose every pixel must be read (a long tissue detection to
/// interrupt), without the minutes and gigabytes a ``SyntheticSlide`` of that size would take. (OpenSlide 3.4 reads
/// no missing tiles, so the tiles cannot simply be left out.)
///
/// libtiff compresses the one tile; the file around it is written byte by byte, because libtiff writes one copy per
/// tile. Large tiles keep the tile tables small: 10⁶ × 10⁶ pixels in 4,096² tiles are 60,025 tiles, 960 KB of
/// offsets and byte counts.
public struct DeclaredSizeSlide: Sendable {
    /// Each level's size in pixels, level 0 first; levels after the first are tagged reduced-resolution images.
    public var levels: [(width: Int, height: Int)]
    /// Level 0's µm per pixel, written as the TIFF resolution tags (pixels per centimetre); nil writes none.
    public var micronsPerPixel: Double?
    /// Tile side in pixels, a multiple of 16.
    public var tileSize: Int

    public init(levels: [(width: Int, height: Int)], micronsPerPixel: Double?, tileSize: Int = 4096) {
        self.levels = levels
        self.micronsPerPixel = micronsPerPixel
        self.tileSize = tileSize
    }

    /// Writes the file (generic tiled TIFF: OpenSlide's `generic-tiff` vendor).
    public func write(to path: String) throws(SyntheticSlideError) {
        let limit = Int(UInt32.max)
        guard !levels.isEmpty, levels.allSatisfy({ (1...limit).contains($0.width) && (1...limit).contains($0.height) }),
            tileSize >= 16, tileSize % 16 == 0
        else {
            throw SyntheticSlideError(
                code: .invalidOption, file: path,
                message: "levels \(levels) with tiles of \(tileSize) cannot be written",
                fix:
                    "give at least one level of positive size (below 2³² a side) and a tile size that is a multiple of 16"
            )
        }
        let tile = try Self.whiteTile(side: tileSize, scratch: path + ".tile.partial")
        var file = BigTIFFBytes()
        file.bytes += [0x49, 0x49, 43, 0, 8, 0, 0, 0]  // "II", BigTIFF, 8-byte offsets
        var nextDirectoryPointer = file.append(u64: 0)
        let tileAt = file.appendZeros(count: 0)
        file.bytes += tile
        for (index, level) in levels.enumerated() {
            let tiles = ((level.width + tileSize - 1) / tileSize) * ((level.height + tileSize - 1) / tileSize)
            // Out-of-line values first, then the directory that points at them.
            let offsets = file.appendRepeated(u64: UInt64(tileAt), count: tiles)
            let byteCounts = file.appendRepeated(u64: UInt64(tile.count), count: tiles)
            let software = "csmil synth (declared size, no pixels)\0"
            let softwareAt = file.count
            file.bytes += Array(software.utf8)
            var entries: [BigTIFFBytes.Entry] = [
                .init(tag: 254, type: 4, count: 1, inline: UInt64(index == 0 ? 0 : 1)),
                .init(tag: 256, type: 4, count: 1, inline: UInt64(level.width)),
                .init(tag: 257, type: 4, count: 1, inline: UInt64(level.height)),
                .init(tag: 258, type: 3, count: 3, inline: 8 | 8 << 16 | 8 << 32),  // 8, 8, 8: fits inline
                .init(tag: 259, type: 3, count: 1, inline: 8),  // Adobe deflate
                .init(tag: 262, type: 3, count: 1, inline: 2),  // RGB
                .init(tag: 277, type: 3, count: 1, inline: 3),
                .init(tag: 284, type: 3, count: 1, inline: 1),  // contiguous
                .init(tag: 305, type: 2, count: software.utf8.count, offset: softwareAt),
                .init(tag: 322, type: 4, count: 1, inline: UInt64(tileSize)),
                .init(tag: 323, type: 4, count: 1, inline: UInt64(tileSize)),
                // One 8-byte value is stored in the entry itself (BigTIFF's rule for values of at most 8 bytes).
                tiles == 1
                    ? .init(tag: 324, type: 16, count: 1, inline: UInt64(tileAt))
                    : .init(tag: 324, type: 16, count: tiles, offset: offsets),
                tiles == 1
                    ? .init(tag: 325, type: 16, count: 1, inline: UInt64(tile.count))
                    : .init(tag: 325, type: 16, count: tiles, offset: byteCounts),
            ]
            if let micronsPerPixel, index == 0 {
                // Pixels per centimetre as a RATIONAL (numerator, denominator), which fits inline.
                let perCentimetre = UInt64((10_000 / micronsPerPixel * 1000).rounded())
                let rational = (perCentimetre & 0xFFFF_FFFF) | (1000 << 32)
                entries += [
                    .init(tag: 282, type: 5, count: 1, inline: rational),
                    .init(tag: 283, type: 5, count: 1, inline: rational),
                    .init(tag: 296, type: 3, count: 1, inline: 3),  // centimetre
                ]
            }
            file.put(u64: UInt64(file.appendZeros(count: 0)), at: nextDirectoryPointer)
            nextDirectoryPointer = file.appendDirectory(entries.sorted { $0.tag < $1.tag })
        }
        guard FileManager.default.createFile(atPath: path, contents: Data(file.bytes)) else {
            throw SyntheticSlideError(
                code: .writeFailed, file: path, message: "cannot be written",
                fix: "check that the folder exists and is writable")
        }
    }

    /// One white `side × side` RGB tile as libtiff's deflate codec compresses it (written to `scratch` and read back
    /// raw; `scratch` is removed).
    static func whiteTile(side: Int, scratch: String) throws(SyntheticSlideError) -> [UInt8] {
        defer { unlink(scratch) }
        let writer = try TIFFFile(path: scratch, mode: "w")
        try writer.set(TIFFTAG_IMAGEWIDTH, u32: side)
        try writer.set(TIFFTAG_IMAGELENGTH, u32: side)
        try writer.set(TIFFTAG_BITSPERSAMPLE, int: 8)
        try writer.set(TIFFTAG_SAMPLESPERPIXEL, int: 3)
        try writer.set(TIFFTAG_PLANARCONFIG, int: PLANARCONFIG_CONTIG)
        try writer.set(TIFFTAG_PHOTOMETRIC, int: PHOTOMETRIC_RGB)
        try writer.set(TIFFTAG_COMPRESSION, int: COMPRESSION_ADOBE_DEFLATE)
        try writer.set(TIFFTAG_TILEWIDTH, u32: side)
        try writer.set(TIFFTAG_TILELENGTH, u32: side)
        let count = side * side * 3
        let white = UnsafeMutableRawPointer.allocate(byteCount: count, alignment: 16)
        defer { white.deallocate() }
        white.initializeMemory(as: UInt8.self, repeating: 255, count: count)
        try writer.writeTile(0, white, count: count)
        writer.close()
        let reader = try TIFFFile(path: scratch, mode: "r")
        let size = Int(TIFFGetStrileByteCount(reader.pointer, 0))
        var raw = [UInt8](repeating: 0, count: size)
        let read = raw.withUnsafeMutableBytes { TIFFReadRawTile(reader.pointer, 0, $0.baseAddress, tmsize_t(size)) }
        try reader.check(size > 0 && read == size, "reading back the compressed tile")
        return raw
    }
}

/// A little-endian BigTIFF being assembled in memory.
private struct BigTIFFBytes {
    /// One directory entry: a value that fits in 8 bytes inline, or the offset of its values.
    struct Entry {
        var tag: UInt16
        var type: UInt16
        var count: Int
        var value: UInt64

        init(tag: UInt16, type: UInt16, count: Int, inline: UInt64) {
            self.tag = tag
            self.type = type
            self.count = count
            value = inline
        }

        init(tag: UInt16, type: UInt16, count: Int, offset: Int) {
            self.init(tag: tag, type: type, count: count, inline: UInt64(offset))
        }
    }

    var bytes: [UInt8] = []
    var count: Int { bytes.count }

    /// Appends a value; returns where it is.
    @discardableResult
    mutating func append(u64 value: UInt64) -> Int {
        let at = count
        withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
        return at
    }

    /// Appends `value` `count` times (word-aligned); returns where they start.
    mutating func appendRepeated(u64 value: UInt64, count: Int) -> Int {
        let at = appendZeros(count: 0)
        bytes.reserveCapacity(bytes.count + 8 * count)
        for _ in 0..<count { append(u64: value) }
        return at
    }

    /// Appends `count` zero bytes (word-aligned); returns where they start.
    mutating func appendZeros(count: Int) -> Int {
        if self.count % 8 != 0 { bytes += [UInt8](repeating: 0, count: 8 - self.count % 8) }
        let at = self.count
        bytes += [UInt8](repeating: 0, count: count)
        return at
    }

    mutating func put(u64 value: UInt64, at offset: Int) {
        for byte in 0..<8 { bytes[offset + byte] = UInt8((value >> (8 * UInt64(byte))) & 0xFF) }
    }

    /// Appends a directory (entries sorted by tag); returns where its next-directory pointer is.
    mutating func appendDirectory(_ entries: [Entry]) -> Int {
        append(u64: UInt64(entries.count))
        for entry in entries {
            withUnsafeBytes(of: entry.tag.littleEndian) { bytes += $0 }
            withUnsafeBytes(of: entry.type.littleEndian) { bytes += $0 }
            append(u64: UInt64(entry.count))
            append(u64: entry.value)
        }
        return append(u64: 0)
    }
}
