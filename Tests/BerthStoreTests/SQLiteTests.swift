import BerthModel
import CSQLite
import Foundation
import Synchronization
import Testing

@testable import BerthStore

/// A database file in a temporary directory of its own.
struct TemporaryDatabase {
    let path: String
    let database: SQLiteDatabase

    init(_ schema: String = "CREATE TABLE t (id INTEGER PRIMARY KEY, value)") throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("berth-sqlite-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        path = directory + "/test.sqlite"
        database = try SQLiteDatabase(path: path)
        try database.write { db in try db.execute(sql: schema) }
    }
}

/// BerthStore's SQLite layer: values in and out, errors, transactions, and its writer/readers.
@Suite struct SQLiteTests {
    @Test func eachTypeIsBoundAndReadBack() throws {
        let store = try TemporaryDatabase()
        let values: [(any SQLiteValueConvertible)?] = [
            Int64.max, Int64.min, Int.max, Int32.min, true, false, 1.5, -0.25, "", "text ü 🚢", "with\0nul", [UInt8](),
            [0, 1, 255] as [UInt8], nil,
        ]
        try store.database.write { db in
            for value in values { try db.execute(sql: "INSERT INTO t (value) VALUES (?)", arguments: [value]) }
        }
        let rows = try store.database.read { db in try SQLiteRow.fetchAll(db, sql: "SELECT value FROM t ORDER BY id") }
        try #require(rows.count == values.count)
        #expect(try rows[0]["value"] as Int64 == .max)
        #expect(try rows[1][0] as Int64 == .min)
        #expect(try rows[2]["value"] as Int == .max)
        #expect(try rows[3]["value"] as Int32 == .min)
        #expect(try rows[4]["value"] as Bool == true)
        #expect(try rows[5]["value"] as Bool == false)
        #expect(try rows[6]["value"] as Double == 1.5)
        #expect(try rows[7]["value"] as Double == -0.25)
        #expect(try rows[8]["value"] as String == "", "an empty string is not NULL")
        #expect(try rows[9]["value"] as String == "text ü 🚢")
        #expect(try rows[10]["value"] as String == "with\0nul")
        #expect(try rows[11]["value"] as [UInt8] == [], "an empty blob is not NULL")
        #expect(try rows[12]["value"] as [UInt8] == [0, 1, 255])
        #expect(try rows[13]["value"] as SQLiteValue == .null)
        #expect(try rows[13]["value"] as String? == nil)
        #expect(try rows[0]["value"] as Int64? == .max)
    }

    @Test func nullAndMismatchesAreErrorsNotCrashes() throws {
        let store = try TemporaryDatabase()
        try store.database.write { db in
            try db.execute(sql: "INSERT INTO t (value) VALUES (NULL), ('text'), (?)", arguments: [Int64(1) << 40])
        }
        let rows = try store.database.read { db in try SQLiteRow.fetchAll(db, sql: "SELECT id, value FROM t ORDER BY id") }
        let null = #expect(throws: SQLiteError.self) { try rows[0]["value"] as String }
        #expect(null?.message.contains("holds null") == true)
        #expect(throws: SQLiteError.self) { try rows[1]["value"] as Int64 }
        #expect(throws: SQLiteError.self) { try rows[2]["value"] as Int32 }
        #expect(try rows[2]["value"] as Int64 == 1 << 40)
        let missing = #expect(throws: SQLiteError.self) { try rows[0]["nope"] as String? }
        #expect(missing?.message.contains("no column 'nope'") == true)
        #expect(throws: SQLiteError.self) { try rows[0][2] as Int64? }
        // fetchOne: nil for no row and for NULL; fetchAll refuses NULL.
        try store.database.read { db throws in
            #expect(try String.fetchOne(db, sql: "SELECT value FROM t WHERE id = 99") == nil)
            #expect(try String.fetchOne(db, sql: "SELECT value FROM t WHERE id = 1") == nil)
            #expect(try String.fetchOne(db, sql: "SELECT value FROM t WHERE id = ?", arguments: [2]) == "text")
            #expect(throws: SQLiteError.self) { try String.fetchAll(db, sql: "SELECT value FROM t ORDER BY id") }
            #expect(try Int64.fetchAll(db, sql: "SELECT id FROM t ORDER BY id") == [1, 2, 3])
        }
    }

