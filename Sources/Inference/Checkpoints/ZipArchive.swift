import Foundation

/// A minimal, read-only zip reader for `torch.save` archives, over bytes that are already in memory
/// (usually memory-mapped).
///
/// It reads the end-of-central-directory record (and, where present, the zip64 locator and record),
/// the central directory with its zip64 extra fields, and each entry's local header. Only uncompressed
/// ("stored") entries can be read, which is what `torch.save` writes. Every offset and size is checked
/// against the file's length before it is used, so a truncated or damaged archive gives an error, never
/// an out-of-bounds read.
struct ZipArchive {
    /// One file in the archive, located and validated.
    struct Entry: Sendable, Equatable {
        var name: String
        /// 0 for stored; anything else is a compression method this reader refuses.
        var method: UInt16
        /// General-purpose flags; bit 0 means encrypted.
        var flags: UInt16
        var crc32: UInt32
        var compressedSize: Int
        var uncompressedSize: Int
        /// Where the entry's (possibly compressed) bytes lie in the file.
        var dataRange: Range<Int>
    }

    /// The whole file.
    let data: Data
    /// The file's path, for error messages.
    let file: String
    /// The entries in central-directory order.
    private(set) var entries: [Entry] = []
    private var indexByName: [String: Int] = [:]

    // Signatures and fixed sizes from the zip specification (APPNOTE.TXT).
    private static let endOfCentralDirectorySignature: UInt32 = 0x0605_4B50
    private static let zip64LocatorSignature: UInt32 = 0x0706_4B50
    private static let zip64EndOfCentralDirectorySignature: UInt32 = 0x0606_4B50
    private static let centralHeaderSignature: UInt32 = 0x0201_4B50
    private static let localHeaderSignature: UInt32 = 0x0403_4B50
    private static let endOfCentralDirectorySize = 22
    private static let zip64LocatorSize = 20
    private static let zip64EndOfCentralDirectorySize = 56
    private static let centralHeaderSize = 46
    private static let localHeaderSize = 30

    /// Parses the archive's directory and validates every entry's location.
    init(data: Data, file: String) throws(CheckpointError) {
        self.data = data
        self.file = file
        let directory = try Self.findCentralDirectory(in: data, file: file)
        let bytes = LittleEndianBytes(copying: data, range: directory.range)
        var position = 0
        for _ in 0..<directory.entryCount {
            let entry = try readCentralHeader(bytes, at: &position, directoryStart: directory.range.lowerBound)
            guard indexByName[entry.name] == nil else {
                throw .corrupt(file, "the zip archive holds two entries named '\(entry.name)'")
            }
            indexByName[entry.name] = entries.count
            entries.append(entry)
        }
    }

    /// The entry with this exact name, if there is one.
    func entry(named name: String) -> Entry? {
        indexByName[name].map { entries[$0] }
    }

    /// The validated location of a stored entry's bytes, after checking its CRC-32 if asked to.
    func contents(of entry: Entry, verifyingChecksum: Bool) throws(CheckpointError) -> Range<Int> {
        guard entry.flags & 1 == 0 else {
            throw .unsupported(
                file, "the zip entry '\(entry.name)' is encrypted",
                fix: "Use the unencrypted file that torch.save wrote.")
        }
        guard entry.method == 0 else {
            let method = entry.method == 8 ? "deflate" : "method \(entry.method)"
            throw .unsupported(
                file,
                "the zip entry '\(entry.name)' is compressed (\(method)); torch.save writes uncompressed entries, "
                    + "so the file was re-packed by another tool",
                fix: "Use the file exactly as torch.save wrote it, or re-pack it without compression (zip -0).")
        }
        guard entry.compressedSize == entry.uncompressedSize else {
            throw .corrupt(
                file,
                "the stored zip entry '\(entry.name)' claims \(entry.compressedSize) bytes in the file "
                    + "but \(entry.uncompressedSize) bytes of content")
        }
        if verifyingChecksum {
            let actual = data.withUnsafeBytes { CRC32.checksum(UnsafeRawBufferPointer(rebasing: $0[entry.dataRange])) }
            guard actual == entry.crc32 else {
                throw .corrupt(
                    file,
                    "the zip entry '\(entry.name)' fails its CRC-32 check (stored "
                        + "\(hex(entry.crc32)), computed \(hex(actual)))")
            }
        }
        return entry.dataRange
    }

    /// A copy of a stored entry's bytes, checked against its CRC-32.
    func bytes(of entry: Entry) throws(CheckpointError) -> [UInt8] {
        let range = try contents(of: entry, verifyingChecksum: true)
        return data.withUnsafeBytes { [UInt8]($0[range]) }
    }

    // MARK: - End of central directory

