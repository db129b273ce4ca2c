/* version: see version.h. Library versions come from the modules that wrap
 * them (libpq only in store/pg, hiredis only in kv_redis.c). */
#include "version.h"

#include <cJSON.h>
#include <openssl/crypto.h>

#include "store/kv.h"
#include "store/pg/pg.h"

#ifndef TESSERA_VERSION
#define TESSERA_VERSION "0.0.0"
#endif
#ifndef TESSERA_REV
#define TESSERA_REV "unknown"
#endif

void version_print(FILE *out)
{
    char pq[16];

    fprintf(out, "tessera %s (%s)\n", TESSERA_VERSION, TESSERA_REV);
    fprintf(out, "  cJSON %s\n", cJSON_Version());
    fprintf(out, "  OpenSSL %s\n", OpenSSL_version(OPENSSL_VERSION_STRING));
    fprintf(out, "  libpq %s\n", pg_lib_version(pq));
    fprintf(out, "  hiredis %s\n", kv_redis_lib_version());
    /* fcgi2 exports no version; Debian 12 and the static build carry 2.4.2 */
    fprintf(out, "  fcgi2 (libfcgi) 2.4.2\n");
    fprintf(out, "  built %s\n", __DATE__);
}
