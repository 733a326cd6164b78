extension ISO9660FileSystem {
    struct Extent: Sendable, Equatable {
        /// First logical block of the data (after any extended attribute record).
        var lba: UInt64
        var length: UInt64
    }

    struct Entry: Sendable {
        var name: String
        var extents: [Extent]
        var isDirectory: Bool
        /// POSIX mode from Rock Ridge PX, when present.
        var mode: UInt32?
        var symlink: String?
        /// zisofs-compressed (Rock Ridge ZF): the extent holds compressed data.
        var compressed = false
        var size: UInt64 { extents.reduce(0) { $0 &+ $1.length } }

        var kind: FileInfo.Kind {
            if symlink != nil { return .symlink }
            if isDirectory { return .directory }
            if let mode, mode & 0xF000 != 0x8000, mode & 0xF000 != 0 { return mode & 0xF000 == 0xA000 ? .symlink : .other }
            return .file
        }
    }

    /// Rock Ridge facts about one record.
    struct RockRidge {
        var name: [UInt8]?
        var mode: UInt32?
        var symlink: String?
        var childLink: UInt64?
        var relocated = false
        var compressed = false
    }

    /// Visits a directory's entries in on-disk order, without `.`, `..` and relocated (RE)
    /// placeholders; multi-extent files are joined into one entry.
    func forEachEntry(_ dir: Entry, _ visit: (Entry) throws -> Bool) throws {
        guard let extent = dir.extents.first else { return }
        guard extent.length <= Limits.maxDirectoryBytes else { throw Error.directoryTooLarge(sector: extent.lba, length: extent.length) }
        let blocks = (extent.length + blockSize - 1) / blockSize
        var pending: Entry?
        var seen = 0
        for block in 0..<blocks {
            let sector = extent.lba + block
            let data = try Self.read(source, sector * blockSize, Int(blockSize), "directory sector \(sector)")
            let f = BinaryFields(data)
            var at = 0
            while at < data.count {
                let length = Int(f.u8(at))
                if length == 0 { break }  // records never cross a block; the rest is padding
                let nameLength = Int(f.u8(at + 32))
                guard length >= 34, at + length <= data.count, 33 + nameLength <= length else {
                    throw Error.badDirectoryRecord(sector: sector, offset: at, reason: "length \(length), name length \(nameLength)")
                }
                let r = BinaryFields(f.slice(at, length))
                at += length
                let rawName = r.slice(33, nameLength)
                let flags = r.u8(25)
                if rawName == [0] || rawName == [1] { continue }
                guard r.u8(26) == 0, r.u8(27) == 0 else { throw Error.unsupported(sector: sector, reason: "interleaved file") }
                let data = Extent(lba: UInt64(r.le32(2)) + UInt64(r.u8(1)), length: UInt64(r.le32(10)))
                if var first = pending {
                    // Continuation of a multi-extent file: only its extent matters.
                    first.extents.append(data)
                    guard first.extents.count <= Limits.maxExtentsPerFile else {
                        throw Error.badDirectoryRecord(sector: sector, offset: at - length, reason: "more than \(Limits.maxExtentsPerFile) extents")
                    }
                    pending = flags & 0x80 != 0 ? first : nil
                    if pending == nil {
                        seen += 1
                        if try !visit(first) { return }
                    }
                    continue
                }
                var entry = Entry(name: "", extents: [data], isDirectory: flags & 0x02 != 0)
                switch names {
                case .rockRidge:
                    let suStart = 33 + nameLength + (nameLength % 2 == 0 ? 1 : 0) + suspSkip
                    let rr = try rockRidge(r.slice(suStart, length - suStart), sector: sector)
                    if rr.relocated { continue }
                    entry.name = rr.name.map { String(decoding: $0, as: UTF8.self) } ?? Self.plainName(rawName)
                    entry.mode = rr.mode
                    entry.symlink = rr.symlink
                    entry.compressed = rr.compressed
                    if let child = rr.childLink {
                        entry.isDirectory = true
                        entry.extents = [try relocatedExtent(child)]
                    }
                case .joliet:
                    var units: [UInt16] = []
                    for i in stride(from: 0, to: rawName.count - 1, by: 2) { units.append(UInt16(rawName[i]) << 8 | UInt16(rawName[i + 1])) }
                    entry.name = Self.stripVersion(String(decoding: units, as: UTF16.self))
                case .plain:
                    entry.name = Self.plainName(rawName)
                }
                if flags & 0x80 != 0, !entry.isDirectory {
                    pending = entry
                    continue
                }
                seen += 1
                guard seen <= FileSystemLimits.maxDirectoryEntries else {
                    throw Error.directoryTooLarge(sector: extent.lba, length: extent.length)
                }
                if try !visit(entry) { return }
            }
        }
        if let last = pending { _ = try visit(last) }
    }

    static func plainName(_ raw: [UInt8]) -> String {
        var name = stripVersion(String(decoding: raw, as: UTF8.self))
        if name.hasSuffix(".") { name.removeLast() }
        return name
    }

    static func stripVersion(_ name: String) -> String {
        // Only a numeric version (";1") is stripped; a ';' elsewhere is part of the name.
        guard let semicolon = name.lastIndex(of: ";"),
            name[name.index(after: semicolon)...].allSatisfy({ $0.isASCII && $0.isNumber })
        else { return name }
        return String(name[..<semicolon])
    }

    /// A relocated directory (Rock Ridge CL): its size is in its own "." record.
    private func relocatedExtent(_ lba: UInt64) throws -> Extent {
        let dot = BinaryFields(try Self.read(source, lba * blockSize, 34, "relocated directory at sector \(lba)"))
        guard dot.u8(0) >= 34, dot.u8(25) & 0x02 != 0 else {
            throw Error.badSystemUse(sector: lba, reason: "child link to a non-directory")
        }
        return Extent(lba: lba, length: UInt64(dot.le32(10)))
    }

    /// Parses SUSP entries (following CE continuation areas) for Rock Ridge NM, PX, SL, CL, RE.
    func rockRidge(_ area: [UInt8], sector: UInt64) throws -> RockRidge {
        var rr = RockRidge()
        var name: [UInt8] = []
        var hasName = false
        var linkParts: [String] = []
        var linkContinues = false
        var hasLink = false
        var current = area
        var hops = 0
        var total = area.count
        while true {
            let f = BinaryFields(current)
            var at = 0
            var next: (lba: UInt64, offset: UInt64, length: Int)?
            while at + 4 <= current.count {
                let length = Int(f.u8(at + 2))
                guard length >= 4, at + length <= current.count else { break }
                let e = BinaryFields(f.slice(at, length))
                at += length
                switch (e.u8(0), e.u8(1)) {
                case (0x4E, 0x4D):  // NM: name, possibly split over several entries
                    let flags = e.u8(4)
                    if flags & 0x06 == 0 {
                        name += e.slice(5, length - 5)
                        hasName = true
                    }
                case (0x50, 0x58):  // PX: mode
                    if length >= 12 { rr.mode = e.le32(4) }
                case (0x53, 0x4C):  // SL: symlink components
                    hasLink = true
                    var c = 5
                    while c + 2 <= length {
                        let cflags = e.u8(c)
                        let clen = Int(e.u8(c + 1))
                        guard c + 2 + clen <= length else { break }
                        var text: String
                        if cflags & 0x02 != 0 {
                            text = "."
                        } else if cflags & 0x04 != 0 {
                            text = ".."
                        } else if cflags & 0x08 != 0 {
                            text = ""
                        } else {
                            text = String(decoding: e.slice(c + 2, clen), as: UTF8.self)
                        }
                        if linkContinues, !linkParts.isEmpty { linkParts[linkParts.count - 1] += text } else { linkParts.append(text) }
                        linkContinues = cflags & 0x01 != 0
                        c += 2 + clen
                    }
                case (0x43, 0x4C):  // CL: this placeholder stands for a relocated directory
                    if length >= 12 { rr.childLink = UInt64(e.le32(4)) }
                case (0x52, 0x45):  // RE: the relocated directory itself; listed through its CL
                    rr.relocated = true
                case (0x5A, 0x46):  // ZF: zisofs-compressed file
                    rr.compressed = true
                case (0x43, 0x45):  // CE: more entries elsewhere
                    if length >= 28 { next = (UInt64(e.le32(4)), UInt64(e.le32(12)), Int(e.le32(20))) }
                case (0x53, 0x54):  // ST: end of entries
                    at = current.count
                default: break
                }
            }
            guard let ce = next else { break }
            hops += 1
            total += ce.length
            guard hops <= Limits.maxContinuations, total <= Limits.maxSystemUseBytes else {
                throw Error.badSystemUse(
                    sector: sector, reason: "continuation areas exceed \(Limits.maxSystemUseBytes) bytes or \(Limits.maxContinuations) hops")
            }
            let (byteOffset, overflow) = (ce.lba * blockSize).addingReportingOverflow(ce.offset)
            guard !overflow else { throw Error.badSystemUse(sector: sector, reason: "continuation offset") }
            current = try Self.read(source, byteOffset, ce.length, "Rock Ridge continuation area")
        }
        if hasName { rr.name = name }
        if hasLink {
            rr.symlink = linkParts == [""] ? "/" : linkParts.joined(separator: "/")
        }
        return rr
    }
}

