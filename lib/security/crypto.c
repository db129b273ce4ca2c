/* crypto: thin, strict wrappers on OpenSSL 3 EVP.
 *
 * The codecs are written out by hand rather than with EVP_EncodeBlock /
 * EVP_DecodeBlock because those accept padding, whitespace and (for base64url)
 * the wrong alphabet, and do not check the unused bits of the last character;
 * every token hash and blacklist entry depends on one spelling per byte string.
 *
 * Sealed blobs carry their own version and key id so that a keyring can hold
 * old keys during a rotation and a future format can be told apart. The header
 * is fed to GCM as AAD ahead of the caller's AAD: a blob relabelled with
 * another version or kid fails to open instead of being tried under the wrong
 * rules. */
#include "security/crypto.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "core/text.h"

#define BIDX_LABEL "tessera blind index v1"
#define KEYFILE_LINE_MAX 256
#define SEAL_HDR_MAX (2 + CRYPTO_KID_MAX)


/* ---- primitives ------------------------------------------------------- */

/* The request path's algorithms, fetched once per process: OpenSSL 3 looks an
 * algorithm up by name on every use of EVP_sha256() or EVP_aes_256_gcm()
 * (an implicit fetch, its own lock and lookup each time), not on an object
 * fetched explicitly and kept (crypto(7), "Explicit fetching"). Kept for the
 * life of the process; NULL only when the provider lacks them. */
static const EVP_MD *sha256_md(void)
{
    static EVP_MD *md;

    if (md == NULL)
        md = EVP_MD_fetch(NULL, "SHA2-256", NULL);
    return md;
}

static const EVP_CIPHER *gcm_cipher(void)
{
    static EVP_CIPHER *c;

    if (c == NULL)
        c = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    return c;
}

int crypto_random(void *buf, size_t n)
{
    if (n == 0)
        return ERR_OK;
    if (n > INT_MAX)
        return ERR_TOOBIG;
    return RAND_bytes(buf, (int)n) == 1 ? ERR_OK : ERR_INTERNAL;
}

int crypto_sha256(const void *d, size_t n, uint8_t out[CRYPTO_SHA256_LEN])
{
    unsigned int len = 0;

    if (sha256_md() == NULL || EVP_Digest(n ? d : "", n, out, &len, sha256_md(), NULL) != 1 ||
        len != CRYPTO_SHA256_LEN)
        return ERR_INTERNAL;
    return ERR_OK;
}

int crypto_hmac_sha256(const void *key, size_t klen, const void *data, size_t n,
                       uint8_t out[CRYPTO_SHA256_LEN])
{
    size_t len = 0;

    if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, klen ? key : "", klen,
                   n ? data : (const void *)"", n, out, CRYPTO_SHA256_LEN, &len) ||
        len != CRYPTO_SHA256_LEN)
        return ERR_INTERNAL;
    return ERR_OK;
}

bool crypto_ct_eq(const void *a, const void *b, size_t n)
{
    return n == 0 || CRYPTO_memcmp(a, b, n) == 0;
}

/* ---- hex -------------------------------------------------------------- */

int crypto_hex_encode(const void *in, size_t n, char *out, size_t outsz)
{
    static const char digits[] = "0123456789abcdef";
    const uint8_t *p = in;

    if (n > (SIZE_MAX - 1) / 2 || outsz < n * 2 + 1)
        return ERR_NOSPACE;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[n * 2] = '\0';
    return ERR_OK;
}

