/* The MicroService API's records (DESIGN §5, issue 6): create, get, patch,
 * delete and list with filters, order and a keyset cursor.
 *
 * Everything the client sends is checked against the resource's schema here,
 * and handed to the engine as typed data (struct eng_query: filters are data,
 * never text spliced into a query). Permissions are records:read|write|delete
 * on "service/resource". The org comes from the token only; another org's id
 * is simply not found.
 *
 * PII fields are sealed here (AES-256-GCM, AAD org|service|resource|id|field,
 * so a ciphertext moved to another record does not open) with a blind index
 * that is bound to the same org, service, resource and field: equal values of
 * two tenants do not share an index. Only eq (on the index) and is.null filter
 * them; they cannot be ordered by.
 *
 * The list's language (filters, order, the signed keyset cursor) is
 * lib/store/listq's: records_listq hands it the request's arena, the blind
 * index under the caller's org, and the cursor key and binding (org,
 * service, resource, mode); a cursor altered, forged or replayed on another
 * query is a 400. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "security/crypto.h"
#include "core/json.h"
#include "core/rfc3339.h"
#include "security/rbac.h"
#include "store/listq.h"
#include "core/uuid.h"

#define LIMIT_DEFAULT 20
#define LIMIT_MAX 100

int records_open(struct worker *w, struct http_request *r, const struct principal *p,
                         const char *action, struct records_ctx *c)
{
    int rc;

    c->service = router_param(&r->match, "service");
    c->resource = router_param(&r->match, "resource");
    if ((c->res = arena_alloc(r->arena, sizeof *c->res)) == NULL)
        return ERR_NOMEM;
    /* schemas are no secret (GET …/schema shows them to any member): a
     * resource that does not exist is a 404 before the permission is asked */
    if ((rc = svc_open(w, r, p, c->service, c->resource, strcmp(action, "records:read") != 0, c->res)) != 0)
        return rc;
    snprintf(c->object, sizeof c->object, "%s/%s", c->service, c->resource);
    if (!rbac_allows(p->perms.perms, p->perms.nperms, action, c->object)) {
        respond_error(r, ERR_FORBIDDEN, arena_printf(r->arena, "your role does not allow %s", action));
        return ERR_FORBIDDEN;
    }
    return 0;
}

static int aad_of(const struct eng_scope *s, const char *service, const char *resource, const char *id,
                  const char *field, char *buf, size_t sz)
{
    int n = snprintf(buf, sz, "%s|%s|%s|%s|%s", s->org_id, service, resource, id, field);

    return n > 0 && (size_t)n < sz ? n : -1;
}

static int bidx_of(const struct crypto_keyring *ring, const struct eng_scope *s, const char *service,
                   const char *resource, const char *field, const char *value, char out[ENG_HASH])
{
    size_t n = strlen(s->org_id) + strlen(service) + strlen(resource) + strlen(field) + strlen(value) + 8;
    char *buf = malloc(n);
    int rc;

    if (buf == NULL)
        return ERR_NOMEM;
    snprintf(buf, n, "%s\n%s\n%s\n%s\n%s", s->org_id, service, resource, field, value);
    rc = crypto_blind_index(ring, buf, out);
    free(buf);
    return rc;
}

int records_set_value(const struct crypto_keyring *ring, const struct eng_scope *s, const char *service,
                      const char *resource, struct eng_record *rec, const struct eng_field *f, const cJSON *v)
{
    char aad[512], hex[ENG_HASH];
    char *sealed = NULL;
    cJSON *nv;
    int rc, n;

    cJSON_DeleteItemFromObjectCaseSensitive(rec->data, f->name);
    cJSON_DeleteItemFromObjectCaseSensitive(rec->bidx, f->name);
    if (v == NULL || cJSON_IsNull(v))
        return 0;
    if (!f->pii) {
        nv = cJSON_Duplicate(v, true);
        return nv != NULL && cJSON_AddItemToObject(rec->data, f->name, nv) ? 0 : ERR_NOMEM;
    }
    if (!cJSON_IsString(v) || (n = aad_of(s, service, resource, rec->id, f->name, aad, sizeof aad)) < 0)
        return ERR_INVAL;
    if ((rc = crypto_seal_text(ring, aad, (size_t)n, v->valuestring, strlen(v->valuestring), &sealed)) != 0 ||
        (rc = bidx_of(ring, s, service, resource, f->name, v->valuestring, hex)) != 0) {
        free(sealed);
        return rc;
    }
    nv = cJSON_CreateString(sealed);
    free(sealed);
    if (nv == NULL || !cJSON_AddItemToObject(rec->data, f->name, nv) ||
        cJSON_AddStringToObject(rec->bidx, f->name, hex) == NULL)
        return ERR_NOMEM;
    return 0;
}

