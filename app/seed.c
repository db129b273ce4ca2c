/* The CSV seeding engine (seed 002): a seed folder's files, loaded through the
 * engine interface in one unit of work, so a bad row anywhere leaves nothing
 * behind and the error names file:line. A row whose key already exists is left
 * as it is: seeding twice changes nothing. Files, all optional:
 *   organizations.csv  id,name,slug,plan,platform    (platform: the platform's own org)
 *   users.csv          id,email,password,is_platform_admin   (dev passwords only)
 *   memberships.csv    org_id,user_id,role
 *   roles.csv          org_id,name,permissions                (space-separated)
 *   apps.csv           id,name,kind,base_url,status
 *   schemas.json       {"org_id", "mode", "services": {service: {resource: PUT schema body}}}
 *   <service>.<resource>.csv  id and field columns: the org's records of a resource
 *                      in schemas.json, cells cast strictly from text ("" = none) */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "app.h"
#include "core/csv.h"
#include "core/json.h"
#include "security/rbac.h"
#include "core/uuid.h"

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

    const char *platform = col(s, "platform");

    if ((rc = need_uuid(s, o.id, "id")) || (rc = copy(s, o.name, sizeof o.name, "name", true)) ||
        (rc = copy(s, o.slug, sizeof o.slug, "slug", true)) || (rc = copy(s, o.plan, sizeof o.plan, "plan", false)))
        return rc;
    if (strcmp(platform, "true") != 0 && strcmp(platform, "false") != 0 && platform[0] != '\0')
        return row_error(s, "column platform must be true or false");
    o.platform = strcmp(platform, "true") == 0;
    if (o.plan[0] == '\0')
        snprintf(o.plan, sizeof o.plan, "free");
    o.created_at = s->now;
    return tolerate(engine_org_create(s->e, &o));
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
    if (engine_user_get(s->e, u.id, &existing) == 0)
        return 0; /* already there: do not re-hash */
    if ((rc = email_seal(s->ring, &u, email)) != 0 || (rc = password_hash(pw, strlen(pw), s->cost, &phc)) != 0)
        return rc;
    snprintf(u.password_hash, sizeof u.password_hash, "%s", phc);
    free(phc);
    u.is_platform_admin = strcmp(admin, "true") == 0;
    u.created_at = s->now;
    u.email_verified_at = s->now; /* seeded accounts are the operator's: nobody to verify them */
    return tolerate(engine_user_create(s->e, &u));
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
    if (engine_org_get(s->e, &sc, &(struct eng_org){0}) != 0)
        return row_error(s, "org_id names no organization (seed organizations.csv first)");
    if (engine_role_get(s->e, &sc, m.role, &role) != 0)
        return row_error(s, "role names no role of that organization");
    if (engine_member_get(s->e, &sc, m.user_id, &existing) == 0)
        return 0;
    m.created_at = s->now;
    return engine_member_put(s->e, &sc, &m);
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
    /* seeding again brings a changed role's permissions up to the file */
    rc = engine_role_put(s->e, &sc, &ro, true);
    if (rc == ERR_CONFLICT && engine_builtin_role(ro.name) == NULL)
        rc = engine_role_put(s->e, &sc, &ro, false);
    return tolerate(rc);
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
    return tolerate(engine_app_create(s->e, &a));
}

struct seed_file {
    const char *name;
    const char *const *required;
    const char *const *optional;
    int (*load)(struct seeder *s);
};

static const char *const ORG_REQ[] = {"id", "name", "slug", NULL}, *const ORG_OPT[] = {"plan", "platform", NULL};
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

/* ---- the MicroService API's schemas and records ---------------------------- */

