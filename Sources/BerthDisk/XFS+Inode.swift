extension XFSFileSystem {
    enum ForkFormat: UInt8 { case device = 0, local = 1, extents = 2, btree = 3 }

    struct Inode: Sendable {
        var number: UInt64
        var offset: UInt64
        var mode: UInt16
        var format: ForkFormat
        var size: UInt64
        var extentCount: UInt64
        /// The data fork's bytes (literal area up to the attribute fork).
        var fork: [UInt8]

        var kind: FileInfo.Kind {
            switch mode & 0xF000 {
            case 0x4000: .directory
            case 0x8000: .file
            case 0xA000: .symlink
            default: .other
            }
        }
    }

    /// One mapping of file blocks to disk blocks.
    struct Extent: Sendable {
        var fileBlock: UInt64
        var diskBlock: UInt64
        var count: UInt64
        /// Preallocated but never written: reads as zeros.
        var unwritten: Bool
    }

    func inode(_ number: UInt64) throws -> Inode {
        let ag = number >> UInt64(sb.agBlockLog + sb.inodesPerBlockLog)
        let agb = (number >> UInt64(sb.inodesPerBlockLog)) & ((1 << UInt64(sb.agBlockLog)) - 1)
        let slot = number & ((1 << UInt64(sb.inodesPerBlockLog)) - 1)
        guard ag < sb.agCount, agb < sb.agBlocks, number >> 56 == 0 else { throw Error.badInodeNumber(inode: number) }
        let blockOffset: UInt64
        do {
            blockOffset = try byteOffset(ofBlock: ag << UInt64(sb.agBlockLog) | agb, inode: number)
        } catch { throw Error.badInodeNumber(inode: number) }
        let offset = blockOffset + slot * UInt64(sb.inodeSize)
        let f = BinaryFields(try read(offset, sb.inodeSize, "inode \(number)"))
        guard f.be16(0) == 0x494E else { throw Error.badInode(inode: number, offset: offset, reason: "no IN magic") }
        let version = f.u8(4)
        let coreSize: Int
        switch version {
        case 1, 2: coreSize = 100
        case 3: coreSize = 176
        default: throw Error.badInode(inode: number, offset: offset, reason: "version \(version)")
        }
        guard coreSize < sb.inodeSize else {
            throw Error.badInode(inode: number, offset: offset, reason: "core larger than the inode")
        }
        let rawFormat = f.u8(5)
        guard let format = ForkFormat(rawValue: rawFormat) else {
            throw Error.badInode(inode: number, offset: offset, reason: "data fork format \(rawFormat)")
        }
        let forkOffset = Int(f.u8(82)) * 8
        let literal = sb.inodeSize - coreSize
        guard forkOffset <= literal else {
            throw Error.badInode(inode: number, offset: offset, reason: "attribute fork offset \(forkOffset)")
        }
        let forkSize = forkOffset == 0 ? literal : forkOffset
        // NREXT64 inodes keep a 64-bit extent count in the old padding.
        let nrext64 = version == 3 && f.be64(120) & (1 << 4) != 0
        let extentCount = nrext64 ? f.be64(24) : UInt64(f.be32(76))
        let size = f.be64(56)
        guard size < 1 << 63 else { throw Error.badInode(inode: number, offset: offset, reason: "negative size") }
        return Inode(
            number: number, offset: offset, mode: f.be16(2), format: format, size: size,
            extentCount: extentCount, fork: f.slice(coreSize, forkSize))
    }

    /// Decodes one packed 128-bit extent record.
    static func extent(_ f: BinaryFields, _ at: Int) -> Extent {
        let l0 = f.be64(at)
        let l1 = f.be64(at + 8)
        return Extent(
            fileBlock: (l0 & ~(1 << 63)) >> 9, diskBlock: (l0 & 0x1FF) << 43 | l1 >> 21, count: l1 & 0x1F_FFFF,
            unwritten: l0 >> 63 != 0)
    }

    /// The data fork's extent map, in file order, walking the bmap btree when needed.
    func extents(of ino: Inode) throws -> [Extent] {
        switch ino.format {
        case .extents:
            let count = Int(clamping: ino.extentCount)
            guard count <= ino.fork.count / 16 else {
                throw Error.badInode(inode: ino.number, offset: ino.offset, reason: "\(count) extents do not fit the inode")
            }
            let f = BinaryFields(ino.fork)
            return (0..<count).map { Self.extent(f, $0 * 16) }
        case .btree:
            return try btreeExtents(of: ino)
        case .local, .device:
            throw Error.badInode(inode: ino.number, offset: ino.offset, reason: "data fork has no extent map")
        }
    }

    private func btreeExtents(of ino: Inode) throws -> [Extent] {
        // The root lives in the inode: level, numrecs, then keys and pointers sized for the fork.
        let root = BinaryFields(ino.fork)
        let level = Int(root.be16(0))
        let records = Int(root.be16(2))
        let rootMax = (ino.fork.count - 4) / 16
        guard level >= 1, level <= Limits.maxBtreeDepth, records >= 1, records <= rootMax else {
            throw Error.badBmapBtree(
                inode: ino.number, offset: ino.offset, reason: "inode root with level \(level), \(records) records")
        }
        var out: [Extent] = []
        var visited = 0
        for i in 0..<records {
            let pointer = root.be64(4 + rootMax * 8 + i * 8)
            try walk(ino, block: pointer, expectLevel: level - 1, into: &out, visited: &visited)
        }
        return out
    }

    private func walk(_ ino: Inode, block: UInt64, expectLevel: Int, into out: inout [Extent], visited: inout Int) throws {
        visited += 1
        guard visited <= Limits.maxBtreeBlocks else {
            throw Error.badBmapBtree(inode: ino.number, offset: 0, reason: "more than \(Limits.maxBtreeBlocks) blocks")
        }
        let offset = try byteOffset(ofBlock: block, inode: ino.number)
        let f = BinaryFields(try read(offset, sb.blockSize, "extent btree block of inode \(ino.number)"))
        let magic = f.be32(0)
        let header: Int
        switch magic {
        case 0x424D_4150 where !sb.isV5: header = 24  // BMAP
        case 0x424D_4133 where sb.isV5: header = 72  // BMA3
        default:
            throw Error.badBmapBtree(inode: ino.number, offset: offset, reason: "bad magic 0x\(String(magic, radix: 16))")
        }
        let level = Int(f.be16(4))
        let records = Int(f.be16(6))
        // Levels must strictly decrease toward the leaves: a pointer back up the tree is a loop.
        guard level == expectLevel else {
            throw Error.badBmapBtree(inode: ino.number, offset: offset, reason: "level \(level), expected \(expectLevel)")
        }
        if level == 0 {
            guard records <= (sb.blockSize - header) / 16 else {
                throw Error.badBmapBtree(inode: ino.number, offset: offset, reason: "\(records) records")
            }
            guard out.count + records <= Limits.maxExtents else {
                throw Error.tooManyExtents(inode: ino.number, limit: Limits.maxExtents)
            }
            for i in 0..<records { out.append(Self.extent(f, header + i * 16)) }
            return
        }
        let maxRecords = (sb.blockSize - header) / 16
        guard records >= 1, records <= maxRecords else {
            throw Error.badBmapBtree(inode: ino.number, offset: offset, reason: "\(records) records")
        }
        for i in 0..<records {
            let pointer = f.be64(header + maxRecords * 8 + i * 8)
            try walk(ino, block: pointer, expectLevel: level - 1, into: &out, visited: &visited)
        }
    }

    /// Reads `count` bytes at file offset `start` through the extent map; holes and unwritten
    /// extents read as zeros.
    func readData(_ ino: Inode, extents: [Extent], start: UInt64, count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        guard count > 0 else { return out }
        let bs = UInt64(sb.blockSize)
        let end = start + UInt64(count)
        for e in extents where !e.unwritten && e.count > 0 {
            let (eStartRaw, o1) = e.fileBlock.multipliedReportingOverflow(by: bs)
            if o1 { continue }
            let eEnd = eStartRaw &+ e.count * bs
            let lo = max(start, eStartRaw)
            let hi = min(end, eEnd < eStartRaw ? UInt64.max : eEnd)
            guard lo < hi else { continue }
            // Read block by block range within the extent, checking the last block too.
            let firstBlock = e.diskBlock + (lo - eStartRaw) / bs
            let lastBlock = e.diskBlock + (hi - 1 - eStartRaw) / bs
            let diskStart = try byteOffset(ofBlock: firstBlock, inode: ino.number) + (lo - eStartRaw) % bs
            _ = try byteOffset(ofBlock: lastBlock, inode: ino.number)
            // An extent must not cross its AG: the blocks in between are then contiguous on disk.
            guard firstBlock >> UInt64(sb.agBlockLog) == lastBlock >> UInt64(sb.agBlockLog) else {
                throw Error.badBlockNumber(inode: ino.number, block: lastBlock)
            }
            var done: UInt64 = 0
            let total = hi - lo
            while done < total {
                let chunk = Int(min(total - done, UInt64(ByteSourceLimits.maxReadLength)))
                let bytes = try read(diskStart + done, chunk, "data of inode \(ino.number)")
                let at = Int(lo - start + done)
                out.replaceSubrange(at..<at + chunk, with: bytes)
                done += UInt64(chunk)
            }
        }
        return out
    }
}
