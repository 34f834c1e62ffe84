#!/bin/bash
# Install the Debian 12 packages libhbone builds and tests with. Idempotent;
# runs apt-get only for what is missing.
set -euo pipefail

packages=(
    # build
    build-essential meson ninja-build pkg-config libnghttp2-dev libwolfssl-dev check
    # the tuned wolfSSL is rebuilt from Debian's source package
    dpkg-dev autoconf automake libtool
    # tests: PKI generation, valgrind, C++ header check, fuzzers (clang),
    # interop peers (Python h2, nghttpx)
    openssl valgrind g++ clang libclang-rt-14-dev python3 python3-h2 nghttp2-proxy
)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

sudo=()
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: need root or sudo for: ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
fi
echo "install-deps: installing ${missing[*]}" >&2
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
