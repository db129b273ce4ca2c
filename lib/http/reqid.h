/* reqid: request ids. A client's X-Request-Id is echoed only when it is sane
 * (short, from a safe alphabet: it lands in logs and headers); otherwise the
 * worker makes one: a random per-process prefix and a counter, unique across
 * the fleet without coordination and cheap enough for every request. */
#ifndef LIB_REQID_H
#define LIB_REQID_H

#include <stdbool.h>
#include <stdint.h>

#include "core/err.h"

#define REQID_MAX 64

struct reqid_gen {
    char prefix[17];
    uint64_t seq;
};

/* True for 1..REQID_MAX characters of [A-Za-z0-9._:-]. */
bool reqid_valid(const char *s);

/* Seeds the generator's prefix from the kernel's random source. */
int reqid_gen_init(struct reqid_gen *g) ERR_MUST_CHECK;

/* Writes the next id (32 hex characters) into out. */
void reqid_next(struct reqid_gen *g, char out[REQID_MAX + 1]);

#endif
