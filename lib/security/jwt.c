/* jwt: EdDSA (Ed25519) JWS compact tokens.
 *
 * Verification is ordered so that the cheapest, most attacker-controlled checks
 * come first and nothing in the payload is believed before the signature holds:
 * size cap, three parts, canonical base64url, strict JSON header (lib/json),
 * alg "EdDSA" or "Ed25519" (so "none", HS256 signed with the public key, and
 * friends never reach a crypto call), crit refused, typ, kid looked up in memory
 * only and its key pinned to Ed25519 (whichever of the two names the header
 * uses, the algorithm is the key's, never the token's), then the 64-byte
 * signature, then the payload's JSON and claims.
 *
 * Canonical base64url matters beyond tidiness: the blacklist keys on
 * SHA-256(token), and a lenient decoder would let a logged-out token come back
 * under a new spelling of its signature's last character. Likewise, OpenSSL's
 * Ed25519 verify refuses S >= L (the group order), which closes the other
 * malleability; tests/unit/test_jwt.c proves both. */
#include "security/jwt.h"

#include "security/crypto.h"
#include "core/json.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#define ED25519_SIG_LEN 64
#define ED25519_PUB_LEN 32
/* Latest time accepted in exp/nbf/iat: 9999-12-31, well inside double's exact range. */
#define JWT_TIME_MAX INT64_C(253402300799)
/* Upper bound on a configured lifetime: keeps exp arithmetic far from overflow. */
#define JWT_LIFETIME_CAP (INT64_C(10) * 366 * 86400)
#define JWT_SKEW_CAP 3600

static const struct json_limits JWT_JSON_LIMITS = { .max_depth = 8, .max_nodes = 256 };


/* ---- keys ------------------------------------------------------------- */

/* Never prompt on a terminal for an encrypted key: a worker has none. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

static int key_fill(struct jwt_key *k, EVP_PKEY *pkey, int can_sign)
{
    uint8_t digest[CRYPTO_SHA256_LEN];
    size_t publen = sizeof(k->pub);

    if (EVP_PKEY_get_raw_public_key(pkey, k->pub, &publen) != 1 || publen != ED25519_PUB_LEN)
        return ERR_INTERNAL;
    if (crypto_sha256(k->pub, sizeof(k->pub), digest) != ERR_OK)
        return ERR_INTERNAL;
    if (crypto_hex_encode(digest, JWT_KID_LEN / 2, k->kid, sizeof(k->kid)) != ERR_OK)
        return ERR_INTERNAL;
    k->pkey = pkey;
    k->can_sign = can_sign;
    return ERR_OK;
}

static const struct jwt_key *keyset_find(const struct jwt_keyset *ks, const char *kid)
{
    for (size_t i = 0; i < ks->n; i++)
        if (strcmp(ks->keys[i].kid, kid) == 0)
            return &ks->keys[i];
    return NULL;
}

/* A PEM key file is a few hundred bytes; anything near this is not one. */
#define KEY_FILE_MAX 16384

/* Reads one PEM file: a private key, or (when public_ok) a public key. A
 * private key readable by anyone but its owner is refused before it is used,
 * as sshd refuses one: the file's mode, not the operator's intent, is what
 * every other account on the machine sees. */
