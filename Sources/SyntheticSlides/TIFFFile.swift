import CTIFF
import Ingest

/// One open libtiff handle (`TIFFOpenExt` … `TIFFClose`), with libtiff's errors kept for the
/// thrown Swift error instead of being printed. Closed in one place: `close()` or `deinit`.
final class TIFFFile {
    /// The file's path, for error messages.
    let path: String
    private var handle: OpaquePointer?
    private let error: UnsafeMutablePointer<csmil_tiff_error>

    /// Opens `path` with a libtiff mode: "w" (classic TIFF), "w8" (BigTIFF) or "r".
    init(path: String, mode: String) throws(SyntheticSlideError) {
        self.path = path
        error = .allocate(capacity: 1)
        error.initialize(to: csmil_tiff_error())
        handle = csmil_tiff_open(path, mode, error)
        guard handle != nil else {
            // Fully initialised, so `deinit` still runs and frees `error`.
            let message = lastError
            throw SyntheticSlideError(
                code: .writeFailed, file: path, message: "cannot be opened by libtiff (\(message))",
                fix: "check that the folder exists and is writable")
        }
    }

    deinit {
        if let handle { TIFFClose(handle) }
        error.deallocate()
    }

    /// The open handle; only valid before `close()`.
    var pointer: OpaquePointer { handle! }

    /// The last error libtiff reported for this handle.
    var lastError: String {
        withUnsafeBytes(of: &error.pointee.message) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    /// Flushes and closes the file (`TIFFClose`); later calls do nothing.
    func close() {
        if let handle { TIFFClose(handle) }
        handle = nil
    }

    /// Throws a write error naming `what` unless libtiff reported success.
    func check(_ succeeded: Bool, _ what: String) throws(SyntheticSlideError) {
        guard succeeded else {
            throw SyntheticSlideError(
                code: .writeFailed, file: path, message: "\(what) failed (\(lastError))",
                fix: "check the free space and permissions of the folder")
        }
    }

    /// `TIFFSetField` for a `uint32` tag.
    func set(_ tag: Int32, u32 value: Int) throws(SyntheticSlideError) {
        try check(csmil_tiff_set_u32(pointer, UInt32(tag), UInt32(value)) == 1, "setting TIFF tag \(tag)")
    }

    /// `TIFFSetField` for a `uint16` tag or an `int` codec pseudo-tag.
    func set(_ tag: Int32, int value: Int32) throws(SyntheticSlideError) {
        try check(csmil_tiff_set_int(pointer, UInt32(tag), value) == 1, "setting TIFF tag \(tag)")
    }

    /// `TIFFSetField` for a RATIONAL tag.
    func set(_ tag: Int32, double value: Double) throws(SyntheticSlideError) {
        try check(csmil_tiff_set_double(pointer, UInt32(tag), value) == 1, "setting TIFF tag \(tag)")
    }

    /// `TIFFSetField` for an ASCII tag.
    func set(_ tag: Int32, string value: String) throws(SyntheticSlideError) {
        try check(csmil_tiff_set_string(pointer, UInt32(tag), value) == 1, "setting TIFF tag \(tag)")
    }

    /// `TIFFSetField` for YCbCrSubsampling.
    func setSubsampling(horizontal: UInt16, vertical: UInt16) throws(SyntheticSlideError) {
        try check(
            csmil_tiff_set_u16_pair(pointer, UInt32(TIFFTAG_YCBCRSUBSAMPLING), horizontal, vertical) == 1,
            "setting YCbCrSubsampling")
    }

    /// `TIFFWriteDirectory`: finishes the current image and starts the next one.
    func writeDirectory() throws(SyntheticSlideError) {
        try check(TIFFWriteDirectory(pointer) == 1, "writing a TIFF directory")
    }

    /// `TIFFWriteEncodedTile` of one full tile (`TIFFTileSize` bytes).
    func writeTile(_ index: Int, _ bytes: UnsafeMutableRawPointer, count: Int) throws(SyntheticSlideError) {
        try check(
            TIFFWriteEncodedTile(pointer, UInt32(index), bytes, tmsize_t(count)) == count, "encoding tile \(index)")
    }

    /// `TIFFWriteEncodedStrip` of one strip.
    func writeStrip(_ index: Int, _ bytes: UnsafeMutableRawPointer, count: Int) throws(SyntheticSlideError) {
        try check(
            TIFFWriteEncodedStrip(pointer, UInt32(index), bytes, tmsize_t(count)) == count, "encoding strip \(index)")
    }

    /// Copies the current image's compressed tiles and JPEG tables, unchanged, into the current
    /// image of `destination`, whose tags must describe the same image (`TIFFReadRawTile`,
    /// `TIFFWriteRawTile`).
    func copyRawTiles(to destination: TIFFFile) throws(SyntheticSlideError) {
        var count: UInt32 = 0
        var tables: UnsafeRawPointer?
        if csmil_tiff_get_bytes(pointer, UInt32(TIFFTAG_JPEGTABLES), &count, &tables) == 1, let tables, count > 0 {
            try destination.check(
                csmil_tiff_set_bytes(destination.pointer, UInt32(TIFFTAG_JPEGTABLES), count, tables) == 1,
                "setting JPEGTables")
        }
        var buffer = [UInt8]()
        for tile in 0..<Int(TIFFNumberOfTiles(pointer)) {
            let size = Int(TIFFGetStrileByteCount(pointer, UInt32(tile)))
            if buffer.count < size { buffer = [UInt8](repeating: 0, count: size) }
            let read = buffer.withUnsafeMutableBytes {
                TIFFReadRawTile(pointer, UInt32(tile), $0.baseAddress, tmsize_t(size))
            }
            try check(read == size, "reading raw tile \(tile)")
            let written = buffer.withUnsafeMutableBytes {
                TIFFWriteRawTile(destination.pointer, UInt32(tile), $0.baseAddress, tmsize_t(size))
            }
            try destination.check(written == size, "copying tile \(tile)")
        }
    }
}
