/// A read-only XFS reader (v4 and v5/CRC filesystems) for untrusted images.
///
/// Reads the superblock at `init`, then only the inodes, btree blocks and directory blocks a
/// lookup needs. CRCs are not verified; v5 header layouts are. Every block number is checked
/// against the AG geometry, every count against the structure that holds it, btree walks
/// against a depth limit, and every read against the image size.
public struct XFSFileSystem: FileSystem {
    public enum Error: Swift.Error, CustomStringConvertible, Sendable, Equatable {
        case badSuperblock(reason: String)
        case unsupportedFeatures(incompat: UInt32)
        case badInodeNumber(inode: UInt64)
        case badInode(inode: UInt64, offset: UInt64, reason: String)
        case badBlockNumber(inode: UInt64, block: UInt64)
        case badBmapBtree(inode: UInt64, offset: UInt64, reason: String)
        case tooManyExtents(inode: UInt64, limit: Int)
        case badDirectory(inode: UInt64, offset: UInt64, reason: String)
        case badSymlink(inode: UInt64, reason: String)
        case readFailed(structure: String, offset: UInt64, reason: String)

        public var description: String {
            let hint = "the XFS image is damaged or hostile; check it with 'xfs_repair -n' before booting it"
            return switch self {
            case .badSuperblock(let reason): "XFS superblock: \(reason) — not a usable XFS filesystem"
            case .unsupportedFeatures(let incompat):
                "XFS superblock: unknown incompatible features 0x\(String(incompat, radix: 16)) — this reader cannot safely read the filesystem; boot the guest with a direct kernel instead"
            case .badInodeNumber(let inode): "XFS inode \(inode): number outside the filesystem — \(hint)"
            case .badInode(let inode, let offset, let reason): "XFS inode \(inode) at byte \(offset): \(reason) — \(hint)"
            case .badBlockNumber(let inode, let block):
                "XFS inode \(inode): block \(block) is outside the filesystem — \(hint)"
            case .badBmapBtree(let inode, let offset, let reason):
                "XFS inode \(inode): extent btree block at byte \(offset): \(reason) — \(hint)"
            case .tooManyExtents(let inode, let limit): "XFS inode \(inode): more than \(limit) extents — \(hint)"
            case .badDirectory(let inode, let offset, let reason):
                "XFS directory inode \(inode) at byte \(offset): \(reason) — \(hint)"
            case .badSymlink(let inode, let reason): "XFS symlink inode \(inode): \(reason) — \(hint)"
            case .readFailed(let structure, let offset, let reason):
                "XFS \(structure) at byte \(offset): \(reason) — the image may be truncated"
            }
        }
    }

    /// Caps on image-controlled work (a crafted btree or directory could otherwise make a
    /// lookup read the whole image or allocate without bound).
    public enum Limits {
        public static let maxExtents = 1 << 20
        public static let maxBtreeDepth = 12
        public static let maxBtreeBlocks = 1 << 16
        public static let maxDirectoryBlocks = 1 << 16
        public static let maxSymlinkLength = 1024
    }

    struct Superblock: Sendable {
        var blockSize: Int
        var agBlocks: UInt64
        var agCount: UInt64
        var rootInode: UInt64
        var inodeSize: Int
        var blockLog: Int
        var inodesPerBlockLog: Int
        var agBlockLog: Int
        var dirBlockLog: Int
        var version: Int
        var hasFileType: Bool
        var dirBlockSize: Int { blockSize << dirBlockLog }
        var isV5: Bool { version == 5 }
    }

    public let kind = "xfs"
    let source: any ByteSource
    let sb: Superblock

    static let magic: [UInt8] = Array("XFSB".utf8)

    /// True when the source starts with the XFS superblock magic.
    public static func matches(_ source: any ByteSource) -> Bool {
        guard source.size >= 512, let head = try? source.read(at: 0, count: 4) else { return false }
        return head == magic
    }