static int load_one(const char *path, bool public_ok, EVP_PKEY **pkey, int *can_sign,
                    char *errstr)
{
    char text[KEY_FILE_MAX];
    struct stat st;
    BIO *bio = NULL;
    ssize_t got;
    size_t len = 0;
    int fd, rc = ERR_INVAL;
    bool too_open;

    *pkey = NULL;
    *can_sign = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        err_set(errstr, "%s: %s", path, strerror(errno));
        return ERR_IO;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        err_set(errstr, "%s: not a regular file", path);
        close(fd);
        return ERR_IO;
    }
    too_open = (st.st_mode & 077) != 0;
    if (!public_ok && too_open)
        goto too_open;
    while (len < sizeof(text) && (got = read(fd, text + len, sizeof(text) - len)) != 0) {
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            err_set(errstr, "%s: %s", path, strerror(errno));
            rc = ERR_IO;
            goto out;
        }
        len += (size_t)got;
    }
    if (len == sizeof(text)) {
        err_set(errstr, "%s: larger than a PEM key (%d bytes or more)", path, KEY_FILE_MAX);
        goto out;
    }
    bio = BIO_new_mem_buf(text, (int)len);
    if (!bio) {
        err_set(errstr, "%s: out of memory", path);
        rc = ERR_NOMEM;
        goto out;
    }
    *can_sign = 1;
    *pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    if (!*pkey && public_ok && BIO_reset(bio) == 1) {
        *can_sign = 0;
        *pkey = PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL);
    }
    if (!*pkey) {
        err_set(errstr, "%s: not a PEM Ed25519 %s (encrypted keys are not supported)",
                path, public_ok ? "key" : "private key");
        goto out;
    }
    if (*can_sign && too_open)
        goto too_open;
    if (!EVP_PKEY_is_a(*pkey, "ED25519")) {
        err_set(errstr, "%s: key is not Ed25519 (%s)", path, EVP_PKEY_get0_type_name(*pkey)
                                                               ? EVP_PKEY_get0_type_name(*pkey) : "?");
        goto out;
    }
    rc = ERR_OK;
    goto out;
too_open:
    err_set(errstr, "%s: mode %04o is too open for a private key (group or others have "
                    "access): chmod 600", path, (unsigned)(st.st_mode & 07777));
out:
    if (rc != ERR_OK) {
        EVP_PKEY_free(*pkey);
        *pkey = NULL;
    }
    BIO_free(bio);
    explicit_bzero(text, sizeof(text));
    ERR_clear_error();
    close(fd);
    return rc;
}

int jwt_keyset_add(struct jwt_keyset *ks, const char *path, char errstr[128])
{
    struct jwt_key k;
    EVP_PKEY *pkey = NULL;
    int can_sign = 0, rc;

    if (!ks || !path) {
        err_set(errstr, "no JWT key file given");
        return ERR_INVAL;
    }
    if (ks->n >= JWT_KEYSET_MAX) {
        err_set(errstr, "%s: more than %d JWT key files", path, JWT_KEYSET_MAX);
        return ERR_NOSPACE;
    }
    rc = load_one(path, ks->n > 0, &pkey, &can_sign, errstr);
    if (rc != ERR_OK)
        return rc;
    memset(&k, 0, sizeof(k));
    if (key_fill(&k, pkey, can_sign) != ERR_OK) {
        EVP_PKEY_free(pkey);
        err_set(errstr, "%s: cannot read the public key", path);
        return ERR_INTERNAL;
    }
    if (keyset_find(ks, k.kid)) {
        EVP_PKEY_free(pkey);
        err_set(errstr, "%s: same key as an earlier file (kid %s)", path, k.kid);
        return ERR_INVAL;
    }
    ks->keys[ks->n++] = k;
    return ERR_OK;
}

int jwt_keyset_load(struct jwt_keyset *ks, const char *const *paths, size_t n,
                    char errstr[128])
{
    int rc = ERR_OK;

    memset(ks, 0, sizeof(*ks));
    if (n == 0 || !paths) {
        err_set(errstr, "no JWT key file given");
        return ERR_INVAL;
    }
    if (n > JWT_KEYSET_MAX) {
        err_set(errstr, "more than %d JWT key files", JWT_KEYSET_MAX);
        return ERR_NOSPACE;
    }
    for (size_t i = 0; i < n && rc == ERR_OK; i++)
        rc = jwt_keyset_add(ks, paths[i], errstr);
    if (rc != ERR_OK)
        jwt_keyset_free(ks);
    return rc;
}