cJSON *records_json(struct worker *w, const struct principal *p, const struct records_ctx *c,
                          const struct eng_record *rec)
{
    cJSON *o = cJSON_CreateObject();

    if (o == NULL)
        return NULL;
    cJSON_AddStringToObject(o, "id", rec->id);
    json_add_time(o, "created_at", rec->created_at);
    json_add_time(o, "updated_at", rec->updated_at);
    cJSON_AddNumberToObject(o, "version", (double)rec->version);
    if (rec->expires_at != 0)
        json_add_time(o, "expires_at", rec->expires_at);
    for (int i = 0; i < c->res->nfields; i++) {
        const struct eng_field *f = &c->res->fields[i];
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec->data, f->name);
        cJSON *out = NULL;

        if (v == NULL || cJSON_IsNull(v)) {
            out = cJSON_CreateNull();
        } else if (f->pii) {
            char aad[512];
            uint8_t *pt = NULL;
            size_t ptlen;
            int n = aad_of(&p->scope, c->service, c->resource, rec->id, f->name, aad, sizeof aad);
            if (n > 0 && cJSON_IsString(v) &&
                crypto_open_text(&w->ring, aad, (size_t)n, v->valuestring, strlen(v->valuestring), &pt,
                                 &ptlen) == 0)
                out = cJSON_CreateString((const char *)pt);
            else
                out = cJSON_CreateNull();   /* a key retired too early: never the ciphertext */
            free(pt);
        } else if (f->type == ENG_FT_TIMESTAMP && cJSON_IsNumber(v)) {
            char t[RFC3339_LEN + 1];
            rfc3339_format((int64_t)v->valuedouble, t); /* stored as unix seconds */
            out = cJSON_CreateString(t);
        } else {
            out = cJSON_Duplicate(v, true);
        }
        cJSON_AddItemToObject(o, f->name, out);
    }
    return o;
}

/* ---- the read cache (caching.c): records as stored, pii sealed -------------- */

/* A write to c's resource: its org's cached reads in this mode are bumped
 * after the commit; its views' too when it has some, since a cached view
 * says how far behind the writes it is (the projector bumps them again once
 * it has applied the write). */
static void touch_records(struct worker *w, const struct principal *p, const struct records_ctx *c)
{
    struct caching_ns ns;

    if (caching_ns_records(&ns, &p->scope, c->service, c->resource) == 0)
        caching_touch(w, &ns);
    if (c->res->views[0] != '\0' && caching_ns_views(&ns, &p->scope, c->service, c->resource) == 0)
        caching_touch(w, &ns);
}

/* A record as the engine gave it (pii still sealed: never plaintext in the
 * cache), without its blind indexes, which no read shows. */
