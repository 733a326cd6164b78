/// Little-endian field decoding over bytes already read from an image, with a bounds check
/// on every field: a corrupt length or offset becomes an error naming the structure, never
/// a trap.
struct FieldReader {
    let bytes: [UInt8]
    /// What these bytes are (`GPT header`, `ext4 inode 12`), for messages.
    let structure: String
    /// Where the bytes came from on the disk, for messages.
    let diskOffset: UInt64

    init(_ bytes: [UInt8], structure: String, at diskOffset: UInt64 = 0) {
        self.bytes = bytes
        self.structure = structure
        self.diskOffset = diskOffset
    }

    var count: Int { bytes.count }

    @inline(__always)
    private func check(_ offset: Int, _ width: Int) throws {
        guard offset >= 0, width >= 0, offset <= bytes.count, width <= bytes.count - offset else {
            throw FieldReaderError.truncated(
                structure: structure, diskOffset: diskOffset, field: offset, width: width, available: bytes.count)
        }
    }

    func u8(_ offset: Int) throws -> UInt8 {
        try check(offset, 1)
        return bytes[offset]
    }

    func u16(_ offset: Int) throws -> UInt16 {
        try check(offset, 2)
        return UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8
    }

    func u32(_ offset: Int) throws -> UInt32 {
        try check(offset, 4)
        var value: UInt32 = 0
        for i in (0..<4).reversed() { value = value << 8 | UInt32(bytes[offset + i]) }
        return value
    }

    func u64(_ offset: Int) throws -> UInt64 {
        try check(offset, 8)
        var value: UInt64 = 0
        for i in (0..<8).reversed() { value = value << 8 | UInt64(bytes[offset + i]) }
        return value
    }

    func slice(_ offset: Int, _ width: Int) throws -> ArraySlice<UInt8> {
        try check(offset, width)
        return bytes[offset..<offset + width]
    }

    /// Bytes compared with an ASCII signature (`EFI PART`, `LABELONE`).
    func matches(_ offset: Int, _ ascii: String) -> Bool {
        let expected = Array(ascii.utf8)
        guard let got = try? slice(offset, expected.count) else { return false }
        return got.elementsEqual(expected)
    }
}

/// A field lay outside the bytes read for its structure: the structure is truncated or a
/// length inside it is corrupt.
public enum FieldReaderError: Error, CustomStringConvertible, Sendable, Equatable {
    case truncated(structure: String, diskOffset: UInt64, field: Int, width: Int, available: Int)

    public var description: String {
        switch self {
        case .truncated(let structure, let diskOffset, let field, let width, let available):
            "\(structure) at disk offset \(diskOffset) is corrupt: field at +\(field) (\(width) bytes) "
                + "lies outside its \(available) bytes; the image is damaged or not what it claims to be"
        }
    }
}

/// CRC-32 with the IEEE polynomial (reflected 0xEDB88320), as used by GPT and, with another
/// seed and no final inversion, by LVM2.
enum DiskCRC32 {
    static let table: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    /// The raw register update: no initial or final inversion. Not generic, so that it is
    /// compiled once, specialized (a 16 KiB GPT entry array is checked on every open).
    static func update(_ crc: UInt32, _ bytes: ArraySlice<UInt8>) -> UInt32 {
        table.withUnsafeBufferPointer { t in
            bytes.withUnsafeBufferPointer { b in
                var c = crc
                for byte in b { c = t[Int((c ^ UInt32(byte)) & 0xFF)] ^ (c >> 8) }
                return c
            }
        }
    }

    static func update(_ crc: UInt32, _ bytes: [UInt8]) -> UInt32 { update(crc, bytes[...]) }

    /// The standard CRC-32 (zlib, GPT).
    static func ieee(_ bytes: [UInt8]) -> UInt32 { ~update(0xFFFF_FFFF, bytes) }
}
