#!/bin/sh
# Installs the Debian packages that tessera's build, `make run` and `make test`
# need. Idempotent: asks apt only for what is missing, runs `apt-get update`
# only then, and prints nothing when everything is already present.
# Arguments name extra packages for one target (`deps.sh clang` for make fuzz).
set -eu

PKGS="gcc make pkg-config libfcgi-dev libpq-dev libhiredis-dev libcjson-dev
libssl-dev libcmocka-dev nginx-light curl jq wrk spawn-fcgi redis-server
postgresql postgresql-client postgresql-server-dev-15 pgbouncer procps iproute2 python3 openssl xxd nodejs chromium fonts-dejavu-core $*"

# npm: part of the nodejs package where it comes from NodeSource (as on these
# machines), a package of its own in Debian's archive
command -v npm >/dev/null 2>&1 || PKGS="$PKGS npm"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
        echo "deps.sh: missing packages:$missing (run as root to install them)" >&2
        exit 1
    fi
else
    SUDO=
fi
# The server's headers (for the tests' pgvector build) at the version of the
# libpq already here: a newer one would upgrade libpq and the server with it,
# past the source packages the static build fetches (static-deps.sh), which a
# mirror may not hold for a security update.
want=""
for p in $missing; do
    v=""
    [ "$p" = postgresql-server-dev-15 ] && v=$(dpkg-query -W -f='${Version}' libpq-dev 2>/dev/null || true)
    want="$want $p${v:+=$v}"
done
echo "deps.sh: installing$want" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $want >/dev/null
