import Errors
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
    public init(path: String, rows: Int, columns: Int) throws(NumPyError) {
        self.path = path
        self.rows = rows
        self.columns = columns
        guard FileManager.default.createFile(atPath: path, contents: nil),
            let handle = try? FileHandle(forWritingTo: URL(fileURLWithPath: path))
        else {
            throw NumPyError(
                code: .unwritable, file: path, message: "cannot be created", fix: "check the folder and its permissions"
            )
        }
        self.handle = handle
        try write(Self.header(rows: rows, columns: columns))
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
    public func append(_ values: UnsafeBufferPointer<Float>) throws(NumPyError) {
        precondition(values.count % columns == 0 && written + values.count / columns <= rows)
        var littleEndian = Data(count: values.count * 4)
        littleEndian.withUnsafeMutableBytes { raw in
            for (index, value) in values.enumerated() {
                raw.storeBytes(of: value.bitPattern.littleEndian, toByteOffset: index * 4, as: UInt32.self)
            }
        }
        try write(littleEndian)
        written += values.count / columns
    }

    /// Checks that every row was written and closes the file.
    public func close() throws(NumPyError) {
        do {
            try handle.close()
        } catch {
            throw NumPyError(
                code: .unwritable, file: path, message: "cannot be closed (\(error.localizedDescription))",
                fix: "check the free space of the folder")
        }
        guard written == rows else {
            throw NumPyError(
                code: .unwritable, file: path, message: "holds \(written) of its \(rows) rows",
                fix: PipelineBug.fix)
        }
    }

    private func write(_ data: Data) throws(NumPyError) {
        do {
            try handle.write(contentsOf: data)
        } catch {
            throw NumPyError(
                code: .unwritable, file: path, message: "cannot be written (\(error.localizedDescription))",
                fix: "check the free space of the folder")
        }
    }
}

/// Reads a float32 `.npy` file (NumPy format 1.0, 2.0 or 3.0, C order, little-endian) as its shape and its data
/// bytes, memory-mapped: what ``NumPyWriter`` writes and what NumPy's `np.save` writes.
public enum NumPyReader {
    public static func readFloat32(path: String) throws(NumPyError) -> (shape: [Int], data: Data) {
        guard let file = try? Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) else {
            throw NumPyError(code: .unreadable, file: path, message: "cannot be read", fix: "check the path")
        }
        func refuse(_ problem: String) -> NumPyError {
            NumPyError(
                code: .unsupported, file: path, message: problem,
                fix: "save it with numpy.save as a float32 array (np.float32, C order)")
        }
        let bytes = [UInt8](file.prefix(12))
        guard bytes.count >= 10, bytes[0] == 0x93, Array(bytes[1...5]) == Array("NUMPY".utf8) else {
            throw refuse("is not a .npy file")
        }
        let headerLength: Int
        let headerStart: Int
        if bytes[6] == 1 {
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        } else {
            guard bytes.count >= 12 else { throw refuse("has a truncated header") }
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
            headerStart = 12
        }
        guard file.count >= headerStart + headerLength else { throw refuse("has a truncated header") }
        let header = String(decoding: file[headerStart..<(headerStart + headerLength)], as: UTF8.self)
        guard header.contains("'descr': '<f4'"), header.contains("'fortran_order': False"),
            let open = header.range(of: "'shape': ("), let close = header[open.upperBound...].firstIndex(of: ")")
        else { throw refuse("is not a C-ordered little-endian float32 array") }
        let shape = header[open.upperBound..<close].split(separator: ",").compactMap {
            Int($0.trimmingCharacters(in: .whitespaces))
        }
        let start = headerStart + headerLength
        let size = shape.reduce(1, *) * 4
        guard file.count == start + size else {
            throw refuse("holds \(file.count - start) bytes of data for a \(shape) array (\(size) bytes)")
        }
        return (shape, file.subdata(in: start..<(start + size)))
    }
}

/// A `.npy` file that could not be read or written.
public struct NumPyError: CSMILError, Sendable, Equatable {
    public enum Code: String, ErrorCode {
        case unreadable = "npy.unreadable"
        case unsupported = "npy.unsupported"
        case unwritable = "npy.unwritable"
    }

    public var code: Code
    public var file: String
    public var message: String
    public var fix: String

    public var subject: String { file }
}

/// The fix of an error that only a bug can cause.
enum PipelineBug {
    static let fix = "this is a bug in csmil; please report it"
}
