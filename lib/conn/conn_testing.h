/* SPDX-License-Identifier: MIT */
/*
 * Test builds only (compiled with HB_TESTING: libhbone_internal and the
 * fuzzers, never libhbone.so): connections without TLS, so that tests and
 * fuzzers can speak raw HTTP/2 to the connection and tunnel logic, which
 * real TLS would otherwise keep them from reaching.
 */
#ifndef HB_CONN_CONN_TESTING_H
#define HB_CONN_CONN_TESTING_H

#include <stdint.h>

#include <hbone/config.h>
#include <hbone/conn.h>

#ifdef HB_TESTING
/*
 * hbone_conn_client_new() (@p server 0) or hbone_conn_server_new() (1) over
 * a plaintext session (hb_tls_new_plaintext()): input and output are the
 * HTTP/2 byte stream itself, the handshake completes on the first input or
 * output call, hbone_conn_peer_id() is NULL, and @p cfg needs no
 * certificate or trust bundle. A client needs no hbone_conn_expect_peer().
 * Returns 0, HBONE_ERR_INVALID_ARGUMENT or HBONE_ERR_NOMEM.
 */
int hb_conn_new_plaintext(hbone_conn **out, hbone_config *cfg, const hbone_callbacks *cbs,
                          void *user_data, int server, uint64_t now_ms);

/* Client: the stream id of the next tunnel (odd, above the last used), so
 * that a test can reach the end of the id space. Returns 0 or
 * HBONE_ERR_INVALID_ARGUMENT. */
int hb_conn_set_next_stream_id(hbone_conn *conn, int32_t id);

/* The wall-clock time (seconds since the epoch) @p conn judges the peer's
 * certificate by, instead of time(); 0 goes back to time(). */
void hb_conn_set_wall_clock(hbone_conn *conn, int64_t seconds);
#endif

#endif /* HB_CONN_CONN_TESTING_H */
