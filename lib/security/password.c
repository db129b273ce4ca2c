/* password: scrypt through EVP_PBE_scrypt, PHC strings in and out.
 *
 * maxmem is passed explicitly, computed from the parameters: OpenSSL's default
 * limit (32 MiB) refuses N = 2^17, r = 8, the OWASP floor (DESIGN §10). The
 * parser is strict (fixed parameter order, no leading zeros, canonical base64)
 * because a stored string is the only record of how a hash was made, and
 * bounded (password_cost_valid) because a corrupted or planted row must not
 * make a login allocate gigabytes. */
#include "security/password.h"

#include "security/crypto.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#define SCRYPT_LN_MAX 24
#define SCRYPT_R_MAX 32
#define SCRYPT_P_MAX 16
#define SCRYPT_MEM_MAX (UINT64_C(1) << 30)
#define PHC_PREFIX "$scrypt$"
/* Salt and hash lengths accepted from stored strings (others' writers included). */
#define PHC_SALT_MIN 8
#define PHC_HASH_MIN 16
#define PHC_BYTES_MAX 64

/* What EVP_PBE_scrypt allocates: B = 128·r·p, V = 128·r·(N+2) (OpenSSL's
 * scrypt.c), which it compares against maxmem. */
static uint64_t scrypt_mem(const struct password_cost *c)
{
    uint64_t r = (uint64_t)c->r, n = UINT64_C(1) << c->ln;
    return 128 * r * (uint64_t)c->p + 128 * r * (n + 2);
}

bool password_cost_valid(const struct password_cost *c)
{
    return c && c->ln >= 1 && c->ln <= SCRYPT_LN_MAX && c->r >= 1 && c->r <= SCRYPT_R_MAX &&
           c->p >= 1 && c->p <= SCRYPT_P_MAX && scrypt_mem(c) <= SCRYPT_MEM_MAX;
}

static int run_scrypt(const char *pw, size_t len, const uint8_t *salt, size_t saltlen,
                  const struct password_cost *c, uint8_t *out, size_t outlen)
{
    int ok = EVP_PBE_scrypt(len ? pw : "", len, salt, saltlen, UINT64_C(1) << c->ln,
                            (uint64_t)c->r, (uint64_t)c->p, scrypt_mem(c), out, outlen);

    if (ok != 1) {
        ERR_clear_error();
        return ERR_INTERNAL;
    }
    return ERR_OK;
}

int password_hash(const char *pw, size_t len, const struct password_cost *cost,
                  char **phc_out)
{
    struct password_cost c = cost ? *cost : PASSWORD_COST_DEFAULT;
    uint8_t salt[PASSWORD_SALT_LEN], hash[PASSWORD_HASH_LEN];
    char salt64[CRYPTO_B64_LEN(PASSWORD_SALT_LEN) + 1];
    char hash64[CRYPTO_B64_LEN(PASSWORD_HASH_LEN) + 1];
    char *phc = NULL;
    int rc, n;

    *phc_out = NULL;
    if (!pw && len)
        return ERR_INVAL;
    if (len > PASSWORD_MAX_LEN)
        return ERR_TOOBIG;
    if (!password_cost_valid(&c))
        return ERR_INVAL;
    rc = crypto_random(salt, sizeof(salt));
    if (rc != ERR_OK)
        goto out;
    rc = run_scrypt(pw, len, salt, sizeof(salt), &c, hash, sizeof(hash));
    if (rc != ERR_OK)
        goto out;
    if ((rc = crypto_b64_encode(salt, sizeof(salt), salt64, sizeof(salt64), NULL)) != ERR_OK ||
        (rc = crypto_b64_encode(hash, sizeof(hash), hash64, sizeof(hash64), NULL)) != ERR_OK)
        goto out;
    phc = malloc(PASSWORD_PHC_MAX);
    if (!phc) {
        rc = ERR_NOMEM;
        goto out;
    }
    n = snprintf(phc, PASSWORD_PHC_MAX, PHC_PREFIX "ln=%d,r=%d,p=%d$%s$%s", c.ln, c.r, c.p,
                 salt64, hash64);
    if (n < 0 || n >= PASSWORD_PHC_MAX) {
        rc = ERR_INTERNAL;
        goto out;
    }
    *phc_out = phc;
    phc = NULL;
out:
    OPENSSL_cleanse(hash, sizeof(hash));
    OPENSSL_cleanse(hash64, sizeof(hash64));
    free(phc);
    return rc;
}

