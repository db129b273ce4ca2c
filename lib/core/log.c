#include "core/log.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* Process-wide, written once by log_setup() before any request: the level and
 * the identity stamped on every line. */
static struct {
    int level;
    char role[16];
    int slot;
    pid_t pid;                  /* 0: ask getpid() (again after a fork) */
    time_t ts_sec;              /* the second ts holds, formatted */
    char ts[24];
} log_state = {LOG_INFO, "tessera", -1, 0, 0, ""};

static const char *const LEVELS[] = {"debug", "info", "warn", "error"};

/* Lines below warn held while log_defer is on, written as one write(2) of at
 * most PIPE_BUF bytes: still atomic, so still never interleaved. */
static struct {
    bool on;
    size_t len;
    char buf[PIPE_BUF];
} deferred;

/* What was lost since the last line written: lines stderr refused or would
 * have made us wait for, and whether the last write stopped inside a line. */
static struct {
    unsigned long long lines;
    bool cut;
    bool reporting;
} dropped;

/* A fork's child: its own pid, and none of its parent's losses to report. */
static void forget_pid(void)
{
    log_state.pid = 0;
    dropped.lines = 0;
}

/* Writes p[0..n) to stderr unless that would wait: a log reader that stalls
 * (a pipe nobody drains, a hung journald) must cost lines, never requests,
 * and every process of the fleet writes here from its request path. A pipe
 * or socket that poll() calls writable takes one write of at most PIPE_BUF
 * (every write here) without waiting; a file always polls writable, and a
 * full disk or /dev/full fails the write at once. Returns the bytes written. */
static size_t write_some(const char *p, size_t n)
{
    size_t off = 0;

    while (off < n) {
        struct pollfd pfd = {.fd = STDERR_FILENO, .events = POLLOUT};
        int ready = poll(&pfd, 1, 0);
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready <= 0 || !(pfd.revents & POLLOUT))
            break;
        ssize_t w = write(STDERR_FILENO, p + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break; /* nowhere left to report a logging failure: counted instead */
        off += (size_t)w;
    }
    return off;
}

static void report_dropped(void);

/* Writes `lines` whole lines; what cannot be written is counted, and said in
 * the first line that gets through after it (event log_dropped). A line cut
 * where the space ended is closed first, so it stays a line of its own. */
static void emit(const char *p, size_t n, unsigned long long lines)
{
    if (dropped.cut) {
        if (write_some("\n", 1) != 1) {
            dropped.lines += lines;
            return;
        }
        dropped.cut = false;
    }
    size_t w = write_some(p, n);
    if (w < n) {
        dropped.lines += lines;
        dropped.cut = w > 0;
        return;
    }
    if (dropped.lines > 0 && !dropped.reporting)
        report_dropped();
}

void log_flush(void)
{
    size_t len = deferred.len;
    unsigned long long lines = 0;

    deferred.len = 0;
    for (size_t i = 0; i < len; i++)
        lines += deferred.buf[i] == '\n';
    if (len > 0)
        emit(deferred.buf, len, lines);
}

void log_defer(bool on)
{
    if (!on)
        log_flush();
    deferred.on = on;
}

void log_setup(int level, const char *role, int slot)
{
    static bool hooked;

    if (!hooked) /* every fork's child, made by whatever code, asks again */
        hooked = pthread_atfork(NULL, NULL, forget_pid) == 0;
    log_state.pid = 0;
    log_state.level = level;
    snprintf(log_state.role, sizeof log_state.role, "%s", role);
    log_state.slot = slot;
}

int log_slot(void)
{
    return log_state.slot;
}

size_t log_escape(char *out, size_t outsz, const char *s, size_t n, size_t *used)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0, i;

    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char tmp[7];
        size_t k = 0;

        if (c == '"' || c == '\\') {
            tmp[k++] = '\\';
            tmp[k++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            tmp[k++] = '\\';
            tmp[k++] = 'u';
            tmp[k++] = '0';
            tmp[k++] = '0';
            tmp[k++] = hex[c >> 4];
            tmp[k++] = hex[c & 15];
        } else if (c >= 0x80) {
            /* Bytes of untrusted input are not guaranteed UTF-8; keep lines valid. */
            tmp[k++] = '?';
        } else {
            tmp[k++] = (char)c;
        }
        if (o + k >= outsz)
            break;
        memcpy(out + o, tmp, k);
        o += k;
    }
    if (outsz > 0)
        out[o] = '\0';
    if (used != NULL)
        *used = i;
    return o;
}

/* Room kept for the closing "}\n" and a truncation marker. */
#define LOG_TAIL 32

