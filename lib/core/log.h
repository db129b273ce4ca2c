/* log: JSON lines on stderr, one write(2) per line (or per batch of lines at
 * most PIPE_BUF long, log_defer) so lines from the fleet's processes never
 * interleave (stderr is shared; writes under PIPE_BUF are atomic).
 * A line is built field by field into a fixed buffer (no allocation on the
 * request path) and truncated, still valid JSON, if it would not fit.
 * Logging never waits and never fails its caller: a line stderr refuses (a
 * full disk) or would block on (a reader that stopped reading) is dropped and
 * counted, and the first line written after is followed by
 * {"event":"log_dropped","lines":N}.
 * Never pass secrets or plaintext personal data: nothing here masks them. */
#ifndef LIB_LOG_H
#define LIB_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

#define LOG_LINE_MAX 4000 /* < PIPE_BUF */

struct log_line {
    char buf[LOG_LINE_MAX];
    size_t len;
    bool full;              /* a field did not fit and was dropped */
    bool cut;               /* a value was shortened */
    bool on;                /* false when below the level: every call is a no-op */
    int level;
};

/* Sets the process's level and the fields every line carries ("role":"worker",
 * "slot":3). Called once per process at start; the only state of this module. */
void log_setup(int level, const char *role, int slot);
/* The role/slot passed to log_setup (for the access line). */
int log_slot(void);

/* Starts a line {"ts":…,"level":…,"event":…,"role":…,"slot":…,"pid":…. */
void log_begin(struct log_line *l, int level, const char *event);
void log_str(struct log_line *l, const char *key, const char *val);
void log_strn(struct log_line *l, const char *key, const char *val, size_t n);
void log_int(struct log_line *l, const char *key, long long val);
void log_bool(struct log_line *l, const char *key, bool val);
/* Adds already-serialized JSON as the value (trusted input only). */
void log_json(struct log_line *l, const char *key, const char *json);
/* Closes the line and writes it. */
void log_end(struct log_line *l);

/* One-call form: {"event":event,"msg":formatted}. */
void log_msg(int level, const char *event, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* While deferred, debug and info lines (a worker's access lines) wait in the
 * process and go out together, one write(2) of at most PIPE_BUF bytes, when
 * that fills, when a warn or error line comes (after them, in order) or at
 * log_flush: a worker flushes before it waits for work, so under load one
 * write carries many lines and an idle worker holds none. The cost: a process
 * that dies hard loses the lines it held (nginx's access_log buffer= makes
 * the same trade). */
void log_defer(bool on);
void log_flush(void);

/* Escapes s[0..n) as a JSON string body into out (NUL-terminated, no quotes);
 * returns bytes written, stopping before an escape that would not fit, with
 * *used (may be NULL) set to the input bytes consumed. */
size_t log_escape(char *out, size_t outsz, const char *s, size_t n, size_t *used);

#endif
