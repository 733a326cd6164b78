extension XFSFileSystem {
    struct Entry: Sendable {
        var name: [UInt8]
        var inode: UInt64
    }

    /// Directory data lives below this file offset; leaf and free-index blocks sit above it.
    static let leafOffset: UInt64 = 1 << 35

    /// Entries of a directory in on-disk order, without `.` and `..`. `visit` returns false to stop.
    func forEachEntry(_ dir: Inode, _ visit: (Entry) throws -> Bool) throws {
        guard dir.kind == .directory else { throw Error.badDirectory(inode: dir.number, offset: dir.offset, reason: "not a directory") }
        switch dir.format {
        case .local: try shortformEntries(dir, visit)
        case .extents, .btree: try blockEntries(dir, visit)
        case .device: throw Error.badDirectory(inode: dir.number, offset: dir.offset, reason: "device fork")
        }
    }

    private func shortformEntries(_ dir: Inode, _ visit: (Entry) throws -> Bool) throws {
        let f = BinaryFields(dir.fork)
        let count = Int(f.u8(0))
        let wide = f.u8(1) != 0
        let inoSize = wide ? 8 : 4
        var at = 2 + inoSize  // header: counts, parent inode
        let limit = min(dir.fork.count, Int(clamping: dir.size))
        for _ in 0..<count {
            let nameLength = Int(f.u8(at))
            let entrySize = 3 + nameLength + (sb.hasFileType ? 1 : 0) + inoSize
            guard nameLength > 0, at + entrySize <= limit else {
                throw Error.badDirectory(inode: dir.number, offset: dir.offset, reason: "short-form entry at \(at) overruns the inode")
            }
            let name = f.slice(at + 3, nameLength)
            let inoAt = at + 3 + nameLength + (sb.hasFileType ? 1 : 0)
            let ino = wide ? f.be64(inoAt) & ((1 << 56) - 1) : UInt64(f.be32(inoAt))
            if try !visit(Entry(name: name, inode: ino)) { return }
            at += entrySize
        }
    }

    private func blockEntries(_ dir: Inode, _ visit: (Entry) throws -> Bool) throws {
        let extents = try extents(of: dir)
        let dirBlocks = UInt64(1) << UInt64(sb.dirBlockLog)
        let dbs = sb.dirBlockSize
        // Directory blocks present in the data space, in file order.
        var starts: [UInt64] = []
        for e in extents.sorted(by: { $0.fileBlock < $1.fileBlock }) {
            guard e.fileBlock < Self.leafOffset >> UInt64(sb.blockLog) else { continue }
            var b = (e.fileBlock + dirBlocks - 1) / dirBlocks * dirBlocks
            if let last = starts.last { b = max(b, last + dirBlocks) }
            let end = min(e.fileBlock + e.count, Self.leafOffset >> UInt64(sb.blockLog))
            while b < end {
                starts.append(b)
                guard starts.count * dbs <= Limits.maxDirectoryBytes else {
                    throw Error.badDirectory(
                        inode: dir.number, offset: dir.offset, reason: "more than \(Limits.maxDirectoryBytes) bytes of directory blocks")
                }
                b += dirBlocks
            }
        }
        var seen = 0
        for start in starts {
            let block = try readData(dir, extents: extents, start: start << UInt64(sb.blockLog), count: dbs)
            let diskOffset = (try? byteOffset(ofBlock: diskBlock(extents, start) ?? 0, inode: dir.number)) ?? 0
            let f = BinaryFields(block)
            let magic = f.be32(0)
            let header: Int
            var end = dbs
            switch magic {
            case 0x5844_3242 where !sb.isV5, 0x5844_4233 where sb.isV5:  // XD2B, XDB3: single-block form
                header = sb.isV5 ? 64 : 16
                let leafCount = Int(f.be32(dbs - 8))
                guard leafCount <= (dbs - header - 8) / 8 else {
                    throw Error.badDirectory(inode: dir.number, offset: diskOffset, reason: "block tail claims \(leafCount) leaf entries")
                }
                end = dbs - 8 - leafCount * 8
            case 0x5844_3244 where !sb.isV5, 0x5844_4433 where sb.isV5:  // XD2D, XDD3
                header = sb.isV5 ? 64 : 16
            default:
                throw Error.badDirectory(inode: dir.number, offset: diskOffset, reason: "bad data block magic 0x\(String(magic, radix: 16))")
            }
            var at = header
            while at < end {
                if f.be16(at) == 0xFFFF {
                    // Unused space: the length says how far to skip.
                    let length = Int(f.be16(at + 2))
                    guard length >= 8, length % 8 == 0, at + length <= end else {
                        throw Error.badDirectory(inode: dir.number, offset: diskOffset + UInt64(at), reason: "free entry length \(length)")
                    }
                    at += length
                    continue
                }
                let nameLength = Int(f.u8(at + 8))
                let size = (8 + 1 + nameLength + (sb.hasFileType ? 1 : 0) + 2 + 7) & ~7
                guard nameLength > 0, at + size <= end else {
                    throw Error.badDirectory(inode: dir.number, offset: diskOffset + UInt64(at), reason: "entry overruns its block")
                }
                let name = f.slice(at + 9, nameLength)
                let ino = f.be64(at)
                at += size
                if name == [0x2E] || name == [0x2E, 0x2E] { continue }
                seen += 1
                guard seen <= FileSystemLimits.maxDirectoryEntries else {
                    throw Error.badDirectory(
                        inode: dir.number, offset: dir.offset, reason: "more than \(FileSystemLimits.maxDirectoryEntries) entries")
                }
                if try !visit(Entry(name: name, inode: ino)) { return }
            }
        }
    }

    private func diskBlock(_ extents: [Extent], _ fileBlock: UInt64) -> UInt64? {
        for e in extents where fileBlock >= e.fileBlock && fileBlock - e.fileBlock < e.count {
            return e.diskBlock + (fileBlock - e.fileBlock)
        }
        return nil
    }

    func symlinkTarget(_ ino: Inode) throws -> String {
        guard ino.size > 0, ino.size <= UInt64(Limits.maxSymlinkLength) else {
            throw Error.badSymlink(inode: ino.number, reason: "target length \(ino.size)")
        }
        let length = Int(ino.size)
        switch ino.format {
        case .local:
            guard length <= ino.fork.count else { throw Error.badSymlink(inode: ino.number, reason: "inline target overruns the inode") }
            return String(decoding: ino.fork[0..<length], as: UTF8.self)
        case .extents, .btree:
            let extents = try extents(of: ino)
            // v5 remote blocks carry an XSLM header; mkfs.xfs's prototype code (xfsprogs 6.1)
            // writes them bare, and the kernel still reads those, so accept both.
            let first = try readData(ino, extents: extents, start: 0, count: min(4, length))
            guard sb.isV5, BinaryFields(first).be32(0) == 0x5853_4C4D else {
                return String(decoding: try readData(ino, extents: extents, start: 0, count: length), as: UTF8.self)
            }
            // v5 remote symlink blocks each start with a 56-byte XSLM header.
            var target: [UInt8] = []
            var block: UInt64 = 0
            while target.count < length {
                let raw = BinaryFields(try readData(ino, extents: extents, start: block * UInt64(sb.blockSize), count: sb.blockSize))
                guard raw.be32(0) == 0x5853_4C4D else { throw Error.badSymlink(inode: ino.number, reason: "remote block \(block) has no XSLM magic") }
                let bytes = Int(raw.be32(8))
                guard bytes > 0, bytes <= sb.blockSize - 56, target.count + bytes <= length else {
                    throw Error.badSymlink(inode: ino.number, reason: "remote block \(block) holds \(bytes) bytes")
                }
                target += raw.slice(56, bytes)
                block += 1
            }
            return String(decoding: target, as: UTF8.self)
        case .device:
            throw Error.badSymlink(inode: ino.number, reason: "device fork")
        }
    }
}

