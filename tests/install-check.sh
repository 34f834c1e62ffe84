#!/bin/bash
# Install libhbone into a staging directory and check what a user gets:
# pkg-config works, an outside program compiles and links against the
# installed headers and library, and the library exports only hbone_*.
#   usage: install-check.sh BUILD_DIR
set -euo pipefail
build=$(realpath "$1")
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

prefix=$(meson introspect "$build" --buildoptions |
    python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "prefix"))')
libdir=$(meson introspect "$build" --buildoptions |
    python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "libdir"))')
meson install -C "$build" --destdir "$stage" --quiet
root="$stage$prefix"
export PKG_CONFIG_PATH="$root/$libdir/pkgconfig"
export PKG_CONFIG_SYSROOT_DIR="$stage"

cflags=$(pkg-config --cflags libhbone)
libs=$(pkg-config --libs libhbone)
echo "pkg-config --cflags --libs libhbone: $cflags $libs"

cat >"$stage/outside.c" <<'PROGRAM'
#include <stdio.h>
#include <string.h>

#include <hbone/hbone.h>

int main(void)
{
    hbone_spiffe_id *id = NULL;
    const char *s = "spiffe://cluster.local/ns/default/sa/outside";
    if (hbone_spiffe_id_parse(&id, s, strlen(s), NULL) != 0)
        return 1;
    hbone_config *cfg = NULL;
    int r = hbone_config_new(&cfg, NULL);
    printf("libhbone %s, %s, id %s, config %s\n", hbone_version_string(), hbone_tls_library(),
           hbone_spiffe_id_str(id, NULL), hbone_strerror(r));
    hbone_config_del(cfg);
    hbone_spiffe_id_del(id);
    return r == 0 && strcmp(hbone_version_string(), HBONE_VERSION) == 0 ? 0 : 1;
}
PROGRAM
# shellcheck disable=SC2086 # pkg-config output is a word list
cc -std=c11 -Wall -Wextra -Werror -o "$stage/outside" "$stage/outside.c" $cflags $libs
LD_LIBRARY_PATH="$root/$libdir" "$stage/outside"

lib=$(find "$root/$libdir" -name 'libhbone.so.*.*' | head -n1)
others=$(nm -D --defined-only "$lib" | awk '$2 == "T" || $2 == "D" || $2 == "B" {print $3}' | grep -v '^hbone_' || true)
if [ -n "$others" ]; then
    echo "libhbone exports symbols other than hbone_*:"; echo "$others"; exit 1
fi
echo "nm -D: $(nm -D --defined-only "$lib" | awk '$2 == "T"' | wc -l) exported functions, all hbone_*"
echo "install check passed"
