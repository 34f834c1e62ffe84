/* SPDX-License-Identifier: MIT */
/*
 * libhbone config: the mutual-TLS material and policy shared by connections.
 *
 * A config holds this workload's certificate chain and key (an X.509-SVID),
 * the trust bundles of the trust domains it accepts, each bound to its trust
 * domain, and options. It is reference-counted. Setters work only until the
 * first connection uses the config; from then on it is immutable and shared,
 * so certificate rotation means building a new config: new connections use
 * the new one, existing ones keep the config they started with.
 *
 * Threads: setters are not thread-safe; a frozen config may be used by
 * connections on any number of threads (reference counting is atomic).
 */
#ifndef HBONE_CONFIG_H
#define HBONE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include <hbone/export.h>
#include <hbone/identity.h>
#include <hbone/log.h>
#include <hbone/mem.h>

#ifdef __cplusplus
extern "C" {
#endif

/** TLS and identity configuration; opaque, reference-counted. */
typedef struct hbone_config hbone_config;

/**
 * Create an empty config with one reference held by the caller. @p mem may be
 * NULL (C library allocator); it is copied.
 *
 * Returns 0, HBONE_ERR_INVALID_ARGUMENT, HBONE_ERR_NOMEM or
 * HBONE_ERR_INTERNAL (wolfSSL could not be initialised).
 */
HBONE_API int hbone_config_new(hbone_config **out, const hbone_mem *mem);

/** Take another reference to @p cfg and return it. */
HBONE_API hbone_config *hbone_config_ref(hbone_config *cfg);

/**
 * Drop the caller's reference; the config is freed when connections using it
 * have dropped theirs too. NULL is a no-op.
 */
HBONE_API void hbone_config_del(hbone_config *cfg);

/**
 * Set this workload's certificate chain (PEM: leaf first, then
 * intermediates; the root is not sent) and private key (PEM: PKCS#8
 * "PRIVATE KEY" or SEC1 "EC PRIVATE KEY"). The leaf must be a valid
 * X.509-SVID under the config's SVID mode and the key must match it; its
 * trust domain becomes the config's own. Inputs are copied.
 *
 * Returns 0, HBONE_ERR_CONFIG_FROZEN, HBONE_ERR_PEM, HBONE_ERR_SVID_*,
 * HBONE_ERR_SPIFFE_*, HBONE_ERR_KEY, HBONE_ERR_INVALID_ARGUMENT or
 * HBONE_ERR_NOMEM; hbone_config_error_detail() says more.
 */
HBONE_API int hbone_config_set_certificate(hbone_config *cfg, const char *chain_pem,
                                           size_t chain_len, const char *key_pem, size_t key_len);

/**
 * Add the trust bundle (PEM, one or more CA certificates) of @p trust_domain.
 * A peer is accepted only if its chain leads to the bundle of the trust
 * domain in its own SPIFFE ID. Adding a second bundle for the same trust
 * domain extends it (as during CA rotation).
 *
 * Returns 0, HBONE_ERR_CONFIG_FROZEN, HBONE_ERR_SPIFFE_TRUST_DOMAIN_*,
 * HBONE_ERR_PEM, HBONE_ERR_TLS_CERT_INVALID, HBONE_ERR_INVALID_ARGUMENT or
 * HBONE_ERR_NOMEM.
 */
HBONE_API int hbone_config_add_trust_bundle(hbone_config *cfg, const char *trust_domain,
                                            size_t trust_domain_len, const char *bundle_pem,
                                            size_t bundle_len);

/**
 * Server side: also accept clients of @p trust_domain (federation). By
 * default a server accepts only clients of its own trust domain, as ztunnel.
 * The trust domain needs a bundle too.
 *
 * Returns 0, HBONE_ERR_CONFIG_FROZEN, HBONE_ERR_SPIFFE_TRUST_DOMAIN_*,
 * HBONE_ERR_INVALID_ARGUMENT or HBONE_ERR_NOMEM.
 */
HBONE_API int hbone_config_accept_trust_domain(hbone_config *cfg, const char *trust_domain,
                                               size_t trust_domain_len);

/**
 * HBONE_SVID_STRICT (default) or HBONE_SVID_LENIENT; applies to peers and to
 * this config's own certificate. Returns 0, HBONE_ERR_CONFIG_FROZEN or
 * HBONE_ERR_INVALID_ARGUMENT.
 */
HBONE_API int hbone_config_set_svid_mode(hbone_config *cfg, int mode);

/**
 * Send log messages at @p max_level and more severe to @p cb (NULL: none).
 * Returns 0, HBONE_ERR_CONFIG_FROZEN or HBONE_ERR_INVALID_ARGUMENT.
 */
HBONE_API int hbone_config_set_log(hbone_config *cfg, hbone_log_cb cb, int max_level,
                                   void *user_data);

/**
 * Connections fail with HBONE_ERR_TIMEOUT when the TLS handshake has not
 * completed @p ms milliseconds after they were created (default 10000; 0
 * disables). Returns 0, HBONE_ERR_CONFIG_FROZEN or HBONE_ERR_INVALID_ARGUMENT.
 */
HBONE_API int hbone_config_set_handshake_timeout(hbone_config *cfg, uint32_t ms);

/**
 * Send an HTTP/2 PING every @p interval_ms once connected (also during
 * traffic) and fail the connection with HBONE_ERR_TIMEOUT when its ACK has
 * not come @p timeout_ms after it was sent (defaults 10000 and 20000, as
 * ztunnel; an interval of 0 disables keepalive). Returns 0,
 * HBONE_ERR_CONFIG_FROZEN or HBONE_ERR_INVALID_ARGUMENT.
 */
HBONE_API int hbone_config_set_keepalive(hbone_config *cfg, uint32_t interval_ms,
                                         uint32_t timeout_ms);

/**
 * Close a connection gracefully (GOAWAY, NO_ERROR) once it has carried no
 * tunnel for @p ms milliseconds (default 0: never). Returns 0,
 * HBONE_ERR_CONFIG_FROZEN or HBONE_ERR_INVALID_ARGUMENT.
 */
HBONE_API int hbone_config_set_idle_timeout(hbone_config *cfg, uint32_t ms);

/**
 * Give up on a peer that takes nothing: a tunnel that has had bytes queued
 * and none taken for @p ms milliseconds (the peer keeps its window shut, or
 * never answers the request) is reset with CANCEL and closed with
 * HBONE_CLOSE_STALLED; a connection whose transport has taken none of its
 * waiting output for @p ms fails with HBONE_ERR_TIMEOUT. Each tunnel's clock
 * is read every quarter of @p ms, so a stalled tunnel goes between @p ms and
 * 1.25 x @p ms after its last progress. Default 300000 (5 minutes); 0
 * disables. A stalled tunnel costs at most its buffer
 * (hbone_config_set_buffer_limits); this returns that memory. Returns 0,
 * HBONE_ERR_CONFIG_FROZEN or HBONE_ERR_INVALID_ARGUMENT.
 */
HBONE_API int hbone_config_set_stall_timeout(hbone_config *cfg, uint32_t ms);

/**
 * Server: admit at most @p max_handshakes connections in their TLS
 * handshake and @p max_connections open at once (0: no limit); beyond
 * either, hbone_conn_server_new() returns HBONE_ERR_LIMIT and the caller
 * closes the socket. A peer that has not finished its handshake has proved
 * nothing, so its cap is the lower one. A connection counts from
 * hbone_conn_server_new(); it stops counting as a handshake when the
 * handshake completes and as a connection at hbone_conn_del(). Defaults 128
 * and 10000. Returns 0, HBONE_ERR_CONFIG_FROZEN or HBONE_ERR_INVALID_ARGUMENT.
 */
HBONE_API int hbone_config_set_server_limits(hbone_config *cfg, uint32_t max_handshakes,
                                             uint32_t max_connections);

/**
 * Count @p cfg's server connections together with those of @p from, and
 * take @p from's limits (hbone_config_set_server_limits may change them
 * afterwards). For certificate rotation: the connections still open on the
 * old config keep counting against the new one's limits. The count lives
 * until the last config sharing it is freed (it was allocated through the
 * allocator of the config that started it). Returns 0,
 * HBONE_ERR_CONFIG_FROZEN (of @p cfg) or HBONE_ERR_INVALID_ARGUMENT.
 */
HBONE_API int hbone_config_share_server_limits(hbone_config *cfg, const hbone_config *from);

/**
 * The server connections counted against @p cfg's limits (those of configs
 * it shares them with included): in their handshake, and open. Either
 * pointer may be NULL. Returns 0 or HBONE_ERR_INVALID_ARGUMENT.
 */
HBONE_API int hbone_config_server_load(const hbone_config *cfg, uint32_t *handshakes,
                                       uint32_t *connections);

/**
 * Server: also accept CONNECT authorities that name a host ("svc.ns:80", as
 * in double HBONE) instead of an IP address (default: refused with 400).
 * Returns 0, HBONE_ERR_CONFIG_FROZEN or HBONE_ERR_INVALID_ARGUMENT.
 */
HBONE_API int hbone_config_set_hostname_authority(hbone_config *cfg, int allow);

/**
 * HTTP/2 settings, ztunnel's by default: @p stream_window 4 MiB (the
 * INITIAL_WINDOW_SIZE), @p connection_window 16 MiB (keep it at least 4 x the
 * stream window so one stalled tunnel cannot stall the rest),
 * @p max_frame_size 1 MiB, @p max_concurrent_streams 200 (servers only).
 * Returns 0, HBONE_ERR_CONFIG_FROZEN or HBONE_ERR_INVALID_ARGUMENT (outside
 * RFC 9113's ranges, or a connection window below the stream window).
 */
HBONE_API int hbone_config_set_http2(hbone_config *cfg, uint32_t stream_window,
                                     uint32_t connection_window, uint32_t max_frame_size,
                                     uint32_t max_concurrent_streams);

/**
 * The largest header list accepted on a tunnel's request (server) or
 * response (client), counted as RFC 9113 section 6.5.2 does (each field's
 * name and value plus 32), and advertised as SETTINGS_MAX_HEADER_LIST_SIZE.
 * ztunnel's by default: 64 KiB for servers, 16 KiB for clients; a
 * client's budget also covers any informational (1xx) responses. A stream
 * that exceeds it is reset; the connection carries on. @p bytes from 1 KiB
 * to 16 MiB. Returns 0, HBONE_ERR_CONFIG_FROZEN or HBONE_ERR_INVALID_ARGUMENT.
 */
HBONE_API int hbone_config_set_max_header_list_size(hbone_config *cfg, uint32_t bytes);

/**
 * How much a connection holds for a peer before it pushes back.
 * @p tunnel_bytes: what one tunnel buffers for the peer; beyond it,
 * hbone_conn_tunnel_write() takes no more and returns HBONE_ERR_AGAIN, and
 * the writable callback follows once half of it has gone (default 256 KiB,
 * from 16 KiB to 64 MiB). @p connection_bytes: ciphertext waiting for the
 * transport at which the connection stops framing tunnel data, and at twice
 * which hbone_conn_input() stops taking input, so that a peer that does not
 * read is held back by TCP (default 256 KiB, from 64 KiB to 64 MiB). A
 * connection's memory for output is then bounded by about twice
 * @p connection_bytes plus @p tunnel_bytes per tunnel. Returns 0,
 * HBONE_ERR_CONFIG_FROZEN or HBONE_ERR_INVALID_ARGUMENT.
 */
HBONE_API int hbone_config_set_buffer_limits(hbone_config *cfg, uint32_t tunnel_bytes,
                                             uint32_t connection_bytes);

/**
 * The budget for frames that make the connection work without moving any
 * tunnel forward: empty DATA, PRIORITY, PUSH_PROMISE (which a client
 * cancels), frames nghttp2 rejects, and requests the server has to reset
 * (MadeYouReset). A token bucket: @p burst
 * such frames at once, refilled at @p per_second; a peer that overdraws it
 * is sent GOAWAY(ENHANCE_YOUR_CALM) and the connection fails with
 * HBONE_ERR_PROTOCOL. Defaults 1000 and 33 (upstream nghttp2's glitch
 * limiter); each from 1 to 1,000,000. Returns 0, HBONE_ERR_CONFIG_FROZEN or
 * HBONE_ERR_INVALID_ARGUMENT.
 */
HBONE_API int hbone_config_set_flood_limit(hbone_config *cfg, uint32_t burst, uint32_t per_second);

/**
 * This workload's own SPIFFE ID (from the certificate), or NULL if no
 * certificate is set. Valid as long as @p cfg.
 */
HBONE_API const hbone_spiffe_id *hbone_config_identity(const hbone_config *cfg);

/**
 * A NUL-terminated description of the last failed setter call on @p cfg
 * ("" if none). Valid until the next call on @p cfg.
 */
HBONE_API const char *hbone_config_error_detail(const hbone_config *cfg);

/** The TLS library libhbone runs on, e.g. "wolfSSL 5.5.4 (tuned, static)". */
HBONE_API const char *hbone_tls_library(void);

/**
 * Return 1 if AES-GCM runs with hardware acceleration (AES-NI, with AVX/AVX2
 * variants) in this build on this CPU, 0 otherwise.
 */
HBONE_API int hbone_tls_aes_hw_accelerated(void);

#ifdef __cplusplus
}
#endif

#endif /* HBONE_CONFIG_H */
