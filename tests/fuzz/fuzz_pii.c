/* libFuzzer harness for opening sealed pii (crypto_open_text and crypto_open,
 * lib/security/crypto.c) with a fixed keyring: k1 (current) and k2 (older),
 * read from a data-key file as a worker reads one. The first byte picks:
 *   0  sealed text as a column holds it (base64url), opened under the AAD
 *      records.c binds a pii value to. Nobody but this harness holds the keys,
 *      so it must never open: ERR_OK aborts, and so does plaintext handed out
 *      with an error.
 *   1  the same as a raw blob (version | kid length | kid | iv | ct | tag).
 *   2  edits (3 bytes each: what, where, which byte) to a value sealed by
 *      this harness under k1 or k2 (bit 0x80 of the first edit byte), and to
 *      its AAD (0x40). Whatever opens must be the genuine text under the
 *      genuine AAD, and give back the genuine plaintext: no other spelling
 *      of a ciphertext, no other key, no other record. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "security/crypto.h"

#define AAD "0190f6e4-8c1a-7d2b-9e3f-4a5b6c7d8e9f|crm|contacts|0190f6e4-8c1a-7d2b-9e3f-000000000001|email"
#define PLAIN "alice@example.com"

static struct crypto_keyring ring, ring_k2; /* ring_k2: the same keys, k2 current (seals under k2) */
static char *genuine[2];

static void check(int ok)
{
    if (!ok)
        abort();
}

/* The keyring's text through a file of its own (crypto_keyring_load reads a
 * path, as the worker does), made mode 0600 in $TMPDIR and gone at once. */
static void load(struct crypto_keyring *r, const char *text)
{
    const char *dir = getenv("TMPDIR");
    char path[4096], err[128];
    int fd, n;

    if (dir == NULL || dir[0] == '\0')
        dir = "/tmp";
    n = snprintf(path, sizeof path, "%s/tessera-fuzz-pii-XXXXXX", dir);
    check(n > 0 && (size_t)n < sizeof path); /* a longer TMPDIR would cut the template */
    fd = mkstemp(path);
    check(fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    check(crypto_keyring_load(r, path, err) == ERR_OK);
    unlink(path);
}

static void init(void)
{
    static const char k1[] = "k1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";
    static const char k2[] = "k2 f0e0d0c0b0a090807060504030201000ffeeddccbbaa99887766554433221100\n";
    char both[256];

    snprintf(both, sizeof both, "# fuzz keyring\n%s%s", k1, k2);
    load(&ring, both);
    snprintf(both, sizeof both, "%s%s", k2, k1);
    load(&ring_k2, both);
    check(crypto_seal_text(&ring, AAD, strlen(AAD), PLAIN, strlen(PLAIN), &genuine[0]) == ERR_OK);
    check(crypto_seal_text(&ring_k2, AAD, strlen(AAD), PLAIN, strlen(PLAIN), &genuine[1]) == ERR_OK);
}

/* Opens text (or a blob) under aad with the fixed ring; checks the promises
 * every call keeps. Returns the result code; *pt is owned when ERR_OK. */
static int open_one(int blob, const void *in, size_t len, const char *aad, size_t aadlen, uint8_t **pt, size_t *ptlen)
{
    int rc = blob ? crypto_open(&ring, aad, aadlen, in, len, pt, ptlen)
                  : crypto_open_text(&ring, aad, aadlen, in, len, pt, ptlen);

    check(rc == ERR_OK || rc == ERR_INVAL || rc == ERR_NOTFOUND || rc == ERR_TOOBIG);
    check((rc == ERR_OK) == (*pt != NULL));
    check(rc == ERR_OK || *ptlen == 0);
    if (rc == ERR_OK)
        check((*pt)[*ptlen] == '\0');
    return rc;
}

static void edited(const uint8_t *data, size_t size)
{
    const char *base = genuine[size > 0 && (data[0] & 0x80)];
    char text[1024], aad[sizeof AAD + 64];
    size_t len = strlen(base), alen = strlen(AAD), ptlen = 0;
    uint8_t *pt = NULL;

    memcpy(text, base, len);
    memcpy(aad, AAD, alen);
    for (size_t i = 0; i + 3 <= size && i < 3 * 16; i += 3) {
        char *s = (data[i] & 0x40) ? aad : text;
        size_t *n = (data[i] & 0x40) ? &alen : &len, at;

        at = *n > 0 ? data[i + 1] % (*n + (data[i] % 3 == 1)) : 0;
        switch (data[i] % 3) {
        case 0:
            if (*n > 0)
                s[at] = (char)data[i + 2];
            break;
        case 1:
            memmove(s + at + 1, s + at, *n - at);
            s[at] = (char)data[i + 2];
            (*n)++;
            break;
        default:
            if (*n > 0) {
                memmove(s + at, s + at + 1, *n - at - 1);
                (*n)--;
            }
        }
    }
    if (open_one(0, text, len, aad, alen, &pt, &ptlen) == ERR_OK) {
        check(len == strlen(base) && memcmp(text, base, len) == 0);
        check(alen == strlen(AAD) && memcmp(aad, AAD, alen) == 0);
        check(ptlen == strlen(PLAIN) && memcmp(pt, PLAIN, ptlen) == 0);
    }
    free(pt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    uint8_t *pt = NULL;
    size_t ptlen = 0;

    if (!ready) {
        init();
        ready = 1;
    }
    if (size == 0)
        return 0;
    switch (data[0] % 3) {
    case 0:
        check(open_one(0, data + 1, size - 1, AAD, strlen(AAD), &pt, &ptlen) != ERR_OK);
        break;
    case 1:
        check(open_one(1, data + 1, size - 1, AAD, strlen(AAD), &pt, &ptlen) != ERR_OK);
        break;
    default:
        edited(data + 1, size - 1);
    }
    free(pt);
    return 0;
}
