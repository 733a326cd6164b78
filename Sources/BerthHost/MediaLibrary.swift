import BerthDisk
import Foundation

/// Install media that berthd serves to guests over HTTP: `GET /install/<name>/<path>` from a
/// registered tree directory or ISO image, and `GET /kickstarts/<file>` from
/// `<state>/kickstarts/`. The seed loop-mounted the CentOS ISO and offered the mount over HTTP;
/// here the ISO is read in place. Registrations live in `<state>/media.json`.
public struct MediaLibrary: Sendable {
    public struct Entry: Codable, Sendable, Equatable {
        public enum Kind: String, Codable, Sendable { case directory, iso }
        public var name: String
        public var path: String
        public var kind: Kind

        public init(name: String, path: String, kind: Kind) {
            self.name = name
            self.path = path
            self.kind = kind
        }
    }

    public let stateDirectory: String
    public var registryPath: String { stateDirectory + "/media.json" }
    public var kickstartDirectory: String { stateDirectory + "/kickstarts" }
    /// A registry larger than this is not ours.
    static let maxRegistryBytes = 1 << 20

    public init(stateDirectory: String) { self.stateDirectory = stateDirectory }

    public func entries() throws -> [Entry] {
        guard let data = FileManager.default.contents(atPath: registryPath) else { return [] }
        guard data.count <= Self.maxRegistryBytes else {
            throw MediaError.registry("\(registryPath) is \(data.count) bytes; expected a small JSON list")
        }
        do {
            return try JSONDecoder().decode([Entry].self, from: data)
        } catch {
            throw MediaError.registry("\(registryPath) is not a media list: \(error)")
        }
    }

    public func entry(named name: String) throws -> Entry? { try entries().first { $0.name == name } }

    /// Registers `path` (an ISO image or a tree directory) as `/install/<name>/`.
    @discardableResult
    public func add(name: String, path: String, replace: Bool = false) throws -> Entry {
        guard Self.isValidName(name) else { throw MediaError.badName(name) }
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: absolute, isDirectory: &isDirectory) else {
            throw MediaError.missing(absolute)
        }
        let kind: Entry.Kind
        if isDirectory.boolValue {
            kind = .directory
        } else {
            let source = try FileSource(path: absolute)
            guard ISO9660FileSystem.matches(source) else { throw MediaError.notMedia(absolute) }
            _ = try ISO9660FileSystem(source: source)
            kind = .iso
        }
        var list = try entries()
        if let index = list.firstIndex(where: { $0.name == name }) {
            guard replace else { throw MediaError.exists(name, list[index].path) }
            list.remove(at: index)
        }
        let entry = Entry(name: name, path: URL(fileURLWithPath: absolute).standardizedFileURL.path, kind: kind)
        list.append(entry)
        try save(list)
        return entry
    }

    public func remove(name: String) throws {
        var list = try entries()
        guard let index = list.firstIndex(where: { $0.name == name }) else { throw MediaError.unknown(name) }
        list.remove(at: index)
        try save(list)
    }

    private func save(_ list: [Entry]) throws {
        try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        // Write then rename: berthd reads the file on every request.
        try encoder.encode(list).write(to: URL(fileURLWithPath: registryPath), options: .atomic)
    }

    static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 64 && name != "." && name != ".."
            && name.unicodeScalars.allSatisfy { CharacterSet.alphanumerics.contains($0) || "._-".unicodeScalars.contains($0) }
            && name.unicodeScalars.allSatisfy(\.isASCII)
    }

    // MARK: - Serving

    /// What a request path names.
    public enum Item: Sendable {
        /// A regular host file inside a registered directory (or the kickstart directory).
        case file(path: String, size: UInt64)
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
            guard let decoded = String(segment).removingPercentEncoding else { throw MediaError.unsafePath(raw) }
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
            return try Self.hostItem(root: entry.path, components: components)
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

    /// A kickstart file served from `<state>/kickstarts/`.
    public func kickstart(components: [String]) throws -> Item {
        guard components.count == 1 else { throw MediaError.notFound("/kickstarts/" + components.joined(separator: "/")) }
        return try Self.hostItem(root: kickstartDirectory, components: components)
    }

    /// A host file or directory below `root`, refusing symlinks that lead out of it.
    static func hostItem(root: String, components: [String]) throws -> Item {
        guard let realRoot = realPath(root) else { throw MediaError.notFound("/") }
        let joined = ([realRoot] + components).joined(separator: "/")
        guard let real = realPath(joined) else { throw MediaError.notFound("/" + components.joined(separator: "/")) }
        let prefix = realRoot.hasSuffix("/") ? realRoot : realRoot + "/"
        guard real == realRoot || real.hasPrefix(prefix) else {
            throw MediaError.unsafePath("/" + components.joined(separator: "/"))
        }
        var info = stat()
        guard stat(real, &info) == 0 else { throw MediaError.notFound("/" + components.joined(separator: "/")) }
        switch info.st_mode & S_IFMT {
        case S_IFREG: return .file(path: real, size: UInt64(info.st_size))
        case S_IFDIR:
            let names = (try? FileManager.default.contentsOfDirectory(atPath: real)) ?? []
            return .directory(
                names.sorted().map { name in
                    var isDirectory: ObjCBool = false
                    _ = FileManager.default.fileExists(atPath: real + "/" + name, isDirectory: &isDirectory)
                    return isDirectory.boolValue ? name + "/" : name
                })
        default: throw MediaError.notFound("/" + components.joined(separator: "/"))
        }
    }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
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

public enum MediaError: Error, CustomStringConvertible, Sendable, Equatable {
    case badName(String)
    case missing(String)
    case notMedia(String)
    case exists(String, String)
    case unknown(String)
    case registry(String)
    case notFound(String)
    case unsafePath(String)

    public var description: String {
        switch self {
        case .badName(let name): "'\(name)' is not a media name: use letters, digits, '.', '_' and '-'."
        case .missing(let path): "\(path) does not exist."
        case .notMedia(let path): "\(path) is neither a directory nor an ISO9660 image."
        case .exists(let name, let path): "Media '\(name)' is already registered (\(path))."
        case .unknown(let name): "No media is registered as '\(name)'."
        case .registry(let reason): reason
        case .notFound(let path): "\(path): not found."
        case .unsafePath(let path): "\(path): the path leaves its media root."
        }
    }

    public var remedy: String {
        switch self {
        case .badName: "Choose a name such as 'centos6'."
        case .missing, .notMedia: "Give the path of an install ISO or of a tree directory."
        case .exists: "Remove it with 'berth media remove NAME' first, or choose another name."
        case .unknown: "See 'berth media list'."
        case .registry: "Move the file away; 'berth media add' writes a new one."
        case .notFound: "Check the path against 'berth media list'."
        case .unsafePath: "Request paths inside the tree only."
        }
    }
}
