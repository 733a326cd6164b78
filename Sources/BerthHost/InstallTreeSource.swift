#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Files of an install tree, by path relative to the tree's root: a local directory, an ISO
/// image, or an HTTP mirror (berthd's `HTTPInstallTree`).
///
/// Trees are untrusted (a mirror can serve anything): every fetch has a size limit, and paths that
/// climb out of the tree are refused. Reads of local files and ISOs run on a thread of their
/// own (`BlockingIO.run`), so no caller's cooperative thread waits on a disk.
public protocol InstallTreeSource: Sendable {
    /// The location as the user gave it (URL or path). Recognition reads release codenames and
    /// architectures from it, as virt-install did (`…/dists/buster/main/installer-amd64/`).
    var location: String { get }
    /// True when the tree is an ISO image that the guest will also see as its CD-ROM; Debian's
    /// installer then boots from the CD's own kernel (`install.amd/vmlinuz`).
    var isISO: Bool { get }
    /// The file's bytes; nil when it does not exist.
    /// - Throws: `InstallTreeError.fileTooLarge` when it is larger than `limit`, or a read error.
    func fetch(_ relativePath: String, limit: Int) async throws -> [UInt8]?
    /// Whether the file exists, without reading it (for kernels and initrds).
    func exists(_ relativePath: String) async throws -> Bool
    /// Copies a file of the tree (an installer kernel or initrd) to `destination`, capped at
    /// `limit` bytes, reporting bytes so far.
    /// - Throws: `InstallTreeError` when the file is missing, too large or unreadable.
    func copy(
        _ file: String, to destination: String, limit: Int, progress: @escaping @Sendable (Int64, Int64?) -> Void
    ) async throws
}

extension InstallTreeSource {
    public var isISO: Bool { false }

    public func exists(_ relativePath: String) async throws -> Bool {
        do {
            return try await fetch(relativePath, limit: 0) != nil
        } catch InstallTreeError.fileTooLarge {
            return true
        }
    }

    /// Whether both files of a kernel/initrd pair are there.
    func hasPair(_ pair: InstallTree.KernelPair) async throws -> Bool {
        guard try await exists(pair.kernel) else { return false }
        return try await exists(pair.initrd)
    }
}

/// An install tree in a host directory: a loop-mounted ISO or a copied tree, as in the seed's
/// "loop-mounted the latest CentOS 6 ISO".
public struct LocalDirectoryInstallTree: InstallTreeSource {
    public let root: String
    public let location: String
    public let isISO: Bool

    /// - Parameters:
    ///   - root: the directory holding the tree.
    ///   - location: what to recognise codenames and architectures in; defaults to `root`.
    ///   - isISO: the directory holds an ISO's files and the ISO itself becomes the guest's CD-ROM.
    public init(root: String, location: String? = nil, isISO: Bool = false) {
        self.root = root
        self.location = location ?? root
        self.isISO = isISO
    }

    public func fetch(_ relativePath: String, limit: Int) async throws -> [UInt8]? {
        try await BlockingIO.run { try readFile(relativePath, limit: limit) }
    }

    func readFile(_ relativePath: String, limit: Int) throws -> [UInt8]? {
        guard let path = try resolve(relativePath) else { return nil }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT || errno == ENOTDIR { return nil }
            throw InstallTreeError.cannotRead(path: relativePath, reason: String(cString: strerror(errno)))
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw InstallTreeError.cannotRead(path: relativePath, reason: String(cString: strerror(errno)))
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            // A directory named like the file (or a device) is not the file.
            return nil
        }
        let size = Int(info.st_size)
        guard size <= limit else { throw InstallTreeError.fileTooLarge(path: relativePath, limit: limit) }
        var bytes = [UInt8](repeating: 0, count: size)
        var done = 0
        while done < size {
            let count = bytes.withUnsafeMutableBytes { buffer -> Int in
                guard let base = buffer.baseAddress else { return 0 }
                return pread(fd, base + done, size - done, off_t(done))
            }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else {
                throw InstallTreeError.cannotRead(path: relativePath, reason: "file shrank while being read")
            }
            done += count
        }
        return bytes
    }

    public func exists(_ relativePath: String) async throws -> Bool {
        try await BlockingIO.run {
            guard let path = try resolve(relativePath) else { return false }
            var info = stat()
            guard stat(path, &info) == 0 else { return false }
            return (info.st_mode & S_IFMT) == S_IFREG || (info.st_mode & S_IFMT) == S_IFBLK
        }
    }

    public func copy(
        _ file: String, to destination: String, limit: Int, progress: @escaping @Sendable (Int64, Int64?) -> Void
    ) async throws {
        try await BlockingIO.run {
            guard let bytes = try readFile(file, limit: limit) else {
                throw InstallTreeError.cannotRead(path: file, reason: "it is missing")
            }
            guard let sink = FileSink(path: destination) else {
                throw InstallTreeError.cannotRead(path: destination, reason: "cannot create it")
            }
            defer { sink.close() }
            try sink.write(bytes)
            progress(Int64(bytes.count), Int64(bytes.count))
        }
    }

    /// The host path of a tree file, or nil when it does not exist.
    /// - Throws: `InstallTreeError.unsafePath` for `..`, absolute paths, or a symlink out of the tree.
    func resolve(_ relativePath: String) throws -> String? {
        try InstallTree.checkRelativePath(relativePath, file: relativePath)
        let joined = root.hasSuffix("/") ? root + relativePath : root + "/" + relativePath
        guard let real = realPath(joined) else { return nil }
        guard let realRoot = realPath(root) else {
            throw InstallTreeError.cannotRead(path: root, reason: "the tree's directory does not exist")
        }
        // A symlink in a copied tree may point anywhere; only files inside the tree are served.
        guard real == realRoot || real.hasPrefix(realRoot.hasSuffix("/") ? realRoot : realRoot + "/") else {
            throw InstallTreeError.unsafePath(path: relativePath, file: relativePath)
        }
        return real
    }

    private func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
