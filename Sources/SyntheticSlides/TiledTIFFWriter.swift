import CTIFF
import Foundation
import Ingest

/// How one image (TIFF directory) of a pyramidal file is tagged.
struct TIFFImageTags {
    var width: Int
    var height: Int
    /// ImageDescription, if any.
    var description: String?
    /// XResolution and YResolution in pixels per centimetre (ResolutionUnit = CENTIMETER), if any.
    var pixelsPerCentimetre: Double?
    /// NewSubfileType = reduced-resolution image.
    var reduced: Bool = false
}

/// Writes a pyramidal tiled TIFF with JPEG tiles (YCbCr 4:2:0 from RGB, as Aperio does) from
/// level-0 rows handed over in order, never holding more than a strip of tiles per level.
///
/// Level 0 is encoded into the file as rows arrive; each reduced level is the box mean of the
/// level above it and is encoded at the same time into a temporary TIFF beside the output; an
/// optional stripped thumbnail is kept in memory (at most 1024 pixels a side). `finish()` writes
/// level 0's directory, the thumbnail, then copies each reduced level's compressed tiles unchanged
/// (no second JPEG pass) into its own directory. Memory: about `width × tileSize × 3` bytes for
/// level 0 plus a sixteenth of that for the rest.
final class TiledTIFFWriter {
    /// A level's size as written.
    struct Level: Equatable {
        var width: Int
        var height: Int
        /// Level-0 pixels per pixel of this level.
        var downsample: Int
    }

    private let path: String
    private let file: TIFFFile
    private let tileSize: Int
    private let quality: Int
    private let levels: [LevelEncoder]
    private let levelTags: [TIFFImageTags]
    private let thumbnail: Thumbnail?
    private let temporaryPaths: [String]
    private var finished = false

    /// Opens `path` and tags level 0. `factors` are the downsamples between consecutive levels
    /// (4, 4 for Aperio); `tags` describes the level of a given size; `thumbnailTags`, when given,
    /// adds a stripped thumbnail directory right after level 0.
    init(
        path: String, width: Int, height: Int, tileSize: Int, quality: Int, factors: [Int], bigTIFF: Bool,
        tags: (Level) -> TIFFImageTags, thumbnailTags: ((Int, Int) -> TIFFImageTags)?
    ) throws(SyntheticSlideError) {
        self.path = path
        self.tileSize = tileSize
        self.quality = quality
        file = try TIFFFile(path: path, mode: bigTIFF ? "w8" : "w")
        var sizes = [Level(width: width, height: height, downsample: 1)]
        for factor in factors {
            let finer = sizes[sizes.count - 1]
            guard finer.width / factor >= 1, finer.height / factor >= 1 else { break }
            sizes.append(
                Level(width: finer.width / factor, height: finer.height / factor, downsample: finer.downsample * factor)
            )
        }
        levelTags = sizes.map(tags)
        try Self.tag(file, levelTags[0], tileSize: tileSize, quality: quality, tiled: true)
        var encoders = [LevelEncoder]()
        var temporaryPaths = [String]()
        do {
            encoders.append(LevelEncoder(file: file, level: sizes[0], factor: 1, tileSize: tileSize))
            for index in 1..<sizes.count {
                let temporary = "\(path).level\(index).partial"
                temporaryPaths.append(temporary)
                let levelFile = try TIFFFile(path: temporary, mode: bigTIFF ? "w8" : "w")
                try Self.tag(levelFile, levelTags[index], tileSize: tileSize, quality: quality, tiled: true)
                encoders.append(
                    LevelEncoder(
                        file: levelFile, level: sizes[index],
                        factor: sizes[index].downsample / sizes[index - 1].downsample,
                        tileSize: tileSize))
            }
        } catch {
            for temporary in temporaryPaths { unlink(temporary) }
            throw error
        }
        for index in 0..<(encoders.count - 1) { encoders[index].next = encoders[index + 1] }
        levels = encoders
        self.temporaryPaths = temporaryPaths
        if let thumbnailTags {
            let factor = max(1, (max(width, height) + 1023) / 1024)
            let thumbnailWidth = max(1, width / factor)
            let thumbnailHeight = max(1, height / factor)
            thumbnail = Thumbnail(
                width: thumbnailWidth, height: thumbnailHeight, factor: factor,
                tags: thumbnailTags(thumbnailWidth, thumbnailHeight))
        } else {
            thumbnail = nil
        }
    }

    deinit {
        for temporary in temporaryPaths { unlink(temporary) }
    }

    /// The levels being written, largest first.
    var writtenLevels: [Level] { levels.map(\.level) }

