#!/usr/bin/env bash
# The npm tools the tests run (tests/tools/package.json, locked), installed
# once per lock file under ~/.cache/tessera-tools/<hash>; prints that folder.
# Never shipped: the packages hold none of it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
hash=$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -c1-16)
dir=${XDG_CACHE_HOME:-$HOME/.cache}/tessera-tools/$hash
if [ ! -d "$dir/node_modules" ]; then
    mkdir -p "$dir"
    cp "$here/package.json" "$here/package-lock.json" "$dir/"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2) || { rm -rf "$dir"; exit 1; }
fi
printf '%s\n' "$dir"