extension ISO9660FileSystem: FSReaderPathWalker {
    func rootNode() throws -> Entry { root }
    func kind(of node: Entry) -> FileInfo.Kind { node.kind }

    func linkTarget(of node: Entry) throws -> String {
        guard let target = node.symlink, !target.isEmpty else { throw FileSystemError.notFound(path: node.name) }
        return target
    }

    func child(of dir: Entry, named name: String) throws -> Entry? {
        var exact: Entry?
        var folded: Entry?
        let lowered = name.lowercased()
        try forEachEntry(dir) { entry in
            if entry.name == name {
                exact = entry
                return false
            }
            if folded == nil, entry.name.lowercased() == lowered { folded = entry }
            return true
        }
        return exact ?? folded
    }

    public func stat(_ path: String) throws -> FileInfo {
        let node = try resolve(path)
        return FileInfo(kind: node.kind, size: node.size)
    }

    /// Like `stat`, but a final symlink is described rather than followed.
    public func lstat(_ path: String) throws -> FileInfo {
        let node = try resolve(path, followLast: false)
        return FileInfo(kind: node.kind, size: node.kind == .symlink ? UInt64((node.symlink ?? "").utf8.count) : node.size)
    }

    /// The Rock Ridge target of the symlink at `path` (earlier components are followed).
    public func readLink(_ path: String) throws -> String {
        let node = try resolve(path, followLast: false)
        guard node.kind == .symlink else { throw FileSystemError.notAFile(path: path) }
        return try linkTarget(of: node)
    }

