import CSQLite

// The catalog's own small layer over SQLite's C API (the system libsqlite3): a connection,
// statements with bound parameters, rows read by column name or index, and errors carrying
// SQLite's extended result code. Only what the catalog uses; `SQLiteDatabase` (the writer
// and its readers) and `SQLiteMigrator` are in SQLiteDatabase.swift.

/// A value of one column or parameter: SQLite's five storage classes.
enum SQLiteValue: Sendable, Equatable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])
}

/// A Swift type stored in one SQLite column.
protocol SQLiteValueConvertible: Sendable {
    var sqliteValue: SQLiteValue { get }
    /// nil when `value` is NULL or does not hold this type exactly (an integer column read as
    /// `Int32` that does not fit, text read as a number).
    init?(sqliteValue value: SQLiteValue)
}

/// A failed SQLite call, or a value a row cannot give as the type asked for.
struct SQLiteError: Error, Equatable, CustomStringConvertible {
    /// SQLite's extended result code (connections are opened with extended codes on):
    /// `SQLITE_CONSTRAINT_UNIQUE` (2067) rather than `SQLITE_CONSTRAINT` (19).
    var code: Int32
    var message: String
    /// The statement that failed, if one did.
    var sql: String?

    /// The primary result code (`SQLITE_CONSTRAINT` for every kind of constraint).
    var primaryCode: Int32 { code & 0xFF }

    static let constraintUnique = BERTH_SQLITE_CONSTRAINT_UNIQUE
    static let constraintForeignKey = BERTH_SQLITE_CONSTRAINT_FOREIGNKEY

    var description: String {
        "SQLite error \(code): \(message)" + (sql.map { " - while executing `\($0)`" } ?? "")
    }
}

/// A statement's positional (`?`) parameters, written as an array literal of values and nils:
/// `arguments: [name, pid, nil]`.
struct SQLiteArguments: ExpressibleByArrayLiteral, Sendable {
    var values: [SQLiteValue]

    init(arrayLiteral elements: (any SQLiteValueConvertible)?...) {
        values = elements.map { $0?.sqliteValue ?? .null }
    }
}

/// One result row: its values, and its statement's column names (shared by all its rows).
struct SQLiteRow: Sendable {
    /// Column name → index; a name given twice (`SELECT a.*, b.*`) is its first column, as in GRDB.
    let columns: [String: Int]
    let values: [SQLiteValue]

    /// The value at `index`, as `T`.
    /// - Throws: `SQLiteError` (`SQLITE_MISMATCH`) when it is NULL or not a `T`.
    subscript<T: SQLiteValueConvertible>(_ index: Int) -> T {
        get throws {
            let value = try value(at: index)
            guard let converted = T(sqliteValue: value) else { throw mismatch(T.self, "column \(index)", value) }
            return converted
        }
    }

    /// The value at `index` as `T`, nil when it is NULL.
    subscript<T: SQLiteValueConvertible>(_ index: Int) -> T? {
        get throws {
            let value = try value(at: index)
            if value == .null { return nil }
            guard let converted = T(sqliteValue: value) else { throw mismatch(T.self, "column \(index)", value) }
            return converted
        }
    }

    /// The value of column `name`, as `T`.
    /// - Throws: `SQLiteError` when the row has no such column, or its value is NULL or not a `T`.
    subscript<T: SQLiteValueConvertible>(_ name: String) -> T {
        get throws {
            let value = try value(at: index(of: name))
            guard let converted = T(sqliteValue: value) else { throw mismatch(T.self, "column '\(name)'", value) }
            return converted
        }
    }

    /// The value of column `name` as `T`, nil when it is NULL.
    subscript<T: SQLiteValueConvertible>(_ name: String) -> T? {
        get throws { try self[try index(of: name)] }
    }

    private func value(at index: Int) throws -> SQLiteValue {
        guard values.indices.contains(index) else {
            throw SQLiteError(code: SQLITE_RANGE, message: "no column \(index) in a row of \(values.count)")
        }
        return values[index]
    }

    private func index(of name: String) throws -> Int {
        if let index = columns[name] { return index }
        throw SQLiteError(code: SQLITE_RANGE, message: "no column '\(name)' in a row of \(columns.keys.sorted())")
    }

