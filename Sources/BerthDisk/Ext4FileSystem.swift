/// A read-only ext2/ext3/ext4 reader for untrusted images. Lazy: `init` reads the
/// superblock; every lookup then reads only the group descriptors, inodes, tree nodes and
/// directory blocks on its path.
public struct Ext4FileSystem: FileSystem {
    public let source: any ByteSource
    /// `ext2`, `ext3` or `ext4`, from the feature flags.
    public let kind: String
    let sb: Superblock

    public enum Limits {
        /// ext4 itself never builds deeper trees than 5 (EXT4_MAX_EXTENT_DEPTH).
        public static let maxExtentDepth = 5
        /// Bytes of one directory read before giving up (a crafted directory can claim terabytes).
        public static let maxDirectoryBytes: UInt64 = 64 << 20
        /// A symlink target longer than PATH_MAX is hostile.
        public static let maxSymlinkBytes: UInt64 = 4096
        /// Directory bytes one path lookup may scan in all: symlinks can send a walk through the
        /// same large directory many times, and each trip is bounded only by `maxDirectoryBytes`.
        public static let maxLookupBytes: UInt64 = 256 << 20
        /// Pieces read at once when copying a file.
        static let readChunk: UInt64 = 8 << 20
        /// Pieces `stream` hands over: small enough to stay in cache between read and write.
        static let streamChunk: UInt64 = 1 << 20
    }

    public enum Error: Swift.Error, CustomStringConvertible, Sendable, Equatable {
        case notExt(magic: UInt16)
        case badSuperblock(field: String, value: UInt64)
        case unsupportedFeatures(incompat: UInt32)
        case badInodeNumber(UInt32)
        case badGroupDescriptor(group: UInt64, reason: String)
        case badBlockNumber(inode: UInt32, block: UInt64)
        case badExtentHeader(inode: UInt32, block: UInt64, reason: String)
        case extentTreeTooLarge(inode: UInt32, nodes: Int)
        case badBlockMap(inode: UInt32, reason: String)
        case badDirectoryEntry(inode: UInt32, offset: UInt64, reason: String)
        case directoryTooLarge(inode: UInt32, size: UInt64)
        case badInlineData(inode: UInt32, reason: String)
        case badSymlink(inode: UInt32, reason: String)
        case lookupTooExpensive(path: String, bytes: UInt64)

        public var description: String {
            let fsck = "; the filesystem is damaged — check it with 'e2fsck -fn' on the image"
            switch self {
            case .notExt(let magic):
                return "not an ext2/3/4 filesystem (superblock magic 0x\(String(magic, radix: 16)), expected 0xef53)"
            case .badSuperblock(let field, let value):
                return "ext superblock field \(field) has an impossible value \(value)\(fsck)"
            case .unsupportedFeatures(let incompat):
                return "ext filesystem uses incompatible features 0x\(String(incompat, radix: 16)) that this reader does not "
                    + "support (compression, journal device or dirdata); boot it with a kernel passed explicitly"
            case .badInodeNumber(let ino):
                return "inode number \(ino) is outside the filesystem\(fsck)"
            case .badGroupDescriptor(let group, let reason):
                return "group descriptor \(group): \(reason)\(fsck)"
            case .badBlockNumber(let inode, let block):
                return "inode \(inode) points at block \(block), outside the filesystem\(fsck)"
            case .badExtentHeader(let inode, let block, let reason):
                return "inode \(inode): extent tree node \(block == 0 ? "in the inode" : "at block \(block)"): \(reason)\(fsck)"
            case .extentTreeTooLarge(let inode, let nodes):
                return "inode \(inode): extent tree has more than \(nodes) nodes for its size\(fsck)"
            case .badBlockMap(let inode, let reason):
                return "inode \(inode): block map: \(reason)\(fsck)"
            case .badDirectoryEntry(let inode, let offset, let reason):
                return "directory inode \(inode), byte \(offset): \(reason)\(fsck)"
            case .directoryTooLarge(let inode, let size):
                return "directory inode \(inode) claims \(size) bytes, over the \(Limits.maxDirectoryBytes)-byte limit"
            case .badInlineData(let inode, let reason):
                return "inode \(inode): inline data: \(reason)\(fsck)"
            case .badSymlink(let inode, let reason):
                return "symlink inode \(inode): \(reason)\(fsck)"
            case .lookupTooExpensive(let path, let bytes):
                return "looking up \(path) would scan more than \(bytes) bytes of directories; the image is hostile or damaged"
            }
        }
    }

