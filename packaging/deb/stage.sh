#!/usr/bin/env bash
# Lays out the installed tree of the tessera package in DEST, the same for the
# .deb and the .rpm, apart from where each distribution keeps things:
#   stage.sh deb|rpm DEST BUILD_DIR
# Ships seed/demo only, never seed/dev: no development credentials in a package.
set -euo pipefail
flavour=$1 dest=$2 build=$3
root=$(cd "$(dirname "$0")/../.." && pwd)
# absolute: the console is copied from inside its own folder (cd web/console),
# where a relative DEST (make deb's build/deb/root) would land in the folder
# being copied, which find then walks without end
case $dest in /*) ;; *) dest=$PWD/$dest ;; esac
bin=$build/static/tessera
case $bin in /*) ;; *) bin=$root/$bin ;; esac
[ -x "$bin" ] || { echo "stage.sh: $bin is missing (make static)" >&2; exit 1; }

rm -rf "$dest"
install -d -m 0755 "$dest/usr/bin" "$dest/etc/tessera" "$dest/etc/nginx/snippets" \
    "$dest/usr/share/tessera" "$dest/usr/share/doc/tessera"
# The one static binary; debug info stays in the build tree.
install -m 0755 "$bin" "$dest/usr/bin/tessera"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$dest/usr/bin/tessera"

install -m 0644 "$root/packaging/tessera.conf" "$dest/etc/tessera/tessera.conf"
# The migration owner's DSN: root only (0600; the packages own it as root:root).
install -m 0600 "$root/packaging/migrate.conf" "$dest/etc/tessera/migrate.conf"
install -m 0644 "$root/nginx/tessera-params.conf" "$root/nginx/tessera-errors.conf" "$root/nginx/tessera-console.conf" \
    "$dest/etc/nginx/snippets/"
# The web console, as the checkout holds it (no build step): the site serves it at /console/.
(cd "$root/web/console" && find . -type d -exec install -d -m 0755 "$dest/usr/share/tessera/console/{}" \; &&
    find . -type f -exec install -m 0644 {} "$dest/usr/share/tessera/console/{}" \;)
# GET /docs: the page and its vendored viewer (make docs), served by nginx
docs=$build/web/docs
case $docs in /*) ;; *) docs=$root/$docs ;; esac
[ -f "$docs/index.html" ] && [ -f "$docs/redoc.standalone.js" ] ||
    { echo "stage.sh: $docs is missing (make docs)" >&2; exit 1; }
install -m 0644 "$root/nginx/tessera-docs.conf" "$dest/etc/nginx/snippets/"
install -d -m 0755 "$dest/usr/share/tessera/docs"
install -m 0644 "$docs"/* "$dest/usr/share/tessera/docs/"
if compgen -G "$root/sql/*.sql" >/dev/null; then
    install -d -m 0755 "$dest/usr/share/tessera/sql"
    install -m 0644 "$root"/sql/*.sql "$dest/usr/share/tessera/sql/"
fi
# seed/demo ships only while it holds no password: a seeded account with a
# published password (the dev one, `tessera-dev`) is a known login on every
# deployment that loads it.
demo_has_credentials() {
    grep -rqs 'tessera-dev' "$root/seed/demo" && return 0
    [ -f "$root/seed/demo/users.csv" ] || return 1
    awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "password") col = i; next }
             col && $col != "" { found = 1 } END { exit !found }' "$root/seed/demo/users.csv"
}
if [ -d "$root/seed/demo" ]; then
    if demo_has_credentials; then
        echo "stage.sh: warning: seed/demo holds passwords (users.csv): not shipped" >&2
    else
        install -d -m 0755 "$dest/usr/share/tessera/seed/demo"
        find "$root/seed/demo" -maxdepth 1 -type f -exec install -m 0644 {} "$dest/usr/share/tessera/seed/demo/" \;
    fi
fi
install -m 0644 "$root/README.md" "$dest/usr/share/doc/tessera/README.md"
install -m 0644 "$root/packaging/deb/copyright" "$dest/usr/share/doc/tessera/copyright"
install -d -m 0755 "$dest/usr/share/man/man1"
gzip -9n <"$root/packaging/deb/tessera.1" >"$dest/usr/share/man/man1/tessera.1.gz"
chmod 0644 "$dest/usr/share/man/man1/tessera.1.gz"

case $flavour in
deb)
    install -d -m 0755 "$dest/etc/nginx/sites-available" "$dest/lib/systemd/system"
    install -m 0644 "$root/nginx/tessera.conf" "$dest/etc/nginx/sites-available/tessera"
    install -m 0644 "$root/packaging/tessera.service" "$dest/lib/systemd/system/tessera.service"
    ;;
rpm)
    # RPM distributions: nginx runs as group nginx and reads conf.d/*.conf
    install -d -m 0755 "$dest/etc/nginx/conf.d" "$dest/usr/lib/systemd/system"
    install -m 0644 "$root/nginx/tessera.conf" "$dest/etc/nginx/conf.d/tessera.conf"
    sed 's/^SupplementaryGroups=www-data$/SupplementaryGroups=nginx/' "$root/packaging/tessera.service" \
        >"$dest/usr/lib/systemd/system/tessera.service"
    sed -i 's/^listen_owner = tessera:www-data$/listen_owner = tessera:nginx/' "$dest/etc/tessera/tessera.conf"
    sed -i 's|/etc/nginx/sites-available/tessera|/etc/nginx/conf.d/tessera.conf|' "$dest/etc/tessera/tessera.conf"
    chmod 0644 "$dest/usr/lib/systemd/system/tessera.service"
    ;;
*) echo "stage.sh: deb or rpm, not $flavour" >&2; exit 2 ;;
esac