    /// Where the central directory lies and how many entries it has.
    private struct CentralDirectory {
        var range: Range<Int>
        var entryCount: Int
    }

    /// Finds the end-of-central-directory record (searching back over a possible archive comment),
    /// follows the zip64 locator if there is one, and validates the central directory's bounds.
    private static func findCentralDirectory(in data: Data, file: String) throws(CheckpointError) -> CentralDirectory {
        let length = data.count
        guard length >= endOfCentralDirectorySize else {
            throw .corrupt(file, "at \(length) bytes it is too short to be a zip archive (truncated?)")
        }
        // The record is 22 bytes plus a comment of at most 65,535 bytes, at the very end of the file.
        let tailStart = max(0, length - endOfCentralDirectorySize - 0xFFFF)
        let tail = LittleEndianBytes(copying: data, range: tailStart..<length)
        var recordOffset: Int?
        var candidate = tail.count - endOfCentralDirectorySize
        while candidate >= 0 {
            if tail.u32(candidate) == endOfCentralDirectorySignature,
                let commentLength = tail.u16(candidate + 20),
                candidate + endOfCentralDirectorySize + Int(commentLength) == tail.count
            {
                recordOffset = candidate
                break
            }
            candidate -= 1
        }
        guard let record = recordOffset,
            let disk = tail.u16(record + 4), let directoryDisk = tail.u16(record + 6),
            let entriesOnDisk = tail.u16(record + 8), let entryCount16 = tail.u16(record + 10),
            let size32 = tail.u32(record + 12), let offset32 = tail.u32(record + 16)
        else {
            throw .corrupt(file, "it has no end-of-central-directory record (the zip archive is truncated)")
        }
        let recordPosition = tailStart + record
        var entryCount = Int(entryCount16)
        var directorySize = Int(size32)
        var directoryOffset = Int(offset32)
        // The central directory must end before the records that describe it.
        var directoryLimit = recordPosition

        let locatorPosition = recordPosition - zip64LocatorSize
        let locator =
            locatorPosition >= 0 ? LittleEndianBytes(copying: data, range: locatorPosition..<recordPosition) : nil
        if let locator, locator.u32(0) == zip64LocatorSignature {
            guard let zip64Disk = locator.u32(4), let zip64Offset = locator.u64(8), let diskCount = locator.u32(16)
            else { throw .corrupt(file, "its zip64 locator is truncated") }
            guard zip64Disk == 0, diskCount <= 1 else {
                throw .unsupported(file, "it is a multi-volume zip archive", fix: "Join the volumes into one file.")
            }
            guard let start = Int(exactly: zip64Offset), start <= locatorPosition - zip64EndOfCentralDirectorySize
            else {
                throw .corrupt(file, "its zip64 end-of-central-directory offset \(zip64Offset) is outside the file")
            }
            let zip64 = LittleEndianBytes(
                copying: data, range: start..<(start + zip64EndOfCentralDirectorySize))
            guard zip64.u32(0) == zip64EndOfCentralDirectorySignature,
                let disk64 = zip64.u32(16), let directoryDisk64 = zip64.u32(20),
                let count64 = zip64.u64(32), let size64 = zip64.u64(40), let offset64 = zip64.u64(48)
            else { throw .corrupt(file, "its zip64 end-of-central-directory record is damaged") }
            guard disk64 == 0, directoryDisk64 == 0 else {
                throw .unsupported(file, "it is a multi-volume zip archive", fix: "Join the volumes into one file.")
            }
            guard let count = Int(exactly: count64), let size = Int(exactly: size64),
                let offset = Int(exactly: offset64)
            else { throw .corrupt(file, "its zip64 end-of-central-directory record has impossible sizes") }
            // Classic fields that are not saturated must agree with the zip64 ones: two readers of the same
            // file must not see two different archives.
            guard entryCount16 == 0xFFFF || Int(entryCount16) == count, size32 == 0xFFFF_FFFF || Int(size32) == size,
                offset32 == 0xFFFF_FFFF || Int(offset32) == offset
            else { throw .corrupt(file, "its classic and zip64 end-of-central-directory records disagree") }
            entryCount = count
            directorySize = size
            directoryOffset = offset
            directoryLimit = start
        } else {
            guard disk == 0, directoryDisk == 0, entriesOnDisk == entryCount16 else {
                throw .unsupported(file, "it is a multi-volume zip archive", fix: "Join the volumes into one file.")
            }
            if entryCount16 == 0xFFFF || size32 == 0xFFFF_FFFF || offset32 == 0xFFFF_FFFF {
                throw .corrupt(file, "it needs zip64 records but has no zip64 locator (the archive is damaged)")
            }
        }

        guard directoryOffset <= directoryLimit, directorySize <= directoryLimit - directoryOffset else {
            throw .corrupt(
                file,
                "its central directory (\(directorySize) bytes at offset \(directoryOffset)) "
                    + "lies outside the \(length)-byte file")
        }
        guard entryCount <= directorySize / centralHeaderSize else {
            throw .corrupt(
                file, "its central directory claims \(entryCount) entries, more than \(directorySize) bytes can hold")
        }
        return CentralDirectory(range: directoryOffset..<(directoryOffset + directorySize), entryCount: entryCount)
    }

