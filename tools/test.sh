#!/bin/bash
# Quick start, part 2: the whole test suite.
#   1. the plain build: unit, integration, header, ABI and fuzz-corpus tests
#   2. the same tests under valgrind
#   3. an ASan+UBSan build and its tests
#   4. install into a staging prefix and build an outside program with pkg-config
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install-deps.sh

step() { printf '\n=== %s\n' "$*"; }

step "plain build"
[ -f build/build.ninja ] || meson setup build
ninja -C build
meson test -C build --print-errorlogs

step "valgrind"
meson test -C build --setup=valgrind --print-errorlogs --no-suite abi

step "ASan + UBSan build"
[ -f build-asan/build.ninja ] || meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false
ninja -C build-asan
meson test -C build-asan --setup=asan --print-errorlogs

step "install and link from outside the tree"
tests/install-check.sh build

echo
echo "all test steps passed"
