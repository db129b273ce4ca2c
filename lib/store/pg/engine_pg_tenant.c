/* engine_pg_tenant: the PostgreSQL engine's tenant-scoped ops (org, members,
 * roles, api keys, refresh tokens, invites, audit) and the lookups of a
 * credential by its hash, on the helpers of engine_pg_int.h; the rules at the
 * top of engine_pg.c hold here too. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg/engine_pg_int.h"
#include "store/pg/engine_pg_records.h"
#include "store/pg/pg.h"

/* ---- bootstrap lookups -------------------------------------------------------- */

#define KEY_COLS                                                                     \
    "id, org_id, mode, name, prefix, key_hash, role, coalesce(created_by::text, ''), " \
    EPOCH("created_at") ", " EPOCH("revoked_at") ", platform"

static void key_row(const PGresult *r, int i, void *out)
{
    struct eng_api_key *k = out;

    memset(k, 0, sizeof *k);
    cpy(k->id, sizeof k->id, r, i, 0);
    cpy(k->org_id, sizeof k->org_id, r, i, 1);
    k->mode = engine_mode_parse(PQgetvalue(r, i, 2));
    cpy(k->name, sizeof k->name, r, i, 3);
    cpy(k->prefix, sizeof k->prefix, r, i, 4);
    cpy(k->key_hash, sizeof k->key_hash, r, i, 5);
    cpy(k->role, sizeof k->role, r, i, 6);
    cpy(k->created_by, sizeof k->created_by, r, i, 7);
    k->created_at = i64(r, i, 8);
    k->revoked_at = i64(r, i, 9);
    k->platform = flag(r, i, 10);
}

#define REFRESH_COLS                                                                   \
    "id, family_id, user_id, org_id, mode, token_hash, " EPOCH("created_at") ", "      \
    EPOCH("expires_at") ", " EPOCH("used_at") ", " EPOCH("revoked_at")

static void refresh_row(const PGresult *r, int i, void *out)
{
    struct eng_refresh *t = out;

    memset(t, 0, sizeof *t);
    cpy(t->id, sizeof t->id, r, i, 0);
    cpy(t->family_id, sizeof t->family_id, r, i, 1);
    cpy(t->user_id, sizeof t->user_id, r, i, 2);
    cpy(t->org_id, sizeof t->org_id, r, i, 3);
    t->mode = engine_mode_parse(PQgetvalue(r, i, 4));
    cpy(t->token_hash, sizeof t->token_hash, r, i, 5);
    t->created_at = i64(r, i, 6);
    t->expires_at = i64(r, i, 7);
    t->used_at = i64(r, i, 8);
    t->revoked_at = i64(r, i, 9);
}

#define INVITE_COLS                                                                    \
    "id, org_id, role, token_hash, coalesce(created_by::text, ''), " EPOCH("expires_at") \
    ", " EPOCH("used_at") ", coalesce(email_hmac, '')"

static void invite_row(const PGresult *r, int i, void *out)
{
    struct eng_invite *v = out;

    memset(v, 0, sizeof *v);
    cpy(v->id, sizeof v->id, r, i, 0);
    cpy(v->org_id, sizeof v->org_id, r, i, 1);
    cpy(v->role, sizeof v->role, r, i, 2);
    cpy(v->token_hash, sizeof v->token_hash, r, i, 3);
    cpy(v->created_by, sizeof v->created_by, r, i, 4);
    v->expires_at = i64(r, i, 5);
    v->used_at = i64(r, i, 6);
    cpy(v->email_hmac, sizeof v->email_hmac, r, i, 7);
}

/* A credential by its secret's hash, through a SECURITY DEFINER lookup (no org yet). */
int pg_api_key_resolve(struct engine *e, const char *key_hash, struct eng_api_key *out)
{
    return q_one(e, NULL, false, "SELECT " KEY_COLS " FROM core.api_key_resolve($1)", 1,
                 (const char *[]){key_hash}, "api key", key_row, out);
}

