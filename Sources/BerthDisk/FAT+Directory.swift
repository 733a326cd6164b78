extension FATFileSystem {
    struct Entry: Sendable {
        var longName: String?
        var shortName: String
        var attributes: UInt8
        var cluster: UInt32
        var size: UInt32
        var isDirectory: Bool { attributes & 0x10 != 0 }
        var name: String { longName ?? shortName }
    }

    /// A directory: the fixed FAT12/16 root, or a cluster chain.
    enum Node: Sendable {
        case fixedRoot
        case entry(Entry)
    }

    /// FAT allows 65536 entries of 32 bytes in one directory.
    static let maxDirectoryBytes = 65536 * 32

    /// Visits entries in on-disk order, without `.`, `..`, volume labels and deleted entries.
    func forEachEntry(_ dir: Node, _ visit: (Entry) throws -> Bool) throws {
        var longParts: [[UInt16]] = []
        var longChecksum: UInt8 = 0
        var expectedOrdinal = 0
        var seen = 0
        // Returns false when the end-of-directory marker or the visitor stopped the scan.
        func scan(_ bytes: [UInt8]) throws -> Bool {
            let f = BinaryFields(bytes)
            var at = 0
            while at + 32 <= bytes.count {
                defer { at += 32 }
                let first = f.u8(at)
                if first == 0 { return false }
                if first == 0xE5 { longParts = []; continue }
                let attributes = f.u8(at + 11)
                if attributes & 0x3F == 0x0F {
                    // VFAT long-name piece: stored last piece first, 13 UTF-16 units each.
                    let ordinal = Int(first & 0x1F)
                    if first & 0x40 != 0 {
                        longParts = []
                        longChecksum = f.u8(at + 13)
                        expectedOrdinal = ordinal
                    }
                    guard ordinal >= 1, ordinal == expectedOrdinal, f.u8(at + 13) == longChecksum else {
                        longParts = []; expectedOrdinal = 0; continue
                    }
                    var units: [UInt16] = []
                    for o in [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30] { units.append(f.le16(at + o)) }
                    longParts.append(units)
                    expectedOrdinal -= 1
                    continue
                }
                let raw = f.slice(at, 11)
                var longName: String?
                if !longParts.isEmpty, expectedOrdinal == 0, Self.checksum(raw) == longChecksum {
                    var units: [UInt16] = []
                    for part in longParts.reversed() { units += part }
                    if let end = units.firstIndex(of: 0) { units.removeSubrange(end...) }
                    longName = String(decoding: units, as: UTF16.self)
                }
                longParts = []
                if attributes & 0x08 != 0 { continue }  // volume label
                let short = Self.shortName(raw, caseFlags: f.u8(at + 12))
                if short == "." || short == ".." { continue }
                let cluster = bits == .fat32 ? UInt32(f.le16(at + 20)) << 16 | UInt32(f.le16(at + 26)) : UInt32(f.le16(at + 26))
                seen += 1
                guard seen <= FileSystemLimits.maxDirectoryEntries else { return false }
                let entry = Entry(
                    longName: longName?.isEmpty == false ? longName : nil, shortName: short,
                    attributes: attributes, cluster: cluster, size: f.le32(at + 28))
                if try !visit(entry) { return false }
            }
            return true
        }
        // Read a sector at a time: most directories end (first byte 0) long before their space does.
        switch dir {
        case .fixedRoot:
            let length = rootEntries * 32
            var done = 0
            while done < length {
                let n = min(sectorSize, length - done)
                let bytes = try Self.read(source, rootOffset + UInt64(done), n, "root directory")
                if try !scan(bytes) { return }
                done += n
            }
        case .entry(let entry):
            let start = bits == .fat32 && entry.cluster == 0 ? rootCluster : entry.cluster
            let clusters = try chain(from: start, limit: Self.maxDirectoryBytes / clusterSize + 1)
            if clusters.count * clusterSize > Self.maxDirectoryBytes { throw Error.directoryTooLarge(start: start) }
            for c in clusters {
                for s in stride(from: 0, to: clusterSize, by: sectorSize) {
                    let bytes = try Self.read(source, clusterOffset(c) + UInt64(s), sectorSize, "directory cluster \(c)")
                    if try !scan(bytes) { return }
                }
            }
        }
    }

    static func checksum(_ name: [UInt8]) -> UInt8 {
        var sum: UInt8 = 0
        for byte in name { sum = (sum & 1) << 7 &+ (sum >> 1) &+ byte }
        return sum
    }

    /// `NAME.EXT` with the NT lowercase flags applied (0x08: base, 0x10: extension).
    static func shortName(_ raw: [UInt8], caseFlags: UInt8) -> String {
        func part(_ bytes: ArraySlice<UInt8>, lower: Bool) -> String {
            var chars = Array(bytes)
            while chars.last == 0x20 { chars.removeLast() }
            if chars.first == 0x05 { chars[0] = 0xE5 }
            // Code-page bytes above 0x7F are shown as Latin-1; lookups of such names are rare.
            let text = String(String.UnicodeScalarView(chars.map { Unicode.Scalar($0) }))
            return lower ? text.lowercased() : text
        }
        guard raw.count == 11 else { return "" }
        let base = part(raw[0..<8], lower: caseFlags & 0x08 != 0)
        let ext = part(raw[8..<11], lower: caseFlags & 0x10 != 0)
        return ext.isEmpty ? base : base + "." + ext
    }
}

