/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: a real wolfSSL TLS 1.3 server handshake through libhbone's
 * hb_tls layer (lib/tls/session.c). The input is what a client sends: its
 * flights, cut into chunks as the first byte says (tls_fixture.c), so that
 * records and handshake messages arrive split at any offset. The server
 * holds the server leaf of fuzz/data and trusts its CA.
 *
 * Invariants, besides "no crash, no leak" (libhbone's own allocations are
 * counted: each input must free what its session allocated; wolfSSL
 * allocates from the process-wide allocator, which LeakSanitizer watches in
 * the libFuzzer build):
 *  - hb_tls_handshake never reports more consumed than it was lent;
 *  - what the server sends is a well-formed sequence of TLS records (known
 *    type, legacy version 3.x, length within the TLS 1.3 limit) ending on a
 *    record boundary, and stays under a fixed bound however the input is cut;
 *  - a failure is a fatal, named error code with a non-empty detail, and
 *    the session stays failed: handshake, read, write and close_notify all
 *    return the same code, consume nothing and send nothing more;
 *  - the handshake completes only with a verified client identity that is
 *    one of the fuzz/data leaves.
 *
 * What it can reach: each session draws fresh ephemeral keys, so the
 * encrypted part of a recorded client flight never decrypts in a later run.
 * The fuzzer explores the record layer, ClientHello parsing and its
 * extensions, HelloRetryRequest and a second ClientHello, alerts, and the
 * failure to decrypt the client's first encrypted record. The client's
 * certificate parsing is fuzzed directly by fuzz_svid and fuzz_pem.
 *
 * FUZZ_RECORD=DIR fuzz_handshake_server ...: record a real client's flights
 * as seeds into DIR and exit (see docs/fuzzing.md).
 */
#include <hbone/config.h>

#include "fuzz_common.h"
#include "tls/tls.h"
#include "tls_fixture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fx_record_if_asked(HB_TLS_SERVER);
    /* Built on the first input, before counting starts: it lives on. */
    hbone_config *cfg = fx_config("server");
    fx_mem_begin();
    hb_tls *tls = NULL;
    FUZZ_CHECK(hb_tls_new(&tls, cfg, HB_TLS_SERVER) == 0);
    fx_drive(tls, HB_TLS_SERVER, data, size);
    hb_tls_del(tls);
    fx_mem_end();
    return 0;
}