int pg_refresh_resolve(struct engine *e, const char *token_hash, struct eng_refresh *out)
{
    return q_one(e, NULL, false, "SELECT " REFRESH_COLS " FROM core.refresh_resolve($1)", 1,
                 (const char *[]){token_hash}, "refresh token", refresh_row, out);
}

int pg_invite_resolve(struct engine *e, const char *token_hash, struct eng_invite *out)
{
    return q_one(e, NULL, false, "SELECT " INVITE_COLS " FROM core.invite_resolve($1)", 1,
                 (const char *[]){token_hash}, "invite", invite_row, out);
}

/* ---- tenant-scoped: org, members ------------------------------------------------ */

static void org_row(const PGresult *r, int i, void *out)
{
    struct eng_org *o = out;

    memset(o, 0, sizeof *o);
    cpy(o->id, sizeof o->id, r, i, 0);
    cpy(o->name, sizeof o->name, r, i, 1);
    cpy(o->slug, sizeof o->slug, r, i, 2);
    cpy(o->plan, sizeof o->plan, r, i, 3);
    o->created_at = i64(r, i, 4);
    o->platform = flag(r, i, 5);
}

/* An org_row with its placement (core.org_placement; none: shared). */
static void org_placed_row(const PGresult *r, int i, void *out)
{
    struct eng_org *o = out;

    org_row(r, i, out);
    cpy(o->database, sizeof o->database, r, i, 6);
    o->moving = flag(r, i, 7);
}

/* The org with its placement in one statement: the principal carries both,
 * so a request learns where its org's data lives with no round trip of its
 * own (engine_pg_route). */
int pg_org_get(struct engine *e, const struct eng_scope *s, struct eng_org *out)
{
    return q_one(e, s, true,
                 "SELECT o.id, o.name, o.slug, o.plan, " EPOCH("o.created_at") ", o.is_platform, "
                 "coalesce(p.database, 'shared'), coalesce(p.moving, false) "
                 "FROM core.organizations o LEFT JOIN core.org_placement p ON p.org_id = o.id WHERE o.id = $1",
                 1, (const char *[]){s->org_id}, "org", org_placed_row, out);
}

/* Runs a write of the shape "WITH … SELECT <found>, <done>": two counts,
 * so one round trip says both whether what it needed exists and whether it wrote. */
static int q_counts(struct engine *e, const struct eng_scope *s, const char *sql, int n,
                    const char *const *vals, int64_t *found, int64_t *done)
{
    PGresult *r;
    int rc = q_any(e, s, true, true, sql, n, vals, &r);

    if (rc == 0 && PQntuples(r) != 1)
        rc = engine_fail(e, ERR_INTERNAL, "counts query returned %d rows", PQntuples(r));
    if (rc == 0) {
        *found = i64(r, 0, 0);
        *done = i64(r, 0, 1);
    }
    PQclear(r);
    return rc;
}

int pg_member_put(struct engine *e, const struct eng_scope *s, const struct eng_membership *m)
{
    struct ts at = ts(m->created_at);
    int64_t found, done;
    int rc;

    rc = q_counts(e, s,
                  "WITH u AS (SELECT 1 FROM core.users WHERE id = $2 "
                  "           AND EXISTS (SELECT 1 FROM core.organizations WHERE id = $1)), "
                  "ins AS (INSERT INTO core.memberships (org_id, user_id, role, created_at) "
                  "        SELECT $1, $2, $3, to_timestamp($4) FROM u "
                  "        ON CONFLICT (org_id, user_id) DO UPDATE SET role = EXCLUDED.role RETURNING 1) "
                  "SELECT (SELECT count(*) FROM u), (SELECT count(*) FROM ins)",
                  4, (const char *[]){s->org_id, m->user_id, m->role, at.s}, &found, &done);
    if (rc == 0 && found == 0)
        rc = engine_fail(e, ERR_NOTFOUND, "no such user or org");
    return rc;
}

