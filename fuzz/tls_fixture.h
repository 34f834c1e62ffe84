/* SPDX-License-Identifier: MIT */
/*
 * Shared by the TLS handshake fuzz targets (fuzz_handshake_server.c,
 * fuzz_handshake_client.c): the fixed PKI of fuzz/data, configs built from
 * it, the chunked feeding of an input into one hb_tls session with the
 * invariant checks, and the recording of real flights for the seed corpora.
 * Not a fuzz target itself (it defines no LLVMFuzzerTestOneInput).
 */
#ifndef HB_FUZZ_TLS_FIXTURE_H
#define HB_FUZZ_TLS_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include <hbone/config.h>

#include "tls/tls.h"

/* The identities of the two leaves in fuzz/data. */
#define FX_SERVER_ID "spiffe://cluster.local/ns/default/sa/server"
#define FX_CLIENT_ID "spiffe://cluster.local/ns/default/sa/client"

/*
 * The config holding leaf @p leaf ("server" or "client") of fuzz/data and
 * the trust bundle of cluster.local. Built on first use and kept for the
 * whole process (the caller does not delete it); it allocates through a
 * counting allocator of its own, see fx_mem_begin(). Aborts if fuzz/data
 * cannot be read: a fuzzer without credentials would test nothing.
 */
hbone_config *fx_config(const char *leaf);

/* Around each input, as fuzz_mem_begin()/fuzz_mem_end() for fuzz_mem():
 * fx_mem_end() aborts unless everything allocated through the configs'
 * allocator since fx_mem_begin() (sessions, their buffers, peer IDs) has
 * been freed. */
void fx_mem_begin(void);
void fx_mem_end(void);

/*
 * Feed @p data, a fuzz input, to @p tls as the peer's flights and check the
 * invariants listed in the targets' header comments. The first byte chooses
 * how the rest is cut into chunks (see tls_fixture.c). @p tls may already
 * have output pending (a client's ClientHello).
 */
void fx_drive(hb_tls *tls, int role, const uint8_t *data, size_t size);

/*
 * If the environment variable FUZZ_RECORD names a directory, run a real
 * client and server over memory once, and write what @p role received, as
 * inputs for that role's target, into it (then exit). Does nothing
 * otherwise. See docs/fuzzing.md.
 */
void fx_record_if_asked(int role);

#endif /* HB_FUZZ_TLS_FIXTURE_H */
