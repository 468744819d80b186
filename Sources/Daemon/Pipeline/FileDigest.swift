import Crypto
import Foundation

/// SHA-256 of whole files, read in 1 MiB chunks: the model report's file digests and `csmil doctor`'s.
enum FileDigest {
    /// SHA-256 (hex) and size of the file open in `handle`, with its first 16 bytes.
    static func sha256(of handle: FileHandle) throws -> (digest: String, size: UInt64, head: [UInt8]) {
        var hasher = SHA256()
        var size: UInt64 = 0
        var head: [UInt8] = []
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            if head.isEmpty { head = Array(chunk.prefix(16)) }
            hasher.update(data: chunk)
            size += UInt64(chunk.count)
        }
        return (Hex.string(hasher.finalize()), size, head)
    }
}

/// Lower-case hexadecimal of bytes (digests, fingerprints, event ids).
enum Hex {
    static func string<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}
