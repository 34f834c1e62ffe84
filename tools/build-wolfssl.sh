#!/bin/bash
# Build the tuned wolfSSL that libhbone links by default on x86_64.
#
# Debian's libwolfssl is compiled without assembly: AES-GCM runs ~25x slower
# than the CPU allows (docs/performance.md). This script rebuilds the same
# Debian source package (so Debian's security patches apply) with the AES-NI,
# AVX and SP assembly paths and only the features libhbone uses, as a static
# library, and caches the result keyed by the source version and this script.
#
# usage: build-wolfssl.sh [--print-prefix] [CACHE_DIR]
#   CACHE_DIR defaults to ${XDG_CACHE_HOME:-~/.cache}/libhbone.
#   Prints the install prefix (CACHE_DIR/wolfssl-<version>-<hash>) on stdout.
#   With --print-prefix it only computes the prefix and builds nothing; the
#   exit status is 0 when that build is already cached and 1 otherwise.
set -euo pipefail

print_only=0
if [ "${1:-}" = "--print-prefix" ]; then
    print_only=1
    shift
fi
cache_dir=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/libhbone}

log() { echo "build-wolfssl: $*" >&2; }
die() { log "error: $*"; exit 1; }

# The features libhbone needs, and nothing else (TLS 1.3 only, no session
# cache, no tickets, no SNI, no OpenSSL compatibility layer). Kept in sync with
# the configure-time checks in meson.build.
configure_flags=(
    --enable-static --disable-shared
    --disable-tlsv12 --disable-oldtls --enable-tls13 --enable-alpn
    --enable-aesni --enable-intelasm --enable-sp --enable-sp-asm
    --enable-ecc --enable-curve25519 --enable-supportedcurves --enable-aesgcm
    --enable-sha384 --enable-sha512 --enable-rsapss --disable-dh --disable-des3
    --disable-sha3 --disable-sha224 --disable-md5 --disable-pkcs12
    --disable-base64encode --disable-filesystem
    --disable-examples --disable-crypttests --disable-benchmark
)
# WOLFSSL_ALWAYS_VERIFY_CB: the verify callback also runs for a chain that
# verified, which is where libhbone reads the peer's leaf certificate.
# WOLFSSL_GETRANDOM: seed each session's RNG with getrandom(2) instead of
# opening /dev/urandom, so that a server out of descriptors can still set up
# TLS for the connection it accepted (and one syscall pair less per session).
# -fPIC: the static archive is linked into libhbone.so.
cflags="-O2 -fPIC -fstack-protector-strong -D_FORTIFY_SOURCE=2 -fcf-protection"
cflags+=" -DWOLFSSL_ALWAYS_VERIFY_CB -DWOLFSSL_GETRANDOM"

version=$(dpkg-query -W -f='${Version}' libwolfssl-dev 2>/dev/null || true)
[ -n "$version" ] || version=$(apt-cache policy wolfssl 2>/dev/null | awk '/Candidate:/ {print $2}')
if [ -z "$version" ] || [ "$version" = "(none)" ]; then
    die "cannot tell which wolfssl source version to build (is apt set up?)"
fi

script_hash=$(sha256sum "$0" | cut -c1-12)
prefix="$cache_dir/wolfssl-${version//[^A-Za-z0-9.+-]/_}-$script_hash"
echo "$prefix"
if [ -f "$prefix/.complete" ]; then
    exit 0
fi
[ "$print_only" = 0 ] || exit 1

# apt-get source needs a deb-src entry; derive it from the existing Debian
# sources once (root only: elsewhere ask for it).
ensure_deb_src() {
    if apt-get source --print-uris "wolfssl=$version" >/dev/null 2>&1; then
        return 0
    fi
    [ "$(id -u)" = 0 ] || die "no deb-src entry for wolfssl; add one (see README) or run as root"
    local src=/etc/apt/sources.list.d/debian.sources
    [ -f "$src" ] || die "no $src to derive a deb-src entry from"
    log "adding deb-src entries derived from $src"
    sed -e 's/^Types: deb$/Types: deb-src/' "$src" >/etc/apt/sources.list.d/libhbone-deb-src.sources
    apt-get update -qq
}

ensure_deb_src
mkdir -p "$cache_dir"
work=$(mktemp -d "$cache_dir/.wolfssl-build.XXXXXX")
trap 'rm -rf "$work"' EXIT

log "fetching Debian source wolfssl=$version"
(cd "$work" && apt-get source -qq "wolfssl=$version" >/dev/null 2>&1) \
    || die "apt-get source wolfssl=$version failed"
srcdir=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'wolfssl-*' | head -n1)
[ -n "$srcdir" ] || die "no source tree after apt-get source"
[ -d "$srcdir/.pc" ] || [ ! -d "$srcdir/debian/patches" ] \
    || die "Debian patches were not applied (is dpkg-dev installed?)"

log "configuring and building (this takes about a minute)"
(
    cd "$srcdir"
    autoreconf -fi >/dev/null 2>&1
    ./configure --prefix="$prefix" CFLAGS="$cflags" "${configure_flags[@]}" >"$work/configure.log" 2>&1 \
        || { tail -n 30 "$work/configure.log" >&2; exit 1; }
    make -j"$(nproc)" >"$work/make.log" 2>&1 || { tail -n 30 "$work/make.log" >&2; exit 1; }
    rm -rf "$prefix"
    make install >/dev/null
) || die "wolfSSL build failed"
for define in WOLFSSL_ALWAYS_VERIFY_CB WOLFSSL_GETRANDOM; do
    grep -q "$define" "$prefix/include/wolfssl/options.h" \
        || die "installed options.h lacks $define"
done
printf 'wolfssl %s built by %s\n' "$version" "$(basename "$0")" >"$prefix/.complete"
log "installed into $prefix"
