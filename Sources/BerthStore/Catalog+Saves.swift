import BerthModel
import FoundationEssentials

/// Managed saves and snapshots (`v7-saves`).
extension Catalog {
    /// Domains whose managed save is to be resumed when berthd starts (`--on-shutdown save`).
    public func domainsResumingAtDaemonStart() throws -> Set<String> {
        try database.read { db in
            Set(
                try String.fetchAll(
                    db,
                    sql: "SELECT d.name FROM managedSave m JOIN domain d ON d.id = m.domainId WHERE m.resumeAtDaemonStart = 1"))
        }
    }

    public func managedSave(_ name: String) throws -> ManagedSaveInfo? {
        try database.read { db in
            guard
                let row = try SQLiteRow.fetchOne(
                    db,
                    sql: "SELECT m.* FROM managedSave m JOIN domain d ON d.id = m.domainId WHERE d.name = ?",
                    arguments: [name])
            else { return nil }
            return try ManagedSaveInfo(
                path: row["path"], savedAt: CatalogDate.date(row["savedAt"]) ?? Date(timeIntervalSince1970: 0),
                state: SavedRunState(rawValue: row["runState"]) ?? .running,
                resumeAtDaemonStart: row["resumeAtDaemonStart"])
        }
    }

    /// Records (or replaces) a domain's managed save.
    public func setManagedSave(_ name: String, _ save: ManagedSaveInfo) throws {
        try database.write { db in
            guard let id = try Int64.fetchOne(db, sql: "SELECT id FROM domain WHERE name = ?", arguments: [name]) else {
                throw BerthError.unknownDomain(name)
            }
            try db.execute(
                sql: """
                    INSERT OR REPLACE INTO managedSave (domainId, path, savedAt, runState, resumeAtDaemonStart)
                    VALUES (?, ?, ?, ?, ?)
                    """,
                arguments: [id, save.path, CatalogDate.text(save.savedAt), save.state.rawValue, save.resumeAtDaemonStart])
        }
    }

    public func removeManagedSave(_ name: String) throws {
        try database.write { db in
            try db.execute(
                sql: "DELETE FROM managedSave WHERE domainId = (SELECT id FROM domain WHERE name = ?)", arguments: [name])
        }
    }

    public func snapshots(_ name: String) throws -> [SnapshotRecord] {
        try database.read { db in
            try SQLiteRow.fetchAll(
                db,
                sql: """
                    SELECT s.* FROM snapshot s JOIN domain d ON d.id = s.domainId
                    WHERE d.name = ? ORDER BY s.createdAt, s.id
                    """, arguments: [name]
            ).map(Self.snapshotRecord)
        }
    }

    public func snapshot(_ name: String, _ snapshot: String) throws -> SnapshotRecord {
        guard let found = try snapshots(name).first(where: { $0.info.name == snapshot }) else {
            _ = try domain(named: name)
            throw BerthError(
                .notFound, "Domain '\(name)' has no snapshot '\(snapshot)'.",
                remedy: "List them with 'berth snapshot-list \(name)'.")
        }
        return found
    }

    /// Records a snapshot; an external one switches the definition to its overlays (`spec`) in
    /// the same transaction.
    public func addSnapshot(_ name: String, _ record: SnapshotRecord, switchingTo spec: DomainSpec? = nil) throws {
        try spec?.validate()
        try database.write { db in
            if let spec { _ = try replace(spec, db: db) }
            guard let id = try Int64.fetchOne(db, sql: "SELECT id FROM domain WHERE name = ?", arguments: [name]) else {
                throw BerthError.unknownDomain(name)
            }
            do {
                try db.execute(
                    sql: """
                        INSERT INTO snapshot (domainId, name, description, createdAt, state, memory, spec, overlays)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        id, record.info.name, record.info.description, CatalogDate.text(record.info.createdAt), record.info.state.rawValue,
                        record.info.memory, try Self.json(record.spec),
                        try record.info.overlays.map { String(decoding: try JSONEncoder().encode($0), as: UTF8.self) },
                    ])
            } catch let error as SQLiteError where error.code == SQLiteError.constraintUnique {
                throw BerthError(
                    .alreadyExists, "Domain '\(name)' already has a snapshot '\(record.info.name)'.",
                    remedy: "Choose another name, or delete it first with 'berth snapshot-delete \(name) \(record.info.name)'.")
            }
        }
    }

    /// Forgets a snapshot; merging an external one switches the definition back (`spec`) in the
    /// same transaction.
    public func removeSnapshot(_ name: String, _ snapshot: String, switchingTo spec: DomainSpec? = nil) throws {
        try spec?.validate()
        try database.write { db in
            if let spec { _ = try replace(spec, db: db) }
            try db.execute(
                sql: "DELETE FROM snapshot WHERE name = ? AND domainId = (SELECT id FROM domain WHERE name = ?)",
                arguments: [snapshot, name])
        }
    }

    static func snapshotRecord(_ row: SQLiteRow) throws -> SnapshotRecord {
        let text: String = try row["spec"]
        let spec = try JSONDecoder().decode(DomainSpec.self, from: Data(text.utf8))
        let info = try SnapshotInfo(
            name: row["name"], description: row["description"], createdAt: CatalogDate.date(row["createdAt"]) ?? Date(timeIntervalSince1970: 0),
            state: DomainState(rawValue: row["state"]) ?? .shutoff, memory: row["memory"],
            disks: spec.disks.filter { !$0.readOnly && $0.device == .disk }.map(\.path),
            overlays: (row["overlays"] as String?).map { try JSONDecoder().decode([String].self, from: Data($0.utf8)) })
        return SnapshotRecord(info: info, spec: spec)
    }
}

/// A snapshot as the catalog keeps it: what the API shows, and the definition when taken.
public struct SnapshotRecord: Sendable, Equatable {
    public var info: SnapshotInfo
    public var spec: DomainSpec

    public init(info: SnapshotInfo, spec: DomainSpec) {
        self.info = info
        self.spec = spec
    }
}