int pg_member_get(struct engine *e, const struct eng_scope *s, const char *user_id,
                  struct eng_membership *out)
{
    return q_one(e, s, true, "SELECT " MEMBER_COLS " FROM core.memberships WHERE org_id = $1 AND user_id = $2",
                 2, (const char *[]){s->org_id, user_id}, "member", member_row, out);
}

int pg_member_list(struct engine *e, const struct eng_scope *s, struct eng_membership *out,
                   size_t max, size_t *n)
{
    struct ts lim = limit_of(max);

    *n = 0; /* a list starts empty (the wrapper checked n and out) */
    return q_list(e, s, true,
                  "SELECT " MEMBER_COLS " FROM core.memberships WHERE org_id = $1 "
                  "ORDER BY created_at, user_id LIMIT $2",
                  2, (const char *[]){s->org_id, lim.s}, member_row, out, sizeof *out, max, n);
}

int pg_member_remove(struct engine *e, const struct eng_scope *s, const char *user_id)
{
    return q_must(e, s, true, "DELETE FROM core.memberships WHERE org_id = $1 AND user_id = $2 RETURNING 1",
                  2, (const char *[]){s->org_id, user_id}, ERR_NOTFOUND, "no such member");
}

/* ---- tenant-scoped: api keys ------------------------------------------------------ */

int pg_api_key_create(struct engine *e, const struct eng_scope *s, const struct eng_api_key *k)
{
    struct ts at = ts(k->created_at);

    return q_must(e, s, true,
                  "INSERT INTO core.api_keys (id, org_id, mode, name, prefix, key_hash, role, created_by, "
                  "created_at, platform) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, to_timestamp($9), $10) "
                  "ON CONFLICT DO NOTHING RETURNING 1",
                  10,
                  (const char *[]){k->id, s->org_id, engine_mode_name(k->mode), k->name, k->prefix,
                                   k->key_hash, k->role, k->created_by[0] ? k->created_by : NULL, at.s,
                                   k->platform ? "t" : "f"},
                  ERR_CONFLICT, "api key id or hash taken");
}

int pg_api_key_list(struct engine *e, const struct eng_scope *s, struct eng_api_key *out,
                    size_t max, size_t *n)
{
    struct ts lim = limit_of(max);

    *n = 0; /* a list starts empty (the wrapper checked n and out) */
    return q_list(e, s, true,
                  "SELECT " KEY_COLS " FROM core.api_keys WHERE org_id = $1 AND mode = $2 "
                  "ORDER BY created_at DESC, id DESC LIMIT $3",
                  3, (const char *[]){s->org_id, engine_mode_name(s->mode), lim.s}, key_row, out, sizeof *out,
                  max, n);
}

int pg_api_key_revoke(struct engine *e, const struct eng_scope *s, const char *id, int64_t at)
{
    struct ts t = ts(at);

    /* Already revoked: unchanged, and still found (as the memory engine). */
    return q_must(e, s, true,
                  "UPDATE core.api_keys SET revoked_at = coalesce(revoked_at, to_timestamp($4)) "
                  "WHERE id = $1 AND org_id = $2 AND mode = $3 RETURNING 1",
                  4, (const char *[]){id, s->org_id, engine_mode_name(s->mode), t.s}, ERR_NOTFOUND,
                  "no such api key in this mode");
}

/* ---- tenant-scoped: refresh tokens and invites ---------------------------------- */