int jwt_keyset_copy(struct jwt_keyset *dst, const struct jwt_keyset *src)
{
    memset(dst, 0, sizeof(*dst));
    if (!src || src->n > JWT_KEYSET_MAX)
        return ERR_INTERNAL;
    dst->sign_alg = src->sign_alg;
    for (size_t i = 0; i < src->n; i++) {
        if (EVP_PKEY_up_ref(src->keys[i].pkey) != 1) {
            jwt_keyset_free(dst);
            return ERR_INTERNAL;
        }
        dst->keys[dst->n++] = src->keys[i];
    }
    return ERR_OK;
}

void jwt_keyset_free(struct jwt_keyset *ks)
{
    if (!ks)
        return;
    for (size_t i = 0; i < ks->n; i++)
        EVP_PKEY_free(ks->keys[i].pkey);
    memset(ks, 0, sizeof(*ks));
}

const char *jwt_alg_name(int alg)
{
    return alg == JWT_ALG_ED25519 ? "Ed25519" : "EdDSA";
}

/* Writes pkey (its public half when public_only) as PEM into a new file, never
 * over an existing one (O_EXCL: ERR_CONFLICT), synced before it counts. When
 * owner is set and we are root, the file gets that owner: a key made by root
 * for a fleet that runs as another user must stay readable by that user. On
 * failure the file is removed. */
static int write_key_file(const char *path, EVP_PKEY *pkey, int public_only, mode_t mode,
                          const struct stat *owner)
{
    FILE *f;
    int fd, rc = ERR_OK;

    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return errno == EEXIST ? ERR_CONFLICT : ERR_IO;
    /* the umask may have taken bits off a public file's 0644: set them exactly */
    if (fchmod(fd, mode) != 0 ||
        (owner && geteuid() == 0 && fchown(fd, owner->st_uid, owner->st_gid) != 0)) {
        close(fd);
        unlink(path);
        return ERR_IO;
    }
    f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        unlink(path);
        return ERR_IO;
    }
    if ((public_only ? PEM_write_PUBKEY(f, pkey)
                     : PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL)) != 1)
        rc = ERR_INTERNAL;
    else if (fflush(f) != 0 || fsync(fileno(f)) != 0)
        rc = ERR_IO;
    if (fclose(f) != 0 && rc == ERR_OK)
        rc = ERR_IO;
    if (rc != ERR_OK)
        unlink(path);
    ERR_clear_error();
    return rc;
}

int jwt_keygen(const char *path)
{
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    int rc;

    if (!pkey) {
        ERR_clear_error();
        return ERR_INTERNAL;
    }
    /* O_EXCL: replacing a signing key silently would log every user out. */
    rc = write_key_file(path, pkey, 0, 0600, NULL);
    EVP_PKEY_free(pkey);
    return rc;
}

/* The public file of a rotated-out key: <path less .pem>-<kid>.pub.pem. */
static int rotated_pub_path(const char *path, const char *kid, char *out, size_t outsz)
{
    size_t n = strlen(path);
    int w;

    if (n >= 4 && strcmp(path + n - 4, ".pem") == 0)
        n -= 4;
    w = snprintf(out, outsz, "%.*s-%s.pub.pem", (int)n, path, kid);
    return w < 0 || (size_t)w >= outsz ? ERR_TOOBIG : ERR_OK;
}

/* fsync of the folder that holds path, so a rename survives a crash. */
static int sync_dir_of(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    int fd, rc = ERR_OK;

    if (!slash)
        snprintf(dir, sizeof(dir), ".");
    else if (snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path) >=
             (int)sizeof(dir))
        return ERR_TOOBIG;
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return ERR_IO;
    if (fsync(fd) != 0)
        rc = ERR_IO;
    close(fd);
    return rc;
}