static cJSON *stored_json(const struct eng_record *rec)
{
    cJSON *o = cJSON_CreateObject();

    if (o == NULL || cJSON_AddStringToObject(o, "id", rec->id) == NULL ||
        cJSON_AddNumberToObject(o, "v", (double)rec->version) == NULL ||
        cJSON_AddNumberToObject(o, "c", (double)rec->created_at) == NULL ||
        cJSON_AddNumberToObject(o, "u", (double)rec->updated_at) == NULL ||
        cJSON_AddNumberToObject(o, "e", (double)rec->expires_at) == NULL ||
        !cJSON_AddItemToObject(o, "data", rec->data != NULL ? cJSON_Duplicate(rec->data, true) : cJSON_CreateObject())) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* The record of a cached form (data borrowed from o); ERR_INVAL if it is not one. */
static int stored_parse(const cJSON *o, struct eng_record *rec)
{
    const char *id = json_get_str(o, "id");
    cJSON *data = cJSON_GetObjectItemCaseSensitive(o, "data");

    memset(rec, 0, sizeof *rec);
    if (id == NULL || !uuid_valid(id) || !cJSON_IsObject(data) ||
        json_get_int(o, "v", 1, INT64_MAX, &rec->version) != 0 ||
        json_get_int(o, "c", 0, INT64_MAX, &rec->created_at) != 0 ||
        json_get_int(o, "u", 0, INT64_MAX, &rec->updated_at) != 0 ||
        json_get_int(o, "e", 0, INT64_MAX, &rec->expires_at) != 0)
        return ERR_INVAL;
    snprintf(rec->id, sizeof rec->id, "%s", id);
    rec->data = data;
    return 0;
}

/* Renders what a loader read into out; takes the records' trees. */
static int stored_put(struct eng_record *recs, size_t n, bool one, struct buf *out)
{
    cJSON *root = one ? NULL : cJSON_CreateArray();
    char *text = NULL;
    int rc = ERR_NOMEM;

    for (size_t i = 0; i < n; i++) {
        cJSON *o = stored_json(&recs[i]);
        if (o == NULL)
            goto out;
        if (one)
            root = o;
        else if (root == NULL || !cJSON_AddItemToArray(root, o)) {
            cJSON_Delete(o);
            goto out;
        }
    }
    if (root != NULL && (text = json_print(root)) != NULL) /* numbers exact (lib/core/json) */
        rc = buf_puts(out, text);
out:
    for (size_t i = 0; i < n; i++)
        eng_record_cleanup(&recs[i]);
    cJSON_Delete(root);
    free(text);
    return rc;
}

struct read_ctx {
    struct worker *w;
    const struct principal *p;
    const struct records_ctx *c;
    const char *id;             /* a get's; NULL for a list */
    struct eng_query *q;
    size_t max;
};

static int load_get(void *ctx, struct buf *out, bool *found)
{
    struct read_ctx *x = ctx;
    struct eng_record rec;
    int rc = engine_record_get(x->w->engine, &x->p->scope, x->c->service, x->c->resource, x->id,
                               (int64_t)time(NULL), &rec);

    if (rc == ERR_NOTFOUND)
        return 0; /* a cached 404 */
    if (rc != 0)
        return rc;
    *found = true;
    return stored_put(&rec, 1, true, out);
}

static int load_list(void *ctx, struct buf *out, bool *found)
{
    struct read_ctx *x = ctx;
    struct eng_record *recs = calloc(x->max, sizeof *recs);
    size_t n = 0;
    int rc;

    if (recs == NULL)
        return ERR_NOMEM;
    rc = engine_record_list(x->w->engine, &x->p->scope, x->c->service, x->c->resource, x->q, recs, x->max, &n);
    if (rc == 0) {
        *found = true;
        rc = stored_put(recs, n, false, out);
    }
    free(recs);
    return rc;
}

/* Serves a read of namespace ns from the cache or its loader; the text, owned by the request, in *text. */
static int cached_read_ns(struct worker *w, struct http_request *r, const struct caching_ns *ns, int ns_rc,
                          const char *suffix, cache_load_fn load, void *x, const char **text, bool *found)
{
    struct buf out;
    struct caching_read rd = {.ns = ns, .suffix = suffix, .load = load, .ctx = x, .out = &out};
    int rc;

    buf_init(&out, (size_t)w->cfg->http.max_body_kb * 1024 * 4);
    if (ns_rc != 0 || caching_fetch(w, &rd, 1, NULL, 0, NULL, NULL) != 0)
        rd.ver = -1; /* fail open: caching_finish loads */
    rc = caching_finish(w, &rd);
    caching_read_cleanup(&rd);
    *found = rd.found;
    *text = NULL;
    if (rc == 0 && rd.found && (*text = arena_strndup(r->arena, out.p != NULL ? out.p : "", out.len)) == NULL)
        rc = ERR_NOMEM;
    buf_cleanup(&out);
    return rc;
}

/* A read of c's records. */
static int cached_read(struct worker *w, struct http_request *r, const struct principal *p, const struct records_ctx *c,
                       const char *suffix, cache_load_fn load, struct read_ctx *x, const char **text, bool *found)
{
    struct caching_ns ns;
    int ns_rc = caching_ns_records(&ns, &p->scope, c->service, c->resource);

    return cached_read_ns(w, r, &ns, ns_rc, suffix, load, x, text, found);
}

/* A timestamp field's RFC 3339 text in a body becomes the unix seconds it is
 * stored as (filters, order and views compare those); anything else is left
 * for body_value_ok to judge. */
static int body_times(const struct records_ctx *c, cJSON *body)
{
    cJSON *v, *next;

    for (v = body->child; v != NULL; v = next) {
        const struct eng_field *f = eng_resource_field(c->res, v->string);
        int64_t t;
        next = v->next;
        if (f != NULL && f->type == ENG_FT_TIMESTAMP && cJSON_IsString(v) && rfc3339_parse(v->valuestring, &t)) {
            cJSON *n = cJSON_CreateNumber((double)t);
            if (n == NULL || !cJSON_ReplaceItemInObjectCaseSensitive(body, v->string, n)) {
                cJSON_Delete(n);
                return ERR_NOMEM;
            }
        }
    }
    return 0;
}

/* Checks one member of a body: true when it may be stored (details get the reason otherwise). */
static bool body_value_ok(struct http_request *r, const struct records_ctx *c, const cJSON *v, cJSON *details)
{
    const struct eng_field *f = eng_resource_field(c->res, v->string);
    const char *why;

    if (f == NULL) {
        cJSON_AddStringToObject(details, v->string, "unknown field");
        return false;
    }
    if (cJSON_IsNull(v)) {
        if (f->required)
            cJSON_AddStringToObject(details, v->string, "is required");
        return !f->required;
    }
    if (eng_value_check(f, v, &why) != 0) {
        char tn[24];
        const char *msg = arena_printf(r->arena, "%s (%s)", why, eng_ftype_name(f->type, f->dim, tn));
        cJSON_AddStringToObject(details, v->string, msg != NULL ? msg : why);
        return false;
    }
    return true;
}

static int if_match(struct http_request *r, int64_t *version)
{
    const char *h = http_param(r, "HTTP_IF_MATCH");
    char buf[32];
    size_t n;
    char *end;

    *version = 0;
    if (h == NULL)
        return 0;
    n = strlen(h);
    if (n >= 2 && h[0] == '"' && h[n - 1] == '"') {
        h++;
        n -= 2;
    }
    if (n == 0 || n >= sizeof buf)
        return ERR_INVAL;
    memcpy(buf, h, n);
    buf[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (buf[i] < '0' || buf[i] > '9')
            return ERR_INVAL;
    *version = strtoll(buf, &end, 10);
    return *version > 0 && *version < ENG_INT_MAX ? 0 : ERR_INVAL;
}

/* A record's answer headers: its version as a strong ETag (the value If-Match
 * takes back), and on a create where it now lives. */
static int record_headers(struct http_request *r, const struct records_ctx *c, const struct eng_record *rec, bool created)
{
    const char *etag = arena_printf(r->arena, "\"%lld\"", (long long)rec->version);

    if (etag == NULL || http_add_header(r, "ETag", etag) != 0)
        return ERR_NOMEM;
    if (!created)
        return 0;
    const char *loc = arena_printf(r->arena, "/v1/svc/%s/%s/%s", c->service, c->resource, rec->id);
    return loc == NULL || http_add_header(r, "Location", loc) != 0 ? ERR_NOMEM : 0;
}

HANDLER(handle_records_create)
{
    struct records_ctx c;
    struct eng_record rec = {0};
    cJSON *details = http_own(r, cJSON_CreateObject()), *out;
    const cJSON *v;
    int64_t now = (int64_t)time(NULL);
    int rc;

    if (details == NULL)
        return ERR_NOMEM;
    RECORDS_OPEN_OR_RETURN(w, r, p, "records:write", &c);
    if (r->json == NULL || !cJSON_IsObject(r->json))
        return respond_error(r, ERR_INVAL, "the body must be a JSON object of fields");
    if ((rc = body_times(&c, r->json)) != 0)
        return rc;
    cJSON_ArrayForEach(v, r->json) body_value_ok(r, &c, v, details);
    for (int i = 0; i < c.res->nfields; i++) {
        const struct eng_field *f = &c.res->fields[i];
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(r->json, f->name);
        if (f->required && f->def[0] == '\0' && x == NULL)
            cJSON_AddStringToObject(details, f->name, "is required");
    }
    if (cJSON_GetArraySize(details) > 0)
        return respond_invalid(r, cJSON_Duplicate(details, true));
    if ((rec.data = http_own(r, cJSON_CreateObject())) == NULL ||
        (rec.bidx = http_own(r, cJSON_CreateObject())) == NULL || (rc = uuid_v7(rec.id)) != 0)
        return ERR_NOMEM;
    rec.created_at = rec.updated_at = now;
    rec.expires_at = c.res->expire_after > 0 ? now + c.res->expire_after : 0;
    rec.version = 1;
    for (int i = 0; i < c.res->nfields; i++) {
        const struct eng_field *f = &c.res->fields[i];
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(r->json, f->name);
        cJSON *def = NULL;

        if (x == NULL && f->def[0] != '\0')
            x = def = http_own(r, cJSON_Parse(f->def));
        if ((rc = records_set_value(&w->ring, &p->scope, c.service, c.resource, &rec, f, x)) != 0)
            return rc;
    }
    rc = engine_record_create(w->engine, &p->scope, c.service, c.resource, &rec);
    if (rc != 0)
        return rc;
    touch_records(w, p, &c);
    if ((out = http_own(r, records_json(w, p, &c, &rec))) == NULL || record_headers(r, &c, &rec, true) != 0)
        return ERR_NOMEM;
    return respond_owned(r, 201, out);
}

/* The record named by the URL, owned by the request; 0 or an error (404 sent). */
static int load(struct worker *w, struct http_request *r, const struct principal *p, const struct records_ctx *c,
                struct eng_record *rec)
{
    const char *id = router_param(&r->match, "id");
    int rc;

    if (!uuid_valid(id)) {
        respond_error(r, ERR_NOTFOUND, "no such record");
        return ERR_NOTFOUND;
    }
    rc = engine_record_get(w->engine, &p->scope, c->service, c->resource, id, (int64_t)time(NULL), rec);
    if (rc == ERR_NOTFOUND) {
        respond_error(r, ERR_NOTFOUND, "no such record");
        return rc;
    }
    if (rc != 0)
        return rc;
    /* http_own frees what it cannot take: never touch those trees again */
    if (rec->bidx == NULL)
        rec->bidx = cJSON_CreateObject();
    if ((rec->data = http_own(r, rec->data)) == NULL || (rec->bidx = http_own(r, rec->bidx)) == NULL) {
        if (rec->data == NULL)
            cJSON_Delete(rec->bidx);
        return ERR_NOMEM;
    }
    return 0;
}

HANDLER(handle_records_get)
{
    const char *id = router_param(&r->match, "id"), *text;
    struct records_ctx c;
    struct read_ctx x = {w, p, &c, id, NULL, 0};
    struct eng_record rec;
    char suffix[96];
    bool found;
    cJSON *stored, *out;
    int rc;

    RECORDS_OPEN_OR_RETURN(w, r, p, "records:read", &c);
    if (!uuid_valid(id))
        return respond_error(r, ERR_NOTFOUND, "no such record");
    /* keyed by the schema's version too: a schema change casts every record */
    snprintf(suffix, sizeof suffix, "s%lld:id:%s", (long long)c.res->version, id);
    if ((rc = cached_read(w, r, p, &c, suffix, load_get, &x, &text, &found)) != 0)
        return rc;
    if (!found)
        return respond_error(r, ERR_NOTFOUND, "no such record");
    if ((stored = http_own(r, cJSON_Parse(text))) == NULL || stored_parse(stored, &rec) != 0)
        return ERR_INTERNAL;
    if (rec.expires_at != 0 && rec.expires_at <= (int64_t)time(NULL))
        return respond_error(r, ERR_NOTFOUND, "no such record"); /* expired since it was cached */
    if ((out = http_own(r, records_json(w, p, &c, &rec))) == NULL || record_headers(r, &c, &rec, false) != 0)
        return ERR_NOMEM;
    return respond_owned(r, 200, out);
}

HANDLER(handle_records_update)
{
    struct records_ctx c;
    struct eng_record rec;
    cJSON *details = http_own(r, cJSON_CreateObject()), *out;
    const cJSON *v;
    int64_t want;
    int rc;

    if (details == NULL)
        return ERR_NOMEM;
    RECORDS_OPEN_OR_RETURN(w, r, p, "records:write", &c);
    if (if_match(r, &want) != 0)
        return respond_error(r, ERR_INVAL, "If-Match must be a record version (a positive integer)");
    if (r->json == NULL || !cJSON_IsObject(r->json))
        return respond_error(r, ERR_INVAL, "the body must be a JSON object of fields");
    if ((rc = body_times(&c, r->json)) != 0)
        return rc;
    cJSON_ArrayForEach(v, r->json) body_value_ok(r, &c, v, details);
    if (cJSON_GetArraySize(details) > 0)
        return respond_invalid(r, cJSON_Duplicate(details, true));
    if ((rc = load(w, r, p, &c, &rec)) != 0)
        return r->status != 0 ? 0 : rc;
    if (want != 0 && want != rec.version)
        return respond_error(r, ERR_PRECONDITION,
                            arena_printf(r->arena, "the record is at version %lld", (long long)rec.version));
    cJSON_ArrayForEach(v, r->json) {
        if ((rc = records_set_value(&w->ring, &p->scope, c.service, c.resource, &rec, eng_resource_field(c.res, v->string), v)) != 0)
            return rc;
    }
    rec.updated_at = (int64_t)time(NULL);
    rc = engine_record_update(w->engine, &p->scope, c.service, c.resource, &rec, want);
    if (rc == ERR_PRECONDITION)
        return respond_error(r, ERR_PRECONDITION, "the record changed meanwhile");
    if (rc != 0)
        return rc;
    touch_records(w, p, &c);
    if ((out = http_own(r, records_json(w, p, &c, &rec))) == NULL || record_headers(r, &c, &rec, false) != 0)
        return ERR_NOMEM;
    return respond_owned(r, 200, out);
}

HANDLER(handle_records_delete)
{
    struct records_ctx c;
    const char *id = router_param(&r->match, "id");
    int64_t want;
    int rc;

    RECORDS_OPEN_OR_RETURN(w, r, p, "records:delete", &c);
    if (if_match(r, &want) != 0)
        return respond_error(r, ERR_INVAL, "If-Match must be a record version (a positive integer)");
    if (!uuid_valid(id))
        return respond_error(r, ERR_NOTFOUND, "no such record");
    rc = engine_record_delete(w->engine, &p->scope, c.service, c.resource, id, want, (int64_t)time(NULL));
    if (rc == ERR_NOTFOUND)
        return respond_error(r, ERR_NOTFOUND, "no such record");
    if (rc == ERR_PRECONDITION)
        return respond_error(r, ERR_PRECONDITION, "the record is at another version");
    if (rc != 0)
        return rc;
    touch_records(w, p, &c);
    cJSON *root = http_own(r, cJSON_CreateObject());
    return root == NULL ? ERR_NOMEM : respond_owned(r, 204, root);
}

/* ---- list ----------------------------------------------------------------- */

/* The list's query language is lib/store/listq's; this gives it the request's
 * arena, the resource, the blind index under the caller's org and the cursor
 * key and binding of this worker, org, resource and mode. */
struct bidx_hook {
    const struct crypto_keyring *ring;
    const struct eng_scope *scope;
    const char *service, *resource;
};

static int bidx_hook(void *ctx, const char *field, const char *value, char hex[ENG_HASH])
{
    const struct bidx_hook *h = ctx;

    return bidx_of(h->ring, h->scope, h->service, h->resource, field, value, hex);
}

static void records_listq(struct worker *w, struct http_request *r, const struct principal *p,
                          const struct records_ctx *c, struct bidx_hook *h, struct listq *l)
{
    *h = (struct bidx_hook){&w->ring, &p->scope, c->service, c->resource};
    *l = (struct listq){
        .arena = r->arena,
        .res = c->res,
        .bidx = bidx_hook,
        .bidx_ctx = h,
        .secret = w->ring.n > 0 ? w->ring.keys[0].bidx_key : NULL,
        .bind = arena_printf(r->arena, "%s\n%s\n%s\n%d\n", p->scope.org_id, c->service, c->resource,
                             p->scope.mode),
        .qs = &r->query,
    };
}

const char *records_filter(struct worker *w, struct http_request *r, const struct principal *p,
                           const struct records_ctx *c, const char *key, const char *val, struct eng_query *q)
{
    struct bidx_hook h;
    struct listq l;

    records_listq(w, r, p, c, &h, &l);
    if (l.bind == NULL)
        return "out of memory";
    return listq_filter(&l, key, val, q);
}

/* The cache suffix of a list: the schema's version and a SHA-256 of the query
 * as parsed (filters sorted, so their order in the URL does not matter). */
static int list_key(const struct records_ctx *c, const struct eng_query *q, int64_t limit, char out[96])
{
    char *parts[ENG_MAX_FILTERS], *after = NULL;
    struct buf b;
    uint8_t h[CRYPTO_SHA256_LEN];
    int rc = 0;

    buf_init(&b, 1 << 20);
    for (size_t i = 0; i < q->nfilters; i++) {
        char *v = q->filters[i].value != NULL ? json_print(q->filters[i].value) : NULL;
        parts[i] = NULL;
        if (asprintf(&parts[i], "%s\x1f%d\x1f%s", q->filters[i].field, q->filters[i].op, v != NULL ? v : "") < 0)
            parts[i] = NULL;
        free(v);
        if (parts[i] == NULL)
            rc = ERR_NOMEM;
    }
    for (size_t i = 1; rc == 0 && i < q->nfilters; i++) /* insertion sort: at most ENG_MAX_FILTERS */
        for (size_t j = i; j > 0 && strcmp(parts[j - 1], parts[j]) > 0; j--) {
            char *t = parts[j];
            parts[j] = parts[j - 1];
            parts[j - 1] = t;
        }
    if (rc == 0 && q->has_after && q->after_value != NULL && (after = json_print(q->after_value)) == NULL)
        rc = ERR_NOMEM;
    if (rc == 0)
        rc = buf_printf(&b, "%lld\x1e%s\x1e%d\x1e%d\x1e%s\x1e%s", (long long)limit, q->order, q->desc,
                        q->has_after, q->after_id, after != NULL ? after : "");
    for (size_t i = 0; rc == 0 && i < q->nfilters; i++)
        rc = buf_printf(&b, "\x1e%s", parts[i]);
    if (rc == 0)
        rc = crypto_sha256(b.p, b.len, h);
    if (rc == 0) {
        int k = snprintf(out, 96, "s%lld:q:", (long long)c->res->version);
        for (size_t i = 0; i < 20; i++) /* 160 bits: a collision is not a practical worry */
            k += snprintf(out + k, 96 - (size_t)k, "%02x", h[i]);
    }
    for (size_t i = 0; i < q->nfilters; i++)
        free(parts[i]);
    free(after);
    buf_cleanup(&b);
    return rc;
}

HANDLER(handle_records_list)
{
    struct records_ctx c;
    struct eng_query q;
    struct bidx_hook h;
    struct listq l;
    struct eng_record *recs;
    const char *why;
    int64_t limit = LIMIT_DEFAULT;
    cJSON *root, *data;
    size_t n = 0;
    int rc;

    RECORDS_OPEN_OR_RETURN(w, r, p, "records:read", &c);
    records_listq(w, r, p, &c, &h, &l);
    if (l.bind == NULL)
        return ERR_NOMEM;
    memset(&q, 0, sizeof q);
    q.now = (int64_t)time(NULL);
    if ((why = listq_parse(&l, &q, &limit, LIMIT_MAX)) != NULL)
        return respond_error(r, ERR_INVAL, why);
    if ((recs = arena_alloc(r->arena, sizeof *recs * (LIMIT_MAX + 1))) == NULL)
        return ERR_NOMEM;
    struct read_ctx x = {w, p, &c, NULL, &q, (size_t)limit + 1};
    const char *text;
    bool found;
    char suffix[96];
    cJSON *page, *it;
    /* a page is cached under its schema version and its normalized query;
     * one of a resource whose records expire is read each time (what has
     * expired since would be served until the entry's TTL) */
    if (c.res->expire_after == 0 && list_key(&c, &q, limit, suffix) == 0)
        rc = cached_read(w, r, p, &c, suffix, load_list, &x, &text, &found);
    else {
        struct buf b;
        buf_init(&b, (size_t)w->cfg->http.max_body_kb * 1024 * 4);
        rc = load_list(&x, &b, &found);
        text = rc == 0 ? arena_strndup(r->arena, b.p != NULL ? b.p : "[]", b.len) : NULL;
        buf_cleanup(&b);
        if (rc == 0 && text == NULL)
            rc = ERR_NOMEM;
    }
    if (rc != 0)
        return rc;
    if ((page = http_own(r, cJSON_Parse(text))) == NULL || !cJSON_IsArray(page))
        return ERR_INTERNAL;
    cJSON_ArrayForEach(it, page) {
        if (n > (size_t)limit || stored_parse(it, &recs[n]) != 0)
            return ERR_INTERNAL;
        n++;
    }
    if ((root = respond_list(r, &data)) == NULL)
        return ERR_NOMEM;
    for (size_t i = 0; i < n && i < (size_t)limit; i++)
        cJSON_AddItemToArray(data, records_json(w, p, &c, &recs[i]));
    if (n > (size_t)limit) {
        const char *next = listq_cursor_make(&l, &recs[limit - 1], q.order);
        if (next == NULL)
            return ERR_NOMEM;
        cJSON_AddStringToObject(root, "next_cursor", next);
    } else {
        cJSON_AddNullToObject(root, "next_cursor");
    }
    return respond_owned(r, 200, root);
}

/* ---- views and the change feed (DESIGN §6, issue 14) --------------------------------
 * Both read what the projector made (engine.h, CQRS): a view's rows with how
 * far behind the writes they are, and the org's committed changes of the
 * resource in feed order. */

#define CHANGES_LIMIT_DEFAULT 100
#define CHANGES_LIMIT_MAX 100

static int64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* SQL's order of a group's values: null after every value; numbers by value,
 * strings bytewise (the "C" collation both engines compare with), false
 * before true. A field holds one type, so mixed types only order stably. */
static int value_cmp(const cJSON *a, const cJSON *b)
{
    bool an = a == NULL || cJSON_IsNull(a), bn = b == NULL || cJSON_IsNull(b);

    if (an || bn)
        return an == bn ? 0 : an ? 1 : -1;
    if (cJSON_IsNumber(a) && cJSON_IsNumber(b))
        return a->valuedouble < b->valuedouble ? -1 : a->valuedouble > b->valuedouble;
    if (cJSON_IsString(a) && cJSON_IsString(b))
        return strcmp(a->valuestring, b->valuestring);
    if (cJSON_IsBool(a) && cJSON_IsBool(b))
        return cJSON_IsTrue(a) - cJSON_IsTrue(b);
    return (a->type & 0xff) - (b->type & 0xff);
}

static int row_cmp(const void *x, const void *y)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(*(cJSON *const *)x, "key");
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(*(cJSON *const *)y, "key");
    const cJSON *va = a != NULL ? a->child : NULL, *vb = b != NULL ? b->child : NULL;

    for (; va != NULL && vb != NULL; va = va->next, vb = vb->next) {
        int c = value_cmp(va, vb);
        if (c != 0)
            return c;
    }
    return (va != NULL) - (vb != NULL);
}

/* Sorts the view's rows by their keys in place (engines give them in no order). */
static int rows_sort(cJSON *rows)
{
    int n = cJSON_GetArraySize(rows), i = 0;
    cJSON **v, *it;

    if (n < 2)
        return 0;
    if ((v = malloc(sizeof *v * (size_t)n)) == NULL)
        return ERR_NOMEM;
    cJSON_ArrayForEach(it, rows) v[i++] = it;
    qsort(v, (size_t)n, sizeof *v, row_cmp);
    /* relink in order: cJSON arrays are doubly linked with child->prev the tail */
    for (i = 0; i < n; i++) {
        v[i]->prev = i > 0 ? v[i - 1] : v[n - 1];
        v[i]->next = i + 1 < n ? v[i + 1] : NULL;
    }
    rows->child = v[0];
    free(v);
    return 0;
}

/* Whether options.views declares `view`. */
static bool view_declared(const struct eng_resource *res, const char *view)
{
    cJSON *views = res->views[0] != '\0' ? cJSON_Parse(res->views) : NULL;
    bool yes = views != NULL && cJSON_GetObjectItemCaseSensitive(views, view) != NULL;

    cJSON_Delete(views);
    return yes;
}

struct view_ctx {
    struct worker *w;
    const struct principal *p;
    const struct records_ctx *c;
    const char *view;
};

/* The view as the engine has it, for the cache: {"rows": [...], "more": b,
 * "pending_ms": n}; a view the engine does not know is a cached none. */
static int load_view(void *ctx, struct buf *out, bool *found)
{
    struct view_ctx *x = ctx;
    cJSON *rows = NULL, *o;
    bool more;
    int64_t pending;
    char *text;
    int rc = engine_view_read(x->w->engine, &x->p->scope, x->c->service, x->c->resource, x->view, &rows, &more,
                              &pending);

    if (rc == ERR_NOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    if ((o = cJSON_CreateObject()) == NULL || !cJSON_AddItemToObject(o, "rows", rows)) {
        cJSON_Delete(o);
        cJSON_Delete(rows);
        return ERR_NOMEM;
    }
    if (cJSON_AddBoolToObject(o, "more", more) == NULL ||
        cJSON_AddNumberToObject(o, "pending_ms", (double)pending) == NULL ||
        (text = cJSON_PrintUnformatted(o)) == NULL) {
        cJSON_Delete(o);
        return ERR_NOMEM;
    }
    cJSON_Delete(o);
    buf_reset(out);
    rc = buf_append(out, text, strlen(text));
    free(text);
    *found = rc == 0;
    return rc;
}

/* GET /v1/svc/{service}/{resource}/views/{view} → {data, as_of, lag_ms, truncated}.
 * Cached under the resource's views namespace (bumped by every write to the
 * resource and by the projector), keyed by the schema's version: the lag is
 * worked out when it is answered, from the oldest event the rows wait for. */
HANDLER(handle_views_get)
{
    struct records_ctx c;
    const char *view = router_param(&r->match, "view"), *text;
    struct caching_ns ns;
    cJSON *got, *rows, *root;
    char suffix[ENG_FIELD + 32];
    bool found;
    int64_t pending, now;
    int rc;

    RECORDS_OPEN_OR_RETURN(w, r, p, "records:read", &c);
    if (r->query.n > 0)
        return respond_error(r, ERR_INVAL, arena_printf(r->arena, "unknown parameter %.64s", r->query.p[0].key));
    if (view == NULL || !eng_name_valid(view, ENG_FIELD) || !view_declared(c.res, view))
        return respond_error(r, ERR_NOTFOUND, "no such view");
    struct view_ctx x = {w, p, &c, view};
    snprintf(suffix, sizeof suffix, "s%lld:%s", (long long)c.res->version, view);
    int ns_rc = caching_ns_views(&ns, &p->scope, c.service, c.resource);
    if ((rc = cached_read_ns(w, r, &ns, ns_rc, suffix, load_view, &x, &text, &found)) != 0)
        return rc;
    if (!found)
        return respond_error(r, ERR_NOTFOUND, "no such view");
    if ((got = http_own(r, cJSON_Parse(text))) == NULL ||
        !cJSON_IsArray(rows = cJSON_GetObjectItemCaseSensitive(got, "rows")) ||
        !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(got, "pending_ms")))
        return ERR_INTERNAL;
    pending = (int64_t)cJSON_GetObjectItemCaseSensitive(got, "pending_ms")->valuedouble;
    if (rows_sort(rows) != 0 || (root = http_own(r, cJSON_CreateObject())) == NULL)
        return ERR_NOMEM;
    cJSON_AddItemReferenceToObject(root, "data", rows);
    now = wall_ms();
    /* as_of: every change committed before it is in the rows; the events
     * from then on are still on their way */
    int64_t as_of = pending > 0 && pending < now ? pending : now;
    json_add_time(root, "as_of", as_of / 1000);
    cJSON_AddNumberToObject(root, "lag_ms", (double)(now - as_of));
    cJSON_AddBoolToObject(root, "truncated", cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(got, "more")));
    return respond_owned(r, 200, root);
}

