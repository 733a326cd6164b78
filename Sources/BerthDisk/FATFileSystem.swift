/// A read-only FAT12/16/32 reader (EFI system partitions, boot floppies) for untrusted images.
///
/// Reads the boot sector at `init`, then only the FAT sectors and clusters a lookup needs.
/// Cluster chains are bounded by the cluster count and checked for loops; names are matched
/// case-insensitively against both the VFAT long name and the 8.3 name.
public struct FATFileSystem: FileSystem {
    public enum Error: Swift.Error, CustomStringConvertible, Sendable, Equatable {
        case badBootSector(reason: String)
        case badCluster(cluster: UInt32, referencedFrom: UInt32)
        case chainLoop(start: UInt32, cluster: UInt32)
        case chainTooShort(start: UInt32, clusters: Int, needed: Int)
        case directoryTooLarge(start: UInt32)
        case readFailed(structure: String, offset: UInt64, reason: String)

        public var description: String {
            let hint = "the FAT image is damaged or hostile; check it with 'fsck.vfat -n'"
            return switch self {
            case .badBootSector(let reason): "FAT boot sector: \(reason) — not a usable FAT filesystem"
            case .badCluster(let cluster, let from):
                "FAT: cluster \(cluster) (after cluster \(from)) is free, reserved or out of range — \(hint)"
            case .chainLoop(let start, let cluster): "FAT: the chain from cluster \(start) loops at cluster \(cluster) — \(hint)"
            case .chainTooShort(let start, let clusters, let needed):
                "FAT: the chain from cluster \(start) ends after \(clusters) clusters, the file needs \(needed) — \(hint)"
            case .directoryTooLarge(let start):
                "FAT: the directory at cluster \(start) is longer than the 65536 entries FAT allows — \(hint)"
            case .readFailed(let structure, let offset, let reason):
                "FAT \(structure) at byte \(offset): \(reason) — the image may be truncated"
            }
        }
    }

    public enum Bits: Int, Sendable { case fat12 = 12, fat16 = 16, fat32 = 32 }

    public let kind = "vfat"
    /// FAT12, FAT16 or FAT32, decided by the cluster count as the specification says.
    public let bits: Bits
    let source: any ByteSource
    let sectorSize: Int
    let clusterSize: Int
    let fatOffset: UInt64
    let rootOffset: UInt64  // FAT12/16 fixed root directory
    let rootEntries: Int
    let rootCluster: UInt32  // FAT32
    let dataOffset: UInt64
    let clusterCount: UInt32

    /// True when the source has a FAT boot sector (0x55AA, a jump, a sane BPB).
    public static func matches(_ source: any ByteSource) -> Bool {
        guard let sector = try? source.read(at: 0, count: min(512, Int(clamping: source.size))) else { return false }
        let f = BinaryFields(sector)
        guard f.count == 512, f.u8(510) == 0x55, f.u8(511) == 0xAA, f.u8(0) == 0xEB || f.u8(0) == 0xE9 else { return false }
        let bps = Int(f.le16(11))
        let spc = Int(f.u8(13))
        return [512, 1024, 2048, 4096].contains(bps) && spc > 0 && spc & (spc - 1) == 0 && f.le16(14) > 0 && f.u8(16) > 0
    }