    // MARK: - Central directory and local headers

    /// Reads one central-directory header at `position` (relative to the directory) and advances past it,
    /// then locates and checks the entry's local header.
    private func readCentralHeader(
        _ bytes: LittleEndianBytes, at position: inout Int, directoryStart: Int
    ) throws(CheckpointError) -> Entry {
        let at = position
        guard bytes.u32(at) == Self.centralHeaderSignature,
            let flags = bytes.u16(at + 8), let method = bytes.u16(at + 10), let crc = bytes.u32(at + 16),
            let compressed32 = bytes.u32(at + 20), let uncompressed32 = bytes.u32(at + 24),
            let nameLength = bytes.u16(at + 28), let extraLength = bytes.u16(at + 30),
            let commentLength = bytes.u16(at + 32), let diskStart16 = bytes.u16(at + 34),
            let localOffset32 = bytes.u32(at + 42)
        else {
            throw .corrupt(file, "its central directory is damaged at offset \(directoryStart + at)")
        }
        let nameStart = at + Self.centralHeaderSize
        let extraStart = nameStart + Int(nameLength)
        let end = extraStart + Int(extraLength) + Int(commentLength)
        guard end <= bytes.count, let nameBytes = bytes.slice(nameStart, count: Int(nameLength)) else {
            throw .corrupt(file, "an entry of its central directory runs past the directory's end")
        }
        guard let name = String(validating: nameBytes, as: UTF8.self) else {
            throw .corrupt(file, "a zip entry's name is not valid UTF-8")
        }
        position = end

        // Fields that do not fit in 32 bits are 0xFFFFFFFF here and follow in the zip64 extra field.
        var uncompressed = UInt64(uncompressed32)
        var compressed = UInt64(compressed32)
        var localOffset = UInt64(localOffset32)
        var diskStart = UInt32(diskStart16)
        if uncompressed32 == 0xFFFF_FFFF || compressed32 == 0xFFFF_FFFF || localOffset32 == 0xFFFF_FFFF
            || diskStart16 == 0xFFFF
        {
            guard let extra = bytes.slice(extraStart, count: Int(extraLength)),
                let zip64 = Self.zip64Field(in: LittleEndianBytes(extra))
            else { throw .corrupt(file, "the zip entry '\(name)' lacks the zip64 extra field its sizes call for") }
            var field = 0
            func next64() -> UInt64? {
                defer { field += 8 }
                return zip64.u64(field)
            }
            if uncompressed32 == 0xFFFF_FFFF { uncompressed = next64() ?? .max }
            if compressed32 == 0xFFFF_FFFF { compressed = next64() ?? .max }
            if localOffset32 == 0xFFFF_FFFF { localOffset = next64() ?? .max }
            if diskStart16 == 0xFFFF { diskStart = zip64.u32(field) ?? .max }
            guard uncompressed != .max, compressed != .max, localOffset != .max, diskStart != .max else {
                throw .corrupt(file, "the zip64 extra field of entry '\(name)' is truncated")
            }
        }
        guard diskStart == 0 else {
            throw .unsupported(file, "it is a multi-volume zip archive", fix: "Join the volumes into one file.")
        }
        guard let compressedSize = Int(exactly: compressed), let uncompressedSize = Int(exactly: uncompressed),
            let localHeader = Int(exactly: localOffset)
        else { throw .corrupt(file, "the zip entry '\(name)' has impossible sizes") }

        let dataRange = try locateData(
            name: name, nameBytes: nameBytes, localHeader: localHeader, size: compressedSize, limit: directoryStart)
        return Entry(
            name: name, method: method, flags: flags, crc32: crc, compressedSize: compressedSize,
            uncompressedSize: uncompressedSize, dataRange: dataRange)
    }

    /// The data of the zip64 extended-information extra field (header ID 1), if the extra block has one.
    private static func zip64Field(in extra: LittleEndianBytes) -> LittleEndianBytes? {
        var position = 0
        while let id = extra.u16(position), let size = extra.u16(position + 2) {
            guard let body = extra.slice(position + 4, count: Int(size)) else { return nil }
            if id == 1 { return LittleEndianBytes(body) }
            position += 4 + Int(size)
        }
        return nil
    }

