import Foundation

/// Writes a float32 `.npy` file (NumPy format 1.0) row by row, so a large [N, D] matrix never
/// has to be in memory at once. The shape is fixed when the file is created.
public final class NumPyWriter {
    public let path: String
    public let rows: Int
    public let columns: Int
    private let handle: FileHandle
    private var written = 0

    /// Creates (or truncates) `path` and writes the header of a little-endian float32 [rows, columns] array.
    public init(path: String, rows: Int, columns: Int) throws {
        self.path = path
        self.rows = rows
        self.columns = columns
        guard FileManager.default.createFile(atPath: path, contents: nil) else {
            throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: path])
        }
        handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.write(contentsOf: Self.header(rows: rows, columns: columns))
    }

    /// The magic, version, header length and the padded header dictionary (a multiple of 64 bytes).
    static func header(rows: Int, columns: Int) -> Data {
        var dictionary = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(rows), \(columns)), }"
        let unpadded = 10 + dictionary.utf8.count + 1
        dictionary += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
        let length = UInt16(dictionary.utf8.count)
        data.append(contentsOf: [UInt8(length & 0xFF), UInt8(length >> 8)])
        data.append(contentsOf: Array(dictionary.utf8))
        return data
    }

    /// Appends whole rows (`values.count` must be a multiple of `columns`).
    public func append(_ values: UnsafeBufferPointer<Float>) throws {
        precondition(values.count % columns == 0 && written + values.count / columns <= rows)
        var littleEndian = Data(count: values.count * 4)
        littleEndian.withUnsafeMutableBytes { raw in
            for (index, value) in values.enumerated() {
                raw.storeBytes(of: value.bitPattern.littleEndian, toByteOffset: index * 4, as: UInt32.self)
            }
        }
        try handle.write(contentsOf: littleEndian)
        written += values.count / columns
    }

    /// Checks that every row was written and closes the file.
    public func close() throws {
        try handle.close()
        guard written == rows else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path])
        }
    }
}
