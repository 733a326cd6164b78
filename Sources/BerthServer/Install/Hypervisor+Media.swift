import BerthHost
import BerthModel
import BerthStore
import FoundationEssentials
import Glibc

/// The media library (`/v1/media`, `berth media`): entries live in the catalog; paths are
/// checked on this host, by berthd, whoever asks.
extension Hypervisor {
    /// What the media listeners serve: the catalog's entries, read on each request.
    var mediaLibrary: MediaLibrary {
        let catalog = catalog
        return MediaLibrary(stateDirectory: stateDirectory, entries: { try catalog.mediaEntries() })
    }

    func mediaEntries() throws -> [MediaEntry] { try catalog.mediaEntries() }

    func mediaEntry(named name: String) throws -> MediaEntry {
        guard let entry = try catalog.mediaEntry(named: name) else { throw Catalog.unknownMedia(name) }
        return entry
    }

    /// Registers `request.path` as `/install/NAME/` after checking, on a thread of its own, that
    /// it is a tree directory or an ISO image berthd can read. Nothing changes when it fails.
    func addMedia(_ request: MediaAddRequest) async throws -> MediaEntry {
        try MediaEntry.validate(name: request.name)
        guard request.path.hasPrefix("/"), !request.path.contains("\0") else {
            throw BerthError(
                .invalidArgument, "'\(request.path)' is not an absolute path: media paths are on berthd's host.",
                remedy: "Give the absolute path of an install ISO or of a tree directory on berthd's host.")
        }
        let (name, path, state) = (request.name, request.path, stateDirectory)
        let entry: MediaEntry
        do {
            entry = try await BlockingIO.run {
                try Self.refuseHostDirectory(path, stateDirectory: state)
                return try MediaLibrary.entry(name: name, path: path)
            }
        } catch let error as MediaError {
            throw error.berthError
        }
        try catalog.addMedia(entry, replace: request.replace ?? false)
        return entry
    }

    func removeMedia(named name: String) throws { try catalog.removeMedia(named: name) }

    /// Directories that are never media: the media listeners serve an entry to guests without a
    /// token, so a tree holding berthd's state (its API token and catalog, or one of the
    /// directories below with other guests' disks, logs, saved memory and variable stores) or
    /// the host's system files would hand them to any guest. Symlinks are resolved first.
    static let systemDirectories = ["/etc", "/root", "/proc", "/sys", "/dev", "/run", "/boot"]
    static let stateSubdirectories = ["images", "logs", "save", "nvram", "boot", "run", "pki", "kickstarts", "migrations", "install"]

    static func refuseHostDirectory(_ path: String, stateDirectory: String) throws {
        func resolved(_ path: String) -> String? {
            guard let real = realpath(path, nil) else { return nil }
            defer { free(real) }
            return String(cString: real)
        }
        var info = stat()
        guard let directory = resolved(path), stat(directory, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else { return }
        func within(_ inner: String, _ outer: String) -> Bool { inner == outer || outer == "/" || inner.hasPrefix(outer + "/") }
        let state = resolved(stateDirectory) ?? stateDirectory
        let holdsState = within(state, directory) || stateSubdirectories.contains { within(directory, state + "/" + $0) }
        guard !holdsState, !systemDirectories.contains(where: { within(directory, $0) }) else {
            throw BerthError(
                .invalidArgument,
                "'\(path)' (\(directory)) is not served as media: guests read media without a token, and this directory holds \(holdsState ? "berthd's state" : "the host's own files").",
                remedy: "Copy or mount the install tree in a directory of its own (such as /srv/install/NAME) and add that.")
        }
    }
}