int jwt_rotate(const char *path, char *pub_path, size_t pubsz, char old_kid[JWT_KID_LEN + 1],
               char new_kid[JWT_KID_LEN + 1], char errstr[128])
{
    struct jwt_keyset cur;
    struct jwt_key next_key;
    struct stat owner;
    EVP_PKEY *next = NULL, *kept = NULL;
    char tmp[4096];
    int rc, kept_sign = 0;

    memset(&cur, 0, sizeof(cur));
    old_kid[0] = new_kid[0] = '\0';
    if (pubsz > 0)
        pub_path[0] = '\0';
    rc = jwt_keyset_add(&cur, path, errstr);
    if (rc != ERR_OK)
        return rc == ERR_IO ? ERR_IO : ERR_INVAL;
    memcpy(old_kid, cur.keys[0].kid, JWT_KID_LEN + 1);
    if (stat(path, &owner) != 0) {
        err_set(errstr, "%s: %s", path, strerror(errno));
        rc = ERR_IO;
        goto out;
    }
    if (rotated_pub_path(path, old_kid, pub_path, pubsz) != ERR_OK ||
        snprintf(tmp, sizeof(tmp), "%s.next", path) >= (int)sizeof(tmp)) {
        err_set(errstr, "%s: path too long", path);
        rc = ERR_TOOBIG;
        goto out;
    }
    rc = write_key_file(pub_path, cur.keys[0].pkey, 1, 0644, &owner);
    if (rc == ERR_CONFLICT) {
        /* A rotation that stopped after this step left it: fine if it is ours. */
        rc = load_one(pub_path, true, &kept, &kept_sign, errstr);
        if (rc == ERR_OK && EVP_PKEY_eq(kept, cur.keys[0].pkey) == 1)
            rc = ERR_OK;
        else if (rc == ERR_OK) {
            err_set(errstr, "%s: exists and holds another key", pub_path);
            rc = ERR_CONFLICT;
        }
        if (rc != ERR_OK)
            goto out;
    } else if (rc != ERR_OK) {
        err_set(errstr, "%s: cannot write the public key (%s)", pub_path, err_str(rc));
        goto out;
    }
    next = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (!next) {
        err_set(errstr, "cannot make an Ed25519 key");
        rc = ERR_INTERNAL;
        goto out;
    }
    /* a .next left by an interrupted rotation was never in use: replace it */
    if (unlink(tmp) != 0 && errno != ENOENT) {
        err_set(errstr, "%s: %s", tmp, strerror(errno));
        rc = ERR_IO;
        goto out;
    }
    rc = write_key_file(tmp, next, 0, 0600, &owner);
    if (rc != ERR_OK) {
        err_set(errstr, "%s: cannot write the new key (%s)", tmp, err_str(rc));
        goto out;
    }
    if (rename(tmp, path) != 0) {
        err_set(errstr, "%s: %s", path, strerror(errno));
        unlink(tmp);
        rc = ERR_IO;
        goto out;
    }
    if (sync_dir_of(path) != ERR_OK) {
        err_set(errstr, "%s: replaced, but its folder could not be synced", path);
        rc = ERR_IO;
        goto out;
    }
    memset(&next_key, 0, sizeof(next_key));
    rc = key_fill(&next_key, next, 1);
    if (rc == ERR_OK)
        memcpy(new_kid, next_key.kid, JWT_KID_LEN + 1);
    else
        err_set(errstr, "%s: cannot read the new public key", path);
out:
    EVP_PKEY_free(next);
    EVP_PKEY_free(kept);
    jwt_keyset_free(&cur);
    ERR_clear_error();
    return rc;
}

/* ---- sign ------------------------------------------------------------- */