int crypto_hex_decode(const char *in, size_t inlen, uint8_t *out, size_t outsz,
                      size_t *outlen)
{
    if (inlen % 2)
        return ERR_INVAL;
    if (outsz < inlen / 2)
        return ERR_NOSPACE;
    for (size_t i = 0; i < inlen; i += 2) {
        int hi = text_hex_digit((unsigned char)in[i]);
        int lo = text_hex_digit((unsigned char)in[i + 1]);
        if (hi < 0 || lo < 0)
            return ERR_INVAL;
        out[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    if (outlen)
        *outlen = inlen / 2;
    return ERR_OK;
}

/* ---- base64 (both alphabets, unpadded, canonical) --------------------- */

static const char B64_STD[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char B64_URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64_value(unsigned char c, bool url)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (url ? '-' : '+'))
        return 62;
    if (c == (url ? '_' : '/'))
        return 63;
    return -1;
}

static int b64_encode(const char *alphabet, const void *in, size_t n, char *out,
                      size_t outsz, size_t *outlen)
{
    const uint8_t *p = in;
    size_t o = 0, i = 0;

    if (n > (SIZE_MAX / 4) * 3 - 3 || outsz < CRYPTO_B64_LEN(n) + 1)
        return ERR_NOSPACE;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        out[o++] = alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
    }
    out[o] = '\0';
    if (outlen)
        *outlen = o;
    return ERR_OK;
}

static int b64_decode(bool url, const char *in, size_t inlen, uint8_t *out,
                      size_t outsz, size_t *outlen)
{
    size_t rem = inlen % 4, full = inlen - rem, o = 0;
    size_t need = full / 4 * 3 + (rem ? rem - 1 : 0);
    int v[4] = { 0 };

    /* One leftover character carries only 6 bits: no byte string encodes so. */
    if (rem == 1)
        return ERR_INVAL;
    if (outsz < need)
        return ERR_NOSPACE;
    for (size_t i = 0; i < inlen; i += 4) {
        size_t k = inlen - i < 4 ? inlen - i : 4;
        for (size_t j = 0; j < k; j++)
            if ((v[j] = b64_value((unsigned char)in[i + j], url)) < 0)
                return ERR_INVAL;
        if (k == 4) {
            out[o++] = (uint8_t)(v[0] << 2 | v[1] >> 4);
            out[o++] = (uint8_t)((v[1] & 15) << 4 | v[2] >> 2);
            out[o++] = (uint8_t)((v[2] & 3) << 6 | v[3]);
        } else if (k == 2) {
            /* The low 4 bits of the last character are padding bits: only the
             * spelling with them zero is the canonical one. */
            if (v[1] & 15)
                return ERR_INVAL;
            out[o++] = (uint8_t)(v[0] << 2 | v[1] >> 4);
        } else {
            if (v[2] & 3)
                return ERR_INVAL;
            out[o++] = (uint8_t)(v[0] << 2 | v[1] >> 4);
            out[o++] = (uint8_t)((v[1] & 15) << 4 | v[2] >> 2);
        }
    }
    if (outlen)
        *outlen = o;
    return ERR_OK;
}

int crypto_b64url_encode(const void *in, size_t n, char *out, size_t outsz, size_t *outlen)
{
    return b64_encode(B64_URL, in, n, out, outsz, outlen);
}

int crypto_b64url_decode(const char *in, size_t inlen, uint8_t *out, size_t outsz,
                         size_t *outlen)
{
    return b64_decode(true, in, inlen, out, outsz, outlen);
}

int crypto_b64_encode(const void *in, size_t n, char *out, size_t outsz, size_t *outlen)
{
    return b64_encode(B64_STD, in, n, out, outsz, outlen);
}

int crypto_b64_decode(const char *in, size_t inlen, uint8_t *out, size_t outsz,
                      size_t *outlen)
{
    return b64_decode(false, in, inlen, out, outsz, outlen);
}

/* ---- keyring ---------------------------------------------------------- */

static bool kid_valid(const char *kid, size_t len)
{
    if (len == 0 || len > CRYPTO_KID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)kid[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return false;
    }
    return true;
}

static const struct crypto_key *keyring_find(const struct crypto_keyring *ring,
                                             const char *kid, size_t kidlen)
{
    for (size_t i = 0; i < ring->n; i++)
        if (strlen(ring->keys[i].kid) == kidlen && memcmp(ring->keys[i].kid, kid, kidlen) == 0)
            return &ring->keys[i];
    return NULL;
}

