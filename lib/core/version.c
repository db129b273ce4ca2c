#include "core/version.h"

#include <cJSON.h>
#include <hiredis.h>
#include <libpq-fe.h>
#include <openssl/crypto.h>

#ifndef TESSERA_VERSION
#define TESSERA_VERSION "0.0.0"
#endif
#ifndef TESSERA_REV
#define TESSERA_REV "unknown"
#endif

void version_print(FILE *out)
{
    int pq = PQlibVersion();

    fprintf(out, "tessera %s (%s)\n", TESSERA_VERSION, TESSERA_REV);
    fprintf(out, "  cJSON %s\n", cJSON_Version());
    fprintf(out, "  OpenSSL %s\n", OpenSSL_version(OPENSSL_VERSION_STRING));
    fprintf(out, "  libpq %d.%d\n", pq / 10000, pq % 10000);
    fprintf(out, "  hiredis %d.%d.%d\n", HIREDIS_MAJOR, HIREDIS_MINOR, HIREDIS_PATCH);
    /* fcgi2 exports no version; Debian 12 and the static build carry 2.4.2 */
    fprintf(out, "  fcgi2 (libfcgi) 2.4.2\n");
    fprintf(out, "  built %s\n", __DATE__);
}