int jwt_sign(const struct jwt_keyset *ks, const cJSON *claims, char **out)
{
    const struct jwt_key *k;
    EVP_MD_CTX *md = NULL;
    char header[80];
    char *payload = NULL, *tok = NULL;
    uint8_t sig[ED25519_SIG_LEN];
    size_t siglen = sizeof(sig), hlen, plen, hb, pb, total, o = 0, w = 0;
    int rc = ERR_INVAL, n;

    *out = NULL;
    if (!ks || ks->n == 0 || !ks->keys[0].can_sign || !cJSON_IsObject(claims))
        return ERR_INVAL;
    k = &ks->keys[0];
    n = snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
                 jwt_alg_name(ks->sign_alg), k->kid);
    if (n < 0 || (size_t)n >= sizeof(header))
        return ERR_INTERNAL;
    hlen = (size_t)n;
    payload = cJSON_PrintUnformatted(claims);
    if (!payload) {
        rc = ERR_NOMEM;
        goto out;
    }
    plen = strlen(payload);
    if (plen > JWT_MAX_LEN) {
        rc = ERR_TOOBIG;
        goto out;
    }
    hb = CRYPTO_B64_LEN(hlen);
    pb = CRYPTO_B64_LEN(plen);
    total = hb + 1 + pb + 1 + CRYPTO_B64_LEN(ED25519_SIG_LEN);
    /* A token verify would refuse is not worth handing out. */
    if (total > JWT_MAX_LEN) {
        rc = ERR_TOOBIG;
        goto out;
    }
    tok = malloc(total + 1);
    if (!tok) {
        rc = ERR_NOMEM;
        goto out;
    }
    rc = crypto_b64url_encode(header, hlen, tok, total + 1, &w);
    if (rc != ERR_OK)
        goto out;
    o = w;
    tok[o++] = '.';
    rc = crypto_b64url_encode(payload, plen, tok + o, total + 1 - o, &w);
    if (rc != ERR_OK)
        goto out;
    o += w;
    rc = ERR_INTERNAL;
    md = EVP_MD_CTX_new();
    if (!md || EVP_DigestSignInit(md, NULL, NULL, NULL, k->pkey) != 1 ||
        EVP_DigestSign(md, sig, &siglen, (const unsigned char *)tok, o) != 1 ||
        siglen != ED25519_SIG_LEN)
        goto out;
    tok[o++] = '.';
    rc = crypto_b64url_encode(sig, siglen, tok + o, total + 1 - o, NULL);
    if (rc != ERR_OK)
        goto out;
    *out = tok;
    tok = NULL;
out:
    EVP_MD_CTX_free(md);
    cJSON_free(payload);
    free(tok);
    ERR_clear_error();
    return rc;
}

/* ---- verify ----------------------------------------------------------- */

static cJSON *parse_part(const char *b64, size_t len, uint8_t *buf, size_t bufsz)
{
    size_t got = 0;
    cJSON *obj;

    if (len == 0 || crypto_b64url_decode(b64, len, buf, bufsz, &got) != ERR_OK)
        return NULL;
    obj = json_parse((const char *)buf, got, &JWT_JSON_LIMITS, NULL);
    if (obj && !cJSON_IsObject(obj)) {
        cJSON_Delete(obj);
        obj = NULL;
    }
    return obj;
}

static enum jwt_status check_header(const struct jwt_keyset *ks, const cJSON *h,
                                    const struct jwt_key **key)
{
    const char *alg = json_get_str(h, "alg");
    const cJSON *typ = cJSON_GetObjectItemCaseSensitive(h, "typ");
    const char *kid;

    /* Two names, one algorithm (RFC 9864 deprecates the polymorphic "EdDSA"
     * for "Ed25519"); Ed448 and everything else are refused here. */
    if (!alg || (strcmp(alg, "EdDSA") != 0 && strcmp(alg, "Ed25519") != 0))
        return JWT_BAD_ALG;
    if (cJSON_GetObjectItemCaseSensitive(h, "crit"))
        return JWT_BAD_CRIT;
    /* RFC 7515 says typ compares case-insensitively; RFC 9068 names at+jwt. */
    if (typ && (!cJSON_IsString(typ) ||
                (strcasecmp(typ->valuestring, "JWT") != 0 &&
                 strcasecmp(typ->valuestring, "at+jwt") != 0 &&
                 strcasecmp(typ->valuestring, "application/at+jwt") != 0)))
        return JWT_BAD_TYPE;
    kid = json_get_str(h, "kid");
    *key = kid ? keyset_find(ks, kid) : NULL;
    if (!*key)
        return JWT_UNKNOWN_KID;
    /* The loader admits only Ed25519 keys; this holds the line should a key
     * set ever be filled another way: no alg name reaches another key type. */
    if (EVP_PKEY_get_base_id((*key)->pkey) != EVP_PKEY_ED25519) {
        *key = NULL;
        return JWT_BAD_ALG;
    }
    return JWT_OK;
}

