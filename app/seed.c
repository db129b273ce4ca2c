/* The CSV seeding engine (seed 002): a seed folder's files, loaded through the
 * engine interface in one unit of work, so a bad row anywhere leaves nothing
 * behind and the error names file:line. A row whose key already exists is left
 * as it is: seeding twice changes nothing. Files, all optional:
 *   organizations.csv  id,name,slug,plan
 *   users.csv          id,email,password,is_platform_admin   (dev passwords only)
 *   memberships.csv    org_id,user_id,role
 *   roles.csv          org_id,name,permissions                (space-separated)
 *   apps.csv           id,name,kind,base_url,status */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "app.h"
#include "csv.h"
#include "rbac.h"
#include "uuid.h"

struct seeder {
    struct engine *e;
    const struct crypto_keyring *ring;
    const struct password_cost *cost;
    struct csv_reader *csv;
    struct csv_row row;
    char *errstr;
    int64_t now;
};

/* Says what is wrong with the current row; load_file puts file:line in front. */
static int row_error(struct seeder *s, const char *msg)
{
    snprintf(s->errstr, 256, "%s", msg);
    return ERR_INVAL;
}

static const char *col(struct seeder *s, const char *name)
{
    const char *v = csv_get(s->csv, &s->row, name);
    return v != NULL ? v : "";
}

static int copy(struct seeder *s, char *dst, size_t sz, const char *name, bool required)
{
    const char *v = col(s, name);

    if ((required && v[0] == '\0') || strlen(v) >= sz) {
        char msg[128];
        snprintf(msg, sizeof msg, "column %s is %s", name, v[0] == '\0' ? "empty" : "too long");
        return row_error(s, msg);
    }
    snprintf(dst, sz, "%s", v);
    return 0;
}

static int need_uuid(struct seeder *s, char *dst, const char *name)
{
    int rc = copy(s, dst, ENG_ID, name, true);
    if (rc == 0 && !uuid_valid(dst)) {
        char msg[96];
        snprintf(msg, sizeof msg, "column %s is not a lowercase uuid", name);
        return row_error(s, msg);
    }
    return rc;
}

static int scope_of(struct seeder *s, const char *org_id, struct eng_scope *sc)
{
    memset(sc, 0, sizeof *sc);
    snprintf(sc->org_id, sizeof sc->org_id, "%s", org_id);
    sc->mode = ENG_MODE_TEST;
    return 0;
}

/* Conflicts mean "already seeded": idempotence without a read-modify-write. */
static int tolerate(int rc)
{
    return rc == ERR_CONFLICT ? 0 : rc;
}

static int load_org(struct seeder *s)
{
    struct eng_org o = {0};
    int rc;

    if ((rc = need_uuid(s, o.id, "id")) || (rc = copy(s, o.name, sizeof o.name, "name", true)) ||
        (rc = copy(s, o.slug, sizeof o.slug, "slug", true)) || (rc = copy(s, o.plan, sizeof o.plan, "plan", false)))
        return rc;
    if (o.plan[0] == '\0')
        snprintf(o.plan, sizeof o.plan, "free");
    o.created_at = s->now;
    return tolerate(s->e->ops->org_create(s->e, &o));
}

static int load_user(struct seeder *s)
{
    struct eng_user u = {0}, existing;
    char email[256], *phc = NULL;
    const char *pw = col(s, "password"), *admin = col(s, "is_platform_admin");
    int rc;

    if ((rc = need_uuid(s, u.id, "id")) != 0)
        return rc;
    if (email_normalize(col(s, "email"), email, sizeof email) != 0)
        return row_error(s, "column email is not a valid email address");
    if (strlen(pw) < 8)
        return row_error(s, "column password must be at least 8 characters");
    if (strcmp(admin, "true") != 0 && strcmp(admin, "false") != 0 && admin[0] != '\0')
        return row_error(s, "column is_platform_admin must be true or false");
    if (s->e->ops->user_get(s->e, u.id, &existing) == 0)
        return 0; /* already there: do not re-hash */
    if ((rc = email_seal(s->ring, &u, email)) != 0 || (rc = password_hash(pw, strlen(pw), s->cost, &phc)) != 0)
        return rc;
    snprintf(u.password_hash, sizeof u.password_hash, "%s", phc);
    free(phc);
    u.is_platform_admin = strcmp(admin, "true") == 0;
    u.created_at = s->now;
    return tolerate(s->e->ops->user_create(s->e, &u));
}

static int load_membership(struct seeder *s)
{
    struct eng_membership m = {0}, existing;
    struct eng_scope sc;
    struct eng_role role;
    int rc;

    if ((rc = need_uuid(s, m.org_id, "org_id")) || (rc = need_uuid(s, m.user_id, "user_id")) ||
        (rc = copy(s, m.role, sizeof m.role, "role", true)))
        return rc;
    scope_of(s, m.org_id, &sc);
    if (s->e->ops->org_get(s->e, &sc, &(struct eng_org){0}) != 0)
        return row_error(s, "org_id names no organization (seed organizations.csv first)");
    if (s->e->ops->role_get(s->e, &sc, m.role, &role) != 0)
        return row_error(s, "role names no role of that organization");
    if (s->e->ops->member_get(s->e, &sc, m.user_id, &existing) == 0)
        return 0;
    m.created_at = s->now;
    return s->e->ops->member_put(s->e, &sc, &m);
}

