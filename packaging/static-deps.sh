#!/usr/bin/env bash
# Builds the static archives `make static` needs that Debian does not ship in a
# usable form, from Debian's own source packages, into a cache reused across
# builds and clones, keyed by the source package's version:
#   cJSON   Debian ships no libcjson.a at all.
#   libpq   Debian's libpq.a is built with GSSAPI and LDAP, whose static
#           archives do not exist; rebuilt here without them (and without
#           readline, ICU, zlib), only src/interfaces/libpq + src/common + src/port.
# libfcgi.a, libhiredis.a, libssl.a and libcrypto.a come from Debian's -dev
# packages as they are (checked below; built here only if one goes missing).
#
# glibc, not musl: musl-gcc would need every dependency (OpenSSL, hiredis,
# fcgi2 too) rebuilt against musl, as Debian has no musl builds of them. The
# price of static glibc: getaddrinfo/getpwnam go through NSS, which dlopens
# the host's libnss_*.so.2 at run time and must match the glibc the binary was
# linked with. So the shipped config names hosts by address (127.0.0.1).
#
# Usage: static-deps.sh OUT.mk   writes a make fragment with STATIC_CPPFLAGS and
# STATIC_LDLIBS. Cache: $TESSERA_STATIC_CACHE, else ~/.cache/tessera-static.
set -euo pipefail
out=${1:?usage: static-deps.sh OUT.mk}
cache=${TESSERA_STATIC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tessera-static}
jobs=$(nproc 2>/dev/null || echo 2)
mkdir -p "$cache"
say() { echo "static-deps: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi

# The version of the source package a -dev package was built from.
src_version() { dpkg-query -W -f='${source:Version}' "$1"; }

srcs_ready=
# apt-get source needs a deb-src entry; ours lives in a file of its own.
ensure_deb_src() {
    [ -n "$srcs_ready" ] && return 0
    if ! grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        say "adding a deb-src entry for bookworm (/etc/apt/sources.list.d/tessera-src.sources)"
        $SUDO tee /etc/apt/sources.list.d/tessera-src.sources >/dev/null <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
        $SUDO apt-get update -qq >/dev/null
    fi
    command -v dpkg-source >/dev/null || $SUDO apt-get install -y -qq --no-install-recommends dpkg-dev >/dev/null
    srcs_ready=1
}

# fetch SRCPKG VERSION DIR: unpacks Debian's source (patches applied) into DIR/src.
fetch() {
    local pkg=$1 ver=$2 dir=$3
    ensure_deb_src
    rm -rf "$dir/src" "$dir/dl"
    mkdir -p "$dir/dl"
    say "apt-get source $pkg=$ver"
    (cd "$dir/dl" && apt-get source -qq "$pkg=$ver" >/dev/null 2>&1) ||
        { say "apt-get source $pkg=$ver failed"; exit 1; }
    mv "$(find "$dir/dl" -mindepth 1 -maxdepth 1 -type d | head -1)" "$dir/src"
    rm -rf "$dir/dl"
}

# --- cJSON
cjson_ver=$(src_version libcjson-dev)
cjson=$cache/cjson-$cjson_ver
if [ ! -f "$cjson/.done" ]; then
    rm -rf "$cjson"; mkdir -p "$cjson"
    fetch cjson "$cjson_ver" "$cjson"
    say "building libcjson.a $cjson_ver"
    mkdir -p "$cjson/lib" "$cjson/include/cjson"
    cc -O2 -fno-strict-aliasing -c -o "$cjson/src/cJSON.o" "$cjson/src/cJSON.c"
    ar rcs "$cjson/lib/libcjson.a" "$cjson/src/cJSON.o"
    cp "$cjson/src/cJSON.h" "$cjson/include/"
    cp "$cjson/src/cJSON.h" "$cjson/include/cjson/"
    rm -rf "$cjson/src"
    touch "$cjson/.done"
fi

# --- libpq (PostgreSQL 15, client side only)
pq_ver=$(src_version libpq-dev)
pq=$cache/libpq-$pq_ver
if [ ! -f "$pq/.done" ]; then
    rm -rf "$pq"; mkdir -p "$pq"
    fetch postgresql-15 "$pq_ver" "$pq"
    say "configuring libpq $pq_ver (no GSSAPI, LDAP, readline, ICU, zlib)"
    (cd "$pq/src" && ./configure -q --prefix="$pq" --with-openssl \
        --without-gssapi --without-ldap --without-readline --without-icu --without-zlib \
        --without-perl --without-python --without-tcl >"$pq/configure.log" 2>&1) ||
        { tail -20 "$pq/configure.log" >&2; exit 1; }
    say "building libpq $pq_ver"
    # The generated headers (errcodes.h, …) first: src/common needs them, and
    # its own prerequisite on them races under -j. The outer make's flags
    # (jobserver, -s) stay out of PostgreSQL's build.
    unset MAKEFLAGS MFLAGS MAKELEVEL
    make -s -C "$pq/src/src/backend" generated-headers >>"$pq/build.log" 2>&1 ||
        { tail -30 "$pq/build.log" >&2; exit 1; }
    for d in src/common src/port src/interfaces/libpq; do
        make -s -C "$pq/src/$d" -j"$jobs" >>"$pq/build.log" 2>&1 ||
            { tail -30 "$pq/build.log" >&2; exit 1; }
    done
    for d in src/include src/interfaces/libpq; do
        make -s -C "$pq/src/$d" install >>"$pq/build.log" 2>&1 ||
            { tail -30 "$pq/build.log" >&2; exit 1; }
    done
    # libpq.a leaves src/common and src/port out; the _shlib builds are the
    # ones libpq itself is made with (PIC, no frontend exit paths)
    cp "$pq/src/src/common/libpgcommon_shlib.a" "$pq/src/src/port/libpgport_shlib.a" "$pq/lib/"
    rm -rf "$pq/src" "$pq"/lib/*.so*
    touch "$pq/.done"
fi

# --- what Debian ships as static archives: used as they are
deb_a() { # PKG LIB: path of Debian's static archive LIB from PKG, or empty
    dpkg -L "$1" 2>/dev/null | grep -m1 "/$2\$" || true
}
for pair in libfcgi-dev:libfcgi.a libhiredis-dev:libhiredis.a libssl-dev:libssl.a libssl-dev:libcrypto.a; do
    if [ -z "$(deb_a "${pair%%:*}" "${pair#*:}")" ]; then
        say "Debian's ${pair%%:*} ships no ${pair#*:}: this script must learn to build it"
        exit 1
    fi
done

cat >"$out" <<EOF
# Written by packaging/static-deps.sh: static archives from $cache
STATIC_CPPFLAGS := -I$cjson/include -I$pq/include
STATIC_LDLIBS := -static -L$cjson/lib -L$pq/lib -lfcgi -lcjson -lhiredis -lpq -lpgcommon_shlib -lpgport_shlib -lssl -lcrypto -lpthread -ldl -lm
EOF
say "ready: cJSON $cjson_ver, libpq $pq_ver (cache $cache)"
