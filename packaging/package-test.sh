#!/usr/bin/env bash
# `make package-test`: builds the static binary, the .deb and the .rpm; installs
# the .deb on this machine, checks its files, user and keys; runs the unit's
# commands as systemd would (as the tessera user, no systemd here) with the
# installed config, behind the installed nginx site (whose rate limit on
# /v1/auth/ answers a burst with 429 in the JSON envelope, other paths
# unlimited), and runs tests/smoke.sh through it; checks the .rpm lists the
# same files and its binary runs; then
# `dpkg --purge` must leave nothing behind.
#   package-test.sh [BUILD_DIR]      (root: it installs a package)
# Prints `ok`/`not ok` lines and `N passed, N failed, N skipped`.
#
# The fleet runs on the installed config's engine, postgres. PostgreSQL and
# Redis are real, scratch servers on free loopback ports (the installed configs
# name 127.0.0.1:5432 and :6379; everything else is as installed). The fleet
# reaches them through TESSERA_DB_CORE_DSN / TESSERA_REDIS_URL; ExecStartPre,
# which runs as root ('!') with the root-only /etc/tessera/migrate.conf, through
# that file: its migrate_dsn is rewritten to the scratch owner's, as an operator
# would, and it runs in an empty environment, as systemd gives it. The cluster
# is set up as migrate.conf tells an operator to: a migration owner with
# BYPASSRLS and CREATEROLE owning database tessera; ExecStartPre (`tessera -c
# /etc/tessera/migrate.conf migrate`) creates tessera_app and the schema; the
# fleet connects as tessera_app and never sees the owner's DSN. Both roles log
# in with a password (SCRAM, through the static libpq), generated per run and
# passed in the environment or written by the shell into the 0600 file, never
# in argv.
#   PACKAGE_TEST_RECORDS=1 (default)  tests/smoke.sh runs its schema and record
#       round trip (SMOKE_SERVICE) on postgres too
#   PACKAGE_TEST_RECORDS=0  auth only: for a build whose PostgreSQL engine
#       answers records with 503 (lib/store/pg/engine_pg_records.c not merged yet); the
#       round trip is reported as skipped, and the run says so
set -uo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
case $build in /*) ;; *) build=$root/$build ;; esac
[ "$(id -u)" -eq 0 ] || { echo "package-test: run as root (it installs a package)" >&2; exit 2; }
version=$(cat VERSION)
deb=$build/tessera_${version}_amd64.deb
rpm=$build/tessera-$version-1.x86_64.rpm
T=$(mktemp -d /tmp/tessera-pkg.XXXXXX)
chmod 755 "$T"
pass=0 fail=0 skip=0
started=$SECONDS
FLEET_PID= NGINX_PID= REDIS_PID= PG_DIR=
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
made_cert= made_key=
records=${PACKAGE_TEST_RECORDS:-1}
case $records in 0|1) ;; *) echo "package-test: PACKAGE_TEST_RECORDS is 0 or 1, not $records" >&2; exit 2 ;; esac

ok() { echo "ok - $1"; pass=$((pass + 1)); }
not_ok() { echo "not ok - $1"; [ -n "${2:-}" ] && printf '%s\n' "$2" | head -20 | sed 's/^/#   /'; fail=$((fail + 1)); }
skipped() { echo "ok - $1 # SKIP $2"; skip=$((skip + 1)); }
check() { # NAME COMMAND...: passes when the command succeeds
    local name=$1 out; shift
    if out=$("$@" 2>&1); then ok "$name"; else not_ok "$name" "$out"; fi
}
# denied COMMAND...: succeeds when the command fails with "Permission denied"
# (run in a subshell: as_unit execs; its output, which may hold a secret, is
# never printed)
denied() { local out; out=$( ("$@") 2>&1) && return 1; grep -q 'Permission denied' <<<"$out"; }
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
port_free() { ! ss -Hltn "sport = :$1" | grep -q .; }

cleanup() {
    [ -n "$NGINX_PID" ] && { kill -QUIT "$NGINX_PID" 2>/dev/null; wait "$NGINX_PID" 2>/dev/null; }
    [ -n "$FLEET_PID" ] && { kill -TERM "$FLEET_PID" 2>/dev/null; wait "$FLEET_PID" 2>/dev/null; }
    [ -n "$REDIS_PID" ] && { kill -TERM "$REDIS_PID" 2>/dev/null; wait "$REDIS_PID" 2>/dev/null; }
    [ -n "$PG_DIR" ] && runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR" -m immediate -w stop >/dev/null 2>&1
    [ -n "$made_cert" ] && rm -f /etc/ssl/certs/tessera.pem
    [ -n "$made_key" ] && rm -f /etc/ssl/private/tessera.key
    if dpkg-query -W -f='${Status}' tessera 2>/dev/null | grep -q 'ok installed\|config-files'; then
        dpkg --purge tessera >/dev/null 2>&1 || true
    fi
    rm -rf /run/tessera
    if [ -n "${KEEP_TMP:-}" ]; then echo "# kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the tools this test uses beyond `make test`'s (packaging/deps.sh)
need=""
for p in file cpio rpm rpmlint lintian openssl; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need="$need $p"
done
if [ -n "$need" ]; then
    echo "# installing$need"
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null ||
        { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null; }
fi

# --- build: static binary, .deb, .rpm
echo "== build"
t0=$SECONDS
if make --no-print-directory B="${build#"$root"/}" static deb rpm >"$T/build.log" 2>&1; then
    ok "make static deb rpm ($((SECONDS - t0)) s)"
else
    not_ok "make static deb rpm" "$(grep -v 'warning: Using\|/usr/bin/ld: ' "$T/build.log" | tail -20)"
    echo "$pass passed, $fail failed, $skip skipped"; exit 1
fi
if grep -q 'static-deps: building' "$T/build.log"; then
    echo "# static-deps: built into the cache this run ($(grep -o 'building [^ ]* [^ ]*' "$T/build.log" | tr '\n' ' '))"
else
    echo "# static-deps: reused the cache ($(sed -n 's/.*(cache \(.*\))$/\1/p' "$T/build.log"))"
fi
bin=$build/static/tessera
check "the binary is fully static (ldd: not a dynamic executable)" \
    bash -c "ldd '$bin' 2>&1 | grep -q 'not a dynamic executable'"
check "file says statically linked" bash -c "file -b '$bin' | grep -q 'statically linked'"
"$bin" version >"$T/version.txt" 2>&1
check "tessera version names every linked library" \
    bash -c "for l in cJSON OpenSSL libpq hiredis fcgi2; do grep -q \"^  \$l \" '$T/version.txt' || { echo \"no \$l\"; exit 1; }; done"
sed 's/^/# /' "$T/version.txt"
echo "# size: $(stat -c %s "$bin") bytes unstripped; .deb $(stat -c %s "$deb"), .rpm $(stat -c %s "$rpm")"
check "lintian: no errors" bash -c "! grep -q '^E:' '$build/deb/lintian.txt'"
check "rpmlint: no errors" grep -q ' 0 errors' "$build/rpm/rpmlint.txt"

# --- host names from a static glibc binary: glibc 2.36 links the files and
# dns NSS modules in, so a lookup needs no shared library of the host. Proven
# with a probe linked like tessera (static glibc + the cached libpq) and run in
# an empty chroot that holds only /etc/hosts and /etc/nsswitch.conf.
echo "== name resolution in a static binary"
pq=$(sed -n 's/^STATIC_CPPFLAGS := .* -I\(.*\)\/include$/\1/p' "$build/static/deps.mk")
cat >"$T/probe.c" <<'EOF'
#include <stdio.h>
#include <netdb.h>
#include <libpq-fe.h>
/* resolves argv[1] with getaddrinfo, then lets libpq connect to it on port argv[2] */
int main(int argc, char **argv)
{
    struct addrinfo *ai = NULL, hints = {.ai_socktype = SOCK_STREAM};
    int rc = argc == 3 ? getaddrinfo(argv[1], argv[2], &hints, &ai) : EAI_FAIL;
    char dsn[256];

    printf("getaddrinfo: %s\n", rc ? gai_strerror(rc) : "ok");
    if (ai != NULL)
        freeaddrinfo(ai);
    snprintf(dsn, sizeof dsn, "host=%s port=%s connect_timeout=3 dbname=x user=x", argv[1], argv[2]);
    PGconn *c = PQconnectdb(dsn);
    printf("libpq: %s", PQerrorMessage(c));
    PQfinish(c);
    return rc != 0;
}
EOF
mkdir -p "$T/chroot/etc" "$T/chroot/bin"
cp /etc/hosts /etc/nsswitch.conf "$T/chroot/etc/"
# shellcheck disable=SC2046
if cc -static -O1 -I"$pq/include" -o "$T/chroot/bin/probe" "$T/probe.c" -L"$pq/lib" \
        $(sed -n 's/^STATIC_LDLIBS := -static //p' "$build/static/deps.mk") >"$T/probe.log" 2>&1; then
    closed=$(free_port)
    chroot "$T/chroot" /bin/probe localhost "$closed" >"$T/probe.out" 2>&1
    sed 's/^/# /' "$T/probe.out"
    check "localhost resolves in a static binary with no shared library present" \
        grep -q '^getaddrinfo: ok' "$T/probe.out"
    check "libpq (static) resolves localhost and reaches the connect step" \
        grep -q 'Connection refused' "$T/probe.out"
