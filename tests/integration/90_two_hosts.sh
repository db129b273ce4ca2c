#!/usr/bin/env bash
# Two hosts behind one nginx upstream (issue 18 §6, docs/SCALING.md §1): two
# fleets on the PostgreSQL engine, each in a network namespace of its own
# (a veth pair to this one, addresses from 10.213.N.0/24), FastCGI over TCP on
# its namespace's address, sharing one PostgreSQL (its unix socket) and one
# Redis (a unix socket: a namespace cannot reach this one's loopback). nginx
# here has three servers: the shared upstream of both hosts, and one per host
# that passes to that host only, so a request can be aimed at either. Proves:
# a logout through A is refused on B at once; a write through A is seen by
# B's cached read, and B's next read is a hit (B's own /metrics); a role
# change through A holds on B's next request, both ways; and with A's fleet
# killed (-9, master and workers) under a steady load only requests in flight
# at A fail, every later one is answered by B; two hosts' upkeep at once
# waits instead of failing. Needs root (ip netns): where
# namespaces cannot be made it says so as a failure, never a skip.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg.sh"
J='Content-Type: application/json'
LOAD="python3 $ROOT/tests/integration/two_hosts_load.py"

export TESSERA_ENV=test TESSERA_CONFIG=/dev/null TESSERA_FLEET_WORKERS=2
export TESSERA_AUTH_SIGNING_KEY=$T/keys/jwt.pem TESSERA_CRYPTO_DATA_KEY=$T/keys/data.key
export TESSERA_AUTH_PASSWORD_COST=10

# ---- the network: two namespaces, a veth pair each -------------------------------
# Names carry our pid, so runs at once (other worktrees) never share one; a
# veth name has at most 15 characters.
declare -A NS=([a]=tessera-$$-a [b]=tessera-$$-b) VETH=([a]=tsr$$a [b]=tsr$$b)
declare -A ADDR FLEET URLS
FCGI_PORT=9000   # each namespace is ours alone: any port is free there

