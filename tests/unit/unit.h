/* unit: what the tests/unit/test_<module>.c files share, so each says only
 * what its module does: cmocka with the headers it wants first, temporary
 * folders and files under /tmp that fail the case when they cannot be made,
 * a shared-memory region and its invariant check, the child-process helpers
 * of the crash tests, and the engine call macros. Everything is static inline
 * or a macro: a test binary is one file linked with lib/.
 * Not a framework: no runner, no fixtures of one module's types but the
 * region (four suites build one) and an org record (three engine suites). Assertions are cmocka's, never assert(). */
#ifndef TESTS_UNIT_H
#define TESTS_UNIT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/err.h"
#include "core/uuid.h"
#include "store/engine.h"
#include "store/mem/shm.h"

#define UNIT_PATH 128   /* room for a temp folder or file path */

/* ---- temporary folders and files ---------------------------------------- */

/* Makes a fresh folder /tmp/tessera-unit-<tag>-XXXXXX into dir; returns dir. */
static inline char *unit_tmpdir(char dir[UNIT_PATH], const char *tag)
{
    snprintf(dir, UNIT_PATH, "/tmp/tessera-unit-%s-XXXXXX", tag);
    if (mkdtemp(dir) == NULL)
        fail_msg("mkdtemp %s: %s", dir, strerror(errno));
    return dir;
}

static inline int unit_rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path);
}

/* Removes a folder and everything in it (not following links); 0 or -1. */
static inline int unit_rmtree(const char *dir)
{
    return nftw(dir, unit_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Writes exactly n bytes to path (made or truncated, mode 0600). */
static inline void unit_write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "w");

    if (f == NULL)
        fail_msg("fopen %s: %s", path, strerror(errno));
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* unit_write_file of a C string. */
static inline void unit_write_text(const char *path, const char *text)
{
    unit_write_file(path, text, strlen(text));
}

/* Makes a fresh file /tmp/tessera-unit-<tag>-XXXXXX holding n bytes of data,
 * its name in path; returns path. The caller unlinks it. */
static inline char *unit_tmpfile(char path[UNIT_PATH], const char *tag, const void *data, size_t n)
{
    int fd;

    snprintf(path, UNIT_PATH, "/tmp/tessera-unit-%s-XXXXXX", tag);
    if ((fd = mkstemp(path)) < 0)
        fail_msg("mkstemp %s: %s", path, strerror(errno));
    assert_int_equal(write(fd, data, n), (ssize_t)n);
    assert_int_equal(close(fd), 0);
    return path;
}

/* ---- shared-memory regions (store/mem/shm.h) ----------------------------- */

/* Returns owned (shm_destroy): a fresh region of `bytes`, or fails the case. */
static inline struct shm_region *unit_region(size_t bytes)
{
    char err[128] = "";
    struct shm_region *r = shm_create(bytes, err);

    if (r == NULL)
        fail_msg("shm_create: %s", err);
    return r;
}

/* Runs shm_check in a section of its own: every invariant of the region holds. */
static inline void unit_region_check(struct shm_region *r)
{
    char err[128] = "";

    assert_int_equal(shm_lock(r), 0);
    if (shm_check(r, err) != 0)
        fail_msg("shm_check: %s", err);
    shm_unlock(r);
}

/* ---- engine records (store/engine.h) -------------------------------------- */

/* An org record with a fresh id, named after slug; platform as eng_org.platform. */
static inline struct eng_org unit_org(const char *slug, bool platform)
{
    struct eng_org o;

    memset(&o, 0, sizeof o);
    assert_int_equal(uuid_v7(o.id), 0);
    snprintf(o.name, sizeof o.name, "Org %s", slug);
    snprintf(o.slug, sizeof o.slug, "%s", slug);
    snprintf(o.plan, sizeof o.plan, "free");
    o.platform = platform;
    return o;
}

/* ---- child processes ------------------------------------------------------ */

/* Reaps pid; its wait status in *status. */
static inline void unit_wait_child(pid_t pid, int *status)
{
    assert_int_equal(waitpid(pid, status, 0), pid);
}

/* Reaps pid, failing unless it exited with status 0. */
static inline void unit_wait_success(pid_t pid)
{
    int status;

    unit_wait_child(pid, &status);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("child %d: wait status %#x, wanted exit 0", (int)pid, status);
}

/* Reaps pid, failing unless SIGKILL ended it. */
static inline void unit_wait_killed(pid_t pid)
{
    int status;

    unit_wait_child(pid, &status);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
        fail_msg("child %d: wait status %#x, wanted death by SIGKILL", (int)pid, status);
}

/* In a child: tells the parent (through the write end of a pipe) that it has
 * reached the point to be killed at, then waits there for the kill. */
static inline void __attribute__((noreturn)) unit_child_ready(int fd)
{
    if (write(fd, "x", 1) != 1)
        _exit(1);
    for (;;)
        pause();
}

/* In the parent: waits for unit_child_ready on fds (closing both ends), then
 * SIGKILLs the child and reaps it, failing unless it died of that signal. */
static inline void unit_kill_when_ready(pid_t pid, int fds[2])
{
    char c;

    close(fds[1]);
    assert_int_equal(read(fds[0], &c, 1), 1);
    close(fds[0]);
    assert_int_equal(kill(pid, SIGKILL), 0);
    unit_wait_killed(pid);
}

/* ---- engines (store/engine.h) ------------------------------------------- */

/* Calls an op of e's table. */
#define OP(e, op, ...) ((e)->ops->op((e), __VA_ARGS__))
/* Expects a call to return rc, and shows the engine's reason when it does not. */
#define EXPECT(e, rc, call)                                                                 \
    do {                                                                                    \
        int rc_ = (call);                                                                   \
        if (rc_ != (rc))                                                                    \
            fail_msg("%s: got %s, want %s (%s)", #call, err_str(rc_), err_str(rc),          \
                     (e)->errstr);                                                          \
    } while (0)
#define OK(e, call) EXPECT(e, 0, call)

#endif
