/* Platform admins for deployments without dev seed data (`tessera admin create`).
 * The admin gets an organization of its own to sign in to, as owner. The
 * password is hashed before the unit of work: on the memory engine that unit
 * holds the fleet-wide lock. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app.h"
#include "core/uuid.h"

int admin_create(struct engine *e, const struct crypto_keyring *ring, const struct password_cost *cost,
                 const char *raw_email, const char *password, char *msg, size_t msgsz)
{
    struct eng_user u = {0};
    struct eng_org o = {0};
    struct eng_membership m = {0};
    struct eng_scope s = {.mode = ENG_MODE_TEST};
    char email[256], *phc = NULL;
    int64_t now = (int64_t)time(NULL);
    int rc;

    if (email_normalize(raw_email, email, sizeof email) != 0) {
        snprintf(msg, msgsz, "not a valid email address");
        return ERR_INVAL;
    }
    if (strlen(password) < 8 || strlen(password) > 1024) {
        snprintf(msg, msgsz, "the password must be 8 to 1024 characters");
        return ERR_INVAL;
    }
    if ((rc = password_hash(password, strlen(password), cost, &phc)) != 0 || (rc = uuid_v4(u.id)) != 0 ||
        (rc = uuid_v4(o.id)) != 0 || (rc = email_seal(ring, &u, email)) != 0) {
        snprintf(msg, msgsz, "cannot prepare the account: %s", err_str(rc));
        goto out;
    }
    snprintf(u.password_hash, sizeof u.password_hash, "%s", phc);
    u.is_platform_admin = true;
    u.created_at = now;
    u.email_verified_at = now; /* made by the operator on the host */
    snprintf(o.name, sizeof o.name, "Platform");
    snprintf(o.slug, sizeof o.slug, "platform-%.8s", o.id);
    snprintf(o.plan, sizeof o.plan, "internal");
    o.platform = true; /* the admin's home: where schema changes are made from */
    o.created_at = now;
    snprintf(s.org_id, sizeof s.org_id, "%s", o.id);
    snprintf(m.org_id, sizeof m.org_id, "%s", o.id);
    snprintf(m.user_id, sizeof m.user_id, "%s", u.id);
    snprintf(m.role, sizeof m.role, "owner");
    m.created_at = now;

    if ((rc = engine_begin(e, &s)) != 0) {
        snprintf(msg, msgsz, "storage unavailable");
        goto out;
    }
    rc = engine_user_create(e, &u);
    if (rc == ERR_CONFLICT) {
        snprintf(msg, msgsz, "an account with this email already exists");
        goto fail;
    }
    if (rc != 0 || (rc = engine_org_create(e, &o)) != 0 || (rc = engine_member_put(e, &s, &m)) != 0) {
        snprintf(msg, msgsz, "cannot create the account: %s", err_str(rc));
        goto fail;
    }
    struct eng_audit a = {0};
    if ((rc = uuid_v7(a.id)) != 0)
        goto fail;
    snprintf(a.org_id, sizeof a.org_id, "%s", o.id);
    snprintf(a.actor, sizeof a.actor, "%s", u.id);
    snprintf(a.action, sizeof a.action, "admin.create");
    snprintf(a.target, sizeof a.target, "%s", u.id);
    snprintf(a.meta, sizeof a.meta, "{\"via\":\"cli\"}");
    a.created_at = now;
    if ((rc = engine_audit_append(e, &s, &a)) != 0 || (rc = engine_commit(e)) != 0) {
        snprintf(msg, msgsz, "cannot create the account: %s", err_str(rc));
        goto fail;
    }
    snprintf(msg, msgsz, "created platform admin %s in organization %s", u.id, o.slug);
    goto out;
fail:
    engine_rollback(e);
out:
    free(phc);
    return rc;
}