else
    not_ok "the static resolver probe links" "$(tail -5 "$T/probe.log")"
fi

# --- install the .deb
echo "== install $deb"
dpkg-query -W -f='${Status}' tessera 2>/dev/null | grep -q 'installed\|config-files' && dpkg --purge tessera >/dev/null
if ! dpkg -i "$deb" >"$T/dpkg.log" 2>&1; then
    not_ok "dpkg -i installs the package" "$(cat "$T/dpkg.log")"
    echo "$pass passed, $fail failed, $skip skipped"; exit 1
fi
ok "dpkg -i installs the package"
dpkg -L tessera >"$T/deb-files"
for f in /usr/bin/tessera /etc/tessera/tessera.conf /etc/tessera/migrate.conf /lib/systemd/system/tessera.service \
         /etc/nginx/sites-available/tessera /etc/nginx/snippets/tessera-params.conf \
         /etc/nginx/snippets/tessera-errors.conf /etc/nginx/snippets/tessera-console.conf \
         /etc/nginx/snippets/tessera-docs.conf /usr/share/tessera /usr/share/tessera/console/index.html \
         /usr/share/tessera/docs/index.html /usr/share/tessera/docs/redoc.standalone.js \
         /usr/share/doc/tessera/copyright /usr/share/man/man1/tessera.1.gz; do
    check "installed: $f" bash -c "grep -qx '$f' '$T/deb-files' && test -e '$f'"