    /// Hands over the next `count` level-0 rows (`width × 3` bytes each, RGB).
    func append(rows: UnsafePointer<UInt8>, count: Int) throws(SyntheticSlideError) {
        let stride = levels[0].level.width * 3
        for row in 0..<count {
            let pointer = rows + row * stride
            thumbnail?.reducer.add(row: pointer)
            if let thumbnail, thumbnail.reducer.isRowReady { thumbnail.takeRow() }
            try levels[0].push(row: pointer)
        }
    }

    /// Flushes every level, writes the directories in order (level 0, thumbnail, reduced levels)
    /// and closes the file; the temporary level files are removed.
    func finish() throws(SyntheticSlideError) {
        precondition(!finished, "finish() called twice")
        finished = true
        for level in levels { try level.flush() }
        try file.writeDirectory()
        if let thumbnail {
            try Self.tag(file, thumbnail.tags, tileSize: tileSize, quality: quality, tiled: false)
            let stripRows = 16
            let stride = thumbnail.tags.width * 3
            let strip = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: stripRows * stride)
            defer { strip.deallocate() }
            var start = 0
            while start < thumbnail.tags.height {
                let rows = min(stripRows, thumbnail.tags.height - start)
                thumbnail.pixels.withUnsafeBufferPointer { pixels in
                    strip.baseAddress!.update(from: pixels.baseAddress! + start * stride, count: rows * stride)
                }
                try file.writeStrip(
                    start / stripRows, UnsafeMutableRawPointer(strip.baseAddress!), count: rows * stride)
                start += rows
            }
            try file.writeDirectory()
        }
        for index in 1..<levels.count {
            levels[index].file.close()
            let source = try TIFFFile(path: temporaryPaths[index - 1], mode: "r")
            try Self.tag(file, levelTags[index], tileSize: tileSize, quality: quality, tiled: true)
            try source.copyRawTiles(to: file)
            try file.writeDirectory()
            source.close()
        }
        file.close()
    }

    /// Sets the tags of one image: 8-bit RGB in, JPEG-compressed YCbCr 4:2:0 out, tiled or in
    /// strips of 16 rows (a multiple of the 2 × 8 rows of a subsampled JPEG MCU).
    private static func tag(
        _ file: TIFFFile, _ tags: TIFFImageTags, tileSize: Int, quality: Int, tiled: Bool
    ) throws(SyntheticSlideError) {
        try file.set(TIFFTAG_SUBFILETYPE, u32: tags.reduced ? Int(FILETYPE_REDUCEDIMAGE) : 0)
        try file.set(TIFFTAG_IMAGEWIDTH, u32: tags.width)
        try file.set(TIFFTAG_IMAGELENGTH, u32: tags.height)
        try file.set(TIFFTAG_BITSPERSAMPLE, int: 8)
        try file.set(TIFFTAG_SAMPLESPERPIXEL, int: 3)
        try file.set(TIFFTAG_PLANARCONFIG, int: PLANARCONFIG_CONTIG)
        try file.set(TIFFTAG_COMPRESSION, int: COMPRESSION_JPEG)
        try file.set(TIFFTAG_PHOTOMETRIC, int: PHOTOMETRIC_YCBCR)
        try file.setSubsampling(horizontal: 2, vertical: 2)
        try file.set(TIFFTAG_JPEGQUALITY, int: Int32(quality))
        try file.set(TIFFTAG_JPEGCOLORMODE, int: JPEGCOLORMODE_RGB)
        if tiled {
            try file.set(TIFFTAG_TILEWIDTH, u32: tileSize)
            try file.set(TIFFTAG_TILELENGTH, u32: tileSize)
        } else {
            try file.set(TIFFTAG_ROWSPERSTRIP, u32: 16)
        }
        if let description = tags.description { try file.set(TIFFTAG_IMAGEDESCRIPTION, string: description) }
        if let resolution = tags.pixelsPerCentimetre {
            try file.set(TIFFTAG_XRESOLUTION, double: resolution)
            try file.set(TIFFTAG_YRESOLUTION, double: resolution)
            try file.set(TIFFTAG_RESOLUTIONUNIT, int: RESUNIT_CENTIMETER)
        }
        try file.set(TIFFTAG_SOFTWARE, string: "csmil synth")
    }
}

/// Sums `factor` × `factor` blocks of RGB rows into rows of their means (trailing partial blocks
/// are dropped, so a level is `floor(finer / factor)` pixels a side, as Aperio's are).
struct BoxReducer {
    let width: Int
    let factor: Int
    private var sums: [UInt32]
    private var rowsSummed = 0

    init(width: Int, factor: Int) {
        self.width = width
        self.factor = factor
        sums = [UInt32](repeating: 0, count: width * 3)
    }

    /// Whether `factor` rows have been added since the last `takeRow`.
    var isRowReady: Bool { rowsSummed == factor }

