/* SPDX-License-Identifier: MIT */
#include "conn_fixture.h"

#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

void cf_rng_seed(cf_rng *r, uint64_t seed)
{
    r->state = seed ^ 0x9e3779b97f4a7c15u;
}

uint32_t cf_rng_next(cf_rng *r)
{
    /* splitmix64: tiny, and every seed gives a usable sequence. */
    uint64_t z = (r->state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return (uint32_t)((z ^ (z >> 31)) >> 32);
}

uint32_t cf_rng_below(cf_rng *r, uint32_t n)
{
    return n ? cf_rng_next(r) % n : 0;
}

uint8_t cf_byte(cf_cursor *c)
{
    return c->off < c->len ? c->data[c->off++] : 0;
}

uint16_t cf_u16(cf_cursor *c)
{
    uint16_t hi = cf_byte(c);
    return (uint16_t)(hi << 8 | cf_byte(c));
}

/* Index of the first tunnel with an id >= @p id. */
static size_t lower_bound(const cf_side *s, int32_t id)
{
    size_t lo = 0, hi = s->n_tunnels;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->tunnels[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

cf_tunnel *cf_find(cf_side *s, int32_t id)
{
    size_t i = lower_bound(s, id);
    return i < s->n_tunnels && s->tunnels[i].id == id ? &s->tunnels[i] : NULL;
}

cf_tunnel *cf_learn(cf_side *s, int32_t id)
{
    FUZZ_CHECK(id > 0);
    /* A server sees client streams (odd), a client opens its own (odd too). */
    FUZZ_CHECK(id % 2 == 1);
    FUZZ_CHECK(!s->closed_seen);
    size_t i = lower_bound(s, id);
    /* A stream id is never used twice on a connection. */
    FUZZ_CHECK(i == s->n_tunnels || s->tunnels[i].id != id);
    if (s->n_tunnels == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        cf_tunnel *grown = realloc(s->tunnels, cap * sizeof(*grown));
        FUZZ_CHECK(grown != NULL);
        s->tunnels = grown;
        s->cap = cap;
    }
    memmove(&s->tunnels[i + 1], &s->tunnels[i], (s->n_tunnels - i) * sizeof(*s->tunnels));
    s->n_tunnels++;
    memset(&s->tunnels[i], 0, sizeof(s->tunnels[i]));
    s->tunnels[i].id = id;
    return &s->tunnels[i];
}

cf_tunnel *cf_event(cf_side *s, int32_t id)
{
    FUZZ_CHECK(!s->closed_seen);
    cf_tunnel *t = cf_find(s, id);
    FUZZ_CHECK(t != NULL);
    FUZZ_CHECK(t->closes == 0);
    return t;
}

cf_tunnel *cf_on_data(cf_side *s, int32_t id, size_t len)
{
    cf_tunnel *t = cf_event(s, id);
    FUZZ_CHECK(len > 0);
    FUZZ_CHECK(t->ends == 0); /* nothing after the peer's end */
    t->received += len;
    t->unconsumed += len;
    return t;
}

cf_tunnel *cf_on_end(cf_side *s, int32_t id)
{
    cf_tunnel *t = cf_event(s, id);
    FUZZ_CHECK(t->ends == 0);
    t->ends++;
    return t;
}

cf_tunnel *cf_on_close(cf_side *s, int32_t id, uint32_t reason)
{
    cf_tunnel *t = cf_event(s, id);
    t->closes++;
    t->reason = reason;
    /* Other calls on the closing tunnel are refused. */
    FUZZ_CHECK(hbone_conn_tunnel_consume(s->conn, id, 0) == HBONE_ERR_NOT_FOUND);
    return t;
}

cf_tunnel *cf_pick_open(cf_side *s, uint32_t i)
{
    if (s->n_tunnels == 0)
        return NULL;
    for (size_t k = 0; k < s->n_tunnels; k++) {
        cf_tunnel *t = &s->tunnels[(i + k) % s->n_tunnels];
        if (!t->closes)
            return t;
    }
    return NULL;
}

void cf_check_result(cf_side *s, int r)
{
    if (r >= 0)
        return;
    FUZZ_CHECK(hbone_err_is_fatal(r));
    const char *detail = hbone_conn_error_detail(s->conn);
    FUZZ_CHECK(detail != NULL && detail[0] != '\0');
    /* Sticky: the connection says the same again. */
    size_t consumed = 1;
    FUZZ_CHECK(hbone_conn_input(s->conn, NULL, 0, &consumed, 0) == r && consumed == 0);
    s->fatal = 1;
}

int cf_poll_closed(cf_side *s)
{
    if (!hbone_conn_is_closed(s->conn))
        return 0;
    if (!s->closed_seen) {
        /* Deleting it now must not silently drop tunnels the application
         * still holds: each must have had its close event. */
        for (size_t i = 0; i < s->n_tunnels; i++)
            FUZZ_CHECK(s->tunnels[i].closes == 1);
        s->closed_seen = 1;
    }
    return 1;
}

void cf_finish(cf_side *s)
{
    FUZZ_CHECK(hbone_conn_input_eof(s->conn) == 0);
    for (size_t i = 0; i < s->n_tunnels; i++)
        FUZZ_CHECK(s->tunnels[i].closes == 1);
    /* And nothing is open any more. */
    int32_t id;
    int r = hbone_conn_tunnel_open(s->conn, "10.0.0.1:80", 11, NULL, NULL, NULL, NULL, 0, &id);
    FUZZ_CHECK(r == HBONE_ERR_INVALID_STATE);
}

void cf_side_free(cf_side *s)
{
    free(s->tunnels);
    s->tunnels = NULL;
    s->n_tunnels = s->cap = 0;
}

void cf_configure(hbone_config *cfg, uint8_t flags)
{
    /* There is no TLS handshake to time: a plaintext conn completes it on
     * its first input or output call, which a program may put after a long
     * clock jump. */
    FUZZ_CHECK(hbone_config_set_handshake_timeout(cfg, 0) == 0);
    /* Keepalive off unless asked for: ztunnel's 10 s would rarely fire. */
    FUZZ_CHECK(hbone_config_set_keepalive(cfg, flags & 0x01 ? 1000 : 0, 2000) == 0);
    /* The idle and stall timeouts together, short enough to fire; off
     * otherwise (a stall timeout of 5 minutes would end some programs'
     * connections after a long clock jump with output left unmoved). */
    if (flags & 0x02)
        FUZZ_CHECK(hbone_config_set_idle_timeout(cfg, 500) == 0);
    FUZZ_CHECK(hbone_config_set_stall_timeout(cfg, flags & 0x02 ? 2000 : 0) == 0);
    if (flags & 0x04) {
        /* Small windows and frames: flow control and framing limits are
         * reached with inputs of a few kilobytes. */
        FUZZ_CHECK(hbone_config_set_http2(cfg, 65535, 65535, 16384, 4) == 0);
    }
    if (flags & 0x08)
        FUZZ_CHECK(hbone_config_set_max_header_list_size(cfg, 1024) == 0);
    if (flags & 0x10)
        FUZZ_CHECK(hbone_config_set_buffer_limits(cfg, 16 * 1024, 64 * 1024) == 0);
    if (flags & 0x20)
        FUZZ_CHECK(hbone_config_set_flood_limit(cfg, 10, 1) == 0);
    if (flags & 0x40)
        FUZZ_CHECK(hbone_config_set_hostname_authority(cfg, 1) == 0);
}