    private func mismatch(_ type: Any.Type, _ column: String, _ value: SQLiteValue) -> SQLiteError {
        SQLiteError(code: SQLITE_MISMATCH, message: "\(column) holds \(value), not \(type)")
    }
}

/// One connection to a database file. Statements are prepared and finalized within each call.
///
/// `SQLiteDatabase` hands each of its connections to one thread at a time, under a `Mutex`, for
/// one whole transaction. It is `@unchecked Sendable` so that the closures it is handed to may
/// be the caller's (non-`Sendable`) ones; SQLite serializes calls on it in any case
/// (`SQLITE_OPEN_FULLMUTEX`), so a connection kept past its closure would break transactions,
/// not memory.
final class SQLiteConnection: @unchecked Sendable {
    private let handle: OpaquePointer

    /// Opens `path` (created if missing, unless `readOnly`) set up as GRDB set up its
    /// connections: extended result codes, `busyTimeout` milliseconds of waiting for another
    /// connection's lock, double-quoted strings refused, `PRAGMA foreign_keys = ON`; and a
    /// file that is not a database is refused now rather than at its first query.
    init(path: String, readOnly: Bool, busyTimeout: Int32) throws {
        let access = readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
        var opened: OpaquePointer?
        let code = sqlite3_open_v2(path, &opened, access | SQLITE_OPEN_EXRESCODE | SQLITE_OPEN_FULLMUTEX, nil)
        guard code == SQLITE_OK, let opened else {
            let message = opened.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(code))
            sqlite3_close_v2(opened)
            throw SQLiteError(code: code, message: "cannot open \(path): \(message)")
        }
        handle = opened
        sqlite3_busy_timeout(handle, busyTimeout)
        berth_sqlite3_disable_double_quoted_strings(handle)
        try execute(sql: "PRAGMA foreign_keys = ON")
        _ = try SQLiteRow.fetchOne(self, sql: "SELECT * FROM sqlite_master LIMIT 1")
    }

    deinit { sqlite3_close_v2(handle) }

    /// Runs every statement of `sql` in turn (a migration's script), each to completion.
    /// `arguments` fill the statements' `?` parameters in order.
    func execute(sql: String, arguments: SQLiteArguments = []) throws {
        try run(sql: sql, arguments: arguments) { _ in true }
    }

    /// Calls `body` with each row of `sql` (one statement), without keeping them all.
    func forEachRow(sql: String, arguments: SQLiteArguments = [], _ body: (SQLiteRow) throws -> Void) throws {
        try run(sql: sql, arguments: arguments) { row in
            try body(row)
            return true
        }
    }

    /// Rows changed by the last INSERT, UPDATE or DELETE.
    var changesCount: Int { Int(sqlite3_changes(handle)) }

    /// The rowid of the last row inserted on this connection.
    var lastInsertedRowID: Int64 { sqlite3_last_insert_rowid(handle) }

    /// Whether a transaction is open (SQLite ends one by itself on some errors).
    var isInsideTransaction: Bool { sqlite3_get_autocommit(handle) == 0 }

    /// `body` in one transaction (`kind` DEFERRED or IMMEDIATE), committed when it returns and
    /// rolled back when it (or the commit) throws.
    func inTransaction<T>(_ kind: TransactionKind, _ body: (SQLiteConnection) throws -> T) throws -> T {
        try execute(sql: "BEGIN \(kind.rawValue) TRANSACTION")
        do {
            let result = try body(self)
            // A statement that failed with ROLLBACK (RAISE(ROLLBACK), SQLITE_FULL…) ended the
            // transaction already: what followed it ran outside, so say so instead of committing.
            guard isInsideTransaction else {
                throw SQLiteError(code: SQLITE_ABORT, message: "the transaction was rolled back by SQLite")
            }
            try execute(sql: "COMMIT TRANSACTION")
            return result
        } catch {
            if isInsideTransaction { try? execute(sql: "ROLLBACK TRANSACTION") }
            throw error
        }
    }

    enum TransactionKind: String {
        case deferred = "DEFERRED"
        case immediate = "IMMEDIATE"
    }

    // MARK: Statements

    /// Prepares, binds and steps each statement of `sql`, calling `row` for each result row
    /// until it returns false; every statement is finalized before this returns.
    fileprivate func run(sql: String, arguments: SQLiteArguments, row: (SQLiteRow) throws -> Bool) throws {
        var bound = 0
        let finished = try sql.withCString { start -> Bool in
            var next: UnsafePointer<CChar>? = start
            while let current = next, current.pointee != 0 {
                var statement: OpaquePointer?
                let code = sqlite3_prepare_v2(handle, current, -1, &statement, &next)
                guard code == SQLITE_OK else { throw failure(code, sql) }
                guard let statement else { continue }  // only white space or a comment was left
                defer { sqlite3_finalize(statement) }
                let isLast = next.map { Self.isBlank($0) } ?? true
                bound += try bind(arguments.values.dropFirst(bound), to: statement, sql, isLast: isLast)
                guard try step(statement, sql, row) else { return false }
            }
            return true
        }
        if finished, bound != arguments.values.count {
            throw SQLiteError(
                code: SQLITE_MISUSE, message: "\(arguments.values.count) arguments for \(bound) parameters", sql: sql)
        }
    }

    /// Binds the statement's parameters from the front of `values`; returns how many it took.
    /// The last statement must take all that are left (checked before it runs).
    private func bind(_ values: ArraySlice<SQLiteValue>, to statement: OpaquePointer, _ sql: String, isLast: Bool) throws -> Int {
        let count = Int(sqlite3_bind_parameter_count(statement))
        guard values.count >= count, !isLast || values.count == count else {
            throw SQLiteError(code: SQLITE_MISUSE, message: "\(values.count) arguments left for \(count) parameters", sql: sql)
        }
        for (offset, value) in values.prefix(count).enumerated() {
            let index = Int32(offset + 1)
            let code: Int32
            switch value {
            case .null: code = sqlite3_bind_null(statement, index)
            case .integer(let number): code = sqlite3_bind_int64(statement, index, number)
            case .real(let number): code = sqlite3_bind_double(statement, index, number)
            case .text(let text):
                // withCString: never a nil pointer (which would bind NULL), even for "".
                code = text.withCString { berth_sqlite3_bind_text(statement, index, $0, Int32(text.utf8.count)) }
            case .blob(let bytes) where bytes.isEmpty: code = sqlite3_bind_zeroblob(statement, index, 0)
            case .blob(let bytes):
                code = bytes.withUnsafeBytes { berth_sqlite3_bind_blob(statement, index, $0.baseAddress, Int32($0.count)) }
            }
            guard code == SQLITE_OK else { throw failure(code, sql) }
        }
        return count
    }

    /// Steps `statement` to its end, or until `row` returns false (then returns false).
    private func step(_ statement: OpaquePointer, _ sql: String, _ row: (SQLiteRow) throws -> Bool) throws -> Bool {
        var columns: [String: Int]?
        while true {
            let code = sqlite3_step(statement)
            guard code == SQLITE_ROW else {
                if code == SQLITE_DONE { return true }
                throw failure(code, sql)
            }
            let names = columns ?? Self.columns(statement)
            columns = names
            let count = sqlite3_column_count(statement)
            if try !row(SQLiteRow(columns: names, values: (0..<count).map { Self.value(statement, $0) })) { return false }
        }
    }

    /// Whether the C string at `text` holds only white space and semicolons.
    private static func isBlank(_ text: UnsafePointer<CChar>) -> Bool {
        var byte = text
        while byte.pointee != 0 {
            guard [9, 10, 13, 32, 59].contains(byte.pointee) else { return false }
            byte += 1
        }
        return true
    }

    private static func columns(_ statement: OpaquePointer) -> [String: Int] {
        var columns: [String: Int] = [:]
        for index in 0..<sqlite3_column_count(statement) {
            let name = sqlite3_column_name(statement, index).map { String(cString: $0) } ?? ""
            if columns[name] == nil { columns[name] = Int(index) }
        }
        return columns
    }

    private static func value(_ statement: OpaquePointer, _ index: Int32) -> SQLiteValue {
        switch sqlite3_column_type(statement, index) {
        case SQLITE_INTEGER: return .integer(sqlite3_column_int64(statement, index))
        case SQLITE_FLOAT: return .real(sqlite3_column_double(statement, index))
        case SQLITE_TEXT:
            let bytes = UnsafeBufferPointer(
                start: sqlite3_column_text(statement, index), count: Int(sqlite3_column_bytes(statement, index)))
            return .text(String(decoding: bytes, as: UTF8.self))
        case SQLITE_BLOB:
            let bytes = UnsafeRawBufferPointer(
                start: sqlite3_column_blob(statement, index), count: Int(sqlite3_column_bytes(statement, index)))
            return .blob([UInt8](bytes))
        default: return .null
        }
    }

    private func failure(_ code: Int32, _ sql: String) -> SQLiteError {
        SQLiteError(code: code, message: String(cString: sqlite3_errmsg(handle)), sql: sql)
    }
}