/* HKDF-SHA256 with a fixed label: the blind index gets a key of its own, so the
 * AES key is used for nothing but AES and the index key cannot decrypt. */
static int derive_bidx_key(const uint8_t key[CRYPTO_KEY_LEN], uint8_t out[CRYPTO_KEY_LEN])
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *kctx = NULL;
    int rc = ERR_INTERNAL;
    OSSL_PARAM params[4];

    if (!kdf)
        goto out;
    kctx = EVP_KDF_CTX_new(kdf);
    if (!kctx)
        goto out;
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)key, CRYPTO_KEY_LEN);
    params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)BIDX_LABEL,
                                                  sizeof(BIDX_LABEL) - 1);
    params[3] = OSSL_PARAM_construct_end();
    if (EVP_KDF_derive(kctx, out, CRYPTO_KEY_LEN, params) == 1)
        rc = ERR_OK;
out:
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    return rc;
}

/* Parses one non-comment line `<kid> <64 hex>` (surrounding blanks allowed) into k. */
static int parse_key_line(char *line, struct crypto_key *k)
{
    char *p = line, *kid, *hex;
    size_t kidlen, hexlen, got = 0;

    while (*p == ' ' || *p == '\t')
        p++;
    kid = p;
    while (*p && *p != ' ' && *p != '\t')
        p++;
    kidlen = (size_t)(p - kid);
    while (*p == ' ' || *p == '\t')
        p++;
    hex = p;
    while (*p && *p != ' ' && *p != '\t')
        p++;
    hexlen = (size_t)(p - hex);
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p || !kid_valid(kid, kidlen) || hexlen != CRYPTO_HEX_LEN(CRYPTO_KEY_LEN))
        return ERR_INVAL;
    if (crypto_hex_decode(hex, hexlen, k->key, sizeof(k->key), &got) != ERR_OK)
        return ERR_INVAL;
    memcpy(k->kid, kid, kidlen);
    k->kid[kidlen] = '\0';
    return ERR_OK;
}

int crypto_keyring_load(struct crypto_keyring *ring, const char *path, char errstr[128])
{
    FILE *f = NULL;
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t len;
    int rc = ERR_OK;

    memset(ring, 0, sizeof(*ring));
    f = fopen(path, "re");
    if (!f) {
        err_set(errstr, "%s: %s", path, strerror(errno));
        rc = ERR_IO;
        goto out;
    }
    while ((len = getline(&line, &cap, f)) >= 0) {
        const char *p = line;
        struct crypto_key k;

        lineno++;
        if (len > KEYFILE_LINE_MAX || memchr(line, '\0', (size_t)len)) {
            err_set(errstr, "%s:%zu: line too long or binary", path, lineno);
            rc = ERR_INVAL;
            goto out;
        }
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0' || *p == '#')
            continue;
        memset(&k, 0, sizeof(k));
        if (parse_key_line(line, &k) != ERR_OK) {
            OPENSSL_cleanse(&k, sizeof(k));
            err_set(errstr, "%s:%zu: expected `<kid> <64 hex chars>` (kid: 1-%d of A-Za-z0-9_-)",
                    path, lineno, CRYPTO_KID_MAX);
            rc = ERR_INVAL;
            goto out;
        }
        if (keyring_find(ring, k.kid, strlen(k.kid))) {
            err_set(errstr, "%s:%zu: duplicate key id '%s'", path, lineno, k.kid);
            OPENSSL_cleanse(&k, sizeof(k));
            rc = ERR_INVAL;
            goto out;
        }
        if (ring->n == CRYPTO_KEYRING_MAX) {
            OPENSSL_cleanse(&k, sizeof(k));
            err_set(errstr, "%s:%zu: more than %d keys", path, lineno, CRYPTO_KEYRING_MAX);
            rc = ERR_NOSPACE;
            goto out;
        }
        if (derive_bidx_key(k.key, k.bidx_key) != ERR_OK) {
            OPENSSL_cleanse(&k, sizeof(k));
            err_set(errstr, "%s:%zu: key derivation failed", path, lineno);
            rc = ERR_INTERNAL;
            goto out;
        }
        ring->keys[ring->n++] = k;
        OPENSSL_cleanse(&k, sizeof(k));
    }
    if (ferror(f)) {
        err_set(errstr, "%s: read error", path);
        rc = ERR_IO;
    } else if (ring->n == 0) {
        err_set(errstr, "%s: no key in file", path);
        rc = ERR_INVAL;
    }
out:
    if (line) {
        OPENSSL_cleanse(line, cap);
        free(line);
    }
    if (f)
        fclose(f);
    if (rc != ERR_OK)
        crypto_keyring_cleanup(ring);
    return rc;
}

