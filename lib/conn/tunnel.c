/* SPDX-License-Identifier: MIT */
#include "conn/tunnel.h"

#include <string.h>

#include <hbone/error.h>

/* Buffers start small and grow with traffic; a drained one is released, so
 * that an idle tunnel holds none (thousands of them idle on a node proxy;
 * allocating again on the next write costs far less than the write). */
#define OUT_FIRST_CAP 4096

static void free_ring(const hb_mem *mem, uint8_t *ring)
{
    if (ring)
        hb_free(mem, ring - HB_TUNNEL_HEADROOM);
}

static void release_buffer(const hb_mem *mem, hb_tunnel *t)
{
    t->out_head = 0;
    free_ring(mem, t->out);
    t->out = NULL;
    t->out_cap = 0;
}

/* Grow the ring to hold @p need bytes, unwrapping it into the new space. */
static int grow(const hb_mem *mem, hb_tunnel *t, size_t need)
{
    size_t cap = t->out_cap ? t->out_cap : OUT_FIRST_CAP;
    while (cap < need)
        cap *= 2;
    uint8_t *allocation = hb_malloc(mem, HB_TUNNEL_HEADROOM + cap);
    if (!allocation)
        return HBONE_ERR_NOMEM;
    uint8_t *grown = allocation + HB_TUNNEL_HEADROOM;
    if (t->out_len) {
        size_t first = t->out_cap - t->out_head;
        if (first > t->out_len)
            first = t->out_len;
        memcpy(grown, t->out + t->out_head, first);
        memcpy(grown + first, t->out, t->out_len - first);
    }
    free_ring(mem, t->out);
    t->out = grown;
    t->out_cap = cap;
    t->out_head = 0;
    return 0;
}

int hb_tunnel_queue(const hb_mem *mem, hb_tunnel *t, const uint8_t *data, size_t len)
{
    if (len == 0)
        return 0; /* and an empty ring may have no buffer to index */
    if (t->out_cap - t->out_len < len) {
        int r = grow(mem, t, t->out_len + len);
        if (r < 0)
            return r;
    }
    size_t tail = (t->out_head + t->out_len) % t->out_cap;
    size_t first = t->out_cap - tail < len ? t->out_cap - tail : len;
    memcpy(t->out + tail, data, first);
    memcpy(t->out, data + first, len - first);
    t->out_len += len;
    return 0;
}

uint8_t *hb_tunnel_peek(hb_tunnel *t, size_t *len, size_t *room)
{
    *len = *room = 0;
    if (t->out_len == 0)
        return NULL;
    size_t to_end = t->out_cap - t->out_head;
    if (t->out_len > to_end) {
        *len = to_end;
        *room = t->out_cap - t->out_len; /* between the wrapped end and the head */
    } else {
        *len = t->out_len;
        *room = HB_TUNNEL_HEADROOM + t->out_head;
    }
    return t->out + t->out_head;
}

void hb_tunnel_skip(const hb_mem *mem, hb_tunnel *t, size_t n)
{
    t->out_head = (t->out_head + n) % t->out_cap;
    t->out_len -= n;
    if (t->out_len == 0)
        release_buffer(mem, t);
}

size_t hb_tunnel_take(const hb_mem *mem, hb_tunnel *t, uint8_t *buf, size_t cap)
{
    size_t n = t->out_len < cap ? t->out_len : cap;
    if (n == 0)
        return 0;
    size_t first = t->out_cap - t->out_head < n ? t->out_cap - t->out_head : n;
    memcpy(buf, t->out + t->out_head, first);
    memcpy(buf + first, t->out, n - first);
    hb_tunnel_skip(mem, t, n);
    return n;
}

void hb_tunnel_discard(const hb_mem *mem, hb_tunnel *t)
{
    t->out_len = 0;
    release_buffer(mem, t);
}

int hb_tunnel_add_header(const hb_mem *mem, hb_tunnel *t, const uint8_t *name, size_t name_len,
                         const uint8_t *value, size_t value_len)
{
    hb_header *grown = hb_realloc(mem, t->headers, (t->n_headers + 1) * sizeof(*grown));
    if (!grown)
        return HBONE_ERR_NOMEM;
    t->headers = grown;
    hb_header *h = &grown[t->n_headers];
    h->name = hb_strndup(mem, (const char *)name, name_len);
    h->value = hb_strndup(mem, (const char *)value, value_len);
    if (!h->name || !h->value) {
        hb_free(mem, h->name);
        hb_free(mem, h->value);
        return HBONE_ERR_NOMEM;
    }
    h->name_len = name_len;
    h->value_len = value_len;
    t->n_headers++;
    return 0;
}

void hb_tunnel_forget_request(const hb_mem *mem, hb_tunnel *t)
{
    for (size_t i = 0; i < t->n_headers; i++) {
        hb_free(mem, t->headers[i].name);
        hb_free(mem, t->headers[i].value);
    }
    hb_free(mem, t->headers);
    hb_free(mem, t->authority);
    t->headers = NULL;
    t->n_headers = 0;
    t->authority = NULL;
    t->authority_len = 0;
}

void hb_tunnel_free(const hb_mem *mem, hb_tunnel *t)
{
    hb_tunnel_forget_request(mem, t);
    free_ring(mem, t->out);
    hb_free(mem, t);
}