# hosts_down (a cleanup hook): each fleet left is stopped (TERM, as an
# operator would, then -9 for whatever is still in its namespace after 5 s),
# then its veth pair and its namespace are deleted.
hosts_down() {
    local h pid left
    for h in a b; do [ -n "${FLEET[$h]:-}" ] && kill -TERM "${FLEET[$h]}" 2>/dev/null; done
    for _ in $(seq 1 50); do
        left=$(for h in a b; do ip netns pids "${NS[$h]}" 2>/dev/null; done)
        [ -z "$left" ] && break
        sleep 0.1
    done
    for h in a b; do
        for pid in $(ip netns pids "${NS[$h]}" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
        [ -n "${FLEET[$h]:-}" ] && wait "${FLEET[$h]}" 2>/dev/null
        FLEET[$h]=
        ip link del "${VETH[$h]}" 2>/dev/null
        ip netns del "${NS[$h]}" 2>/dev/null
    done
    return 0
}
CLEANUP_HOOKS+=(hosts_down)

# net_up: claims a 10.213.N.0/24 that no address or route here uses (under a
# lock, so two runs at once never take the same N) and makes both namespaces:
# host a is 10.213.N.2 (this end .1), host b 10.213.N.6 (this end .5).
net_up() {
    local n start h i lock=/tmp/tessera-two-hosts.lock
    exec 9>"$lock"
    flock -w 20 9 || { echo "no lock on $lock"; return 1; }
    start=$((RANDOM % 250))
    for i in $(seq 0 250); do
        [ "$i" = 250 ] && { echo "every 10.213.N.0/24 is taken here"; exec 9>&-; return 1; }
        n=$(( (start + i) % 250 + 1 ))
        ip -4 -o addr show | grep -q " 10\.213\.$n\." && continue
        ip -4 route show table all | grep -q "10\.213\.$n\." && continue
        break
    done
    ADDR=([a]=10.213.$n.2 [b]=10.213.$n.6)
    local -A HERE=([a]=10.213.$n.1 [b]=10.213.$n.5)
    for h in a b; do
        ip netns add "${NS[$h]}" &&
            ip link add "${VETH[$h]}" type veth peer name eth0 netns "${NS[$h]}" &&
            ip addr add "${HERE[$h]}/30" dev "${VETH[$h]}" && ip link set "${VETH[$h]}" up &&
            ip -n "${NS[$h]}" addr add "${ADDR[$h]}/30" dev eth0 &&
            ip -n "${NS[$h]}" link set eth0 up && ip -n "${NS[$h]}" link set lo up ||
            { exec 9>&-; return 1; }
    done
    exec 9>&-
}
if ! net_up 2>"$T/net.err"; then
    not_ok "two network namespaces with a veth pair each can be made here (ip netns, as root)" "$(cat "$T/net.err")"
    exit 1
fi
ok "two network namespaces, ${NS[a]} at ${ADDR[a]} and ${NS[b]} at ${ADDR[b]}, each a veth pair to this one"

# ---- the shared PostgreSQL and Redis, the keys both hosts hold, the fleets -------
"$TESSERA" keygen >/dev/null || { not_ok "keygen"; exit 1; }
pg_engine_env || { not_ok "postgresql and redis start, a database migrated and seeded"; exit 1; }

# host_up a|b: the host's fleet in its namespace, FastCGI on its address; the
# database by its unix socket (PG_ENV's DSN), Redis by its unix socket.
host_up() {
    local h=$1 dir=$T/host-$1
    mkdir -p "$dir"
    env "${PG_ENV[@]}" "TESSERA_REDIS_URL=$REDIS_SOCK_URL" "TESSERA_FLEET_LISTEN=${ADDR[$h]}:$FCGI_PORT" \
        "TESSERA_FLEET_CONTROL=$dir/control.sock" "TESSERA_FLEET_PID_FILE=$dir/tessera.pid" \
        ip netns exec "${NS[$h]}" "$TESSERA" fleet >>"$dir/fleet.log" 2>&1 &
    FLEET[$h]=$!
}
# One host after the other, as a second host joins a running one: host a's
# first upkeep makes the audit partition migrate leaves to it (3 months ahead,
# migrate makes 2), so host b's finds nothing to do (at the same instant
# they wait on each other: 5. below).
host_up a
upkept() { grep -q '"level":"info","event":"maintenance"' "$T/host-a/fleet.log"; }
wait_until 30 upkept || { not_ok "host a's fleet starts and makes the audit partition"; tail -5 "$T/host-a/fleet.log" | sed 's/^/# /'; exit 1; }
host_up b

# nginx: the shared upstream (both hosts; one failure marks a host down for
# 10 s, shared by nginx's workers through the zone; tessera-params.conf's
# fastcgi_next_upstream error timeout moves a refused connection to the other
# host), and a server per host. The shared server logs, per request, every
# upstream it tried.
PORT_S=$(free_port) PORT_A=$(free_port) PORT_B=$(free_port)
mkdir -p "$T/nginx"
site() { # PORT UPSTREAM [extra directives]
    cat <<CONF
    server {
        listen 127.0.0.1:$1;
        include $ROOT/nginx/tessera-errors.conf;
        ${3:-}
        location / {
            include $ROOT/nginx/tessera-params.conf;
            fastcgi_pass $2;
        }
    }
CONF
}
cat >"$T/nginx.conf" <<CONF
worker_processes 2;
daemon off;
pid $T/nginx/nginx.pid;
error_log $T/nginx/error.log warn;
events { worker_connections 1024; }
http {
    log_format hosts '\$msec \$status \$http_x_request_id "\$upstream_addr"';
    access_log off;
    client_body_temp_path $T/nginx/body;
    fastcgi_temp_path $T/nginx/fastcgi;
    proxy_temp_path $T/nginx/proxy;
    uwsgi_temp_path $T/nginx/uwsgi;
    scgi_temp_path $T/nginx/scgi;
    upstream tessera {
        zone tessera 64k;
        server ${ADDR[a]}:$FCGI_PORT max_fails=1 fail_timeout=10s;
        server ${ADDR[b]}:$FCGI_PORT max_fails=1 fail_timeout=10s;
        keepalive 32;
    }
    upstream host_a { server ${ADDR[a]}:$FCGI_PORT; keepalive 8; }
    upstream host_b { server ${ADDR[b]}:$FCGI_PORT; keepalive 8; }
$(site "$PORT_S" tessera "access_log $T/nginx/shared.log hosts;")
$(site "$PORT_A" host_a)
$(site "$PORT_B" host_b)
}
CONF
nginx -c "$T/nginx.conf" >>"$T/nginx.out" 2>&1 &
NGINX_PID=$!
URLS=([s]=http://127.0.0.1:$PORT_S [a]=http://127.0.0.1:$PORT_A [b]=http://127.0.0.1:$PORT_B)
healthy() { [ "$(curl -s -o /dev/null -w '%{http_code}' "$1/healthz")" = 200 ]; }
if ! wait_until 30 healthy "${URLS[a]}" || ! wait_until 10 healthy "${URLS[b]}" || ! wait_until 5 healthy "${URLS[s]}"; then
    not_ok "both fleets and nginx come up"
    for h in a b; do echo "# host $h:"; tail -10 "$T/host-$h/fleet.log" | sed 's/^/#   /'; done
    sed 's/^/# /' "$T/nginx.out" "$T/nginx/error.log" 2>/dev/null | tail -10
    exit 1
fi
ok "both fleets serve through nginx (shared upstream on :$PORT_S, host a only :$PORT_A, host b only :$PORT_B)"

# on HOST METHOD PATH [curl args]: req through HOST's server (a, b) or the shared one (s)
on() { local URL=${URLS[$1]}; shift; req "$@"; }
# served_by HOST RID: HOST's fleet logged the request (its access line), the other's did not
served_by() {
    local other=b; [ "$1" = b ] && other=a
    wait_until 5 grep -q "\"request_id\":\"$2\"" "$T/host-$1/fleet.log" &&
        ! grep -q "\"request_id\":\"$2\"" "$T/host-$other/fleet.log"
}
for h in a b; do
    check "host $h's fleet runs in its own namespace (ip netns identify: ${NS[$h]})" \
        test "$(ip netns identify "${FLEET[$h]}")" = "${NS[$h]}"
done
for h in a b; do
    check "host $h's FastCGI listens on its namespace's address, over TCP (${ADDR[$h]}:$FCGI_PORT)" \
        bash -c "ip netns exec '${NS[$h]}' ss -Htln | grep -qF ' ${ADDR[$h]}:$FCGI_PORT '"
done
on b GET /healthz -H "X-Request-Id: aim-b-1"
on a GET /healthz -H "X-Request-Id: aim-a-1"
check "a request through host b's server is served by host b's fleet, not a's (their access logs)" served_by b aim-b-1
check "… and one through host a's by host a's" served_by a aim-a-1

auth() { printf 'Authorization: Bearer %s' "$1"; }
login() { # HOST EMAIL → TOKEN, through that host
    on "$1" POST /v1/auth/login -H "$J" -d "{\"email\":\"$2\",\"password\":\"tessera-dev\"}"
    TOKEN=$(jq -r .access_token <<<"$BODY")
}
# statuses HOST N METHOD PATH [curl args]: N requests through HOST, their statuses (sorted, unique)
statuses() {
    local h=$1 n=$2 i; shift 2
    for i in $(seq 1 "$n"); do on "$h" "$@"; echo "$STATUS"; done | sort -u | tr '\n' ' ' | sed 's/ $//'
}
# metric HOST NAME USE: tessera_cache_<NAME>_total{use="USE"} of that host's fleet (its /metrics)
metric() {
    curl -s "${URLS[$1]}/metrics" | awk -v s="tessera_cache_$2_total{use=\"$3\"}" '$1 == s { print $2 }'
}

# ---- 1. a logout through A is refused on B at once -------------------------------
login a alice@acme.test; ALICE=$TOKEN
check "alice logs in through host a" test "$STATUS" = 200
check "… and host b accepts the token host a signed (4 requests: 200)" \
    test "$(statuses b 4 GET /v1/auth/me -H "$(auth "$ALICE")")" = 200
on a POST /v1/auth/logout -H "$(auth "$ALICE")"
check "she logs out through host a (204)" test "$STATUS" = 204
on b GET /v1/auth/me -H "$(auth "$ALICE")" -H "X-Request-Id: revoked-on-b"
expect_error "host b's very next request with that token: 401 token_revoked" 401 token_revoked
check "… answered by host b's fleet" served_by b revoked-on-b
check "… and so are the next ones on host b (4 requests: 401)" \
    test "$(statuses b 4 GET /v1/auth/me -H "$(auth "$ALICE")")" = 401

# ---- 2. a write through A is seen by B's cached read; B's next read is a hit -------
login a admin@example.com; ADMIN=$TOKEN
A=(-H "$(auth "$ADMIN")")
on a PUT /v1/svc/crm/schema/hosts "${A[@]}" -H "$J" -d '{"fields":{"name":{"type":"string","index":true}}}'
check "a resource (its schema PUT through host a)" test "$STATUS" = 200
on a POST /v1/svc/crm/hosts "${A[@]}" -H "$J" -d '{"name":"first"}'
check "a record created through host a" test "$STATUS" = 201
RID=$(jq -r .id <<<"$BODY")
on b GET "/v1/svc/crm/hosts/$RID" "${A[@]}"
expect "host b reads it" 200 '.name == "first"'
hb=$(metric b hits records)
on b GET "/v1/svc/crm/hosts/$RID" "${A[@]}"
lb0=$(metric b loads records) hb0=$(metric b hits records) ha0=$(metric a hits records)
check "… and holds it cached: its second read is a hit (hits $hb→$hb0)" test "$((hb0 - hb))" = 1
on a PATCH "/v1/svc/crm/hosts/$RID" "${A[@]}" -H "$J" -d '{"name":"second"}'
check "an update through host a (200), while host b holds the record cached" test "$STATUS" = 200
on b GET "/v1/svc/crm/hosts/$RID" "${A[@]}"
expect "host b's next read sees the update (read your writes across hosts)" 200 '.name == "second"'
lb1=$(metric b loads records) hb1=$(metric b hits records)
check "… loaded again on host b: the write's version bump reached it through Redis (loads $lb0→$lb1)" \
    test "$((lb1 - lb0))" = 1
on b GET "/v1/svc/crm/hosts/$RID" "${A[@]}"
expect "host b's second read: the update again" 200 '.name == "second"'
lb2=$(metric b loads records) hb2=$(metric b hits records)
check "… a hit in host b's /metrics, no load (hits $hb1→$hb2, loads $lb1→$lb2)" \
    test "$((hb2 - hb1))" = 1 -a "$lb2" = "$lb1"
check "… and host a's counters did not move for host b's reads (hits ${ha0}→$(metric a hits records))" \
    test "$(metric a hits records)" = "$ha0"
on b GET "/v1/svc/crm/hosts?name=eq.third" "${A[@]}"
hb=$(metric b hits records)
on b GET "/v1/svc/crm/hosts?name=eq.third" "${A[@]}"
check "host b caches a list page (empty; hits $hb→$(metric b hits records))" \
    bash -c "jq -e '.data == []' <<<'$BODY' >/dev/null && [ $(metric b hits records) = $((hb + 1)) ]"
on a POST /v1/svc/crm/hosts "${A[@]}" -H "$J" -d '{"name":"third"}'
on b GET "/v1/svc/crm/hosts?name=eq.third" "${A[@]}"
check "a create through host a is in host b's next read of that page" \
    bash -c "jq -e '[.data[].name] == [\"third\"]' <<<'$BODY' >/dev/null"

# ---- 3. a role change through A holds on B's next request, both ways ---------------
ALICE_ID=aaaaaaaa-0000-4000-8000-000000000002
login a alice@acme.test; ALICE=$TOKEN
check "alice (admin) manages API keys through host b (4 requests: 200, her principal cached on b)" \
    test "$(statuses b 4 GET /v1/auth/api-keys -H "$(auth "$ALICE")")" = 200
on a PATCH "/v1/orgs/current/members/$ALICE_ID" "${A[@]}" -H "$J" -d '{"role":"viewer"}'
check "the owner demotes her to viewer through host a" test "$STATUS" = 200
on b GET /v1/auth/api-keys -H "$(auth "$ALICE")"
expect_error "host b's very next request of hers: 403" 403 forbidden
check "… and the next ones on host b (4 requests: 403)" \
    test "$(statuses b 4 GET /v1/auth/api-keys -H "$(auth "$ALICE")")" = 403
on a PATCH "/v1/orgs/current/members/$ALICE_ID" "${A[@]}" -H "$J" -d '{"role":"admin"}'
check "the owner makes her admin again through host a" test "$STATUS" = 200
on b GET /v1/auth/api-keys -H "$(auth "$ALICE")"
expect "host b's very next request of hers: 200 again" 200
check "… and the next ones (4 requests: 200)" \
    test "$(statuses b 4 GET /v1/auth/api-keys -H "$(auth "$ALICE")")" = 200

# ---- 4. host a killed under load: only its requests in flight fail -----------------
# 4 clients through the shared upstream, each creating a record (a POST nginx
# never sends to a second host once it went to one) and reading it back (a GET
# nginx may retry); A's fleet, master and workers, killed at once (-9) in the
# middle. Requests are sorted by when they ran against the kill [K0, K1] (K1:
# no process left in A's namespace) and by where nginx sent them (its log).
rm -f "$T/stop"
$LOAD run "${URLS[s]}" hosts "$ADMIN" 4 "$T/stop" "$T/load.log" 2>"$T/load.err" &
LOAD_PID=$!
PIDS+=("$LOAD_PID")
sleep 1.5
victims=$(ip netns pids "${NS[a]}" | tr '\n' ' ')
K0=$(date +%s.%N)
kill -KILL $victims
wait "${FLEET[a]}" 2>/dev/null
FLEET[a]=
gone() { [ -z "$(ip netns pids "${NS[a]}")" ]; }
wait_until 5 gone
K1=$(date +%s.%N)
check "host a's fleet killed: master and workers ($(wc -w <<<"$victims") processes) gone at once ($(awk -v a="$K0" -v b="$K1" 'BEGIN { printf "%.0f", (b - a) * 1000 }') ms)" gone
sleep 2
touch "$T/stop"
wait "$LOAD_PID"
[ -s "$T/load.err" ] && sed 's/^/# load: /' "$T/load.err" | tail -5
R=$($LOAD report "$T/load.log" "$T/nginx/shared.log" "${ADDR[a]}:$FCGI_PORT" "$K0" "$K1")
echo "# load through the shared upstream: $R"
n() { jq -r "$1" <<<"$R"; }
check "before the kill the load was spread over both hosts ($(n .before.a) requests answered by a, $(n .before.b) by b), none failed" \
    jq -e '.before.a > 0 and .before.b > 0 and .before.failed == 0' <<<"$R"
check "failed: $(n .failed) of $(n .total), each one in flight at host a at the kill ($(n .at_a.n) were)" \
    jq -e '.failed_not_at_a == 0 and .failed == .at_a.failed and .failed <= .at_a.n' <<<"$R"
check "after the kill every request succeeded ($(n .after.n) of them), answered by host b ($(n .after.via_b)); $(n .after.tried_a) tried a first" \
    jq -e '.after.n >= 20 and .after.failed == 0 and .after.via_b == .after.n' <<<"$R"
check "nginx marked host a down (its error log)" \
    grep -q "upstream server temporarily disabled.*${ADDR[a]}:$FCGI_PORT" "$T/nginx/error.log"
on s GET /v1/auth/me "${A[@]}"
expect "through the shared upstream, host b alone serves on" 200 '.user.email == "admin@example.com"'
check "host b's fleet logged no error (its upkeep found nothing to do), nor did a's before its kill" \
    bash -c "! grep -h '\"level\":\"error\"' '$T/host-a/fleet.log' '$T/host-b/fleet.log' | grep ."

# ---- 5. two hosts' upkeep at the same instant --------------------------------------
# Each run's first change is ALTER TABLE on this month's partition, whose lock
# the run keeps to its commit: a second run waits there for the first, then
# finds the partitions made. Two sessions as the fleets' role, the first
# holding its transaction open, each asking for partitions none has yet.
upkeep() { psql -X -q -At -v ON_ERROR_STOP=1 "$PG_DB_APP_DSN" "$@"; }
upkeep -c 'BEGIN' -c 'SELECT core.ensure_audit_partitions(5)' -c 'SELECT pg_sleep(1)' -c 'COMMIT' \
    >"$T/upkeep1" 2>&1 &
first=$!
sleep 0.3
upkeep -c 'SELECT core.ensure_audit_partitions(5)' >"$T/upkeep2" 2>&1; rc2=$?
wait "$first"; rc1=$?
check "two upkeep runs at once: the first makes the new partitions ($(head -1 "$T/upkeep1")), the second waits for it and finds them made ($(cat "$T/upkeep2")), no error" \
    test "$rc1:$rc2:$(cat "$T/upkeep2")" = 0:0:0 -a "$(head -1 "$T/upkeep1")" -gt 0