    /// Checks the local header at `localHeader` against the central directory and returns where the entry's
    /// bytes lie; they must end before `limit` (the start of the central directory).
    private func locateData(
        name: String, nameBytes: [UInt8], localHeader: Int, size: Int, limit: Int
    ) throws(CheckpointError) -> Range<Int> {
        guard localHeader <= limit - Self.localHeaderSize else {
            throw .corrupt(file, "the zip entry '\(name)' points at offset \(localHeader), outside the archive's data")
        }
        let fixed = LittleEndianBytes(copying: data, range: localHeader..<(localHeader + Self.localHeaderSize))
        guard fixed.u32(0) == Self.localHeaderSignature, let nameLength = fixed.u16(26),
            let extraLength = fixed.u16(28)
        else { throw .corrupt(file, "the local header of zip entry '\(name)' is damaged") }
        let nameStart = localHeader + Self.localHeaderSize
        let dataStart = nameStart + Int(nameLength) + Int(extraLength)
        guard Int(nameLength) == nameBytes.count, dataStart <= limit,
            LittleEndianBytes(copying: data, range: nameStart..<(nameStart + nameBytes.count)).bytes == nameBytes
        else { throw .corrupt(file, "the local header of zip entry '\(name)' does not match the central directory") }
        guard size <= limit - dataStart else {
            throw .corrupt(file, "the zip entry '\(name)' (\(size) bytes) runs past the end of the archive's data")
        }
        return dataStart..<(dataStart + size)
    }

    private func hex(_ value: UInt32) -> String { "0x" + String(value, radix: 16, uppercase: true) }
}

/// Bounds-checked little-endian reads from a byte array: every read past the end returns nil.
struct LittleEndianBytes {
    let bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// Copies `range` of `data`; the caller has checked that it lies within the data.
    init(copying data: Data, range: Range<Int>) {
        self.bytes = data.withUnsafeBytes { [UInt8]($0[range]) }
    }

    var count: Int { bytes.count }

    func u16(_ offset: Int) -> UInt16? { integer(offset, size: 2).map { UInt16(truncatingIfNeeded: $0) } }
    func u32(_ offset: Int) -> UInt32? { integer(offset, size: 4).map { UInt32(truncatingIfNeeded: $0) } }
    func u64(_ offset: Int) -> UInt64? { integer(offset, size: 8) }

    /// `count` bytes from `offset`, or nil if they are not all there.
    func slice(_ offset: Int, count: Int) -> [UInt8]? {
        guard offset >= 0, count >= 0, offset <= bytes.count, count <= bytes.count - offset else { return nil }
        return Array(bytes[offset..<(offset + count)])
    }

    private func integer(_ offset: Int, size: Int) -> UInt64? {
        guard offset >= 0, offset <= bytes.count - size else { return nil }
        var value: UInt64 = 0
        for index in (0..<size).reversed() {
            value = value << 8 | UInt64(bytes[offset + index])
        }
        return value
    }
}

/// CRC-32 (IEEE 802.3, as zip uses it), eight bytes at a time ("slicing-by-8").
enum CRC32 {
    /// Eight 256-entry tables, one after the other: table k gives the CRC of a byte followed by k zero bytes.
    private static let tables: [UInt32] = {
        var tables = [UInt32](repeating: 0, count: 8 * 256)
        for byte in 0..<256 {
            var crc = UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
            tables[byte] = crc
        }
        for table in 1..<8 {
            for byte in 0..<256 {
                let previous = tables[(table - 1) * 256 + byte]
                tables[table * 256 + byte] = (previous >> 8) ^ tables[Int(previous & 0xFF)]
            }
        }
        return tables
    }()

    /// The CRC-32 of `buffer`.
    static func checksum(_ buffer: UnsafeRawBufferPointer) -> UInt32 {
        tables.withUnsafeBufferPointer { table in
            var crc: UInt32 = 0xFFFF_FFFF
            var offset = 0
            let count = buffer.count
            while count - offset >= 8 {
                let low = UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) ^ crc
                let high = UInt32(littleEndian: buffer.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self))
                crc =
                    table[7 * 256 + Int(low & 0xFF)] ^ table[6 * 256 + Int((low >> 8) & 0xFF)]
                    ^ table[5 * 256 + Int((low >> 16) & 0xFF)] ^ table[4 * 256 + Int(low >> 24)]
                    ^ table[3 * 256 + Int(high & 0xFF)] ^ table[2 * 256 + Int((high >> 8) & 0xFF)]
                    ^ table[1 * 256 + Int((high >> 16) & 0xFF)] ^ table[Int(high >> 24)]
                offset += 8
            }
            while offset < count {
                crc = table[Int((crc ^ UInt32(buffer[offset])) & 0xFF)] ^ (crc >> 8)
                offset += 1
            }
            return ~crc
        }
    }
}
