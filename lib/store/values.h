/* values: the rules of engine.h's resources section that are the same for
 * both engines and the API above them: field types and their names, resource
 * and field names, whether a value is of a field's type, strict casts between
 * types, whether a record fits a definition. Pure functions of their
 * arguments: no engine, no storage, no I/O. */
#ifndef LIB_STORE_VALUES_H
#define LIB_STORE_VALUES_H

#include <stdbool.h>
#include <stddef.h>

#include <cJSON.h>

#include "core/err.h"
#include "store/engine.h"

/* Whether s (ending within cap bytes) is a resource or field name: an
 * identifier of up to TEXT_NAME_MAX (core/text.h: ^[a-z][a-z0-9_]{0,62}$).
 * Whether it is also reserved is text_reserved's question. */
bool eng_name_valid(const char *s, size_t cap);
/* "string", "vector(3)" → type and dim; ERR_INVAL otherwise. */
int eng_ftype_parse(const char *s, int *type, int *dim) ERR_MUST_CHECK;
/* The type's name into buf ("vector(3)"); returns buf. */
const char *eng_ftype_name(int type, int dim, char buf[24]);
/* Borrowed: the field of r named name, or NULL. */
const struct eng_field *eng_resource_field(const struct eng_resource *r, const char *name);
/* Whether v (not null) is a value of f's type: 0, or ERR_INVAL with *why (a constant). */
int eng_value_check(const struct eng_field *f, const cJSON *v, const char **why) ERR_MUST_CHECK;
/* Returns owned: v (of type from/from_dim, not null) cast to f's type, or NULL
 * with *why (a constant) when it cannot cast strictly. */
cJSON *eng_value_cast(const cJSON *v, int from, int from_dim, const struct eng_field *f,
                      const char **why);
/* Whether rec's data fits def: known fields, values of their types, required
 * ones present, pii values sealed and with their blind index. 0, or ERR_INVAL
 * with the reason in why. */
int eng_record_fits(const struct eng_resource *def, const struct eng_record *rec, char why[128]) ERR_MUST_CHECK;
/* Frees rec->data and rec->bidx and sets them NULL; NULL is a no-op. */
void eng_record_cleanup(struct eng_record *rec);
/* Whether d is a well-formed definition: service, resource and field names
 * as core/text.h has them for each kind (no field reserved), field count,
 * types and flags (pii only on string and text, without a default), no field
 * named twice. Both engines refuse any other (ERR_INVAL). */
bool eng_resource_valid(const struct eng_resource *d);

#endif