done
if [ -n "$(ls sql/*.sql 2>/dev/null)" ]; then
    check "the migrations are in /usr/share/tessera/sql" \
        bash -c "for f in sql/*.sql; do test -f /usr/share/tessera/sql/\$(basename \$f) || exit 1; done"
fi
if [ -d seed/demo ]; then
    if [ -d /usr/share/tessera/seed/demo ]; then
        ok "seed/demo is installed in /usr/share/tessera/seed/demo"
    else
        skipped "seed/demo is installed" "stage.sh left it out: it holds passwords"
    fi
fi
check "no dev seed or dev credentials in the package" \
    bash -c "! grep -q 'seed/dev' '$T/deb-files' && ! grep -rqs -e 'tessera-dev' -e 'admin@example.com' /usr/share/tessera /etc/tessera /usr/bin/tessera"
check "the installed binary is the static one, stripped" \
    bash -c "ldd /usr/bin/tessera 2>&1 | grep -q 'not a dynamic' && file -b /usr/bin/tessera | grep -q ', stripped'"
check "the nginx site is available, not enabled" \
    bash -c "test -f /etc/nginx/sites-available/tessera && ! test -e /etc/nginx/sites-enabled/tessera"
check "the config and the nginx files are conffiles" \
    bash -c "c=\$(dpkg-query -W -f='\${Conffiles}' tessera); for f in /etc/tessera/tessera.conf /etc/tessera/migrate.conf /etc/nginx/sites-available/tessera /etc/nginx/snippets/tessera-params.conf /etc/nginx/snippets/tessera-errors.conf /etc/nginx/snippets/tessera-console.conf /etc/nginx/snippets/tessera-docs.conf; do grep -q \" \$f \" <<<\"\$c\" || { echo \"not a conffile: \$f\"; exit 1; }; done"
check "a tessera system user and group exist" \
    bash -c "u=\$(getent passwd tessera) && [ \$(cut -d: -f3 <<<\"\$u\") -lt 1000 ] && getent group tessera >/dev/null"
check "the keys were made on install: 0600, owned by tessera" \
    bash -c "for k in /etc/tessera/jwt.pem /etc/tessera/data.key; do [ \"\$(stat -c '%a %U' \$k)\" = '600 tessera' ] || { stat -c '%n %a %U' \$k; exit 1; }; done"
check "/etc/tessera is 0750 root:tessera, the config 0640" \
    bash -c "[ \"\$(stat -c '%a %U %G' /etc/tessera)\" = '750 root tessera' ] && [ \"\$(stat -c '%a %G' /etc/tessera/tessera.conf)\" = '640 tessera' ]"
check "the installed config: production on postgres, core as tessera_app, no migrate_dsn, socket for nginx" \
    bash -c "setpriv --reuid=tessera --regid=tessera --clear-groups /usr/bin/tessera check-config | jq -e '.env == \"production\" and .engine == \"postgres\" and .fleet.listen == \"/run/tessera/tessera.sock\" and .fleet.listen_owner == \"tessera:www-data\" and .db.sql_dir == \"/usr/share/tessera/sql\" and (.db.core_dsn | test(\"user=tessera_app\")) and .db.migrate_dsn == \"\" and .db.connection_limit >= 1'"
check "tessera.conf names no migrate_dsn (not even commented out as a key)" \
    bash -c "! grep -Eq '^[[:space:]#]*migrate_dsn[[:space:]]*=' /etc/tessera/tessera.conf"
# The migration owner's DSN (BYPASSRLS) lives in a root-only file of its own.
check "/etc/tessera/migrate.conf is 0600 root:root" \
    bash -c "[ \"\$(stat -c '%a %U %G' /etc/tessera/migrate.conf)\" = '600 root root' ] || { stat -c '%n %a %U %G' /etc/tessera/migrate.conf; exit 1; }"
check "the tessera user cannot read migrate.conf (Permission denied)" \
    denied setpriv --reuid=tessera --regid=tessera --init-groups cat /etc/tessera/migrate.conf
check "migrate.conf loads on its own (as root): production, migrate as tessera_owner, the installed sql_dir" \
    bash -c "env -i /usr/bin/tessera -c /etc/tessera/migrate.conf check-config | jq -e '.env == \"production\" and .engine == \"postgres\" and (.db.migrate_dsn | test(\"user=tessera_owner\")) and (.db.core_dsn | test(\"user=tessera_app\")) and .db.sql_dir == \"/usr/share/tessera/sql\"'"
jwt_before=$(sha256sum /etc/tessera/jwt.pem)
dpkg -i "$deb" >"$T/dpkg2.log" 2>&1
check "a reinstall keeps the keys" test "$(sha256sum /etc/tessera/jwt.pem)" = "$jwt_before"
unit=/lib/systemd/system/tessera.service
for want in 'ExecStartPre=!/usr/bin/tessera -c /etc/tessera/migrate.conf migrate' 'ExecStart=/usr/bin/tessera fleet' \
            'ExecReload=/usr/bin/tessera reload' 'User=tessera' 'NoNewPrivileges=yes' \
            'ProtectSystem=strict' 'PrivateTmp=yes' 'RuntimeDirectory=tessera'; do
    check "the unit has $want" grep -qx "$want" "$unit"
done
if command -v systemd-analyze >/dev/null; then
    check "systemd-analyze verify accepts the unit" \
        bash -c "out=\$(systemd-analyze verify $unit 2>&1); ! grep -i 'tessera.service' <<<\"\$out\" || { echo \"\$out\"; exit 1; }"