int pg_refresh_create(struct engine *e, const struct eng_scope *s, const struct eng_refresh *t)
{
    struct ts c = ts(t->created_at), x = ts(t->expires_at), u = ts(t->used_at), v = ts(t->revoked_at);
    int64_t found, done;
    int rc;

    rc = q_counts(e, s,
                  "WITH u AS (SELECT 1 FROM core.users WHERE id = $3), "
                  "ins AS (INSERT INTO core.refresh_tokens (id, family_id, user_id, org_id, mode, "
                  "        token_hash, created_at, expires_at, used_at, revoked_at) "
                  "        SELECT $1, $2, $3, $4, $5, $6, to_timestamp($7), to_timestamp($8), "
                  "               to_timestamp($9), to_timestamp($10) FROM u "
                  "        ON CONFLICT DO NOTHING RETURNING 1) "
                  "SELECT (SELECT count(*) FROM u), (SELECT count(*) FROM ins)",
                  10,
                  (const char *[]){t->id, t->family_id, t->user_id, s->org_id, engine_mode_name(t->mode),
                                   t->token_hash, c.s, x.s, ts_or_null(&u), ts_or_null(&v)},
                  &found, &done);
    if (rc == 0 && found == 0)
        rc = engine_fail(e, ERR_NOTFOUND, "no such user");
    else if (rc == 0 && done == 0)
        rc = engine_fail(e, ERR_CONFLICT, "refresh token id or hash taken");
    return rc;
}

/* Stamps a one-time row (an invite) of s's org as used; the
 * UPDATE's own condition makes two concurrent uses end with one winner, and
 * only a miss costs a second statement to tell "absent" from "already used". */
static int mark_used(struct engine *e, const struct eng_scope *s, const char *update, const char *probe,
                     const char *what, const char *id, int64_t at)
{
    struct ts t = ts(at);
    int rows, rc;

    if ((rc = q_rows(e, s, true, update, 3, (const char *[]){id, s->org_id, t.s}, &rows)) != 0 || rows > 0)
        return rc;
    if ((rc = q_rows(e, s, true, probe, 2, (const char *[]){id, s->org_id}, &rows)) != 0)
        return rc;
    return rows == 0 ? engine_fail(e, ERR_NOTFOUND, "no such %s", what) : engine_fail(e, ERR_CONFLICT, "%s already used", what);
}

/* A rotation's wipe of the grandparent's seal (the parent's parent, p's
 * parent_id), which can no longer be served once the parent is used; both
 * rotations' statements end with it. org: the org's parameter. */
#define WIPE_GRANDPARENT(org)                                                                       \
    "wipe AS (UPDATE core.refresh_tokens SET child_sealed = NULL WHERE org_id = " org " AND id IN " \
    "         (SELECT g.id FROM core.refresh_tokens g, p WHERE g.id = p.parent_id "                  \
    "          AND g.org_id = " org " AND g.child_sealed IS NOT NULL FOR UPDATE OF g SKIP LOCKED)), "

/* Rotation in one round trip when the parent is live and its user a member
 * (whose role comes back with it): the UPDATE's condition is the compare-and-set (a concurrent rotation holds the row's lock until it
 * commits; this one then re-reads the row, finds it used and matches
 * nothing), and the child's INSERT and the wipe of the grandparent's seal hang
 * on its RETURNING, so all three happen or none. The wipe skips a grandparent
 * another transaction holds (a replay of it, a revocation of the family):
 * waiting there, with this row locked, could close a cycle with a revocation
 * that locks the family's rows the other way round; a seal so left is never
 * served (its child is used now) and the revocation wipes it. Only a miss pays a second
 * round trip: the parent under FOR UPDATE (replays and reuse of it queue
 * behind one another until this transaction ends), then in a statement of its
 * own, whose snapshot is taken after that lock, the child its rotation made.
 * Both work through PgBouncer's transaction pooling: nothing outlives the
 * transaction. */
