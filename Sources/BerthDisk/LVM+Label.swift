/// LVM2 physical volumes, their text metadata, and logical volumes read through the PV:
/// what a guest whose root is on `/dev/vg/root` needs. Read-only, no device-mapper.
public enum LVM {
    /// Limits on what a hostile PV controls (XSA-25: sizes from the disk never drive
    /// unbounded allocations or loops).
    public enum Limits {
        public static let maxMetadataBytes = 4 << 20
        public static let maxLogicalVolumes = 1024
        public static let maxSegmentsPerVolume = 1024
        public static let maxStripes = 128
        public static let maxPhysicalVolumes = 256
        public static let maxDiskAreas = 16
    }

    public enum Error: Swift.Error, CustomStringConvertible, Sendable, Equatable {
        case noLabel
        case badLabel(sector: UInt64, reason: String)
        case badMetadataArea(offset: UInt64, reason: String)
        case noMetadata
        case badMetadataText(line: Int, reason: String)
        case badMetadata(reason: String)
        case volumeUnavailable(name: String, reason: String)
        case readOutsideVolume(name: String, offset: UInt64, count: Int, size: UInt64)

        public var description: String {
            switch self {
            case .noLabel:
                "no LVM2 label (LABELONE) in the first four sectors: this is not an LVM physical volume"
            case .badLabel(let sector, let reason):
                "LVM2 label in sector \(sector) is damaged: \(reason); check it with 'pvck'"
            case .badMetadataArea(let offset, let reason):
                "LVM2 metadata area at byte \(offset) is damaged: \(reason); restore it with 'vgcfgrestore'"
            case .noMetadata:
                "the LVM2 physical volume holds no usable metadata copy; restore it with 'vgcfgrestore'"
            case .badMetadataText(let line, let reason):
                "LVM2 metadata text, line \(line): \(reason); restore it with 'vgcfgrestore'"
            case .badMetadata(let reason):
                "LVM2 metadata is inconsistent: \(reason)"
            case .volumeUnavailable(let name, let reason):
                "logical volume \(name) cannot be read: \(reason)"
            case .readOutsideVolume(let name, let offset, let count, let size):
                "read of \(count) bytes at \(offset) is outside logical volume \(name) (\(size) bytes)"
            }
        }
    }

    /// LVM's CRC: the IEEE table with this seed and no final inversion.
    static let initialCRC: UInt32 = 0xF597_A6CF
    static let mdaMagic = " LVM2 x[5A%r0N*>"

    /// Whether the first four sectors carry an LVM2 label (cheap: at most 2 KiB read).
    public static func hasLabel(_ source: any ByteSource) -> Bool {
        for sector in 0..<UInt64(4) {
            guard let bytes = try? source.read(at: sector * 512, count: 512) else { return false }
            if FieldReader(bytes, structure: "LVM label").matches(0, "LABELONE") { return true }
        }
        return false
    }

    /// One physical volume: its label, PV header and newest metadata text.
    public struct PhysicalVolume: Sendable {
        public let source: any ByteSource
        /// The PV UUID as stored (32 characters, no dashes).
        public let uuid: String
        public let deviceSize: UInt64
        /// Parsed metadata of the newest copy in this PV's metadata areas, if it has any.
        public let metadata: ConfigValue?

