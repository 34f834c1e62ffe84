#!/bin/bash
# Quick start, part 1: install what libhbone needs on Debian 12, build it
# (with the tuned wolfSSL, built once and cached), and run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install-deps.sh
if [ ! -f build/build.ninja ]; then
    meson setup build
fi
ninja -C build
tools/demo.sh build
