#!/bin/bash
# Quick start, part 2: the whole test suite.
#   1. the plain build: unit, integration, header, ABI and fuzz-corpus tests
#   2. the same tests under valgrind
#   3. an ASan+UBSan build and its tests
#   4. the libFuzzer build (clang): corpora replayed, then each fuzzer runs briefly
#   5. install into a staging prefix and build an outside program with pkg-config
#   6. hbone-bench --quick: a smoke run (it must finish and write JSON; timings
#      are not asserted)
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install-deps.sh

step() { printf '\n=== %s\n' "$*"; }

# meson test, with its verdict counts added to the totals printed at the end.
passed=0
failed=0
run_tests() {
    local out status=0
    out=$(mktemp)
    meson test "$@" --print-errorlogs 2>&1 | tee "$out" || status=$?
    passed=$((passed + $(awk '/^Ok:/ {print $2}' "$out")))
    failed=$((failed + $(awk '/^Fail:/ {print $2}' "$out")))
    rm -f "$out"
    return "$status"
}

step "plain build"
[ -f build/build.ninja ] || meson setup build
ninja -C build
run_tests -C build

step "valgrind"
# The soak is left out: it keeps hundreds of tunnels busy and checks RSS,
# neither of which means much at valgrind's speed (its ASan run stays).
run_tests -C build --setup=valgrind --no-suite abi --no-suite examples --no-suite interop \
    --no-suite soak

step "ASan + UBSan build"
[ -f build-asan/build.ninja ] || meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false
ninja -C build-asan
run_tests -C build-asan --setup=asan

step "libFuzzer build (clang, ASan+UBSan), ${FUZZ_SECONDS:=20} s per target"
[ -f build-fuzz/build.ninja ] ||
    CC=clang meson setup build-fuzz -Dfuzzing=libfuzzer -Db_sanitize=address,undefined \
        -Db_lundef=false -Dtests=false -Dexamples=false -Dbench=false
ninja -C build-fuzz
run_tests -C build-fuzz --suite fuzz
# Every target in fuzz/ (found from the sources), each with its corpus; it
# prints executions and coverage per target, and the log tail and artifact
# directory (build-fuzz/fuzz-artifacts) of any finding.
fuzz/run-all.sh "$FUZZ_SECONDS" build-fuzz

step "install and link from outside the tree"
tests/install-check.sh build

step "benchmark smoke run (hbone-bench --quick)"
build/bench/hbone-bench --quick --json build/hbone-bench.json
python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); assert r["cases"], "no cases"' \
    build/hbone-bench.json

echo
echo "all test steps passed"
echo "$passed passed, $failed failed"