/* Reads `name=<decimal>` at *p, no sign, no leading zero, at most 2 digits
 * (every bound above is below 100), then expects `end`. */
static bool parse_param(const char **p, const char *name, char end, int *out)
{
    size_t nl = strlen(name);
    const char *s = *p;
    int v = 0, digits = 0;

    if (strncmp(s, name, nl) != 0 || s[nl] != '=')
        return false;
    s += nl + 1;
    if (*s == '0')
        return false;
    while (*s >= '0' && *s <= '9' && digits < 3) {
        v = v * 10 + (*s++ - '0');
        digits++;
    }
    if (digits == 0 || digits > 2 || *s != end)
        return false;
    *p = s + 1;
    *out = v;
    return true;
}

/* Decodes one `$`-terminated (or NUL-terminated when last) base64 field. */
static bool parse_b64(const char **p, bool last, uint8_t *out, size_t min, size_t *outlen)
{
    const char *s = *p;
    const char *e = last ? s + strlen(s) : strchr(s, '$');

    if (!e || crypto_b64_decode(s, (size_t)(e - s), out, PHC_BYTES_MAX, outlen) != ERR_OK ||
        *outlen < min)
        return false;
    *p = last ? e : e + 1;
    return true;
}

struct phc {
    struct password_cost cost;
    uint8_t salt[PHC_BYTES_MAX], hash[PHC_BYTES_MAX];
    size_t saltlen, hashlen;
};

static int phc_parse(const char *s, struct phc *ph)
{
    if (!s || strnlen(s, PASSWORD_PHC_MAX + 1) > PASSWORD_PHC_MAX ||
        strncmp(s, PHC_PREFIX, sizeof(PHC_PREFIX) - 1) != 0)
        return ERR_INVAL;
    s += sizeof(PHC_PREFIX) - 1;
    if (!parse_param(&s, "ln", ',', &ph->cost.ln) || !parse_param(&s, "r", ',', &ph->cost.r) ||
        !parse_param(&s, "p", '$', &ph->cost.p) || !password_cost_valid(&ph->cost))
        return ERR_INVAL;
    if (!parse_b64(&s, false, ph->salt, PHC_SALT_MIN, &ph->saltlen) ||
        !parse_b64(&s, true, ph->hash, PHC_HASH_MIN, &ph->hashlen) || *s)
        return ERR_INVAL;
    return ERR_OK;
}

int password_verify(const char *pw, size_t len, const char *phc,
                    const struct password_cost *configured, bool *needs_rehash)
{
    struct password_cost want = configured ? *configured : PASSWORD_COST_DEFAULT;
    struct phc ph;
    uint8_t got[PHC_BYTES_MAX];
    int rc;

    if (needs_rehash)
        *needs_rehash = false;
    if (!pw && len)
        return ERR_INVAL;
    if (len > PASSWORD_MAX_LEN)
        return ERR_TOOBIG;
    memset(&ph, 0, sizeof(ph));
    rc = phc_parse(phc, &ph);
    if (rc != ERR_OK)
        goto out;
    rc = run_scrypt(pw, len, ph.salt, ph.saltlen, &ph.cost, got, ph.hashlen);
    if (rc != ERR_OK)
        goto out;
    if (!crypto_ct_eq(got, ph.hash, ph.hashlen)) {
        rc = ERR_UNAUTHORIZED;
        goto out;
    }
    if (needs_rehash)
        *needs_rehash = ph.cost.ln < want.ln || ph.cost.r < want.r || ph.cost.p < want.p ||
                        ph.saltlen < PASSWORD_SALT_LEN || ph.hashlen < PASSWORD_HASH_LEN;
out:
    OPENSSL_cleanse(got, sizeof(got));
    OPENSSL_cleanse(&ph, sizeof(ph));
    return rc;
}

void password_burn(const struct password_cost *cost)
{
    struct password_cost c = cost ? *cost : PASSWORD_COST_DEFAULT;
    static const uint8_t salt[PASSWORD_SALT_LEN] = { 0 };
    uint8_t out[PASSWORD_HASH_LEN];

    if (!password_cost_valid(&c))
        c = PASSWORD_COST_DEFAULT;
    /* The result is meaningless; only the time spent matters. */
    if (run_scrypt("tessera-burn", 12, salt, sizeof(salt), &c, out, sizeof(out)) != ERR_OK)
        return;
    OPENSSL_cleanse(out, sizeof(out));
}
