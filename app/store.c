/* The one place the configured engine is chosen and opened: by each worker,
 * by the master's `admin create` child, and by `tessera seed`. */
#include "app.h"
#include "store/mem/engine_mem.h"
#include "store/pg/engine_pg.h"

struct engine *app_engine_new(const struct config *cfg, struct shm_region *data, char errstr[128])
{
    if (cfg->engine == CONFIG_ENGINE_POSTGRES) {
        const struct engine_pg_config pc = {
            .core_dsn = cfg->db.core_dsn,
            .test_dsn = cfg->db.test_dsn,
            .live_dsn = cfg->db.live_dsn,
            .listen_test_dsn = cfg->cqrs.test_listen_dsn,
            .listen_live_dsn = cfg->cqrs.live_listen_dsn,
            .connection_limit = cfg->db.connection_limit,
            .prepare = cfg->db.prepare != 0,
        };
        return engine_pg_new(&pc, errstr);
    }
    if (data == NULL) {
        err_set(errstr, "the memory engine lives in the fleet's shared memory (run under `tessera fleet`)");
        return NULL;
    }
    return engine_mem_new(data, errstr);
}
