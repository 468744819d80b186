// Thin C module for libsystemd (Debian: libsystemd-dev): sd_notify for Type=notify and the
// native journal protocol. `sd_journal_send` and `sd_journal_print` are variadic, which Swift
// cannot call; the wrappers below are the typed entry points the Swift side uses.
#ifndef CSMIL_CSYSTEMD_SHIM_H
#define CSMIL_CSYSTEMD_SHIM_H
#include <sys/uio.h>
// The Swift side sends CODE_FILE/CODE_LINE/CODE_FUNC of the Swift caller itself; without this, libsystemd's
// macros add a second set naming this header, a path of the build machine.
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>

/// Sends one structured journal entry. Each field is a "NAME=value" buffer (value may hold any
/// bytes, newlines included); `MESSAGE=` and `PRIORITY=` must be among them. Wraps
/// `sd_journal_sendv`, the non-variadic form of `sd_journal_send`. Returns 0 or a negative errno.
static inline int csmil_sd_journal_send_fields(const struct iovec *fields, int count) {
    return sd_journal_sendv(fields, count);
}

/// Logs a plain message at a syslog priority (`sd_journal_print` with a fixed "%s" format, so
/// the message is never interpreted as a format string). Returns 0 or a negative errno.
static inline int csmil_sd_journal_print(int priority, const char *message) {
    return sd_journal_print(priority, "%s", message);
}

/// Sends a state string such as "READY=1\nSTATUS=…" to the service manager (`sd_notify`).
/// Returns > 0 when sent, 0 when not running under a notify-type unit, < 0 on error.
static inline int csmil_sd_notify(const char *state) {
    return sd_notify(0, state);
}
#endif
