/* replay: a libFuzzer harness without libFuzzer. Linked with one
 * tests/fuzz/fuzz_<name>.c (built by gcc under ASan + UBSan), it runs
 * LLVMFuzzerTestOneInput once over every file of the harness's seed corpus,
 * tests/fuzz/corpus/<name>/, and of its kept crashes,
 * tests/fuzz/regressions/<name>/, so that `make test` proves each harness
 * still builds and each crash once found stays fixed, with no clang needed.
 * TAP: one `ok` line per file; a file that crashes stops the program (the
 * sanitizer's report or the harness's abort names it: "# input" comes first),
 * and tests/run.sh counts the non-zero exit as a failure.
 * Usage: test_fuzz_<name> [DIR ...]   (default: the two folders above, run
 * from the repository's root as tests/run.sh does). */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef FUZZ_NAME
#error "FUZZ_NAME names the harness (-DFUZZ_NAME=\"jwt\")"
#endif

#define REPLAY_FILE_MAX (1u << 20)   /* libFuzzer's own -max_len is far below */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads path whole into a buffer of exactly its size (malloc'd, so ASan sees
 * a read one past the end). 0, or -1 with the reason printed. */
static int slurp(const char *path, uint8_t **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    struct stat st;

    *out = NULL;
    *len = 0;
    if (f == NULL || fstat(fileno(f), &st) != 0 || st.st_size < 0 || (size_t)st.st_size > REPLAY_FILE_MAX) {
        printf("# %s: %s\n", path, f == NULL ? strerror(errno) : "unreadable or larger than 1 MiB");
        if (f != NULL)
            fclose(f);
        return -1;
    }
    /* one byte more than asked for never hides an overread: size 0 stays a valid pointer */
    buf = malloc(st.st_size > 0 ? (size_t)st.st_size : 1);
    if (buf == NULL || fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        printf("# %s: short read\n", path);
        free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    *out = buf;
    *len = (size_t)st.st_size;
    return 0;
}

/* Replays every regular file of dir (sorted, dot files skipped); a missing dir
 * is no error (a harness with no crash kept has no regressions folder). */
static int replay_dir(const char *dir, int *nfail)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int count = 0;

    if (d == NULL) {
        printf("# %s: %s (nothing to replay)\n", dir, strerror(errno));
        return 0;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            char **more = realloc(names, (cap = cap ? cap * 2 : 64) * sizeof *names);
            if (more == NULL)
                abort();
            names = more;
        }
        if ((names[n++] = strdup(e->d_name)) == NULL)
            abort();
    }
    closedir(d);
    if (n > 1)
        qsort(names, n, sizeof *names, cmp_names);
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        uint8_t *buf;
        size_t len;

        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        free(names[i]);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (slurp(path, &buf, &len) != 0) {
            printf("not ok - fuzz_%s replays %s (unreadable)\n", FUZZ_NAME, path);
            (*nfail)++;
            continue;
        }
        printf("# input %s (%zu bytes)\n", path, len);
        fflush(stdout);
        LLVMFuzzerTestOneInput(buf, len);
        free(buf);
        printf("ok - fuzz_%s replays %s\n", FUZZ_NAME, path);
        count++;
    }
    free(names);
    return count;
}

int main(int argc, char **argv)
{
    const char *defaults[] = { "tests/fuzz/corpus/" FUZZ_NAME, "tests/fuzz/regressions/" FUZZ_NAME };
    int nfail = 0, total = 0;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            total += replay_dir(argv[i], &nfail);
    } else {
        for (size_t i = 0; i < sizeof defaults / sizeof *defaults; i++)
            total += replay_dir(defaults[i], &nfail);
        /* a harness whose seed corpus went missing would pass on nothing */
        if (total == 0) {
            printf("not ok - fuzz_%s has a seed corpus in %s\n", FUZZ_NAME, defaults[0]);
            nfail++;
        }
    }
    printf("# fuzz_%s: %d inputs replayed\n", FUZZ_NAME, total);
    return nfail == 0 ? 0 : 1;
}
