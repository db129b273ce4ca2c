#!/usr/bin/env bash
# Runs each libFuzzer harness of tests/fuzz for SECONDS on one core (-jobs=1
# -workers=1: the machine is shared), from its seed corpus
# tests/fuzz/corpus/<name>/ and its working corpus BUILD/fuzz/corpus/<name>/
# (kept between runs, never committed), with tests/fuzz/<name>.dict when there
# is one. A crash, leak, timeout or out-of-memory input is written straight to
# tests/fuzz/regressions/<name>/, where the replay test (test_fuzz_<name>, run
# by `make test`) finds it: commit it with the fix.
# TAP: one `ok`/`not ok` line per harness, then `N passed, N failed`.
# Usage: tests/fuzz/run.sh BUILD SECONDS [name ...]   (names: jwt, http, …)
set -uo pipefail
build=${1:?usage: run.sh BUILD SECONDS [name ...]}
secs=${2:?usage: run.sh BUILD SECONDS [name ...]}
shift 2
cd "$(dirname "$0")/../.."
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
    for f in tests/fuzz/fuzz_*.c; do n=${f#tests/fuzz/fuzz_}; names+=("${n%.c}"); done
fi

pass=0 fail=0
for n in "${names[@]}"; do
    bin=$build/fuzz/fuzz_$n
    work=$build/fuzz/corpus/$n
    keep=tests/fuzz/regressions/$n
    log=$build/fuzz/fuzz_$n.log
    if [ ! -x "$bin" ]; then
        echo "not ok - fuzz_$n: $bin is not built (make fuzz-build)"; fail=$((fail + 1)); continue
    fi
    mkdir -p "$work" "$keep"
    dict=()
    [ -f "tests/fuzz/$n.dict" ] && dict=(-dict="tests/fuzz/$n.dict")
    before=$(find "$keep" -type f ! -name '.*' | wc -l)
    echo "== fuzz_$n ($secs s)"
    # -jobs runs the fuzzer in a child that writes fuzz-0.log in the current
    # folder: run it from the log's folder and show its tail.
    rm -f "$build/fuzz/fuzz-0.log"
    (cd "$build/fuzz" && ASAN_OPTIONS=detect_leaks=1 "$(pwd)/fuzz_$n" -jobs=1 -workers=1 \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$OLDPWD/$keep/" "${dict[@]/#-dict=/-dict=$OLDPWD/}" \
        "$OLDPWD/$work" "$OLDPWD/tests/fuzz/corpus/$n") >"$log" 2>&1
    rc=$?
    [ -f "$build/fuzz/fuzz-0.log" ] && cat "$build/fuzz/fuzz-0.log" >>"$log"
    after=$(find "$keep" -type f ! -name '.*' | wc -l)
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1)
    if [ "$rc" -eq 0 ] && [ "$after" -eq "$before" ]; then
        echo "ok - fuzz_$n ran $secs s: ${runs:-?} inputs, ${cov:-cov: ?}, no crash"
        pass=$((pass + 1))
    elif [ "$after" -eq "$before" ]; then
        echo "not ok - fuzz_$n stopped with status $rc and kept no input: see $log"
        grep -vE '^#[0-9]|^INFO|^\s*$' "$log" | tail -6 | sed 's/^/#   /'
        fail=$((fail + 1))
    else
        echo "not ok - fuzz_$n found a crash (exit $rc): kept in $keep/, log $log"
        grep -E '^(==[0-9]+==ERROR|SUMMARY|artifact_prefix|Test unit written)|runtime error' "$log" | head -8 | sed 's/^/#   /'
        fail=$((fail + 1))
    fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
