-- 0003_audit_partitions_by_app: the projector (DESIGN §6) makes the audit
-- log's partitions ahead as migrate does, but it runs as tessera_app, which owns
-- nothing and cannot create tables in core. So ensure_audit_partitions runs as
-- its owner (SECURITY DEFINER, its search_path already fixed in 0001) and the
-- app may call it. What it can do stays narrow: create this month's and at
-- most 24 months' partitions ahead, named by the function, never drop one.
-- Dropping old partitions (retention) is deliberately not granted here.

ALTER FUNCTION core.ensure_audit_partitions(integer) SECURITY DEFINER;
ALTER FUNCTION core.ensure_audit_partitions(integer) SET search_path = core, pg_temp;
REVOKE ALL ON FUNCTION core.ensure_audit_partitions(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION core.ensure_audit_partitions(integer) TO tessera_app;
