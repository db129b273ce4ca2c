/* uuid: generation on RAND_bytes, strict canonical text in and out.
 * The v7 generator's ordering logic is a pure function of its state and a
 * clock reading (uuid_v7_gen_next); uuid_v7() only supplies the real clock and
 * the process's generator. */
#include "core/uuid.h"

#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "core/text.h"

#define UUID_COUNTER_MAX 0xFFFu         /* rand_a is 12 bits */
#define UUID_COUNTER_SEED_MASK 0x7FFu   /* top bit clear: ≥ 2048 ids per ms before overflow */
#define UUID_MS_MASK ((UINT64_C(1) << 48) - 1)

/* The process's v7 generator: the only mutable state of this module. Workers
 * are single-threaded; after fork() each child continues its own copy. */
static struct uuid_v7_gen uuid_process_gen;

static const char uuid_hex[] = "0123456789abcdef";

static int random_bytes(uint8_t *p, int n)
{
    return RAND_bytes(p, n) == 1 ? ERR_OK : ERR_INTERNAL;
}

static void set_version_variant(uint8_t b[16], int version)
{
    b[6] = (uint8_t)((b[6] & 0x0F) | (version << 4));
    b[8] = (uint8_t)((b[8] & 0x3F) | 0x80);
}

int uuid_v4_bytes(uint8_t out[16])
{
    int rc = random_bytes(out, 16);

    if (rc != ERR_OK)
        return rc;
    set_version_variant(out, 4);
    return ERR_OK;
}

int uuid_v7_gen_next(struct uuid_v7_gen *g, uint64_t now_ms, uint8_t out[16])
{
    uint8_t rnd[10];
    int rc;

    if ((rc = random_bytes(rnd, sizeof rnd)) != ERR_OK)
        return rc;
    now_ms &= UUID_MS_MASK;
    if (now_ms > g->last_ms) {
        g->last_ms = now_ms;
        g->counter = (uint16_t)(((rnd[0] << 8) | rnd[1]) & UUID_COUNTER_SEED_MASK);
    } else if (g->counter < UUID_COUNTER_MAX) {
        /* same millisecond, or the clock stepped back: stay on last_ms */
        g->counter++;
    } else {
        g->last_ms++;
        g->counter = (uint16_t)(((rnd[0] << 8) | rnd[1]) & UUID_COUNTER_SEED_MASK);
    }
    for (int i = 0; i < 6; i++)
        out[i] = (uint8_t)(g->last_ms >> (40 - 8 * i));
    out[6] = (uint8_t)(g->counter >> 8);
    out[7] = (uint8_t)g->counter;
    memcpy(out + 8, rnd + 2, 8);
    set_version_variant(out, 7);
    return ERR_OK;
}

int uuid_v7_bytes(uint8_t out[16])
{
    struct timespec ts;
    uint64_t ms;

    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return ERR_INTERNAL;
    ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    return uuid_v7_gen_next(&uuid_process_gen, ms, out);
}

int uuid_v4(char out[UUID_STR_SIZE])
{
    uint8_t b[16];
    int rc = uuid_v4_bytes(b);

    if (rc != ERR_OK) {
        out[0] = '\0';
        return rc;
    }
    uuid_format(b, out);
    return ERR_OK;
}

int uuid_v7(char out[UUID_STR_SIZE])
{
    uint8_t b[16];
    int rc = uuid_v7_bytes(b);

    if (rc != ERR_OK) {
        out[0] = '\0';
        return rc;
    }
    uuid_format(b, out);
    return ERR_OK;
}

static bool is_dash_at(int i)
{
    return i == 8 || i == 13 || i == 18 || i == 23;
}

/* Canonical text is lower-case: an upper-case digit is no digit here. */
static int lower_hex(char c)
{
    return c >= 'A' && c <= 'F' ? -1 : text_hex_digit((unsigned char)c);
}

bool uuid_valid(const char *s)
{
    if (s == NULL)
        return false;
    for (int i = 0; i < UUID_STR_LEN; i++) {
        if (s[i] == '\0')
            return false;
        if (is_dash_at(i) ? s[i] != '-' : lower_hex(s[i]) < 0)
            return false;
    }
    return s[UUID_STR_LEN] == '\0';
}

int uuid_parse(const char *s, uint8_t out[16])
{
    uint8_t b[16];
    int n = 0;

    if (!uuid_valid(s))
        return ERR_INVAL;
    for (int i = 0; i < UUID_STR_LEN; i++) {
        if (is_dash_at(i))
            continue;
        b[n / 2] = (uint8_t)((n % 2) ? (b[n / 2] | lower_hex(s[i]))
                                     : (lower_hex(s[i]) << 4));
        n++;
    }
    memcpy(out, b, sizeof b);
    return ERR_OK;
}

void uuid_format(const uint8_t in[16], char out[UUID_STR_SIZE])
{
    int o = 0;

    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = uuid_hex[in[i] >> 4];
        out[o++] = uuid_hex[in[i] & 0x0F];
    }
    out[o] = '\0';
}

int uuid_version(const uint8_t in[16])
{
    return in[6] >> 4;
}

uint64_t uuid_v7_ms(const uint8_t in[16])
{
    uint64_t ms = 0;

    for (int i = 0; i < 6; i++)
        ms = (ms << 8) | in[i];
    return ms;
}
