#!/usr/bin/env bash
# `make client`: a typed TypeScript client of a tessera deployment in OUT:
# schema.d.ts (openapi-typescript, from the deployment's document), index.ts
# (client/index.ts: createClient on openapi-fetch, the token and mode as
# headers), package.json (its one runtime dependency, openapi-fetch, at the
# version tests/tools locks) and openapi.json (the document it was made from).
#   generate.sh OUT SOURCE
# SOURCE is the document: an http(s) URL of a deployment's /openapi.json
# (make client's default: the local `make run`), or a file saved from one.
# The document comes from a running deployment because only it knows its
# services' resources, as they are now and per mode: with TOKEN (env: an
# access token or API key, never on a command line the script builds) its
# mode's resources are typed too; MODE=live asks for a JWT's live mode.
# The generators are tests/tools' npm packages (installed once, locked).
# --default-non-nullable false: a field with a default may be left out of a
# create (the server fills it), so it stays optional in the input types.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 OUT SOURCE (an http(s) URL of /openapi.json, or a file)" >&2; exit 2; }
out=$1 src=$2
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

case $src in
http://* | https://*)
    hdr=()
    if [ -n "${TOKEN:-}" ]; then
        # from a 0600 file, so the token is in no process's arguments
        (umask 077 && printf 'Authorization: Bearer %s\n' "$TOKEN" >"$tmp/auth.hdr")
        hdr+=(-H "@$tmp/auth.hdr")
    fi
    [ -n "${MODE:-}" ] && hdr+=(-H "Tessera-Mode: $MODE")
    if ! code=$(curl -sS -m 30 -o "$tmp/openapi.json" -w '%{http_code}' "${hdr[@]}" "$src" 2>"$tmp/curl.err"); then
        echo "make client: no answer from $src ($(tr -d '\n' <"$tmp/curl.err")): is \`make run\` up? Or OPENAPI=URL|FILE" >&2
        exit 1
    fi
    if [ "$code" != 200 ]; then
        echo "make client: $src answered $code: $(head -c 300 "$tmp/openapi.json")" >&2
        exit 1
    fi
    ;;
*)
    [ -f "$src" ] || { echo "make client: $src: no such file (OPENAPI=URL|FILE)" >&2; exit 1; }
    cp "$src" "$tmp/openapi.json"
    ;;
esac
if ! jq -e '(.openapi | type == "string" and startswith("3.")) and (.paths | type == "object")' \
    "$tmp/openapi.json" >/dev/null 2>&1; then
    echo "make client: $src is not an OpenAPI 3 document" >&2
    exit 1
fi

tools=$("$root/tests/tools/install.sh")
mkdir -p "$out"
node "$tools/node_modules/openapi-typescript/bin/cli.js" "$tmp/openapi.json" -o "$tmp/schema.d.ts" \
    --default-non-nullable false >"$tmp/gen.log" 2>&1 || { cat "$tmp/gen.log" >&2; exit 1; }
fetch_version=$(jq -r '.packages["node_modules/openapi-fetch"].version' "$root/tests/tools/package-lock.json")
jq -n --arg v "$fetch_version" --arg src "$src" '{
    name: "tessera-client", private: true, type: "module",
    description: ("A typed client of the tessera deployment whose document is " + $src + " (make client)"),
    types: "./index.ts", main: "./index.ts",
    dependencies: {"openapi-fetch": $v}
}' >"$tmp/package.json"
install -m 0644 "$tmp/schema.d.ts" "$tmp/package.json" "$tmp/openapi.json" "$out/"
install -m 0644 "$root/client/index.ts" "$out/index.ts"
echo "make client: $out/ (schema.d.ts: $(jq '[.paths[][]] | length' "$tmp/openapi.json") operations$(jq -r '.info["x-tessera-mode"] // empty | " with the resources of mode " + .' "$tmp/openapi.json"))" >&2