/* One cell of a record CSV as a value of f's type: Returns owned, or NULL with *why. */
static cJSON *cell_value(const struct eng_field *f, const char *cell, const char **why)
{
    cJSON *v, *str;

    *why = "does not fit the field's type";
    if (f->type == ENG_FT_STRING || f->type == ENG_FT_TEXT)
        v = cJSON_CreateString(cell);
    else if (f->type == ENG_FT_JSON || f->type == ENG_FT_VECTOR)
        v = json_parse(cell, strlen(cell), NULL, NULL);
    else {
        if ((str = cJSON_CreateString(cell)) == NULL)
            return NULL;
        v = eng_value_cast(str, ENG_FT_STRING, 0, f, why);
        cJSON_Delete(str);
    }
    if (v != NULL && eng_value_check(f, v, why) != 0) {
        cJSON_Delete(v);
        v = NULL;
    }
    return v;
}

static int load_record(struct seeder *s, const struct eng_scope *sc, const struct eng_resource *res)
{
    struct eng_record rec = {0};
    int rc;

    if ((rc = need_uuid(s, rec.id, "id")) != 0)
        return rc;
    rec.created_at = rec.updated_at = s->now;
    rec.version = 1;
    rec.expires_at = res->expire_after > 0 ? s->now + res->expire_after : 0;
    if ((rec.data = cJSON_CreateObject()) == NULL || (rec.bidx = cJSON_CreateObject()) == NULL) {
        eng_record_cleanup(&rec);
        return ERR_NOMEM;
    }
    for (int i = 0; rc == 0 && i < res->nfields; i++) {
        const struct eng_field *f = &res->fields[i];
        const char *cell = col(s, f->name), *why;
        cJSON *v = NULL;

        if (cell[0] != '\0' && (v = cell_value(f, cell, &why)) == NULL) {
            char msg[160];
            snprintf(msg, sizeof msg, "column %s %s", f->name, why);
            rc = row_error(s, msg);
        } else if (cell[0] == '\0' && f->def[0] != '\0') {
            v = cJSON_Parse(f->def);
        }
        if (rc == 0)
            rc = records_set_value(s->ring, sc, res->service, res->name, &rec, f, v);
        cJSON_Delete(v);
    }
    if (rc == 0)
        rc = tolerate(engine_record_create(s->e, sc, res->service, res->name, &rec));
    eng_record_cleanup(&rec);
    return rc;
}

static int load_records(struct seeder *s, const char *dir, const struct eng_scope *sc,
                        const struct eng_resource *res)
{
    static const char *const req[] = {"id", NULL};
    const char *opt[ENG_MAX_FIELDS + 1];
    char path[512], err[160];
    struct stat st;
    int rc;

    snprintf(path, sizeof path, "%s/%s.%s.csv", dir, res->service, res->name);
    if (stat(path, &st) != 0)
        return 0;
    for (int i = 0; i < res->nfields; i++)
        opt[i] = res->fields[i].name;
    opt[res->nfields] = NULL;
    if ((s->csv = csv_open_file(path, NULL, err)) == NULL) {
        snprintf(s->errstr, 256, "%s", err);
        return ERR_INVAL;
    }
    if ((rc = csv_header_check(s->csv, req, opt, err)) != 0)
        snprintf(s->errstr, 256, "%s", err);
    while (rc == 0 && (rc = csv_next(s->csv, &s->row)) == 1)
        if ((rc = load_record(s, sc, res)) != 0) {
            char msg[256];
            snprintf(msg, sizeof msg, "%s:%ld: %s", path, s->row.line,
                     rc == ERR_INVAL ? s->errstr : err_str(rc));
            snprintf(s->errstr, 256, "%s", msg);
        }
    if (rc < 0 && s->errstr[0] == '\0')
        snprintf(s->errstr, 256, "%s", csv_errstr(s->csv));
    csv_close(s->csv);
    s->csv = NULL;
    return rc < 0 ? rc : 0;
}

