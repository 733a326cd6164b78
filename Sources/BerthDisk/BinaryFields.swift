/// Fixed-width integer fields read from a byte buffer taken from an untrusted image.
///
/// A field that lies (partly) outside the buffer reads as zero instead of trapping: callers
/// check structure sizes before use, and this makes a missed check a wrong value, never a crash.
struct BinaryFields {
    let bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var count: Int { bytes.count }

    func has(_ offset: Int, _ length: Int) -> Bool {
        offset >= 0 && length >= 0 && offset <= bytes.count && length <= bytes.count - offset
    }

    func u8(_ offset: Int) -> UInt8 { has(offset, 1) ? bytes[offset] : 0 }

    func le16(_ offset: Int) -> UInt16 {
        guard has(offset, 2) else { return 0 }
        return UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8
    }

    func le32(_ offset: Int) -> UInt32 {
        guard has(offset, 4) else { return 0 }
        var value: UInt32 = 0
        for i in (0..<4).reversed() { value = value << 8 | UInt32(bytes[offset + i]) }
        return value
    }

    func be16(_ offset: Int) -> UInt16 {
        guard has(offset, 2) else { return 0 }
        return UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
    }

    func be32(_ offset: Int) -> UInt32 {
        guard has(offset, 4) else { return 0 }
        var value: UInt32 = 0
        for i in 0..<4 { value = value << 8 | UInt32(bytes[offset + i]) }
        return value
    }

    func be64(_ offset: Int) -> UInt64 {
        guard has(offset, 8) else { return 0 }
        var value: UInt64 = 0
        for i in 0..<8 { value = value << 8 | UInt64(bytes[offset + i]) }
        return value
    }

    /// Bytes `offset..<offset+length`, clamped to the buffer.
    func slice(_ offset: Int, _ length: Int) -> [UInt8] {
        let start = max(0, min(offset, bytes.count))
        let end = max(start, min(bytes.count, start &+ max(0, length)))
        return Array(bytes[start..<end])
    }
}

/// Path resolution shared by the XFS, FAT and ISO9660 readers: components, `.` and `..`
/// (resolved against the walk's own stack, never the image's `..` entries), and symlinks
/// followed up to `FileSystemLimits.maxSymlinkDepth`.
protocol FSReaderPathWalker {
    associatedtype Node
    func rootNode() throws -> Node
    func kind(of node: Node) -> FileInfo.Kind
    /// The entry called `name` in directory `dir`, or nil.
    func child(of dir: Node, named name: String) throws -> Node?
    func linkTarget(of node: Node) throws -> String
}

extension FSReaderPathWalker {
    /// Resolves an absolute path; `followLast` decides whether a final symlink is followed.
    func resolve(_ path: String, followLast: Bool = true) throws -> Node {
        var pending = Self.components(path).reversed() as [Substring]
        guard pending.count <= FileSystemLimits.maxPathComponents else {
            throw FileSystemError.notFound(path: path)
        }
        var stack: [Node] = [try rootNode()]
        var links = 0
        while let name = pending.popLast() {
            guard let current = stack.last else { throw FileSystemError.notFound(path: path) }
            if name == ".." {
                if stack.count > 1 { stack.removeLast() }
                continue
            }
            guard kind(of: current) == .directory else { throw FileSystemError.notADirectory(path: path) }
            guard let next = try child(of: current, named: String(name)) else {
                throw FileSystemError.notFound(path: path)
            }
            if kind(of: next) == .symlink && (followLast || !pending.isEmpty) {
                links += 1
                guard links <= FileSystemLimits.maxSymlinkDepth else { throw FileSystemError.symlinkLoop(path: path) }
                let target = try linkTarget(of: next)
                if target.hasPrefix("/") { stack = [try rootNode()] }
                pending += Self.components(target).reversed()
                // A crafted chain of links could otherwise grow the work list without bound.
                guard pending.count <= FileSystemLimits.maxPathComponents * 4 else {
                    throw FileSystemError.symlinkLoop(path: path)
                }
                continue
            }
            stack.append(next)
        }
        guard let last = stack.last else { throw FileSystemError.notFound(path: path) }
        return last
    }

    static func components(_ path: String) -> [Substring] {
        path.split(separator: "/", omittingEmptySubsequences: true).filter { $0 != "." }
    }
}

/// Case-insensitive comparison for FAT, Joliet and plain ISO9660 names.
func fsNamesEqualIgnoringCase(_ a: String, _ b: String) -> Bool {
    a == b || a.lowercased() == b.lowercased()
}
