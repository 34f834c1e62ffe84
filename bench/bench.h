/* SPDX-License-Identifier: MIT */
/*
 * hbone-bench: the same workloads over HBONE and over its baselines (plain
 * TCP, raw TLS 1.3 with the same wolfSSL build, nghttpx as an independent
 * HBONE server), client and server in separate processes over loopback.
 *
 * Every transport offers byte streams ("channels") with the same small
 * interface, so each workload is written once and runs over all of them.
 */
#ifndef HBONE_BENCH_H
#define HBONE_BENCH_H

#include <stddef.h>
#include <stdint.h>

/* --- channels ------------------------------------------------------------ */

typedef struct channel channel;

typedef struct channel_ops {
    /* Take up to @p len bytes; *accepted says how many. 0, or -1 when the
     * channel takes nothing now (on_writable follows). */
    int (*write)(channel *ch, const uint8_t *data, size_t len, size_t *accepted);
    /* Received bytes were processed (HBONE credits the peer's window). */
    void (*consume)(channel *ch, size_t len);
    /* No more writes: FIN / END_STREAM once the queued bytes left. */
    void (*shutdown)(channel *ch);
    /* Close the connection under the channel (after this round): its
     * channels go without events. */
    void (*close_connection)(channel *ch);
} channel_ops;

struct channel {
    const channel_ops *ops;
    void *transport; /* the transport's own state */
    /* Set by the workload. */
    void (*on_open)(channel *ch, int ok); /* client: established, or failed */
    void (*on_data)(channel *ch, const uint8_t *data, size_t len);
    void (*on_writable)(channel *ch);
    void (*on_end)(channel *ch); /* the peer's FIN */
    void (*on_close)(channel *ch);
    void *app;
};

/* --- transports ------------------------------------------------------------ */

typedef enum transport_kind {
    TRANSPORT_TCP,
    TRANSPORT_TLS,    /* raw TLS 1.3, mutual auth, same wolfSSL build and certs */
    TRANSPORT_HBONE,  /* libhbone */
    TRANSPORT_NGHTTPX /* libhbone client -> nghttpx -> HTTP/1.1 CONNECT backend */
} transport_kind;

const char *transport_name(transport_kind kind);

typedef struct bench_pki {
    const char *dir; /* server.chain.pem, server.key, client.*, bundle-cluster.local.pem */
} bench_pki;

/* Process-wide setup of a transport kind (loads certificates). */
int transport_init(transport_kind kind, const bench_pki *pki);
void transport_cleanup(void);

/* Server: serve channels on @p listen_fd until the process is told to stop;
 * each new channel is handed to server_workload_attach(). */
void transport_serve(transport_kind kind, int listen_fd);

/* Client: open @p n channels to @p address over @p conns connections
 * (TCP and TLS: one channel per connection). Each channel is handed to
 * @p attach before it opens; on_open reports the outcome. */
int transport_open(transport_kind kind, const char *address, size_t conns, size_t n,
                   void (*attach)(channel *ch, size_t index, void *arg), void *arg);
/* Close every client connection of this process. */
void transport_close_all(void);
/* HBONE: open @p n more tunnels on the client connections already open. */
int hbone_transport_open_more(size_t n, void (*attach)(channel *ch, size_t index, void *arg),
                              void *arg);

/* The two families behind those: sockets (TCP, TLS) and HBONE. */
int stream_transport_init(transport_kind kind, const bench_pki *pki);
void stream_transport_serve(int listen_fd);
int stream_transport_open(const char *address, size_t n,
                          void (*attach)(channel *ch, size_t index, void *arg), void *arg);
void stream_transport_close_all(void);
int hbone_transport_init(const bench_pki *pki);
void hbone_transport_serve(int listen_fd);
int hbone_transport_open(const char *address, size_t conns, size_t n,
                         void (*attach)(channel *ch, size_t index, void *arg), void *arg);
void hbone_transport_close_all(void);

/* Read a whole file (NUL-terminated); dies if it cannot. */
char *bench_read_file(const char *dir, const char *name, size_t *len);

/* One side's credentials from the PKI: @p leaf "server" or "client". */
typedef struct bench_creds {
    char *chain, *key, *bundle;
    size_t chain_len, key_len, bundle_len;
} bench_creds;
void bench_creds_load(bench_creds *c, const bench_pki *pki, const char *leaf);
void bench_creds_free(bench_creds *c);

/* --- the event loop ------------------------------------------------------------ */

typedef struct loop_source loop_source;
struct loop_source {
    int fd;
    uint32_t events; /* EPOLLIN / EPOLLOUT, kept in sync by loop_update */
    void (*handle)(loop_source *s, uint32_t ready); /* ready 0: the timer */
    /* Called once per loop round after events (flush batched output). */
    void (*flush)(loop_source *s);
    uint64_t deadline_us; /* timer, 0: none (only for sources added as timed) */
    /* Loop bookkeeping. */
    int timed, removed, flush_pending;
    loop_source *next_dirty;
};

int loop_init(void);
/* Watch @p s->fd; @p timed: s->deadline_us is honoured. */
int loop_add(loop_source *s, uint32_t events, int timed);
void loop_update(loop_source *s, uint32_t events);
/* Stop watching; the source's memory must live until the round ends:
 * free it with loop_free_later(). */
void loop_remove(loop_source *s);
void loop_free_later(void *p);
/* Ask for s->flush at the end of this round. */
void loop_mark_dirty(loop_source *s);
/* Run rounds until *done is non-zero or @p deadline_us passes (0: none).
 * Returns 0, or -1 on timeout. */
int loop_run_until(const int *done, uint64_t deadline_us);
/* The time this round of the loop started handling events (what handlers
 * pass on as "now"). */
uint64_t loop_now_us(void);
/* Sources watched now (removed ones no longer count). */
size_t loop_source_count(void);
/* If set, called at the end of every round, once removed sources' memory
 * is released. */
extern void (*loop_round_hook)(void);
/* A server: call @p on_ready whenever @p listen_fd can accept, forever. */
void loop_serve(int listen_fd, void (*on_ready)(loop_source *s, uint32_t ready))
    __attribute__((noreturn));

/* Write all @p len bytes at once or die: the small requests that start a
 * workload always fit in an empty channel. */
void channel_write_all(channel *ch, const void *data, size_t len);

/* --- server workloads ------------------------------------------------------------ */

/* A server channel's first byte picks its behaviour: */
#define WORK_SINK 'S'     /* + 8-byte length: read that much, answer the 8-byte count */
#define WORK_ECHO 'E'     /* send back everything; end when the client ends */
#define WORK_DOWNLOAD 'D' /* followed by an 8-byte length: send that many bytes, end */

void server_workload_attach(channel *ch);
/* nghttpx's backend first receives each tunnel as an HTTP/1.1 CONNECT. */
extern int server_http1_preamble;

/* --- helpers ------------------------------------------------------------ */

uint64_t now_us(void);
/* A buffer of pseudo-random bytes to send, BENCH_PATTERN bytes long. */
#define BENCH_PATTERN (1024 * 1024)
const uint8_t *bench_pattern(void);
void put_u64(uint8_t *p, uint64_t v);
uint64_t get_u64(const uint8_t *p);
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
