/* SPDX-License-Identifier: MIT */
/*
 * The TLS layer: one mutual-TLS 1.3 session over memory, no sockets.
 *
 * Ciphertext from the peer is lent to hb_tls_handshake()/hb_tls_read() for
 * the duration of the call and *consumed says how much was taken; ciphertext
 * for the peer collects in an output buffer the caller drains with
 * hb_tls_output() and hb_tls_output_consume(). Errors are sticky: once a call
 * returns a fatal code, every later call returns it again, and
 * hb_tls_error_detail() says what happened.
 */
#ifndef HB_TLS_TLS_H
#define HB_TLS_TLS_H

#include <stddef.h>
#include <stdint.h>

#include <hbone/config.h>
#include <hbone/identity.h>

#define HB_TLS_CLIENT 0
#define HB_TLS_SERVER 1

typedef struct hb_tls hb_tls;

/* Initialise wolfSSL once per process. Returns 0 or HBONE_ERR_INTERNAL. */
int hb_tls_global_init(void);

/* The verify callback installed on every context (see session.c). */
struct WOLFSSL_X509_STORE_CTX;
int hb_tls_verify_callback(int preverify, struct WOLFSSL_X509_STORE_CTX *store);

/* Create a session in @p role using @p cfg, which is frozen and referenced
 * until hb_tls_del(). Returns 0, HBONE_ERR_NO_CERTIFICATE,
 * HBONE_ERR_NO_TRUST_BUNDLE, HBONE_ERR_NOMEM or HBONE_ERR_INTERNAL. */
int hb_tls_new(hb_tls **out, hbone_config *cfg, int role);

#ifdef HB_TESTING
/* Test builds only (never in libhbone.so): a session without TLS, so that
 * tests and fuzzers reach the HTTP/2 layer with raw bytes. Its handshake is
 * complete at once and its peer id is NULL; reads pass input through with
 * hb_tls_read()'s return contract, writes append plaintext to the output,
 * close_notify only forbids further writes (nothing in-band marks the end;
 * the peer learns it from the transport). @p cfg needs no certificate; it is
 * frozen and referenced as by hb_tls_new(). Returns 0,
 * HBONE_ERR_INVALID_ARGUMENT or HBONE_ERR_NOMEM. */
int hb_tls_new_plaintext(hb_tls **out, hbone_config *cfg, int role);
#endif

void hb_tls_del(hb_tls *tls);

/* Client: accept a server presenting @p id (copied). At least one is
 * required before the handshake starts. Returns 0, HBONE_ERR_INVALID_STATE
 * (server, or handshake started), HBONE_ERR_INVALID_ARGUMENT or NOMEM. */
int hb_tls_expect_peer(hb_tls *tls, const hbone_spiffe_id *id);

/* Advance the handshake with @p in (may be empty). Returns 0 once complete,
 * HBONE_ERR_AGAIN while it needs more input (check hb_tls_output() first), or
 * a fatal error. */
int hb_tls_handshake(hb_tls *tls, const uint8_t *in, size_t in_len, size_t *consumed);

/* Decrypt application data from @p in (and anything buffered) into @p out;
 * *@p nread says how much, whatever the result. Returns 0 when @p out is
 * full (more may be buffered: call again), HBONE_ERR_AGAIN when the input is
 * used up, HBONE_ERR_CLOSED after the peer's close_notify, or a fatal
 * error. */
int hb_tls_read(hb_tls *tls, const uint8_t *in, size_t in_len, size_t *consumed, uint8_t *out,
                size_t cap, size_t *nread);

/* Encrypt @p len bytes into the output buffer (all of them, or an error). */
int hb_tls_write(hb_tls *tls, const uint8_t *data, size_t len);

/* Queue a close_notify alert. */
int hb_tls_close_notify(hb_tls *tls);

/* Pending ciphertext for the peer: pointer and length (NULL/0 if none). The
 * pointer is valid until the next call on @p tls. */
const uint8_t *hb_tls_output(const hb_tls *tls, size_t *len);
void hb_tls_output_consume(hb_tls *tls, size_t n);

int hb_tls_handshake_done(const hb_tls *tls);
/* The verified peer identity once the handshake is done, else NULL. */
const hbone_spiffe_id *hb_tls_peer_id(const hb_tls *tls);
/* When the peer's certificate expires (seconds since the epoch, UTC), or 0
 * if unknown or the handshake is not done. */
int64_t hb_tls_peer_not_after(const hb_tls *tls);
/* IANA name of the negotiated suite, e.g. "TLS_AES_128_GCM_SHA256". */
const char *hb_tls_cipher(const hb_tls *tls);
/* Name of the negotiated key exchange group, e.g. "SECP256R1". */
const char *hb_tls_group(const hb_tls *tls);
const char *hb_tls_error_detail(const hb_tls *tls);

#endif /* HB_TLS_TLS_H */
