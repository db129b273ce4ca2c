/* text: the rules about small pieces of text that several layers share, so
 * each is written once: what a name of each kind may look like, which names
 * the system keeps for itself, and hex digits. Pure functions on ASCII; no
 * allocation, no knowledge of the layers that use them (lib/core is the
 * bottom layer: the limits below are numbers, not engine.h's sizes). */
#ifndef LIB_CORE_TEXT_H
#define LIB_CORE_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* ---- names ------------------------------------------------------------------
 * An identifier is ^[a-z][a-z0-9_]{0,max_len-1}$: ASCII lower-case letters,
 * digits and '_', a letter first. Such a name needs no escaping in a URL
 * segment, a cache key, a log line or a PostgreSQL identifier (which then
 * folds nothing), and it cannot begin like a system name ("_bidx",
 * "_outbox", "_r"). Every kind of name in tessera, in one place:
 *
 *   resource, field and view names   identifiers of up to TEXT_NAME_MAX, and
 *                                    not text_reserved (a field becomes a
 *                                    column and a member of every record)
 *   service names                    identifiers of up to TEXT_NAME_MAX (the
 *                                    engines' check); the API also refuses a
 *                                    reserved one (schema.c's svc_check), so
 *                                    an app named so is never a service
 *   app names (POST /v1/apps)        identifiers of up to TEXT_APP_MAX: an app
 *                                    of kind microservice is a service, and its
 *                                    data schemas svc_<name>_sandbox / _live
 *                                    then keep the whole name
 *   role names                       identifiers of up to TEXT_ROLE_MAX
 *   org slugs                        not identifiers: made by signup from the
 *                                    org's name as ^[a-z0-9][a-z0-9-]{0,62}$
 *                                    (core.organizations checks that shape)
 *
 * The database's own CHECKs on app and role names and core.svc_schema_name
 * (sql/0001, sql/0004) are looser (a digit first, '-'): what passes here
 * passes there, and the API and both engines apply this rule. */
#define TEXT_NAME_MAX 63        /* PostgreSQL's identifier limit (NAMEDATALEN - 1) */
#define TEXT_APP_MAX 40
#define TEXT_ROLE_MAX 31

/* Whether s (NULL: false) is an identifier of 1 to max_len bytes. Reads at
 * most max_len + 1 bytes of s. */
bool text_ident_valid(const char *s, size_t max_len);

/* Whether name (NULL: false) is kept by the system, so no resource, field or
 * view may take it: a record's own members (id, org_id, version, created_at,
 * updated_at, expires_at, deleted_at), the words of a list query (cursor,
 * limit, order, search, schema, views, _score) and PostgreSQL's system
 * columns (ctid, xmin, xmax, cmin, cmax, tableoid, oid). */
bool text_reserved(const char *name);

/* ---- hex -------------------------------------------------------------------- */

/* The value 0..15 of hex digit c (0-9, a-f, A-F), or -1 for any other c
 * (EOF and negative chars included). Callers that accept only one case
 * check the case themselves. */
static inline int text_hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

#endif