    public func list(_ path: String) throws -> [String] {
        let node = try resolve(path)
        guard node.kind == .directory else { throw FileSystemError.notADirectory(path: path) }
        var names: [String] = []
        try forEachEntry(node) {
            names.append($0.name); return true
        }
        return names
    }

    public func read(_ path: String, limit: Int) throws -> [UInt8] {
        let file = try open(path)
        guard file.size <= UInt64(max(0, limit)) else { throw FileSystemError.tooLarge(path: path, size: file.size, limit: limit) }
        var out: [UInt8] = []
        out.reserveCapacity(Int(file.size))
        while UInt64(out.count) < file.size {
            out += try file.read(at: UInt64(out.count), count: Int(min(file.size - UInt64(out.count), UInt64(ByteSourceLimits.maxReadLength))))
        }
        return out
    }

    /// A regular file opened for ranged reads, e.g. to answer HTTP range requests for a file
    /// inside an install ISO without extracting it.
    public struct OpenFile: Sendable {
        /// Where one piece of the file lies in the image (more than one for multi-extent files).
        public struct Segment: Sendable, Equatable {
            public var imageOffset: UInt64
            public var length: UInt64
        }

        public let size: UInt64
        /// The file's bytes in file order: image byte ranges, already checked against the image size.
        public let segments: [Segment]
        let source: any ByteSource

        /// Reads `min(count, size - offset)` bytes at file offset `offset` (none at or past the end).
        /// - Throws: `ByteSourceError.readTooLarge` for `count` over `ByteSourceLimits.maxReadLength`.
        public func read(at offset: UInt64, count: Int) throws -> [UInt8] {
            guard count >= 0, count <= ByteSourceLimits.maxReadLength else { throw ByteSourceError.readTooLarge(count: count) }
            guard offset < size else { return [] }
            var want = Int(min(UInt64(count), size - offset))
            var out: [UInt8] = []
            out.reserveCapacity(want)
            var skip = offset
            for segment in segments where want > 0 {
                if skip >= segment.length {
                    skip -= segment.length
                    continue
                }
                let n = Int(min(UInt64(want), segment.length - skip))
                out += try source.read(at: segment.imageOffset + skip, count: n)
                want -= n
                skip = 0
            }
            return out
        }
    }

    /// Opens the regular file at `path` (symlinks followed) for ranged reads.
    /// - Throws: `FileSystemError` for path problems, `ISO9660FileSystem.Error.extentOutsideImage`
    ///   when the file's data lies past the end of the image.
    public func open(_ path: String) throws -> OpenFile {
        let node = try resolve(path)
        guard node.kind == .file else { throw FileSystemError.notAFile(path: path) }
        guard !node.compressed else { throw Error.unsupported(sector: node.extents.first?.lba ?? 0, reason: "zisofs-compressed file \(path)") }
        var segments: [OpenFile.Segment] = []
        for e in node.extents {
            let (start, o1) = e.lba.multipliedReportingOverflow(by: blockSize)
            let (end, o2) = start.addingReportingOverflow(e.length)
            guard !o1, !o2, end <= source.size else { throw Error.extentOutsideImage(sector: e.lba, length: e.length) }
            if e.length > 0 { segments.append(.init(imageOffset: start, length: e.length)) }
        }
        return OpenFile(size: segments.reduce(0) { $0 + $1.length }, segments: segments, source: source)
    }
}
