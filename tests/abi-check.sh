#!/bin/bash
# The exported symbols of libhbone.so must be exactly the functions declared
# with HBONE_API in the public headers: nothing internal leaks out, nothing
# declared is missing.
set -euo pipefail
lib=$1
shift # then: directories of public headers (source, and build for version.h)
exported=$(nm -D --defined-only "$lib" | awk '$2 == "T" {print $3}' | sed 's/@.*//' | sort -u)
declared=$(for dir in "$@"; do cat "$dir"/*.h; done | grep -v '^#' | tr '\n' ' ' |
    grep -o 'HBONE_API[^;(]*(' |
    sed 's/($//; s/.*[ *]//' | grep . | sort -u)
if [ "$exported" != "$declared" ]; then
    echo "exported (<) and declared (>) symbols differ:"
    diff <(echo "$exported") <(echo "$declared") || true
    exit 1
fi
if grep -v '^hbone_' <<<"$exported"; then
    echo "symbols above are exported without the hbone_ prefix"
    exit 1
fi
echo "ok: $(wc -l <<<"$exported") exported symbols, all hbone_* and declared"
