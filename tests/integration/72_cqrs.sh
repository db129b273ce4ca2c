#!/usr/bin/env bash
# CQRS (issue 14, DESIGN §6) through real nginx and a fleet of 2 api workers
# and 1 projector, once per engine: views kept by the projector under 10 000
# writes across 3 orgs and both modes while the projector is killed -9 twice
# (equal to a GROUP BY over the records, computed here from the list API and,
# on PostgreSQL, with psql), their lag, back-fill / drop / rebuild of a view,
# tenant separation of read models, the change feed paged while writes run
# (every committed change exactly once, in order; a rolled-back write never),
# the reaper (expired records gone from the table, one audit row per run, old
# audit partitions dropped) and, on memory, a shared region that stays flat.
# engines: memory postgres
. "$(dirname "$0")/lib.sh"

LOAD="python3 $ROOT/tests/integration/cqrs_load.py"
stack_up TESSERA_CQRS_POLL_MS=200 TESSERA_CQRS_REAP_INTERVAL=1 TESSERA_FLEET_RESTART_BACKOFF_MAX=1 ||
    { not_ok "stack starts"; exit 1; }
ok "stack starts with a projector"
J='Content-Type: application/json'
PG=false
[ "${ENGINE:-memory}" = postgres ] && PG=true
owner_sql() { psql -X -At -q -v ON_ERROR_STOP=1 "$PG_DB_OWNER_DSN" "$@"; }
app_sql() { psql -X -At -q -v ON_ERROR_STOP=1 "$PG_DB_APP_DSN" "$@"; }

login admin@example.com; ADMIN=$TOKEN     # Acme's owner, a platform admin
login bob@globex.test; BOB=$TOKEN         # Globex's owner
login demo@example.com; DEMO=$TOKEN       # Demo Co's owner
ACME=11111111-1111-4111-8111-111111111111
GLOBEX=22222222-2222-4222-8222-222222222222
DEMOORG=33333333-3333-4333-8333-333333333333
as() { # token mode method path [json]
    local t=$1 m=$2 meth=$3 path=$4
    shift 4
    req "$meth" "$path" -H "Authorization: Bearer $t" -H "Tessera-Mode: $m" ${1:+-H "$J" -d "$1"}
}
put_schema() { # mode resource json
    as "$ADMIN" "$1" PUT "/v1/svc/crm/schema/$2" "$3"
}
projector_pid() { fleet_json '[.slots[] | select(.role == "projector" and (.state == "idle" or .state == "busy")) | .pid][0]'; }
projector_replaced() { local p; p=$(projector_pid); [ -n "$p" ] && [ "$p" != null ] && [ "$p" != "$1" ]; }
# every record of one org and mode, through the list API: [{stage, amount}, …]
all_records() { # token mode resource
    local cursor="" acc="$T/all_records.jsonl"
    : >"$acc" # pages gathered in a file: a thousand records overflow one argument
    while :; do
        as "$1" "$2" GET "/v1/svc/crm/$3?limit=100${cursor:+&cursor=$cursor}"
        [ "$STATUS" = 200 ] || { echo "list: $STATUS $BODY" >&2; return 1; }
        jq -c '.data[]' <<<"$BODY" >>"$acc"
        cursor=$(jq -r '.next_cursor // empty' <<<"$BODY")
        [ -n "$cursor" ] || break
    done
    jq -cs . "$acc"
}
# the view's rows as [[key, count, sum], …] sorted; from the API
view_rows() { # token mode resource view groupfield sumfield
    as "$1" "$2" GET "/v1/svc/crm/$3/views/$4"
    [ "$STATUS" = 200 ] || { echo "view: $STATUS $BODY" >&2; return 1; }
    jq -c --arg g "$5" --arg s "$6" '[.data[] | [.key[$g], .count, .sum[$s]]] | sort' <<<"$BODY"
}
# what the view must hold, from the records: GROUP BY over the list API
group_by() { # records-json groupfield sumfield
    jq -c --arg g "$2" --arg s "$3" \
        'group_by(.[$g]) | map([.[0][$g], length, (map(.[$s] // 0) | add)]) | sort' <<<"$1"
}
caught_up() { # token mode resource view: lag 0 and the projector's row says so too
    as "$1" "$2" GET "/v1/svc/crm/$3/views/$4"
    [ "$STATUS" = 200 ] && [ "$(jq -r .lag_ms <<<"$BODY")" -lt 1000 ] &&
        [ "$(fleet_json '[.slots[] | select(.role == "projector") | .lag_ms] | max')" -lt 1000 ] 2>/dev/null
}

