/* The JWT key set as the configuration names it, for everything that needs
 * it: check-config, the fleet master (at start and on each reload, before any
 * worker is forked, so a bad key is a refused start or reload rather than a
 * worker crash loop), and a worker run alone under spawn-fcgi. */
#include <string.h>

#include "app.h"

_Static_assert(CONFIG_VERIFY_KEYS_MAX < JWT_KEYSET_MAX,
               "the signing key and every auth.verify_keys file fit one key set");
_Static_assert(JWT_ALG_EDDSA == 0 && JWT_ALG_ED25519 == 1,
               "auth.jws_alg's names are in enum jwt_alg's order");

int app_keys_load(const struct config *cfg, struct jwt_keyset *ks, char errstr[256])
{
    char why[128] = "";
    int rc;

    memset(ks, 0, sizeof(*ks));
    if ((rc = jwt_keyset_add(ks, cfg->auth.signing_key, why)) != 0) {
        snprintf(errstr, 256, "auth.signing_key: %s", why);
        return rc;
    }
    for (int i = 0; i < cfg->auth.nverify_keys; i++)
        if ((rc = jwt_keyset_add(ks, cfg->auth.verify_key[i], why)) != 0) {
            snprintf(errstr, 256, "auth.verify_keys: %s", why);
            jwt_keyset_free(ks);
            return rc;
        }
    ks->sign_alg = cfg->auth.jws_alg;
    return 0;
}
