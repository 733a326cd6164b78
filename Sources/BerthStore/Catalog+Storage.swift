import BerthModel
import FoundationEssentials

/// A pool as the catalog holds it.
public struct PoolRecord: Sendable, Equatable {
    public var spec: PoolSpec
    public var active: Bool
}

/// A volume as the catalog holds it: what berthd made or found, with its format and its one
/// backing volume decided when it was recorded, never guessed again from its content.
public struct VolumeRecord: Sendable, Equatable {
    public var pool: String
    public var name: String
    public var path: String
    public var format: DiskSpec.Format
    public var capacity: UInt64
    /// The backing volume of an overlay: its key (`POOL/NAME`), path and format.
    public var backing: DiskBacking?
    public var extent: VolumeExtent?

    public init(
        pool: String, name: String, path: String, format: DiskSpec.Format, capacity: UInt64,
        backing: DiskBacking? = nil, extent: VolumeExtent? = nil
    ) {
        self.pool = pool
        self.name = name
        self.path = path
        self.format = format
        self.capacity = capacity
        self.backing = backing
        self.extent = extent
    }

    public var key: String { "\(pool)/\(name)" }
}

extension Catalog {
    // MARK: Pools

    /// Stores a new pool (inactive).
    /// - Throws: `.alreadyExists` when the name, or the directory / volume group, is taken.
    public func definePool(_ spec: PoolSpec) throws {
        try PoolSpec.checkName(spec.name, what: "pool")
        guard let target = spec.target else {
            throw BerthError(.invalidArgument, "Pool '\(spec.name)' has no target.", remedy: "Give --target DIR.")
        }
        try database.write { db in
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM pool WHERE name = ?", arguments: [spec.name]) == true {
                throw BerthError(
                    .alreadyExists, "Pool '\(spec.name)' already exists.",
                    remedy: "Choose another name, or remove it with 'berth pool-undefine \(spec.name)'.")
            }
            if let owner = try String.fetchOne(db, sql: "SELECT name FROM pool WHERE target = ?", arguments: [target]) {
                throw BerthError(
                    .alreadyExists, "\(target) is already pool '\(owner)'.",
                    remedy: "Use pool '\(owner)', or give another target.")
            }
            try db.execute(
                sql: """
                    INSERT INTO pool (name, type, target, sourceName, sourceDevice, autostart, createdAt)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [spec.name, spec.type.rawValue, target, spec.sourceName, spec.sourceDevice, spec.autostart, CatalogDate.text(Date())])
        }
    }

    public func pools() throws -> [PoolRecord] {
        try database.read { db in try SQLiteRow.fetchAll(db, sql: "SELECT * FROM pool ORDER BY name").map(Self.pool) }
    }

    public func pool(named name: String) throws -> PoolRecord {
        try database.read { db in
            guard let row = try SQLiteRow.fetchOne(db, sql: "SELECT * FROM pool WHERE name = ?", arguments: [name]) else {
                throw BerthError.unknownPool(name)
            }
            return try Self.pool(row)
        }
    }

    public func setPoolActive(_ name: String, _ active: Bool) throws {
        try database.write { db in
            try db.execute(sql: "UPDATE pool SET active = ? WHERE name = ?", arguments: [active, name])
            if db.changesCount == 0 { throw BerthError.unknownPool(name) }
        }
    }

    public func setPoolAutostart(_ name: String, _ autostart: Bool) throws {
        try database.write { db in
            try db.execute(sql: "UPDATE pool SET autostart = ? WHERE name = ?", arguments: [autostart, name])
            if db.changesCount == 0 { throw BerthError.unknownPool(name) }
        }
    }

    /// Forgets an inactive pool and its volume records (the files and LVs stay).
    public func undefinePool(_ name: String) throws {
        try database.write { db in
            guard let row = try SQLiteRow.fetchOne(db, sql: "SELECT id, active FROM pool WHERE name = ?", arguments: [name]) else {
                throw BerthError.unknownPool(name)
            }
            if try row["active"] as Bool {
                throw BerthError(
                    .wrongState, "Pool '\(name)' is active.", remedy: "Stop it first with 'berth pool-destroy \(name)'.")
            }
            let id: Int64 = try row["id"]
            if let overlay = try SQLiteRow.fetchOne(
                db,
                sql: """
                    SELECT p.name AS pool, v.name AS name FROM volume v JOIN pool p ON p.id = v.poolId
                    JOIN volume b ON b.id = v.backingId WHERE b.poolId = ? AND v.poolId != ?
                    """, arguments: [id, id])
            {
                throw BerthError(
                    .wrongState, "Volume \(try Self.volumeKey(overlay)) is an overlay on a volume of pool '\(name)'.",
                    remedy: "Delete that overlay first, or keep the pool.")
            }
            // Overlays inside the pool go before their backing volumes (RESTRICT).
            try db.execute(sql: "UPDATE volume SET backingId = NULL WHERE poolId = ?", arguments: [id])
            try db.execute(sql: "DELETE FROM pool WHERE id = ?", arguments: [id])
        }
    }

    /// Defines and activates the `default` pool once per catalog (remembered in `setting`, so a
    /// user who undefines it does not get it back at the next start), in one transaction.
    /// - Returns: whether it was created now.
    public func createDefaultPoolOnce(target: String) throws -> Bool {
        try database.write { db in
            if try String.fetchOne(db, sql: "SELECT value FROM setting WHERE key = 'defaultPoolCreated'") != nil {
                return false
            }
            try db.execute(sql: "INSERT INTO setting (key, value) VALUES ('defaultPoolCreated', '1')")
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM pool WHERE name = 'default'") == true { return false }
            try db.execute(
                sql: "INSERT INTO pool (name, type, target, active, autostart, createdAt) VALUES ('default', 'dir', ?, 1, 1, ?)",
                arguments: [target, CatalogDate.text(Date())])
            return true
        }
    }

    // MARK: Volumes

    public func volumes(pool: String) throws -> [VolumeRecord] {
        try database.read { db in
            _ = try poolID(pool, db: db)
            return try SQLiteRow.fetchAll(db, sql: Self.volumeSelect + " WHERE p.name = ? ORDER BY v.name", arguments: [pool])
                .map(Self.volume)
        }
    }

    public func volume(pool: String, name: String) throws -> VolumeRecord {
        try database.read { db in
            _ = try poolID(pool, db: db)
            guard
                let row = try SQLiteRow.fetchOne(
                    db, sql: Self.volumeSelect + " WHERE p.name = ? AND v.name = ?", arguments: [pool, name])
            else { throw BerthError.unknownVolume(pool: pool, name: name) }
            return try Self.volume(row)
        }
    }

    public func volume(path: String) throws -> VolumeRecord? {
        try database.read { db in
            try SQLiteRow.fetchOne(db, sql: Self.volumeSelect + " WHERE v.path = ?", arguments: [path]).map(Self.volume)
        }
    }

    /// Records a volume whose file or LV now exists.
    /// - Throws: `.alreadyExists` when the name or the path is taken.
    public func addVolume(_ volume: VolumeRecord) throws {
        try database.write { db in try insert(volume, db: db) }
    }

    /// Removes a volume's record, refusing while a domain's disk is it or an overlay is on it.
    /// `removeFile` runs inside the transaction, so the record goes only if the file went.
    public func removeVolume(pool: String, name: String, removeFile: (VolumeRecord) throws -> Void) throws {
        try database.write { db in
            guard
                let row = try SQLiteRow.fetchOne(db, sql: Self.volumeSelect + " WHERE p.name = ? AND v.name = ?", arguments: [pool, name])
            else { throw BerthError.unknownVolume(pool: pool, name: name) }
            let volume = try Self.volume(row)
            try checkUnused(volume, db: db, action: "deleted")
            if let overlay = try SQLiteRow.fetchOne(
                db,
                sql: "SELECT p.name AS pool, v.name AS name FROM volume v JOIN pool p ON p.id = v.poolId WHERE v.backingId = ?",
                arguments: [row["id"] as Int64])
            {
                throw BerthError(
                    .wrongState, "Volume \(volume.key) is the backing volume of \(try Self.volumeKey(overlay)).",
                    remedy: "Delete the overlay first, or keep \(volume.key).")
            }
            try db.execute(sql: "DELETE FROM volume WHERE id = ?", arguments: [row["id"] as Int64])
            try removeFile(volume)
        }
    }

    public func setVolumeCapacity(pool: String, name: String, capacity: UInt64, extent: VolumeExtent? = nil) throws {
        try database.write { db in
            try db.execute(
                sql: """
                    UPDATE volume SET capacity = ?, extentDevice = ?, extentOffset = ?, extentSize = ?
                    WHERE name = ? AND poolId = (SELECT id FROM pool WHERE name = ?)
                    """,
                arguments: [Int64(capacity), extent?.device, extent.map { Int64($0.offset) }, extent.map { Int64($0.size) }, name, pool])
            if db.changesCount == 0 { throw BerthError.unknownVolume(pool: pool, name: name) }
        }
    }

    /// `pool-refresh`: records volumes found on disk and forgets those that are gone, in one
    /// transaction; a vanished volume that a domain still names is kept (and reported).
    /// - Returns: the keys added and removed.
    public func syncVolumes(pool: String, found: [VolumeRecord]) throws -> (added: [String], removed: [String]) {
        try database.write { db in
            _ = try poolID(pool, db: db)
            let known = try SQLiteRow.fetchAll(db, sql: Self.volumeSelect + " WHERE p.name = ?", arguments: [pool]).map(Self.volume)
            let foundPaths = Set(found.map(\.path))
            let knownPaths = Set(known.map(\.path))
            var added: [String] = []
            var removed: [String] = []
            for volume in found where !knownPaths.contains(volume.path) {
                if try Bool.fetchOne(
                    db, sql: "SELECT 1 FROM volume WHERE path = ? OR (name = ? AND poolId = (SELECT id FROM pool WHERE name = ?))",
                    arguments: [volume.path, volume.name, pool]) == true
                {
                    continue
                }
                try insert(volume, db: db)
                added.append(volume.key)
            }
            for volume in known where !foundPaths.contains(volume.path) {
                let used = try !Self.users(of: volume.path, db: db).isEmpty
                let backs =
                    try Bool.fetchOne(
                        db, sql: "SELECT 1 FROM volume WHERE backingId = (SELECT id FROM volume WHERE path = ?)", arguments: [volume.path]) == true
                if used || backs { continue }
                try db.execute(sql: "DELETE FROM volume WHERE path = ?", arguments: [volume.path])
                removed.append(volume.key)
            }
            return (added, removed)
        }
    }

    /// Domains whose disks are `path` (writable or not).
    public func domainsUsing(path: String) throws -> [String] {
        try database.read { db in
            try Self.users(of: path, db: db)
        }
    }

    /// Domains whose disks are overlays on `path`.
    public func domainsBackedBy(path: String) throws -> [String] {
        try allDomains().filter { $0.spec.disks.contains { $0.backing?.path == path } }.map(\.spec.name)
    }

    // MARK: Helpers

    /// Domains whose definitions or running guests (hot-plugged disks) have `path` as a disk.
    static func users(of path: String, db: SQLiteConnection) throws -> [String] {
        try String.fetchAll(
            db,
            sql: """
                SELECT DISTINCT d.name FROM (SELECT domainId, path FROM disk UNION ALL SELECT domainId, path FROM liveDisk) k
                JOIN domain d ON d.id = k.domainId WHERE k.path = ? ORDER BY d.name
                """,
            arguments: [path])
    }

    private func checkUnused(_ volume: VolumeRecord, db: SQLiteConnection, action: String) throws {
        let users = try Self.users(of: volume.path, db: db)
        if !users.isEmpty {
            throw BerthError(
                .wrongState, "Volume \(volume.key) is a disk of domain \(users.map { "'\($0)'" }.joined(separator: ", ")); it cannot be \(action).",
                remedy:
                    "Remove the disk from \(users.count == 1 ? "that domain" : "those domains") ('berth detach-disk \(users[0]) \(volume.path) --config'), or undefine it, first."
            )
        }
    }

    private func insert(_ volume: VolumeRecord, db: SQLiteConnection) throws {
        try PoolSpec.checkName(volume.name, what: "volume")
        let poolID = try poolID(volume.pool, db: db)
        if try Bool.fetchOne(db, sql: "SELECT 1 FROM volume WHERE poolId = ? AND name = ?", arguments: [poolID, volume.name]) == true {
            throw BerthError.volumeExists(volume.key)
        }
        if let other = try SQLiteRow.fetchOne(
            db, sql: "SELECT p.name AS pool, v.name AS name FROM volume v JOIN pool p ON p.id = v.poolId WHERE v.path = ?",
            arguments: [volume.path])
        {
            throw BerthError(
                .alreadyExists, "\(volume.path) is already volume \(try Self.volumeKey(other)).",
                remedy: "Use that volume.")
        }
        var backingID: Int64?
        if let backing = volume.backing {
            backingID = try Int64.fetchOne(db, sql: "SELECT id FROM volume WHERE path = ?", arguments: [backing.path])
            guard backingID != nil else {
                throw BerthError(
                    .notFound, "The backing file \(backing.path) is not a volume.", remedy: "Refresh its pool with 'berth pool-refresh'.")
            }
        }
        try db.execute(
            sql: """
                INSERT INTO volume (poolId, name, path, format, capacity, backingId, extentDevice, extentOffset, extentSize)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                poolID, volume.name, volume.path, volume.format.rawValue, Int64(volume.capacity), backingID,
                volume.extent?.device, volume.extent.map { Int64($0.offset) }, volume.extent.map { Int64($0.size) },
            ])
    }

    private func poolID(_ name: String, db: SQLiteConnection) throws -> Int64 {
        guard let id = try Int64.fetchOne(db, sql: "SELECT id FROM pool WHERE name = ?", arguments: [name]) else {
            throw BerthError.unknownPool(name)
        }
        return id
    }

    static let volumeSelect = """
        SELECT v.*, p.name AS poolName, b.path AS backingPath, b.format AS backingFormat, b.name AS backingName,
               bp.name AS backingPool
        FROM volume v JOIN pool p ON p.id = v.poolId
        LEFT JOIN volume b ON b.id = v.backingId LEFT JOIN pool bp ON bp.id = b.poolId
        """

    /// `POOL/NAME` of a row that selects `p.name AS pool, v.name AS name`.
    private static func volumeKey(_ row: SQLiteRow) throws -> String {
        let pool: String = try row["pool"]
        let name: String = try row["name"]
        return "\(pool)/\(name)"
    }

    static func pool(_ row: SQLiteRow) throws -> PoolRecord {
        try PoolRecord(
            spec: PoolSpec(
                name: row["name"], type: PoolSpec.Kind(rawValue: row["type"]) ?? .dir, target: row["target"],
                sourceName: row["sourceName"], sourceDevice: row["sourceDevice"], autostart: row["autostart"]),
            active: row["active"])
    }

    static func volume(_ row: SQLiteRow) throws -> VolumeRecord {
        var backing: DiskBacking?
        if let path = try row["backingPath"] as String? {
            let volume = "\(try row["backingPool"] as String? ?? "")/\(try row["backingName"] as String? ?? "")"
            backing = try DiskBacking(path: path, format: DiskSpec.Format(rawValue: row["backingFormat"]) ?? .raw, volume: volume)
        }
        var extent: VolumeExtent?
        if let device = try row["extentDevice"] as String?, let offset = try row["extentOffset"] as Int64?,
            let size = try row["extentSize"] as Int64?
        {
            extent = VolumeExtent(device: device, offset: UInt64(max(0, offset)), size: UInt64(max(0, size)))
        }
        return try VolumeRecord(
            pool: row["poolName"], name: row["name"], path: row["path"],
            format: DiskSpec.Format(rawValue: row["format"]) ?? .raw, capacity: UInt64(max(0, row["capacity"] as Int64)),
            backing: backing, extent: extent)
    }
}

extension BerthError {
    public static func unknownPool(_ name: String) -> BerthError {
        BerthError(.notFound, "No storage pool named '\(name)'.", remedy: "List pools with 'berth pool-list --all'.")
    }

    public static func unknownVolume(pool: String, name: String) -> BerthError {
        BerthError(.notFound, "No volume '\(name)' in pool '\(pool)'.", remedy: "List its volumes with 'berth vol-list \(pool)'.")
    }

    public static func volumeExists(_ key: String) -> BerthError {
        BerthError(
            .alreadyExists, "Volume \(key) already exists.",
            remedy:
                "Choose another name, or delete it first with 'berth vol-delete \(key.split(separator: "/").last.map(String.init) ?? key) --pool \(key.split(separator: "/").first.map(String.init) ?? "")'."
        )
    }
}