# ---- the projector in the status table
check "status shows a projector row with events_applied and lag_ms" \
    test "$(fleet_json '[.slots[] | select(.role == "projector" and .pid > 0 and (.events_applied | type) == "number" and (.lag_ms | type) == "number")] | length')" = 1
check "the status table shows the projector with its lag" bash -c "'$TESSERA' status | grep -E '^2 +projector .* lag [0-9]+ms'"

# ---- schemas with a view, in both modes
VIEWS='"options":{"views":{"pipeline":{"group_by":["stage"],"count":true,"sum":["amount"]}}}'
for m in test live; do
    put_schema $m deals "{\"fields\":{\"stage\":{\"type\":\"string\"},\"amount\":{\"type\":\"integer\"}},$VIEWS}"
    expect "deals with a pipeline view ($m)" 200 '.options.views.pipeline.count == true'
done
as "$ADMIN" test GET /v1/svc/crm/deals/views/pipeline
expect "an empty resource's view: no rows, lag 0" 200 '(.data | length) == 0 and .lag_ms >= 0 and (.as_of | fromdateiso8601) > 0'
as "$ADMIN" test GET /v1/svc/crm/deals/views/nosuch
expect_error "an undeclared view → 404" 404 not_found
as "$ADMIN" test GET /v1/svc/crm/deals/views/pipeline?x=1
expect_error "an unknown parameter → 400" 400 invalid_request
req GET /v1/svc/crm/deals/views/pipeline
expect_error "a view needs a token" 401 unauthorized
as "$ADMIN" test GET /v1/svc/crm/nosuch/views/pipeline
expect_error "a view of no resource → 404" 404 not_found

# A rolled-back write: on PostgreSQL a deferred trigger fails the commit of
# any deal in stage "doomed" (its row and its outbox entry roll back together).
DOOMED=0
if $PG; then
    owner_sql -c "CREATE FUNCTION public.doom() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN
                    IF NEW.stage = 'doomed' THEN RAISE EXCEPTION 'doomed'; END IF; RETURN NULL; END \$\$" \
              -c "CREATE CONSTRAINT TRIGGER doom AFTER INSERT ON svc_crm_sandbox.deals
                    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.doom()" ||
        not_ok "the doom trigger is installed"
    DOOMED=3
fi

# ---- 10 000 writes over 3 orgs × 2 modes, a feed client paging meanwhile,
# and the projector killed -9 twice
COMBOS=("$ADMIN:test" "$BOB:test" "$DEMO:test" "$ADMIN:live" "$BOB:live" "$DEMO:live")
rm -f "$T/feed.stop"
$LOAD follow "$URL" deals "$ADMIN" test "$T/feed.jsonl" "$T/feed.stop" &
FOLLOW=$!
t0=$(date +%s.%N)
DOOMED=$DOOMED $LOAD write "$URL" deals 10000 "$T/writes.jsonl" "${COMBOS[@]}" &
WRITER=$!
killed=()
for _ in 1 2; do
    sleep 1.5
    pid=$(projector_pid)
    [ -n "$pid" ] && [ "$pid" != null ] && kill -9 "$pid" && killed+=("$pid")
    wait_until 10 projector_replaced "$pid"
