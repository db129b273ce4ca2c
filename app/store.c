/* The one place the configured engine is chosen and opened: by each worker,
 * by the master's `admin create` child, and by `tessera seed`. */
#include "app.h"
#include "store/mem/engine_mem.h"
#include "store/pg/engine_pg.h"

/* The placements of one kind as the engine takes them (DSNs borrowed from cfg). */
static int places_of(const struct config_places *l, struct engine_pg_place *out)
{
    int n = 0;

    for (int i = 0; i < l->n; i++) {
        const struct config_place *p = &l->at[i];
        /* a section that names an owner only (migrate.conf's) is no store:
         * an org placed in it is refused, never served from the shared one */
        if (config_place_dsn(p, ENG_MODE_TEST)[0] == '\0' && config_place_dsn(p, ENG_MODE_LIVE)[0] == '\0')
            continue;
        out[n++] = (struct engine_pg_place){
            .name = p->name,
            .dsn = {config_place_dsn(p, ENG_MODE_TEST), config_place_dsn(p, ENG_MODE_LIVE)},
            .listen_dsn = {p->dsn[CONFIG_PLACE_TEST_LISTEN_DSN], p->dsn[CONFIG_PLACE_LIVE_LISTEN_DSN]},
        };
    }
    return n;
}

struct engine *app_engine_new(const struct config *cfg, struct shm_region *data, char errstr[128])
{
    if (cfg->engine == CONFIG_ENGINE_POSTGRES) {
        struct engine_pg_place svc[CONFIG_PLACES_MAX], db[CONFIG_PLACES_MAX];
        const struct engine_pg_config pc = {
            .core_dsn = cfg->db.core_dsn,
            .test_dsn = cfg->db.test_dsn,
            .live_dsn = cfg->db.live_dsn,
            .listen_test_dsn = cfg->cqrs.test_listen_dsn,
            .listen_live_dsn = cfg->cqrs.live_listen_dsn,
            .connection_limit = cfg->db.connection_limit,
            .prepare = cfg->db.prepare != 0,
            .svc = svc,
            .nsvc = places_of(&cfg->svc, svc),
            .db = db,
            .ndb = places_of(&cfg->database, db),
        };
        return engine_pg_new(&pc, errstr);
    }
    if (data == NULL) {
        err_set(errstr, "the memory engine lives in the fleet's shared memory (run under `tessera fleet`)");
        return NULL;
    }
    return engine_mem_new(data, errstr);
}
