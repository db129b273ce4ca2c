/* region: the shared memory the master makes before it forks, for every worker
 * to inherit: the memory engine's data (engine = memory) and the kv's region
 * (no redis.url), with the seed folders (--seed) loaded into the data before
 * any worker runs. They live as long as the master; it never maps more later. */
#ifndef APP_FLEET_REGION_H
#define APP_FLEET_REGION_H

#include "app.h"

/* Fills sh->data and sh->kvmem as the config asks (NULL where not needed) and
 * loads seeds[0..nseeds) into the data, in order (refused in production and on
 * postgres). 0, or -1 with errstr naming the config key; region_close frees
 * what was made either way. */
int region_open(const struct config *cfg, const char *const *seeds, int nseeds, struct fleet_shared *sh,
                char errstr[256]);
/* Drops the master's view of sh->data and sh->kvmem (a worker still running keeps its own). */
void region_close(struct fleet_shared *sh);

#endif