// MARK: - Fetching

extension SQLiteRow {
    /// The first row of `sql`, nil when there is none.
    static func fetchOne(_ db: SQLiteConnection, sql: String, arguments: SQLiteArguments = []) throws -> SQLiteRow? {
        var first: SQLiteRow?
        try db.run(sql: sql, arguments: arguments) { row in
            first = row
            return false
        }
        return first
    }

    static func fetchAll(_ db: SQLiteConnection, sql: String, arguments: SQLiteArguments = []) throws -> [SQLiteRow] {
        var rows: [SQLiteRow] = []
        try db.forEachRow(sql: sql, arguments: arguments) { rows.append($0) }
        return rows
    }
}

extension SQLiteValueConvertible {
    /// The first column of the first row of `sql`; nil when there is no row or it is NULL.
    static func fetchOne(_ db: SQLiteConnection, sql: String, arguments: SQLiteArguments = []) throws -> Self? {
        try SQLiteRow.fetchOne(db, sql: sql, arguments: arguments).flatMap { try $0[0] }
    }

    /// The first column of every row of `sql`.
    /// - Throws: `SQLiteError` when one is NULL or not a `Self`.
    static func fetchAll(_ db: SQLiteConnection, sql: String, arguments: SQLiteArguments = []) throws -> [Self] {
        var values: [Self] = []
        try db.forEachRow(sql: sql, arguments: arguments) { values.append(try $0[0]) }
        return values
    }
}

