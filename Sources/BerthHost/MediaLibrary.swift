import BerthDisk
import BerthModel
import FoundationEssentials
import Glibc

/// Install media that berthd serves to guests over HTTP: `GET /install/<name>/<path>` from a
/// registered tree directory or ISO image, and `GET /kickstarts/<file>` from
/// `<state>/kickstarts/`. The seed loop-mounted the CentOS ISO and offered the mount over HTTP;
/// here the ISO is read in place. The entries are berthd's catalog's (`v10-media`).
public struct MediaLibrary: Sendable {
    public let stateDirectory: String
    public var kickstartDirectory: String { stateDirectory + "/kickstarts" }
    private let source: @Sendable () throws -> [MediaEntry]

    /// `entries` reads the library (berthd's catalog) on each request.
    public init(stateDirectory: String, entries: @escaping @Sendable () throws -> [MediaEntry]) {
        self.stateDirectory = stateDirectory
        self.source = entries
    }

    public func entries() throws -> [MediaEntry] { try source() }

    public func entry(named name: String) throws -> MediaEntry? { try entries().first { $0.name == name } }

    /// What `path` (absolute, on this host) is as install media: a tree directory or an ISO9660
    /// image that parses. Blocking: reads the image's volume descriptors.
    /// - Throws: `MediaError.missing` / `.notMedia`.
    public static func entry(name: String, path: String) throws -> MediaEntry {
        var info = stat()
        guard stat(path, &info) == 0 else { throw errno == EACCES ? MediaError.unreadable(path) : MediaError.missing(path) }
        let kind: MediaEntry.Kind
        switch info.st_mode & S_IFMT {
        case S_IFDIR:
            guard access(path, R_OK | X_OK) == 0 else { throw MediaError.unreadable(path) }
            kind = .directory
        case S_IFREG, S_IFBLK:
            // An image file or a CD drive; never a FIFO or a character device, whose reads could block.
            let source: FileSource
            do {
                source = try FileSource(path: path)
            } catch {
                throw MediaError.unreadable(path)
            }
            guard ISO9660FileSystem.matches(source), (try? ISO9660FileSystem(source: source)) != nil else {
                throw MediaError.notMedia(path)
            }
            kind = .iso
        default:
            throw MediaError.notMedia(path)
        }
        return MediaEntry(name: name, path: URL(fileURLWithPath: path).standardizedFileURL.path, kind: kind)
    }

    // MARK: - Serving

    /// What a request path names.
    public enum Item: Sendable {
        /// A regular host file inside a registered directory (or the kickstart directory), opened
        /// once: every byte served comes from this descriptor.
        case file(OpenHostFile)
        /// A regular file inside a registered ISO.
        case isoFile(ISO9660FileSystem.OpenFile)
        /// A directory: its entry names (directories end in `/`).
        case directory([String])
    }

    /// Splits a raw (still percent-encoded) URL path into safe, decoded components.
    /// - Throws: `MediaError.unsafePath` for `..`, `.`, an encoded `/` or `\` (`%2f`, `%5c`), NUL,
    ///   or bad percent-encoding: a request path can never leave its root.
    public static func components(ofRawPath raw: String) throws -> [String] {
        guard raw.utf8.count <= 4096 else { throw MediaError.unsafePath(raw) }
        var parts: [String] = []
        for segment in raw.split(separator: "/", omittingEmptySubsequences: true) {
            guard let decoded = Text.percentDecoded(segment) else { throw MediaError.unsafePath(raw) }
            guard decoded != "..", decoded != ".", !decoded.contains("/"), !decoded.contains("\\"),
                !decoded.contains("\0")
            else { throw MediaError.unsafePath(raw) }
            parts.append(decoded)
        }
        guard parts.count <= FileSystemLimits.maxPathComponents else { throw MediaError.unsafePath(raw) }
        return parts
    }

