extension Ext4FileSystem {
    struct Inode {
        var number: UInt32
        var mode: UInt16
        var size: UInt64
        var flags: UInt32
        var blocks512: UInt64
        var fileACL: UInt64
        /// The 60-byte i_block area: block map, extent root, inline data or fast symlink.
        var iBlock: [UInt8]
        /// The whole on-disk inode (in-inode extended attributes live past byte 128).
        var raw: [UInt8]

        var kind: FileInfo.Kind {
            switch mode & 0xF000 {
            case 0x8000: .file
            case 0x4000: .directory
            case 0xA000: .symlink
            default: .other
            }
        }
        var usesExtents: Bool { flags & 0x80000 != 0 }
        var hasInlineData: Bool { flags & 0x1000_0000 != 0 }
    }

    /// A mapped range of a file: `count` blocks from `logical` are at `physical`.
    struct Run: Equatable {
        var logical: UInt64
        var physical: UInt64
        var count: UInt64
    }

    static let rootInode: UInt32 = 2

    func groupFirstBlock(_ group: UInt64) -> UInt64 { sb.firstDataBlock + group * sb.blocksPerGroup }

    func groupHasSuperblockCopy(_ group: UInt64) -> Bool {
        guard sb.sparseSuper, group > 1 else { return true }
        for base: UInt64 in [3, 5, 7] {
            var p = base
            while p < group { p *= base }
            if p == group { return true }
        }
        return false
    }

    /// Byte offset of a group's descriptor, classic layout or meta_bg.
    func descriptorOffset(_ group: UInt64) -> UInt64 {
        let perBlock = sb.blockSize / UInt64(sb.descSize)
        let metaGroup = group / perBlock
        if sb.hasMetaBG, metaGroup >= sb.firstMetaBG {
            let first = metaGroup * perBlock
            let block = groupFirstBlock(first) + (groupHasSuperblockCopy(first) ? 1 : 0)
            return block * sb.blockSize + (group % perBlock) * UInt64(sb.descSize)
        }
        return (sb.firstDataBlock + 1) * sb.blockSize + group * UInt64(sb.descSize)
    }

    func inodeTableBlock(_ group: UInt64) throws -> UInt64 {
        let offset = descriptorOffset(group)
        let r = FieldReader(try source.read(at: offset, count: sb.descSize), structure: "ext group descriptor \(group)", at: offset)
        var table = UInt64(try r.u32(0x08))
        if sb.descSize >= 64 { table |= UInt64(try r.u32(0x28)) << 32 }
        let tableBlocks = (UInt64(sb.inodesPerGroup) * UInt64(sb.inodeSize) + sb.blockSize - 1) / sb.blockSize
        let (end, overflow) = table.addingReportingOverflow(tableBlocks)
        guard table > sb.firstDataBlock || (table > 0 && sb.firstDataBlock == 0), !overflow, end <= sb.blocksCount else {
            throw Error.badGroupDescriptor(group: group, reason: "inode table at block \(table) is outside the filesystem")
        }
        return table
    }

    func inode(_ number: UInt32) throws -> Inode {
        guard number >= 1, number <= sb.inodesCount else { throw Error.badInodeNumber(number) }
        let group = UInt64((number - 1) / sb.inodesPerGroup)
        let index = UInt64((number - 1) % sb.inodesPerGroup)
        let offset = try inodeTableBlock(group) * sb.blockSize + index * UInt64(sb.inodeSize)
        let raw = try source.read(at: offset, count: sb.inodeSize)
        let r = FieldReader(raw, structure: "ext inode \(number)", at: offset)
        let mode = try r.u16(0x00)
        var size = UInt64(try r.u32(0x04))
        // i_size_high: for directories it was i_dir_acl on old ext2, always 0 in practice.
        size |= UInt64(try r.u32(0x6C)) << 32
        var blocks = UInt64(try r.u32(0x1C)) | UInt64(try r.u16(0x74)) << 32
        let flags = try r.u32(0x20)
        if sb.hugeFile, flags & 0x40000 != 0 { blocks *= sb.blockSize / 512 }
        let acl = UInt64(try r.u32(0x68)) | UInt64(try r.u16(0x76)) << 32
        return Inode(
            number: number, mode: mode, size: size, flags: flags, blocks512: blocks, fileACL: acl,
            iBlock: Array(try r.slice(0x28, 60)), raw: raw)
    }

    func checkBlock(_ block: UInt64, count: UInt64 = 1, inode: UInt32) throws {
        let (end, overflow) = block.addingReportingOverflow(count)
        guard block != 0, !overflow, end <= sb.blocksCount else { throw Error.badBlockNumber(inode: inode, block: block) }
    }

