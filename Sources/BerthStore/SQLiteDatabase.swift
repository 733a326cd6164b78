import CSQLite
import Glibc
import Synchronization

/// A database file as GRDB's `DatabasePool` used it, with the same set-up: WAL journal
/// (`synchronous = NORMAL`), one writer connection and up to `readerCount` read-only ones,
/// opened when first needed. Writes are serialized on the writer, each one `BEGIN IMMEDIATE`
/// transaction; each read is a deferred transaction on a free reader, so in WAL mode reads see
/// the last committed state and never wait behind a write. Calls block their thread (run them
/// where blocking is allowed, as with GRDB's synchronous API).
final class SQLiteDatabase: Sendable {
    let path: String
    private let writer: Mutex<SQLiteConnection>
    private let readers: [Reader]

    /// One reader connection and the lock that gives it to one read at a time.
    private final class Reader: Sendable {
        let connection = Mutex<SQLiteConnection?>(nil)
    }

    /// The writer waits up to 5 s for a lock another process holds (GRDB's `busyMode` as the
    /// catalog configured it); readers 10 s (GRDB's default for a pool's readers).
    static let writerBusyTimeout: Int32 = 5000
    static let readerBusyTimeout: Int32 = 10000

    init(path: String, readerCount: Int = 2) throws {
        precondition(readerCount > 0)
        self.path = path
        let connection = try SQLiteConnection(path: path, readOnly: false, busyTimeout: Self.writerBusyTimeout)
        try Self.setUpWAL(connection, path: path)
        writer = Mutex(connection)
        readers = (0..<readerCount).map { _ in Reader() }
    }

    deinit {
        // Readers first, so that the writer is the last connection: closing it checkpoints the
        // WAL into the database file and removes it (as GRDB's pool did).
        for reader in readers { reader.connection.withLock { $0 = nil } }
    }

    /// `body` in one IMMEDIATE transaction on the writer: committed when it returns, rolled
    /// back when it throws. Writers wait for each other, not for readers.
    func write<T: Sendable>(_ body: (SQLiteConnection) throws -> T) throws -> T {
        try writer.withLock { connection in try connection.inTransaction(.immediate, body) }
    }

    /// `body` on the writer outside any transaction (migrations manage theirs).
    func writeWithoutTransaction<T: Sendable>(_ body: (SQLiteConnection) throws -> T) throws -> T {
        try writer.withLock { connection in try body(connection) }
    }

    /// `body` in one deferred (snapshot) transaction on a free reader; waits for one when all
    /// are busy.
    func read<T: Sendable>(_ body: (SQLiteConnection) throws -> T) throws -> T {
        for reader in readers {
            if let result = try reader.connection.withLockIfAvailable({ connection in try read(on: &connection, body) }) {
                return result
            }
        }
        let reader = readers[Int.random(in: readers.indices)]
        return try reader.connection.withLock { connection in try read(on: &connection, body) }
    }

    private func read<T>(on connection: inout SQLiteConnection?, _ body: (SQLiteConnection) throws -> T) throws -> T {
        let open = try connection ?? SQLiteConnection(path: path, readOnly: true, busyTimeout: Self.readerBusyTimeout)
        connection = open
        return try open.inTransaction(.deferred, body)
    }

    /// WAL mode, as GRDB's pool set it up; the WAL file is made non-empty (a table created and
    /// dropped) when it is missing or empty, because a read-only connection cannot open a WAL
    /// database without one (GRDB issue 102).
    private static func setUpWAL(_ connection: SQLiteConnection, path: String) throws {
        guard try String.fetchOne(connection, sql: "PRAGMA journal_mode = WAL") == "wal" else {
            throw SQLiteError(code: SQLITE_ERROR, message: "could not switch \(path) to WAL mode")
        }
        try connection.execute(sql: "PRAGMA synchronous = NORMAL")
        var status = stat()
        if stat(path + "-wal", &status) != 0 || status.st_size == 0 {
            try connection.inTransaction(.immediate) { db in
                try db.execute(sql: "CREATE TABLE berth_wal_start (id INTEGER PRIMARY KEY); DROP TABLE berth_wal_start")
            }
        }
    }
}

/// The catalog's schema migrations, applied in the order registered, each once, as GRDB's
/// `DatabaseMigrator` (with its defaults) applied them, so that catalogs made by earlier berthds
/// carry on where they stopped:
/// - applied migrations are recorded in table `grdb_migrations (identifier TEXT NOT NULL PRIMARY
///   KEY)`; the name is GRDB's, kept for compatibility with existing catalogs;
/// - each migration runs in one IMMEDIATE transaction with foreign keys off, and
///   `PRAGMA foreign_key_check` must find no violation before it commits (SQLite's recipe for
///   schema changes); foreign keys are on again afterwards, whatever happened;
/// - identifiers the catalog does not know (a newer berthd's) are left alone.
struct SQLiteMigrator {
    private var migrations: [(identifier: String, migrate: (SQLiteConnection) throws -> Void)] = []

    mutating func registerMigration(_ identifier: String, _ migrate: @escaping (SQLiteConnection) throws -> Void) {
        precondition(!migrations.contains { $0.identifier == identifier }, "migration \(identifier) registered twice")
        migrations.append((identifier, migrate))
    }

    /// Applies the migrations not yet applied, up to and including `target` (all when nil).
    func migrate(_ database: SQLiteDatabase, upTo target: String? = nil) throws {
        try database.writeWithoutTransaction { db in
            try db.execute(sql: "CREATE TABLE IF NOT EXISTS grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY)")
            let applied = try Set(String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations"))
            for migration in migrations {
                if !applied.contains(migration.identifier) { try run(migration, db: db) }
                if migration.identifier == target { break }
            }
        }
    }

    private func run(_ migration: (identifier: String, migrate: (SQLiteConnection) throws -> Void), db: SQLiteConnection) throws {
        try db.execute(sql: "PRAGMA foreign_keys = OFF")
        let result = Result {
            try db.inTransaction(.immediate) { db in
                try migration.migrate(db)
                try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES (?)", arguments: [migration.identifier])
                try Self.checkForeignKeys(db)
            }
        }
        // The migration's error, if any, rather than this one's.
        let restored = Result { try db.execute(sql: "PRAGMA foreign_keys = ON") }
        try result.get()
        try restored.get()
    }

    /// Throws `SQLITE_CONSTRAINT_FOREIGNKEY` naming the first row that refers to a missing one.
    static func checkForeignKeys(_ db: SQLiteConnection) throws {
        guard let violation = try SQLiteRow.fetchOne(db, sql: "PRAGMA foreign_key_check") else { return }
        let table: String = try violation["table"]
        let parent: String = try violation["parent"]
        let row: Int64? = try violation["rowid"]
        throw SQLiteError(
            code: SQLiteError.constraintForeignKey,
            message: "FOREIGN KEY constraint violation: row \(row.map(String.init) ?? "?") of \(table) refers to a missing \(parent)")
    }
}
