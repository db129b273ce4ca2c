#!/usr/bin/env bash
# `make deb`: build/tessera_VERSION_amd64.deb with dpkg-deb from the static
# binary, then lintian on it (errors fail the build).
#   build.sh BUILD_DIR VERSION
set -euo pipefail
build=$1 version=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
here=packaging/deb
tree=$build/deb/root
deb=$build/tessera_${version}_amd64.deb

"$here/stage.sh" deb "$tree" "$build"

doc=$tree/usr/share/doc/tessera
{
    echo "tessera ($version) stable; urgency=medium"
    echo
    echo "  * Release $version ($(git rev-parse --short HEAD 2>/dev/null || echo unknown))."
    echo
    # a fixed date keeps the package reproducible for one commit
    echo " -- tessera maintainers <maintainers@tessera.invalid>  $(date -R -u -d "@$(git log -1 --format=%ct 2>/dev/null || date +%s)")"
} | gzip -9n >"$doc/changelog.gz"
install -d -m 0755 "$tree/usr/share/lintian/overrides"
install -m 0644 "$here/lintian-overrides" "$tree/usr/share/lintian/overrides/tessera"

install -d -m 0755 "$tree/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$tree" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@SIZE@/$size/" "$here/control.in" >"$tree/DEBIAN/control"
install -m 0644 "$here/conffiles" "$tree/DEBIAN/conffiles"
install -m 0755 "$here/postinst" "$here/prerm" "$here/postrm" "$tree/DEBIAN/"
(cd "$tree" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z |
    xargs -0 md5sum) >"$tree/DEBIAN/md5sums"
chmod 0644 "$tree/DEBIAN/md5sums"

dpkg-deb --root-owner-group -Zxz --build "$tree" "$deb" >/dev/null
echo "  DEB     $deb ($(stat -c %s "$deb") bytes)"

if ! command -v lintian >/dev/null 2>&1; then
    echo "deb: installing lintian" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends lintian >/dev/null
fi
# lintian exits non-zero on errors (the default --fail-on error)
lintian --display-level '>=warning' "$deb" | tee "$build/deb/lintian.txt" || {
    echo "deb: lintian reports errors (above)" >&2; exit 1; }
echo "  LINTIAN $(grep -c '^E:' "$build/deb/lintian.txt" || true) errors, $(grep -c '^W:' "$build/deb/lintian.txt" || true) warnings"