static void append(struct log_line *l, const char *s, size_t n)
{
    if (l->full || l->len + n + LOG_TAIL > sizeof l->buf) {
        l->full = true;
        return;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

/* A field is its key and its value: when the value does not fit, the key
 * already appended is taken back so the line stays valid JSON. */
static void field_end(struct log_line *l, size_t mark)
{
    if (l->full)
        l->len = mark;
}

static void key(struct log_line *l, const char *k)
{
    char tmp[80];
    int n = snprintf(tmp, sizeof tmp, ",\"%s\":", k);
    append(l, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

void log_begin(struct log_line *l, int level, const char *event)
{
    struct timeval tv;
    struct tm tm;

    l->len = 0;
    l->full = false;
    l->cut = false;
    l->on = level >= log_state.level;
    l->level = level;
    if (!l->on)
        return;
    gettimeofday(&tv, NULL);
    if (tv.tv_sec != log_state.ts_sec || log_state.ts[0] == '\0') {
        /* a second formatted once, not once per line */
        gmtime_r(&tv.tv_sec, &tm);
        strftime(log_state.ts, sizeof log_state.ts, "%Y-%m-%dT%H:%M:%S", &tm);
        log_state.ts_sec = tv.tv_sec;
    }
    l->len = (size_t)snprintf(l->buf, sizeof l->buf, "{\"ts\":\"%s.%06ldZ\",\"level\":\"%s\"", log_state.ts,
                              (long)tv.tv_usec, LEVELS[level]);
    log_str(l, "event", event);
    log_str(l, "role", log_state.role);
    if (log_state.slot >= 0)
        log_int(l, "slot", log_state.slot);
    if (log_state.pid == 0)
        log_state.pid = getpid();
    log_int(l, "pid", log_state.pid);
}

void log_strn(struct log_line *l, const char *k, const char *val, size_t n)
{
    char tmp[LOG_LINE_MAX];
    size_t room = l->len + LOG_TAIL + 96 < sizeof l->buf ? sizeof l->buf - l->len - LOG_TAIL - 96 : 0;
    size_t used, mark = l->len;

    if (!l->on)
        return;
    key(l, k);
    if (val == NULL) {
        append(l, "null", 4);
        field_end(l, mark);
        return;
    }
    size_t e = log_escape(tmp, room, val, n, &used);
    append(l, "\"", 1);
    append(l, tmp, e);
    append(l, "\"", 1);
    field_end(l, mark);
    if (used < n)
        l->cut = true;
}

void log_str(struct log_line *l, const char *k, const char *val)
{
    log_strn(l, k, val, val != NULL ? strlen(val) : 0);
}

void log_int(struct log_line *l, const char *k, long long val)
{
    char tmp[32];
    size_t mark = l->len;

    if (!l->on)
        return;
    key(l, k);
    append(l, tmp, (size_t)snprintf(tmp, sizeof tmp, "%lld", val));
    field_end(l, mark);
}

void log_bool(struct log_line *l, const char *k, bool val)
{
    size_t mark = l->len;

    if (!l->on)
        return;
    key(l, k);
    append(l, val ? "true" : "false", val ? 4 : 5);
    field_end(l, mark);
}

void log_json(struct log_line *l, const char *k, const char *json)
{
    size_t mark = l->len;

    if (!l->on)
        return;
    key(l, k);
    append(l, json, strlen(json));
    field_end(l, mark);
}

void log_end(struct log_line *l)
{
    if (!l->on)
        return;
    if (l->full || l->cut) {
        /* append() left LOG_TAIL bytes free for exactly this */
        memcpy(l->buf + l->len, ",\"truncated\":true", 17);
        l->len += 17;
    }
    l->buf[l->len++] = '}';
    l->buf[l->len++] = '\n';
    if (deferred.on && l->level < LOG_WARN) {
        if (deferred.len + l->len > sizeof deferred.buf)
            log_flush();
        memcpy(deferred.buf + deferred.len, l->buf, l->len);
        deferred.len += l->len;
        return;
    }
    log_flush(); /* what came before it is written before it */
    emit(l->buf, l->len, 1);
}

static void report_dropped(void)
{
    struct log_line l;
    unsigned long long n = dropped.lines;

    dropped.reporting = true;
    dropped.lines = 0;
    log_begin(&l, LOG_WARN, "log_dropped");
    log_int(&l, "lines", (long long)n);
    log_str(&l, "msg", "log lines lost: stderr failed or would have blocked");
    log_end(&l);
    dropped.reporting = false;
}

void log_msg(int level, const char *event, const char *fmt, ...)
{
    struct log_line l;
    char msg[1024];
    va_list ap;

    log_begin(&l, level, event);
    if (!l.on)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_str(&l, "msg", msg);
    log_end(&l);
}