/* A feed cursor: the decimal position this endpoint gave as next_cursor. */
static bool feed_cursor(const char *s, uint64_t *pos)
{
    char *end;
    unsigned long long v;

    if (s[0] < '0' || s[0] > '9' || strlen(s) > 20)
        return false;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *pos = v;
    return true;
}

/* The records the page's events name, as they are now, into their events:
 * one list query (id in …) for the page. */
static int changes_records(struct worker *w, struct http_request *r, const struct principal *p,
                           const struct records_ctx *c, cJSON *data)
{
    struct eng_query q;
    struct eng_record *recs;
    cJSON *ids = http_own(r, cJSON_CreateArray()), *ev;
    size_t n = 0;
    int rc;

    if (ids == NULL)
        return ERR_NOMEM;
    cJSON_ArrayForEach(ev, data) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(ev, "id");
        bool seen = false;
        const cJSON *it;
        if (strcmp(cJSON_GetObjectItemCaseSensitive(ev, "op")->valuestring, "delete") == 0)
            continue;
        cJSON_ArrayForEach(it, ids) seen = seen || strcmp(it->valuestring, id->valuestring) == 0;
        if (!seen && !cJSON_AddItemToArray(ids, cJSON_CreateString(id->valuestring)))
            return ERR_NOMEM;
    }
    int nids = cJSON_GetArraySize(ids);
    if (nids == 0)
        return 0;
    memset(&q, 0, sizeof q);
    snprintf(q.order, sizeof q.order, "id");
    snprintf(q.filters[0].field, sizeof q.filters[0].field, "id");
    q.filters[0].op = ENG_OP_IN;
    q.filters[0].value = ids;
    q.nfilters = 1;
    q.now = (int64_t)time(NULL);
    if ((recs = arena_alloc(r->arena, sizeof *recs * (size_t)nids)) == NULL)
        return ERR_NOMEM;
    if ((rc = engine_record_list(w->engine, &p->scope, c->service, c->resource, &q, recs, (size_t)nids, &n)) != 0)
        return rc;
    cJSON_ArrayForEach(ev, data) {
        const char *id = cJSON_GetObjectItemCaseSensitive(ev, "id")->valuestring;
        for (size_t i = 0; i < n; i++)
            if (strcmp(recs[i].id, id) == 0) {
                cJSON_AddItemToObject(ev, "record", records_json(w, p, c, &recs[i]));
                break;
            }
    }
    for (size_t i = 0; i < n; i++)
        eng_record_cleanup(&recs[i]);
    return 0;
}