    func readBlock(_ block: UInt64) throws -> [UInt8] {
        try source.read(at: block * sb.blockSize, count: Int(sb.blockSize))
    }

    /// The mapped block ranges of the first `blockCount` logical blocks, in logical order.
    /// Unmapped ranges (holes, uninitialized extents) are absent and read as zeros.
    func runs(_ node: Inode, blockCount: UInt64) throws -> [Run] {
        var runs: [Run] = []
        guard blockCount > 0 else { return runs }
        if node.usesExtents {
            // A valid tree needs at most about one node per mapped block; more is a crafted cycle.
            var budget = Int(min(2 * blockCount + 64, 1 << 20))
            try walkExtents(
                node, bytes: node.iBlock, block: 0, expectedDepth: nil, blockCount: blockCount, runs: &runs,
                budget: &budget)
        } else {
            try walkBlockMap(node, blockCount: blockCount, runs: &runs)
        }
        return runs
    }

    static func append(_ run: Run, to runs: inout [Run]) {
        if let last = runs.last, last.logical + last.count == run.logical, last.physical + last.count == run.physical {
            runs[runs.count - 1].count += run.count
        } else {
            runs.append(run)
        }
    }

    func walkExtents(
        _ node: Inode, bytes: [UInt8], block: UInt64, expectedDepth: Int?, blockCount: UInt64, runs: inout [Run],
        budget: inout Int
    ) throws {
        func bad(_ reason: String) -> Error { .badExtentHeader(inode: node.number, block: block, reason: reason) }
        let r = FieldReader(bytes, structure: "ext inode \(node.number) extent node", at: block * sb.blockSize)
        guard try r.u16(0) == 0xF30A else { throw bad("bad magic 0x\(String(try r.u16(0), radix: 16))") }
        let entries = Int(try r.u16(2))
        let maxEntries = Int(try r.u16(4))
        let depth = Int(try r.u16(6))
        guard maxEntries <= (bytes.count - 12) / 12, entries <= maxEntries else {
            throw bad("\(entries) entries of \(maxEntries) do not fit in \(bytes.count) bytes")
        }
        guard depth <= Limits.maxExtentDepth else { throw bad("depth \(depth) is over \(Limits.maxExtentDepth)") }
        if let expectedDepth, depth != expectedDepth { throw bad("depth \(depth) where \(expectedDepth) was expected") }
        var previous: UInt64?
        for i in 0..<entries {
            let at = 12 + 12 * i
            let first = UInt64(try r.u32(at))
            if let previous, first < previous { throw bad("entries out of order at \(i)") }
            if first >= blockCount { break }
            if depth == 0 {
                var length = UInt64(try r.u16(at + 4))
                let uninitialized = length > 32768
                if uninitialized { length -= 32768 }
                let physical = UInt64(try r.u16(at + 6)) << 32 | UInt64(try r.u32(at + 8))
                if let last = runs.last, first < last.logical + last.count { throw bad("extents overlap at block \(first)") }
                previous = first + length
                guard length > 0 else { continue }
                try checkBlock(physical, count: length, inode: node.number)
                if !uninitialized {
                    Self.append(
                        Run(logical: first, physical: physical, count: min(length, blockCount - first)), to: &runs)
                }
            } else {
                previous = first + 1
                let child = UInt64(try r.u16(at + 8)) << 32 | UInt64(try r.u32(at + 4))
                try checkBlock(child, inode: node.number)
                budget -= 1
                guard budget >= 0 else { throw Error.extentTreeTooLarge(inode: node.number, nodes: Int(min(2 * blockCount + 64, 1 << 20))) }
                try walkExtents(
                    node, bytes: try readBlock(child), block: child, expectedDepth: depth - 1, blockCount: blockCount,
                    runs: &runs, budget: &budget)
            }
        }
    }

    /// ext2/3 block map: 12 direct pointers, then single, double and triple indirect blocks.
    func walkBlockMap(_ node: Inode, blockCount: UInt64, runs: inout [Run]) throws {
        let r = FieldReader(node.iBlock, structure: "ext inode \(node.number) block map")
        let perBlock = sb.blockSize / 4
        for i in 0..<12 where UInt64(i) < blockCount {
            let b = UInt64(try r.u32(4 * i))
            if b == 0 { continue }
            try checkBlock(b, inode: node.number)
            Self.append(Run(logical: UInt64(i), physical: b, count: 1), to: &runs)
        }
        var first: UInt64 = 12
        var span = perBlock
        for level in 1...3 {
            guard first < blockCount else { break }
            let b = UInt64(try r.u32(4 * (11 + level)))
            if b != 0 {
                try indirect(node, block: b, level: level, first: first, blockCount: blockCount, runs: &runs)
            }
            first += span
            span *= perBlock
        }
    }