extension XFSFileSystem: FSReaderPathWalker {
    func rootNode() throws -> Inode { try inode(sb.rootInode) }
    func kind(of node: Inode) -> FileInfo.Kind { node.kind }
    func linkTarget(of node: Inode) throws -> String { try symlinkTarget(node) }

    func child(of dir: Inode, named name: String) throws -> Inode? {
        let wanted = Array(name.utf8)
        var found: UInt64?
        try forEachEntry(dir) { entry in
            if entry.name == wanted { found = entry.inode; return false }
            return true
        }
        return try found.map { try inode($0) }
    }

    public func stat(_ path: String) throws -> FileInfo {
        let node = try resolve(path)
        return FileInfo(kind: node.kind, size: node.size)
    }

    /// Like `stat`, but a final symlink is described rather than followed.
    public func lstat(_ path: String) throws -> FileInfo {
        let node = try resolve(path, followLast: false)
        return FileInfo(kind: node.kind, size: node.size)
    }

    /// The target of the symlink at `path` (earlier components are followed).
    public func readLink(_ path: String) throws -> String {
        let node = try resolve(path, followLast: false)
        guard node.kind == .symlink else { throw FileSystemError.notAFile(path: path) }
        return try symlinkTarget(node)
    }

    public func list(_ path: String) throws -> [String] {
        let node = try resolve(path)
        guard node.kind == .directory else { throw FileSystemError.notADirectory(path: path) }
        var names: [String] = []
        try forEachEntry(node) {
            names.append(String(decoding: $0.name, as: UTF8.self)); return true
        }
        return names
    }

    public func read(_ path: String, limit: Int) throws -> [UInt8] {
        let node = try resolve(path)
        guard node.kind == .file else { throw FileSystemError.notAFile(path: path) }
        guard node.size <= UInt64(max(0, limit)) else { throw FileSystemError.tooLarge(path: path, size: node.size, limit: limit) }
        if node.size == 0 { return [] }
        // A realtime file's extents address the realtime device, which is not in this image.
        guard !node.isRealtime else {
            throw Error.badInode(inode: node.number, offset: node.offset, reason: "file is on the realtime device, which this reader does not open")
        }
        guard node.format == .extents || node.format == .btree else {
            throw Error.badInode(inode: node.number, offset: node.offset, reason: "regular file without an extent map")
        }
        return try readData(node, extents: try extents(of: node), start: 0, count: Int(node.size))
    }
}
