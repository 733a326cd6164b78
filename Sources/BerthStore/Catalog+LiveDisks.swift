import BerthModel
import FoundationEssentials

/// A disk of a running guest and its format node's name in that guest's QEMU (`diskN` for the
/// disks it started with, `hotN` for hot-plugged ones).
public struct LiveDisk: Sendable, Equatable {
    public var node: String
    public var disk: DiskSpec

    public init(node: String, disk: DiskSpec) {
        self.node = node
        self.disk = disk
    }
}

extension Catalog {
    /// The disks `name`'s running guest has, in the order QEMU got them (empty when it does not run).
    public func liveDisks(_ name: String) throws -> [LiveDisk] {
        try database.read { db in
            let id = try domainRowID(name, db: db)
            return try SQLiteRow.fetchAll(
                db, sql: "SELECT node, spec FROM liveDisk WHERE domainId = ? ORDER BY position", arguments: [id]
            ).map { row in
                try LiveDisk(node: row["node"], disk: JSONDecoder().decode(DiskSpec.self, from: Data((row["spec"] as String).utf8)))
            }
        }
    }

    /// Replaces the running guest's disks (a fresh QEMU: its definition's disks as `diskN`);
    /// nil clears them (QEMU exited).
    public func setLiveDisks(_ name: String, _ disks: [LiveDisk]?) throws {
        try database.write { db in
            let id = try domainRowID(name, db: db)
            try db.execute(sql: "DELETE FROM liveDisk WHERE domainId = ?", arguments: [id])
            for disk in disks ?? [] { try insertLive(disk, id: id, db: db) }
        }
    }

    /// Whether a running guest's disks were recorded (a guest from before they were kept has none).
    public func hasLiveDisks(_ name: String) throws -> Bool {
        try database.read { db in
            try Bool.fetchOne(
                db, sql: "SELECT 1 FROM liveDisk WHERE domainId = ?", arguments: [try domainRowID(name, db: db)]) ?? false
        }
    }

    /// Records a disk hot-plugged into `name`'s guest. A writable disk must be no other domain's,
    /// defined or hot-plugged.
    /// - Throws: `.alreadyExists` naming the domain that has it.
    public func addLiveDisk(_ name: String, _ disk: LiveDisk) throws {
        try database.write { db in
            let id = try domainRowID(name, db: db)
            if !disk.disk.readOnly, let owner = try writableOwner(of: disk.disk.path, excluding: id, db: db) {
                throw BerthError(
                    .alreadyExists, "Disk \(disk.disk.path) is already in use by domain '\(owner)'.",
                    remedy: "Give this domain its own disk, or attach the shared one read-only (--mode readonly).")
            }
            try insertLive(disk, id: id, db: db)
        }
    }

    public func removeLiveDisk(_ name: String, node: String) throws {
        try database.write { db in
            try db.execute(
                sql: "DELETE FROM liveDisk WHERE domainId = ? AND node = ?", arguments: [try domainRowID(name, db: db), node])
        }
    }

    /// The domain (other than `id`) holding `path` writable, in its definition or hot-plugged.
    func writableOwner(of path: String, excluding id: Int64?, db: SQLiteConnection) throws -> String? {
        try String.fetchOne(
            db,
            sql: """
                SELECT d.name FROM (SELECT domainId, path, readOnly FROM disk UNION ALL
                                    SELECT domainId, path, readOnly FROM liveDisk) k
                JOIN domain d ON d.id = k.domainId WHERE k.path = ? AND k.readOnly = 0 AND d.id IS NOT ?
                """,
            arguments: [path, id])
    }

    private func insertLive(_ disk: LiveDisk, id: Int64, db: SQLiteConnection) throws {
        let position =
            try Int.fetchOne(
                db, sql: "SELECT COALESCE(MAX(position) + 1, 0) FROM liveDisk WHERE domainId = ?", arguments: [id]) ?? 0
        try db.execute(
            sql: "INSERT INTO liveDisk (domainId, position, node, path, readOnly, spec) VALUES (?, ?, ?, ?, ?, ?)",
            arguments: [
                id, position, disk.node, disk.disk.path, disk.disk.readOnly,
                String(decoding: try JSONEncoder().encode(disk.disk), as: UTF8.self),
            ])
    }

    private func domainRowID(_ name: String, db: SQLiteConnection) throws -> Int64 {
        guard let id = try Int64.fetchOne(db, sql: "SELECT id FROM domain WHERE name = ?", arguments: [name]) else {
            throw BerthError.unknownDomain(name)
        }
        return id
    }
}
