/* SPDX-License-Identifier: MIT */
/*
 * libhbone connections: one mutual-TLS 1.3 + HTTP/2 connection carrying
 * HBONE tunnels (CONNECT streams), sans-IO.
 *
 * The application moves bytes: ciphertext from the socket goes into
 * hbone_conn_input(), ciphertext for the socket comes out of
 * hbone_conn_output() and is acknowledged with hbone_conn_output_consume().
 * Events (handshake done, tunnel requests, responses, data, ends, closes)
 * arrive through callbacks while those calls run.
 *
 * A tunnel is identified by its HTTP/2 stream id (an int32_t > 0), which is
 * valid from the open or request event until its close event.
 *
 * Time is passed in as milliseconds on any monotonic clock (@p now_ms).
 * hbone_conn_get_expiry() says when the connection next needs
 * hbone_conn_handle_expiry(): handshake timeout, keepalive PINGs and their
 * timeout, and the drain deadline all run on it.
 *
 * Threads: a connection is used by one thread at a time. Callbacks run
 * inside hbone_conn_input() or hbone_conn_output(); they may call the tunnel
 * functions of the same connection, but not hbone_conn_input(),
 * hbone_conn_output(), hbone_conn_output_consume() or hbone_conn_del().
 */
#ifndef HBONE_CONN_H
#define HBONE_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <hbone/config.h>
#include <hbone/export.h>
#include <hbone/identity.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hbone_conn hbone_conn;

/* Close reasons beyond HTTP/2's error codes (which are 0x0-0xd). */
#define HBONE_CLOSE_CONNECTION_LOST 0x100 /* the connection ended under the tunnel */
/* RST_STREAM(NO_ERROR) before the peer ended its side: what it sent may be
 * cut short, so this is not a clean end (ztunnel's peers may send it). */
#define HBONE_CLOSE_RESET_BEFORE_END 0x101
/* We reset the tunnel (CANCEL): the peer took none of its queued bytes for
 * the stall timeout (hbone_config_set_stall_timeout). */
#define HBONE_CLOSE_STALLED 0x102

/* --- callbacks ----------------------------------------------------------- */

/** The TLS handshake completed and the peer's identity is verified
 * (hbone_conn_peer_id()). */
typedef void (*hbone_handshake_cb)(hbone_conn *conn, void *user_data);

/**
 * Server: a peer asks for a tunnel to @p host (not NUL-terminated; no
 * brackets around IPv6) and @p port; @p kind is an HBONE_AUTHORITY_* value.
 * Requests with a malformed authority were already answered with 400.
 * Answer with hbone_conn_tunnel_accept() or hbone_conn_tunnel_reject(), now
 * or later; hbone_conn_tunnel_header() reads the request's headers until then.
 */
typedef void (*hbone_tunnel_request_cb)(hbone_conn *conn, int32_t tunnel, const char *host,
                                        size_t host_len, uint16_t port, int kind, void *user_data);

/** Client: the final response to hbone_conn_tunnel_open(). 200 means the
 * tunnel is established; any other status means it failed (a close event
 * follows). */
typedef void (*hbone_tunnel_response_cb)(hbone_conn *conn, int32_t tunnel, int status,
                                         void *user_data);

/** Bytes arrived on a tunnel. They count against the peer's window until the
 * application calls hbone_conn_tunnel_consume(). @p data is valid only
 * during the call. */
typedef void (*hbone_tunnel_data_cb)(hbone_conn *conn, int32_t tunnel, const uint8_t *data,
                                     size_t len, void *user_data);

/** The peer ended its side of the tunnel (its FIN). */
typedef void (*hbone_tunnel_end_cb)(hbone_conn *conn, int32_t tunnel, void *user_data);

/** A tunnel whose write returned HBONE_ERR_AGAIN can take more bytes. */
typedef void (*hbone_tunnel_writable_cb)(hbone_conn *conn, int32_t tunnel, void *user_data);

