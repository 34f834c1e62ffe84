/* SPDX-License-Identifier: MIT */
/*
 * hbone-soak: many HBONE tunnels for a long time, with faults on a seeded
 * schedule, every byte checked, and resources back to their baseline at
 * the end. The client side runs in this process; HBONE servers run in
 * forked children on loopback.
 */
#ifndef HBONE_SOAK_H
#define HBONE_SOAK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <hbone/hbone.h>

#define SOAK_SERVER_ID "spiffe://cluster.local/ns/default/sa/server"
#define SOAK_TRUST_DOMAIN "cluster.local"

/* The CONNECT port tells a server what to do with a tunnel, so that the
 * server needs no state shared with the client beyond the stream itself. */
#define PORT_REJECT 1      /* answer 503 */
#define PORT_ECHO 7        /* send everything back, end after the client ends */
#define PORT_SINK 9        /* swallow, then answer count and hash, then end */
#define PORT_RESET 20000   /* + KiB: echo, then reset (CONNECT_ERROR) after that many KiB */
#define RESET_MAX_KIB 4096 /* PORT_RESET + RESET_MAX_KIB stays below 65536 */

#define CODE_CANCEL 0x8
#define CODE_CONNECT_ERROR 0xa
#define CODE_REFUSED_STREAM 0x7

/* --- small helpers (util.c) ------------------------------------------------ */

uint64_t rng_next(uint64_t *state);
uint64_t rng_below(uint64_t *state, uint64_t n); /* 0 .. n-1; n > 0 */
/* The bytes of a tunnel's stream at @p offset: a function of the tunnel's
 * seed and the offset only, so both ends and any retry agree. */
void pattern_fill(uint64_t seed, uint64_t offset, uint8_t *buf, size_t len);
#define HASH_INIT 0xcbf29ce484222325ull
uint64_t hash_update(uint64_t h, const uint8_t *p, size_t n);
void put_u64(uint8_t *p, uint64_t v);
uint64_t get_u64(const uint8_t *p);

_Noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void *xcalloc(size_t n, size_t size);
int count_open_fds(void);
uint64_t rss_bytes(void);

/* Counting allocator handed to hbone_config_new(): libhbone's and
 * nghttp2's allocations for connections made with that config go here. */
typedef struct mem_counter {
    uint64_t allocs, frees;
    uint64_t live_bytes, peak_bytes;
} mem_counter;
hbone_mem *mem_counter_hook(mem_counter *counter);

/* --- PKI and configs (pki.c) ------------------------------------------------ */

/* Server certificate generations alternate between the "server" leaf (EC
 * root A) and "server-next" (RSA root): same SPIFFE ID, different chains. */
hbone_config *config_server(const char *pki_dir, int generation, mem_counter *mem);
hbone_config *config_client(const char *pki_dir, mem_counter *mem);
/* A client that trusts only the root of @p generation's server chain. */
hbone_config *config_probe(const char *pki_dir, int generation, mem_counter *mem);

/* --- event loop (loop.c) ----------------------------------------------------- */

typedef struct source source;
struct source {
    int fd;
    uint32_t events; /* EPOLL* currently asked for */
    int removed;
    void (*handle)(source *s, uint32_t ready);
};

void loop_init(void); /* also in a forked child: forgets the parent's loop */
void loop_fini(void);
void loop_add(source *s, uint32_t events);
void loop_update(source *s, uint32_t events);
void loop_remove(source *s);
void loop_free_later(void *p); /* freed after the current round's events */
/* Wait at most @p timeout_ms (-1: forever) and dispatch one batch. */
void loop_round(int timeout_ms);
uint64_t now_ms(void);
int io_bits(uint32_t epoll_events);
uint32_t epoll_bits(int io_events);

/* --- server processes (server.c, servers.c) -------------------------------- */

typedef struct server_stats {
    uint64_t tunnels, cancels, connect_errors, lost, refused_by_drain;
    uint64_t handshake_failures, failures;
    uint64_t live_allocs; /* allocations not freed at its exit */
    int fds_leaked;
} server_stats;

typedef struct server_proc server_proc;
struct server_proc {
    source ctl;
    pid_t pid;
    uint16_t port;
    char address[32];
    int index;
    int generation;
    int alive, killed, quitting, exited;
    int rotating;       /* waiting for its 'R' */
    int drain_pending;  /* told to drain, 'D' not yet back */
    int conns, tunnels; /* client connections / tunnels on it now */
    /* What its stats must say, if it lives to report them. */
    uint64_t expect_cancels, expect_connect_errors, expect_handshake_failures;
    uint64_t aborted_connects; /* closed before the handshake: no fault of its */
    char line[256];
    size_t line_len;
    int have_stats;
    server_stats stats;
    server_proc *next;
};

