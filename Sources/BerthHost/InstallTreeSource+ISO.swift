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

    public func fetch(_ relativePath: String, limit: Int) async throws -> [UInt8]? {
        try await BlockingIO.run { try read(relativePath, limit: limit) }
    }

    func read(_ relativePath: String, limit: Int) throws -> [UInt8]? {
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

    public func exists(_ relativePath: String) async throws -> Bool {
        try InstallTree.checkRelativePath(relativePath, file: relativePath)
        return try await BlockingIO.run { (try? fileSystem.stat("/" + relativePath).kind) == .file }
    }

    /// Copies in 4 MiB pieces: installer initrds are too large to read whole.
    public func copy(
        _ file: String, to destination: String, limit: Int, progress: @escaping @Sendable (Int64, Int64?) -> Void
    ) async throws {
        try await BlockingIO.run {
            let open = try open(file)
            guard open.size <= UInt64(limit) else { throw InstallTreeError.fileTooLarge(path: file, limit: limit) }
            guard let sink = FileSink(path: destination) else {
                throw InstallTreeError.cannotRead(path: destination, reason: "cannot create it")
            }
            defer { sink.close() }
            var offset: UInt64 = 0
            while offset < open.size {
                let chunk = try open.read(at: offset, count: 4 << 20)
                if chunk.isEmpty { break }
                try sink.write(chunk)
                offset += UInt64(chunk.count)
                progress(Int64(offset), Int64(open.size))
            }
        }
    }

    /// The file opened for ranged reads (kernels and initrds are too large to fetch whole).
    public func open(_ relativePath: String) throws -> ISO9660FileSystem.OpenFile {
        try InstallTree.checkRelativePath(relativePath, file: relativePath)
        return try fileSystem.open("/" + relativePath)
    }
}