void crypto_keyring_cleanup(struct crypto_keyring *ring)
{
    if (ring)
        OPENSSL_cleanse(ring, sizeof(*ring));
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return ERR_IO;
        }
        p += w;
        n -= (size_t)w;
    }
    return ERR_OK;
}

int crypto_keyring_write_new(const char *path, const char *kid)
{
    uint8_t key[CRYPTO_KEY_LEN];
    char text[256];
    char hex[CRYPTO_HEX_LEN(CRYPTO_KEY_LEN) + 1];
    int fd = -1, rc, n;

    if (!kid || !kid_valid(kid, strlen(kid)))
        return ERR_INVAL;
    rc = crypto_random(key, sizeof(key));
    if (rc != ERR_OK)
        goto out;
    rc = crypto_hex_encode(key, sizeof(key), hex, sizeof(hex));
    if (rc != ERR_OK)
        goto out;
    n = snprintf(text, sizeof(text),
                 "# tessera data-encryption keys: `<kid> <64 hex>` per line; the first seals.\n"
                 "%s %s\n", kid, hex);
    if (n < 0 || (size_t)n >= sizeof(text)) {
        rc = ERR_INTERNAL;
        goto out;
    }
    /* O_EXCL: keygen must never replace a data key that rows are sealed under. */
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        rc = errno == EEXIST ? ERR_CONFLICT : ERR_IO;
        goto out;
    }
    rc = write_all(fd, text, (size_t)n);
    if (rc == ERR_OK && fsync(fd) != 0)
        rc = ERR_IO;
    if (close(fd) != 0 && rc == ERR_OK)
        rc = ERR_IO;
    if (rc != ERR_OK)
        unlink(path);
out:
    OPENSSL_cleanse(key, sizeof(key));
    OPENSSL_cleanse(hex, sizeof(hex));
    OPENSSL_cleanse(text, sizeof(text));
    return rc;
}

/* ---- AES-256-GCM ------------------------------------------------------ */

/* The cipher step of crypto_seal: ct[0..ptlen) and the 16-byte tag of pt
 * under key and a 12-byte iv, authenticating hdr then aad as one stream of
 * additional data (GCM hashes consecutive AAD updates as their
 * concatenation). Every seal runs through here, and so do the test builds'
 * Wycheproof vectors (crypto_gcm_seal_iv). ERR_TOOBIG, ERR_INTERNAL. */