    struct Superblock {
        var blockSize: UInt64
        var blocksCount: UInt64
        var inodesCount: UInt32
        var blocksPerGroup: UInt64
        var inodesPerGroup: UInt32
        var firstDataBlock: UInt64
        var inodeSize: Int
        var descSize: Int
        var groupCount: UInt64
        var compat: UInt32
        var incompat: UInt32
        var roCompat: UInt32
        var firstMetaBG: UInt64

        var hasFileType: Bool { incompat & 0x2 != 0 }
        var hasMetaBG: Bool { incompat & 0x10 != 0 }
        var sparseSuper: Bool { roCompat & 0x1 != 0 }
        var hugeFile: Bool { roCompat & 0x8 != 0 }
    }

    // Incompatible features this reader understands well enough to read files correctly.
    // Left out: compression (0x1), journal device (0x8), dirdata (0x1000), encryption is
    // allowed (names are then ciphertext and lookups simply fail).
    static let knownIncompat: UInt32 =
        0x2 | 0x4 | 0x10 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x2000 | 0x4000 | 0x8000 | 0x10000 | 0x20000

    /// Whether the source carries the ext superblock magic (reads 2 bytes).
    public static func matches(_ source: any ByteSource) -> Bool {
        guard let b = try? source.read(at: 1024 + 0x38, count: 2) else { return false }
        return b[0] == 0x53 && b[1] == 0xEF
    }

    /// Reads and checks the superblock.
    /// - Throws: `Ext4FileSystem.Error` when it is not ext or the superblock is impossible.
    public init(source: any ByteSource) throws {
        self.source = source
        let r = FieldReader(try source.read(at: 1024, count: 1024), structure: "ext superblock", at: 1024)
        let magic = try r.u16(0x38)
        guard magic == 0xEF53 else { throw Error.notExt(magic: magic) }
        func bad(_ field: String, _ value: some BinaryInteger) -> Error { .badSuperblock(field: field, value: UInt64(value)) }
        let logBlock = try r.u32(0x18)
        guard logBlock <= 6 else { throw bad("s_log_block_size", logBlock) }
        let blockSize = UInt64(1024) << logBlock
        let compat = try r.u32(0x5C)
        let incompat = try r.u32(0x60)
        let roCompat = try r.u32(0x64)
        guard incompat & ~Self.knownIncompat == 0 else { throw Error.unsupportedFeatures(incompat: incompat) }
        let is64 = incompat & 0x80 != 0
        var blocksCount = UInt64(try r.u32(0x04))
        if is64 { blocksCount |= UInt64(try r.u32(0x150)) << 32 }
        let firstData = UInt64(try r.u32(0x14))
        guard firstData == (blockSize == 1024 ? 1 : 0) || firstData == 0 else { throw bad("s_first_data_block", firstData) }
        // Below 2^62 bytes in all, so that block × block size never overflows later.
        guard blocksCount > firstData, blocksCount <= (UInt64(1) << 62) / blockSize else {
            throw bad("s_blocks_count", blocksCount)
        }
        let bpg = UInt64(try r.u32(0x20))
        guard bpg > 0, bpg <= 8 * blockSize else { throw bad("s_blocks_per_group", bpg) }
        let ipg = try r.u32(0x28)
        guard ipg > 0, UInt64(ipg) <= 8 * blockSize else { throw bad("s_inodes_per_group", ipg) }
        let rev = try r.u32(0x4C)
        var inodeSize = 128
        if rev >= 1 {
            inodeSize = Int(try r.u16(0x58))
            guard inodeSize >= 128, UInt64(inodeSize) <= blockSize, inodeSize & (inodeSize - 1) == 0 else {
                throw bad("s_inode_size", inodeSize)
            }
        }
        var descSize = 32
        if is64 {
            descSize = Int(try r.u16(0xFE))
            guard descSize >= 64, descSize <= 1024, descSize & (descSize - 1) == 0 else { throw bad("s_desc_size", descSize) }
        }
        let groups = (blocksCount - firstData + bpg - 1) / bpg
        let inodesCount = try r.u32(0x00)
        let (inodeCapacity, overflow) = groups.multipliedReportingOverflow(by: UInt64(ipg))
        guard overflow || UInt64(inodesCount) <= inodeCapacity else { throw bad("s_inodes_count", inodesCount) }
        sb = Superblock(
            blockSize: blockSize, blocksCount: blocksCount, inodesCount: inodesCount, blocksPerGroup: bpg,
            inodesPerGroup: ipg, firstDataBlock: firstData, inodeSize: inodeSize, descSize: descSize, groupCount: groups,
            compat: compat, incompat: incompat, roCompat: roCompat, firstMetaBG: UInt64(try r.u32(0x104)))
        if incompat & (0x10 | 0x40 | 0x80 | 0x200 | 0x8000) != 0 || roCompat & ~UInt32(0x7) != 0 {
            kind = "ext4"
        } else if compat & 0x4 != 0 {
            kind = "ext3"
        } else {
            kind = "ext2"
        }
    }