    @Test func argumentsMustMatchTheParameters() throws {
        let store = try TemporaryDatabase()
        try store.database.write { db throws in
            let few = #expect(throws: SQLiteError.self) { try db.execute(sql: "INSERT INTO t (id, value) VALUES (?, ?)", arguments: [1]) }
            #expect(few?.code == SQLITE_MISUSE)
            let many = #expect(throws: SQLiteError.self) { try db.execute(sql: "INSERT INTO t (value) VALUES (?)", arguments: [1, 2]) }
            #expect(many?.code == SQLITE_MISUSE)
            // A script's statements take the arguments in order.
            try db.execute(sql: "INSERT INTO t (value) VALUES (?); INSERT INTO t (value) VALUES (?);", arguments: ["a", "b"])
            #expect(try String.fetchAll(db, sql: "SELECT value FROM t ORDER BY id") == ["a", "b"])
            #expect(db.lastInsertedRowID == 2)
            try db.execute(sql: "UPDATE t SET value = 'c'")
            #expect(db.changesCount == 2)
        }
    }

    @Test func errorsCarrySQLitesExtendedCodeMessageAndStatement() throws {
        let store = try TemporaryDatabase("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)")
        try store.database.write { db in try db.execute(sql: "INSERT INTO t (name) VALUES ('a')") }
        let unique = #expect(throws: SQLiteError.self) {
            try store.database.write { db in try db.execute(sql: "INSERT INTO t (name) VALUES ('a')") }
        }
        #expect(unique?.code == SQLiteError.constraintUnique)
        #expect(unique?.description == "SQLite error 2067: UNIQUE constraint failed: t.name - while executing `INSERT INTO t (name) VALUES ('a')`")
        let notNull = #expect(throws: SQLiteError.self) {
            try store.database.write { db in try db.execute(sql: "INSERT INTO t (name) VALUES (NULL)") }
        }
        #expect(notNull?.code == 1299 && notNull?.primaryCode == 19)  // SQLITE_CONSTRAINT_NOTNULL
        let syntax = #expect(throws: SQLiteError.self) { try store.database.read { db in try db.execute(sql: "SELEKT 1") } }
        #expect(syntax?.code == SQLITE_ERROR && syntax?.message.contains("syntax error") == true)
        // Double-quoted words are identifiers, as GRDB set it: a misspelt column is an error.
        #expect(throws: SQLiteError.self) { try store.database.read { db in try String.fetchOne(db, sql: #"SELECT "nmae" FROM t"#) } }
    }

    /// The catalog turns a UNIQUE violation of the schema into its own message.
    @Test func aConstraintViolationSurfacesAsTheCatalogsMessage() throws {
        let store = try TemporaryCatalog()
        let spec = try store.catalog.define(DomainSpec(name: "a", kernel: "/k"))
        let info = SnapshotInfo(name: "s1", description: nil, createdAt: Date(), state: .shutoff, memory: false, disks: [])
        try store.catalog.addSnapshot("a", SnapshotRecord(info: info, spec: spec))
        let error = #expect(throws: BerthError.self) { try store.catalog.addSnapshot("a", SnapshotRecord(info: info, spec: spec)) }
        #expect(error?.code == .alreadyExists)
        #expect(error?.message == "Domain 'a' already has a snapshot 's1'.")
        #expect(try store.catalog.snapshots("a").count == 1)
    }

    @Test func aThrowingWriteLeavesNothingWritten() throws {
        struct Stop: Error {}
        let store = try TemporaryDatabase()
        #expect(throws: Stop.self) {
            try store.database.write { db in
                try db.execute(sql: "INSERT INTO t (value) VALUES (1)")
                try db.execute(sql: "CREATE TABLE other (x)")
                throw Stop()
            }
        }
        // Nor does a failing statement, after others succeeded.
        #expect(throws: SQLiteError.self) {
            try store.database.write { db in
                try db.execute(sql: "INSERT INTO t (value) VALUES (2)")
                try db.execute(sql: "INSERT INTO t (id) VALUES (1), (1)")
            }
        }
        let left = try store.database.read { db in
            try Int.fetchOne(db, sql: "SELECT (SELECT count(*) FROM t) + (SELECT count(*) FROM sqlite_master WHERE name = 'other')")
        }
        #expect(left == 0)
        // The writer is usable afterwards (no transaction left open).
        try store.database.write { db in try db.execute(sql: "INSERT INTO t (value) VALUES (3)") }
        #expect(try store.database.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM t") } == 1)
    }

    @Test func readersCannotWriteAndForeignKeysAreOn() throws {
        let store = try TemporaryDatabase(
            "CREATE TABLE p (id INTEGER PRIMARY KEY); CREATE TABLE c (p INTEGER REFERENCES p(id) ON DELETE CASCADE)")
        let readOnly = #expect(throws: SQLiteError.self) {
            try store.database.read { db in try db.execute(sql: "INSERT INTO p (id) VALUES (1)") }
        }
        #expect(readOnly?.primaryCode == SQLITE_READONLY)
        let foreign = #expect(throws: SQLiteError.self) {
            try store.database.write { db in try db.execute(sql: "INSERT INTO c (p) VALUES (7)") }
        }
        #expect(foreign?.code == SQLiteError.constraintForeignKey)
        #expect(try store.database.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") } == "wal")
        #expect(try store.database.read { db in try Bool.fetchOne(db, sql: "PRAGMA foreign_keys") } == true)
        #expect(try store.database.write { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") } == 1)  // NORMAL
    }

    /// Reads run beside a write that holds the writer: they see the last committed state, and a
    /// second write waits for the first.
    @Test func readersDoNotWaitBehindALongWrite() async throws {
        let store = try TemporaryDatabase()
        let database = store.database
        try database.write { db in try db.execute(sql: "INSERT INTO t (value) VALUES ('committed')") }
        let inWrite = Mutex(false)
        let release = Mutex(false)
        let writer = Thread {
            try? database.write { db in
                try db.execute(sql: "INSERT INTO t (value) VALUES ('pending')")
                inWrite.withLock { $0 = true }
                while !release.withLock({ $0 }) { usleep(1000) }
            }
        }
        writer.start()
        try await waitUntil { inWrite.withLock { $0 } }
        // Several reads at once, more than there are readers, all while the write is open.
        try await withThrowingTaskGroup(of: [String].self) { group in
            for _ in 0..<6 {
                group.addTask { try database.read { db in try String.fetchAll(db, sql: "SELECT value FROM t") } }
            }
            for try await values in group { #expect(values == ["committed"]) }
        }
        #expect(inWrite.withLock { $0 } && !release.withLock { $0 }, "the write was still open")
        release.withLock { $0 = true }
        try database.write { _ in }  // waits for the first write
        #expect(try database.read { db in try String.fetchAll(db, sql: "SELECT value FROM t ORDER BY id") } == ["committed", "pending"])
    }

    func waitUntil(_ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while !condition() {
            guard ContinuousClock.now < deadline else { throw CancellationError() }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    /// Every statement is finalized and every connection closed with the database: the last
    /// connection to close checkpoints the WAL and removes it (a statement left open would keep
    /// its connection, and the WAL, alive).
    @Test func closingTheDatabaseClosesItsConnections() throws {
        var path = ""
        do {
            let store = try TemporaryDatabase()
            path = store.path
            try store.database.write { db in try db.execute(sql: "INSERT INTO t (value) VALUES (1), (2)") }
            #expect(try store.database.read { db in try Int.fetchOne(db, sql: "SELECT value FROM t ORDER BY id") } == 1)
            #expect(try store.database.read { db in try SQLiteRow.fetchOne(db, sql: "SELECT * FROM t") }?.values.count == 2)
            #expect(FileManager.default.fileExists(atPath: path + "-wal"))
        }
        #expect(!FileManager.default.fileExists(atPath: path + "-wal"))
        #expect(try SQLiteDatabase(path: path).read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM t") } == 2)
    }

    @Test func aFileThatIsNotADatabaseIsRefusedAtOpen() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("berth-notdb-\(UUID().uuidString)").path
        try String(repeating: "not a database ", count: 100).write(toFile: path, atomically: true, encoding: .utf8)
        let error = #expect(throws: SQLiteError.self) { try SQLiteDatabase(path: path) }
        #expect(error?.code == SQLITE_NOTADB)
    }

    @Test func directoryOfAPathIsAsNSStringGaveIt() {
        #expect(Catalog.directory(of: "/var/lib/berth/catalog.sqlite") == "/var/lib/berth")
        #expect(Catalog.directory(of: "/var/lib/berth/") == "/var/lib")
        #expect(Catalog.directory(of: "/catalog.sqlite") == "/")
        #expect(Catalog.directory(of: "catalog.sqlite") == "")
        #expect(Catalog.directory(of: "state/catalog.sqlite") == "state")
        #expect(Catalog.directory(of: "/") == "/")
    }
}