/* GET /v1/svc/{service}/{resource}/changes?after=<cursor>&limit=N →
 * {data: [{op, id, version, at, record?}], next_cursor}. record: the record as
 * it is now, when it still exists (a sync client converges on it); a delete
 * has none. next_cursor is always given: follow it to get what comes next
 * (an empty page means nothing yet; poll again with the same cursor). */
HANDLER(handle_changes_list)
{
    struct records_ctx c;
    struct eng_change *page;
    uint64_t after = 0, head = 0;
    int64_t limit = CHANGES_LIMIT_DEFAULT;
    cJSON *root, *data;
    size_t n = 0;
    char next[24];
    int rc;

    RECORDS_OPEN_OR_RETURN(w, r, p, "records:read", &c);
    for (size_t i = 0; i < r->query.n; i++) {
        const char *k = r->query.p[i].key, *v = r->query.p[i].value;
        if (strcmp(k, "limit") == 0) {
            char *end;
            long long l = strtoll(v, &end, 10);
            if (v[0] < '0' || v[0] > '9' || *end != '\0' || l < 1 || l > CHANGES_LIMIT_MAX)
                return respond_error(r, ERR_INVAL, "limit must be an integer from 1 to 100");
            limit = l;
        } else if (strcmp(k, "after") == 0) {
            if (!feed_cursor(v, &after))
                return respond_error(r, ERR_INVAL, "after must be a next_cursor this endpoint gave");
        } else {
            return respond_error(r, ERR_INVAL, arena_printf(r->arena, "unknown parameter %.64s", k));
        }
    }
    if ((page = arena_alloc(r->arena, sizeof *page * (size_t)limit)) == NULL)
        return ERR_NOMEM;
    rc = engine_changes_list(w->engine, &p->scope, c.service, c.resource, after, page, (size_t)limit, &n, &head);
    if (rc == ERR_GONE)
        return respond_error(r, ERR_GONE,
                             "changes after this cursor are no longer kept (cqrs.changes_retention): "
                             "list the records again, then follow the feed without a cursor");
    if (rc != 0)
        return rc;
    if ((root = respond_list(r, &data)) == NULL)
        return ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        if (o == NULL || !cJSON_AddItemToArray(data, o) || cJSON_AddStringToObject(o, "op", page[i].op) == NULL ||
            cJSON_AddStringToObject(o, "id", page[i].record_id) == NULL ||
            cJSON_AddNumberToObject(o, "version", (double)page[i].version) == NULL ||
            json_add_time(o, "at", page[i].at) == NULL)
            return ERR_NOMEM;
    }
    if ((rc = changes_records(w, r, p, &c, data)) != 0)
        return rc;
    /* a full page resumes after its last change; a shorter one has every
     * change up to the head, so the next page starts there */
    uint64_t resume = n == (size_t)limit ? page[n - 1].pos : head > after ? head : after;
    snprintf(next, sizeof next, "%llu", (unsigned long long)resume);
    cJSON_AddStringToObject(root, "next_cursor", next);
    return respond_owned(r, 200, root);
}
