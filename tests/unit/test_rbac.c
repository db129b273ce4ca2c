/* rbac: which permission strings allow which action on which object. */
#include "unit.h"

#include "security/rbac.h"

static void star_star_allows_everything(void **state)
{
    static const char perms[][96] = {"*:*"};
    assert_true(rbac_allows(perms, 1, "records:delete", "crm/contacts"));
    assert_true(rbac_allows(perms, 1, "members:manage", "*"));
}

static void exact_action_and_object(void **state)
{
    static const char perms[][96] = {"records:read:crm/contacts"};
    assert_true(rbac_allows(perms, 1, "records:read", "crm/contacts"));
    assert_false(rbac_allows(perms, 1, "records:write", "crm/contacts"));
    assert_false(rbac_allows(perms, 1, "records:read", "crm/deals"));
    assert_false(rbac_allows(perms, 1, "records:read", "*"));
}

static void service_wildcard_covers_only_that_service(void **state)
{
    static const char perms[][96] = {"records:read:crm/*"};
    assert_true(rbac_allows(perms, 1, "records:read", "crm/deals"));
    assert_false(rbac_allows(perms, 1, "records:read", "crmx/deals"));
    assert_false(rbac_allows(perms, 1, "records:read", "billing/invoices"));
}

static void action_prefix_is_not_a_match(void **state)
{
    static const char perms[][96] = {"records:read:*"};
    assert_false(rbac_allows(perms, 1, "records:readall", "x/y"));
    assert_false(rbac_allows(perms, 1, "records", "x/y"));
}

static void any_of_several_permissions(void **state)
{
    static const char perms[][96] = {"audit:read:*", "keys:manage:*"};
    assert_true(rbac_allows(perms, 2, "keys:manage", "*"));
    assert_false(rbac_allows(perms, 2, "members:manage", "*"));
    assert_false(rbac_allows(perms, 0, "audit:read", "*"));
}

static void malformed_permissions_allow_nothing(void **state)
{
    static const char perms[][96] = {"records", "records:read", ""};
    assert_false(rbac_allows(perms, 3, "records:read", "*"));
}

static void covers_needs_every_wanted_permission(void **state)
{
    static const char owner[][96] = {"*:*"};
    static const char admin[][96] = {"records:read:*", "members:manage:*", "keys:manage:*"};
    static const char mgr[][96] = {"roles:manage:*"};
    static const char want_admin[][96] = {"records:read:*", "members:manage:*"};
    static const char want_all[][96] = {"*:*"};
    static const char want_svc[][96] = {"records:read:crm/*", "records:read:crm/deals"};

    assert_true(rbac_covers(owner, 1, want_admin, 2));
    assert_true(rbac_covers(owner, 1, want_all, 1));
    assert_true(rbac_covers(admin, 3, want_admin, 2));
    assert_true(rbac_covers(admin, 3, want_svc, 2));
    assert_false(rbac_covers(admin, 3, want_all, 1));
    assert_false(rbac_covers(mgr, 1, want_admin, 2));
    assert_true(rbac_covers(mgr, 1, want_admin, 0)); /* nothing wanted, nothing needed */
}

static void validation(void **state)
{
    assert_true(rbac_valid("*:*"));
    assert_true(rbac_valid("records:read:*"));
    assert_true(rbac_valid("records:write:crm/*"));
    assert_true(rbac_valid("records:delete:crm/contacts"));
    assert_false(rbac_valid("records:read"));
    assert_false(rbac_valid("records:read:crm"));
    assert_false(rbac_valid("Records:read:*"));
    assert_false(rbac_valid("records:read:crm/con tacts"));
    assert_false(rbac_valid("drop table"));
    assert_false(rbac_valid("records:read:crm/x/y"));
    /* only the actions something checks: a misspelt one would grant nothing */
    assert_true(rbac_valid("audit:read:*"));
    assert_true(rbac_valid("keys:manage:*"));
    assert_true(rbac_valid("members:manage:*"));
    assert_true(rbac_valid("roles:manage:*"));
    assert_true(rbac_valid("schema:write:*"));
    assert_true(rbac_valid("*:crm/*"));
    assert_false(rbac_valid("records:reed:*"));
    assert_false(rbac_valid("record:read:*"));
    assert_false(rbac_valid("members:invite:*"));
    assert_false(rbac_valid("audit:*:*"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(star_star_allows_everything),
        cmocka_unit_test(exact_action_and_object),
        cmocka_unit_test(service_wildcard_covers_only_that_service),
        cmocka_unit_test(action_prefix_is_not_a_match),
        cmocka_unit_test(any_of_several_permissions),
        cmocka_unit_test(malformed_permissions_allow_nothing),
        cmocka_unit_test(covers_needs_every_wanted_permission),
        cmocka_unit_test(validation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