    /// Resolves `components` under the media named `name`.
    public func item(media name: String, components: [String]) throws -> Item {
        guard let entry = try entry(named: name) else { throw MediaError.notFound("/install/\(name)/") }
        switch entry.kind {
        case .directory:
            // The registered root itself is the administrator's choice and may be reached through
            // symlinks; nothing below it is.
            let root = open(entry.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard root >= 0 else { throw MediaError.notFound("/install/\(name)/") }
            defer { close(root) }
            return try Self.hostItem(beneath: root, components: components)
        case .iso:
            let source = try FileSource(path: entry.path)
            let fileSystem = try ISO9660FileSystem(source: source)
            let path = "/" + components.joined(separator: "/")
            let info: FileInfo
            do {
                info = try fileSystem.stat(path)
            } catch let error as FileSystemError {
                switch error {
                case .notFound, .notADirectory: throw MediaError.notFound(path)
                default: throw error
                }
            }
            switch info.kind {
            case .file: return .isoFile(try fileSystem.open(path))
            case .directory:
                // An ISO name holding "/" would be a different path once listed: leave it out.
                let names = try fileSystem.list(path).filter { !$0.contains("/") && !$0.contains("\0") }
                return .directory(
                    names.map { name in
                        (try? fileSystem.stat(path == "/" ? "/" + name : path + "/" + name).kind) == .directory ? name + "/" : name
                    })
            default: throw MediaError.notFound(path)
            }
        }
    }

    /// A kickstart file served from `<state>/kickstarts/` (itself not followed if a symlink).
    public func kickstart(components: [String]) throws -> Item {
        let path = "/kickstarts/" + components.joined(separator: "/")
        guard components.count == 1 else { throw MediaError.notFound(path) }
        let state = open(stateDirectory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard state >= 0 else { throw MediaError.notFound(path) }
        defer { close(state) }
        let directory = openat(state, "kickstarts", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard directory >= 0 else { throw MediaError.notFound(path) }
        defer { close(directory) }
        let item = try Self.hostItem(beneath: directory, components: components)
        guard case .file = item else { throw MediaError.notFound(path) }
        return item
    }

    /// A host file or directory below the directory `root`, opened one component at a time with
    /// `openat(…, O_NOFOLLOW)`: a symlink anywhere below the root is never followed (ELOOP), so
    /// neither a symlink placed in a tree nor one swapped in between two checks (the race a
    /// realpath-then-open check has) leads out of it.
    static func hostItem(beneath root: Int32, components: [String]) throws -> Item {
        let shown = "/" + components.joined(separator: "/")
        var fd = dup(root)
        guard fd >= 0 else { throw MediaError.notFound(shown) }
        for (index, component) in components.enumerated() {
            guard !component.isEmpty, !component.contains("/") else {
                close(fd)
                throw MediaError.unsafePath(shown)
            }
            // O_NONBLOCK on the last component: a FIFO planted in a tree must not hang the server.
            let last = index == components.count - 1
            let flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | (last ? O_NONBLOCK : O_DIRECTORY)
            let next = openat(fd, component, flags)
            close(fd)
            guard next >= 0 else { throw MediaError.notFound(shown) }
            fd = next
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            close(fd)
            throw MediaError.notFound(shown)
        }
        switch info.st_mode & S_IFMT {
        case S_IFREG:
            return .file(OpenHostFile(descriptor: fd, size: UInt64(info.st_size)))
        case S_IFDIR:
            return .directory(listing(of: fd))
        default:
            close(fd)
            throw MediaError.notFound(shown)
        }
    }

    /// The regular files and directories in the directory `fd` (consumed), sorted; symlinks and
    /// special files are left out, as they are never served.
    static func listing(of fd: Int32) -> [String] {
        guard let directory = fdopendir(fd) else {
            close(fd)
            return []
        }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard name != ".", name != ".." else { continue }
            var info = stat()
            guard fstatat(dirfd(directory), name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            switch info.st_mode & S_IFMT {
            case S_IFDIR: names.append(name + "/")
            case S_IFREG: names.append(name)
            default: continue
            }
        }
        return names.sorted()
    }

    /// A Content-Type for a served file, by extension.
    public static func contentType(for name: String) -> String {
        let lower = name.lowercased()
        let ext = lower.split(separator: ".").last.map(String.init) ?? ""
        switch ext {
        case "ks", "cfg", "treeinfo", "txt", "conf", "repo", "ini", "info": return "text/plain; charset=utf-8"
        case "xml": return "application/xml"
        case "iso": return "application/x-iso9660-image"
        case "gz": return "application/gzip"
        case "rpm": return "application/x-rpm"
        case "html", "htm": return "text/html; charset=utf-8"
        default:
            if lower.hasSuffix("/.treeinfo") || lower == ".treeinfo" || lower.hasSuffix("/treeinfo") { return "text/plain; charset=utf-8" }
            return "application/octet-stream"
        }
    }
}

/// A host file opened once beneath its media root; reads are `pread`s on its descriptor, which
/// is closed when the last response using it is done.
public final class OpenHostFile: Sendable {
    public let size: UInt64
    private let descriptor: Int32

    init(descriptor: Int32, size: UInt64) {
        self.descriptor = descriptor
        self.size = size
    }

    deinit { close(descriptor) }

    /// Up to `count` bytes at `offset`; fewer only at the end of the file.
    public func read(at offset: UInt64, count: Int) throws -> [UInt8] {
        guard count > 0, offset <= UInt64(Int64.max) else { return [] }
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = bytes.withUnsafeMutableBytes { buffer -> Int in
                guard let base = buffer.baseAddress else { return 0 }
                return pread(descriptor, base + done, count - done, off_t(offset) + off_t(done))
            }
            if n < 0, errno == EINTR { continue }
            if n < 0 { throw MediaError.notFound("read failed: \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            done += n
        }
        return Array(bytes[..<done])
    }
}

public enum MediaError: Error, CustomStringConvertible, Sendable, Equatable {
    case missing(String)
    case unreadable(String)
    case notMedia(String)
    case notFound(String)
    case unsafePath(String)

    public var description: String {
        switch self {
        case .missing(let path): "\(path) does not exist on berthd's host."
        case .unreadable(let path): "berthd cannot read \(path)."
        case .notMedia(let path): "\(path) is neither a directory nor an ISO9660 image."
        case .notFound(let path): "\(path): not found."
        case .unsafePath(let path): "\(path): the path leaves its media root."
        }
    }

    public var remedy: String {
        switch self {
        case .missing, .notMedia: "Give the absolute path of an install ISO or of a tree directory on berthd's host."
        case .unreadable: "Make it readable by berthd's user (root), or copy it where berthd can read it."
        case .notFound: "Check the path against 'berth media list'."
        case .unsafePath: "Request paths inside the tree only."
        }
    }

    /// The error a client is shown.
    public var berthError: BerthError {
        let code: BerthError.Code =
            switch self {
            case .missing, .notFound: .notFound
            default: .invalidArgument
            }
        return BerthError(code, description, remedy: remedy)
    }
}
