/* SPDX-License-Identifier: MIT */
/* A tunnel (one CONNECT stream) as the connection tracks it. */
#ifndef HB_CONN_TUNNEL_H
#define HB_CONN_TUNNEL_H

#include <stddef.h>
#include <stdint.h>

#include "common/mem.h"

typedef struct hb_header {
    char *name;
    size_t name_len;
    char *value;
    size_t value_len;
} hb_header;

typedef struct hb_tunnel {
    struct hb_tunnel *prev, *next;
    int32_t id;
    void *user_data;
    unsigned visible : 1;       /* the application knows this id */
    unsigned answered : 1;      /* final response sent (server) or received (client) */
    unsigned established : 1;   /* 200: data may flow */
    unsigned local_shut : 1;    /* our FIN is queued */
    unsigned deferred : 1;      /* nghttp2 waits for data from us */
    unsigned want_writable : 1; /* a write returned AGAIN */
    unsigned bad_request : 1;   /* server: not a CONNECT we will serve */
    unsigned peer_ended : 1;
    unsigned resetting : 1; /* reset by the HTTP/2 layer: nothing more to do */
    unsigned closing : 1;   /* its close event is being delivered */
    unsigned stalled : 1;   /* we reset it: the peer took nothing for too long */
    int status;             /* client: :status being received */
    size_t unconsumed;      /* delivered, not yet consumed by the application */
    uint64_t waiting_since; /* bytes queued and none taken since (0: not waiting) */
    /* Bytes the application wrote, not yet framed: a ring, so that taking
     * from the front never moves what is left. Its allocation starts
     * HB_TUNNEL_HEADROOM bytes before out. */
    uint8_t *out;
    size_t out_head, out_len, out_cap;
    /* Server: the request, kept until it is answered. */
    char *authority;
    size_t authority_len;
    hb_header *headers;
    size_t n_headers;
    size_t header_bytes;
} hb_tunnel;

/* Free bytes kept in front of the ring, so that there is always room for
 * an HTTP/2 frame header right before the first queued byte of an
 * unwrapped ring (see hb_tunnel_peek). */
#define HB_TUNNEL_HEADROOM 16

/* Append bytes to the tunnel's outgoing buffer, growing it. */
int hb_tunnel_queue(const hb_mem *mem, hb_tunnel *t, const uint8_t *data, size_t len);
/* Move up to @p cap queued bytes into @p buf; returns the count. */
size_t hb_tunnel_take(const hb_mem *mem, hb_tunnel *t, uint8_t *buf, size_t cap);
/* The queued bytes in place: returns the first one (NULL when none are
 * queued); *@p len receives how many follow it contiguously, *@p room how
 * many free bytes directly precede it, which may be written. */
uint8_t *hb_tunnel_peek(hb_tunnel *t, size_t *len, size_t *room);
/* Drop @p n queued bytes from the front (n <= hb_tunnel_pending). */
void hb_tunnel_skip(const hb_mem *mem, hb_tunnel *t, size_t n);
static inline size_t hb_tunnel_pending(const hb_tunnel *t)
{
    return t->out_len;
}
/* Forget what is queued (a refused tunnel sends nothing). */
void hb_tunnel_discard(const hb_mem *mem, hb_tunnel *t);
/* Record one request header (copied). */
int hb_tunnel_add_header(const hb_mem *mem, hb_tunnel *t, const uint8_t *name, size_t name_len,
                         const uint8_t *value, size_t value_len);
/* Drop the stored request (after it was answered). */
void hb_tunnel_forget_request(const hb_mem *mem, hb_tunnel *t);
void hb_tunnel_free(const hb_mem *mem, hb_tunnel *t);

#endif /* HB_CONN_TUNNEL_H */