    /// Reads and checks the BIOS parameter block.
    /// - Throws: `FATFileSystem.Error.badBootSector` when the geometry is impossible.
    public init(source: any ByteSource) throws {
        self.source = source
        let f = BinaryFields(try Self.read(source, 0, 512, "boot sector"))
        let bps = Int(f.le16(11))
        let spc = Int(f.u8(13))
        guard [512, 1024, 2048, 4096].contains(bps) else { throw Error.badBootSector(reason: "\(bps) bytes per sector") }
        guard spc > 0, spc & (spc - 1) == 0 else { throw Error.badBootSector(reason: "\(spc) sectors per cluster") }
        let reserved = UInt64(f.le16(14))
        let fats = UInt64(f.u8(16))
        let rootEntries = Int(f.le16(17))
        guard reserved > 0, fats > 0 else { throw Error.badBootSector(reason: "\(reserved) reserved sectors, \(fats) FATs") }
        let fatSectors = f.le16(22) != 0 ? UInt64(f.le16(22)) : UInt64(f.le32(36))
        let total = f.le16(19) != 0 ? UInt64(f.le16(19)) : UInt64(f.le32(32))
        guard fatSectors > 0 else { throw Error.badBootSector(reason: "FAT size 0") }
        let rootSectors = UInt64((rootEntries * 32 + bps - 1) / bps)
        let meta = reserved + fats * fatSectors + rootSectors
        guard total > meta else { throw Error.badBootSector(reason: "\(total) sectors leave no data area") }
        let clusters = (total - meta) / UInt64(spc)
        guard clusters > 0, clusters < 0x0FFF_FFF5 else { throw Error.badBootSector(reason: "\(clusters) clusters") }
        let bits: Bits = clusters < 4085 ? .fat12 : clusters < 65525 ? .fat16 : .fat32
        // The FAT must hold an entry for every cluster.
        guard fatSectors * UInt64(bps) * 8 >= (clusters + 2) * UInt64(bits.rawValue) else {
            throw Error.badBootSector(reason: "a \(fatSectors)-sector FAT cannot map \(clusters) clusters")
        }
        if bits == .fat32 {
            guard rootEntries == 0 else { throw Error.badBootSector(reason: "FAT32 with a fixed root directory") }
        } else {
            guard rootEntries > 0 else { throw Error.badBootSector(reason: "no root directory entries") }
        }
        self.bits = bits
        sectorSize = bps
        clusterSize = bps * spc
        fatOffset = reserved * UInt64(bps)
        rootOffset = (reserved + fats * fatSectors) * UInt64(bps)
        self.rootEntries = rootEntries
        rootCluster = bits == .fat32 ? f.le32(44) & 0x0FFF_FFFF : 0
        dataOffset = meta * UInt64(bps)
        clusterCount = UInt32(clusters)
        if bits == .fat32 {
            guard isValid(rootCluster) else { throw Error.badBootSector(reason: "root cluster \(rootCluster)") }
        }
    }

    static func read(_ source: any ByteSource, _ offset: UInt64, _ count: Int, _ what: @autoclosure () -> String) throws -> [UInt8] {
        do {
            return try source.read(at: offset, count: count)
        } catch let error as ByteSourceError {
            throw Error.readFailed(structure: what(), offset: offset, reason: error.description)
        }
    }

    func isValid(_ cluster: UInt32) -> Bool { cluster >= 2 && cluster - 2 < clusterCount }

    func clusterOffset(_ cluster: UInt32) -> UInt64 { dataOffset + UInt64(cluster - 2) * UInt64(clusterSize) }

    /// Follows a chain for at most `limit` clusters. Returns the clusters in order; stops early
    /// at an end-of-chain mark. Loops and references to free or reserved clusters throw.
    func chain(from start: UInt32, limit: Int) throws -> [UInt32] {
        guard isValid(start) else { throw Error.badCluster(cluster: start, referencedFrom: 0) }
        var out: [UInt32] = []
        var seen = Set<UInt32>()
        var cachedSector: UInt64 = .max
        var cache: [UInt8] = []
        let endMark: UInt32 = bits == .fat12 ? 0xFF8 : bits == .fat16 ? 0xFFF8 : 0x0FFF_FFF8
        var cluster = start
        while out.count < limit {
            guard seen.insert(cluster).inserted else { throw Error.chainLoop(start: start, cluster: cluster) }
            out.append(cluster)
            // Read the entry through a one-sector cache; FAT12 entries may straddle two sectors.
            let byte = bits == .fat12 ? UInt64(cluster) + UInt64(cluster / 2) : UInt64(cluster) * UInt64(bits.rawValue / 8)
            var raw: UInt32 = 0
            for i in 0..<(bits == .fat32 ? 4 : 2) {
                let at = byte + UInt64(i)
                let sector = at / UInt64(sectorSize)
                if sector != cachedSector {
                    cache = try Self.read(source, fatOffset + sector * UInt64(sectorSize), sectorSize, "FAT sector \(sector)")
                    cachedSector = sector
                }
                raw |= UInt32(cache[Int(at % UInt64(sectorSize))]) << (8 * UInt32(i))
            }
            let next: UInt32 =
                switch bits {
                case .fat12: cluster & 1 == 1 ? raw >> 4 : raw & 0xFFF
                case .fat16: raw
                case .fat32: raw & 0x0FFF_FFFF
                }
            if next >= endMark { break }
            guard isValid(next) else { throw Error.badCluster(cluster: next, referencedFrom: cluster) }
            cluster = next
        }
        return out
    }
}
