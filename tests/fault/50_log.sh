#!/usr/bin/env bash
# Fault suite (issue 18 item 2), case 10: the fleet's log cannot be written.
# The fleet logs JSON lines to its stderr (lib/core/log.h); a line that cannot
# be written at once is dropped and counted, and nothing else changes; the
# first line that gets through again is followed by a log_dropped line with
# the count. Shown with stderr on /dev/full (every write fails with ENOSPC),
# on a pipe whose reader stops reading (a hung journald: a write would wait
# for ever) and, as root, on a 256 KiB tmpfs that fills under the load: every
# request is still served, a reload and a worker's crash are still handled,
# and once the reader reads again or space is freed (the file truncated, as
# logrotate's copytruncate does) lines are written again. On both engines.
# engines: postgres memory
. "$(dirname "$0")/fault.sh"

# ---- stderr on /dev/full
ln -s /dev/full "$T/fleet.log"   # stack_up appends the fleet's output to $T/fleet.log
stack_up TESSERA_FLEET_WORKERS=2 || { not_ok "a fleet whose stderr is /dev/full starts"; exit 1; }
ok "a fleet whose stderr is /dev/full starts and answers /healthz"
fault_setup devfull || { not_ok "the fault service and its resource"; exit 1; }
pids0=$(fleet_json '[.slots[] | select(.role == "api") | .pid] | sort | join(" ")')
writers_start full devfull --conns 4 --pause 5
sleep 1.5
"$TESSERA" reload >/dev/null 2>>"$T/cli.err"
sleep 2
writers_stop full
r=$(report "$T/full.jsonl")
check "/dev/full: writes under load and across a reload all 201 ($(statuses "$T/full.jsonl"))" \
    test "$(jqr "$r" .failed_count)" = 0 -a "$(jqr "$r" .total)" -gt 100
settled() { [ "$(fleet_json '.generation as $g | [.slots[] | select(.role == "api" and .generation == $g and .state != "retiring")] | length')" = 2 ]; }
check "…the reload replaced both workers though it could log none of it" \
    eval "wait_until 10 settled && [ \"\$(fleet_json '[.slots[] | select(.role == \"api\") | .pid] | sort | join(\" \")')\" != '$pids0' ]"
victim=$(fleet_json '[.slots[] | select(.role == "api" and .slot == 0) | .pid][0]')
kill -9 "$victim"
back() { [ "$(fleet_json '[.slots[] | select(.role == "api" and .slot == 0 and .pid != '"$victim"' and .pid > 0)] | length')" = 1 ]; }
check "…a worker killed -9 is restarted" wait_until 10 back
req GET /v1/svc/fault/devfull -H "Authorization: Bearer $ADMIN"
expect "…and requests are served" 200 '.data | length > 0'
verify_acked "/dev/full" devfull "$T/full.jsonl"
stack_down
rm -f "$T/fleet.log"

# ---- stderr on a pipe whose reader stops reading
mkfifo "$T/logpipe"
sleep 600 <"$T/logpipe" &   # holds the pipe open and never reads it
STALLED=$!
PIDS+=("$STALLED")
ln -s "$T/logpipe" "$T/fleet.log"
stack_up TESSERA_FLEET_WORKERS=2 || { not_ok "a fleet logging to a pipe starts"; exit 1; }
fault_setup stalled || { not_ok "the fault service for the stalled-pipe case"; exit 1; }
writers_start stall stalled --conns 4 --pause 5
sleep 2     # the pipe's 64 KiB are full within the first second
"$TESSERA" reload >/dev/null 2>>"$T/cli.err"
sleep 2
writers_stop stall
r=$(report "$T/stall.jsonl")
check "a stalled log reader: writes under load and across a reload all 201, none waiting on the log ($(statuses "$T/stall.jsonl"), max $(jqr "$r" .max_ms) ms)" \
    test "$(jqr "$r" .failed_count)" = 0 -a "$(jqr "$r" .total)" -gt 100 -a "$(jqr "$r" '.max_ms < 5000')" = true
req GET /healthz
expect "…/healthz answers 200" 200
verify_acked "a stalled log reader" stalled "$T/stall.jsonl"
cat "$T/logpipe" >"$T/drained.log" &   # a reader that reads again
DRAIN=$!
PIDS+=("$DRAIN")
resumed() {
    curl -s -o /dev/null -H 'X-Request-Id: fault-log-drained' "$URL/healthz"
    grep -q '"request_id":"fault-log-drained"' "$T/drained.log" && grep -q '"event":"log_dropped"' "$T/drained.log"
}
if wait_until 10 resumed; then
    ok "…once it reads again the lines come, with log_dropped counting the lost ones ($(
        grep -h '"event":"log_dropped"' "$T/drained.log" | jq -s 'map(.lines) | add') lines)"
else
    not_ok "…once it reads again the lines come, with log_dropped counting the lost ones" "$(tail -3 "$T/drained.log")"
fi
stack_down
kill "$STALLED" "$DRAIN" 2>/dev/null; wait "$STALLED" "$DRAIN" 2>/dev/null
rm -f "$T/fleet.log"

# ---- stderr on a small file system that fills
if [ "$(id -u)" -ne 0 ]; then
    echo "ok - a log on a full tmpfs # SKIP mounting one needs root (the /dev/full case above ran)"
    exit 0
fi
mkdir -p "$T/logfs"
mount -t tmpfs -o size=256k tmpfs "$T/logfs" || { not_ok "a 256 KiB tmpfs for the log"; exit 1; }
CLEANUP_HOOKS+=("umount -l '$T/logfs'")
ln -s "$T/logfs/fleet.log" "$T/fleet.log"
stack_up TESSERA_FLEET_WORKERS=2 || { not_ok "a fleet logging to a 256 KiB tmpfs starts"; exit 1; }
fault_setup tmpfs || { not_ok "the fault service for the tmpfs case"; exit 1; }
used() { df --output=pcent "$T/logfs" | tail -1 | tr -dc 0-9; }
writers_start fill tmpfs --conns 4 --pause 5
full() { [ "$(used)" -ge 100 ]; }
check "the access lines fill the log's file system under load" wait_until 30 full
t_full=$(now_s)
sleep 1
"$TESSERA" reload >/dev/null 2>>"$T/cli.err"
sleep 2
writers_stop fill
r=$(report "$T/fill.jsonl")
after=$(jq -s --argjson t "$t_full" '[.[] | select(.t0 > $t)] | length' "$T/fill.jsonl")
check "…every write answered 201, $after of them after the disk was full, a reload among them ($(statuses "$T/fill.jsonl"))" \
    test "$(jqr "$r" .failed_count)" = 0 -a "$after" -gt 50
check "…the file holds JSON lines, whole but perhaps the last (a line cut where the space ended)" \
    bash -c "head -n -1 '$T/logfs/fleet.log' | jq -e . >/dev/null"
verify_acked "a full log" tmpfs "$T/fill.jsonl"
: >"$T/logfs/fleet.log"   # space freed, as logrotate's copytruncate does
req GET /healthz -H 'X-Request-Id: fault-log-resumes'
logged() { grep -q '"request_id":"fault-log-resumes"' "$T/logfs/fleet.log" && grep -q '"event":"log_dropped"' "$T/logfs/fleet.log"; }
check "once space is freed the fleet logs again: the next request's access line, and log_dropped with the count" \
    wait_until 5 logged