/**
 * The tunnel is gone; its id is invalid after this call. @p reason is 0
 * for a clean end: both sides ended, a refusal was answered, or the peer
 * ended its side and then reset with NO_ERROR ("stop sending", RFC 9113
 * section 8.1). Otherwise it is an HTTP/2 error code when the tunnel was
 * reset (0xa CONNECT_ERROR: a TCP error on the far side; 0x7
 * REFUSED_STREAM only for a tunnel the peer never answered, so it may be
 * retried elsewhere, for instance one above a GOAWAY's last stream),
 * HBONE_CLOSE_RESET_BEFORE_END, HBONE_CLOSE_STALLED or
 * HBONE_CLOSE_CONNECTION_LOST.
 */
typedef void (*hbone_tunnel_close_cb)(hbone_conn *conn, int32_t tunnel, uint32_t reason,
                                      void *user_data);

/** A set of callbacks, shared by any number of connections; opaque. */
typedef struct hbone_callbacks hbone_callbacks;

/** Returns 0, HBONE_ERR_INVALID_ARGUMENT or HBONE_ERR_NOMEM. */
HBONE_API int hbone_callbacks_new(hbone_callbacks **out);
HBONE_API void hbone_callbacks_del(hbone_callbacks *cbs);
HBONE_API void hbone_callbacks_set_handshake(hbone_callbacks *cbs, hbone_handshake_cb cb);
HBONE_API void hbone_callbacks_set_tunnel_request(hbone_callbacks *cbs, hbone_tunnel_request_cb cb);
HBONE_API void hbone_callbacks_set_tunnel_response(hbone_callbacks *cbs,
                                                   hbone_tunnel_response_cb cb);
HBONE_API void hbone_callbacks_set_tunnel_data(hbone_callbacks *cbs, hbone_tunnel_data_cb cb);
HBONE_API void hbone_callbacks_set_tunnel_end(hbone_callbacks *cbs, hbone_tunnel_end_cb cb);
HBONE_API void hbone_callbacks_set_tunnel_writable(hbone_callbacks *cbs,
                                                   hbone_tunnel_writable_cb cb);
HBONE_API void hbone_callbacks_set_tunnel_close(hbone_callbacks *cbs, hbone_tunnel_close_cb cb);

/* --- connections --------------------------------------------------------- */

/**
 * Create a client or server connection using @p cfg (referenced until
 * hbone_conn_del(); it becomes immutable) and @p cbs (copied). A client
 * must name the server identities it accepts with hbone_conn_expect_peer()
 * before its first hbone_conn_output().
 *
 * Returns 0, HBONE_ERR_INVALID_ARGUMENT, HBONE_ERR_NO_CERTIFICATE,
 * HBONE_ERR_NO_TRUST_BUNDLE, HBONE_ERR_NOMEM or HBONE_ERR_INTERNAL.
 */
HBONE_API int hbone_conn_client_new(hbone_conn **out, hbone_config *cfg, const hbone_callbacks *cbs,
                                    void *user_data, uint64_t now_ms);
HBONE_API int hbone_conn_server_new(hbone_conn **out, hbone_config *cfg, const hbone_callbacks *cbs,
                                    void *user_data, uint64_t now_ms);

/** Free a connection; open tunnels vanish without events. NULL is a no-op. */
HBONE_API void hbone_conn_del(hbone_conn *conn);

/**
 * Client: accept a server presenting @p id (copied). Returns 0,
 * HBONE_ERR_INVALID_STATE (a server, or the handshake started),
 * HBONE_ERR_INVALID_ARGUMENT or HBONE_ERR_NOMEM.
 */
HBONE_API int hbone_conn_expect_peer(hbone_conn *conn, const hbone_spiffe_id *id);

/**
 * Feed ciphertext received from the peer. *@p consumed (always set) says how
 * much was taken; keep the rest and offer it again later. Less than all is
 * taken when a record is incomplete, or when the peer is not reading what it
 * makes us send (512 KiB of output waiting): then stop reading the transport,
 * send hbone_conn_output(), and offer the rest again once the peer has read
 * it, so that such a peer is held back instead of filling memory. Returns 0, or a
 * fatal error (the TLS, identity or protocol failure; details in
 * hbone_conn_error_detail()) after which the connection can only send what
 * hbone_conn_output() still has (an alert or GOAWAY) and be deleted.
 */
HBONE_API int hbone_conn_input(hbone_conn *conn, const uint8_t *data, size_t len, size_t *consumed,
                               uint64_t now_ms);

