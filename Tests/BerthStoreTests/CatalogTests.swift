import BerthModel
import Foundation
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
        let error = #expect(throws: SQLiteError.self) {
            try store.catalog.database.write { db in
                try db.execute(sql: "INSERT INTO nic (mac, domainId) VALUES ('00:0c:29:1a:98:d5', 1)")
            }
        }
        #expect(error?.code == 1555 && error?.primaryCode == 19)  // SQLITE_CONSTRAINT_PRIMARYKEY
        #expect(error?.message == "UNIQUE constraint failed: nic.mac")
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

        try store.catalog.database.write { db in
            try db.execute(
                sql: """
                    CREATE TRIGGER crash_before_clear BEFORE UPDATE OF nextSpec ON domain
                    WHEN NEW.nextSpec IS NULL BEGIN SELECT RAISE(ABORT, 'simulated crash'); END
                    """)
        }
        #expect(throws: (any Error).self) { try store.catalog.applyNextDefinition("devel1") }
        #expect(try store.catalog.domain(named: "devel1").spec.cmdline == "installer")

        try store.catalog.database.write { db in try db.execute(sql: "DROP TRIGGER crash_before_clear") }
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

/// The catalog's dates are GRDB's text ("yyyy-MM-dd HH:mm:ss.SSS", UTC), and read back to the
/// millisecond; the other layouts GRDB read are read the same way, without Foundation's calendar.
@Suite struct CatalogDateTests {
    @Test func textIsGRDBsAndReadsBack() throws {
        let known: [(Double, String)] = [
            (0, "1970-01-01 00:00:00.000"), (951_782_400.5, "2000-02-29 00:00:00.500"),
            (1_700_000_000.25, "2023-11-14 22:13:20.250"), (-1, "1969-12-31 23:59:59.000"),
            (-3e9, "1874-12-07 18:40:00.000"), (4e9 + 0.999, "2096-10-02 07:06:40.999"),
        ]
        for (seconds, text) in known {
            #expect(CatalogDate.text(Date(timeIntervalSince1970: seconds)) == text)
            #expect(CatalogDate.date(.text(text)) == Date(timeIntervalSince1970: seconds))
        }
        for _ in 0..<200 {
            let date = Date(timeIntervalSince1970: Double.random(in: -3e9...4e9))
            let back = try #require(CatalogDate.date(.text(CatalogDate.text(date))))
            #expect(abs(back.timeIntervalSince(date)) <= 0.0005, "\(CatalogDate.text(date))")
        }
    }

    @Test func readsTheOtherLayoutsGRDBRead() {
        let cases: [(String, Double)] = [
            ("2024-02-29", 1_709_164_800), ("2024-02-29 12:34", 1_709_210_040), ("2024-02-29T12:34", 1_709_210_040),
            ("2024-02-29 12:34:56", 1_709_210_096), ("2024-02-29T12:34:56.7", 1_709_210_096.7),
            ("2024-02-29 12:34:56.78", 1_709_210_096.78), ("2024-02-29 12:34:56.789123", 1_709_210_096.789),
            ("2024-02-29 12:34Z", 1_709_210_040), ("2024-02-29 12:34:56+02:00", 1_709_202_896),
            ("2024-02-29T12:34:56.5-01:30", 1_709_215_496.5),
        ]
        for (text, seconds) in cases {
            let date = CatalogDate.date(.text(text))
            #expect(date.map { abs($0.timeIntervalSince1970 - seconds) < 0.0005 } == true, "\(text): \(String(describing: date))")
        }
        #expect(CatalogDate.date(.integer(86400)) == Date(timeIntervalSince1970: 86400))
        #expect(CatalogDate.date(.real(1.5)) == Date(timeIntervalSince1970: 1.5))
        let refused = [
            "", "12:34", "2024-2-29", "2024-13-01", "2024-02-29 24:00", "2024-02-29 12:34:56.", "2024-02-29 12",
            "2024-02-29x12:34", "2024-02-29 12:34+0200", "2024-02-29 12:34:56 ", "today",
        ]
        for text in refused { #expect(CatalogDate.date(.text(text)) == nil, "\(text)") }
        #expect(CatalogDate.date(.null) == nil)
        #expect(CatalogDate.date(.blob([50, 48])) == nil)
    }
}
