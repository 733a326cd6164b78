extension Ext4FileSystem {
    /// Calls `body(name, inode)` for each live entry in on-disk order until it returns true.
    /// htree directories are read linearly: their index blocks look like empty entries.
    func forEachEntry(_ dir: Inode, _ body: ([UInt8], UInt32) throws -> Bool) throws {
        guard dir.size <= Limits.maxDirectoryBytes else { throw Error.directoryTooLarge(inode: dir.number, size: dir.size) }
        var seen = 0
        if dir.hasInlineData {
            // Inline directories: 4 bytes of parent inode, then entries; more entries in system.data.
            let r = FieldReader(dir.iBlock, structure: "ext inline directory \(dir.number)")
            let parent = try r.u32(0)
            if try body([0x2E, 0x2E], parent) { return }
            if try parseEntries(dir, Array(dir.iBlock[4...]), baseOffset: 4, seen: &seen, body) { return }
            if let more = try inlineAttribute(dir), !more.isEmpty {
                _ = try parseEntries(dir, more, baseOffset: 60, seen: &seen, body)
            }
            return
        }
        let blockCount = (dir.size + sb.blockSize - 1) / sb.blockSize
        for run in try runs(dir, blockCount: blockCount) {
            for i in 0..<run.count {
                let data = try readBlock(run.physical + i)
                if try parseEntries(dir, data, baseOffset: (run.logical + i) * sb.blockSize, seen: &seen, body) { return }
            }
        }
    }

    /// One block (or inline region) of `ext4_dir_entry_2` records.
    func parseEntries(
        _ dir: Inode, _ data: [UInt8], baseOffset: UInt64, seen: inout Int, _ body: ([UInt8], UInt32) throws -> Bool
    ) throws -> Bool {
        let r = FieldReader(data, structure: "ext directory \(dir.number) block")
        var at = 0
        while at + 8 <= data.count {
            func bad(_ reason: String) -> Error { .badDirectoryEntry(inode: dir.number, offset: baseOffset + UInt64(at), reason: reason) }
            let ino = try r.u32(at)
            var recordLength = Int(try r.u16(at + 4))
            // 64 KiB blocks store a full-block record length as 0 or 65535.
            if sb.blockSize == 65536, recordLength == 0 || recordLength == 65535 { recordLength = 65536 }
            let nameLength = sb.hasFileType ? Int(try r.u8(at + 6)) : Int(try r.u16(at + 6))
            guard recordLength >= 8, recordLength % 4 == 0, at + recordLength <= data.count else {
                throw bad("record length \(recordLength)")
            }
            guard nameLength + 8 <= recordLength else { throw bad("name length \(nameLength) overflows its record") }
            if ino != 0, nameLength > 0 {
                seen += 1
                guard seen <= FileSystemLimits.maxDirectoryEntries else {
                    throw bad("more than \(FileSystemLimits.maxDirectoryEntries) entries")
                }
                if try body(Array(try r.slice(at + 8, nameLength)), ino) { return true }
            }
            at += recordLength
        }
        return false
    }

    func lookup(_ dir: Inode, _ name: [UInt8]) throws -> UInt32? {
        var found: UInt32?
        try forEachEntry(dir) { entry, ino in
            if entry == name { found = ino }
            return found != nil
        }
        return found
    }

    /// Walks a path from the root, following symlinks (relative ones from their directory)
    /// in every component and, if asked, in the last one. The symlink count is shared by the
    /// whole walk so that loops end at `FileSystemLimits.maxSymlinkDepth`.
    func resolve(_ path: String, followFinal: Bool) throws -> Inode {
        func components(_ bytes: [UInt8]) -> [[UInt8]] {
            bytes.split(separator: 0x2F).map(Array.init).filter { $0 != [0x2E] }
        }
        var pending = Array(components(Array(path.utf8)).reversed())
        guard pending.count <= FileSystemLimits.maxPathComponents else { throw FileSystemError.notFound(path: path) }
        let root = try inode(Self.rootInode)
        var current = root
        var symlinks = 0
        var scanned: UInt64 = 0
        while let name = pending.popLast() {
            guard current.kind == .directory else { throw FileSystemError.notADirectory(path: path) }
            scanned += min(current.size, Limits.maxDirectoryBytes)
            guard scanned <= Limits.maxLookupBytes else {
                throw Error.lookupTooExpensive(path: path, bytes: Limits.maxLookupBytes)
            }
            guard let number = try lookup(current, name) else { throw FileSystemError.notFound(path: path) }
            let node = try inode(number)
            if node.kind == .symlink, !pending.isEmpty || followFinal {
                symlinks += 1
                guard symlinks <= FileSystemLimits.maxSymlinkDepth else { throw FileSystemError.symlinkLoop(path: path) }
                let target = try symlinkTarget(node)
                let parts = components(target)
                guard pending.count + parts.count <= FileSystemLimits.maxPathComponents * 4 else {
                    throw FileSystemError.symlinkLoop(path: path)
                }
                if target.first == 0x2F { current = root }
                pending += parts.reversed()
                continue
            }
            current = node
        }
        return current
    }
}