    /// Adds one finer row (at least `width × factor` RGB pixels).
    mutating func add(row: UnsafePointer<UInt8>) {
        let factor = self.factor
        sums.withUnsafeMutableBufferPointer { sums in
            for x in 0..<width {
                var r: UInt32 = 0
                var g: UInt32 = 0
                var b: UInt32 = 0
                let source = row + x * factor * 3
                for k in 0..<factor {
                    r &+= UInt32(source[3 * k])
                    g &+= UInt32(source[3 * k + 1])
                    b &+= UInt32(source[3 * k + 2])
                }
                sums[3 * x] &+= r
                sums[3 * x + 1] &+= g
                sums[3 * x + 2] &+= b
            }
        }
        rowsSummed += 1
    }

    /// Writes the rounded block means into `output` (`width × 3` bytes) and starts a new row.
    mutating func takeRow(into output: UnsafeMutablePointer<UInt8>) {
        let count = UInt32(factor * factor)
        sums.withUnsafeMutableBufferPointer { sums in
            for index in 0..<sums.count {
                output[index] = UInt8((sums[index] + count / 2) / count)
                sums[index] = 0
            }
        }
        rowsSummed = 0
    }
}

/// One pyramid level being encoded: a strip of `tileSize` rows, cut into tiles when full.
private final class LevelEncoder {
    let file: TIFFFile
    let level: TiledTIFFWriter.Level
    var next: LevelEncoder?
    private let tileSize: Int
    private var reducer: BoxReducer?
    private let strip: UnsafeMutableBufferPointer<UInt8>
    private let tile: UnsafeMutableBufferPointer<UInt8>
    private var rowsInStrip = 0
    private var stripIndex = 0
    private var rowsDone = 0

    init(file: TIFFFile, level: TiledTIFFWriter.Level, factor: Int, tileSize: Int) {
        self.file = file
        self.level = level
        self.tileSize = tileSize
        reducer = factor > 1 ? BoxReducer(width: level.width, factor: factor) : nil
        strip = .allocate(capacity: level.width * tileSize * 3)
        tile = .allocate(capacity: tileSize * tileSize * 3)
    }

    deinit {
        strip.deallocate()
        tile.deallocate()
    }

    /// Takes one row of the finer level (level 0 itself for level 0).
    func push(row: UnsafePointer<UInt8>) throws(SyntheticSlideError) {
        guard rowsDone < level.height else { return }
        let stride = level.width * 3
        let target = strip.baseAddress! + rowsInStrip * stride
        if reducer != nil {
            reducer!.add(row: row)
            guard reducer!.isRowReady else { return }
            reducer!.takeRow(into: target)
        } else {
            target.update(from: row, count: stride)
        }
        rowsInStrip += 1
        rowsDone += 1
        try next?.push(row: UnsafePointer(target))
        if rowsInStrip == tileSize { try writeStrip() }
    }

    /// Writes a last, partial strip (padded with white).
    func flush() throws(SyntheticSlideError) {
        if rowsInStrip > 0 { try writeStrip() }
    }

    private func writeStrip() throws(SyntheticSlideError) {
        let stride = level.width * 3
        let across = (level.width + tileSize - 1) / tileSize
        let tileStride = tileSize * 3
        for column in 0..<across {
            let x = column * tileSize
            let copy = min(tileSize, level.width - x) * 3
            tile.update(repeating: 255)
            for row in 0..<rowsInStrip {
                (tile.baseAddress! + row * tileStride).update(
                    from: strip.baseAddress! + row * stride + x * 3, count: copy)
            }
            try file.writeTile(
                stripIndex * across + column, UnsafeMutableRawPointer(tile.baseAddress!), count: tile.count)
        }
        stripIndex += 1
        rowsInStrip = 0
    }
}

/// The in-memory thumbnail: box means of level 0, at most 1024 pixels a side.
private final class Thumbnail {
    var reducer: BoxReducer
    let tags: TIFFImageTags
    var pixels: [UInt8]
    private var rows = 0
    private var spare: [UInt8]

    init(width: Int, height: Int, factor: Int, tags: TIFFImageTags) {
        reducer = BoxReducer(width: width, factor: factor)
        self.tags = tags
        pixels = [UInt8](repeating: 255, count: width * height * 3)
        spare = [UInt8](repeating: 0, count: width * 3)
    }

    /// Moves the finished row of means into the image (rows past its height are dropped).
    func takeRow() {
        if rows < tags.height {
            let offset = rows * tags.width * 3
            pixels.withUnsafeMutableBufferPointer { reducer.takeRow(into: $0.baseAddress! + offset) }
            rows += 1
        } else {
            spare.withUnsafeMutableBufferPointer { reducer.takeRow(into: $0.baseAddress!) }
        }
    }
}