static bool nonempty_str(const cJSON *obj, const char *name)
{
    const char *s = json_get_str(obj, name);
    return s && *s;
}

static bool str_or_absent(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return !v || cJSON_IsString(v);
}

/* Reads an optional time claim: ERR_OK with *present set, or ERR_INVAL. */
static int time_claim(const cJSON *obj, const char *name, int64_t *v, bool *present)
{
    int rc = json_get_int(obj, name, 0, JWT_TIME_MAX, v);

    *present = rc == ERR_OK;
    return rc == ERR_NOTFOUND ? ERR_OK : rc;
}

static bool aud_matches(const cJSON *aud, const char *want)
{
    const cJSON *e;

    if (cJSON_IsString(aud))
        return strcmp(aud->valuestring, want) == 0;
    if (!cJSON_IsArray(aud))
        return false;
    cJSON_ArrayForEach(e, aud)
        if (cJSON_IsString(e) && strcmp(e->valuestring, want) == 0)
            return true;
    return false;
}

static enum jwt_status check_claims(const cJSON *c, const struct jwt_expect *x)
{
    int64_t expv = 0, nbf = 0, iat = 0, life, skew;
    bool has_exp, has_nbf, has_iat;
    const char *iss, *typ;

    if (time_claim(c, "exp", &expv, &has_exp) != ERR_OK || !has_exp ||
        time_claim(c, "nbf", &nbf, &has_nbf) != ERR_OK ||
        time_claim(c, "iat", &iat, &has_iat) != ERR_OK)
        return JWT_BAD_CLAIMS;
    if (!nonempty_str(c, "sub") || !nonempty_str(c, "org") || !nonempty_str(c, "jti") ||
        !str_or_absent(c, "role") || !str_or_absent(c, "mode"))
        return JWT_BAD_CLAIMS;

    if (x->now < 0 || x->now > JWT_TIME_MAX)
        return JWT_INTERNAL;
    skew = x->skew < 0 ? 0 : x->skew > JWT_SKEW_CAP ? JWT_SKEW_CAP : x->skew;
    life = x->max_lifetime > 0 ? x->max_lifetime : JWT_DEFAULT_MAX_LIFETIME;
    if (life > JWT_LIFETIME_CAP)
        life = JWT_LIFETIME_CAP;
    /* exp is bounded: a stolen signing key's long-lived tokens, or a bug that
     * mints them, do not outlive the configured lifetime. */
    if (expv - x->now > life + skew || (has_iat && expv - iat > life))
        return JWT_BAD_CLAIMS;
    if (x->now >= expv + skew)
        return JWT_EXPIRED;
    if ((has_nbf && nbf > x->now + skew) || (has_iat && iat > x->now + skew))
        return JWT_NOT_YET_VALID;

    iss = json_get_str(c, "iss");
    if (!x->iss || !iss || strcmp(iss, x->iss) != 0)
        return JWT_BAD_ISSUER;
    if (!x->aud || !aud_matches(cJSON_GetObjectItemCaseSensitive(c, "aud"), x->aud))
        return JWT_BAD_AUDIENCE;
    /* Other token kinds we might ever sign (invites, say) carry their own typ:
     * they must never pass as access tokens. */
    typ = json_get_str(c, "typ");
    if (cJSON_GetObjectItemCaseSensitive(c, "typ") && (!typ || strcmp(typ, "access") != 0))
        return JWT_BAD_TYPE;
    return JWT_OK;
}

