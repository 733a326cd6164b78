/// A read-only ISO9660 reader (install media) with Rock Ridge and Joliet names, for untrusted
/// images.
///
/// Names come from Rock Ridge when the image has it, else from the Joliet tree, else from the
/// plain ISO names (`;1` versions and a trailing `.` stripped). Lookups try an exact match
/// first, then a case-insensitive one. A name that contains `/` (possible in Rock Ridge and
/// Joliet data) can be listed but never matches a path component, so it cannot act as a
/// separator. `open(_:)` gives ranged reads for serving files in place.
public struct ISO9660FileSystem: FileSystem {
    public enum Error: Swift.Error, CustomStringConvertible, Sendable, Equatable {
        case noVolumeDescriptor
        case badVolumeDescriptor(sector: UInt64, reason: String)
        case badDirectoryRecord(sector: UInt64, offset: Int, reason: String)
        case directoryTooLarge(sector: UInt64, length: UInt64)
        case badSystemUse(sector: UInt64, reason: String)
        case extentOutsideImage(sector: UInt64, length: UInt64)
        case unsupported(sector: UInt64, reason: String)
        case readFailed(structure: String, offset: UInt64, reason: String)

        public var description: String {
            let hint = "the ISO image is damaged or hostile; check it with 'xorriso -indev IMAGE -check_media --'"
            return switch self {
            case .noVolumeDescriptor: "ISO9660: no primary volume descriptor at sector 16 — not an ISO9660 image"
            case .badVolumeDescriptor(let sector, let reason): "ISO9660 volume descriptor at sector \(sector): \(reason) — \(hint)"
            case .badDirectoryRecord(let sector, let offset, let reason):
                "ISO9660 directory record in sector \(sector) at offset \(offset): \(reason) — \(hint)"
            case .directoryTooLarge(let sector, let length): "ISO9660 directory at sector \(sector): \(length) bytes is too large — \(hint)"
            case .badSystemUse(let sector, let reason): "ISO9660 Rock Ridge data near sector \(sector): \(reason) — \(hint)"
            case .extentOutsideImage(let sector, let length):
                "ISO9660 extent at sector \(sector) (\(length) bytes) lies past the end of the image — the image may be truncated"
            case .unsupported(let sector, let reason): "ISO9660 record at sector \(sector): \(reason) is not supported"
            case .readFailed(let structure, let offset, let reason):
                "ISO9660 \(structure) at byte \(offset): \(reason) — the image may be truncated"
            }
        }
    }

    /// Which names the reader uses.
    public enum Names: String, Sendable { case rockRidge, joliet, plain }

    public enum Limits {
        /// A directory's extent is read whole; 100,000 entries of ~60 bytes fit well below this.
        public static let maxDirectoryBytes: UInt64 = 16 << 20
        /// Continuation (CE) hops and bytes for one record's Rock Ridge data.
        public static let maxContinuations = 32
        public static let maxSystemUseBytes = 64 << 10
        public static let maxVolumeDescriptors = 64
        public static let maxExtentsPerFile = 1024
    }

    public let kind = "iso9660"
    /// The naming the image offers and this reader uses.
    public let names: Names
    /// The volume identifier from the primary volume descriptor, spaces trimmed.
    public let volumeID: String
    let source: any ByteSource
    let blockSize: UInt64
    let root: Entry
    let suspSkip: Int

    static let sectorSize: UInt64 = 2048

    /// True when sector 16 holds an ISO9660 volume descriptor (`CD001`).
    public static func matches(_ source: any ByteSource) -> Bool {
        guard let head = try? source.read(at: 16 * sectorSize, count: 6) else { return false }
        return Array(head[1..<6]) == Array("CD001".utf8)
    }

    /// Reads the volume descriptors, picks Rock Ridge, Joliet or plain names, and checks the root.
    /// - Throws: `ISO9660FileSystem.Error` when there is no usable primary volume descriptor.
    public init(source: any ByteSource) throws {
        self.source = source
        var primary: BinaryFields?
        var joliet: BinaryFields?
        var sector: UInt64 = 16
        for _ in 0..<Limits.maxVolumeDescriptors {
            let f = BinaryFields(try Self.read(source, sector * Self.sectorSize, Int(Self.sectorSize), "volume descriptor"))
            guard f.slice(1, 5) == Array("CD001".utf8) else {
                if primary == nil { throw Error.noVolumeDescriptor }
                break
            }
            let type = f.u8(0)
            if type == 255 { break }
            if type == 1, primary == nil { primary = f }
            // Joliet: a supplementary descriptor with a UCS-2 escape sequence (%/@, %/C, %/E).
            if type == 2, joliet == nil, f.u8(88) == 0x25, f.u8(89) == 0x2F, [0x40, 0x43, 0x45].contains(f.u8(90)) {
                joliet = f
            }
            sector += 1
        }
        guard let pvd = primary else { throw Error.noVolumeDescriptor }
        let blockSize = UInt64(pvd.le16(128))
        guard [512, 1024, 2048].contains(blockSize) else {
            throw Error.badVolumeDescriptor(sector: 16, reason: "logical block size \(blockSize)")
        }
        self.blockSize = blockSize
        volumeID = Self.trimSpaces(String(decoding: pvd.slice(40, 32), as: UTF8.self))
        let pvdRoot = try Self.rootRecord(pvd, blockSize: blockSize)
        // Rock Ridge announces itself with SUSP's SP entry in the root's "." record.
        var skip = -1
        let rootDot = try Self.read(source, pvdRoot.lba * blockSize, Int(blockSize), "root directory")
        let dot = BinaryFields(rootDot)
        let dotLength = Int(dot.u8(0))
        if dotLength >= 34 + 7, dot.slice(34, 2) == Array("SP".utf8), dot.u8(38) == 0xBE, dot.u8(39) == 0xEF {
            skip = Int(dot.u8(40))
        }
        if skip >= 0 {
            names = .rockRidge
            suspSkip = skip
            root = pvdRoot.entry
        } else if let joliet {
            names = .joliet
            suspSkip = 0
            root = try Self.rootRecord(joliet, blockSize: blockSize).entry
        } else {
            names = .plain
            suspSkip = 0
            root = pvdRoot.entry
        }
    }

    private static func rootRecord(_ vd: BinaryFields, blockSize: UInt64) throws -> (lba: UInt64, entry: Entry) {
        let r = BinaryFields(vd.slice(156, 34))
        guard r.u8(0) == 34, r.u8(25) & 0x02 != 0 else {
            throw Error.badVolumeDescriptor(sector: 16, reason: "root directory record")
        }
        let lba = UInt64(r.le32(2)) + UInt64(r.u8(1))
        let entry = Entry(name: "", extents: [Extent(lba: lba, length: UInt64(r.le32(10)))], isDirectory: true)
        return (lba, entry)
    }

    static func read(_ source: any ByteSource, _ offset: UInt64, _ count: Int, _ what: @autoclosure () -> String) throws -> [UInt8] {
        do {
            return try source.read(at: offset, count: count)
        } catch let error as ByteSourceError {
            throw Error.readFailed(structure: what(), offset: offset, reason: error.description)
        }
    }
}

extension ISO9660FileSystem {
    static func trimSpaces(_ text: String) -> String {
        var scalars = Array(text.unicodeScalars)
        while scalars.last == " " || scalars.last == "\0" { scalars.removeLast() }
        return String(String.UnicodeScalarView(scalars))
    }
}
