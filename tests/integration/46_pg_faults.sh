#!/usr/bin/env bash
# Issue 12 item 8: lib/store/pg when the connection is lost mid-pipeline,
# against a real PostgreSQL. tests/fault/fault_pg (ASan + LeakSanitizer) runs
# pipelines whose later statement kills its own backend, and pipelines during
# which this suite's cluster is stopped at once and started again; it checks
# ERR_UNAVAILABLE, that the pools serve again, and that LeakSanitizer finds
# no leak (every result that had arrived before the loss is freed).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg.sh"
FAULT=$BUILD/asan/fault/fault_pg

[ -x "$FAULT" ] || { not_ok "$FAULT is built (make fault)"; exit 1; }
pg_up || { not_ok "postgresql starts"; exit 1; }

# The program stops and starts the cluster through this: `pgctl pg_crash|pg_start`.
printf '#!/usr/bin/env bash\nset -u\n. %q\nT=%q PG_DIR=%q PG_PORT=%q PG_SOCK=%q\n"$1"\n' \
    "$ROOT/tests/integration/pg.sh" "$T" "$PG_DIR" "$PG_PORT" "$PG_SOCK" >"$T/pgctl"
chmod +x "$T/pgctl"

# server_up: the cluster answers.
server_up() { pg_psql postgres -At -c "SELECT 1" | grep -qx 1; }

TESSERA_FAULT_PG_DSN="host=$PG_SOCK port=$PG_PORT dbname=tessera user=tessera_owner" \
    TESSERA_FAULT_PG_CTL=$T/pgctl CMOCKA_MESSAGE_OUTPUT=TAP \
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    timeout 300 "$FAULT" >"$T/fault.out" 2>&1
rc=$?
grep -E '^(ok|not ok) ' "$T/fault.out" | sed -E 's/^(ok|not ok) [0-9]+ - /\1 - fault_pg: /'
grep -vE '^(ok|not ok) |^WARNING:  terminating connection due to immediate shutdown' "$T/fault.out" | sed 's/^/# /' | head -60
if [ "$rc" -eq 0 ] && ! grep -qE 'ERROR: (Address|Leak|Undefined)Sanitizer|runtime error' "$T/fault.out"; then
    ok "fault_pg exits 0 with no sanitizer report"
else
    not_ok "fault_pg exits 0 with no sanitizer report" "exit status $rc"
fi

check "the cluster answers after the restarts (fault_pg starts it again each time)" wait_until 30 server_up