/**
 * The transport ended (FIN without close_notify, or a socket error): every
 * open tunnel is closed with HBONE_CLOSE_CONNECTION_LOST, never as a clean
 * end. Before the handshake completed, the connection fails with
 * HBONE_ERR_CLOSED and a detail saying so. Returns 0 or
 * HBONE_ERR_INVALID_ARGUMENT.
 */
HBONE_API int hbone_conn_input_eof(hbone_conn *conn);

/**
 * Ciphertext waiting for the peer (NULL and *@p len 0 when there is none).
 * The pointer stays valid until the next call on @p conn other than
 * hbone_conn_output_consume().
 */
HBONE_API const uint8_t *hbone_conn_output(hbone_conn *conn, size_t *len, uint64_t now_ms);

/** The transport took @p n bytes of what hbone_conn_output() returned. */
HBONE_API void hbone_conn_output_consume(hbone_conn *conn, size_t n);

/** When hbone_conn_handle_expiry() is next due, in the clock of @p now_ms;
 * UINT64_MAX if no timer runs. */
HBONE_API uint64_t hbone_conn_get_expiry(const hbone_conn *conn);

/**
 * Run the timers due at @p now_ms: send a keepalive PING, or fail the
 * connection with HBONE_ERR_TIMEOUT (handshake not done, PING not
 * acknowledged), or end a drain whose deadline passed (open tunnels are then
 * closed with HBONE_CLOSE_CONNECTION_LOST). Returns 0 or the fatal error.
 * Call hbone_conn_output() afterwards: timers produce frames.
 */
HBONE_API int hbone_conn_handle_expiry(hbone_conn *conn, uint64_t now_ms);

/**
 * Close gracefully: no new tunnels, open ones may finish until
 * @p grace_ms from @p now_ms. A server first announces the shutdown
 * (GOAWAY with the highest stream id, then a PING) and, once the PING is
 * acknowledged, sends the final GOAWAY naming the last stream it accepted.
 * Returns 0, HBONE_ERR_INVALID_STATE (already closed) or HBONE_ERR_NOMEM.
 */
HBONE_API int hbone_conn_drain(hbone_conn *conn, uint64_t now_ms, uint32_t grace_ms);

/** 1 when the connection has ended and has nothing left to send. */
HBONE_API int hbone_conn_is_closed(const hbone_conn *conn);

/** The verified peer identity once the handshake is done, else NULL. */
HBONE_API const hbone_spiffe_id *hbone_conn_peer_id(const hbone_conn *conn);

/** The negotiated TLS cipher suite ("TLS_AES_128_GCM_SHA256"), or NULL
 * before the handshake completed. */
HBONE_API const char *hbone_conn_cipher(const hbone_conn *conn);

/** What made the connection fail, or the error a peer's GOAWAY carried
 * ("the peer sent GOAWAY(ENHANCE_YOUR_CALM): ..."; back off before
 * reconnecting); "" if nothing. Valid until the next call on @p conn. */
HBONE_API const char *hbone_conn_error_detail(const hbone_conn *conn);

/** The error code of the peer's GOAWAY (RFC 9113's: 0xb ENHANCE_YOUR_CALM,
 * ...), or 0 if it sent none or NO_ERROR. */
HBONE_API uint32_t hbone_conn_peer_goaway_error(const hbone_conn *conn);

/** How many tunnels are open on @p conn (opened or requested, not yet
 * closed). */
HBONE_API size_t hbone_conn_tunnel_count(const hbone_conn *conn);

/**
 * Client: how many more tunnels hbone_conn_tunnel_open() may start now
 * without waiting for the server. 0 once the connection takes no new
 * tunnel (a server connection, closed or failed, GOAWAY sent or received,
 * stream ids used up, the server's certificate expired); otherwise the
 * server's SETTINGS_MAX_CONCURRENT_STREAMS less the tunnels open.
 */
HBONE_API uint32_t hbone_conn_tunnel_capacity(hbone_conn *conn);

/** Since when (@p conn's clock, ms) it has had no tunnel open; 0 while one
 * is, and before the handshake completed. */
HBONE_API uint64_t hbone_conn_idle_since(const hbone_conn *conn);

/* --- tunnels --------------------------------------------------------------- */