/* The one place a token's Ed25519 signature is checked. A signature of any
 * length but 64 bytes is refused before OpenSSL sees it: EVP_DigestVerify
 * would refuse it too, but the length is ours to insist on (a truncated or
 * padded signature must never depend on a library's leniency). OpenSSL's
 * Ed25519 verify refuses S >= L (RFC 8032 §5.1.7); the Wycheproof vectors in
 * tests/unit/test_wycheproof.c hold this function to every such edge. */
enum jwt_status jwt_verify_signature(const struct jwt_key *key, const void *msg, size_t msglen,
                                     const uint8_t *sig, size_t siglen)
{
    EVP_MD_CTX *md = NULL;
    enum jwt_status st = JWT_BAD_SIGNATURE;

    if (!key || !key->pkey || (!msg && msglen > 0) || !sig)
        return JWT_INTERNAL;
    if (siglen != ED25519_SIG_LEN)
        return JWT_BAD_SIGNATURE;
    md = EVP_MD_CTX_new();
    if (!md || EVP_DigestVerifyInit(md, NULL, NULL, NULL, key->pkey) != 1) {
        st = JWT_INTERNAL;
        goto out;
    }
    /* EVP_DigestVerify takes no NULL message, even of length 0 */
    if (EVP_DigestVerify(md, sig, siglen, msglen ? msg : (const void *)"", msglen) == 1)
        st = JWT_OK;
out:
    EVP_MD_CTX_free(md);
    ERR_clear_error();
    return st;
}

enum jwt_status jwt_verify(const struct jwt_keyset *ks, const char *token, size_t len,
                           const struct jwt_expect *exp, cJSON **claims_out)
{
    const char *d1, *d2;
    const struct jwt_key *key = NULL;
    uint8_t buf[JWT_MAX_LEN];
    uint8_t sig[CRYPTO_B64_DECODED_MAX(JWT_MAX_LEN)];
    size_t hlen, plen, slen, siglen = 0, got = 0;
    cJSON *hdr = NULL, *claims = NULL;
    enum jwt_status st;

    if (claims_out)
        *claims_out = NULL;
    if (!ks || !exp)
        return JWT_INTERNAL;
    if (!token)
        return JWT_MALFORMED;
    if (len > JWT_MAX_LEN)
        return JWT_TOO_BIG;

    d1 = memchr(token, '.', len);
    d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
    if (!d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)))
        return JWT_MALFORMED;
    hlen = (size_t)(d1 - token);
    plen = (size_t)(d2 - d1 - 1);
    slen = len - (size_t)(d2 + 1 - token);

    hdr = parse_part(token, hlen, buf, sizeof(buf));
    if (!hdr)
        return JWT_MALFORMED;
    st = check_header(ks, hdr, &key);
    cJSON_Delete(hdr);
    if (st != JWT_OK)
        return st;

    /* Shape of payload and signature before any crypto; the payload's JSON is
     * parsed only once the signature has vouched for it. */
    if (plen == 0 || crypto_b64url_decode(d1 + 1, plen, buf, sizeof(buf), &got) != ERR_OK)
        return JWT_MALFORMED;
    if (crypto_b64url_decode(d2 + 1, slen, sig, sizeof(sig), &siglen) != ERR_OK)
        return JWT_MALFORMED;
    st = jwt_verify_signature(key, token, (size_t)(d2 - token), sig, siglen);
    if (st != JWT_OK)
        return st;

    claims = json_parse((const char *)buf, got, &JWT_JSON_LIMITS, NULL);
    if (!claims || !cJSON_IsObject(claims))
        st = JWT_MALFORMED;
    else
        st = check_claims(claims, exp);
    if (st == JWT_OK && claims_out) {
        *claims_out = claims;
        claims = NULL;
    }
    cJSON_Delete(claims);
    return st;
}

