/* SPDX-License-Identifier: MIT */
/*
 * libhbone pool: which client connection a new tunnel should use.
 *
 * The bookkeeping of connection reuse, keyed as ztunnel keys it: a
 * connection serves a tunnel only if it goes to the same next hop, from the
 * same source, expecting the same set of server identities. The pool never
 * dials, reads a clock or owns a connection: the application creates each
 * connection (and its transport) when the pool says so, hands it over with
 * hbone_pool_add(), and tells the pool with hbone_pool_remove() before it
 * frees one.
 *
 * For each tunnel:
 *
 *   r = hbone_pool_get(pool, key, now, &conn);
 *   0               -> open the tunnel on conn now (hbone_conn_tunnel_open)
 *   HBONE_POOL_DIAL -> create a client connection for the key, then
 *                      hbone_pool_add(pool, key, conn, now), or
 *                      hbone_pool_dial_failed(pool, key, now) if it could
 *                      not even be started; then ask again
 *   HBONE_ERR_AGAIN -> a connection for the key is being dialed, or the key
 *                      is backing off after failures: ask again after the
 *                      next hbone_pool_add() or hbone_pool_dial_failed() for
 *                      the key, or at hbone_pool_get_expiry()
 *
 * What the pool does for a key:
 * - Reuses a connection while it takes new tunnels: not closed or failed,
 *   no GOAWAY sent or received, stream ids left, the server's certificate
 *   not expired, fewer tunnels open than the server's
 *   SETTINGS_MAX_CONCURRENT_STREAMS and than the pool's own cap (100, like
 *   ztunnel). A connection still in its handshake is used too: its tunnels
 *   wait for the handshake, and fail with it.
 * - Never hands out a connection whose verified server identity is not one
 *   of the key's expected identities, whatever it was added with.
 * - Dials one connection per key at a time.
 * - Backs off from a key whose connections fail: one that ended before its
 *   handshake completed (refused, wrong identity, lost) or ended by the
 *   server's GOAWAY with an error code (ENHANCE_YOUR_CALM, ...), and a dial
 *   that failed to start. The first retry waits 100 ms, each further failure
 *   doubles the wait up to 10 s, and a connection that leaves the pool
 *   without having failed ends the backoff. So a failing server sees no
 *   retry storm, even one that completes each handshake before its GOAWAY.
 * - Hands back, with hbone_pool_take_idle(), connections that carried no
 *   tunnel for the idle timeout (5 minutes, like ztunnel), for the
 *   application to drain and close.
 *
 * A pool is not thread-safe: use it from the thread of its connections.
 */
#ifndef HBONE_POOL_H
#define HBONE_POOL_H

#include <stddef.h>
#include <stdint.h>

#include <hbone/conn.h>
#include <hbone/export.h>
#include <hbone/identity.h>
#include <hbone/mem.h>

