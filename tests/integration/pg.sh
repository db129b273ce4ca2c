# Real PostgreSQL and Redis for a suite, sourced after lib.sh: each server runs
# from the suite's temporary folder $T on a free loopback port and is stopped
# by lib.sh's cleanup (CLEANUP_HOOKS), also when a case fails.
#
# pg_up sets PG_PORT, PG_SOCK (socket folder), PG_OWNER_DSN (the migration
# owner tessera_owner: LOGIN CREATEROLE BYPASSRLS, owns database `tessera`) and
# PG_APP_DSN (tessera_app, which the first migration creates). Authentication is
# trust on the socket and loopback: a scratch cluster only this suite reaches.
# redis_up sets REDIS_PORT and REDIS_URL (loopback), and REDIS_SOCK_URL: the
# same server on a unix socket in $T, for a fleet in another network
# namespace, which cannot reach this one's loopback (90_two_hosts).

[ -n "${PG_SH_LOADED:-}" ] && return 0   # sourced by a suite and by stack_up: once
PG_SH_LOADED=1
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_DIR=
REDIS_PID=
PG_NDB=0

# PostgreSQL refuses to run as root: as root, run its programs as the Debian
# `postgres` system user; otherwise as ourselves.
pg_as() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# pg_psql DB [psql args...]: psql as the cluster's superuser.
pg_psql() {
    local db=$1; shift
    psql -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$PG_PORT" -U postgres -d "$db" "$@"
}

# cluster_init DIR SOCK NAME / cluster_start DIR SOCK PORT: a scratch cluster
# in DIR (initdb's log $T/NAME-initdb.log) and its server on PORT and SOCK,
# for speed not durability; what pg_up and pg2_up share.
cluster_init() {
    mkdir -p "$1" "$2"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$1" "$2"
    chmod 700 "$1"
    pg_as "$PG_BIN/initdb" -D "$1" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
        --no-sync >"$T/$3-initdb.log" 2>&1 || { sed 's/^/# /' "$T/$3-initdb.log" | tail -20; return 1; }
}
cluster_start() {
    pg_as "$PG_BIN/pg_ctl" -D "$1" -l "$1/server.log" -w -t 30 start \
        -o "-p $3 -k $2 -c listen_addresses=127.0.0.1 -c fsync=off \
            -c synchronous_commit=off -c full_page_writes=off -c max_connections=100" \
        >>"$T/pg-ctl.log" 2>&1 || { sed 's/^/# /' "$1/server.log" | tail -20; return 1; }
}

pg_up() {
    PG_PORT=$(free_port)
    PG_DIR=$T/pg
    PG_SOCK=$T/pgrun
    cluster_init "$PG_DIR" "$PG_SOCK" pg || return 1
    CLEANUP_HOOKS+=("pg_down")
    pg_start || return 1
    pg_psql postgres -c "CREATE ROLE tessera_owner LOGIN CREATEROLE BYPASSRLS" \
        -c "CREATE DATABASE tessera OWNER tessera_owner" || return 1
    PG_OWNER_DSN="host=$PG_SOCK port=$PG_PORT dbname=tessera user=tessera_owner"
    PG_APP_DSN="host=$PG_SOCK port=$PG_PORT dbname=tessera user=tessera_app"
}

