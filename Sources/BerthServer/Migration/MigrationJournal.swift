import BerthModel
import FoundationEssentials

#if canImport(Glibc)
    import Glibc
#endif

/// What a berthd must know after being killed mid-migration, kept as small files in
/// `<state>/migrations/` (0600, root's): written before each step that would leave the guest
/// in two places, removed when the migration ends either way.
///
/// - `NAME.out.json` on the source: where the guest was going and whether the destination had
///   been asked to run it (`handingOver`). A restarted source asks the destination: if the guest
///   runs there, the source's paused QEMU ends; otherwise the migration is cancelled and the
///   guest runs on at the source.
/// - `ID.in.json` on the destination: the half-made domain and the disks made for it. A
///   restarted destination removes all of it (its QEMU, definition and disks): the source's
///   copy is the guest until a `finish` said otherwise, and `finish` removes this file first.
struct MigrationJournal: Sendable {
    let directory: String

    struct Outgoing: Codable, Sendable {
        var domain: String
        var destination: String
        var token: String?
        var ticket: String
        var wasRunning: Bool
        var undefineSource: Bool
        var handingOver: Bool
    }

    struct Incoming: Codable, Sendable {
        var id: String
        var domain: String
        var uuid: UUID
        /// Files created for copied disks (paths outside pools).
        var createdFiles: [String]
        /// Volumes created for copied disks, `POOL/NAME`.
        var createdVolumes: [String]
    }

    func save(outgoing entry: Outgoing) throws {
        try write(entry, to: entry.domain + ".out.json")
    }

    func save(incoming entry: Incoming) throws {
        try write(entry, to: entry.id + ".in.json")
    }

    func removeOutgoing(_ domain: String) { unlink(directory + "/" + domain + ".out.json") }
    func removeIncoming(_ id: String) { unlink(directory + "/" + id + ".in.json") }

    func outgoing() -> [Outgoing] { read(suffix: ".out.json") }
    func incoming() -> [Incoming] { read(suffix: ".in.json") }

    private func write(_ value: some Encodable, to file: String) throws {
        if mkdir(directory, 0o700) != 0, errno != EEXIST {
            throw BerthError(
                .unavailable, "Cannot create \(directory): \(String(cString: strerror(errno))).",
                remedy: "Check that berthd's state directory is writable.")
        }
        let data = try JSONEncoder().encode(value)
        let path = directory + "/" + file
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else {
            throw BerthError(.unavailable, "Cannot write \(temporary): \(String(cString: strerror(errno))).")
        }
        let written = data.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        fsync(fd)
        close(fd)
        guard written == data.count, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw BerthError(.unavailable, "Cannot write \(path): \(String(cString: strerror(errno))).")
        }
    }

    private func read<T: Decodable>(suffix: String) -> [T] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return files.filter { $0.hasSuffix(suffix) }.compactMap { file in
            FileManager.default.contents(atPath: directory + "/" + file).flatMap { try? JSONDecoder().decode(T.self, from: $0) }
        }
    }
}
