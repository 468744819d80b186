// Thin C module for SQLite (Debian: libsqlite3-dev). `SQLITE_TRANSIENT` is a macro that casts -1 to a
// function pointer, which Swift cannot import; the wrappers below pass it so that SQLite copies text and
// blobs before the bind call returns and Swift's buffers may go away.
#ifndef CSMIL_CSQLITE_SHIM_H
#define CSMIL_CSQLITE_SHIM_H
#include <sqlite3.h>

/// `sqlite3_bind_text` with `SQLITE_TRANSIENT`: SQLite copies the `length` bytes of UTF-8 text.
static inline int csmil_sqlite3_bind_text(sqlite3_stmt *statement, int index, const char *text, int length) {
    return sqlite3_bind_text(statement, index, text, length, SQLITE_TRANSIENT);
}

/// `sqlite3_bind_blob` with `SQLITE_TRANSIENT`: SQLite copies the `length` bytes.
static inline int csmil_sqlite3_bind_blob(sqlite3_stmt *statement, int index, const void *bytes, int length) {
    return sqlite3_bind_blob(statement, index, bytes, length, SQLITE_TRANSIENT);
}
#endif
