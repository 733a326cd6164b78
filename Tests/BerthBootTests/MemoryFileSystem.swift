import BerthDisk

/// A filesystem held in memory, for menu and extraction tests until the real readers land.
/// Follows symlinks like the real readers must (absolute or relative, with a depth limit).
struct MemoryFileSystem: FileSystem {
    var kind: String { "memory" }
    var files: [String: [UInt8]] = [:]
    var symlinks: [String: String] = [:]

    init(_ files: [String: String] = [:], symlinks: [String: String] = [:]) {
        self.files = files.mapValues { Array($0.utf8) }
        self.symlinks = symlinks
    }

    init(bytes: [String: [UInt8]]) { self.files = bytes }

    func normalize(_ path: String, depth: Int = 0) throws -> String {
        guard depth < FileSystemLimits.maxSymlinkDepth else { throw FileSystemError.symlinkLoop(path: path) }
        var done: [Substring] = []
        let parts = path.split(separator: "/")
        for (i, part) in parts.enumerated() {
            if part == "." { continue }
            if part == ".." {
                if !done.isEmpty { done.removeLast() }
                continue
            }
            done.append(part)
            let here = "/" + done.joined(separator: "/")
            if let target = symlinks[here] {
                let base = target.hasPrefix("/") ? target : "/" + done.dropLast().joined(separator: "/") + "/" + target
                let rest = parts[(i + 1)...].joined(separator: "/")
                return try normalize(base + (rest.isEmpty ? "" : "/" + rest), depth: depth + 1)
            }
        }
        return "/" + done.joined(separator: "/")
    }

    func isDirectory(_ path: String) -> Bool {
        let prefix = path == "/" ? "/" : path + "/"
        return files.keys.contains { $0.hasPrefix(prefix) } || symlinks.keys.contains { $0.hasPrefix(prefix) }
    }

    func stat(_ path: String) throws -> FileInfo {
        let p = try normalize(path)
        if let bytes = files[p] { return FileInfo(kind: .file, size: UInt64(bytes.count)) }
        if isDirectory(p) { return FileInfo(kind: .directory, size: 0) }
        throw FileSystemError.notFound(path: path)
    }

    func list(_ path: String) throws -> [String] {
        let p = try normalize(path)
        guard isDirectory(p) else { throw FileSystemError.notFound(path: path) }
        let prefix = p == "/" ? "/" : p + "/"
        var names: [String] = []
        for key in Array(files.keys) + Array(symlinks.keys) where key.hasPrefix(prefix) {
            let name = String(key.dropFirst(prefix.count).split(separator: "/").first ?? "")
            if !name.isEmpty, !names.contains(name) { names.append(name) }
        }
        return names.sorted()
    }

    func read(_ path: String, limit: Int) throws -> [UInt8] {
        let p = try normalize(path)
        guard let bytes = files[p] else {
            if isDirectory(p) { throw FileSystemError.notAFile(path: path) }
            throw FileSystemError.notFound(path: path)
        }
        guard bytes.count <= limit else { throw FileSystemError.tooLarge(path: path, size: UInt64(bytes.count), limit: limit) }
        return bytes
    }
}
