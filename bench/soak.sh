#!/usr/bin/env bash
# make soak (issue 18 §5; not in CI): the release build on PostgreSQL + Redis
# behind nginx, under SOAK_MINUTES (10) of mixed load from bench/soak_client.py
# (reads by id, list pages, creates, updates, vector searches, logins,
# refreshes), sampled every SOAK_EVERY (10) seconds: each API worker's private
# RSS and open descriptors other than sockets, the fleet's PostgreSQL connections
# (pg_stat_activity) and Redis clients. Verdicts, after a warm-up of
# SOAK_WARM (120) seconds: RSS growth under 1 MiB per worker, no descriptor
# growth, connections within workers × pools × [db] connection_limit, zero
# errors, no worker replaced. Writes bench/results/soak.md.
# Usage: bench/soak.sh BUILD
set -uo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
minutes=${SOAK_MINUTES:-10} every=${SOAK_EVERY:-10} warm=${SOAK_WARM:-120} threads=${SOAK_THREADS:-8}
export BUILD=$build TESSERA=$root/$build/tessera ENGINE=postgres
[ -x "$TESSERA" ] || { echo "soak: no $TESSERA (make all)" >&2; exit 1; }
. "$root/tests/integration/lib.sh"
out=$root/bench/results/soak.md
workers=2 limit=2

stack_up TESSERA_FLEET_WORKERS=$workers TESSERA_DB_CONNECTION_LIMIT=$limit || { echo "soak: the stack did not start" >&2; exit 1; }
J='Content-Type: application/json'
req POST /v1/auth/login -H "$J" -d '{"email":"admin@example.com","password":"tessera-dev"}'
TOKEN=$(jq -r .access_token <<<"$BODY")
req PUT /v1/svc/crm/schema/soak -H "Authorization: Bearer $TOKEN" -H "$J" \
    -d '{"fields":{"name":{"type":"string","required":true},"n":{"type":"integer","index":true},"emb":{"type":"vector(8)","index":true}}}'
[ "$STATUS" = 200 ] || { echo "soak: schema PUT answered $STATUS: $BODY" >&2; exit 1; }
db=$(sed -n 's/.*dbname=\([^ ]*\).*/\1/p' <<<"$PG_DB_APP_DSN")

api_pids() { "$TESSERA" status --json 2>/dev/null | jq -r '[.slots[] | select(.role == "api") | "\(.slot):\(.pid)"] | join(" ")'; }
priv_kb() { awk '/^(Private_Clean|Private_Dirty):/ { s += $2 } END { print s + 0 }' "/proc/$1/smaps_rollup" 2>/dev/null; }
sample() { # t → one line: t, then per worker slot:pid:rss_kb:fds, then pg connections, redis clients
    local line="$1" sp pid
    for sp in $(api_pids); do
        pid=${sp#*:}
        # descriptors other than sockets: the kept FastCGI connections come
        # and go with nginx's keepalive, a leak of files or pipes does not
        line+=" $sp:$(priv_kb "$pid"):$(find "/proc/$pid/fd" -mindepth 1 -printf '%l\n' 2>/dev/null | grep -vc '^socket:')"
    done
    line+=" pg=$(psql -X -At "$PG_DB_OWNER_DSN" -c "SELECT count(*) FROM pg_stat_activity WHERE datname = '$db' AND application_name = 'tessera'")"
    line+=" redis=$(redis-cli -p "$REDIS_PORT" info clients | sed -n 's/^connected_clients:\([0-9]*\).*/\1/p' | tr -d '\r')"
    echo "$line"
}

secs=$((minutes * 60))
TOKEN=$TOKEN python3 "$root/bench/soak_client.py" "$URL" "$secs" "$threads" >"$T/client.json" &
client=$!
start=$SECONDS
: >"$T/samples"
while kill -0 "$client" 2>/dev/null; do
    sample $((SECONDS - start)) >>"$T/samples"
    sleep "$every"
done
wait "$client"
sample $((SECONDS - start)) >>"$T/samples"

# --- verdicts
projectors=$("$TESSERA" status --json | jq '[.slots[] | select(.role == "projector")] | length')
max_pg=$(((workers + projectors) * 3 * limit + projectors))   # core, test, live pools; a projector's LISTEN
verdicts=$(python3 - "$T/samples" "$T/client.json" "$warm" "$max_pg" <<'PY'
import json, sys
samples, client, warm, max_pg = sys.argv[1], json.load(open(sys.argv[2])), int(sys.argv[3]), int(sys.argv[4])
rows = []
for line in open(samples):
    f = line.split()
    w = {p.split(":")[0]: p.split(":")[1:] for p in f[1:] if p.count(":") == 3}
    rows.append((int(f[0]), w, int(f[-2].split("=")[1] or 0), int(f[-1].split("=")[1] or 0)))
after = [r for r in rows if r[0] >= warm] or rows[-1:]
out, ok = [], True
for slot in sorted(after[0][1]):
    pids = {r[1][slot][0] for r in after if slot in r[1]}
    rss = [int(r[1][slot][1]) for r in after if slot in r[1]]
    fds = [int(r[1][slot][2]) for r in after if slot in r[1]]
    growth = rss[-1] - rss[0]
    good = len(pids) == 1 and growth < 1024 and max(fds) == min(fds)
    ok &= good
    out.append("| worker slot %s | %s | %d → %d KiB (%+d KiB) | %d → %d | %s |" % (
        slot, ",".join(sorted(pids)), rss[0], rss[-1], growth, fds[0], fds[-1], "pass" if good else "FAIL"))
pg, rd = max(r[2] for r in rows), max(r[3] for r in rows)
ok &= pg <= max_pg and client["errors"] == 0
out.append("| PostgreSQL connections | max %d (bound %d) | | | %s |" % (pg, max_pg, "pass" if pg <= max_pg else "FAIL"))
out.append("| Redis clients | max %d | | | |" % rd)
out.append("| requests | %d, errors %d | | | %s |" % (client["requests"], client["errors"], "pass" if client["errors"] == 0 else "FAIL"))
print("\n".join(out))
print("VERDICT " + ("pass" if ok else "FAIL"))
PY
)
{
    echo "# Soak: $minutes minutes of mixed load"
    echo
    echo "Generated $(date -u +%FT%TZ) by \`make soak\` (bench/soak.sh): release build, engine postgres,"
    echo "$workers API workers, \`[db] connection_limit = $limit\`, $threads client threads, samples every $every s,"
    echo "verdicts from $warm s on. Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo
    echo "| what | pid / figure | private RSS after warm-up | open fds (not sockets) | verdict |"
    echo "|---|---|---|---|---|"
    grep -v '^VERDICT' <<<"$verdicts"
    echo
    echo "**$(grep '^VERDICT' <<<"$verdicts" | cut -d' ' -f2)**"
    echo
    echo "The mix, per kind and status:"
    echo
    echo '```'
    jq -c '.counts' "$T/client.json"
    echo '```'
    echo
    echo "Answers other than 2xx (the first 20, with their bodies), and the fleet's warnings and errors:"
    echo
    echo '```'
    jq -c '.bad[]' "$T/client.json"
    grep -E '"level":"(warn|error)"' "$T/fleet.log" | head -20
    echo '```'
    echo
    echo "Raw samples (seconds, slot:pid:private_rss_kb:non-socket fds per worker, pg connections, redis clients):"
    echo
    echo '```'
    cat "$T/samples"
    echo '```'
} >"$out"
cat "$out"
grep -q '^VERDICT pass' <<<"$verdicts"