/**
 * Client: open a tunnel to @p authority ("ip:port", "[ipv6]:port" or
 * "host:port") with @p n extra headers (lowercase names). The CONNECT goes
 * out with the next hbone_conn_output(), after the handshake if needed; the
 * response arrives as a tunnel_response event. Data written before the
 * answer, and a shutdown, are held until then: a refused tunnel sends none
 * of it. Returns 0 with *@p tunnel_out, HBONE_ERR_AUTHORITY,
 * HBONE_ERR_INVALID_STATE (a server, or the connection takes no new
 * tunnels: it is closing or draining, the peer sent GOAWAY, the server's
 * certificate has expired, or the connection has used its last stream id;
 * open the tunnel on a new connection), HBONE_ERR_INVALID_ARGUMENT or
 * HBONE_ERR_NOMEM. (A server likewise refuses new tunnels, with
 * REFUSED_STREAM and GOAWAY, once the client's certificate has expired;
 * tunnels already open carry on in both cases.) A long-lived connection
 * runs out of stream ids after about a billion tunnels: the one that takes
 * the last id opens normally, and the connection then drains (GOAWAY), its
 * open tunnels carrying on.
 */
HBONE_API int hbone_conn_tunnel_open(hbone_conn *conn, const char *authority, size_t authority_len,
                                     const char *const *names, const size_t *name_lens,
                                     const char *const *values, const size_t *value_lens, size_t n,
                                     int32_t *tunnel_out);

/**
 * Server: read header @p index (0-based, pseudo-headers excluded) of a
 * tunnel request not yet answered. Returns 0, HBONE_ERR_NOT_FOUND (past
 * the last, or no such pending request) or HBONE_ERR_INVALID_ARGUMENT.
 */
HBONE_API int hbone_conn_tunnel_header(const hbone_conn *conn, int32_t tunnel, size_t index,
                                       const char **name, size_t *name_len, const char **value,
                                       size_t *value_len);

/** Server: answer 200 with @p n extra headers (e.g. baggage). Returns 0,
 * HBONE_ERR_NOT_FOUND, HBONE_ERR_INVALID_STATE or HBONE_ERR_NOMEM. */
HBONE_API int hbone_conn_tunnel_accept(hbone_conn *conn, int32_t tunnel, const char *const *names,
                                       const size_t *name_lens, const char *const *values,
                                       const size_t *value_lens, size_t n);

/** Server: refuse with @p status 400-599 (401 denied, 503 unreachable...). */
HBONE_API int hbone_conn_tunnel_reject(hbone_conn *conn, int32_t tunnel, int status);

/**
 * Queue up to @p len bytes for the peer; *@p accepted says how many were
 * taken. Returns 0, or HBONE_ERR_AGAIN when the tunnel's buffer is full
 * (nothing taken; a writable event follows), HBONE_ERR_INVALID_STATE (after
 * shutdown or close), HBONE_ERR_NOT_FOUND or HBONE_ERR_NOMEM.
 */
HBONE_API int hbone_conn_tunnel_write(hbone_conn *conn, int32_t tunnel, const uint8_t *data,
                                      size_t len, size_t *accepted);

/** The application consumed @p n received bytes: the peer may send more. */
HBONE_API int hbone_conn_tunnel_consume(hbone_conn *conn, int32_t tunnel, size_t n);

/** End this side of the tunnel (our FIN) once queued bytes are sent. */
HBONE_API int hbone_conn_tunnel_shutdown(hbone_conn *conn, int32_t tunnel);

/** Abort the tunnel with an HTTP/2 error code (0xa CONNECT_ERROR for a TCP
 * error); a close event follows. */
HBONE_API int hbone_conn_tunnel_reset(hbone_conn *conn, int32_t tunnel, uint32_t error_code);

/** Attach an application pointer to a tunnel (returned by get, which also
 * answers during the tunnel's close event; other tunnel calls made from
 * that event return HBONE_ERR_NOT_FOUND). */
HBONE_API int hbone_conn_tunnel_set_user_data(hbone_conn *conn, int32_t tunnel, void *user_data);
HBONE_API void *hbone_conn_tunnel_get_user_data(const hbone_conn *conn, int32_t tunnel);

#ifdef __cplusplus
}
#endif

#endif /* HBONE_CONN_H */