static int gcm_seal(const uint8_t key[CRYPTO_KEY_LEN], const uint8_t iv[CRYPTO_IV_LEN],
                    const void *hdr, size_t hdrlen, const void *aad, size_t aadlen,
                    const void *pt, size_t ptlen, uint8_t *ct, uint8_t tag[CRYPTO_TAG_LEN])
{
    EVP_CIPHER_CTX *ctx = NULL;
    int rc = ERR_INTERNAL, l = 0, fl = 0;

    if (ptlen > CRYPTO_SEAL_MAX || aadlen > CRYPTO_SEAL_MAX || hdrlen > SEAL_HDR_MAX)
        return ERR_TOOBIG;
    ctx = EVP_CIPHER_CTX_new();
    if (!ctx ||
        gcm_cipher() == NULL || EVP_EncryptInit_ex(ctx, gcm_cipher(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, CRYPTO_IV_LEN, NULL) != 1 ||
        EVP_EncryptInit_ex(ctx, NULL, NULL, key, iv) != 1)
        goto out;
    if (hdrlen && EVP_EncryptUpdate(ctx, NULL, &l, hdr, (int)hdrlen) != 1)
        goto out;
    if (aadlen && EVP_EncryptUpdate(ctx, NULL, &l, aad, (int)aadlen) != 1)
        goto out;
    l = 0;
    if (ptlen && EVP_EncryptUpdate(ctx, ct, &l, pt, (int)ptlen) != 1)
        goto out;
    if (EVP_EncryptFinal_ex(ctx, ct + l, &fl) != 1 || (size_t)(l + fl) != ptlen ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, CRYPTO_TAG_LEN, tag) != 1)
        goto out;
    rc = ERR_OK;
out:
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

/* The cipher step of crypto_open, the inverse of gcm_seal. Returns owned
 * (free()) plaintext in *pt_out, NUL-terminated (not counted): only once the
 * whole 16-byte tag has verified; unauthenticated plaintext is wiped before
 * it is freed. ERR_INVAL (the tag does not verify), ERR_TOOBIG, ERR_NOMEM,
 * ERR_INTERNAL. */
static int gcm_open(const uint8_t key[CRYPTO_KEY_LEN], const uint8_t iv[CRYPTO_IV_LEN],
                    const void *hdr, size_t hdrlen, const void *aad, size_t aadlen,
                    const uint8_t *ct, size_t ctlen, const uint8_t tag[CRYPTO_TAG_LEN],
                    uint8_t **pt_out)
{
    EVP_CIPHER_CTX *ctx = NULL;
    uint8_t *pt = NULL;
    int rc = ERR_INTERNAL, l = 0, fl = 0;

    *pt_out = NULL;
    if (ctlen > CRYPTO_SEAL_MAX || aadlen > CRYPTO_SEAL_MAX || hdrlen > SEAL_HDR_MAX)
        return ERR_TOOBIG;
    pt = malloc(ctlen + 1);
    if (!pt)
        return ERR_NOMEM;
    ctx = EVP_CIPHER_CTX_new();
    if (!ctx ||
        gcm_cipher() == NULL || EVP_DecryptInit_ex(ctx, gcm_cipher(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, CRYPTO_IV_LEN, NULL) != 1 ||
        EVP_DecryptInit_ex(ctx, NULL, NULL, key, iv) != 1)
        goto out;
    if (hdrlen && EVP_DecryptUpdate(ctx, NULL, &l, hdr, (int)hdrlen) != 1)
        goto out;
    if (aadlen && EVP_DecryptUpdate(ctx, NULL, &l, aad, (int)aadlen) != 1)
        goto out;
    l = 0;
    if (ctlen && EVP_DecryptUpdate(ctx, pt, &l, ct, (int)ctlen) != 1)
        goto out;
    /* The tag is always the full 16 bytes: OpenSSL would verify a shorter
     * one if asked, so we never ask. */
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, CRYPTO_TAG_LEN, (void *)tag) != 1)
        goto out;
    if (EVP_DecryptFinal_ex(ctx, pt + l, &fl) != 1 || (size_t)(l + fl) != ctlen) {
        rc = ERR_INVAL;
        goto out;
    }
    pt[ctlen] = '\0';
    *pt_out = pt;
    pt = NULL;
    rc = ERR_OK;
out:
    EVP_CIPHER_CTX_free(ctx);
    if (pt) {
        /* Unauthenticated plaintext never leaves this function, not even in freed memory. */
        OPENSSL_cleanse(pt, ctlen + 1);
        free(pt);
    }
    return rc;
}

