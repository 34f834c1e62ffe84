#!/bin/bash
# The plaintext TLS pass-through (hb_tls_new_plaintext, hb_conn_new_plaintext)
# exists only in builds with -DHB_TESTING: the internal library tests and
# fuzzers link. It must not be anywhere in the installed libhbone.so, not even
# as a hidden symbol, since a connection without TLS is not something a
# deployment can be allowed to reach.
#
#   plaintext-gate.sh LIBHBONE_SO LIBHBONE_INTERNAL_A
#
# The internal archive is the control: the same checks must find the
# plaintext code there, which proves they would find it in the .so too.
set -euo pipefail
so=$1
internal=$2
# A string only the plaintext code uses (hb_tls_cipher in lib/tls/session.c);
# found even in a stripped library.
marker='plaintext, test builds only'
symbols='hb_tls_new_plaintext|hb_conn_new_plaintext'

# Symbol tables are read whole first: grep -q stopping early would make nm
# die of SIGPIPE, which pipefail reports as a failure.
internal_syms=$(nm "$internal" 2>/dev/null || true)
# Meson makes thin archives (members stay separate files; GNU ar names
# them as seen from the current directory), so the marker is looked for in
# the members.
internal_files=("$internal")
if [ "$(head -c 8 "$internal")" = '!<thin>' ]; then
    while IFS= read -r member; do
        [ -e "$member" ] || member="$(dirname "$internal")/$member"
        internal_files+=("$member")
    done < <(ar t "$internal")
fi
if ! grep -qaF "$marker" "${internal_files[@]}" ||
    ! grep -qE " ($symbols)\$" <<<"$internal_syms"; then
    echo "control failed: $internal lacks the plaintext code, so this check proves nothing"
    exit 1
fi
if grep -qaF "$marker" "$so"; then
    echo "$so contains the plaintext pass-through's string \"$marker\""
    exit 1
fi
# The full symbol table (not only the dynamic one, where hidden symbols
# never appear), when the library was not stripped.
so_syms=$(nm "$so" 2>/dev/null || true)
if [ -n "$so_syms" ]; then
    if ! grep -qE ' hb_tls_new$' <<<"$so_syms"; then
        echo "note: $so has no internal symbols (stripped?); checked its strings only"
    elif grep -E " ($symbols)\$" <<<"$so_syms"; then
        echo "$so links the plaintext code (symbols above)"
        exit 1
    fi
fi
echo "ok: no plaintext pass-through in $so"
