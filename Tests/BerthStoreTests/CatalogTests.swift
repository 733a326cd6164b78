import BerthModel
import Foundation
import GRDB
import Testing

@testable import BerthStore

/// Every test opens a real SQLite file in its own temporary directory.
struct TemporaryCatalog {
    let directory: URL
    let catalog: Catalog

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("berth-catalog-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        catalog = try Catalog(path: directory.appendingPathComponent("catalog.sqlite").path)
    }
}

@Suite struct CatalogTests {
    func spec(_ name: String, mac: String? = nil, disk: String? = nil) -> DomainSpec {
        DomainSpec(
            name: name, kernel: "/boot/vmlinuz", disks: disk.map { [DiskSpec(path: $0)] } ?? [],
            nics: [NICSpec(mac: mac.flatMap(MACAddress.init))])
    }

    @Test func defineAssignsMACAndReadsBack() throws {
        let store = try TemporaryCatalog()
        let stored = try store.catalog.define(spec("devel1"))
        let mac = try #require(stored.nics.first?.mac)
        #expect(mac.bytes.prefix(3).elementsEqual(MACAddress.qemuPrefix))
        let record = try store.catalog.domain(named: "devel1")
        #expect(record.spec == stored)
        #expect(record.state == .shutoff)
    }

    @Test func nameInUseSaysWhatToDo() throws {
        let store = try TemporaryCatalog()
        try store.catalog.define(spec("devel1"))
        let error = #expect(throws: BerthError.self) { try store.catalog.define(spec("devel1")) }
        #expect(error?.code == .alreadyExists)
        #expect(error?.remedy?.contains("berth undefine devel1") == true)
        #expect(try store.catalog.allDomains().count == 1)
    }

    @Test func macAndDiskClashesNameTheOwner() throws {
        let store = try TemporaryCatalog()
        try store.catalog.define(spec("a", mac: "00:0C:29:1A:98:D5", disk: "/dev/xenspace/a"))
        let macError = #expect(throws: BerthError.self) {
            try store.catalog.define(spec("b", mac: "00:0c:29:1a:98:d5"))
        }
        #expect(macError?.message.contains("'a'") == true)
        let diskError = #expect(throws: BerthError.self) {
            try store.catalog.define(spec("c", disk: "/dev/xenspace/a"))
        }
        #expect(diskError?.message.contains("in use by domain 'a'") == true)
        #expect(try store.catalog.summaries().map(\.name) == ["a"])
    }

    @Test func updateKeepsGeneratedMACs() throws {
        let store = try TemporaryCatalog()
        let first = try store.catalog.define(spec("a"))
        var edited = spec("a")
        edited.uuid = first.uuid
        edited.memory = 512
        let second = try store.catalog.update(edited)
        #expect(second.nics.first?.mac == first.nics.first?.mac)
        #expect(try store.catalog.domain(named: "a").spec.memory == 512)
    }

    @Test func undefineFreesNameAndMAC() throws {
        let store = try TemporaryCatalog()
        try store.catalog.define(spec("a", mac: "00:0C:29:1A:98:D5"))
        try store.catalog.undefine("a")
        try store.catalog.define(spec("a2", mac: "00:0C:29:1A:98:D5"))
        #expect(throws: BerthError.unknownDomain("a")) { try store.catalog.undefine("a") }
    }

    @Test func schemaRejectsDuplicateMACEvenBehindTheChecks() throws {
        let store = try TemporaryCatalog()
        try store.catalog.define(spec("a", mac: "00:0C:29:1A:98:D5"))
        #expect(throws: DatabaseError.self) {
            try store.catalog.writer.write { db in
                try db.execute(sql: "INSERT INTO nic (mac, domainId) VALUES ('00:0c:29:1a:98:d5', 1)")
            }
        }
    }

    @Test func observedStateAndAutostartPersistAcrossReopen() throws {
        let store = try TemporaryCatalog()
        try store.catalog.define(spec("a"))
        try store.catalog.setObserved("a", ObservedState(state: .running, pid: 42, accel: .tcg))
        try store.catalog.setAutostart("a", true)
        let reopened = try Catalog(path: store.directory.appendingPathComponent("catalog.sqlite").path)
        let record = try reopened.domain(named: "a")
        #expect(record.state == .running)
        #expect(record.pid == 42)
        #expect(record.spec.autostart)
        #expect(try reopened.summaries().first?.autostart == true)
    }
}