int crypto_seal(const struct crypto_keyring *ring, const void *aad, size_t aadlen,
                const void *pt, size_t ptlen, uint8_t **out, size_t *outlen)
{
    const struct crypto_key *k;
    uint8_t *buf = NULL, *iv, *ct;
    size_t kidlen, hdrlen, total;
    int rc;

    *out = NULL;
    if (outlen)
        *outlen = 0;
    if (!ring || ring->n == 0)
        return ERR_INVAL;
    if (ptlen > CRYPTO_SEAL_MAX || aadlen > CRYPTO_SEAL_MAX)
        return ERR_TOOBIG;
    k = &ring->keys[0];
    kidlen = strlen(k->kid);
    hdrlen = 2 + kidlen;
    total = hdrlen + CRYPTO_IV_LEN + ptlen + CRYPTO_TAG_LEN;
    buf = malloc(total);
    if (!buf)
        return ERR_NOMEM;
    buf[0] = CRYPTO_SEAL_VERSION;
    buf[1] = (uint8_t)kidlen;
    memcpy(buf + 2, k->kid, kidlen);
    iv = buf + hdrlen;
    ct = iv + CRYPTO_IV_LEN;
    rc = crypto_random(iv, CRYPTO_IV_LEN);
    if (rc == ERR_OK)
        rc = gcm_seal(k->key, iv, buf, hdrlen, aad, aadlen, pt, ptlen, ct, ct + ptlen);
    if (rc != ERR_OK) {
        free(buf);
        return rc;
    }
    *out = buf;
    if (outlen)
        *outlen = total;
    return ERR_OK;
}

int crypto_open(const struct crypto_keyring *ring, const void *aad, size_t aadlen,
                const uint8_t *blob, size_t bloblen, uint8_t **pt_out, size_t *ptlen)
{
    const struct crypto_key *k;
    const uint8_t *iv, *ct;
    size_t kidlen, hdrlen, ctlen;
    int rc;

    *pt_out = NULL;
    if (ptlen)
        *ptlen = 0;
    if (!ring || !blob || bloblen < 2 || blob[0] != CRYPTO_SEAL_VERSION)
        return ERR_INVAL;
    if (aadlen > CRYPTO_SEAL_MAX)
        return ERR_TOOBIG;
    kidlen = blob[1];
    hdrlen = 2 + kidlen;
    if (kidlen == 0 || kidlen > CRYPTO_KID_MAX ||
        bloblen < hdrlen + CRYPTO_IV_LEN + CRYPTO_TAG_LEN)
        return ERR_INVAL;
    ctlen = bloblen - hdrlen - CRYPTO_IV_LEN - CRYPTO_TAG_LEN;
    if (ctlen > CRYPTO_SEAL_MAX)
        return ERR_TOOBIG;
    k = keyring_find(ring, (const char *)blob + 2, kidlen);
    if (!k)
        return ERR_NOTFOUND;
    iv = blob + hdrlen;
    ct = iv + CRYPTO_IV_LEN;
    rc = gcm_open(k->key, iv, blob, hdrlen, aad, aadlen, ct, ctlen, ct + ctlen, pt_out);
    if (rc == ERR_OK && ptlen)
        *ptlen = ctlen;
    return rc;
}

#ifdef TESSERA_TEST_HOOKS
int crypto_gcm_seal_iv(const struct crypto_keyring *ring, const uint8_t iv[CRYPTO_IV_LEN],
                       const void *aad, size_t aadlen, const void *pt, size_t ptlen,
                       uint8_t *ct, uint8_t tag[CRYPTO_TAG_LEN])
{
    if (!ring || ring->n == 0 || !iv || !ct || !tag || (!pt && ptlen))
        return ERR_INVAL;
    return gcm_seal(ring->keys[0].key, iv, NULL, 0, aad, aadlen, pt, ptlen, ct, tag);
}

