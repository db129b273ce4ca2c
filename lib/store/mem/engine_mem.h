/* engine_mem: the memory engine, struct engine_ops over the fleet's shared
 * region (lib/store/mem/shm.h). Every worker opens it on the region the master created
 * before forking, so all of them see one data set; it lasts as long as the
 * fleet. It keeps the rules of lib/store/engine.h: a unit of work is one shm section
 * (begin takes the region's robust lock, commit releases it, rollback or a dead
 * holder undoes it), and every tenant-scoped call sees its scope's org only.
 * It does not persist anything. The projector role reaps it (engine.h
 * reap): expired records, refresh tokens and invites past their grace, audit
 * entries past the retention; until then callers check the times. Its
 * change feed keeps at most MEMREC_CHANGES_MAX (engine_mem_records.h: 10 000)
 * projected events per service and mode besides the retention, so the region
 * stays flat however many writes come; a cursor older than that is ERR_GONE.
 *
 * Behaviour the engine.h comments leave open, as this engine defines it (the
 * PostgreSQL engine should match):
 *   - A record written under a scope must carry that scope's org_id, and a
 *     scoped call must use the org it began with (when begin got a scope):
 *     anything else is a handler bug, ERR_INTERNAL.
 *   - Arguments are checked by the wrappers of lib/store/engine.h (ids
 *     canonical uuids, strings inside their fields, modes 0 or 1, ...: else
 *     ERR_INVAL) before an op runs; the ops assume checked arguments.
 *   - member_put and refresh_create need an existing user (ERR_NOTFOUND, as a
 *     foreign key would); member_put keeps created_at of a membership it
 *     updates.
 *   - invite_mark_used refuses an already used one with ERR_CONFLICT (two
 *     signups on one invite: the second loses); refresh_rotate decides a
 *     second use itself (lib/store/engine.h, refresh rotation). api_key_revoke of a revoked key succeeds and keeps the
 *     first time. refresh_revoke_family of a family the org has no token of
 *     does nothing and succeeds (another org's family is never touched); its
 *     cost does not grow with the family's size.
 *   - Lists fill at most max entries and set *n to how many; they are sorted:
 *     user_memberships and member_list by created_at then id, role_list
 *     built-ins (engine.c's order) then the org's by name, api_key_list newest
 *     first, app_list by name, audit_list newest first by id.
 *   - A call that fails with ERR_NOSPACE (the region or the section's undo log
 *     is full) may have written part of its change, so it spoils the unit of
 *     work: later calls return ERR_INTERNAL, and commit rolls back and returns
 *     ERR_NOSPACE; nothing of it is ever committed. A call that fails
 *     otherwise (ERR_NOTFOUND, ERR_CONFLICT, ERR_INVAL) has changed nothing,
 *     and the unit of work goes on.
 * A handle belongs to one process (workers are single-threaded). */
#ifndef LIB_ENGINE_MEM_H
#define LIB_ENGINE_MEM_H

#include "store/engine.h"

struct shm_region;

/* Lays out the engine's structures in r (once, before the fleet forks; a second
 * call finds them and does nothing). 0, or an err.h code with the reason in
 * errstr (which may be NULL): ERR_NOSPACE when r is too small, ERR_UNAVAILABLE
 * when its lock is unusable. engine_mem_new works without it (the first begin
 * lays them out), but the master calling it finds a too-small region at start. */
int engine_mem_prepare(struct shm_region *r, char errstr[128]) ERR_MUST_CHECK;

/* Returns owned (engine_free): a memory engine on r, which must outlive it. NULL
 * when out of memory or r is NULL (errstr says which; may be NULL). Takes no
 * lock: each forked worker calls it on the region it inherited. */
struct engine *engine_mem_new(struct shm_region *r, char errstr[128]);

#endif
