/* SPDX-License-Identifier: MIT */
/*
 * A libhbone client and server connection wired together in memory, with a
 * virtual clock: ciphertext moves between them in random chunks and partial
 * writes, and each side's application (callbacks) records what it saw of
 * every tunnel, answers requests, echoes or holds back as a test asks.
 */
#ifndef HB_CONN_PAIR_H
#define HB_CONN_PAIR_H

#include <stddef.h>
#include <stdint.h>

#include <hbone/hbone.h>

#include "testlib.h"

#define SERVER_ID "spiffe://cluster.local/ns/default/sa/server"
#define MAX_TUNNELS 128

/* What one side saw of one tunnel. */
struct tunnel_log {
    int32_t id;
    int requested, status, ended, closed, writable;
    uint32_t reason;
    char host[64];
    uint16_t port;
    int kind;
    char first_header[64];
    size_t received;
    uint32_t checksum; /* of received bytes, in order */
};

struct side {
    hbone_conn *conn;
    int handshakes;
    struct tunnel_log tunnels[MAX_TUNNELS];
    size_t n_tunnels;
    int consume_later;  /* do not credit received bytes in the data callback */
    int auto_answer;    /* server: 0 leave pending, 200 accept, else reject */
    int echo;           /* server: write back what arrives, shut down on end */
    size_t big_header;  /* server: accept with a header field this large */
    int tolerate_nomem; /* allocation-failure tests: see app_call */
    int app_errors;     /* ... and what failed */
};

struct pair {
    struct side client, server;
    unsigned seed;
    uint64_t now; /* the virtual clock, in ms */
    /* Ciphertext in flight, as a TCP stream would hold it. */
    tl_counting unused;
    uint8_t *to_server, *to_client;
    size_t to_server_len, to_client_len;
};

/* Options for the next pair_init(), reset by the test once it has run. */
/* HTTP/2 settings for both sides' configs, or 0 for the defaults; an idle
 * timeout (which also turns keepalive off). */
extern uint32_t pair_stream_window, pair_max_streams, pair_idle_ms, pair_client_header_list;
/* A stall timeout for both sides (keepalive off, so only its timers run),
 * or -1 for the default. */
extern long pair_stall_ms;
/* The client's buffer limits, or 0 for the defaults. */
extern uint32_t pair_tunnel_buffer, pair_connection_buffer;
/* An allocator for both sides' configs, or NULL for the C library's. */
extern const hbone_mem *pair_mem;

/* The client expects the server to be @p expected; @p seed drives the
 * chunking. */
void pair_init(struct pair *p, const char *expected, unsigned seed);
/* The same with configs of the caller's (the pair takes its own
 * references); the options above do not apply. */
void pair_start(struct pair *p, hbone_config *ccfg, hbone_config *scfg, const char *expected,
                unsigned seed);
void pair_free(struct pair *p);
/* What @p s saw of tunnel @p id (a new, empty log the first time). */
struct tunnel_log *log_of(struct side *s, int32_t id);
/* Move bytes both ways until nothing moves. Errors are returned per side
 * (NULL: any error fails the test). */
void pump(struct pair *p, int *client_err, int *server_err);
/* Open a tunnel from the client (with two extra headers), or fail. */
int32_t open_tunnel(struct pair *p, const char *authority);
/* Write all of @p len pattern bytes, pumping whenever the tunnel is full;
 * *@p sum follows what was written. */
void write_all(struct pair *p, struct side *s, int32_t id, size_t len, uint32_t *sum);
/* Tunnel @p id carried @p len bytes (checksum @p sum) to an echoing server
 * and all of them back, each side saw the other's end once, and both
 * closed it cleanly. */
void assert_echoed_and_closed(struct pair *p, int32_t id, size_t len, uint32_t sum);
/* Advance the virtual clock to the next expiry of either side, run it. */
void advance_to_expiry(struct pair *p, int *client_err, int *server_err);
/* Write to @p id from @p s until the tunnel takes no more. */
void fill_until_full(struct pair *p, struct side *s, int32_t id);
/* Move 16 KiB over @p canary from @p writer to @p reader (whose application
 * consumes only when told: it does so here). */
void move_canary(struct pair *p, struct side *writer, struct side *reader, int32_t canary,
                 uint32_t *sum);

#endif /* HB_CONN_PAIR_H */
