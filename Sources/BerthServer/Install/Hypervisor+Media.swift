import BerthHost
import BerthModel
import BerthStore
import Foundation

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
        let (name, path) = (request.name, request.path)
        let entry: MediaEntry
        do {
            entry = try await BlockingIO.run { try MediaLibrary.entry(name: name, path: path) }
        } catch let error as MediaError {
            throw error.berthError
        }
        try catalog.addMedia(entry, replace: request.replace ?? false)
        return entry
    }

    func removeMedia(named name: String) throws { try catalog.removeMedia(named: name) }
}
