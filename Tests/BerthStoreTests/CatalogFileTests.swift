import BerthModel
import Foundation
import Testing

@testable import BerthStore

/// Catalogs written by the GRDB-based berthd (Fixtures/README.md says how they were made) open
/// with the direct SQLite code, carry on migrating where GRDB's migrator stopped, and read back.
@Suite struct CatalogFileTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path
    static let allMigrations = [
        "v1", "v2-kickstart", "v3-next-definition", "v4-settings", "v5-networks", "v6-storage", "v7-saves", "v8-install",
        "v9-storage2", "v10-media", "v11-snap", "v12-storage3",
    ]

    /// A copy of fixture `name` in a temporary directory (opening migrates it).
    func copy(_ name: String) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("berth-fixture-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/catalog.sqlite"
        try FileManager.default.copyItem(atPath: Self.fixtures + "/" + name, toPath: path)
        return path
    }

    func applied(_ path: String) throws -> [String] {
        try SQLiteDatabase(path: path).read { db in try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations ORDER BY rowid") }
    }

    @Test func aCatalogGRDBMigratedFullyOpensAndReadsBack() throws {
        let path = try copy("catalog-grdb-v12.sqlite")
        let catalog = try Catalog(path: path)
        #expect(try applied(path) == Self.allMigrations, "nothing applied twice")

        let alpha = try catalog.domain(named: "alpha")
        #expect(alpha.spec.uuid == UUID(uuidString: "6F1C2B9E-3D4A-4E5F-8A7B-1C2D3E4F5A6B"))
        #expect(alpha.spec.memory == 512 && alpha.spec.vcpus == 2 && alpha.spec.autostart)
        #expect(alpha.state == .running && alpha.desiredState == .running && alpha.pid == 4242 && alpha.accel == .tcg)
        #expect(alpha.startedAt == Date(timeIntervalSince1970: 1_700_000_000.25))
        #expect(try catalog.kickstart("alpha") == "# kickstart of alpha\nreboot\n")
        #expect(try catalog.liveDisks("alpha").map(\.node) == ["disk0"])
        let beta = try catalog.domain(named: "beta")
        #expect(beta.lastError == "QEMU exited with status 1." && beta.pid == nil && beta.startedAt == nil)
        #expect(beta.spec.disks.map(\.readOnly) == [false, true])
        #expect(try catalog.summaries().map(\.name) == ["alpha", "beta"])
        #expect(try catalog.summaries().first?.uuid == alpha.spec.uuid)

        let lan = try catalog.network(named: "lan")
        #expect(lan.spec.hosts.map(\.ip) == ["10.1.0.10"] && lan.spec.hosts.first?.domain == "alpha")
        #expect(try catalog.pools().map(\.spec.name) == ["default"] && catalog.pools().first?.active == true)
        let overlay = try catalog.volume(pool: "default", name: "alpha.qcow2")
        #expect(overlay.backing?.path == "/srv/pool/base.raw" && overlay.backing?.volume == "default/base.raw")
        #expect(overlay.capacity == 1 << 30 && overlay.format == .qcow2)
        let save = try #require(try catalog.managedSave("beta"))
        #expect(save.savedAt == Date(timeIntervalSince1970: 1_700_000_100.5) && save.state == .paused && save.resumeAtDaemonStart)
        #expect(try catalog.domainsResumingAtDaemonStart() == ["beta"])
        let snapshot = try catalog.snapshot("beta", "before-upgrade")
        #expect(snapshot.info.createdAt == Date(timeIntervalSince1970: 1_700_000_200.125))
        #expect(snapshot.info.description == "clean install" && snapshot.spec == beta.spec)
        #expect(try catalog.mediaEntries() == [MediaEntry(name: "debian", path: "/srv/iso/debian.iso", kind: .iso)])
        #expect(try catalog.guestIDBlock() == 1_000_013_824)

        // And it takes writes that its schema checks, as before.
        #expect(throws: BerthError.self) {
            try catalog.define(DomainSpec(name: "gamma", kernel: "/k", disks: [DiskSpec(path: "/srv/pool/beta.raw")]))
        }
        try catalog.define(DomainSpec(name: "gamma", kernel: "/k"))
        #expect(try catalog.domainID(named: "gamma") == 3)
    }

    @Test func aCatalogGRDBLeftAtV9IsMigratedOnByTheNewCode() throws {
        let path = try copy("catalog-grdb-v9.sqlite")
        #expect(try applied(path) == Array(Self.allMigrations.prefix(9)))
        let catalog = try Catalog(path: path)
        #expect(try applied(path) == Self.allMigrations)
        let old = try catalog.domain(named: "old")
        #expect(old.spec.uuid == UUID(uuidString: "11111111-2222-4333-8444-555555555555"))
        #expect(old.spec.disks.map(\.path) == ["/srv/old.raw"])
        #expect(try catalog.mediaEntries().isEmpty)
        // v12-storage3's column is there.
        try catalog.definePool(PoolSpec(name: "vg", type: .logical, target: "/dev/vg", sourceName: "vg", sourceDevice: "/dev/sdb"))
        #expect(try catalog.pool(named: "vg").spec.sourceDevice == "/dev/sdb")
        // Reopened: nothing more to apply.
        _ = try Catalog(path: path)
        #expect(try applied(path) == Self.allMigrations)
    }

    /// A migration whose changes break a foreign key is rolled back whole, as with GRDB's
    /// migrator: foreign keys are off while it runs and checked before it commits.
    @Test func aMigrationBreakingAForeignKeyIsRolledBack() throws {
        let store = try TemporaryDatabase("CREATE TABLE p (id INTEGER PRIMARY KEY); CREATE TABLE c (p INTEGER REFERENCES p(id))")
        var migrator = SQLiteMigrator()
        migrator.registerMigration("fill") { db in try db.execute(sql: "INSERT INTO p (id) VALUES (1); INSERT INTO c (p) VALUES (1)") }
        // Deleting the parent would fail at once with foreign keys on; here it fails at the check.
        migrator.registerMigration("break") { db in try db.execute(sql: "DELETE FROM p; INSERT INTO p (id) VALUES (2)") }
        migrator.registerMigration("after") { db in try db.execute(sql: "INSERT INTO p (id) VALUES (3)") }
        let error = #expect(throws: SQLiteError.self) { try migrator.migrate(store.database) }
        #expect(error?.code == SQLiteError.constraintForeignKey && error?.message.contains("c refers to a missing p") == true)
        let (applied, parents) = try store.database.read { db in
            (try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations"), try Int64.fetchAll(db, sql: "SELECT id FROM p"))
        }
        #expect(applied == ["fill"] && parents == [1])
        // Foreign keys are on again on the writer.
        #expect(throws: SQLiteError.self) { try store.database.write { db in try db.execute(sql: "DELETE FROM p") } }
    }
}