else
    skipped "systemd-analyze verify accepts the unit" "no systemd-analyze on this machine"
fi

# --- the unit's commands, as systemd runs them: user tessera, its
# supplementary group, no new privileges, /run/tessera made for it.
echo "== run the unit's commands (no systemd here)"
as_unit() {
    local groups
    groups=$(sed -n 's/^SupplementaryGroups=//p' "$unit" | tr ' ' '\n' | while read -r g; do getent group "$g" | cut -d: -f3; done | paste -sd,)
    # exec: started in the background, $! is then the fleet itself
    exec setpriv --reuid=tessera --regid=tessera --groups="${groups:-tessera}" --no-new-privs --inh-caps=-all "$@"
}
unit_cmd() { sed -n "s/^$1=//p" "$unit" | head -1; }
# run_unit_cmd KEY: the unit's KEY= command as systemd runs it: '!' (and '+')
# as root, in systemd's bare environment, none of this script's TESSERA_*
# overrides (the sandbox '!' keeps is systemd's, not reproduced here); no
# prefix as the unit's user (as_unit)
run_unit_cmd() {
    local line
    line=$(unit_cmd "$1")
    case $line in
    [+!]*) # shellcheck disable=SC2086
        env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin ${line#?} ;;
    [-@:]*) echo "run_unit_cmd: prefix of '$line' not handled here" >&2; return 1 ;;
    *) # shellcheck disable=SC2086
        as_unit $line ;;
    esac
}
install -d -m 0755 -o tessera -g tessera /run/tessera
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >"$T/redis.log" 2>&1 &
REDIS_PID=$!
# A scratch cluster: the superuser by trust (this script's own psql), every
# other role by password over TCP, as a production server would ask.
pg_port=$(free_port)
PG_DIR=$T/pg
install -d -o postgres -g postgres -m 0700 "$PG_DIR" "$T/pgrun"
secret() { head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
owner_pw=$(secret) app_pw=$(secret)
# every password of this run, one a line (0600): no log may hold one
(umask 077 && printf '%s\n' "$owner_pw" "$app_pw" >"$T/secrets")
# sql_as_postgres DB: runs the SQL on stdin as the superuser (secrets stay off argv)
sql_as_postgres() { psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U postgres -d "$1"; }
if runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_DIR" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
        --no-sync >"$T/pg-initdb.log" 2>&1 &&
   printf '%s\n' 'local all postgres trust' 'host all postgres 127.0.0.1/32 trust' \
        'host all all 127.0.0.1/32 scram-sha-256' >"$PG_DIR/pg_hba.conf" &&
   runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR" -l "$PG_DIR/server.log" -w -t 30 start \
        -o "-p $pg_port -k $T/pgrun -c listen_addresses=127.0.0.1 -c fsync=off" >/dev/null 2>&1 &&
   sql_as_postgres postgres >"$T/pg-setup.log" 2>&1 <<EOF
CREATE ROLE tessera_owner LOGIN CREATEROLE BYPASSRLS PASSWORD '$owner_pw';
CREATE DATABASE tessera OWNER tessera_owner;
EOF
then
    ok "a scratch PostgreSQL: migration owner tessera_owner (BYPASSRLS), password auth"
else
    not_ok "a scratch PostgreSQL for the installed package" "$(tail -5 "$T/pg-initdb.log" "$PG_DIR/server.log" "$T/pg-setup.log" 2>/dev/null)"
fi
# The owner's DSN goes into the installed migrate.conf, as an operator would put
# it; written by the shell (printf is a builtin: no password in argv) into the
# same file, which keeps its 0600 root:root.
mc=/etc/tessera/migrate.conf
owner_dsn="host=127.0.0.1 port=$pg_port dbname=tessera user=tessera_owner password=$owner_pw"
mc_new=$(while IFS= read -r l; do
    case $l in
    migrate_dsn*=*) printf 'migrate_dsn = "%s"\n' "$owner_dsn" ;;
    *) printf '%s\n' "$l" ;;
    esac
done <"$mc")
printf '%s\n' "$mc_new" >"$mc"
unset mc_new owner_dsn
check "migrate.conf names the scratch cluster's owner, and is still 0600 root:root" \
    bash -c "[ \"\$(grep -c '^migrate_dsn = \"host=127.0.0.1 port=$pg_port dbname=tessera user=tessera_owner password=' $mc)\" = 1 ] && [ \"\$(stat -c '%a %U %G' $mc)\" = '600 root root' ]"
(env -i /usr/bin/tessera -c "$mc" check-config) >"$T/check-migrate-config.json" 2>&1
# shellcheck disable=SC2016
check "migrate.conf in force for ExecStartPre: migrate as tessera_owner on the scratch cluster" \
    jq -e --arg port "port=$pg_port " '(.db.migrate_dsn | test("user=tessera_owner")) and (.db.migrate_dsn | contains($port))' "$T/check-migrate-config.json"
check "the fleet's user (as the unit runs it) cannot read migrate.conf, now that it holds a password" \
    denied as_unit cat "$mc"
