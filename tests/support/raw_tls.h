/* SPDX-License-Identifier: MIT */
/*
 * A raw wolfSSL TLS 1.3 client over memory queues, to play peers libhbone's
 * own client never is: no certificate, no ALPN, one that sends KeyUpdates
 * and never reads.
 */
#ifndef HB_RAW_TLS_H
#define HB_RAW_TLS_H

#include <stddef.h>

#include "tls/wolfssl.h"
#include "tls_pair.h"

struct raw_client {
    WOLFSSL_CTX *ctx;
    WOLFSSL *ssl;
    tl_queue to_server;   /* its output */
    tl_queue from_server; /* its input */
};

/* A client that presents "client" of the test PKI if @p with_cert, offers
 * @p alpn (NULL: no ALPN extension) and does not verify the server. */
void raw_client_init(struct raw_client *rc, int with_cert, const char *alpn);

/* The same, presenting the PEM certificates of @p chain (NULL: none) with
 * the key of "client": wolfSSL sends the certificates after the first
 * without parsing them, so they may be anything. */
void raw_client_init_chain(struct raw_client *rc, const char *chain, size_t chain_len,
                           const char *alpn);
void raw_client_free(struct raw_client *rc);

/* Append @p n bytes to @p q. */
void raw_tls_push(tl_queue *q, const void *data, size_t n);

#endif /* HB_RAW_TLS_H */
