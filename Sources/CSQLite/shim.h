// The system SQLite's C API, plus what Swift cannot call or import from <sqlite3.h> directly:
// variadic functions and macros that are casts or expressions.
#ifndef BERTH_CSQLITE_SHIM_H
#define BERTH_CSQLITE_SHIM_H

#include <sqlite3.h>

/// `sqlite3_bind_text` with SQLITE_TRANSIENT (SQLite copies the bytes before it returns).
static inline int berth_sqlite3_bind_text(sqlite3_stmt *statement, int index, const char *text, int length) {
    return sqlite3_bind_text(statement, index, text, length, SQLITE_TRANSIENT);
}

/// `sqlite3_bind_blob` with SQLITE_TRANSIENT.
static inline int berth_sqlite3_bind_blob(sqlite3_stmt *statement, int index, const void *bytes, int length) {
    return sqlite3_bind_blob(statement, index, bytes, length, SQLITE_TRANSIENT);
}

/// A double-quoted word in SQL is an identifier, never a string literal (as GRDB configured
/// its connections): a misspelt column name is an error instead of a constant string.
static inline void berth_sqlite3_disable_double_quoted_strings(sqlite3 *db) {
    sqlite3_db_config(db, SQLITE_DBCONFIG_DQS_DDL, 0, (void *)0);
    sqlite3_db_config(db, SQLITE_DBCONFIG_DQS_DML, 0, (void *)0);
}

/// Extended result codes that <sqlite3.h> defines as expressions (Swift imports only plain numbers).
static const int BERTH_SQLITE_CONSTRAINT_UNIQUE = SQLITE_CONSTRAINT_UNIQUE;
static const int BERTH_SQLITE_CONSTRAINT_FOREIGNKEY = SQLITE_CONSTRAINT_FOREIGNKEY;

#endif