extension FATFileSystem: FSReaderPathWalker {
    func rootNode() throws -> Node {
        bits == .fat32
            ? .entry(Entry(longName: nil, shortName: "", attributes: 0x10, cluster: rootCluster, size: 0)) : .fixedRoot
    }

    func kind(of node: Node) -> FileInfo.Kind {
        switch node {
        case .fixedRoot: .directory
        case .entry(let e): e.isDirectory ? .directory : .file
        }
    }

    func linkTarget(of node: Node) throws -> String { throw FileSystemError.notAFile(path: "") }

    func child(of dir: Node, named name: String) throws -> Node? {
        var found: Entry?
        try forEachEntry(dir) { entry in
            if fsNamesEqualIgnoringCase(entry.name, name) || fsNamesEqualIgnoringCase(entry.shortName, name) {
                found = entry
                return false
            }
            return true
        }
        // A subdirectory whose entry says cluster 0 points back at the root (as `..` does).
        if let entry = found, entry.isDirectory, entry.cluster == 0 { return try rootNode() }
        return found.map { .entry($0) }
    }

    public func stat(_ path: String) throws -> FileInfo {
        let node = try resolve(path)
        switch node {
        case .fixedRoot: return FileInfo(kind: .directory, size: 0)
        case .entry(let e): return FileInfo(kind: e.isDirectory ? .directory : .file, size: e.isDirectory ? 0 : UInt64(e.size))
        }
    }

    /// Same as `stat`: FAT has no symlinks.
    public func lstat(_ path: String) throws -> FileInfo { try stat(path) }

    /// Always throws `FileSystemError.notAFile`: FAT has no symlinks.
    public func readLink(_ path: String) throws -> String {
        _ = try resolve(path)
        throw FileSystemError.notAFile(path: path)
    }

    public func list(_ path: String) throws -> [String] {
        let node = try resolve(path)
        guard kind(of: node) == .directory else { throw FileSystemError.notADirectory(path: path) }
        var names: [String] = []
        try forEachEntry(node) {
            names.append($0.name); return true
        }
        return names
    }

    public func read(_ path: String, limit: Int) throws -> [UInt8] {
        guard case .entry(let entry) = try resolve(path), !entry.isDirectory else { throw FileSystemError.notAFile(path: path) }
        let size = Int(entry.size)
        guard size <= limit else { throw FileSystemError.tooLarge(path: path, size: UInt64(size), limit: limit) }
        if size == 0 { return [] }
        let needed = (size + clusterSize - 1) / clusterSize
        let clusters = try chain(from: entry.cluster, limit: needed)
        guard clusters.count == needed else { throw Error.chainTooShort(start: entry.cluster, clusters: clusters.count, needed: needed) }
        var out: [UInt8] = []
        out.reserveCapacity(size)
        // Read runs of consecutive clusters in one go.
        var i = 0
        while i < clusters.count {
            var j = i + 1
            while j < clusters.count, clusters[j] == clusters[j - 1] &+ 1, (j - i + 1) * clusterSize <= ByteSourceLimits.maxReadLength { j += 1 }
            let want = min((j - i) * clusterSize, size - out.count)
            out += try Self.read(source, clusterOffset(clusters[i]), want, "data cluster \(clusters[i])")
            i = j
        }
        return out
    }
}