    func indirect(_ node: Inode, block: UInt64, level: Int, first: UInt64, blockCount: UInt64, runs: inout [Run]) throws {
        try checkBlock(block, inode: node.number)
        let r = FieldReader(try readBlock(block), structure: "ext inode \(node.number) indirect block", at: block * sb.blockSize)
        let perBlock = sb.blockSize / 4
        var span: UInt64 = 1
        for _ in 1..<level { span *= perBlock }
        for j in 0..<perBlock {
            let logical = first + j * span
            guard logical < blockCount else { break }
            let b = UInt64(try r.u32(Int(4 * j)))
            if b == 0 { continue }
            if level == 1 {
                try checkBlock(b, inode: node.number)
                Self.append(Run(logical: logical, physical: b, count: 1), to: &runs)
            } else {
                try indirect(node, block: b, level: level - 1, first: logical, blockCount: blockCount, runs: &runs)
            }
        }
    }

    /// The first `size` bytes of an inode's data; holes read as zeros. Callers cap `size`.
    func content(_ node: Inode, size: UInt64? = nil) throws -> [UInt8] {
        let size = min(size ?? node.size, node.size)
        if node.hasInlineData {
            let data = try inlineData(node)
            guard UInt64(data.count) >= size else {
                throw Error.badInlineData(inode: node.number, reason: "\(data.count) bytes stored for a \(size)-byte file")
            }
            return Array(data[0..<Int(size)])
        }
        guard size <= UInt64(Int.max / 2) else { throw Error.badBlockMap(inode: node.number, reason: "size \(size)") }
        let blockCount = (size + sb.blockSize - 1) / sb.blockSize
        var out = [UInt8](repeating: 0, count: Int(size))
        for run in try runs(node, blockCount: blockCount) {
            var done: UInt64 = 0
            while done < run.count {
                let n = min(run.count - done, Limits.readChunk / sb.blockSize)
                let start = (run.logical + done) * sb.blockSize
                let bytes = min(n * sb.blockSize, size - start)
                let data = try source.read(at: (run.physical + done) * sb.blockSize, count: Int(bytes))
                out.replaceSubrange(Int(start)..<Int(start + bytes), with: data)
                done += n
            }
        }
        return out
    }

    /// Inline data: the 60 bytes of i_block, then the `system.data` in-inode extended attribute.
    func inlineData(_ node: Inode) throws -> [UInt8] {
        node.iBlock + (try inlineAttribute(node) ?? [])
    }

    func inlineAttribute(_ node: Inode) throws -> [UInt8]? {
        func bad(_ reason: String) -> Error { .badInlineData(inode: node.number, reason: reason) }
        guard node.raw.count > 128 else { return nil }
        let r = FieldReader(node.raw, structure: "ext inode \(node.number) extended attributes")
        let extra = Int(try r.u16(0x80))
        let start = 128 + extra
        guard extra % 4 == 0, start + 4 <= node.raw.count else { throw bad("i_extra_isize \(extra)") }
        guard try r.u32(start) == 0xEA02_0000 else { return nil }
        let base = start + 4
        var at = base
        while at + 16 <= node.raw.count {
            let nameLength = Int(try r.u8(at))
            let index = try r.u8(at + 1)
            if nameLength == 0, index == 0 { break }
            let valueOffset = Int(try r.u16(at + 2))
            let valueSize = Int(try r.u32(at + 8))
            let name = try r.slice(at + 16, nameLength)
            if index == 7, name.elementsEqual("data".utf8) {
                guard valueSize <= node.raw.count, base + valueOffset + valueSize <= node.raw.count else {
                    throw bad("value of \(valueSize) bytes at \(valueOffset) is outside the inode")
                }
                return Array(try r.slice(base + valueOffset, valueSize))
            }
            at += (16 + nameLength + 3) & ~3
        }
        return nil
    }

    func symlinkTarget(_ node: Inode) throws -> [UInt8] {
        guard node.size > 0, node.size <= Limits.maxSymlinkBytes else {
            throw Error.badSymlink(inode: node.number, reason: "target length \(node.size)")
        }
        let xattrBlocks = node.fileACL != 0 ? sb.blockSize / 512 : 0
        // Fast symlink: the target sits in i_block and no data block is allocated.
        if !node.hasInlineData, !node.usesExtents, node.size < 60, node.blocks512 <= xattrBlocks {
            return Array(node.iBlock[0..<Int(node.size)])
        }
        return try content(node)
    }
}