int crypto_gcm_open(const struct crypto_keyring *ring, const uint8_t iv[CRYPTO_IV_LEN],
                    const void *aad, size_t aadlen, const uint8_t *ct, size_t ctlen,
                    const uint8_t tag[CRYPTO_TAG_LEN], uint8_t **pt_out, size_t *ptlen)
{
    int rc;

    *pt_out = NULL;
    if (ptlen)
        *ptlen = 0;
    if (!ring || ring->n == 0 || !iv || !tag || (!ct && ctlen))
        return ERR_INVAL;
    rc = gcm_open(ring->keys[0].key, iv, NULL, 0, aad, aadlen, ct, ctlen, tag, pt_out);
    if (rc == ERR_OK && ptlen)
        *ptlen = ctlen;
    return rc;
}
#endif

int crypto_seal_text(const struct crypto_keyring *ring, const void *aad, size_t aadlen,
                     const void *pt, size_t ptlen, char **out)
{
    uint8_t *blob = NULL;
    size_t bloblen = 0, tlen;
    char *text = NULL;
    int rc;

    *out = NULL;
    rc = crypto_seal(ring, aad, aadlen, pt, ptlen, &blob, &bloblen);
    if (rc != ERR_OK)
        goto out;
    tlen = CRYPTO_B64_LEN(bloblen) + 1;
    text = malloc(tlen);
    if (!text) {
        rc = ERR_NOMEM;
        goto out;
    }
    rc = crypto_b64url_encode(blob, bloblen, text, tlen, NULL);
    if (rc != ERR_OK)
        goto out;
    *out = text;
    text = NULL;
out:
    free(text);
    free(blob);
    return rc;
}

int crypto_open_text(const struct crypto_keyring *ring, const void *aad, size_t aadlen,
                     const char *text, size_t textlen, uint8_t **pt_out, size_t *ptlen)
{
    uint8_t *blob = NULL;
    size_t cap, bloblen = 0;
    int rc;

    *pt_out = NULL;
    if (ptlen)
        *ptlen = 0;
    if (!text)
        return ERR_INVAL;
    if (textlen > CRYPTO_B64_LEN(CRYPTO_SEAL_MAX + SEAL_HDR_MAX + CRYPTO_IV_LEN + CRYPTO_TAG_LEN))
        return ERR_TOOBIG;
    cap = CRYPTO_B64_DECODED_MAX(textlen);
    blob = malloc(cap ? cap : 1);
    if (!blob)
        return ERR_NOMEM;
    rc = crypto_b64url_decode(text, textlen, blob, cap, &bloblen);
    if (rc != ERR_OK)
        rc = ERR_INVAL;
    else
        rc = crypto_open(ring, aad, aadlen, blob, bloblen, pt_out, ptlen);
    free(blob);
    return rc;
}

/* ---- blind index ------------------------------------------------------ */

static int blind_index_with(const struct crypto_key *k, const char *normalized,
                            char out_hex[CRYPTO_HEX_LEN(CRYPTO_SHA256_LEN) + 1])
{
    uint8_t mac[CRYPTO_SHA256_LEN];
    int rc;

    rc = crypto_hmac_sha256(k->bidx_key, sizeof(k->bidx_key), normalized,
                            strlen(normalized), mac);
    if (rc == ERR_OK)
        rc = crypto_hex_encode(mac, sizeof(mac), out_hex, CRYPTO_HEX_LEN(CRYPTO_SHA256_LEN) + 1);
    return rc;
}

int crypto_blind_index(const struct crypto_keyring *ring, const char *normalized,
                       char out_hex[CRYPTO_HEX_LEN(CRYPTO_SHA256_LEN) + 1])
{
    if (!ring || ring->n == 0 || !normalized)
        return ERR_INVAL;
    return blind_index_with(&ring->keys[0], normalized, out_hex);
}

int crypto_blind_index_kid(const struct crypto_keyring *ring, const char *kid,
                           const char *normalized,
                           char out_hex[CRYPTO_HEX_LEN(CRYPTO_SHA256_LEN) + 1])
{
    const struct crypto_key *k;

    if (!ring || !kid || !normalized)
        return ERR_INVAL;
    k = keyring_find(ring, kid, strlen(kid));
    if (!k)
        return ERR_NOTFOUND;
    return blind_index_with(k, normalized, out_hex);
}