static int load_role(struct seeder *s)
{
    struct eng_role ro = {0};
    struct eng_scope sc;
    char perms[ENG_MAX_PERMS * ENG_PERM];
    int rc;

    if ((rc = need_uuid(s, ro.org_id, "org_id")) || (rc = copy(s, ro.name, sizeof ro.name, "name", true)) ||
        (rc = copy(s, perms, sizeof perms, "permissions", true)))
        return rc;
    for (char *save = NULL, *t = strtok_r(perms, " ", &save); t != NULL; t = strtok_r(NULL, " ", &save)) {
        if (!rbac_valid(t) || ro.nperms == ENG_MAX_PERMS)
            return row_error(s, "column permissions holds an invalid permission");
        snprintf(ro.perms[ro.nperms++], ENG_PERM, "%s", t);
    }
    scope_of(s, ro.org_id, &sc);
    return tolerate(s->e->ops->role_put(s->e, &sc, &ro));
}

static int load_app(struct seeder *s)
{
    struct eng_app a = {0};
    int rc;

    if ((rc = need_uuid(s, a.id, "id")) || (rc = copy(s, a.name, sizeof a.name, "name", true)) ||
        (rc = copy(s, a.kind, sizeof a.kind, "kind", true)) ||
        (rc = copy(s, a.base_url, sizeof a.base_url, "base_url", false)) ||
        (rc = copy(s, a.status, sizeof a.status, "status", false)))
        return rc;
    if (a.status[0] == '\0')
        snprintf(a.status, sizeof a.status, "active");
    a.created_at = s->now;
    return tolerate(s->e->ops->app_create(s->e, &a));
}

struct seed_file {
    const char *name;
    const char *const *required;
    const char *const *optional;
    int (*load)(struct seeder *s);
};

static const char *const ORG_REQ[] = {"id", "name", "slug", NULL}, *const ORG_OPT[] = {"plan", NULL};
static const char *const USER_REQ[] = {"id", "email", "password", NULL},
                         *const USER_OPT[] = {"is_platform_admin", NULL};
static const char *const MEM_REQ[] = {"org_id", "user_id", "role", NULL};
static const char *const ROLE_REQ[] = {"org_id", "name", "permissions", NULL};
static const char *const APP_REQ[] = {"id", "name", "kind", NULL}, *const APP_OPT[] = {"base_url", "status", NULL};
static const char *const NONE[] = {NULL};

/* In dependency order: roles before the memberships that use them. */
static const struct seed_file FILES[] = {
    {"organizations.csv", ORG_REQ, ORG_OPT, load_org},
    {"users.csv", USER_REQ, USER_OPT, load_user},
    {"roles.csv", ROLE_REQ, NONE, load_role},
    {"memberships.csv", MEM_REQ, NONE, load_membership},
    {"apps.csv", APP_REQ, APP_OPT, load_app},
};

static int load_file(struct seeder *s, const char *dir, const struct seed_file *f)
{
    char path[512], err[160];
    struct stat st;
    int rc;

    snprintf(path, sizeof path, "%s/%s", dir, f->name);
    if (stat(path, &st) != 0)
        return 0; /* every file is optional */
    if ((s->csv = csv_open_file(path, NULL, err)) == NULL) {
        snprintf(s->errstr, 256, "%s", err);
        return ERR_INVAL;
    }
    rc = csv_header_check(s->csv, f->required, f->optional, err);
    if (rc != 0)
        snprintf(s->errstr, 256, "%s", err);
    while (rc == 0 && (rc = csv_next(s->csv, &s->row)) == 1) {
        rc = f->load(s);
        if (rc != 0 && rc != ERR_INVAL) /* an engine failure, not a bad row: name the row anyway */
            snprintf(s->errstr, 256, "%s:%ld: %s", path, s->row.line, err_str(rc));
        else if (rc == ERR_INVAL) {
            char msg[256];
            snprintf(msg, sizeof msg, "%s:%ld: %s", path, s->row.line, s->errstr);
            snprintf(s->errstr, 256, "%s", msg);
        }
    }
    if (rc < 0 && s->errstr[0] == '\0')
        snprintf(s->errstr, 256, "%s", csv_errstr(s->csv));
    csv_close(s->csv);
    s->csv = NULL;
    return rc < 0 ? rc : 0;
}

int seed_load(struct engine *e, const struct crypto_keyring *ring, const struct password_cost *cost,
              const char *dir, char errstr[256])
{
    struct seeder s = {.e = e, .ring = ring, .cost = cost, .errstr = errstr, .now = (int64_t)time(NULL)};
    struct stat st;
    int rc;

    errstr[0] = '\0';
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(errstr, 256, "seed: %s is not a folder", dir);
        return ERR_INVAL;
    }
    if ((rc = engine_begin(e, NULL)) != 0) {
        snprintf(errstr, 256, "seed: %s", e->errstr);
        return rc;
    }
    for (size_t i = 0; i < sizeof FILES / sizeof FILES[0]; i++)
        if ((rc = load_file(&s, dir, &FILES[i])) != 0) {
            engine_rollback(e);
            return rc;
        }
    if ((rc = engine_commit(e)) != 0)
        snprintf(errstr, 256, "seed: commit: %s", e->errstr);
    return rc;
}
