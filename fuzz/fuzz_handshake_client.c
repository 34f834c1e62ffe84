/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: a real wolfSSL TLS 1.3 client handshake through libhbone's
 * hb_tls layer (lib/tls/session.c). The client, holding the client leaf of
 * fuzz/data and expecting spiffe://cluster.local/ns/default/sa/server, first
 * produces its ClientHello; the input is then what the server sends, cut
 * into chunks as the first byte says (tls_fixture.c).
 *
 * Invariants, besides "no crash, no leak" (libhbone's own allocations are
 * counted: each input must free what its session allocated; wolfSSL
 * allocates from the process-wide allocator, which LeakSanitizer watches in
 * the libFuzzer build):
 *  - before any input the client has sent exactly one TLS record holding a
 *    ClientHello (content type 22, handshake type 1);
 *  - hb_tls_handshake never reports more consumed than it was lent;
 *  - what the client sends is a well-formed sequence of TLS records ending
 *    on a record boundary, and stays under a fixed bound;
 *  - a failure is a fatal, named error code with a non-empty detail, and
 *    the session stays failed: handshake, read, write and close_notify all
 *    return the same code, consume nothing and send nothing more;
 *  - the handshake completes only with the expected server identity.
 *
 * What it can reach: the client draws fresh ephemeral keys in every run,
 * so a recorded server flight fails at its first encrypted record. The
 * fuzzer explores the record layer, ServerHello and HelloRetryRequest
 * parsing (and the second ClientHello an HRR causes), alerts, version and
 * downgrade checks, and that decryption failure.
 *
 * FUZZ_RECORD=DIR fuzz_handshake_client ...: record a real server's flight
 * as seeds into DIR and exit (see docs/fuzzing.md).
 */
#include <string.h>

#include <hbone/config.h>
#include <hbone/error.h>
#include <hbone/identity.h>

#include "fuzz_common.h"
#include "tls/tls.h"
#include "tls_fixture.h"

/* The client's first flight, checked against RFC 8446 4 and 5.1 without
 * wolfSSL's help: one handshake record whose first message is ClientHello
 * and which fills the record exactly. */
static void check_client_hello(hb_tls *tls)
{
    size_t len = 0;
    const uint8_t *out = hb_tls_output(tls, &len);
    FUZZ_CHECK(out != NULL && len >= 9);
    size_t record_len = (size_t)out[3] << 8 | out[4];
    size_t msg_len = (size_t)out[6] << 16 | (size_t)out[7] << 8 | out[8];
    FUZZ_CHECK(out[0] == 22 && out[1] == 3 && (out[2] == 1 || out[2] == 3));
    FUZZ_CHECK(len == 5 + record_len && out[5] == 1 && msg_len + 4 == record_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fx_record_if_asked(HB_TLS_CLIENT);
    /* Built on the first input, before counting starts: it lives on. */
    hbone_config *cfg = fx_config("client");
    fuzz_mem_begin();
    fx_mem_begin();
    hb_tls *tls = NULL;
    FUZZ_CHECK(hb_tls_new(&tls, cfg, HB_TLS_CLIENT) == 0);
    hbone_spiffe_id *server = NULL;
    FUZZ_CHECK(hbone_spiffe_id_parse(&server, FX_SERVER_ID, strlen(FX_SERVER_ID), fuzz_mem()) == 0);
    FUZZ_CHECK(hb_tls_expect_peer(tls, server) == 0);
    hbone_spiffe_id_del(server);

    size_t consumed = 1;
    FUZZ_CHECK(hb_tls_handshake(tls, NULL, 0, &consumed) == HBONE_ERR_AGAIN && consumed == 0);
    check_client_hello(tls);
    fx_drive(tls, HB_TLS_CLIENT, data, size);
    hb_tls_del(tls);
    fx_mem_end();
    fuzz_mem_end();
    return 0;
}