export TESSERA_DB_CORE_DSN="host=127.0.0.1 port=$pg_port dbname=tessera user=tessera_app password=$app_pw"
export TESSERA_REDIS_URL=redis://127.0.0.1:$redis_port/0
# What is in force for the unit: the installed config and these overrides, no
# TESSERA_ENGINE (the engine is the config's).
(as_unit /usr/bin/tessera check-config) >"$T/check-config.json" 2>&1
check "the fleet's config in force: engine postgres, core as tessera_app, no migrate_dsn at all" \
    jq -e '.engine == "postgres" and (.db.core_dsn | test("user=tessera_app")) and .db.migrate_dsn == ""' "$T/check-config.json"
check "check-config masks the DSN passwords (tessera.conf and migrate.conf)" \
    bash -c "! grep -qF -f '$T/secrets' '$T/check-config.json' '$T/check-migrate-config.json'"
pre=$(unit_cmd ExecStartPre)
check "ExecStartPre ($pre) applies the installed migrations, as root" run_unit_cmd ExecStartPre
nsql=$(find /usr/share/tessera/sql -name '*.sql' 2>/dev/null | wc -l)
check "core.schema_migrations lists every installed migration ($nsql)" \
    test "$(sql_as_postgres tessera <<<'SELECT count(*) FROM core.schema_migrations' 2>&1)" = "$nsql"
check "the schema belongs to the migration owner (ExecStartPre used migrate.conf's migrate_dsn)" \
    test "$(sql_as_postgres tessera <<<"SELECT bool_and(tableowner = 'tessera_owner') AND count(*) > 0 FROM pg_tables WHERE schemaname = 'core'" 2>&1)" = t
# DESIGN §3: the app role owns nothing and cannot bypass RLS (checked again
# after the smoke test: whatever the fleet creates must not belong to it)
app_role_sql="SELECT r.rolcanlogin AND NOT r.rolbypassrls AND NOT r.rolsuper AND NOT r.rolcreaterole
   AND NOT EXISTS (SELECT 1 FROM pg_class WHERE relowner = r.oid)
   AND NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspowner = r.oid)
   AND NOT EXISTS (SELECT 1 FROM pg_proc WHERE proowner = r.oid)
   AND NOT EXISTS (SELECT 1 FROM pg_type WHERE typowner = r.oid)
  FROM pg_roles r WHERE r.rolname = 'tessera_app'"
check "the migration made tessera_app: LOGIN, NOBYPASSRLS, no superuser or CREATEROLE, owns nothing" \
    test "$(sql_as_postgres tessera <<<"$app_role_sql" 2>&1)" = t
# its password, as an operator gives it one (ALTER ROLE tessera_app PASSWORD)
if sql_as_postgres tessera >"$T/pg-app.log" 2>&1 <<<"ALTER ROLE tessera_app PASSWORD '$app_pw'"; then
    ok "tessera_app gets a password"
else
    not_ok "tessera_app gets a password" "$(cat "$T/pg-app.log")"
fi
check "ExecStartPre again (a restart) applies nothing and succeeds" run_unit_cmd ExecStartPre
# shellcheck disable=SC2046
as_unit $(unit_cmd ExecStart) >"$T/fleet.log" 2>&1 &
FLEET_PID=$!
for _ in $(seq 1 100); do [ -S /run/tessera/tessera.sock ] && break; sleep 0.05; done
check "the fleet, as tessera, binds /run/tessera/tessera.sock 0660 tessera:www-data" \
    bash -c "[ \"\$(stat -c '%a %U %G' /run/tessera/tessera.sock)\" = '660 tessera www-data' ]"

# --- the installed nginx site, in a test config that includes it
echo "== nginx with the installed site"
if [ ! -e /etc/ssl/certs/tessera.pem ] && [ ! -e /etc/ssl/private/tessera.key ]; then
    mkdir -p /etc/ssl/private
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
        -subj /CN=api.example.com -keyout /etc/ssl/private/tessera.key -out /etc/ssl/certs/tessera.pem \
        >/dev/null 2>&1 && made_cert=1 made_key=1
fi
site=/etc/nginx/sites-available/tessera
http_port=80 https_port=443
if ! port_free 80 || ! port_free 443; then
    # ports taken on this machine: a copy of the site on free ports, else the same
    http_port=$(free_port) https_port=$(free_port)
    sed -e "s/listen 80;/listen $http_port;/; s/listen \[::\]:80;/listen [::]:$http_port;/" \
        -e "s/listen 443 /listen $https_port /; s/listen \[::\]:443 /listen [::]:$https_port /" "$site" >"$T/site.conf"
    site=$T/site.conf
    echo "# ports 80/443 are in use here: the site runs from a copy on $http_port/$https_port"
fi
cat >"$T/nginx.conf" <<EOF
# as Debian's /etc/nginx/nginx.conf: workers as www-data, sites included in http{}
user www-data;
worker_processes 1;
daemon off;
pid $T/nginx.pid;
error_log $T/nginx-error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $T/nginx-body;
    fastcgi_temp_path $T/nginx-fastcgi;
    proxy_temp_path $T/nginx-proxy;
    uwsgi_temp_path $T/nginx-uwsgi;
    scgi_temp_path $T/nginx-scgi;
    include $site;
}
EOF
check "nginx -t accepts the installed site" nginx -t -q -c "$T/nginx.conf"
nginx -c "$T/nginx.conf" >"$T/nginx.out" 2>&1 &
NGINX_PID=$!
https=https://api.example.com:$https_port
copts="-k --resolve api.example.com:$https_port:127.0.0.1"
up=
for _ in $(seq 1 100); do
    # shellcheck disable=SC2086
    [ "$(curl -s $copts -o /dev/null -w '%{http_code}' "$https/healthz")" = 200 ] && { up=1; break; }
    sleep 0.1