/* A resource already defined is left as it is (seeding twice changes nothing). */
static int load_resource(struct seeder *s, const char *dir, const struct eng_scope *sc, const char *service,
                         const cJSON *body, struct eng_resource *res)
{
    struct eng_rename *ren = malloc(sizeof *ren * ENG_MAX_FIELDS);
    cJSON *details = cJSON_CreateObject();
    size_t nren = 0;
    int rc = 0;

    if (ren == NULL || details == NULL) {
        rc = ERR_NOMEM;
    } else if (engine_resource_get(s->e, sc, service, body->string, res) != 0) {
        if (!svc_name_ok(body->string) || !cJSON_IsObject(body) ||
            !svc_schema_parse(body, service, body->string, res, ren, &nren, details)) {
            char *d = cJSON_PrintUnformatted(details);
            snprintf(s->errstr, 256, "schemas.json: %s/%s: %s", service, body->string, d != NULL ? d : "invalid");
            cJSON_free(d);
            rc = ERR_INVAL;
        } else if ((rc = engine_resource_put(s->e, sc, res, NULL, 0, s->now, NULL, NULL)) != 0) {
            snprintf(s->errstr, 256, "schemas.json: %s/%s: %s", service, body->string, s->e->errstr);
        }
    }
    if (rc == 0)
        rc = load_records(s, dir, sc, res);
    cJSON_Delete(details);
    free(ren);
    return rc;
}

static int load_schemas(struct seeder *s, const char *dir)
{
    char path[512], *text = NULL;
    const cJSON *svc, *body, *org, *mode;
    struct eng_resource *res = NULL;
    struct eng_scope sc = {0};
    cJSON *root = NULL;
    struct stat st;
    FILE *fp;
    int rc = ERR_INVAL;

    snprintf(path, sizeof path, "%s/schemas.json", dir);
    if (stat(path, &st) != 0)
        return 0;
    if (st.st_size > (1 << 20) || (fp = fopen(path, "rb")) == NULL) {
        snprintf(s->errstr, 256, "%s: unreadable or over 1 MiB", path);
        return ERR_INVAL;
    }
    text = malloc((size_t)st.st_size + 1);
    if (text != NULL && fread(text, 1, (size_t)st.st_size, fp) == (size_t)st.st_size)
        root = json_parse(text, (size_t)st.st_size, NULL, NULL);
    fclose(fp);
    free(text);
    org = cJSON_GetObjectItemCaseSensitive(root, "org_id");
    mode = cJSON_GetObjectItemCaseSensitive(root, "mode");
    if (!cJSON_IsString(org) || !uuid_valid(org->valuestring) ||
        !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(root, "services")) ||
        (mode != NULL && (!cJSON_IsString(mode) || engine_mode_parse(mode->valuestring) < 0))) {
        snprintf(s->errstr, 256, "%s: want {\"org_id\": uuid, \"mode\": \"test\"|\"live\", \"services\": {…}}", path);
        goto out;
    }
    scope_of(s, org->valuestring, &sc);
    sc.mode = mode != NULL ? engine_mode_parse(mode->valuestring) : ENG_MODE_TEST;
    if ((res = malloc(sizeof *res)) == NULL) {
        rc = ERR_NOMEM;
        goto out;
    }
    rc = 0;
    cJSON_ArrayForEach(svc, cJSON_GetObjectItemCaseSensitive(root, "services")) {
        struct eng_app a;
        if (engine_app_get(s->e, svc->string, &a) != 0 || strcmp(a.kind, "microservice") != 0) {
            snprintf(s->errstr, 256, "%s: %s is not a registered microservice (apps.csv)", path, svc->string);
            rc = ERR_INVAL;
            break;
        }
        cJSON_ArrayForEach(body, svc) if (rc == 0) rc = load_resource(s, dir, &sc, svc->string, body, res);
        if (rc != 0)
            break;
    }
out:
    free(res);
    cJSON_Delete(root);
    return rc;
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
    if ((rc = load_schemas(&s, dir)) != 0) {
        engine_rollback(e);
        return rc;
    }
    if ((rc = engine_commit(e)) != 0)
        snprintf(errstr, 256, "seed: commit: %s", e->errstr);
    return rc;
}