int pg_refresh_rotate(struct engine *e, const struct eng_scope *s, const char *parent_id,
                      const struct eng_refresh *child, const char *sealed, int64_t now,
                      int64_t reuse_interval, struct eng_rotation *out)
{
    struct ts c = ts(child->created_at), x = ts(child->expires_at), at = ts(now);
    struct eng_refresh parent, kept;
    PGresult *r = NULL, *res[3] = {NULL, NULL, NULL};
    int rc;

    memset(out, 0, sizeof *out);
    /* Outside the unit's explicit transaction when nothing began one: an
     * implicit transaction of its own, committed by its Sync (a rotation
     * whose answer is lost is what the reuse interval's replay is for). */
    rc = q_any(e, s, true, false,
               "WITH m AS (SELECT role FROM core.memberships WHERE org_id = $4 AND user_id = $3), "
               "p AS (UPDATE core.refresh_tokens SET used_at = to_timestamp($9), child_id = $1, "
               "           child_sealed = $11 "
               "         WHERE id = $10 AND org_id = $4 AND used_at IS NULL AND revoked_at IS NULL "
               "           AND family_id = $2 AND user_id = $3 AND mode = $5 AND EXISTS (SELECT 1 FROM m) "
               "         RETURNING parent_id), "
               "ins AS (INSERT INTO core.refresh_tokens (id, family_id, user_id, org_id, mode, token_hash, "
               "        created_at, expires_at, parent_id) "
               "        SELECT $1, $2, $3, $4, $5, $6, to_timestamp($7), to_timestamp($8), $10 FROM p "
               "        RETURNING 1), "
               WIPE_GRANDPARENT("$4")
               "sess AS (UPDATE core.sessions SET last_used_at = to_timestamp($9), expires_at = to_timestamp($8) "
               "         WHERE org_id = $4 AND id = $2 AND EXISTS (SELECT 1 FROM p)) "
               "SELECT (SELECT count(*) FROM p), (SELECT count(*) FROM ins), (SELECT role FROM m)",
               11,
               (const char *[]){child->id, child->family_id, child->user_id, s->org_id,
                                engine_mode_name(child->mode), child->token_hash, c.s, x.s, at.s, parent_id,
                                sealed},
               &r);
    if (rc != 0)
        return rc;
    if (PQntuples(r) != 1) {
        int rows = PQntuples(r);
        PQclear(r);
        return engine_fail(e, ERR_INTERNAL, "rotation returned %d rows", rows);
    }
    int64_t rotated = i64(r, 0, 0), inserted = i64(r, 0, 1);
    cpy(out->role, sizeof out->role, r, 0, 2); /* "" (NULL) when not a member: then nothing rotated */
    PQclear(r);
    if (rotated == 1) {
        if (inserted != 1)
            return engine_fail(e, ERR_INTERNAL, "rotation stored no child");
        out->outcome = ENG_ROTATE_NEW;
        return 0;
    }
    const char *const key[] = {parent_id, s->org_id};
    const struct pg_stmt st[3] = {
        {"SELECT " REFRESH_COLS ", coalesce(child_sealed, '') FROM core.refresh_tokens "
         "WHERE id = $1 AND org_id = $2 FOR UPDATE",
         2, key, true, false},
        {"SELECT " REFRESH_COLS " FROM core.refresh_tokens WHERE org_id = $2 AND id = "
         "(SELECT child_id FROM core.refresh_tokens WHERE id = $1 AND org_id = $2)",
         2, key, true, false},
        {"SELECT role FROM core.memberships WHERE org_id = $2 AND user_id = "
         "(SELECT user_id FROM core.refresh_tokens WHERE id = $1 AND org_id = $2)",
         2, key, true, false},
    };
    if ((rc = engine_pg_core(e, s, st, 3, res)) != 0)
        return rc;
    if (PQntuples(res[0]) == 0) {
        rc = engine_fail(e, ERR_NOTFOUND, "no such refresh token");
        goto out;
    }
    if (PQntuples(res[2]) == 0) { /* the member's check comes first, as on memory */
        out->outcome = ENG_ROTATE_NOT_MEMBER;
        goto out;
    }
    cpy(out->role, sizeof out->role, res[2], 0, 0);
    refresh_row(res[0], 0, &parent);
    if (parent.revoked_at != 0) {
        out->outcome = ENG_ROTATE_REVOKED;
        goto out;
    }
    if (parent.used_at == 0) { /* live, yet the compare-and-set missed: the child did not match */
        rc = engine_fail(e, ERR_INVAL, "the child is not the parent's successor");
        goto out;
    }
    bool kept_here = PQntuples(res[1]) == 1 && PQgetvalue(res[0], 0, 10)[0] != '\0';
    if (kept_here)
        refresh_row(res[1], 0, &kept);
    out->outcome = ENG_ROTATE_REUSE;
    if (eng_refresh_replayable(&parent, kept_here ? &kept : NULL, now, reuse_interval)) {
        if (strlen(PQgetvalue(res[0], 0, 10)) >= sizeof out->sealed) {
            rc = engine_fail(e, ERR_INTERNAL, "stored seal too long");
            goto out;
        }
        out->outcome = ENG_ROTATE_REPLAY;
        out->child = kept;
        snprintf(out->sealed, sizeof out->sealed, "%s", PQgetvalue(res[0], 0, 10));
    }
out:
    for (int i = 0; i < 3; i++)
        PQclear(res[i]);
    return rc;
}

