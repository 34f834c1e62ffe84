/* SPDX-License-Identifier: MIT */
/*
 * A client and a server TLS session wired together in memory. The pump moves
 * ciphertext between them in chunks of a chosen size (whole, 1 byte, or
 * random) so every test can run against every way TCP may split a stream.
 */
#ifndef HB_TLS_PAIR_H
#define HB_TLS_PAIR_H

#include <stddef.h>
#include <stdint.h>

#include "tls/tls.h"

#define TL_CHUNK_WHOLE 0
#define TL_CHUNK_ONE_BYTE 1
#define TL_CHUNK_RANDOM 2

typedef struct tl_queue {
    uint8_t *buf;
    size_t len;
    size_t cap;
} tl_queue;

typedef struct tl_side {
    hb_tls *tls;
    int state;                   /* 0 handshaking, 1 established, 2 peer closed, <0 error */
    tl_queue in;                 /* ciphertext on its way to this side */
    tl_queue plain;              /* plaintext this side has read */
    size_t sent_after_handshake; /* ciphertext bytes sent once established */
} tl_side;

typedef struct tl_pair {
    tl_side client;
    tl_side server;
    int chunking;
    unsigned seed;
} tl_pair;

/* Create sessions for @p client_cfg and @p server_cfg; the client expects
 * @p expected (NULL-terminated SPIFFE ID strings). */
void tl_pair_init(tl_pair *p, hbone_config *client_cfg, hbone_config *server_cfg,
                  const char *const *expected, int chunking, unsigned seed);
void tl_pair_free(tl_pair *p);

/* Move bytes until neither side makes progress. */
void tl_pair_pump(tl_pair *p);

/* Queue plaintext on one side (fails the test on error). */
void tl_pair_write(tl_side *side, const void *data, size_t len);

#endif /* HB_TLS_PAIR_H */
