import BerthModel
import FoundationEssentials
import Glibc
import Synchronization

extension Catalog {
    /// The media library, in the order entries were added (a replaced entry counts as new).
    public func mediaEntries() throws -> [MediaEntry] {
        try database.read { db in
            try SQLiteRow.fetchAll(db, sql: "SELECT name, path, kind FROM media ORDER BY id").map(Self.mediaEntry)
        }
    }

    public func mediaEntry(named name: String) throws -> MediaEntry? {
        try database.read { db in
            try SQLiteRow.fetchOne(db, sql: "SELECT name, path, kind FROM media WHERE name = ?", arguments: [name]).map(Self.mediaEntry)
        }
    }

    /// Adds `entry`, or replaces the entry of that name when `replace` is set; one transaction.
    /// - Throws: `.alreadyExists` naming the registered path when the name is taken.
    public func addMedia(_ entry: MediaEntry, replace: Bool) throws {
        try database.write { db in
            if let path = try String.fetchOne(db, sql: "SELECT path FROM media WHERE name = ?", arguments: [entry.name]) {
                guard replace else {
                    throw BerthError(
                        .alreadyExists, "Media '\(entry.name)' is already registered (\(path)).",
                        remedy: "Remove it with 'berth media remove \(entry.name)' first, choose another name, or add --replace.")
                }
                try db.execute(sql: "DELETE FROM media WHERE name = ?", arguments: [entry.name])
            }
            try Self.insertMedia(entry, db: db)
        }
    }

    /// - Throws: `.notFound` when no entry has that name.
    public func removeMedia(named name: String) throws {
        try database.write { db in
            try db.execute(sql: "DELETE FROM media WHERE name = ?", arguments: [name])
            guard db.changesCount > 0 else { throw Self.unknownMedia(name) }
        }
    }

    public static func unknownMedia(_ name: String) -> BerthError {
        BerthError(.notFound, "No media is registered as '\(name)'.", remedy: "See 'berth media list'.")
    }

    static func insertMedia(_ entry: MediaEntry, db: SQLiteConnection) throws {
        try db.execute(
            sql: "INSERT INTO media (name, path, kind, addedAt) VALUES (?, ?, ?, ?)",
            arguments: [entry.name, entry.path, entry.kind.rawValue, CatalogDate.text(Date())])
    }

    static func mediaEntry(_ row: SQLiteRow) throws -> MediaEntry {
        let kind: String = try row["kind"]
        guard let parsed = MediaEntry.Kind(rawValue: kind) else {
            throw BerthError(.internal, "The catalog holds media of an unknown kind '\(kind)'.")
        }
        return try MediaEntry(name: row["name"], path: row["path"], kind: parsed)
    }
}

/// The media list berth kept in `<state>/media.json` before the library moved into the catalog.
/// Migration `v10-media` imports it once; after that migration is committed the file is
/// renamed `media.json.imported` (kept, not deleted, for the administrator).
final class LegacyMediaFile: Sendable {
    /// A file larger than this is not a media list.
    static let maxBytes = 1 << 20
    let path: String?
    private let imported = Mutex(false)

    /// `directory` nil: a catalog without a state directory (tests) has nothing to import.
    init(directory: String?) { path = directory.map { $0 + "/media.json" } }

    /// The file's entries (none when there is no file), each name checked.
    /// - Throws: the file is too large or is not a media list: berthd then stops before it
    ///   changes anything and says what to do.
    func entries() throws -> [MediaEntry] {
        guard let path, let data = FileManager.default.contents(atPath: path) else { return [] }
        let remedy = "Move \(path) away and start berthd again; add its entries with 'berth media add NAME PATH'."
        guard data.count <= Self.maxBytes else {
            throw BerthError(.invalidArgument, "\(path) is \(data.count) bytes; expected a small JSON media list.", remedy: remedy)
        }
        let list: [MediaEntry]
        do {
            list = try JSONDecoder().decode([MediaEntry].self, from: data)
        } catch {
            throw BerthError(.invalidArgument, "\(path) is not a media list: \(error).", remedy: remedy)
        }
        for entry in list where !MediaEntry.isValidName(entry.name) || !entry.path.hasPrefix("/") {
            throw BerthError(.invalidArgument, "\(path) holds an entry berth cannot serve: '\(entry.name)' at '\(entry.path)'.", remedy: remedy)
        }
        imported.withLock { $0 = true }
        return list
    }

    /// Renames an imported file to `media.json.imported`; called once the migration committed.
    /// A file that cannot be renamed stays where it is, harmless: nothing reads it again.
    func retire() {
        guard let path, imported.withLock({ $0 }) else { return }
        _ = rename(path, path + ".imported")
    }

    /// Migration `v10-media`'s import: the file's entries into the (new, empty) table; a name
    /// listed twice keeps its last path, as the file's reader did.
    func importEntries(into db: SQLiteConnection) throws {
        for entry in try entries() {
            try db.execute(sql: "DELETE FROM media WHERE name = ?", arguments: [entry.name])
            try Catalog.insertMedia(entry, db: db)
        }
    }
}