// MARK: - Values

extension SQLiteValue: SQLiteValueConvertible {
    var sqliteValue: SQLiteValue { self }
    init?(sqliteValue value: SQLiteValue) { self = value }
}

extension Int64: SQLiteValueConvertible {
    var sqliteValue: SQLiteValue { .integer(self) }
    init?(sqliteValue value: SQLiteValue) {
        switch value {
        case .integer(let number): self = number
        case .real(let number): self.init(exactly: number)
        default: return nil
        }
    }
}

extension Int: SQLiteValueConvertible {
    var sqliteValue: SQLiteValue { .integer(Int64(self)) }
    init?(sqliteValue value: SQLiteValue) {
        guard let number = Int64(sqliteValue: value) else { return nil }
        self.init(exactly: number)
    }
}

extension Int32: SQLiteValueConvertible {
    var sqliteValue: SQLiteValue { .integer(Int64(self)) }
    init?(sqliteValue value: SQLiteValue) {
        guard let number = Int64(sqliteValue: value) else { return nil }
        self.init(exactly: number)
    }
}

/// Stored as 0 and 1; any non-zero number reads as true.
extension Bool: SQLiteValueConvertible {
    var sqliteValue: SQLiteValue { .integer(self ? 1 : 0) }
    init?(sqliteValue value: SQLiteValue) {
        switch value {
        case .integer(let number): self = number != 0
        case .real(let number): self = number != 0
        default: return nil
        }
    }
}

extension Double: SQLiteValueConvertible {
    var sqliteValue: SQLiteValue { .real(self) }
    init?(sqliteValue value: SQLiteValue) {
        switch value {
        case .integer(let number): self.init(number)
        case .real(let number): self = number
        default: return nil
        }
    }
}

extension String: SQLiteValueConvertible {
    var sqliteValue: SQLiteValue { .text(self) }
    init?(sqliteValue value: SQLiteValue) {
        guard case .text(let text) = value else { return nil }
        self = text
    }
}

/// A blob.
extension Array: SQLiteValueConvertible where Element == UInt8 {
    var sqliteValue: SQLiteValue { .blob(self) }
    init?(sqliteValue value: SQLiteValue) {
        guard case .blob(let bytes) = value else { return nil }
        self = bytes
    }
}
