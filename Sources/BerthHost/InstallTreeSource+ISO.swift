import BerthDisk

/// An install tree inside an ISO image, read with Berth's own ISO9660 reader: no loop mount,
/// no root. The seed loop-mounted the CentOS ISO to serve it; Berth reads it in place.
public struct ISOInstallTree: InstallTreeSource {
    public let path: String
    public let location: String
    public var isISO: Bool { true }
    let fileSystem: ISO9660FileSystem

    /// - Throws: the reader's error when `path` is not an ISO9660 image.
    public init(path: String, location: String? = nil) throws {
        self.path = path
        self.location = location ?? path
        let source = try FileSource(path: path)
        guard ISO9660FileSystem.matches(source) else {
            throw InstallTreeError.cannotRead(path: path, reason: "not an ISO9660 image")
        }
        self.fileSystem = try ISO9660FileSystem(source: source)
    }

    public func fetch(_ relativePath: String, limit: Int) throws -> [UInt8]? {
        try InstallTree.checkRelativePath(relativePath, file: relativePath)
        let info: FileInfo
        do {
            info = try fileSystem.stat("/" + relativePath)
        } catch FileSystemError.notFound, FileSystemError.notADirectory {
            return nil
        }
        guard info.kind == .file else { return nil }
        guard info.size <= UInt64(max(limit, 0)) else { throw InstallTreeError.fileTooLarge(path: relativePath, limit: limit) }
        return try fileSystem.read("/" + relativePath, limit: limit)
    }

    public func exists(_ relativePath: String) throws -> Bool {
        try InstallTree.checkRelativePath(relativePath, file: relativePath)
        return (try? fileSystem.stat("/" + relativePath).kind) == .file
    }

    /// The file opened for ranged reads (kernels and initrds are too large to fetch whole).
    public func open(_ relativePath: String) throws -> ISO9660FileSystem.OpenFile {
        try InstallTree.checkRelativePath(relativePath, file: relativePath)
        return try fileSystem.open("/" + relativePath)
    }
}