/* The one-step rotation (lib/store/engine.h): the statement of
 * pg_refresh_rotate's first round trip with the parent found by its hash
 * instead of its id, so no resolve goes before it, and its family and user
 * read from its row. The rest is the same: the UPDATE's condition is the
 * compare-and-set (now with the expiry and the membership, joined, whose role
 * comes back), the child's INSERT, the wipe and the session's move hang on
 * its RETURNING. No row: nothing happened, for whatever reason. */
int pg_refresh_rotate_hash(struct engine *e, const struct eng_scope *s, const char *token_hash,
                           struct eng_refresh *child, const char *sealed, int64_t now, struct eng_rotation *out)
{
    struct ts x = ts(child->expires_at), at = ts(now);
    PGresult *r = NULL;
    int rc;

    memset(out, 0, sizeof *out);
    rc = q_any(e, s, true, false,
               "WITH p AS (UPDATE core.refresh_tokens t SET used_at = to_timestamp($5), child_id = $1, "
               "           child_sealed = $7 "
               "         FROM core.memberships m "
               "         WHERE t.token_hash = $8 AND t.org_id = $2 AND t.mode = $3 AND t.used_at IS NULL "
               "           AND t.revoked_at IS NULL AND t.expires_at > to_timestamp($5) "
               "           AND m.org_id = $2 AND m.user_id = t.user_id "
               "         RETURNING t.id, t.family_id, t.user_id, t.parent_id, m.role), "
               "ins AS (INSERT INTO core.refresh_tokens (id, family_id, user_id, org_id, mode, token_hash, "
               "        created_at, expires_at, parent_id) "
               "        SELECT $1, p.family_id, p.user_id, $2, $3, $4, to_timestamp($5), to_timestamp($6), p.id "
               "        FROM p RETURNING 1), "
               WIPE_GRANDPARENT("$2")
               "sess AS (UPDATE core.sessions ss SET last_used_at = to_timestamp($5), expires_at = to_timestamp($6) "
               "         FROM p WHERE ss.org_id = $2 AND ss.id = p.family_id) "
               "SELECT p.family_id, p.user_id, p.role, (SELECT count(*) FROM ins) FROM p",
               8,
               (const char *[]){child->id, s->org_id, engine_mode_name(s->mode), child->token_hash, at.s, x.s,
                                sealed, token_hash},
               &r);
    if (rc != 0)
        return rc;
    if (PQntuples(r) == 0)
        rc = engine_fail(e, ERR_NOTFOUND, "no live refresh token of this org by that hash");
    else if (PQntuples(r) != 1)
        rc = engine_fail(e, ERR_INTERNAL, "rotation returned %d rows", PQntuples(r));
    else if (i64(r, 0, 3) != 1)
        rc = engine_fail(e, ERR_INTERNAL, "rotation stored no child");
    else {
        cpy(child->family_id, sizeof child->family_id, r, 0, 0);
        cpy(child->user_id, sizeof child->user_id, r, 0, 1);
        cpy(out->role, sizeof out->role, r, 0, 2);
        out->outcome = ENG_ROTATE_NEW;
    }
    PQclear(r);
    return rc;
}

