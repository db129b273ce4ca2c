#!/usr/bin/env bash
# make client (issue 16): a TypeScript client generated from the running
# stack's document with a token (so the dev seed's crm resources are typed),
# compiled with tsc --strict together with a small program
# (tests/integration/client/main.ts), which then runs under Node against the
# stack: login → create a deal → list it → read it, each answer asserted. The
# program's @ts-expect-error lines make the compile fail when the generated
# types are looser than the resources' definitions; a client made without a
# token (no resource paths) must not compile with it.
. "$(dirname "$0")/lib.sh"

TOOLS=$("$ROOT/tests/tools/install.sh") || { not_ok "the npm test tools install (tests/tools)"; exit 1; }
tsc() { node "$TOOLS/node_modules/typescript/bin/tsc" "$@"; }
SEED_DIR="$ROOT/seed/dev $ROOT/seed/demo" stack_up || { not_ok "stack starts"; exit 1; }
ok "stack starts (dev seed and the crm demo)"
J='Content-Type: application/json'
req POST /v1/auth/login -H "$J" -d '{"email":"demo@example.com","password":"tessera-dev"}'
expect "demo@example.com logs in" 200
TOKEN=$(jq -r .access_token <<<"$BODY")

# make client as a user runs it, the token from the environment
if TOKEN=$TOKEN make -C "$ROOT" --no-print-directory B="$T/gen" client OPENAPI="$URL/openapi.json" >"$T/make.out" 2>&1; then
    ok "make client OPENAPI=…/openapi.json TOKEN=…: $(tail -1 "$T/make.out")"
else
    not_ok "make client OPENAPI=…/openapi.json TOKEN=…" "$(cat "$T/make.out")"
    exit 1
fi
C=$T/gen/client
check "…writes schema.d.ts, index.ts, package.json and the document" \
    test -s "$C/schema.d.ts" -a -s "$C/index.ts" -a -s "$C/package.json" -a -s "$C/openapi.json"
check "…with the token's mode's resources in the types (svc_crm_deals, its paths)" \
    sh -c "grep -q 'svc_crm_deals_Input' '$C/schema.d.ts' && grep -q '\"/v1/svc/crm/deals/{id}\"' '$C/schema.d.ts'"
check "…and openapi-fetch, its runtime, at the locked version" \
    test "$(jq -r '.dependencies["openapi-fetch"]' "$C/package.json")" = "$(jq -r '.packages["node_modules/openapi-fetch"].version' "$ROOT/tests/tools/package-lock.json")"

# the program beside a copy of the client, openapi-fetch from the tools
P=$T/prog
mkdir -p "$P"
cp "$ROOT/tests/integration/client/main.ts" "$ROOT/tests/integration/client/tsconfig.json" "$P/"
cp -R "$C" "$P/client"
ln -s "$TOOLS/node_modules" "$P/node_modules"
printf '{"type": "module", "private": true}\n' >"$P/package.json"
check "the client alone compiles: tsc --strict --noEmit" \
    tsc --strict --noEmit --target ES2022 --module NodeNext --moduleResolution NodeNext "$P/client/index.ts"
check "the program and the client compile: tsc --strict (its @ts-expect-error lines all hold)" tsc -p "$P"
if [ -f "$P/out/main.js" ]; then
    node "$P/out/main.js" "$URL" demo@example.com tessera-dev >"$T/run.out" 2>&1
    rc=$?
    cat "$T/run.out"
    check "…and runs under Node against the stack: login, create, list, read (exit 0)" test "$rc" = 0
    check "…every step reported" test "$(grep -c '^ok - client:' "$T/run.out")" = 6
else
    not_ok "the program runs under Node" "tsc emitted no out/main.js"
fi

# the same program on a client made without a token: no resource paths, no compile
if make -C "$ROOT" --no-print-directory B="$T/anon" client OPENAPI="$URL/openapi.json" >"$T/anon.out" 2>&1 &&
   rm -rf "$P/client" "$P/out" && cp -R "$T/anon/client" "$P/client"; then
    check "a client made without a token (fixed routes only) does not compile with the program" \
        sh -c "! node '$TOOLS/node_modules/typescript/bin/tsc' -p '$P' --noEmit >'$T/anon-tsc.out' 2>&1 &&
               grep -q '/v1/svc/crm/deals' '$T/anon-tsc.out'"
else
    not_ok "make client without a token" "$(cat "$T/anon.out")"
fi
make -C "$ROOT" --no-print-directory B="$T/none" client OPENAPI=http://127.0.0.1:1/openapi.json >"$T/none.out" 2>&1
rc=$?
check "make client against no server fails, saying what to do" \
    sh -c "test $rc != 0 && grep -q 'make run' '$T/none.out' && ! test -e '$T/none/client/schema.d.ts'"

check "no request of this suite was answered 500" sh -c "! grep -q '\"status\":500' '$T/fleet.log'"
stack_down