_Noreturn void server_main(int listen_fd, int ctl_fd, const char *pki_dir, int generation);
server_proc *servers_spawn(int generation);
void servers_kill(server_proc *s);
void servers_send(server_proc *s, char command);
extern server_proc *server_list;
extern char self_path[4096]; /* this program, for the servers' exec */

/* --- client connections and tunnels (client.c, tunnel.c) --------------------- */

typedef struct ctunnel ctunnel;
typedef struct cconn cconn;

struct cconn {
    source src;
    hbone_conn *conn;
    hbone_io *io;
    server_proc *srv;
    int connecting, ready, usable, draining, probe, probe_expect_ok, probe_reported, done;
    int server_draining; /* its server was told to drain: an end is expected */
    int dirty;           /* tunnel writes wait to be sent */
    int n_tunnels;
    ctunnel *tunnels;
    cconn *next;
};

extern cconn *conn_list;
cconn *conn_open(server_proc *srv, hbone_config *cfg, int probe, int probe_expect_ok);
void conn_drain(cconn *cc);
void conns_flush(void);
void conns_maintain(void);
void conns_fill(uint64_t *plan_rng);
void client_callbacks_free(void);
int conns_timeout(uint64_t now);
void conns_run_timers(uint64_t now);
hbone_callbacks *client_callbacks(void);

enum { S_ECHO, S_SINK, S_RESET_CLIENT, S_RESET_SERVER, S_REJECT, S_KINDS };

struct ctunnel {
    cconn *cc;
    int32_t id;
    int kind;
    uint64_t seed, rng;
    uint64_t size;      /* bytes the client writes in all */
    uint64_t stop_at;   /* client reset: reset once this many are written */
    uint64_t reset_kib; /* server reset: the server resets after this many KiB */
    uint32_t reset_code;
    uint64_t sent, received, hash_sent;
    uint8_t reply[16];
    size_t reply_len;
    int status, shut, ended, reset_sent, want_write, failed;
    uint64_t last_progress;
    ctunnel *prev, *next;
};

void tunnel_plan(ctunnel *t, uint64_t *rng);
int tunnel_start(ctunnel *t, cconn *cc);
void tunnel_pump(ctunnel *t);
void tunnel_on_response(ctunnel *t, int status);
void tunnel_on_data(ctunnel *t, const uint8_t *data, size_t len);
void tunnel_on_end(ctunnel *t);
void tunnel_on_writable(ctunnel *t);
void tunnel_on_close(ctunnel *t, uint32_t reason); /* frees it */
void tunnels_watchdog(uint64_t now);
const char *tunnel_kind_name(int kind);

/* --- the run (main.c, faults.c) --------------------------------------------- */

typedef struct soak_options {
    unsigned tunnels, connections, servers;
    unsigned duration_s;
    uint64_t seed;
    unsigned fault_interval_ms;
    unsigned rss_slack_mib; /* 0: do not check RSS */
    uint64_t max_size;
    const char *pki_dir;
    int verbose;
} soak_options;

typedef struct soak_stats {
    uint64_t started, finished[S_KINDS], lost, retried, failures;
    uint64_t bytes_sent, bytes_verified;
    uint64_t resets_expected, resets_seen, resets_lost;
    uint64_t kills, spawns, client_drains, server_drains, rotations;
    uint64_t probes_ok, probes_rejected, probes_skipped;
    uint64_t conns_opened, conns_failed_expected, connect_retries;
} soak_stats;

extern soak_options opt;
extern soak_stats stats;
extern int generation; /* current server certificate generation */
extern hbone_config *client_cfg, *probe_cfg[2];
extern unsigned active_tunnels;
extern int stopping; /* the duration is over: no new tunnels or faults */

/* Record a failure (printed at once, counted in the summary). */
void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

void faults_init(uint64_t seed, uint64_t start);
int faults_timeout(uint64_t now);
void faults_run(uint64_t now);
void faults_on_rotated(server_proc *s);
void faults_on_probe_done(cconn *cc, int handshake_ok);
int faults_busy(void);
/* How a probe trusting only the old root was refused (the first one). */
const char *faults_reject_detail(void);

#endif /* HBONE_SOAK_H */