        /// - Throws: `LVM.Error` when there is no label or the label/header/metadata is damaged.
        public init(source: any ByteSource) throws {
            self.source = source
            var found: (sector: UInt64, bytes: [UInt8])?
            for sector in 0..<UInt64(4) {
                guard sector * 512 + 512 <= source.size else { break }
                let bytes = try source.read(at: sector * 512, count: 512)
                if FieldReader(bytes, structure: "LVM label").matches(0, "LABELONE") {
                    found = (sector, bytes)
                    break
                }
            }
            guard let (sector, bytes) = found else { throw Error.noLabel }
            let r = FieldReader(bytes, structure: "LVM label", at: sector * 512)
            func bad(_ reason: String) -> Error { .badLabel(sector: sector, reason: reason) }
            guard try r.u64(8) == sector else { throw bad("it names sector \(try r.u64(8))") }
            let crc = DiskCRC32.update(LVM.initialCRC, bytes[20..<512])
            guard crc == (try r.u32(16)) else { throw bad("checksum mismatch") }
            guard r.matches(24, "LVM2 001") else { throw bad("type is not 'LVM2 001'") }
            let headerOffset = Int(try r.u32(20))
            guard headerOffset >= 32, headerOffset < 512 - 40 else { throw bad("PV header offset \(headerOffset)") }
            uuid = String(decoding: try r.slice(headerOffset, 32), as: UTF8.self)
            deviceSize = try r.u64(headerOffset + 32)
            // Data areas then metadata areas, each list ended by a zero entry.
            var lists: [[(offset: UInt64, size: UInt64)]] = [[], []]
            var at = headerOffset + 40
            for list in 0..<2 {
                while true {
                    guard at + 16 <= 512 else { throw bad("disk area list runs off the sector") }
                    let offset = try r.u64(at)
                    let size = try r.u64(at + 8)
                    at += 16
                    if offset == 0 { break }
                    lists[list].append((offset, size))
                    guard lists[list].count <= Limits.maxDiskAreas else { throw bad("too many disk areas") }
                }
            }
            var best: (seqno: Int64, config: ConfigValue)?
            var firstError: Swift.Error?
            for area in lists[1] {
                do {
                    let text = try LVM.readMetadataText(source: source, areaOffset: area.offset, areaSize: area.size)
                    let config = try LVM.parseConfig(text)
                    let seqno = LVM.volumeGroupSection(config)?.value["seqno"]?.number ?? 0
                    if best == nil || seqno > (best?.seqno ?? 0) { best = (seqno, config) }
                } catch {
                    firstError = firstError ?? error
                }
            }
            if best == nil, let firstError { throw firstError }
            metadata = best?.config
        }
    }

    static func readMetadataText(source: any ByteSource, areaOffset: UInt64, areaSize: UInt64) throws -> [UInt8] {
        func bad(_ reason: String) -> Error { .badMetadataArea(offset: areaOffset, reason: reason) }
        guard areaSize >= 1024 else { throw bad("area of \(areaSize) bytes is too small") }
        let header = try source.read(at: areaOffset, count: 512)
        let r = FieldReader(header, structure: "LVM metadata area header", at: areaOffset)
        guard DiskCRC32.update(initialCRC, header[4..<512]) == (try r.u32(0)) else { throw bad("checksum mismatch") }
        guard r.matches(4, mdaMagic) else { throw bad("bad magic") }
        guard try r.u32(20) == 1 else { throw bad("version \(try r.u32(20)) is not 1") }
        guard try r.u64(24) == areaOffset else { throw bad("header names start \(try r.u64(24))") }
        let size = try r.u64(32)
        guard size == areaSize else { throw bad("header names size \(size), PV header \(areaSize)") }
        let textOffset = try r.u64(40)
        let textSize = try r.u64(48)
        let checksum = try r.u32(56)
        guard textOffset != 0 else { throw Error.noMetadata }
        // The text lives in a ring after the 512-byte header and may wrap.
        guard textOffset >= 512, textOffset < areaSize else { throw bad("text offset \(textOffset) is outside the area") }
        guard textSize > 0, textSize <= UInt64(Limits.maxMetadataBytes), textSize <= areaSize - 512 else {
            throw bad("text size \(textSize) is outside 1…\(min(UInt64(Limits.maxMetadataBytes), areaSize - 512))")
        }
        let first = min(textSize, areaSize - textOffset)
        let (textStart, overflow) = areaOffset.addingReportingOverflow(textOffset)
        guard !overflow else { throw bad("text offset \(textOffset) overflows") }
        var text = try source.read(at: textStart, count: Int(first))
        if first < textSize {
            text += try source.read(at: areaOffset + 512, count: Int(textSize - first))
        }
        guard DiskCRC32.update(initialCRC, text) == checksum else { throw bad("metadata text checksum mismatch") }
        return text
    }

    /// The one top-level section of a metadata text: the volume group.
    static func volumeGroupSection(_ config: ConfigValue) -> (name: String, value: ConfigValue)? {
        guard let items = config.sectionItems else { return nil }
        for item in items { if case .section = item.value { return (item.key, item.value) } }
        return nil
    }
}
