#!/usr/bin/env bash
# `make rpm`: build/tessera-VERSION-1.x86_64.rpm from packaging/rpm/tessera.spec
# with the same static binary as the .deb, then rpmlint (errors fail the build).
#   build.sh BUILD_DIR VERSION
set -euo pipefail
build=$1 version=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
case $build in /*) ;; *) build=$root/$build ;; esac
top=$build/rpm
rpm=$build/tessera-$version-1.x86_64.rpm

for tool in rpmbuild:rpm rpmlint:rpmlint; do
    if ! command -v "${tool%%:*}" >/dev/null 2>&1; then
        echo "rpm: installing ${tool#*:}" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${tool#*:}" >/dev/null
    fi
done

rm -rf "$top"
mkdir -p "$top"/{BUILD,BUILDROOT,RPMS,SOURCES,SPECS,SRPMS}
packaging/deb/stage.sh rpm "$top/stage" "$build"
# Debian's rpm knows no shadow-utils: the dependency is for the target system
rpmbuild -bb --quiet --nodeps \
    --define "_topdir $top" --define "stagedir $top/stage" --define "version $version" \
    --define "rev $(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    --define "changelog_date $(LC_ALL=C date -u -d "@$(git log -1 --format=%ct 2>/dev/null || date +%s)" '+%a %b %d %Y')" \
    --define "_binary_payload w9.xzdio" \
    packaging/rpm/tessera.spec >"$top/rpmbuild.log" 2>&1 || { cat "$top/rpmbuild.log" >&2; exit 1; }
cp "$top/RPMS/x86_64/tessera-$version-1.x86_64.rpm" "$rpm"
echo "  RPM     $rpm ($(stat -c %s "$rpm") bytes)"

rpmlint -r packaging/rpm/rpmlintrc "$rpm" | tee "$top/rpmlint.txt" || {
    echo "rpm: rpmlint reports errors (above)" >&2; exit 1; }