extension CatalogTests {
    /// The switch to an install's next definition is one transaction: when it fails part way
    /// (a crash simulated by a trigger that aborts the clearing of `nextSpec`), nothing of it
    /// is kept; the old definition stays with its next one pending, to be applied exactly once.
    @Test func applyingTheNextDefinitionIsAllOrNothing() throws {
        let store = try TemporaryCatalog()
        var installer = spec("devel1")
        installer.cmdline = "installer"
        let stored = try store.catalog.define(installer)
        var installed = stored
        installed.cmdline = "installed"
        try store.catalog.setNextDefinition("devel1", installed, start: true)

        try store.catalog.writer.write { db in
            try db.execute(
                sql: """
                    CREATE TRIGGER crash_before_clear BEFORE UPDATE OF nextSpec ON domain
                    WHEN NEW.nextSpec IS NULL BEGIN SELECT RAISE(ABORT, 'simulated crash'); END
                    """)
        }
        #expect(throws: (any Error).self) { try store.catalog.applyNextDefinition("devel1") }
        #expect(try store.catalog.domain(named: "devel1").spec.cmdline == "installer")

        try store.catalog.writer.write { db in try db.execute(sql: "DROP TRIGGER crash_before_clear") }
        #expect(try store.catalog.applyNextDefinition("devel1") == true)
        #expect(try store.catalog.domain(named: "devel1").spec.cmdline == "installed")
        #expect(try store.catalog.applyNextDefinition("devel1") == nil)
    }
}

/// The catalog's UUID parser agrees with Foundation's and refuses what is not a UUID.
@Suite struct CatalogUUIDTextTests {
    @Test func parsesWhatFoundationParses() {
        for _ in 0..<100 {
            let uuid = UUID()
            #expect(UUID(catalogText: uuid.uuidString) == uuid)
            #expect(UUID(catalogText: uuid.uuidString.lowercased()) == uuid)
        }
        let bad = [
            "", "6F1C2B9E-3D4A-4E5F-8A7B-1C2D3E4F5A6", "6F1C2B9E-3D4A-4E5F-8A7B-1C2D3E4F5A6BB",
            "6F1C2B9E_3D4A-4E5F-8A7B-1C2D3E4F5A6B", "6F1C2B9E-3D4A-4E5F-8A7B-1C2D3E4F5A6G",
            "6F1C2B9EE3D4A-4E5F-8A7B-1C2D3E4F5A6B", "ü1C2B9E-3D4A-4E5F-8A7B-1C2D3E4F5A6B",
        ]
        for text in bad { #expect(UUID(catalogText: text) == nil, "\(text)") }
    }
}

/// The catalog's dates are GRDB's text byte for byte, and read back to the millisecond.
@Suite struct CatalogDateTests {
    @Test func textIsGRDBsAndReadsBack() throws {
        // All after 1582: before it, ICU's formatter switches to the Julian calendar.
        var dates = [Date(timeIntervalSince1970: 0), Date(timeIntervalSince1970: 951_782_400.5), Date()]
        for _ in 0..<200 { dates.append(Date(timeIntervalSince1970: Double.random(in: -3e9...4e9))) }
        for date in dates {
            let text = CatalogDate.text(date)
            #expect(text == String.fromDatabaseValue(date.databaseValue), "\(date.timeIntervalSince1970)")
            let back = try #require(CatalogDate.date(text.databaseValue))
            let expected = try #require(Date.fromDatabaseValue(text.databaseValue))
            #expect(abs(back.timeIntervalSince(expected)) < 0.0005, "\(text)")
        }
        // What this parser does not know goes to GRDB's.
        #expect(CatalogDate.date("2024-02-29".databaseValue) == Date.fromDatabaseValue("2024-02-29".databaseValue))
        #expect(CatalogDate.date(DatabaseValue.null) == nil)
    }
}
