#!/usr/bin/env bash
# Vendors GET /docs's viewer at build time: npm ci of web/docs/package-lock.json
# (versions and integrity locked) into ~/.cache/tessera-web/<hash of the lock>,
# once per lock, then the page (index.html, docs.js, docs.css) and Redoc's
# standalone bundle with its licences into OUT. Nothing else of node_modules
# is shipped, and the page never loads anything from a CDN at run time.
#   vendor.sh OUT        (make docs: OUT = build/web/docs)
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 OUT" >&2; exit 2; }
out=$1
here=$(cd "$(dirname "$0")" && pwd)
hash=$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -c1-16)
dir=${XDG_CACHE_HOME:-$HOME/.cache}/tessera-web/$hash
bundle=node_modules/redoc/bundles/redoc.standalone.js
if [ ! -f "$dir/$bundle" ]; then
    command -v npm >/dev/null 2>&1 || { echo "vendor.sh: npm is missing (packaging/deps.sh installs nodejs, which brings it)" >&2; exit 1; }
    # Built aside and moved in whole: another checkout's build may fill the same cache at once.
    mkdir -p "$(dirname "$dir")"
    tmp=$(mktemp -d "$dir.XXXXXX")
    cp "$here/package.json" "$here/package-lock.json" "$tmp/"
    # the bundle carries its dependencies: the peers (react, …) are not needed
    if ! (cd "$tmp" && npm ci --omit=peer --ignore-scripts --no-audit --no-fund --loglevel=error >&2); then
        rm -rf "$tmp"
        echo "vendor.sh: npm ci of web/docs/package-lock.json failed (the npm registry unreachable?)" >&2
        exit 1
    fi
    mv -T "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp"
fi
install -d -m 0755 "$out"
install -m 0644 "$dir/$bundle" "$dir/$bundle.LICENSE.txt" "$out/"
install -m 0644 "$dir/node_modules/redoc/LICENSE" "$out/redoc.LICENSE.txt"
# the page last: make's target, newer than everything it loads
install -m 0644 "$here/docs.js" "$here/docs.css" "$here/index.html" "$out/"
