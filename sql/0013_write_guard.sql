-- 0013_write_guard: a record write that checks the definition it was built
-- from in the same round trip as the write (issue 18, the bench's create).
--
-- A worker keeps the resource definitions it read. A write built from a kept
-- one is sent as [this guard, the write] in one pipeline: the guard takes the
-- FOR KEY SHARE a definition read by a write takes (a schema change's FOR
-- UPDATE waits for it, and it for the change), in a statement of its own
-- before the write's, so the lock comes before the write's table lock, as it
-- does on the long way. Under READ COMMITTED a row changed by a transaction
-- that committed meanwhile is locked in its newest version and the condition
-- checked again, so the version compared is the one in force. A different
-- version raises serialization_failure: the write after it never runs, the
-- transaction keeps nothing, and the request runs again from its start with
-- the definition read afresh (app/fleet/worker.c). Safe to run twice.
CREATE OR REPLACE FUNCTION core.svc_resource_guard(p_service text, p_mode text, p_name text, p_version integer)
RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM 1 FROM core.resources
     WHERE service = p_service AND mode = p_mode AND name = p_name AND version = p_version
       FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the definition of %/% changed under this request', left(p_service, 64), left(p_name, 64)
            USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN true;
END $$;

REVOKE ALL ON FUNCTION core.svc_resource_guard(text, text, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION core.svc_resource_guard(text, text, text, integer) TO tessera_app;