int pg_refresh_revoke_family(struct engine *e, const struct eng_scope *s, const char *family_id,
                             int64_t at)
{
    struct ts t = ts(at);
    int rows;

    return q_rows(e, s, true,
                  "WITH sess AS (UPDATE core.sessions SET revoked_at = to_timestamp($3) "
                  "              WHERE org_id = $1 AND id = $2 AND revoked_at IS NULL) "
                  "UPDATE core.refresh_tokens SET revoked_at = to_timestamp($3), child_sealed = NULL "
                  "WHERE org_id = $1 AND family_id = $2 AND revoked_at IS NULL",
                  3, (const char *[]){s->org_id, family_id, t.s}, &rows);
}

/* ---- sessions --------------------------------------------------------------------- */

#define SESSION_COLS                                                                          \
    "id, org_id, user_id, mode, user_agent, address, " EPOCH("created_at") ", " EPOCH("last_used_at") \
    ", " EPOCH("expires_at") ", " EPOCH("revoked_at")

static void session_row(const PGresult *r, int i, void *out)
{
    struct eng_session *ss = out;

    memset(ss, 0, sizeof *ss);
    cpy(ss->id, sizeof ss->id, r, i, 0);
    cpy(ss->org_id, sizeof ss->org_id, r, i, 1);
    cpy(ss->user_id, sizeof ss->user_id, r, i, 2);
    ss->mode = engine_mode_parse(PQgetvalue(r, i, 3));
    cpy(ss->user_agent, sizeof ss->user_agent, r, i, 4);
    cpy(ss->address, sizeof ss->address, r, i, 5);
    ss->created_at = i64(r, i, 6);
    ss->last_used_at = i64(r, i, 7);
    ss->expires_at = i64(r, i, 8);
    ss->revoked_at = i64(r, i, 9);
}

int pg_session_create(struct engine *e, const struct eng_scope *s, const struct eng_session *ss)
{
    struct ts c = ts(ss->created_at), u = ts(ss->last_used_at ? ss->last_used_at : ss->created_at),
              x = ts(ss->expires_at);

    return q_must(e, s, true,
                  "INSERT INTO core.sessions (id, org_id, user_id, mode, user_agent, address, created_at, "
                  "last_used_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, to_timestamp($7), to_timestamp($8), "
                  "to_timestamp($9)) ON CONFLICT DO NOTHING RETURNING 1",
                  9,
                  (const char *[]){ss->id, s->org_id, ss->user_id, engine_mode_name(ss->mode), ss->user_agent,
                                   ss->address, c.s, u.s, x.s},
                  ERR_CONFLICT, "session id taken");
}

int pg_session_list(struct engine *e, const char *user_id, int64_t now, struct eng_session *out, size_t max,
                    size_t *n)
{
    struct ts t = ts(now), lim = limit_of(max);

    *n = 0; /* a list starts empty (the wrapper checked n and out) */
    return q_list(e, NULL, false, "SELECT " SESSION_COLS " FROM core.user_sessions($1, $2::bigint) LIMIT $3", 3,
                  (const char *[]){user_id, t.s, lim.s}, session_row, out, sizeof *out, max, n);
}

int pg_session_revoke(struct engine *e, const char *user_id, const char *org_id, const char *family,
                      const char *except, int64_t at, char (*out)[ENG_ID], size_t max, size_t *n)
{
    struct ts t = ts(at);
    PGresult *r;
    int rc;

    *n = 0;
    if ((rc = q_any(e, NULL, false, true, "SELECT * FROM core.user_sessions_revoke($1, $2, $3, $4, $5::bigint)", 5,
                    (const char *[]){user_id, org_id[0] ? org_id : NULL, family[0] ? family : NULL,
                                     except[0] ? except : NULL, t.s},
                    &r)) != 0)
        return rc;
    for (int i = 0; i < PQntuples(r) && *n < max; i++)
        cpy(out[(*n)++], ENG_ID, r, i, 0);
    PQclear(r);
    return 0;
}

