#!/usr/bin/env bash
# The whole of `make test`: unit tests (ASan+UBSan builds), integration
# suites (real nginx + fleet), then the fault suites (the same stacks broken
# under load), then one closing line `N passed, N failed, N skipped` (a
# skipped case is an `ok - … # SKIP why` line: counted as skipped, not passed).
# Usage: tests/run.sh BUILD_DIR [suite ...]
#   (suites: tests/integration/NN_name.sh, tests/fault/NN_name.sh)
set -uo pipefail
build=${1:-build}; shift || true
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
pass=0 fail=0 skip=0
failed_names=()
export TESSERA_TEST_RUN=run$$

count() { # name output-file exit-code
    local p f s
    p=$(grep -cE '^ok ' "$2" || true)
    s=$(grep -cE '^ok .*# SKIP' "$2" || true)
    p=$((p - s))
    f=$(grep -cE '^not ok ' "$2" || true)
    if [ "$3" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1 # crashed or a sanitizer stopped it: count it, never hide it
        echo "not ok - $1 exited with status $3" | tee -a "$2"
    fi
    pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
    [ "$f" -gt 0 ] && failed_names+=("$1")
    return 0
}

if [ $# -eq 0 ]; then
    echo "== unit tests (ASan + UBSan)"
    for t in "$build"/asan/tests/test_*; do
        [ -x "$t" ] || continue
        out=$(mktemp)
        # TAP output: one `ok`/`not ok` line per case
        CMOCKA_MESSAGE_OUTPUT=TAP ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
            UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 "$t" >"$out" 2>&1
        rc=$?
        count "$(basename "$t")" "$out" "$rc"
        grep -E '^(not ok|ok)' "$out" | sed 's/^/  /' | grep -E '^  not ok' || true
        grep -qE 'ERROR: (Address|Undefined|Leak)Sanitizer|runtime error' "$out" && {
            echo "  sanitizer report in $(basename "$t"):"; sed 's/^/    /' "$out" | head -40; }
        printf '  %-28s %s\n' "$(basename "$t")" "$(grep -cE '^ok ' "$out" || true) ok"
        rm -f "$out"
    done
    suites=(tests/integration/[0-9]*.sh tests/fault/[0-9]*.sh)
else
    suites=("$@")
fi

# A suite that names "# engines: memory postgres" runs once per engine.
for s in "${suites[@]}"; do
    engines=$(sed -n 's/^# engines: //p' "$s" | head -1)
    for eng in ${engines:-memory}; do
        name=$s
        [ -n "$engines" ] && name="$s [$eng]"
        echo "== $name"
        out=$(mktemp)
        ENGINE=$eng BUILD=$build bash "$s" 2>&1 | tee "$out"
        rc=${PIPESTATUS[0]}
        count "$name" "$out" "$rc"
        rm -f "$out"
    done
done

# Every process a suite starts is stopped by it: nginx, PostgreSQL and
# PgBouncer name the suite's folder on their command line.
sleep 0.5
left=$(pgrep -fa "/tmp/tessera-test\.$TESSERA_TEST_RUN\." || true)
if [ -n "$left" ]; then
    echo "not ok - no process of the suites is left running"; printf '%s\n' "$left" | sed 's/^/#   /'
    fail=$((fail + 1)); failed_names+=("leftover processes")
else
    echo "ok - no process of the suites is left running"; pass=$((pass + 1))
fi

if [ ${#failed_names[@]} -gt 0 ]; then
    echo "failed in: ${failed_names[*]}"
fi
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