# pg_start / pg_stop: the cluster pg_up made, on the same port and socket.
pg_start() { cluster_start "$PG_DIR" "$PG_SOCK" "$PG_PORT"; }
pg_stop() { pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR" -m fast -w -t 30 stop >>"$T/pg-ctl.log" 2>&1; }
# pg_crash: stops it at once (-m immediate): every backend dies mid-statement, as in a crash.
pg_crash() { pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR" -m immediate -w -t 30 stop >>"$T/pg-ctl.log" 2>&1; }

# pg_createdb NAME: another empty database owned by the migration owner.
pg_createdb() { pg_psql postgres -c "CREATE DATABASE \"$1\" OWNER tessera_owner"; }

pg_down() {
    [ -n "$PG_DIR" ] && [ -f "$PG_DIR/postmaster.pid" ] &&
        pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR" -m immediate -w -t 30 stop >/dev/null 2>&1
    PG_DIR=
}

# pg2_up DB: a second cluster, started as pg_up starts the first (its own
# data folder $T/pg2, port and socket), with the migration owner and an empty
# database DB it owns: a database on another server (an org placed there,
# 92_placement). Sets PG2_PORT, PG2_SOCK, PG2_OWNER_DSN and PG2_APP_DSN (DB's).
PG2_DIR=
pg2_up() {
    PG2_PORT=$(free_port)
    PG2_DIR=$T/pg2
    PG2_SOCK=$T/pg2run
    cluster_init "$PG2_DIR" "$PG2_SOCK" pg2 || return 1
    CLEANUP_HOOKS+=("pg2_down")
    cluster_start "$PG2_DIR" "$PG2_SOCK" "$PG2_PORT" || return 1
    psql -X -q -v ON_ERROR_STOP=1 -h "$PG2_SOCK" -p "$PG2_PORT" -U postgres -d postgres \
        -c "CREATE ROLE tessera_owner LOGIN CREATEROLE BYPASSRLS" -c "CREATE DATABASE \"$1\" OWNER tessera_owner" ||
        return 1
    PG2_OWNER_DSN="host=$PG2_SOCK port=$PG2_PORT dbname=$1 user=tessera_owner"
    PG2_APP_DSN="host=$PG2_SOCK port=$PG2_PORT dbname=$1 user=tessera_app"
}

pg2_down() {
    [ -n "$PG2_DIR" ] && [ -f "$PG2_DIR/postmaster.pid" ] &&
        pg_as "$PG_BIN/pg_ctl" -D "$PG2_DIR" -m immediate -w -t 30 stop >/dev/null 2>&1
    PG2_DIR=
}

redis_up() {
    REDIS_PORT=$(free_port)
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --unixsocket "$T/redis.sock" --unixsocketperm 700 \
        --dir "$T" --logfile "$T/redis.log" >/dev/null 2>&1 &
    REDIS_PID=$!
    CLEANUP_HOOKS+=("redis_down")
    REDIS_URL=redis://127.0.0.1:$REDIS_PORT
    REDIS_SOCK_URL=unix://$T/redis.sock
    wait_until 10 redis-cli -p "$REDIS_PORT" ping || { tail -20 "$T/redis.log" | sed 's/^/# /'; return 1; }
}

redis_down() {
    [ -n "$REDIS_PID" ] && { kill "$REDIS_PID" 2>/dev/null; wait "$REDIS_PID" 2>/dev/null; }
    REDIS_PID=
}

# pgbouncer_up ALIAS DB [POOL_SIZE]: PgBouncer in transaction pooling in
# front of this cluster's database DB, which clients name ALIAS, with
# POOL_SIZE (default 1) server connections, on 127.0.0.1:PB_PORT (a free
# port the first time, the same one when it is started again); waits until
# it answers. Trust authentication, as the cluster's. Stopped by
# pgbouncer_down and by lib.sh's cleanup.
PB_PORT=
PB_PID=
pgbouncer_up() {
    local alias=$1 db=$2 size=${3:-1}
    [ -n "$PB_PORT" ] || PB_PORT=$(free_port)
    mkdir -p "$T/pgb"
    printf '"tessera_app" ""\n' >"$T/pgb/users.txt"
    cat >"$T/pgb/pgbouncer.ini" <<EOF
[databases]
$alias = host=$PG_SOCK port=$PG_PORT dbname=$db
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PB_PORT
unix_socket_dir =
auth_type = trust
auth_file = $T/pgb/users.txt
pool_mode = transaction
default_pool_size = $size
max_client_conn = 100
logfile = $T/pgb/pgbouncer.log
pidfile = $T/pgb/pgbouncer.pid
EOF
    [ "$(id -u)" -eq 0 ] && chown -R postgres: "$T/pgb"
    pg_as pgbouncer "$T/pgb/pgbouncer.ini" >/dev/null 2>&1 &
    PB_PID=$!
    case " ${CLEANUP_HOOKS[*]} " in *" pgbouncer_down "*) ;; *) CLEANUP_HOOKS+=("pgbouncer_down") ;; esac
    wait_until 10 pg_isready -q -h 127.0.0.1 -p "$PB_PORT" -d "$alias" -U tessera_app ||
        { tail -5 "$T/pgb/pgbouncer.log" | sed 's/^/# /'; return 1; }
}

