import BerthModel
import FoundationEssentials

/// The daemon's catalog: one SQLite database holding every domain's definition, desired
/// state and last observed state.
///
/// Uniqueness of names, UUIDs, MACs and writable disks is enforced by the schema; the
/// Swift checks in front of it only exist to turn a violation into a message that says
/// what to do next. Every write method is one transaction.
public struct Catalog: Sendable {
    let database: SQLiteDatabase

    /// Opens (creating if needed) the catalog file and migrates it.
    public init(path: String) throws {
        try self.init(database: SQLiteDatabase(path: path), stateDirectory: Self.directory(of: path))
    }

    /// A catalog on an open database. `stateDirectory` is where files older berths kept beside
    /// the catalog (`media.json`) are imported from, once, by their migration.
    init(database: SQLiteDatabase, stateDirectory: String? = nil) throws {
        self.database = database
        let legacyMedia = LegacyMediaFile(directory: stateDirectory)
        try Self.migrator(legacyMedia: legacyMedia).migrate(database)
        legacyMedia.retire()
    }

    /// `path` without its last component, as `NSString.deletingLastPathComponent` gave it:
    /// "/var/lib/berth" for "/var/lib/berth/catalog.sqlite", "/" for "/catalog.sqlite", "" for
    /// "catalog.sqlite".
    static func directory(of path: String) -> String {
        var path = Substring(path)
        while path.count > 1, path.hasSuffix("/") { path.removeLast() }
        guard let slash = path.lastIndex(of: "/") else { return "" }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    static func migrator(legacyMedia: LegacyMediaFile) -> SQLiteMigrator {
        var migrator = SQLiteMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE domain (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        name TEXT NOT NULL UNIQUE,
                        uuid TEXT NOT NULL UNIQUE,
                        spec TEXT NOT NULL,
                        memory INTEGER NOT NULL CHECK (memory > 0),
                        vcpus INTEGER NOT NULL CHECK (vcpus > 0),
                        autostart INTEGER NOT NULL DEFAULT 0,
                        desiredState TEXT NOT NULL DEFAULT 'shut off',
                        state TEXT NOT NULL DEFAULT 'shut off',
                        pid INTEGER,
                        accel TEXT,
                        lastError TEXT,
                        startedAt DATETIME,
                        createdAt DATETIME NOT NULL,
                        updatedAt DATETIME NOT NULL
                    );
                    CREATE TABLE nic (
                        mac TEXT PRIMARY KEY,
                        domainId INTEGER NOT NULL REFERENCES domain(id) ON DELETE CASCADE
                    );
                    CREATE TABLE disk (
                        path TEXT NOT NULL,
                        domainId INTEGER NOT NULL REFERENCES domain(id) ON DELETE CASCADE,
                        readOnly INTEGER NOT NULL
                    );
                    -- A writable disk belongs to one domain; read-only media (ISOs) may be shared.
                    CREATE UNIQUE INDEX disk_writable ON disk(path) WHERE readOnly = 0;
                    CREATE INDEX disk_domain ON disk(domainId);
                    CREATE INDEX nic_domain ON nic(domainId);
                    """)
        }
        migrator.registerMigration("v2-kickstart") { db in
            try db.execute(sql: "ALTER TABLE domain ADD COLUMN kickstart TEXT")
        }
        // The definition that replaces the current one when the guest next powers off or
        // reboots by itself (an installer handing over to the installed system).
        migrator.registerMigration("v3-next-definition") { db in
            try db.execute(sql: "ALTER TABLE domain ADD COLUMN nextSpec TEXT")
            try db.execute(sql: "ALTER TABLE domain ADD COLUMN nextStart INTEGER NOT NULL DEFAULT 0")
        }
        // Host-wide values berthd chooses once and keeps (the guest ID block).
        migrator.registerMigration("v4-settings") { db in
            try db.execute(sql: "CREATE TABLE setting (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        }
        // Networks and their DHCP reservations; a domain NIC's reserved address is a row
        // that goes with the domain.
        migrator.registerMigration("v5-networks") { db in
            try db.execute(
                sql: """
                    CREATE TABLE network (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        name TEXT NOT NULL UNIQUE,
                        uuid TEXT NOT NULL UNIQUE,
                        mode TEXT NOT NULL CHECK (mode IN ('nat', 'routed', 'isolated', 'bridge')),
                        bridge TEXT NOT NULL,
                        spec TEXT NOT NULL,
                        autostart INTEGER NOT NULL DEFAULT 0,
                        active INTEGER NOT NULL DEFAULT 0,
                        createdAt DATETIME NOT NULL,
                        updatedAt DATETIME NOT NULL
                    );
                    -- A bridge Berth makes belongs to one network; bridge-mode networks may share a host bridge.
                    CREATE UNIQUE INDEX network_bridge ON network(bridge) WHERE mode != 'bridge';
                    CREATE TABLE dhcp_host (
                        networkId INTEGER NOT NULL REFERENCES network(id) ON DELETE CASCADE,
                        mac TEXT NOT NULL,
                        ip TEXT NOT NULL,
                        name TEXT,
                        domainId INTEGER REFERENCES domain(id) ON DELETE CASCADE,
                        UNIQUE (networkId, mac),
                        UNIQUE (networkId, ip)
                    );
                    CREATE INDEX dhcp_host_domain ON dhcp_host(domainId);
                    """)
        }
        // Storage pools and their volumes (dir pools of image files, logical pools of LVs).
        migrator.registerMigration("v6-storage") { db in
            try db.execute(
                sql: """
                    CREATE TABLE pool (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        name TEXT NOT NULL UNIQUE,
                        type TEXT NOT NULL CHECK (type IN ('dir', 'logical')),
                        target TEXT NOT NULL,
                        sourceName TEXT,
                        active INTEGER NOT NULL DEFAULT 0,
                        autostart INTEGER NOT NULL DEFAULT 0,
                        createdAt DATETIME NOT NULL
                    );
                    CREATE TABLE volume (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        poolId INTEGER NOT NULL REFERENCES pool(id) ON DELETE CASCADE,
                        name TEXT NOT NULL,
                        path TEXT NOT NULL UNIQUE,
                        format TEXT NOT NULL CHECK (format IN ('raw', 'qcow2')),
                        capacity INTEGER NOT NULL CHECK (capacity >= 0),
                        -- A qcow2 overlay's one backing file: a volume that cannot go while it is used.
                        backingId INTEGER REFERENCES volume(id) ON DELETE RESTRICT,
                        extentDevice TEXT,
                        extentOffset INTEGER,
                        extentSize INTEGER,
                        UNIQUE (poolId, name)
                    );
                    CREATE INDEX volume_backing ON volume(backingId);
                    """)
        }
        // Managed saves (one per domain, resumed at its next start) and internal snapshots.
        migrator.registerMigration("v7-saves") { db in
            try db.execute(
                sql: """
                    CREATE TABLE managedSave (
                        domainId INTEGER PRIMARY KEY REFERENCES domain(id) ON DELETE CASCADE,
                        path TEXT NOT NULL UNIQUE,
                        savedAt DATETIME NOT NULL,
                        runState TEXT NOT NULL CHECK (runState IN ('running', 'paused')),
                        resumeAtDaemonStart INTEGER NOT NULL DEFAULT 0
                    );
                    CREATE TABLE snapshot (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        domainId INTEGER NOT NULL REFERENCES domain(id) ON DELETE CASCADE,
                        name TEXT NOT NULL,
                        description TEXT,
                        createdAt DATETIME NOT NULL,
                        state TEXT NOT NULL,
                        memory INTEGER NOT NULL,
                        -- The definition when taken: a memory snapshot only loads into the same machine.
                        spec TEXT NOT NULL,
                        UNIQUE (domainId, name)
                    );
                    """)
        }
        // How a domain was installed (`berth install`'s plan and the installer it booted), so
        // that `reinstall` runs the same installer again without reading notes.
        migrator.registerMigration("v8-install") { db in
            try db.execute(
                sql: """
                    CREATE TABLE install (
                        domainId INTEGER PRIMARY KEY REFERENCES domain(id) ON DELETE CASCADE,
                        plan TEXT NOT NULL,
                        installerCmdline TEXT NOT NULL,
                        kernel TEXT NOT NULL,
                        initrd TEXT NOT NULL,
                        cdrom TEXT,
                        -- While an installer runs: where its console output began, so that a
                        -- restarted berthd still reads only its words for a failure report.
                        logOffset INTEGER,
                        updatedAt DATETIME NOT NULL
                    );
                    """)
        }
        // The disks a running guest has now, with their QEMU node names: written when QEMU
        // starts, changed by attach-disk/detach-disk --live, cleared when it exits.
        migrator.registerMigration("v9-storage2") { db in
            try db.execute(
                sql: """
                    CREATE TABLE liveDisk (
                        domainId INTEGER NOT NULL REFERENCES domain(id) ON DELETE CASCADE,
                        position INTEGER NOT NULL,
                        node TEXT NOT NULL,
                        path TEXT NOT NULL,
                        readOnly INTEGER NOT NULL,
                        spec TEXT NOT NULL,
                        UNIQUE (domainId, node)
                    );
                    CREATE INDEX liveDisk_path ON liveDisk(path);
                    """)
        }
        // The media library (`berth media`), until now `<state>/media.json`, which is imported
        // here once and then renamed `media.json.imported`.
        migrator.registerMigration("v10-media") { db in
            try db.execute(
                sql: """
                    CREATE TABLE media (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        name TEXT NOT NULL UNIQUE,
                        path TEXT NOT NULL,
                        kind TEXT NOT NULL CHECK (kind IN ('directory', 'iso')),
                        addedAt DATETIME NOT NULL
                    );
                    """)
            try legacyMedia.importEntries(into: db)
        }
        // External (disk-only) snapshots: the overlays made on the files they keep (JSON list of
        // paths; NULL for an internal snapshot).
        migrator.registerMigration("v11-snap") { db in
            try db.execute(sql: "ALTER TABLE snapshot ADD COLUMN overlays TEXT")
        }
        // A logical pool's block device, for pool-build (pvcreate + vgcreate).
        migrator.registerMigration("v12-storage3") { db in
            try db.execute(sql: "ALTER TABLE pool ADD COLUMN sourceDevice TEXT")
        }
        return migrator
    }
}

/// A domain as the catalog holds it.
public struct DomainRecord: Sendable, Equatable {
    public var spec: DomainSpec
    public var desiredState: DomainState
    public var state: DomainState
    public var pid: Int32?
    public var accel: Accelerator?
    public var lastError: String?
    public var startedAt: Date?
}

/// The observed side of a domain, written by its supervisor.
public struct ObservedState: Sendable, Equatable {
    public var state: DomainState
    public var pid: Int32?
    public var accel: Accelerator?
    public var lastError: String?
    public var startedAt: Date?

    public init(
        state: DomainState, pid: Int32? = nil, accel: Accelerator? = nil, lastError: String? = nil,
        startedAt: Date? = nil
    ) {
        self.state = state
        self.pid = pid
        self.accel = accel
        self.lastError = lastError
        self.startedAt = startedAt
    }
}
