/* The master's shared regions (region.h). They are made before the first fork
 * because an anonymous shared mapping reaches only the children forked after
 * it; the seeds load here, in the master, so no worker sees a half-seeded engine. */
#include <stdio.h>

#include "app.h"
#include "core/log.h"
#include "fleet/region.h"
#include "store/mem/engine_mem.h"
#include "store/mem/shm.h"

/* Loads the seed folder into the fresh memory engine, before any worker runs. */
static int seed_memory(const struct config *cfg, const char *const *seeds, int nseeds, struct shm_region *data,
                       char errstr[256])
{
    struct crypto_keyring ring;
    struct password_cost cost = app_password_cost(cfg);
    char why[128];
    int rc;

    if (cfg->env == CONFIG_ENV_PRODUCTION) {
        snprintf(errstr, 256, "seed: refused with env = production (dev data has known passwords)");
        return -1;
    }
    if (crypto_keyring_load(&ring, cfg->crypto.data_key, why) != 0) {
        snprintf(errstr, 256, "crypto.data_key: %s", why);
        return -1;
    }
    struct engine *e = app_engine_new(cfg, data, why);
    if (e == NULL) {
        snprintf(errstr, 256, "memory engine: %s", why);
        crypto_keyring_cleanup(&ring);
        return -1;
    }
    rc = 0;
    for (int i = 0; rc == 0 && i < nseeds; i++)
        if ((rc = seed_load(e, &ring, &cost, seeds[i], errstr)) == 0)
            log_msg(LOG_INFO, "seeded", "loaded %s into the memory engine", seeds[i]);
    engine_free(e);
    crypto_keyring_cleanup(&ring);
    return rc == 0 ? 0 : -1;
}

/* The memory engine's region (and the kv's, without Redis), made before the
 * fork so every worker shares them; they live as long as the master. */
int region_open(const struct config *cfg, const char *const *seeds, int nseeds, struct fleet_shared *sh,
                char errstr[256])
{
    char why[128];
    size_t bytes = (size_t)cfg->memory.size_mb << 20;

    if (cfg->engine == CONFIG_ENGINE_MEMORY) {
        if ((sh->data = shm_create(bytes, why)) == NULL ||
            engine_mem_prepare(sh->data, why) != 0) {
            snprintf(errstr, 256, "memory.size_mb: %s", why);
            return -1;
        }
    }
    if (cfg->redis.url[0] == '\0') {
        /* the blacklist and cache live beside the data: a quarter of its size, at least 16 MiB */
        size_t kvbytes = bytes / 4 > (16u << 20) ? bytes / 4 : (16u << 20);
        if ((sh->kvmem = shm_create(kvbytes, why)) == NULL) {
            snprintf(errstr, 256, "kv region: %s", why);
            return -1;
        }
    }
    if (nseeds > 0) {
        if (sh->data == NULL) {
            snprintf(errstr, 256, "seed: --seed loads the memory engine; use `tessera seed` for postgres");
            return -1;
        }
        return seed_memory(cfg, seeds, nseeds, sh->data, errstr);
    }
    return 0;
}

/* Drops the master's view of what region_open made (a worker still running keeps its own). */
void region_close(struct fleet_shared *sh)
{
    shm_destroy(sh->data);
    shm_destroy(sh->kvmem);
}
