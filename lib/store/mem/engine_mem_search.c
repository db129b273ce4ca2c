/* engine_mem_search: vector search on the memory engine (engine.h, "vector
 * search"); the records it scans are engine_mem_records.c's, shared through
 * engine_mem_rec_int.h. */
#include "store/mem/engine_mem_rec_int.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/futex.h>
#include <math.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/text.h"
#include "store/values.h"
#include "store/vector.h"

/* ---- vector search (engine.h) ---------------------------------------------------------
 * One pass over the org's store: each live record's packed vector (rec_vec)
 * is scored from its floats without parsing the record; only one whose float
 * score, less what rounding to float can have moved it (vec_score_f's
 * slack), could still enter the best k so far is scored again from its
 * doubles, so the answer is exact; only one whose exact score enters is
 * parsed, to test the filters. The best k are a max-heap (worst at
 * the root) in one buffer of k candidates made before the scan, pointing into
 * the region (which the caller's unit of work holds still): nothing else is
 * allocated per row. The winners are parsed once more, to be copied out. */

struct cand {
    double score;
    const struct rec_blob *b;
};

/* Blobs are scattered over the region, so the scan is bound by memory
 * latency: while it scores one record it asks for every line the scan will
 * read of the one SCAN_AHEAD places on (its header and its floats: 10 lines
 * for 128 dimensions; more ahead, or the doubles too, measured slower), the
 * values read from the store's map SCAN_BATCH at a time. */
#define SCAN_BATCH 256
#define SCAN_AHEAD 4

static void prefetch(const void *p, size_t n)
{
    for (size_t i = 0; i < n; i += 64)
        __builtin_prefetch((const char *)p + i);
}

/* Whether a ranks after b: a larger score, ties by the larger id. */
static bool after(const struct cand *a, const struct cand *b)
{
    return a->score > b->score || (a->score == b->score && strcmp(a->b->id, b->b->id) > 0);
}

static void heap_down(struct cand *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && after(&h[l], &h[w]))
            w = l;
        if (r < n && after(&h[r], &h[w]))
            w = r;
        if (w == i)
            return;
        struct cand t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

static void heap_up(struct cand *h, size_t i)
{
    while (i > 0 && after(&h[i], &h[(i - 1) / 2])) {
        struct cand t = h[i];
        h[i] = h[(i - 1) / 2];
        h[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static int cand_cmp(const void *x, const void *y)
{
    const struct cand *a = x, *b = y;

    return after(a, b) ? 1 : after(b, a) ? -1 : 0;
}

/* Whether the record of b passes every filter of q (parsing it: the rare case). */
static int passes(const struct eng_resource *def, const struct rec_blob *b, const struct eng_query *q, bool *ok)
{
    struct eng_record rec;
    int rc;

    *ok = true;
    if (q->nfilters == 0)
        return 0;
    if ((rc = memrec_blob_parse(b, &rec)) != 0)
        return rc;
    for (size_t i = 0; *ok && i < q->nfilters; i++)
        *ok = memrec_matches(def, &rec, &q->filters[i]);
    eng_record_cleanup(&rec);
    return 0;
}

int memrec_record_search(struct engine *e, const struct eng_scope *s, const char *service,
                         const char *resource, const struct eng_search *q, struct eng_hit *out,
                         size_t *n, int *strategy)
{
    const struct eng_resource *def;
    const struct eng_field *f;
    struct cand *heap = NULL;
    uint64_t res, recs, pos = 0, vals[SCAN_BATCH];
    size_t k = 0, got, ahead = sizeof(struct rec_blob) + sizeof(struct rec_vec) + (size_t)q->dim * sizeof(float);
    uint32_t fpos;
    double qnorm = vec_norm(q->vector, q->dim);
    int rc;

    *n = 0;
    *strategy = ENG_STRATEGY_EXACT;
    if ((rc = memrec_res_find(e, s, service, resource, &res)) != 0)
        return rc;
    def = &((struct rec_res *)P(e, res))->def;
    if ((f = eng_resource_field(def, q->field)) == NULL || f->type != ENG_FT_VECTOR || f->dim != q->dim)
        return engine_fail(e, ERR_INVAL, "%.64s is not a vector(%d) field", q->field, q->dim);
    fpos = (uint32_t)(f - def->fields);
    for (size_t i = 0; i < q->where->nfilters; i++)
        if (!memrec_column_known(def, q->where->filters[i].field))
            return engine_fail(e, ERR_INVAL, "no field %.64s", q->where->filters[i].field);
    if ((recs = memrec_store_records(e, res, s->org_id, false)) == 0)
        return 0;
    if ((heap = malloc(q->k * sizeof *heap)) == NULL)
        return engine_fail(e, ERR_NOMEM, "out of memory");
    while ((got = shm_map_vals(R(e), recs, &pos, vals, SCAN_BATCH)) > 0) {
        for (size_t j = 0; j < got; j++) {
            struct cand c = {.b = P(e, vals[j])};
            const struct rec_vec *v;
            double slack;
            bool ok;

            if (j + SCAN_AHEAD < got)
                prefetch(P(e, vals[j + SCAN_AHEAD]), ahead);
            if (expired(c.b, q->where->now) || (v = blob_vec(c.b, fpos)) == NULL ||
                !vec_score_f(q->metric, v->f, v->norm, q->vector, qnorm, q->dim, &c.score, &slack) ||
                (k == q->k && c.score - slack > heap[0].score && isfinite(c.score)))
                continue;
            /* the floats cannot rule it out (a component past float's range
             * never can): its exact score decides */
            if (!vec_score(q->metric, vec_doubles(v), v->norm, q->vector, qnorm, q->dim, &c.score) ||
                (k == q->k && !after(&heap[0], &c)))
                continue;
            if ((rc = passes(def, c.b, q->where, &ok)) != 0)
                goto out;
            if (!ok)
                continue;
            if (k < q->k) {
                heap[k] = c;
                heap_up(heap, k++);
            } else {
                heap[0] = c;
                heap_down(heap, k, 0);
            }
        }
    }
    qsort(heap, k, sizeof *heap, cand_cmp);
    for (; *n < k; (*n)++) {
        if ((rc = memrec_blob_parse(heap[*n].b, &out[*n].rec)) != 0)
            break;
        out[*n].score = heap[*n].score;
    }
out:
    free(heap);
    if (rc != 0) {
        for (size_t i = 0; i < *n; i++)
            eng_record_cleanup(&out[i].rec);
        *n = 0;
        return engine_fail(e, rc, "record unreadable");
    }
    return 0;
}