# pgbouncer_down [SIGNAL]: stops it (TERM; KILL: at once, as a crash) and
# waits until it is gone. As root $PB_PID is runuser's, which does not pass a
# signal on: PgBouncer itself is signalled by its pid file, then the wrapper
# reaped.
pgbouncer_down() {
    local pid
    pid=$(cat "$T/pgb/pgbouncer.pid" 2>/dev/null) && kill "-${1:-TERM}" "$pid" 2>/dev/null
    [ -n "$PB_PID" ] && { kill "$PB_PID" 2>/dev/null; wait "$PB_PID" 2>/dev/null; }
    [ -n "$pid" ] && for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$T/pgb/pgbouncer.pid"   # a killed one leaves it behind
    PB_PID=
    return 0
}

# pgvector_install: pgvector (the vendored source, ../shared/vendor) built
# against Debian's postgresql-server-dev-15 and installed into the cluster's
# library and extension folders, once per machine (a later run finds it).
# The packages never ship it; only the suites that run on ENGINE=pgvector
# need it. Where the clone has no ../shared beside it, TESSERA_SHARED (or the
# workplace's /work/shared) names the folder.
PGVECTOR_VERSION=0.8.6
pgvector_install() {
    local ext=/usr/share/postgresql/15/extension src tmp shared
    grep -qs "default_version = '$PGVECTOR_VERSION'" "$ext/vector.control" && return 0
    for shared in "${TESSERA_SHARED:-}" "$ROOT/../shared" /work/shared; do
        src=$shared/vendor/pgvector-$PGVECTOR_VERSION.tar.gz
        [ -n "$shared" ] && [ -f "$src" ] && break
    done
    [ -f "$src" ] || { echo "# pgvector: no pgvector-$PGVECTOR_VERSION.tar.gz (set TESSERA_SHARED)"; return 1; }
    tmp=$(mktemp -d)
    tar xzf "$src" -C "$tmp" &&
        make -s -C "$tmp/pgvector-$PGVECTOR_VERSION" OPTFLAGS= >"$tmp/build.log" 2>&1 &&
        make -s -C "$tmp/pgvector-$PGVECTOR_VERSION" install >>"$tmp/build.log" 2>&1 ||
        { tail -20 "$tmp/build.log" | sed 's/^/# /'; rm -rf "$tmp"; return 1; }
    rm -rf "$tmp"
}

# pg_engine_env: for a stack on engine = postgres (ENGINE=postgres, see
# stack_up): PostgreSQL and Redis up (once per suite), then a fresh database
# per stack, migrated as the owner and seeded through `tessera seed` with the
# stack's keys, so every stack starts empty as a memory one does. Sets
# PG_ENV (the fleet's env assignments) and PG_DB_APP_DSN / PG_DB_OWNER_DSN.
pg_engine_env() {
    if [ -z "$PG_DIR" ]; then pg_up || return 1; fi
    if [ -z "$REDIS_PID" ]; then redis_up || return 1; fi
    PG_NDB=$((PG_NDB + 1))
    local db=tessera_s$PG_NDB d
    # a fresh database with the seed's fixed ids must not meet the cache an
    # earlier stack left in this Redis (as a restored database would not in
    # production without a flush: README, the read cache)
    redis-cli -p "$REDIS_PORT" flushall >/dev/null || return 1
    pg_createdb "$db" >/dev/null || return 1
    if [ "${ENGINE:-}" = pgvector ]; then
        # as a DBA would, once per database: the extension needs a superuser
        pgvector_install && pg_psql "$db" -c "CREATE EXTENSION vector" >/dev/null || return 1
    fi
    PG_DB_OWNER_DSN="host=$PG_SOCK port=$PG_PORT dbname=$db user=tessera_owner"
    PG_DB_APP_DSN="host=$PG_SOCK port=$PG_PORT dbname=$db user=tessera_app"
    TESSERA_DB_MIGRATE_DSN=$PG_DB_OWNER_DSN TESSERA_DB_SQL_DIR=$ROOT/sql "$TESSERA" migrate \
        >>"$T/migrate.log" 2>&1 || { tail -5 "$T/migrate.log" | sed 's/^/# /'; return 1; }
    # prepare = on: direct connections, as the packaged config has it (45 covers off and PgBouncer)
    PG_ENV=(TESSERA_ENGINE=postgres "TESSERA_DB_CORE_DSN=$PG_DB_APP_DSN" "TESSERA_REDIS_URL=$REDIS_URL"
        TESSERA_DB_PREPARE=on)
    for d in ${SEED_DIR-$ROOT/seed/dev}; do
        env "${PG_ENV[@]}" "$TESSERA" seed "$d" >>"$T/seed.log" 2>&1 ||
            { tail -5 "$T/seed.log" | sed 's/^/# /'; return 1; }
    done
}