const char *jwt_status_str(enum jwt_status st)
{
    switch (st) {
    case JWT_OK: return "ok";
    case JWT_TOO_BIG: return "too_big";
    case JWT_MALFORMED: return "malformed";
    case JWT_BAD_ALG: return "bad_alg";
    case JWT_BAD_TYPE: return "bad_type";
    case JWT_UNKNOWN_KID: return "unknown_kid";
    case JWT_BAD_CRIT: return "bad_crit";
    case JWT_BAD_SIGNATURE: return "bad_signature";
    case JWT_EXPIRED: return "expired";
    case JWT_NOT_YET_VALID: return "not_yet_valid";
    case JWT_BAD_ISSUER: return "bad_issuer";
    case JWT_BAD_AUDIENCE: return "bad_audience";
    case JWT_BAD_CLAIMS: return "bad_claims";
    case JWT_INTERNAL: return "internal";
    }
    return "unknown";
}

const char *jwt_status_message(enum jwt_status st)
{
    switch (st) {
    case JWT_OK: return "the token is valid";
    case JWT_TOO_BIG: return "the token is too large";
    case JWT_MALFORMED: return "the token is not a well-formed JWT (header.payload.signature in base64url)";
    case JWT_BAD_ALG: return "the token is not signed with EdDSA, the only algorithm accepted";
    case JWT_BAD_TYPE: return "the token's header does not say it is a JWT";
    case JWT_UNKNOWN_KID: return "the token was signed with a key this deployment does not have";
    case JWT_BAD_CRIT: return "the token's header names extensions this server does not support";
    case JWT_BAD_SIGNATURE: return "the token's signature does not verify";
    case JWT_EXPIRED: return "the token has expired";
    case JWT_NOT_YET_VALID: return "the token is not valid yet";
    case JWT_BAD_ISSUER: return "the token was issued by someone else";
    case JWT_BAD_AUDIENCE: return "the token is meant for another audience";
    case JWT_BAD_CLAIMS: return "the token's claims are missing or of the wrong type";
    case JWT_INTERNAL: return "the token could not be checked";
    }
    return "the token is not valid";
}

/* ---- JWKS ------------------------------------------------------------- */

int jwt_jwks(const struct jwt_keyset *ks, char **out)
{
    cJSON *root = NULL, *keys, *jwk;
    char x[CRYPTO_B64_LEN(ED25519_PUB_LEN) + 1];
    char *printed = NULL;
    int rc = ERR_NOMEM;

    *out = NULL;
    if (!ks)
        return ERR_INVAL;
    root = cJSON_CreateObject();
    keys = root ? cJSON_AddArrayToObject(root, "keys") : NULL;
    if (!keys)
        goto out;
    for (size_t i = 0; i < ks->n; i++) {
        if (crypto_b64url_encode(ks->keys[i].pub, ED25519_PUB_LEN, x, sizeof(x), NULL) != ERR_OK) {
            rc = ERR_INTERNAL;
            goto out;
        }
        jwk = cJSON_CreateObject();
        if (!jwk)
            goto out;
        if (!cJSON_AddStringToObject(jwk, "kty", "OKP") ||
            !cJSON_AddStringToObject(jwk, "crv", "Ed25519") ||
            !cJSON_AddStringToObject(jwk, "x", x) ||
            !cJSON_AddStringToObject(jwk, "kid", ks->keys[i].kid) ||
            !cJSON_AddStringToObject(jwk, "alg", jwt_alg_name(ks->sign_alg)) ||
            !cJSON_AddStringToObject(jwk, "use", "sig") ||
            !cJSON_AddItemToArray(keys, jwk)) {
            cJSON_Delete(jwk);
            goto out;
        }
    }
    printed = cJSON_PrintUnformatted(root);
    if (!printed)
        goto out;
    /* Copied so every owned string of this module is released with free(),
     * whatever allocator hooks cJSON has been given. */
    *out = strdup(printed);
    rc = *out ? ERR_OK : ERR_NOMEM;
out:
    cJSON_free(printed);
    cJSON_Delete(root);
    return rc;
}
