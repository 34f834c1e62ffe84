/* SPDX-License-Identifier: MIT */
/*
 * Shared by the connection fuzzers (fuzz_conn_server, fuzz_conn_client,
 * fuzz_pair): plaintext connections (conn/conn_testing.h), a deterministic
 * source of decisions, and a record of what the application learned of each
 * tunnel, with the event invariants every target checks:
 *  - an event names a tunnel the application knows and that is not closed;
 *  - a tunnel ends at most once and closes exactly once (after the final
 *    end of input, every tunnel the application learned of has closed);
 *  - no event arrives once hbone_conn_is_closed() said 1, and by then every
 *    tunnel has had its close event;
 *  - a fatal error leaves a non-empty error detail.
 */
#ifndef HB_FUZZ_CONN_FIXTURE_H
#define HB_FUZZ_CONN_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include <hbone/hbone.h>

#include "conn/conn_testing.h"

/* Decisions the input does not spell out byte by byte (chunk sizes, which
 * step does what) come from a generator seeded by the input: the same input
 * always runs the same way. */
typedef struct cf_rng {
    uint64_t state;
} cf_rng;

void cf_rng_seed(cf_rng *r, uint64_t seed);
uint32_t cf_rng_next(cf_rng *r);
/* Uniform enough in [0, n); 0 when n is 0. */
uint32_t cf_rng_below(cf_rng *r, uint32_t n);

/* Reads control bytes from the front of the input; 0 once it is used up. */
typedef struct cf_cursor {
    const uint8_t *data;
    size_t len, off;
} cf_cursor;

uint8_t cf_byte(cf_cursor *c);
uint16_t cf_u16(cf_cursor *c);

typedef struct cf_tunnel {
    int32_t id;
    int responses; /* client: tunnel_response events */
    int status;    /* client: the response's status */
    int ends, closes;
    uint32_t reason;
    int answered;        /* server: accepted or rejected by the application */
    int accepted;        /* server: answered 200 */
    int shut;            /* the application shut its side down */
    uint64_t received;   /* bytes delivered by tunnel_data */
    uint64_t unconsumed; /* of those, not yet consumed */
    uint64_t written;    /* bytes hbone_conn_tunnel_write accepted */
} cf_tunnel;

typedef struct cf_side {
    hbone_conn *conn;
    int server;
    cf_tunnel *tunnels; /* sorted by id */
    size_t n_tunnels, cap;
    int closed_seen; /* hbone_conn_is_closed() returned 1 */
    int fatal;       /* a call returned a fatal error */
} cf_side;

/* The tunnel with @p id, or NULL if the application never learned of it. */
cf_tunnel *cf_find(cf_side *s, int32_t id);
/* Record a tunnel the application just learned of (request or open). */
cf_tunnel *cf_learn(cf_side *s, int32_t id);
/* The open tunnel an event names; checks the common event invariants. */
cf_tunnel *cf_event(cf_side *s, int32_t id);
/* The common checks of each event, returning the tunnel. */
cf_tunnel *cf_on_data(cf_side *s, int32_t id, size_t len);
cf_tunnel *cf_on_end(cf_side *s, int32_t id);
cf_tunnel *cf_on_close(cf_side *s, int32_t id, uint32_t reason);
/* The @p i-th tunnel still open (wrapping), or NULL if none is. */
cf_tunnel *cf_pick_open(cf_side *s, uint32_t i);

/* Check a connection call's result: 0 or one of @p allowed (a list ended by
 * 0), or a fatal error, which must come with a detail. */
void cf_check_result(cf_side *s, int r);

/* Ask hbone_conn_is_closed(); when it says 1, every tunnel must have closed.
 * Returns the answer. */
int cf_poll_closed(cf_side *s);

/* End of the transport, then the final checks: every tunnel the
 * application learned of closed exactly once. Leaves the conn to the
 * caller to delete. */
void cf_finish(cf_side *s);

void cf_side_free(cf_side *s);

/* Configure @p cfg from a flag byte (HTTP/2 windows, limits, timers). */
void cf_configure(hbone_config *cfg, uint8_t flags);

/* A byte of the pattern written on tunnel @p id in direction @p dir (0 client
 * to server) at stream offset @p off: receivers check what arrives. */
static inline uint8_t cf_pattern(int32_t id, int dir, uint64_t off)
{
    return (uint8_t)(off * 167u + (off >> 8) * 29u + (uint64_t)id * 13u + (uint64_t)dir * 101u);
}

#endif /* HB_FUZZ_CONN_FIXTURE_H */