    /// Block size in bytes.
    public var blockSize: Int { Int(sb.blockSize) }

    // MARK: FileSystem

    public func stat(_ path: String) throws -> FileInfo {
        let node = try resolve(path, followFinal: true)
        return FileInfo(kind: node.kind, size: node.size)
    }

    public func list(_ path: String) throws -> [String] {
        let node = try resolve(path, followFinal: true)
        guard node.kind == .directory else { throw FileSystemError.notADirectory(path: path) }
        var names: [String] = []
        try forEachEntry(node) { name, _ in
            if !(name == [0x2E] || name == [0x2E, 0x2E]) { names.append(String(decoding: name, as: UTF8.self)) }
            return false
        }
        return names
    }

    public func read(_ path: String, limit: Int) throws -> [UInt8] {
        let node = try resolve(path, followFinal: true)
        guard node.kind == .file else { throw FileSystemError.notAFile(path: path) }
        guard node.size <= UInt64(max(limit, 0)) else {
            throw FileSystemError.tooLarge(path: path, size: node.size, limit: limit)
        }
        return try content(node)
    }

    /// Hands over extents as ranges of the image file (or bytes, for in-memory images) in chunks:
    /// no file-sized buffer, and the bootloader can copy them kernel-side.
    public func stream(_ path: String, limit: Int, into sink: (FileChunk) throws -> Void) throws {
        let node = try resolve(path, followFinal: true)
        guard node.kind == .file else { throw FileSystemError.notAFile(path: path) }
        guard node.size <= UInt64(max(limit, 0)) else {
            throw FileSystemError.tooLarge(path: path, size: node.size, limit: limit)
        }
        guard !node.hasInlineData else { return try sink(.bytes(try content(node))) }
        let size = node.size
        let blockSize = sb.blockSize
        var position: UInt64 = 0
        func zeros(upTo end: UInt64) throws {
            while position < end {
                let count = min(end - position, Limits.streamChunk)
                try sink(.bytes([UInt8](repeating: 0, count: Int(count))))
                position += count
            }
        }
        for run in try runs(node, blockCount: (size + blockSize - 1) / blockSize) {
            let start = run.logical * blockSize
            guard start >= position else {
                throw Error.badBlockMap(inode: node.number, reason: "extents overlap at logical block \(run.logical)")
            }
            guard start < size else { break }
            try zeros(upTo: start)
            let end = min(start + run.count * blockSize, size)
            while position < end {
                let count = min(end - position, Limits.streamChunk)
                let at = run.physical * blockSize + (position - start)
                if let range = try source.backingFile(at: at, count: Int(count)) {
                    try sink(.file(range))
                } else {
                    try sink(.bytes(try source.read(at: at, count: Int(count))))
                }
                position += count
            }
        }
        try zeros(upTo: size)
    }

    /// The target of the symlink at `path` (intermediate components are followed).
    public func readLink(_ path: String) throws -> String {
        let node = try resolve(path, followFinal: false)
        guard node.kind == .symlink else { throw FileSystemError.notAFile(path: path) }
        return String(decoding: try symlinkTarget(node), as: UTF8.self)
    }
}