done
wait "$WRITER"
t1=$(date +%s.%N)
writes=$(wc -l <"$T/writes.jsonl")
bad=$(jq -s --argjson d "$DOOMED" '[.[] | select(.status >= 500 and (.op != "create" or $d == 0))] | length' "$T/writes.jsonl")
check "10 000 writes ran ($(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s), none with a 5xx but the doomed" \
    test "$writes" -ge 10000 -a "$bad" = 0
check "the projector was killed -9 twice during the load (${killed[*]})" test "${#killed[@]}" = 2
check "…and restarted each time (its slot counts the restarts)" \
    test "$(fleet_json '[.slots[] | select(.role == "projector") | .restarts] | max')" -ge 2
all_caught_up() { caught_up "$ADMIN" test deals pipeline && caught_up "$DEMO" live deals pipeline; }
check "the views catch up: lag under 1 s within 15 s of the load's end" wait_until 15 all_caught_up
for c in "${COMBOS[@]}"; do
    tok=${c%:*} m=${c##*:}
    who=$([ "$tok" = "$ADMIN" ] && echo acme || { [ "$tok" = "$BOB" ] && echo globex || echo demo; })
    want=$(group_by "$(all_records "$tok" "$m" deals)" stage amount)
    got=$(view_rows "$tok" "$m" deals pipeline stage amount)
    if [ "$got" = "$want" ]; then ok "$who $m: the view's counts and sums equal a GROUP BY over the records"
    else not_ok "$who $m: the view's counts and sums equal a GROUP BY over the records" "got:  $got"$'\n'"want: $want"; fi
done
as "$ADMIN" test GET /v1/svc/crm/deals/views/pipeline
expect "…and its lag is back under 1 s" 200 '.lag_ms < 1000 and .truncated == false'
if $PG; then
    for m in sandbox live; do
        mode=$([ $m = sandbox ] && echo test || echo live)
        for org in $ACME $GLOBEX $DEMOORG; do
            tok=$([ $org = $ACME ] && echo "$ADMIN" || { [ $org = $GLOBEX ] && echo "$BOB" || echo "$DEMO"; })
            want=$(owner_sql -c "SELECT coalesce(json_agg(json_build_array(stage, n, s) ORDER BY stage), '[]')
                                 FROM (SELECT stage, count(*) AS n, coalesce(sum(amount), 0) AS s
                                       FROM svc_crm_$m.deals WHERE org_id = '$org' GROUP BY stage) g" | jq -c 'sort')
            got=$(view_rows "$tok" "$mode" deals pipeline stage amount)
            if [ "$got" = "$want" ]; then ok "psql: $m org ${org:0:8}: the view equals GROUP BY over svc_crm_$m.deals"
            else not_ok "psql: $m org ${org:0:8}: the view equals GROUP BY over svc_crm_$m.deals" "got:  $got"$'\n'"want: $want"; fi
        done
    done
    check "psql: no doomed deal was kept" test "$(owner_sql -c "SELECT count(*) FROM svc_crm_sandbox.deals WHERE stage = 'doomed'")" = 0
    check "the doomed creates failed at commit with 503" \
        test "$(jq -s '[.[] | select(.op == "create" and .status == 503)] | length' "$T/writes.jsonl")" = "$DOOMED"
    owner_sql -c "DROP TRIGGER doom ON svc_crm_sandbox.deals" -c "DROP FUNCTION public.doom()"
fi

# ---- the change feed, paged from the start while the writes ran
touch "$T/feed.stop"
wait "$FOLLOW"
check "the feed client paged without an error" bash -c "! grep -q '\"error\"' '$T/feed.jsonl'"
# what committed in Acme's test mode (combo 0), and what the feed gave
jq -s -c '[.[] | select(.combo == 0 and ((.op == "create" and .status == 201) or (.op == "update" and .status == 200) or (.op == "delete" and .status == 204)))
           | [.op, .id, (if .op == "delete" then 0 else .version end)]] | sort' "$T/writes.jsonl" >"$T/committed.json"
jq -s -c '[.[] | [.op, .id, (if .op == "delete" then 0 else .version end)]] | sort' "$T/feed.jsonl" >"$T/seen.json"
n_committed=$(jq length "$T/committed.json")
check "the feed has every committed change of Acme's test deals exactly once ($n_committed), and nothing else" \
    cmp -s "$T/committed.json" "$T/seen.json"
check "…in feed order: cursors strictly increasing, each page after the last" \
    jq -e -s '[.[] | .after // "0" | tonumber] as $a | [range(1; $a | length)] | all(. as $i | $a[$i] >= $a[$i - 1])' "$T/feed.jsonl"
check "…a record's changes in version order: create first, delete last" \
    jq -e -s 'group_by(.id) | all(. as $evs | ($evs | map(.version)) as $v | ($v == ($v | sort)) and ($evs[0].op == "create") and (($evs | map(.op) | index("delete")) as $d | $d == null or $d == ($evs | length) - 1))' "$T/feed.jsonl"
check "…creates and updates carry the record as it is now, deletes none" \
    jq -e -s 'all(.[]; if .op == "delete" then has("record") | not else (has("record") | not) or .record.id == .id end)' "$T/feed.jsonl"
check "…and no change of another org or mode (ids all Acme test's)" \
    bash -c "jq -s -r '[.[] | .id] | unique | .[]' '$T/feed.jsonl' | sort >'$T/feed-ids'; jq -s -r '[.[] | select(.combo == 0 and .id != null) | .id] | unique | .[]' '$T/writes.jsonl' | sort >'$T/acme-ids'; comm -23 '$T/feed-ids' '$T/acme-ids' | wc -l | grep -qx 0"
as "$ADMIN" test GET "/v1/svc/crm/deals/changes?limit=5"
expect "the feed from the start: 5 changes, next_cursor their last" 200 '(.data | length) == 5 and (.next_cursor | type) == "string"'
first=$(jq -r .next_cursor <<<"$BODY")
as "$ADMIN" test GET "/v1/svc/crm/deals/changes?after=$first&limit=100"
expect "…and the next page starts after it" 200 '(.data | length) == 100'
as "$BOB" test GET "/v1/svc/crm/deals/changes?limit=100"
expect "Globex's feed holds no Acme id" 200 "[.data[].id] - $(jq -s -c '[.[] | select(.combo == 0 and .id != null) | .id] | unique' "$T/writes.jsonl") == [.data[].id]"
as "$ADMIN" test GET "/v1/svc/crm/deals/changes?after=abc"
expect_error "a malformed cursor → 400" 400 invalid_request
as "$ADMIN" test GET "/v1/svc/crm/deals/changes?limit=0"
expect_error "limit 0 → 400" 400 invalid_request
as "$ADMIN" test GET "/v1/svc/crm/deals/changes?since=1"
expect_error "an unknown parameter → 400" 400 invalid_request
as "$ADMIN" test GET "/v1/svc/crm/deals/changes?after=99999999999"
expect "a cursor past the head: an empty page that keeps it" 200 '(.data | length) == 0 and .next_cursor == "99999999999"'
as "$ADMIN" test PATCH /v1/svc/crm/deals/changes '{}'
expect_error "PATCH of the feed → 405" 405 method_not_allowed

# ---- a view added to a resource with 1 000 records: back-filled; org A's
# view never holds org B's rows; removed: gone; a retype: rebuilt
put_schema test notes '{"fields":{"stage":{"type":"string"},"amount":{"type":"integer"}}}'
expect "notes without views" 200 '.version == 1'
OPS=create $LOAD write "$URL" notes 1000 "$T/notes-acme.jsonl" "$ADMIN:test"
OPS=create $LOAD write "$URL" notes 60 "$T/notes-globex.jsonl" "$BOB:test"
check "1 000 Acme notes and 60 Globex notes written" \
    test "$(jq -s '[.[] | select(.status == 201)] | length' "$T/notes-acme.jsonl" "$T/notes-globex.jsonl")" -ge 1000
put_schema test notes '{"fields":{"stage":{"type":"string"},"amount":{"type":"integer"}},"options":{"views":{"by_stage":{"group_by":["stage"],"count":true,"sum":["amount"]}}}}'
expect "a view added to notes" 200 '.options.views.by_stage.count == true'
acme_notes=$(all_records "$ADMIN" test notes)
globex_notes=$(all_records "$BOB" test notes)
nA=$(jq length <<<"$acme_notes"); nB=$(jq length <<<"$globex_notes")
backfilled() { [ "$(view_rows "$ADMIN" test notes by_stage stage amount 2>/dev/null | jq '[.[][1]] | add // 0')" = "$nA" ]; }
check "the new view is back-filled with Acme's $nA notes" wait_until 10 backfilled
check "…and equals a GROUP BY over them" \
    test "$(view_rows "$ADMIN" test notes by_stage stage amount)" = "$(group_by "$acme_notes" stage amount)"
check "Globex's view holds its own $nB notes only" \
    test "$(view_rows "$BOB" test notes by_stage stage amount)" = "$(group_by "$globex_notes" stage amount)"
if $PG; then
    leak=0 seen=0
    for t in _outbox _feed _views; do
        n=$(app_sql -c "SELECT set_config('tessera.org_id', '$ACME', false)" \
                    -c "SELECT count(*) FROM svc_crm_sandbox.$t WHERE org_id <> '$ACME'" | tail -1)
        [ "$n" = 0 ] || leak=1
        seen=$((seen + $(owner_sql -c "SELECT count(*) FROM svc_crm_sandbox.$t WHERE org_id = '$GLOBEX'")))
    done
    check "psql as tessera_app with Acme's org: _outbox, _feed, _views show no other org's row (the owner sees Globex's $seen)" \
        test "$leak" = 0 -a "$seen" -gt 0
    check "psql as tessera_app without an org: the read model shows nothing" \
        test "$(app_sql -c "SELECT count(*) FROM svc_crm_sandbox._views")" = 0
    check "psql: tessera_app cannot read core.cqrs_defs, write _views or number the feed (42501)" \
        bash -c "for q in 'SELECT * FROM core.cqrs_defs' 'DELETE FROM svc_crm_sandbox._views' \
                          'UPDATE svc_crm_sandbox._outbox SET pos = 1' 'TRUNCATE svc_crm_sandbox._feed'; do
                     psql -X -At -v VERBOSITY=verbose '$PG_DB_APP_DSN' -c \"\$q\" 2>&1 | grep -q 42501 || exit 1; done"
    listen_one() {
        # the superuser sees every session's last statement
        [ "$(pg_psql postgres -At -c "SELECT count(*) FROM pg_stat_activity WHERE query = 'LISTEN tessera_outbox' AND usename = 'tessera_app'")" = 1 ] ||
            { pg_psql postgres -At -c "SELECT usename, state, left(query, 60) FROM pg_stat_activity WHERE usename = 'tessera_app'"; return 1; }
    }
    check "psql: the projector LISTENs on one connection of its own (one database for both modes)" listen_one
    check "psql: the read-model tables are under forced RLS" \
        test "$(owner_sql -c "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                              WHERE n.nspname = 'svc_crm_sandbox' AND c.relkind = 'r' AND NOT (c.relrowsecurity AND c.relforcerowsecurity)")" = 0
fi
put_schema test notes '{"fields":{"stage":{"type":"string"},"amount":{"type":"number"}},"options":{"views":{"by_stage":{"group_by":["stage"],"count":true,"sum":["amount"]}}}}'
expect "the summed field retyped to number" 200 '.fields.amount.type == "number"'
rebuilt() { as "$ADMIN" test GET /v1/svc/crm/notes/views/by_stage; [ "$STATUS" = 200 ] && [ "$(jq '[.data[].count] | add // 0' <<<"$BODY")" = "$nA" ] && [ "$(jq '.lag_ms' <<<"$BODY")" -lt 1000 ]; }
check "…the view is rebuilt with the same groups" wait_until 10 rebuilt
check "…and equals a GROUP BY again" \
    test "$(view_rows "$ADMIN" test notes by_stage stage amount)" = "$(group_by "$acme_notes" stage amount)"
put_schema test notes '{"fields":{"stage":{"type":"string"},"amount":{"type":"number"}}}'
expect "the view removed from notes" 200 '(.options.views | length) == 0'
as "$ADMIN" test GET /v1/svc/crm/notes/views/by_stage
expect_error "…and is a 404 now" 404 not_found

# ---- the reaper: expired records leave the table, one audit row per run
put_schema test sessions '{"fields":{"who":{"type":"string","pii":true}},"options":{"expire_after":1}}'
expect "sessions expire after 1 s" 200 '.options.expire_after == 1'
reaped_before=$(curl -s "$URL/metrics" | awk '$1 == "tessera_reaped_records_total" {print $2}')
ids=()
for i in $(seq 1 20); do
    as "$ADMIN" test POST /v1/svc/crm/sessions "{\"who\":\"user$i@acme.test\"}"
    ids+=("$(jq -r .id <<<"$BODY")")
done
check "20 sessions stored" test "${#ids[@]}" = 20 -a "${ids[19]}" != null
as "$ADMIN" test POST /v1/svc/crm/sessions '{"who":"fresh@acme.test"}'
fresh=$(jq -r .id <<<"$BODY") fresh_exp=$(jq -r '.expires_at | fromdateiso8601' <<<"$BODY")
as "$ADMIN" test GET "/v1/svc/crm/sessions/$fresh"
# within its second it reads back; a second boundary in between may have expired it, rightly
fresh_ok() { [ "$STATUS" = 200 ] && [ "$(jq -r .who <<<"$BODY")" = fresh@acme.test ] || [ "$STATUS" = 404 -a "$(date +%s)" -ge "$fresh_exp" ]; }
check "a fresh session reads back until its expires_at" fresh_ok
gone_ok=true returned_late=false
deadline=$(($(date +%s) + 8))
while [ "$(date +%s)" -lt "$deadline" ]; do
    now=$(date +%s)
    as "$ADMIN" test GET "/v1/svc/crm/sessions/${ids[0]}"
    if [ "$STATUS" = 200 ] && [ "$(jq -r '.expires_at | fromdateiso8601' <<<"$BODY")" -lt "$now" ]; then returned_late=true; fi
    reaped=$(curl -s "$URL/metrics" | awk '$1 == "tessera_reaped_records_total" {print $2}')
    [ $((reaped - reaped_before)) -ge 21 ] && break
    sleep 0.2
done
check "an expired session is never returned after its expires_at" test "$returned_late" = false
check "the reaper deleted the 21 sessions within a few seconds (tessera_reaped_records_total)" \
    test $((reaped - reaped_before)) -ge 21
as "$ADMIN" test GET /v1/svc/crm/sessions
expect "…and the list is empty" 200 '(.data | length) == 0'
if $PG; then
    check "psql: svc_crm_sandbox.sessions holds no row (their sealed values are gone)" \
        test "$(owner_sql -c "SELECT count(*) FROM svc_crm_sandbox.sessions")" = 0
fi
as "$ADMIN" test GET "/v1/svc/crm/sessions/changes?limit=100"
expect "the feed shows each session's create and its delete" 200 '([.data[] | select(.op == "delete")] | length) == 21 and ([.data[] | select(.op == "create")] | length) == 21'
audits=0
for tok in "$ADMIN" "$DEMO"; do
    as "$tok" live GET "/v1/audit?limit=100"
    audits=$((audits + $(jq '[.data[] | select(.action == "reaper.run")] | length' <<<"$BODY")))
    runs=$(jq -c '[.data[] | select(.action == "reaper.run") | .meta.records] ' <<<"$BODY")
    [ "$(jq 'length' <<<"$runs")" -gt 0 ] && run_meta=$runs
done
check "the reaping is audited as summary rows in the platform's org, not one per record ($audits rows, records ${run_meta:-none})" \
    test "$audits" -ge 1 -a "$audits" -lt 20 -a "$(jq 'add // 0' <<<"${run_meta:-[]}")" -ge 20
if $PG; then
    owner_sql -c "CREATE TABLE core.audit_log_2001_01 PARTITION OF core.audit_log FOR VALUES FROM ('2001-01-01 00:00:00+00') TO ('2001-02-01 00:00:00+00')"
    current=$(owner_sql -c "SELECT 'audit_log_' || to_char(now() AT TIME ZONE 'UTC', 'YYYY_MM')")
    check "an audit partition past the retention (2001-01) is dropped by the reaper" \
        wait_until 10 bash -c "[ \"\$(psql -X -At '$PG_DB_OWNER_DSN' -c \"SELECT to_regclass('core.audit_log_2001_01') IS NULL\")\" = t ]"
    check "…while this month's ($current) stays" test "$(owner_sql -c "SELECT to_regclass('core.$current') IS NOT NULL")" = t
    check "the app role still cannot DROP core.audit_log (42501)" \
        bash -c "psql -X -At -v ON_ERROR_STOP=1 -v VERBOSITY=verbose '$PG_DB_APP_DSN' -c 'DROP TABLE core.audit_log' 2>&1 | grep -q 42501"
    check "…nor TRUNCATE it (42501)" \
        bash -c "psql -X -At -v ON_ERROR_STOP=1 -v VERBOSITY=verbose '$PG_DB_APP_DSN' -c 'TRUNCATE core.audit_log' 2>&1 | grep -q 42501"

    # the feed's retention: Acme's first 10 deal changes made 30 days old
    owner_sql -c "UPDATE svc_crm_sandbox._outbox SET projected_at = projected_at - 30 * 86400
                  WHERE org_id = '$ACME' AND resource = 'deals' AND pos <= 10"
    trimmed() { [ "$(owner_sql -c "SELECT trimmed_pos >= 10 FROM svc_crm_sandbox._feed WHERE org_id = '$ACME'")" = t ]; }
    check "the reaper trims changes past [cqrs] changes_retention (psql: the trim point passes them)" wait_until 10 trimmed
    as "$ADMIN" test GET "/v1/svc/crm/deals/changes?after=5"
    expect_error "…a cursor older than the retention → 410 gone" 410 gone
    check "…saying why" jq -e '.error.message | test("no longer kept")' <<<"$BODY"
    as "$ADMIN" test GET "/v1/svc/crm/deals/changes?limit=1"
    expect "…while the feed from its start begins after the trim point" 200 '(.next_cursor | tonumber) > 10'

    # refresh tokens and invites past expiry + [cqrs] token_grace (1 day by default)
    as "$BOB" test POST /v1/orgs/current/members '{"email":"reaped@globex.test","role":"member"}'
    expect "Globex invites a member" 201 '.invite_token | length > 20'
    reaped_tokens=$(curl -s "$URL/metrics" | awk '$1 == "tessera_reaped_refresh_tokens_total" {print $2}')
    reaped_invites=$(curl -s "$URL/metrics" | awk '$1 == "tessera_reaped_invites_total" {print $2}')
    keep=$(owner_sql -c "INSERT INTO core.refresh_tokens (id, family_id, user_id, org_id, mode, token_hash, expires_at)
                         SELECT gen_random_uuid(), family_id, user_id, org_id, mode,
                                md5(random()::text) || md5(random()::text), now() - interval '1 hour'
                         FROM core.refresh_tokens WHERE org_id = '$GLOBEX' LIMIT 1 RETURNING id")
    n_tok=$(owner_sql -c "UPDATE core.refresh_tokens SET expires_at = now() - interval '2 days'
                          WHERE org_id = '$GLOBEX' AND id <> '${keep:-00000000-0000-0000-0000-000000000000}' RETURNING 1" | wc -l)
    owner_sql -c "UPDATE core.invites SET expires_at = now() - interval '2 days' WHERE org_id = '$GLOBEX'"
    tokens_reaped() { [ "$(owner_sql -c "SELECT count(*) FROM core.refresh_tokens WHERE org_id = '$GLOBEX'
                                         AND expires_at < now() - interval '1 day'")" = 0 ] &&
                      [ "$(owner_sql -c "SELECT count(*) FROM core.invites WHERE org_id = '$GLOBEX'")" = 0 ]; }
    check "psql: the reaper deleted Globex's $n_tok refresh tokens and its invite past expiry + grace" wait_until 10 tokens_reaped
    check "…and kept the token that expired an hour ago, within the grace" \
        test -n "$keep" -a "$(owner_sql -c "SELECT count(*) FROM core.refresh_tokens WHERE id = '${keep:-00000000-0000-0000-0000-000000000000}'")" = 1
    check "…counted in /metrics by kind" bash -c "
        m=\$(curl -s '$URL/metrics')
        t=\$(awk '\$1 == \"tessera_reaped_refresh_tokens_total\" {print \$2}' <<<\"\$m\")
        i=\$(awk '\$1 == \"tessera_reaped_invites_total\" {print \$2}' <<<\"\$m\")
        [ \$((t - $reaped_tokens)) -ge $n_tok ] && [ \$((i - $reaped_invites)) -ge 1 ]"
fi
check "/metrics counts the reaper's runs and its deletions by kind" \
    bash -c "curl -s '$URL/metrics' | grep -qE '^tessera_reaper_runs_total [1-9]' && curl -s '$URL/metrics' | grep -q '^tessera_reaped_refresh_tokens_total '"
check "/metrics counts the projector's events and shows its lag" \
    bash -c "curl -s '$URL/metrics' | grep -qE '^tessera_projector_events_total [1-9]' && curl -s '$URL/metrics' | grep -qE '^tessera_projector_lag_ms\\{'"

# ---- memory: the shared region stays flat (the outbox is consumed)
if ! $PG; then
    region_used() { curl -s "$URL/metrics" | awk '$1 == "tessera_memory_region_bytes{kind=\"used\"}" {print $2}'; }
    OPS=update SEEDS=50 $LOAD write "$URL" deals 20000 "$T/flat1.jsonl" "$ADMIN:test" "$BOB:live"
    wait_until 10 caught_up "$ADMIN" test deals pipeline >/dev/null
    u1=$(region_used)
    OPS=update SEEDS=50 $LOAD write "$URL" deals 80000 "$T/flat2.jsonl" "$ADMIN:test" "$BOB:live"
    wait_until 10 caught_up "$ADMIN" test deals pipeline >/dev/null
    u2=$(region_used)
    n_ok=$(jq -s '[.[] | select(.status == 200)] | length' "$T/flat1.jsonl" "$T/flat2.jsonl")
    check "100 000 writes with the projector running: the region's used bytes stay flat ($u1 → $u2 after $n_ok updates)" \
        awk -v a="$u1" -v b="$u2" -v n="$n_ok" 'BEGIN { exit !(n >= 99000 && b <= a * 1.02 + 65536) }'
fi

check "no request of this suite was answered 500" sh -c "! grep -q '\"status\":500' '$T/fleet.log'"
stack_down
