import Foundation

/// A minimal zip writer for `torch.save` archives: stored (uncompressed) entries with CRC-32, each
/// entry's data aligned to 64 bytes as PyTorch's own writer aligns it (padding in a local extra field
/// with PyTorch's id "FB"), so the storages can be memory-mapped. No zip64: an archive and each entry
/// stay below 4 GiB (a head is kilobytes).
struct ZipArchiveWriter {
    /// Where entry data starts: a multiple of this from the start of the file.
    static let alignment = 64

    // Signatures and sizes from the zip specification (APPNOTE.TXT), as ZipArchive reads them.
    private static let localHeaderSignature: UInt32 = 0x0403_4B50
    private static let centralHeaderSignature: UInt32 = 0x0201_4B50
    private static let endOfCentralDirectorySignature: UInt32 = 0x0605_4B50
    private static let localHeaderSize = 30

    private(set) var data = Data()
    private var central = Data()
    private var count = 0

    /// Appends one stored entry.
    mutating func add(_ name: String, _ bytes: Data) {
        let nameBytes = Array(name.utf8)
        let crc = bytes.withUnsafeBytes { CRC32.checksum($0) }
        let offset = data.count
        precondition(offset + bytes.count < 0xFFFF_FFFF, "a zip archive without zip64 stays below 4 GiB")

        // Padding so the data starts on an alignment boundary; an extra field is at least 4 bytes.
        let unpadded = offset + Self.localHeaderSize + nameBytes.count
        var padding = (Self.alignment - unpadded % Self.alignment) % Self.alignment
        if padding > 0 && padding < 4 { padding += Self.alignment }

        data.append(u32: Self.localHeaderSignature)
        data.append(u16: 20)  // version needed: 2.0
        data.append(u16: 0)  // flags
        data.append(u16: 0)  // method: stored
        data.append(u16: 0)  // time
        data.append(u16: 0x21)  // date: 1980-01-01
        data.append(u32: crc)
        data.append(u32: UInt32(bytes.count))
        data.append(u32: UInt32(bytes.count))
        data.append(u16: UInt16(nameBytes.count))
        data.append(u16: UInt16(padding))
        data.append(contentsOf: nameBytes)
        if padding > 0 {
            data.append(u16: 0x4246)  // "FB", PyTorch's padding field
            data.append(u16: UInt16(padding - 4))
            data.append(contentsOf: [UInt8](repeating: UInt8(ascii: "Z"), count: padding - 4))
        }
        data.append(bytes)

        central.append(u32: Self.centralHeaderSignature)
        central.append(u16: 20)  // made by: 2.0
        central.append(u16: 20)  // needed: 2.0
        central.append(u16: 0)
        central.append(u16: 0)
        central.append(u16: 0)
        central.append(u16: 0x21)
        central.append(u32: crc)
        central.append(u32: UInt32(bytes.count))
        central.append(u32: UInt32(bytes.count))
        central.append(u16: UInt16(nameBytes.count))
        central.append(u16: 0)  // extra
        central.append(u16: 0)  // comment
        central.append(u16: 0)  // disk
        central.append(u16: 0)  // internal attributes
        central.append(u32: 0)  // external attributes
        central.append(u32: UInt32(offset))
        central.append(contentsOf: nameBytes)
        count += 1
    }

    /// The finished archive: the entries, the central directory and its end record.
    func finish() -> Data {
        precondition(count < 0xFFFF, "a zip archive without zip64 holds fewer than 65535 entries")
        var archive = data
        let directoryOffset = archive.count
        archive.append(central)
        archive.append(u32: Self.endOfCentralDirectorySignature)
        archive.append(u16: 0)  // this disk
        archive.append(u16: 0)  // the directory's disk
        archive.append(u16: UInt16(count))
        archive.append(u16: UInt16(count))
        archive.append(u32: UInt32(central.count))
        archive.append(u32: UInt32(directoryOffset))
        archive.append(u16: 0)  // comment
        return archive
    }
}

extension Data {
    fileprivate mutating func append(u16 value: UInt16) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }

    fileprivate mutating func append(u32 value: UInt32) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }
}