done
if [ -n "$up" ]; then
    ok "the installed site serves the installed fleet over TLS"
    check "http redirects to https" bash -c \
        "curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -H 'Host: api.example.com' http://127.0.0.1:$http_port/healthz | grep -q '^301 https://api.example.com'"
    # shellcheck disable=SC2086
    check "/docs: the reference page and its vendored viewer, from /usr/share/tessera/docs" bash -c \
        "curl -s $copts '$https/docs' | grep -q '/docs/redoc.standalone.js' &&
         curl -s $copts -o /dev/null -w '%{http_code}' '$https/docs/redoc.standalone.js' | grep -q 200"
    # shellcheck disable=SC2086
    check "the site serves the installed console at /console/ with its Content-Security-Policy" bash -c \
        "curl -s $copts -D - -o '$T/console.html' '$https/console/' | tr -d '\\r' | grep -qi \"^content-security-policy: default-src 'none'; script-src 'self'\" && grep -q 'js/main.js' '$T/console.html'"
    # shellcheck disable=SC2086
    check "…and its modules as JavaScript (nosniff)" bash -c \
        "curl -s $copts -o /dev/null -w '%{http_code} %{content_type}' '$https/console/js/main.js' | grep -q '^200 text/javascript'"
    # shellcheck disable=SC2086
    check "readyz: the core pool (postgres) and the kv (redis) answer" bash -c \
        "curl -s $copts '$https/readyz' | jq -e '.checks.db_core.status == \"ok\" and .checks.db_core.backend == \"postgres\" and .checks.kv.status == \"ok\" and .checks.kv.backend == \"redis\"'"
    # a platform admin (`tessera admin create`, as the operator would) registers
    # the service the smoke test's schema and record round trip uses; the
    # password goes on stdin, the token in a 0600 header file: neither in argv
    admin_pw=$(secret)
    printf '%s\n' "$admin_pw" >>"$T/secrets"
    if (as_unit /usr/bin/tessera admin create ops@smoke.tessera.test) <<<"$admin_pw" >"$T/admin.log" 2>&1; then
        ok "tessera admin create makes a platform admin in the installed fleet"
    else
        not_ok "tessera admin create makes a platform admin in the installed fleet" "$(cat "$T/admin.log")"
    fi
    # shellcheck disable=SC2086
    admin_tok=$(curl -s $copts -H 'Content-Type: application/json' -d @- "$https/v1/auth/login" \
        <<<"{\"email\":\"ops@smoke.tessera.test\",\"password\":\"$admin_pw\"}" | jq -r '.access_token // empty')
    (umask 077 && printf 'Authorization: Bearer %s\n' "${admin_tok:-none}" >"$T/admin.hdr")
    # shellcheck disable=SC2086
    check "the admin registers the microservice app smoke" bash -c \
        "curl -s $copts -o /dev/null -w '%{http_code}' -H @'$T/admin.hdr' -H 'Content-Type: application/json' -d '{\"name\":\"smoke\",\"kind\":\"microservice\"}' '$https/v1/apps' | grep -q 201"
    if [ "$records" = 1 ]; then
        echo "== tests/smoke.sh $https (through the installed site and fleet; SMOKE_SERVICE=smoke)"
        SMOKE_SERVICE=smoke SMOKE_ADMIN_AUTH="$T/admin.hdr" SMOKE_CURL_OPTS="$copts" tests/smoke.sh "$https" >"$T/smoke.out" 2>&1
        smoke_rc=$?
        if [ "$smoke_rc" -eq 0 ] && ! grep -q '# SKIP' "$T/smoke.out"; then
            ok "tests/smoke.sh, with the schema and record round trip, passes on postgres ($(tail -1 "$T/smoke.out"))"
        else
            not_ok "tests/smoke.sh, with the schema and record round trip, passes on postgres" \
                "$(tail -1 "$T/smoke.out") (its output follows)"
            # a 503 says only "unavailable" (and the fleet logs no reason): the
            # placeholder is recognised in the source this package was built from
            grep -qs 'records on postgres: not built yet' lib/store/pg/engine_pg_records.c &&
                echo "# lib/store/pg/engine_pg_records.c is still the placeholder (records on postgres answer 503): PACKAGE_TEST_RECORDS=0 tests the rest"
        fi
    else
        echo "== tests/smoke.sh $https (through the installed site and fleet; auth only, PACKAGE_TEST_RECORDS=0)"
        env -u SMOKE_SERVICE SMOKE_CURL_OPTS="$copts" tests/smoke.sh "$https" >"$T/smoke.out" 2>&1
        smoke_rc=$?
        # exactly the one skip smoke.sh makes without SMOKE_SERVICE, nothing else
        if [ "$smoke_rc" -eq 0 ] && [ "$(grep -c '# SKIP' "$T/smoke.out")" = 1 ] &&
           grep -q '^ok - schema and record round trip # SKIP' "$T/smoke.out"; then
            ok "tests/smoke.sh, auth part, passes on postgres ($(tail -1 "$T/smoke.out"))"
        else
            not_ok "tests/smoke.sh, auth part, passes on postgres" "$(tail -1 "$T/smoke.out") (its output follows)"
        fi
        skipped "tests/smoke.sh's schema and record round trip on postgres" \
            "PACKAGE_TEST_RECORDS=0 (records on postgres are not in this build)"
    fi
    sed 's/^/#   /' "$T/smoke.out"
    # the accounts went to PostgreSQL (not some other store), through the app role
    check "PostgreSQL holds the accounts: core.users has the admin and the smoke user" \
        test "$(sql_as_postgres tessera <<<'SELECT count(*) >= 2 FROM core.users' 2>&1)" = t
    check "after the smoke test tessera_app still owns nothing, still NOBYPASSRLS" \
        test "$(sql_as_postgres tessera <<<"$app_role_sql" 2>&1)" = t
    check "the fleet's connections are tessera_app's, none the owner's" \
        test "$(sql_as_postgres tessera 2>&1 <<'EOF'
