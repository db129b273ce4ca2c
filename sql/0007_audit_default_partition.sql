-- 0007_audit_default_partition: the audit log never refuses a row (issue 11).
--
-- Every login and every audited write inserts into core.audit_log in its own
-- transaction, and until now only `tessera migrate` made partitions (this
-- month and two ahead): a deployment that ran three months without a migrate
-- would have started failing logins. Two changes, either of which alone
-- would keep logins working:
--   - the fleet keeps partitions ahead itself: its maintenance process calls
--     core.ensure_audit_partitions at start and every [fleet]
--     maintenance_interval (0003 lets tessera_app call it);
--   - a DEFAULT partition takes any row no monthly partition covers (a clock
--     far ahead, a month the maintenance never reached), so an insert never
--     fails for want of a partition.
-- A month whose rows already sit in the default partition cannot get its own
-- partition (PostgreSQL refuses to create one the default holds rows for);
-- ensure_audit_partitions skips such a month and leaves its rows where they
-- are, still read through core.audit_log. Retention (issue 14) drops them with
-- the default partition's own policy.

DO $$
BEGIN
    IF to_regclass('core.audit_log_default') IS NULL THEN
        CREATE TABLE core.audit_log_default PARTITION OF core.audit_log DEFAULT;
    END IF;
END $$;
-- As every partition: RLS forced with no policy (nothing is visible through
-- it directly), no grants, and its own TRUNCATE trigger (statement triggers
-- are not inherited).
ALTER TABLE core.audit_log_default ENABLE ROW LEVEL SECURITY;
ALTER TABLE core.audit_log_default FORCE ROW LEVEL SECURITY;
DO $$
BEGIN
    CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON core.audit_log_default
        FOR EACH STATEMENT EXECUTE FUNCTION core.audit_log_refuse();
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

-- As 0001 made it (SECURITY DEFINER and callable by the app since 0003), and
-- now skipping a month the default partition holds rows of.
CREATE OR REPLACE FUNCTION core.ensure_audit_partitions(months_ahead integer)
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER SET search_path = core, pg_temp AS $$
DECLARE
    first date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
    lo date;
    lo_ts timestamptz;
    hi_ts timestamptz;
    part text;
    made integer := 0;
BEGIN
    IF months_ahead < 0 OR months_ahead > 24 THEN
        RAISE EXCEPTION 'ensure_audit_partitions: months_ahead % out of 0..24', months_ahead;
    END IF;
    FOR i IN 0..months_ahead LOOP
        lo := first + make_interval(months => i);
        lo_ts := lo::timestamp AT TIME ZONE 'UTC';
        hi_ts := (lo + interval '1 month')::timestamp AT TIME ZONE 'UTC';
        part := 'audit_log_' || to_char(lo, 'YYYY_MM');
        IF to_regclass('core.' || part) IS NULL THEN
            IF EXISTS (SELECT 1 FROM core.audit_log_default WHERE created_at >= lo_ts AND created_at < hi_ts) THEN
                CONTINUE;
            END IF;
            EXECUTE format('CREATE TABLE core.%I PARTITION OF core.audit_log FOR VALUES FROM (%L) TO (%L)',
                           part, lo_ts, hi_ts);
            made := made + 1;
        END IF;
        EXECUTE format('ALTER TABLE core.%I ENABLE ROW LEVEL SECURITY', part);
        EXECUTE format('ALTER TABLE core.%I FORCE ROW LEVEL SECURITY', part);
        BEGIN
            EXECUTE format('CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON core.%I '
                           'FOR EACH STATEMENT EXECUTE FUNCTION core.audit_log_refuse()', part);
        EXCEPTION WHEN duplicate_object THEN NULL;
        END;
    END LOOP;
    RETURN made;
END $$;
REVOKE ALL ON FUNCTION core.ensure_audit_partitions(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION core.ensure_audit_partitions(integer) TO tessera_app;