#ifdef __cplusplus
extern "C" {
#endif

/** hbone_pool_get(): no connection can take the tunnel; dial one. */
#define HBONE_POOL_DIAL 1

/** Which connection serves which tunnels. */
typedef struct hbone_pool hbone_pool;

/** What a pooled connection is for: next hop, source, expected identities. */
typedef struct hbone_pool_key hbone_pool_key;

/**
 * A key for connections to @p next_hop (as the application dials it, e.g.
 * "10.0.0.2:15008"; compared byte for byte), with no source and no expected
 * identity yet. @p mem may be NULL for the C library allocator.
 *
 * Returns 0, HBONE_ERR_INVALID_ARGUMENT (no next hop) or HBONE_ERR_NOMEM.
 */
HBONE_API int hbone_pool_key_new(hbone_pool_key **out, const char *next_hop, size_t next_hop_len,
                                 const hbone_mem *mem);
HBONE_API void hbone_pool_key_del(hbone_pool_key *key);

/**
 * The source of the connections: the client's own identity (the SPIFFE ID
 * of its certificate) and, where the application binds to one, its source
 * address. Either may be empty. Returns 0, HBONE_ERR_INVALID_ARGUMENT or
 * HBONE_ERR_NOMEM.
 */
HBONE_API int hbone_pool_key_set_source(hbone_pool_key *key, const char *identity,
                                        size_t identity_len, const char *address,
                                        size_t address_len);

/**
 * Add an identity the server may present (the same ones the application
 * gives hbone_conn_expect_peer()). Keys expecting the same set, in any order,
 * are equal. Returns 0, HBONE_ERR_INVALID_ARGUMENT or HBONE_ERR_NOMEM.
 */
HBONE_API int hbone_pool_key_add_expected(hbone_pool_key *key, const hbone_spiffe_id *id);

/** A pool without connections. Returns 0, HBONE_ERR_INVALID_ARGUMENT or HBONE_ERR_NOMEM. */
HBONE_API int hbone_pool_new(hbone_pool **out, const hbone_mem *mem);

/** Forget every connection (it frees none of them: they are the application's). */
HBONE_API void hbone_pool_del(hbone_pool *pool);

/**
 * At most @p tunnels_per_connection tunnels open on one connection (default
 * 100; the server's SETTINGS_MAX_CONCURRENT_STREAMS may lower it), and
 * connections without a tunnel for @p idle_timeout_ms (default 300000; 0:
 * never) handed back by hbone_pool_take_idle(). Returns 0 or
 * HBONE_ERR_INVALID_ARGUMENT (a cap of 0).
 */
HBONE_API int hbone_pool_set_limits(hbone_pool *pool, uint32_t tunnels_per_connection,
                                    uint32_t idle_timeout_ms);

/**
 * After a failure, wait @p first_ms before the next dial for the key, twice
 * that after each further failure, at most @p max_ms (defaults 100 and
 * 10000). Returns 0 or HBONE_ERR_INVALID_ARGUMENT (0, or max below first).
 */
HBONE_API int hbone_pool_set_backoff(hbone_pool *pool, uint32_t first_ms, uint32_t max_ms);

/**
 * The connection for a new tunnel of @p key, at @p now_ms (any monotonic
 * clock in milliseconds, the one given to the connections).
 *
 * Returns 0 with *@p conn_out set (open the tunnel on it before the next
 * call for this key), HBONE_POOL_DIAL, HBONE_ERR_AGAIN (see the top of this
 * file), HBONE_ERR_INVALID_ARGUMENT (also for a key without an expected
 * identity) or HBONE_ERR_NOMEM. *@p conn_out is
 * NULL unless 0 is returned.
 */
HBONE_API int hbone_pool_get(hbone_pool *pool, const hbone_pool_key *key, uint64_t now_ms,
                             hbone_conn **conn_out);

/**
 * The connection the application dialed for @p key after HBONE_POOL_DIAL: a
 * client connection expecting the key's identities. The pool keeps a copy
 * of the key. Returns 0, HBONE_ERR_INVALID_ARGUMENT (a key without an
 * expected identity, a connection that takes no tunnels, as a server's or a
 * closed one, or one already in the pool) or HBONE_ERR_NOMEM (then the dial
 * still counts as in progress: add it again or report the dial failed).
 */
HBONE_API int hbone_pool_add(hbone_pool *pool, const hbone_pool_key *key, hbone_conn *conn,
                             uint64_t now_ms);

/**
 * The dial for @p key after HBONE_POOL_DIAL could not be started (no
 * descriptor, connect() refused at once...): the key backs off. Returns 0
 * or HBONE_ERR_INVALID_ARGUMENT (no dial was in progress for the key).
 */
HBONE_API int hbone_pool_dial_failed(hbone_pool *pool, const hbone_pool_key *key, uint64_t now_ms);

/**
 * Forget @p conn, before the application frees it. If it failed before its
 * handshake completed, or the server ended it with a GOAWAY error code, its
 * key backs off. A connection the pool does not hold is ignored.
 */
HBONE_API void hbone_pool_remove(hbone_pool *pool, hbone_conn *conn, uint64_t now_ms);

/**
 * A pooled connection that has carried no tunnel for the idle timeout, or
 * NULL: the pool forgets it and the application drains and closes it.
 * Call until NULL.
 */
HBONE_API hbone_conn *hbone_pool_take_idle(hbone_pool *pool, uint64_t now_ms);

/**
 * When hbone_pool_take_idle() may next have a connection, or the backoff of
 * a key that hbone_pool_get() told to wait ends (milliseconds, the
 * connections' clock); 0 if never.
 */
HBONE_API uint64_t hbone_pool_get_expiry(const hbone_pool *pool);

/** How many connections the pool holds. */
HBONE_API size_t hbone_pool_size(const hbone_pool *pool);

#ifdef __cplusplus
}
#endif

#endif /* HBONE_POOL_H */