SELECT count(*) FILTER (WHERE usename = 'tessera_app') > 0 AND count(*) FILTER (WHERE usename = 'tessera_owner') = 0
  FROM pg_stat_activity WHERE datname = 'tessera'
EOF
)" = t
    # shellcheck disable=SC2046
    check "ExecReload ($(unit_cmd ExecReload)) reloads the fleet" as_unit $(unit_cmd ExecReload)
    # shellcheck disable=SC2086
    check "and it keeps serving" bash -c "curl -fsS $copts '$https/healthz' >/dev/null"
    # a key rotation as the README tells it, run by root: the new key must stay
    # the tessera user's (0600), or the reload would be refused
    kid_of() {
        local h
        h=$(tr -- '-_' '+/' <<<"${1%%.*}")
        while [ $(( ${#h} % 4 )) -ne 0 ]; do h="$h="; done
        base64 -d <<<"$h" 2>/dev/null | jq -r .kid
    }
    rot=$(/usr/bin/tessera -c /etc/tessera/tessera.conf keygen --rotate 2>&1)
    prev_pub=$(sed -n 's/: the previous key.s public half.*//p' <<<"$rot")
    check "keygen --rotate as root keeps the new key 0600 tessera, the previous public half beside it" \
        bash -c "[ \"\$(stat -c '%a %U' /etc/tessera/jwt.pem)\" = '600 tessera' ] && [ \"\$(stat -c '%a %U' '${prev_pub:-none}')\" = '644 tessera' ]"
    sed -i "s|^signing_key = .*|&\nverify_keys = $prev_pub|" /etc/tessera/tessera.conf
    # shellcheck disable=SC2046
    check "a reload with the previous key in verify_keys is accepted" as_unit $(unit_cmd ExecReload)
    # the rolling restart has reached every slot: no old worker signs any more
    for _ in $(seq 1 100); do
        as_unit /usr/bin/tessera status --json 2>/dev/null | jq -e '.generation as $g | all(.slots[]; .generation == $g and .pid > 0 and .state != "retiring")' >/dev/null && break
        sleep 0.2
    done
    # shellcheck disable=SC2086
    check "the admin's token of the previous key still works after the rotation" bash -c \
        "curl -s $copts -o /dev/null -w '%{http_code}' -H @'$T/admin.hdr' '$https/v1/auth/me' | grep -q 200"
    # shellcheck disable=SC2086
    new_tok=$(curl -s $copts -H 'Content-Type: application/json' -d @- "$https/v1/auth/login" \
        <<<"{\"email\":\"ops@smoke.tessera.test\",\"password\":\"$admin_pw\"}" | jq -r '.access_token // empty')
    check "a new login is signed by the new key" \
        bash -c "[ -n '$new_tok' ] && [ '$(kid_of "$new_tok")' != '$(kid_of "$admin_tok")' ] && [[ '$prev_pub' == *'$(kid_of "$admin_tok")'* ]]"
    # nginx's limit on /v1/auth/ (limit_req zone=tessera_auth rate=10r/s
    # burst=20 nodelay; limit_req_status 429, the JSON envelope of
    # tessera-errors.conf): a burst of 40 logins from one address lets the
    # first 21 through (1 + burst, a few more as tokens come back at 10/s) and
    # answers the rest 429 itself. The bodies lack a password: tessera answers
    # them 400 at once (no password hashing), so every 429 is nginx's. Last in
    # this block: the burst spends the address's allowance for two seconds.
    mkdir -p "$T/burst"
    # shellcheck disable=SC2086
    seq 1 40 | xargs -P 40 -I{} curl -s $copts -o "$T/burst/{}.body" -D "$T/burst/{}.hdr" -w '%{http_code}' \
        -H 'Content-Type: application/json' -d '{"email":"burst@example.test"}' \
        "$https/v1/auth/login" >/dev/null 2>&1
    n429=0 nother=0 bad429=
    for f in "$T"/burst/*.hdr; do
        code=$(head -1 "$f" | awk '{ print $2 }')
        if [ "$code" = 429 ]; then
            n429=$((n429 + 1))
            rid=$(tr -d '\r' <"$f" | sed -n 's/^[Xx]-[Rr]equest-[Ii]d: //p')
            ra=$(tr -d '\r' <"$f" | sed -n 's/^[Rr]etry-[Aa]fter: //p')
            jq -e --arg rid "$rid" '.error.code == "too_many_requests" and .error.message == "too many requests" and
                (.error.request_id | length == 32) and .error.request_id == $rid' "${f%.hdr}.body" >/dev/null 2>&1 &&
                [ "$ra" = 1 ] || bad429="$bad429 $(basename "${f%.hdr}"): $(head -c 200 "${f%.hdr}.body")"
        else
            nother=$((nother + 1))
        fi
    done
    check "40 concurrent logins from one address through the site: $nother let through, $n429 answered 429 by nginx's limit" \
        test "$nother" -ge 21 -a "$n429" -ge 10 -a $((n429 + nother)) = 40
    check "…each 429 the JSON envelope (too_many_requests, the request id of its X-Request-Id), with Retry-After: 1" \
        test -z "$bad429"
    [ -n "$bad429" ] && echo "#  ${bad429:0:400}"
    # shellcheck disable=SC2086
    codes=$(seq 1 40 | xargs -P 40 -I{} curl -s $copts -o /dev/null -w '%{http_code}\n' "$https/healthz" | sort | uniq -c | tr -s ' \n' ' ')
    check "…while the limit holds, 40 concurrent GET /healthz from that address are not limited ($codes)" \
        test "$codes" = " 40 200 "
else
    not_ok "the installed site serves the installed fleet over TLS" \
        "$(tail -5 "$T/nginx-error.log" 2>/dev/null; tail -5 "$T/fleet.log")"
fi
kill -QUIT "$NGINX_PID" 2>/dev/null; wait "$NGINX_PID" 2>/dev/null; NGINX_PID=
# systemd stops the unit with SIGTERM to the main process (KillMode=mixed)
kill -TERM "$FLEET_PID" 2>/dev/null
stopped=
for _ in $(seq 1 200); do kill -0 "$FLEET_PID" 2>/dev/null || { stopped=1; break; }; sleep 0.1; done
wait "$FLEET_PID" 2>/dev/null; FLEET_PID=
check "SIGTERM stops the fleet gracefully" test -n "$stopped"
check "no process of the tessera user is left" bash -c "! pgrep -u tessera -l"
check "the fleet wrote its log to stderr (the journal under systemd)" grep -q '"event"' "$T/fleet.log"
check "no password of this run in any log (fleet, smoke, admin, nginx, PostgreSQL)" \
    bash -c "! grep -lF -f '$T/secrets' '$T'/*.log '$T'/*.out '$PG_DIR/server.log'"
kill -TERM "$REDIS_PID" 2>/dev/null; wait "$REDIS_PID" 2>/dev/null; REDIS_PID=
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR" -m fast -w stop >/dev/null 2>&1; PG_DIR=
unset TESSERA_REDIS_URL TESSERA_DB_CORE_DSN
rm -rf /run/tessera   # RuntimeDirectory goes with the unit

# --- the .rpm: the same files (where each distribution keeps them) and binary
echo "== $rpm"
rpm -qp --qf '[%{FILEMODES:perms} %{FILENAMES}\n]' "$rpm" 2>/dev/null | awk '$1 ~ /^-/ { print $2 }' | sort >"$T/rpm-files"
dpkg-deb -c "$deb" | awk '$1 ~ /^-/ { sub(/^\./, "", $6); print $6 }' |
    sed -e 's|^/etc/nginx/sites-available/tessera$|/etc/nginx/conf.d/tessera.conf|' \
        -e 's|^/lib/systemd/|/usr/lib/systemd/|' |
    grep -v -e '^/usr/share/doc/tessera/changelog.gz$' -e '^/usr/share/lintian/' | sort >"$T/deb-mapped"
check "rpm -qlp lists the same files as the .deb (nginx site in conf.d)" diff "$T/deb-mapped" "$T/rpm-files"
check "rpm -qlp lists /etc/nginx/conf.d/tessera.conf" bash -c "rpm -qlp '$rpm' 2>/dev/null | grep -qx /etc/nginx/conf.d/tessera.conf"
mkdir -p "$T/rpm-root"
(cd "$T/rpm-root" && rpm2cpio "$rpm" | cpio -idm --quiet 2>/dev/null)
check "the binary from rpm2cpio runs tessera version" bash -c "'$T/rpm-root/usr/bin/tessera' version | grep -q '^tessera $version'"
mkdir -p "$T/deb-root" && dpkg-deb -x "$deb" "$T/deb-root"
check "the .deb and the .rpm carry the same binary" \
    cmp "$T/deb-root/usr/bin/tessera" "$T/rpm-root/usr/bin/tessera"
check "the .deb ships migrate.conf 0600 root:root" \
    bash -c "dpkg-deb -c '$deb' | grep -Eq '^-rw------- root/root .* \\./etc/tessera/migrate\\.conf\$'"
check "the .rpm ships migrate.conf as %config(noreplace), 0600 root:root" \
    bash -c "rpm -qp --qf '[%{FILEMODES:perms} %{FILEUSERNAME} %{FILEGROUPNAME} %{FILEFLAGS:fflags} %{FILENAMES}\n]' '$rpm' 2>/dev/null | grep -qx -- '-rw------- root root cn /etc/tessera/migrate.conf'"
check "the rpm's config gives the socket to nginx's group" \
    grep -qx 'listen_owner = tessera:nginx' "$T/rpm-root/etc/tessera/tessera.conf"

# --- purge leaves nothing behind
echo "== dpkg --purge"
check "dpkg --purge tessera" dpkg --purge tessera
check "no /etc/tessera after purge" test ! -e /etc/tessera
check "no tessera user or group after purge" bash -c "! getent passwd tessera && ! getent group tessera"
check "none of the package's files remain" \
    bash -c "while read -r f; do [ -d \"\$f\" ] && continue; [ -e \"\$f\" ] && { echo \"left: \$f\"; exit 1; }; done <'$T/deb-files'; test ! -e /usr/share/tessera"

echo "# package-test took $((SECONDS - started)) s"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