int pg_invite_create(struct engine *e, const struct eng_scope *s, const struct eng_invite *i)
{
    struct ts x = ts(i->expires_at), u = ts(i->used_at);

    return q_must(e, s, true,
                  "INSERT INTO core.invites (id, org_id, role, token_hash, created_by, expires_at, used_at, "
                  "email_hmac) VALUES ($1, $2, $3, $4, $5, to_timestamp($6), to_timestamp($7), $8) "
                  "ON CONFLICT DO NOTHING RETURNING 1",
                  8,
                  (const char *[]){i->id, s->org_id, i->role, i->token_hash,
                                   i->created_by[0] ? i->created_by : NULL, x.s, ts_or_null(&u),
                                   i->email_hmac[0] ? i->email_hmac : NULL},
                  ERR_CONFLICT, "invite id or hash taken");
}

int pg_invite_mark_used(struct engine *e, const struct eng_scope *s, const char *id, int64_t at)
{
    return mark_used(e, s,
                     "UPDATE core.invites SET used_at = to_timestamp($3) "
                     "WHERE id = $1 AND org_id = $2 AND used_at IS NULL RETURNING 1",
                     "SELECT 1 FROM core.invites WHERE id = $1 AND org_id = $2", "invite", id, at);
}

/* ---- tenant-scoped: audit ----------------------------------------------------------- */

int pg_audit_append(struct engine *e, const struct eng_scope *s, const struct eng_audit *a)
{
    struct ts at = ts(a->created_at);

    return q_must(e, s, true,
                  "INSERT INTO core.audit_log (id, org_id, actor, action, target, meta, created_at) "
                  "VALUES ($1, $2, $3, $4, $5, $6::jsonb, to_timestamp($7)) ON CONFLICT DO NOTHING RETURNING 1",
                  7,
                  (const char *[]){a->id, s->org_id, a->actor, a->action, a->target,
                                   a->meta[0] ? a->meta : "{}", at.s},
                  ERR_CONFLICT, "audit id taken");
}

static void audit_row(const PGresult *r, int i, void *out)
{
    struct eng_audit *a = out;

    memset(a, 0, sizeof *a);
    cpy(a->id, sizeof a->id, r, i, 0);
    cpy(a->org_id, sizeof a->org_id, r, i, 1);
    cpy(a->actor, sizeof a->actor, r, i, 2);
    cpy(a->action, sizeof a->action, r, i, 3);
    cpy(a->target, sizeof a->target, r, i, 4);
    cpy(a->meta, sizeof a->meta, r, i, 5);
    a->created_at = i64(r, i, 6);
}

int pg_audit_list(struct engine *e, const struct eng_scope *s, const char *before_id,
                  struct eng_audit *out, size_t max, size_t *n)
{
    struct ts lim = limit_of(max);
    bool bound = before_id != NULL && before_id[0] != '\0';

    *n = 0; /* a list starts empty (the wrapper checked n and out) */
#define AUDIT_SELECT \
    "SELECT id, org_id, actor, action, target, meta::text, " EPOCH("created_at") " FROM core.audit_log "
    /* before_id: a uuid (the wrapper checked it); $3 unused without it */
    return q_list(e, s, true,
                  bound ? AUDIT_SELECT "WHERE org_id = $1 AND id < $3::uuid ORDER BY id DESC LIMIT $2"
                        : AUDIT_SELECT "WHERE org_id = $1 ORDER BY id DESC LIMIT $2",
                  bound ? 3 : 2, (const char *[]){s->org_id, lim.s, before_id}, audit_row, out, sizeof *out,
                  max, n);
#undef AUDIT_SELECT
}