    /// Reads and checks the primary superblock.
    /// - Throws: `XFSFileSystem.Error` when the superblock is missing, inconsistent or uses
    ///   incompatible features this reader does not know.
    public init(source: any ByteSource) throws {
        self.source = source
        let f = BinaryFields(try Self.read(source, 0, 512, "superblock"))
        guard f.slice(0, 4) == Self.magic else { throw Error.badSuperblock(reason: "no XFSB magic") }
        let blockSize = Int(f.be32(4))
        let blockLog = Int(f.u8(120))
        guard (9...16).contains(blockLog), blockSize == 1 << blockLog else {
            throw Error.badSuperblock(reason: "block size \(blockSize) (log \(blockLog))")
        }
        let inodeSize = Int(f.be16(104))
        let inodeLog = Int(f.u8(122))
        guard (8...11).contains(inodeLog), inodeSize == 1 << inodeLog, inodeSize <= blockSize else {
            throw Error.badSuperblock(reason: "inode size \(inodeSize)")
        }
        let inopbLog = Int(f.u8(123))
        guard inopbLog == blockLog - inodeLog, Int(f.be16(106)) == 1 << inopbLog else {
            throw Error.badSuperblock(reason: "inodes per block \(f.be16(106))")
        }
        let agBlocks = UInt64(f.be32(84))
        let agBlockLog = Int(f.u8(124))
        guard agBlocks > 0, (1...31).contains(agBlockLog), agBlocks <= 1 << agBlockLog,
            agBlocks > 1 << (agBlockLog - 1)
        else { throw Error.badSuperblock(reason: "AG size \(agBlocks) blocks (log \(agBlockLog))") }
        let agCount = UInt64(f.be32(88))
        guard agCount > 0 else { throw Error.badSuperblock(reason: "no allocation groups") }
        let dirBlockLog = Int(f.u8(192))
        guard blockLog + dirBlockLog <= 16 else {
            throw Error.badSuperblock(reason: "directory block size 2^\(blockLog + dirBlockLog)")
        }
        let version = Int(f.be16(100) & 0xF)
        guard version == 4 || version == 5 else { throw Error.badSuperblock(reason: "version \(version)") }
        var hasFileType = false
        if version == 5 {
            let incompat = f.be32(216)
            // ftype, spinodes, meta_uuid, bigtime, needsrepair, nrext64, exchrange, parent, metadir:
            // none changes how directories, extent maps and inode cores are laid out beyond what
            // this reader handles.
            let known: UInt32 = 0x1FF
            guard incompat & ~known == 0 else { throw Error.unsupportedFeatures(incompat: incompat & ~known) }
            hasFileType = incompat & 0x1 != 0
        } else {
            // features2 is only valid when the MOREBITS version bit is set.
            hasFileType = f.be16(100) & 0x8000 != 0 && f.be32(200) & 0x200 != 0
        }
        sb = Superblock(
            blockSize: blockSize, agBlocks: agBlocks, agCount: agCount, rootInode: f.be64(56),
            inodeSize: inodeSize, blockLog: blockLog, inodesPerBlockLog: inopbLog, agBlockLog: agBlockLog,
            dirBlockLog: dirBlockLog, version: version, hasFileType: hasFileType)
    }

    static func read(_ source: any ByteSource, _ offset: UInt64, _ count: Int, _ what: @autoclosure () -> String)
        throws -> [UInt8]
    {
        do {
            return try source.read(at: offset, count: count)
        } catch let error as ByteSourceError {
            throw Error.readFailed(structure: what(), offset: offset, reason: error.description)
        }
    }

    func read(_ offset: UInt64, _ count: Int, _ what: @autoclosure () -> String) throws -> [UInt8] {
        try Self.read(source, offset, count, what())
    }

    /// Byte offset of filesystem block `fsb` (AG number in the high bits), checked.
    func byteOffset(ofBlock fsb: UInt64, inode: UInt64) throws -> UInt64 {
        let ag = fsb >> UInt64(sb.agBlockLog)
        let agb = fsb & ((1 << UInt64(sb.agBlockLog)) - 1)
        guard ag < sb.agCount, agb < sb.agBlocks else { throw Error.badBlockNumber(inode: inode, block: fsb) }
        let (linear, o1) = ag.multipliedReportingOverflow(by: sb.agBlocks)
        let (block, o2) = linear.addingReportingOverflow(agb)
        let (offset, o3) = block.multipliedReportingOverflow(by: UInt64(sb.blockSize))
        guard !o1, !o2, !o3 else { throw Error.badBlockNumber(inode: inode, block: fsb) }
        return offset
    }
}
