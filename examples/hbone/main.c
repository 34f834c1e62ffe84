/* SPDX-License-Identifier: MIT */
/*
 * hbone: HBONE tunnels from the command line.
 *
 *   hbone serve   --listen ADDR:PORT TLS... [--allow ID]... [--echo]
 *                 [--max-handshakes N] [--max-connections N]
 *                 [--max-dials N] [--max-dials-per-peer N] [--dial-timeout MS]
 *                 [--idle-timeout MS]
 *   hbone connect --peer ADDR:PORT --authority HOST:PORT --expect-id ID TLS...
 *                 [--header 'name: value']...
 *   hbone forward --listen ADDR:PORT --peer ADDR:PORT --authority HOST:PORT
 *                 --expect-id ID TLS...
 *   TLS: --cert CHAIN.pem --key KEY.pem --ca BUNDLE.pem [--trust-domain TD]
 *
 * Built on libhbone's public API and its io layer; one thread, one poll()
 * loop (loop.c), tunnels piped to sockets or stdio (pipe.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <ifaddrs.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <hbone/hbone.h>

#include "loop.h"
#include "pipe.h"

#define MAX_LIST 32
#define EXIT_USAGE 2
#define EXIT_TLS 3    /* TLS or identity failure */
#define EXIT_STATUS 4 /* the server answered something other than 200 */
#define EXIT_RESET 5  /* the tunnel was reset or the connection lost */

struct options {
    const char *listen, *peer, *authority, *expect_id;
    const char *cert, *key, *ca, *trust_domain;
    const char *allow[MAX_LIST];
    size_t n_allow;
    const char *headers[MAX_LIST];
    size_t n_headers;
    int echo;
    unsigned max_handshakes, max_connections; /* serve; 0 until given */
    unsigned max_dials, max_dials_per_peer;   /* serve; 0 until given */
    unsigned dial_timeout_ms;                 /* serve; 0 until given */
    long idle_timeout_ms;                     /* serve; -1 until given, 0: never */
};

static const char *command = "hbone";

__attribute__((format(printf, 1, 2), noreturn)) static void fail_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "hbone %s: ", command);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(try hbone %s --help)\n", command);
    va_end(ap);
    exit(EXIT_USAGE);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "hbone %s: cannot read %s: %s\n", command, path, strerror(errno));
        exit(1);
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        char *grown = realloc(buf, cap *= 2);
        if (!grown)
            free(buf);
        buf = grown;
    }
    fclose(f);
    if (!buf) {
        fprintf(stderr, "hbone %s: out of memory reading %s\n", command, path);
        exit(1);
    }
    *len = n;
    return buf;
}

/* The mTLS config from --cert, --key, --ca and --trust-domain. */
static hbone_config *load_config(const struct options *o)
{
    if (!o->cert || !o->key || !o->ca)
        fail_usage("%s", "--cert, --key and --ca are required");
    hbone_config *cfg;
    if (hbone_config_new(&cfg, NULL) < 0)
        exit(1);
    size_t chain_len, key_len, ca_len;
    char *chain = read_file(o->cert, &chain_len), *key = read_file(o->key, &key_len);
    char *ca = read_file(o->ca, &ca_len);
    int r = hbone_config_set_certificate(cfg, chain, chain_len, key, key_len);
    if (r < 0) {
        fprintf(stderr, "hbone %s: %s / %s: %s\n", command, o->cert, o->key,
                hbone_config_error_detail(cfg));
        exit(1);
    }
    /* The bundle belongs to our own trust domain unless told otherwise. */
    size_t td_len;
    const char *td = o->trust_domain;
    if (td)
        td_len = strlen(td);
    else
        td = hbone_spiffe_id_trust_domain(hbone_config_identity(cfg), &td_len);
    r = hbone_config_add_trust_bundle(cfg, td, td_len, ca, ca_len);
    if (r == 0 && o->trust_domain)
        r = hbone_config_accept_trust_domain(cfg, td, td_len);
    if (r < 0) {
        fprintf(stderr, "hbone %s: %s: %s\n", command, o->ca, hbone_config_error_detail(cfg));
        exit(1);
    }
    free(chain);
    free(key);
    free(ca);
    return cfg;
}

/* --- one HBONE connection in the loop -------------------------------------- */

struct conn_watch;

/* Server connections still in their TLS handshake, oldest first: the ones
 * to close when the handshake limit is reached (serve_accepted). */
struct handshake_queue {
    struct conn_watch *oldest, *newest;
};

struct conn_watch {
    watcher w;
    hbone_conn *conn; /* its user data is this watcher */
    hbone_io *io;
    const struct options *o;
    void *app; /* the command's state */
    void (*on_closed)(struct conn_watch *cw);
    struct handshake_queue *queue; /* the one it is on, else NULL */
    struct conn_watch *older, *newer;
};

static void queue_push(struct handshake_queue *q, struct conn_watch *cw)
{
    cw->queue = q;
    cw->older = q->newest;
    cw->newer = NULL;
    if (q->newest)
        q->newest->newer = cw;
    else
        q->oldest = cw;
    q->newest = cw;
}

/* Off its queue, if on one. */
static void queue_remove(struct conn_watch *cw)
{
    struct handshake_queue *q = cw->queue;
    if (!q)
        return;
    if (cw->older)
        cw->older->newer = cw->newer;
    else
        q->oldest = cw->newer;
    if (cw->newer)
        cw->newer->older = cw->older;
    else
        q->newest = cw->older;
    cw->queue = NULL;
    cw->older = cw->newer = NULL;
}

static short conn_events(watcher *w, uint64_t now, int *timeout_ms)
{
    struct conn_watch *cw = w->ctx;
    *timeout_ms = hbone_io_timeout_ms(cw->io, now);
    int ev = hbone_io_events(cw->io, now);
    return (short)((ev & HBONE_IO_READ ? POLLIN : 0) | (ev & HBONE_IO_WRITE ? POLLOUT : 0));
}

static int conn_handle(watcher *w, short revents, uint64_t now)
{
    struct conn_watch *cw = w->ctx;
    int ready = (revents & (POLLIN | POLLHUP | POLLERR) ? HBONE_IO_READ : 0) |
                (revents & POLLOUT ? HBONE_IO_WRITE : 0);
    if (hbone_io_handle(cw->io, ready, now) != HBONE_ERR_CLOSED)
        return 0;
    if (cw->on_closed)
        cw->on_closed(cw);
    return -1;
}

/* Whatever ended it (the peer, a failure, an eviction), nothing of the
 * connection outlives this: its socket, its place among the handshakes, and
 * its slot in the library's counts (given back by hbone_conn_del). */
static void conn_release(watcher *w)
{
    struct conn_watch *cw = w->ctx;
    queue_remove(cw);
    hbone_io_del(cw->io);
    hbone_conn_del(cw->conn);
    free(cw);
}

/* The peer's "a.b.c.d:port" or "[v6]:port", for the log. */
static void peer_address(int fd, char *out, size_t size)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[INET6_ADDRSTRLEN];
    snprintf(out, size, "?"); /* it may already have gone */
    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
        return;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        if (inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host)))
            snprintf(out, size, "%s:%u", host, ntohs(sin->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        if (inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host)))
            snprintf(out, size, "[%s]:%u", host, ntohs(sin6->sin6_port));
    }
}

/*
 * A descriptor held in reserve for when there are none left. accept() then
 * fails (EMFILE, ENFILE) and leaves the connection in the backlog, where it
 * keeps the listener readable: poll() would return at once, forever. Giving
 * up the reserve lets us take that connection and close it: the peer is
 * refused instead of left waiting, and the loop goes back to sleep.
 */
static int reserve_fd = -1;

static void take_reserve(void)
{
    if (reserve_fd < 0)
        reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* Log a connection refused for want of resources, at most once a second
 * (they come in floods), with a count of those left out. */
static void log_refused(int fd, const char *why)
{
    static uint64_t quiet_until;
    static unsigned unlogged;
    uint64_t now = hbone_io_now_ms();
    if (now < quiet_until) {
        unlogged++;
        return;
    }
    char peer[INET6_ADDRSTRLEN + 8];
    peer_address(fd, peer, sizeof(peer));
    fprintf(stderr, "hbone %s: %s, refusing %s (%u more since)\n", command, why, peer, unlogged);
    quiet_until = now + 1000;
    unlogged = 0;
}

/* An HBONE connection on @p fd, driven by the loop. Returns 0, or the error
 * with @p fd left to the caller. */
static int start_conn(struct conn_watch **out, int server, int fd, hbone_config *cfg,
                      const hbone_callbacks *cbs, const struct options *o, void *app)
{
    struct conn_watch *cw = calloc(1, sizeof(*cw));
    if (!cw)
        return HBONE_ERR_NOMEM;
    cw->o = o;
    cw->app = app;
    uint64_t now = hbone_io_now_ms();
    int r = server ? hbone_conn_server_new(&cw->conn, cfg, cbs, cw, now)
                   : hbone_conn_client_new(&cw->conn, cfg, cbs, cw, now);
    if (r == 0)
        r = hbone_io_new(&cw->io, cw->conn, fd);
    if (r < 0) {
        int saved = errno; /* setup_failure() reads it */
        hbone_conn_del(cw->conn);
        free(cw);
        errno = saved;
        return r;
    }
    cw->w = (watcher){fd, conn_events, conn_handle, conn_release, cw};
    loop_add(&cw->w);
    *out = cw;
    return 0;
}

/* Why a connection could not be set up. wolfSSL opens a descriptor to seed
 * each session: its failure reads as out of memory, errno says which. */
static const char *setup_failure(int r, char *buf, size_t size)
{
    int no_fds = errno == EMFILE || errno == ENFILE;
    snprintf(buf, size, "cannot set up a connection: %s",
             no_fds ? "out of file descriptors" : hbone_strerror(r));
    return buf;
}

static hbone_spiffe_id *parse_id(const char *text)
{
    hbone_spiffe_id *id;
    size_t bad = 0;
    int r = hbone_spiffe_id_validate(text, strlen(text), &bad);
    if (r < 0 || hbone_spiffe_id_parse(&id, text, strlen(text), NULL) < 0) {
        fprintf(stderr, "hbone %s: %s is not a SPIFFE ID: %s (at byte %zu)\n", command, text,
                hbone_strerror(r), bad);
        exit(EXIT_USAGE);
    }
    return id;
}

/* A client connection to --peer, expecting --expect-id. */
static struct conn_watch *dial_peer(const struct options *o, hbone_config *cfg,
                                    const hbone_callbacks *cbs, void *app)
{
    if (!o->peer || !o->authority || !o->expect_id)
        fail_usage("%s", "--peer, --authority and --expect-id are required");
    hbone_spiffe_id *id = parse_id(o->expect_id);
    int fd;
    int r = hbone_io_connect(o->peer, strlen(o->peer), &fd);
    if (r == HBONE_ERR_AUTHORITY)
        fail_usage("--peer %s: expected a.b.c.d:port or [ipv6]:port", o->peer);
    struct pollfd pfd = {fd, POLLOUT, 0};
    if (r < 0 || poll(&pfd, 1, 10000) != 1 || hbone_io_connect_result(fd) < 0) {
        fprintf(stderr, "hbone %s: cannot connect to %s: %s\n", command, o->peer,
                r < 0 || pfd.revents ? strerror(errno) : "timed out");
        exit(EXIT_TLS);
    }
    struct conn_watch *cw;
    r = start_conn(&cw, 0, fd, cfg, cbs, o, app);
    if (r < 0) {
        char why[96];
        fprintf(stderr, "hbone %s: %s\n", command, setup_failure(r, why, sizeof(why)));
        exit(1);
    }
    hbone_conn_expect_peer(cw->conn, id);
    hbone_spiffe_id_del(id);
    return cw;
}

/* "name: value" into the parallel arrays hbone_conn_tunnel_open takes. */
static size_t split_headers(const struct options *o, const char **names, size_t *name_lens,
                            const char **values, size_t *value_lens)
{
    for (size_t i = 0; i < o->n_headers; i++) {
        const char *h = o->headers[i], *colon = strchr(h, ':');
        if (!colon || colon == h)
            fail_usage("--header %s: expected 'name: value'", h);
        names[i] = h;
        name_lens[i] = (size_t)(colon - h);
        values[i] = colon + 1 + strspn(colon + 1, " ");
        value_lens[i] = strlen(values[i]);
        for (size_t k = 0; k < name_lens[i]; k++) {
            if (h[k] >= 'A' && h[k] <= 'Z')
                fail_usage("--header %s: HTTP/2 header names are lowercase", h);
        }
    }
    return o->n_headers;
}

static int32_t open_tunnel(struct conn_watch *cw)
{
    const char *names[MAX_LIST], *values[MAX_LIST];
    size_t name_lens[MAX_LIST], value_lens[MAX_LIST];
    size_t n = split_headers(cw->o, names, name_lens, values, value_lens);
    int32_t tunnel;
    int r = hbone_conn_tunnel_open(cw->conn, cw->o->authority, strlen(cw->o->authority), names,
                                   name_lens, values, value_lens, n, &tunnel);
    if (r == HBONE_ERR_AUTHORITY)
        fail_usage("--authority %s: expected ip:port, [ipv6]:port or host:port", cw->o->authority);
    return r < 0 ? -1 : tunnel;
}

/* --- serve: limits ------------------------------------------------------------ */

#define DEFAULT_MAX_HANDSHAKES 128
#define DEFAULT_MAX_CONNECTIONS 1024
#define DEFAULT_MAX_DIALS 256
/* A quarter of the default --max-dials: a peer hoarding dials (CONNECTs into
 * a black hole) must hold four identities to fill every slot, while one
 * workload still has far more than it needs in ordinary use (a dial to a
 * live upstream ends within a round trip). */
#define DEFAULT_MAX_DIALS_PER_PEER 64
#define DEFAULT_DIAL_TIMEOUT_MS 10000
/* Twice ztunnel's client pool, which releases an unused connection after 5
 * minutes: such a client closes first, and a connection that carries nothing
 * yet answers every keepalive PING still gives its --max-connections slot back. */
#define DEFAULT_IDLE_TIMEOUT_MS 600000
#define REFUSAL_LOG_INTERVAL_MS 1000

/* An IP address, as a dial would reach it (see targets_self). */
struct host_addr {
    int family; /* AF_INET or AF_INET6 */
    struct in_addr v4;
    struct in6_addr v6;
};

/* Refusals come in floods (that is what the limits are for): at most one a
 * second is logged, and the log timer reports how many were left out. */
struct refusals {
    uint64_t quiet_until; /* refusals before then are counted, not logged */
    unsigned unlogged;
    const char *what; /* the count's line: "N more <what>" */
};

/* The dials in progress for one peer identity. An entry exists only while
 * its count is above 0, so there are never more than --max-dials of them. */
struct peer_dials {
    struct peer_dials *next;
    unsigned count;
    char id[]; /* the SPIFFE ID in full (up to 2048 bytes), NUL-terminated */
};

/* Every connection costs a TLS session and an fd from its accept, and until
 * its handshake completes the peer has proved nothing: both are capped. Every
 * dial holds a socket until it connects, fails or times out: capped too, in
 * all and for each peer identity. */
struct serve_state {
    watcher log_timer; /* no fd: reports the refusals left out of the log */
    unsigned max_open, max_handshaking;
    unsigned dials, max_dials; /* upstream connects in progress */
    unsigned max_dials_per_peer;
    struct peer_dials *peers; /* those with dials in progress */
    int dial_timeout_ms;
    struct refusals connections, connects, peer_connects, evictions;
    struct handshake_queue handshaking;
    struct host_addr self; /* the listening address */
    int self_any;          /* it is 0.0.0.0 or [::]: every address of the host */
    uint16_t self_port;
};

/* Whether to log a refusal now; if not, it is counted for the log timer. */
static int refusal_logged(struct refusals *r)
{
    uint64_t now = hbone_io_now_ms();
    if (now < r->quiet_until) {
        r->unlogged++;
        return 0;
    }
    r->quiet_until = now + REFUSAL_LOG_INTERVAL_MS;
    return 1;
}

/*
 * Refuse by accepting and closing at once rather than by no longer polling
 * the listener: the refused peer learns it now instead of waiting in the
 * kernel's backlog until its own timeout, the log can name it, and the
 * listener needs no on/off state.
 */
static void refuse(struct serve_state *s, int fd, unsigned count, const char *limit)
{
    if (refusal_logged(&s->connections)) {
        char peer[INET6_ADDRSTRLEN + 8];
        peer_address(fd, peer, sizeof(peer));
        fprintf(stderr, "hbone serve: %u %s (limit), refusing %s\n", count, limit, peer);
    }
    close(fd);
}

/* A CONNECT beyond --max-dials is answered 503 without dialing: otherwise a
 * peer sending CONNECTs to a black hole holds as many sockets as it likes,
 * each for the dial timeout. The refusal has no tunnel line of its own: a
 * flood of them would defeat the rate limit. */
static void refuse_dial(struct serve_state *s, hbone_conn *conn, int conn_fd, const char *authority)
{
    if (!refusal_logged(&s->connects))
        return;
    char peer[INET6_ADDRSTRLEN + 8];
    peer_address(conn_fd, peer, sizeof(peer));
    fprintf(stderr, "hbone serve: %u dials pending (limit), refusing CONNECT %s from %s (%s)\n",
            s->dials, authority, hbone_spiffe_id_str(hbone_conn_peer_id(conn), NULL), peer);
}

/*
 * A CONNECT beyond its peer's share of the dials (--max-dials-per-peer) is
 * answered 503 without dialing: otherwise one peer sending CONNECTs to a
 * black hole holds every dial slot for the dial timeout, and every other
 * peer is refused. The share is the identity's, not the connection's: a
 * workload opening more connections gets no more slots.
 */
static void refuse_peer_dial(struct serve_state *s, const char *peer, unsigned pending, int conn_fd,
                             const char *authority)
{
    if (!refusal_logged(&s->peer_connects))
        return;
    char address[INET6_ADDRSTRLEN + 8];
    peer_address(conn_fd, address, sizeof(address));
    fprintf(stderr,
            "hbone serve: peer %s has %u dials pending (per-peer limit), refusing CONNECT %s "
            "from %s\n",
            peer, pending, authority, address);
}

static void refusals_due(const struct refusals *r, uint64_t now, int *timeout_ms)
{
    if (!r->unlogged)
        return;
    int t = now < r->quiet_until ? (int)(r->quiet_until - now) : 0;
    if (*timeout_ms < 0 || t < *timeout_ms)
        *timeout_ms = t;
}

static void report_refusals(struct refusals *r, uint64_t now)
{
    if (r->unlogged && now >= r->quiet_until) {
        fprintf(stderr, "hbone serve: %u more %s\n", r->unlogged, r->what);
        r->unlogged = 0;
        r->quiet_until = now + REFUSAL_LOG_INTERVAL_MS;
    }
}

static short log_timer_events(watcher *w, uint64_t now, int *timeout_ms)
{
    struct serve_state *s = w->ctx;
    refusals_due(&s->connections, now, timeout_ms);
    refusals_due(&s->connects, now, timeout_ms);
    refusals_due(&s->peer_connects, now, timeout_ms);
    refusals_due(&s->evictions, now, timeout_ms);
    return 0;
}

static int log_timer_handle(watcher *w, short revents, uint64_t now)
{
    (void)revents;
    struct serve_state *s = w->ctx;
    report_refusals(&s->connections, now);
    report_refusals(&s->connects, now);
    report_refusals(&s->peer_connects, now);
    report_refusals(&s->evictions, now);
    return 0;
}

/* --- serve: each peer's share of the dials ----------------------------------- */

static struct peer_dials *find_peer_dials(struct serve_state *s, const char *id)
{
    for (struct peer_dials *d = s->peers; d; d = d->next) {
        if (strcmp(d->id, id) == 0)
            return d;
    }
    return NULL;
}

static unsigned peer_dials_pending(struct serve_state *s, const char *id)
{
    struct peer_dials *d = find_peer_dials(s, id);
    return d ? d->count : 0;
}

/* Counts a dial against @p id's share; NULL when out of memory. */
static struct peer_dials *take_peer_dial(struct serve_state *s, const char *id)
{
    struct peer_dials *d = find_peer_dials(s, id);
    if (!d) {
        size_t len = strlen(id);
        d = malloc(sizeof(*d) + len + 1);
        if (!d)
            return NULL;
        memcpy(d->id, id, len + 1);
        d->count = 0;
        d->next = s->peers;
        s->peers = d;
    }
    d->count++;
    return d;
}

/* The entry goes with its last dial: the table holds only peers dialing. */
static void give_back_peer_dial(struct serve_state *s, struct peer_dials *d)
{
    if (--d->count > 0)
        return;
    struct peer_dials **link = &s->peers;
    while (*link != d)
        link = &(*link)->next;
    *link = d->next;
    free(d);
}

/* Whether a dial for @p peer must wait: the limit reached, if any, is
 * logged (one line a second at most) and the CONNECT is to be answered 503.
 * The overall limit is checked first: when every slot is taken, that is
 * what the log names, whoever holds them. */
static int dial_refused(struct serve_state *s, hbone_conn *conn, int conn_fd, const char *peer,
                        const char *authority)
{
    if (s->dials >= s->max_dials) {
        refuse_dial(s, conn, conn_fd, authority);
        return 1;
    }
    unsigned pending = peer_dials_pending(s, peer);
    if (pending >= s->max_dials_per_peer) {
        refuse_peer_dial(s, peer, pending, conn_fd, authority);
        return 1;
    }
    return 0;
}

/* --- serve ------------------------------------------------------------------- */

static void log_tunnel(tunnel_pipe *p, const char *outcome)
{
    fprintf(stderr, "%s up=%llu down=%llu duration=%llums outcome=%s\n", p->label,
            (unsigned long long)p->up, (unsigned long long)p->down,
            (unsigned long long)(hbone_io_now_ms() - p->started), outcome);
}

static void serve_done(tunnel_pipe *p, uint32_t reason)
{
    char outcome[48];
    if (p->outcome) /* a rejection already named the outcome */
        snprintf(outcome, sizeof(outcome), "%s", p->outcome);
    else if (reason == 0)
        snprintf(outcome, sizeof(outcome), "closed");
    else if (reason == HBONE_CLOSE_CONNECTION_LOST)
        snprintf(outcome, sizeof(outcome), "connection-lost");
    else
        snprintf(outcome, sizeof(outcome), "reset-0x%x", reason);
    log_tunnel(p, outcome);
}

static void serve_dialed(tunnel_pipe *p, int error)
{
    struct serve_state *s = p->ctx;
    /* The pipe reports the end of each dial once, whatever ended it. */
    s->dials--;
    give_back_peer_dial(s, p->dial_ctx);
    if (p->closed)
        return; /* reset or lost while dialing: nothing to answer */
    if (error == 0) {
        hbone_conn_tunnel_accept(p->conn, p->tunnel, NULL, NULL, NULL, NULL, 0);
        return;
    }
    p->outcome = error == ETIMEDOUT ? "dial-timeout-503" : "dial-failed-503";
    hbone_conn_tunnel_reject(p->conn, p->tunnel, 503);
}

static int allowed(const struct options *o, const hbone_spiffe_id *peer)
{
    if (o->n_allow == 0)
        return 1; /* any verified peer of an accepted trust domain */
    for (size_t i = 0; i < o->n_allow; i++) {
        if (strcmp(o->allow[i], hbone_spiffe_id_str(peer, NULL)) == 0)
            return 1;
    }
    return 0;
}

/* Whether @p a is one of this host's addresses (getifaddrs); -1 if they
 * cannot be read. */
static int host_has(const struct host_addr *a)
{
    struct ifaddrs *list;
    if (getifaddrs(&list) < 0)
        return -1;
    int found = 0;
    for (struct ifaddrs *i = list; i && !found; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != a->family)
            continue;
        if (a->family == AF_INET)
            found = ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr == a->v4.s_addr;
        else
            found = IN6_ARE_ADDR_EQUAL(&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, &a->v6);
    }
    freeifaddrs(list);
    return found;
}

/*
 * Whether dialing @p host:@p port would connect serve to its own listener.
 * A peer asking for that makes serve spend two sockets (the dial and the
 * connection it then accepts from itself) and a handshake slot per CONNECT,
 * for as long as the tunnel lasts, while the peer spends one stream; and the
 * bytes it sends go on into serve's own TLS port. Returns 1, 0, or -1 when
 * the host's addresses cannot be read.
 *
 * The address is taken the way the kernel will route the connect: an
 * IPv4-mapped IPv6 address dials IPv4, and Linux connects 0.0.0.0 to
 * 127.0.0.1 and :: to ::1. A listener on 0.0.0.0 or [::] is reached through
 * every address of the host: all of loopback (127.0.0.0/8, ::1) and the
 * addresses of its interfaces, read at each such CONNECT since they change.
 * IPv6 listeners are IPv6-only (hbone_io_listen), so families must match.
 */
static int targets_self(const struct serve_state *s, const char *host, size_t host_len,
                        uint16_t port)
{
    if (port != s->self_port)
        return 0; /* the cheap test first: most CONNECTs stop here */
    char text[INET6_ADDRSTRLEN];
    struct host_addr a = {0};
    if (host_len >= sizeof(text))
        return 0; /* no address: the dial fails on its own */
    memcpy(text, host, host_len);
    text[host_len] = '\0';
    if (inet_pton(AF_INET, text, &a.v4) == 1)
        a.family = AF_INET;
    else if (inet_pton(AF_INET6, text, &a.v6) == 1)
        a.family = AF_INET6;
    else
        return 0;
    if (a.family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&a.v6)) {
        a.family = AF_INET;
        memcpy(&a.v4, &a.v6.s6_addr[12], sizeof(a.v4));
    }
    if (a.family == AF_INET && a.v4.s_addr == htonl(INADDR_ANY))
        a.v4.s_addr = htonl(INADDR_LOOPBACK);
    else if (a.family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&a.v6))
        a.v6 = in6addr_loopback;
    if (a.family != s->self.family)
        return 0;
    if (!s->self_any)
        return a.family == AF_INET ? a.v4.s_addr == s->self.v4.s_addr
                                   : IN6_ARE_ADDR_EQUAL(&a.v6, &s->self.v6);
    if (a.family == AF_INET ? (ntohl(a.v4.s_addr) >> 24) == 127 : IN6_IS_ADDR_LOOPBACK(&a.v6))
        return 1;
    return host_has(&a);
}

static void serve_request(hbone_conn *conn, int32_t tunnel, const char *host, size_t host_len,
                          uint16_t port, int kind, void *user)
{
    (void)kind;
    struct conn_watch *cw = user;
    struct serve_state *s = cw->app;
    const char *peer = hbone_spiffe_id_str(hbone_conn_peer_id(conn), NULL);
    char authority[HBONE_AUTHORITY_MAX];
    hbone_authority_format(host, host_len, port, authority, sizeof(authority), NULL);
    int ok = allowed(cw->o, hbone_conn_peer_id(conn));
    /* Only a dial can loop back: --echo dials nothing. */
    int self = ok && !cw->o->echo ? targets_self(s, host, host_len, port) : 0;
    /* Checked before anything is spent on the tunnel; a peer that is not
     * allowed learns that (401) rather than how busy the server is, and a
     * CONNECT to serve itself is refused for what it is (403), busy or not. */
    if (ok && !self && !cw->o->echo && dial_refused(s, conn, cw->w.fd, peer, authority)) {
        hbone_conn_tunnel_reject(conn, tunnel, 503);
        return;
    }
    tunnel_pipe *p = pipe_new(conn, tunnel, serve_done, s);
    if (!p) {
        hbone_conn_tunnel_reject(conn, tunnel, 503);
        return;
    }
    snprintf(p->label, sizeof(p->label), "tunnel peer=%s authority=%s", peer, authority);
    if (!ok) {
        p->outcome = "denied-401";
        hbone_conn_tunnel_reject(conn, tunnel, 401);
        return;
    }
    /* 403: the peer is allowed (401 is about who asks) and the authority is
     * well formed (400), and nothing is busy or failing (503): asking again
     * cannot help, the server understood and will not. */
    if (self > 0) {
        p->outcome = "self-403";
        hbone_conn_tunnel_reject(conn, tunnel, 403);
        return;
    }
    /* Not knowing the host's addresses (out of descriptors, most likely: a
     * dial would fail for the same reason), it does not risk the dial. */
    if (self < 0) {
        p->outcome = "dial-failed-503";
        hbone_conn_tunnel_reject(conn, tunnel, 503);
        return;
    }
    if (cw->o->echo) {
        pipe_attach_echo(p);
        hbone_conn_tunnel_accept(conn, tunnel, NULL, NULL, NULL, NULL, 0);
        return;
    }
    p->dial_ctx = take_peer_dial(s, peer);
    if (!p->dial_ctx ||
        pipe_dial(p, authority, strlen(authority), s->dial_timeout_ms, serve_dialed) < 0) {
        if (p->dial_ctx)
            give_back_peer_dial(s, p->dial_ctx);
        p->outcome = "dial-failed-503";
        hbone_conn_tunnel_reject(conn, tunnel, 503);
        return;
    }
    s->dials++; /* serve_dialed gives it back, and the peer's share */
}

struct listener {
    watcher w;
    const struct options *o;
    void *app;
    hbone_config *cfg;
    hbone_callbacks *cbs;
    void (*accepted)(struct listener *l, int fd);
};

static short listener_events(watcher *w, uint64_t now, int *timeout_ms)
{
    (void)w;
    (void)now;
    (void)timeout_ms;
    return POLLIN;
}

/* Out of descriptors: refuse the first waiting connection. Returns 0 if one
 * was refused, -1 if none could be. */
static int refuse_without_descriptors(int listen_fd)
{
    if (reserve_fd < 0)
        return -1;
    close(reserve_fd);
    reserve_fd = -1;
    int fd = accept(listen_fd, NULL, NULL);
    if (fd >= 0) {
        log_refused(fd, "out of file descriptors");
        close(fd);
    }
    take_reserve();
    return fd >= 0 ? 0 : -1;
}

static int listener_handle(watcher *w, short revents, uint64_t now)
{
    (void)now;
    struct listener *l = w->ctx;
    while (revents & POLLIN) {
        int fd;
        int r = hbone_io_accept(w->fd, &fd);
        if (r == 0)
            l->accepted(l, fd);
        else if (r != HBONE_ERR_IO || (errno != EMFILE && errno != ENFILE) ||
                 refuse_without_descriptors(w->fd) < 0)
            break;
    }
    return 0;
}

/*
 * The handshake limit is reached: close the connection that has been in its
 * handshake longest, to admit the one on @p fd. Refusing newcomers instead
 * would let a few silent sockets, renewed as the handshake timeout closes
 * them, lock every client out. Evicting, such sockets only push each other
 * out, and a client that completes its handshake promptly gets in. The
 * oldest goes: it has proved nothing, and has had the longest to.
 */
static void evict_oldest(struct serve_state *s, int fd, uint32_t handshakes)
{
    struct conn_watch *oldest = s->handshaking.oldest;
    if (refusal_logged(&s->evictions)) {
        char from[INET6_ADDRSTRLEN + 8], to[INET6_ADDRSTRLEN + 8];
        peer_address(oldest->w.fd, from, sizeof(from));
        peer_address(fd, to, sizeof(to));
        fprintf(stderr,
                "hbone serve: %u handshakes pending (limit), closing the oldest from %s to admit "
                "%s\n",
                handshakes, from, to);
    }
    loop_remove(&oldest->w); /* conn_release: the socket and the slot go now */
}

/* The handshake completed: the peer is verified, no longer one to evict. */
static void serve_handshake(hbone_conn *conn, void *user)
{
    (void)conn;
    queue_remove(user);
}

/* The library counts and refuses (hbone_config_set_server_limits); serve
 * evicts when the handshake limit is the one reached, and otherwise says
 * which limit refused. The connection limit is not met by eviction: the
 * connections it counts may be verified peers with live tunnels. */
static void serve_accepted(struct listener *l, int fd)
{
    struct serve_state *s = l->app;
    struct conn_watch *cw;
    uint32_t handshakes, open;
    int r = start_conn(&cw, 1, fd, l->cfg, l->cbs, l->o, s);
    if (r == HBONE_ERR_LIMIT) {
        hbone_config_server_load(l->cfg, &handshakes, &open);
        /* With both limits reached, an eviction frees a slot of each. */
        if (handshakes >= s->max_handshaking && s->handshaking.oldest) {
            evict_oldest(s, fd, handshakes);
            r = start_conn(&cw, 1, fd, l->cfg, l->cbs, l->o, s);
        }
    }
    if (r == 0) {
        queue_push(&s->handshaking, cw);
    } else if (r == HBONE_ERR_LIMIT) {
        hbone_config_server_load(l->cfg, &handshakes, &open);
        if (handshakes >= s->max_handshaking)
            refuse(s, fd, handshakes, "handshakes pending");
        else
            refuse(s, fd, open, "connections open");
    } else if (r < 0) {
        char why[96];
        log_refused(fd, setup_failure(r, why, sizeof(why)));
        close(fd); /* refused: the server carries on */
    }
}

static int listen_on(struct listener *l, const char *address)
{
    int fd;
    uint16_t port;
    int r = hbone_io_listen(address, strlen(address), 128, &fd, &port);
    if (r == HBONE_ERR_AUTHORITY)
        fail_usage("--listen %s: expected a.b.c.d:port or [ipv6]:port", address);
    if (r < 0) {
        fprintf(stderr, "hbone %s: cannot listen on %s: %s\n", command, address, strerror(errno));
        exit(1);
    }
    l->w = (watcher){fd, listener_events, listener_handle, NULL, l};
    loop_add(&l->w);
    take_reserve();
    return port;
}

static hbone_callbacks *pipe_callbacks(void)
{
    hbone_callbacks *cbs;
    if (hbone_callbacks_new(&cbs) < 0)
        exit(1);
    hbone_callbacks_set_tunnel_data(cbs, pipe_on_data);
    hbone_callbacks_set_tunnel_end(cbs, pipe_on_end);
    hbone_callbacks_set_tunnel_writable(cbs, pipe_on_writable);
    hbone_callbacks_set_tunnel_close(cbs, pipe_on_close);
    return cbs;
}

/* Where serve listens, for targets_self. */
static void listening_address(struct serve_state *s, int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        fprintf(stderr, "hbone serve: getsockname: %s\n", strerror(errno));
        exit(1);
    }
    s->self.family = ss.ss_family;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        s->self.v4 = sin->sin_addr;
        s->self_any = sin->sin_addr.s_addr == htonl(INADDR_ANY);
        s->self_port = ntohs(sin->sin_port);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        s->self.v6 = sin6->sin6_addr;
        s->self_any = IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr);
        s->self_port = ntohs(sin6->sin6_port);
    }
}

/* --max-dials-per-peer, or its default. More than --max-dials would be a
 * share that can never be reached: taken for a mistake, it is refused. The
 * default is cut to --max-dials when that is lower, so that a low
 * --max-dials alone means what it did before there were shares. */
static unsigned dials_per_peer(const struct options *o, unsigned max_dials)
{
    if (!o->max_dials_per_peer)
        return max_dials < DEFAULT_MAX_DIALS_PER_PEER ? max_dials : DEFAULT_MAX_DIALS_PER_PEER;
    if (o->max_dials_per_peer > max_dials)
        fail_usage("--max-dials-per-peer %u: more than --max-dials (%u)", o->max_dials_per_peer,
                   max_dials);
    return o->max_dials_per_peer;
}

static int cmd_serve(const struct options *o)
{
    if (!o->listen)
        fail_usage("%s", "--listen is required");
    static struct serve_state s;
    s.max_handshaking = o->max_handshakes ? o->max_handshakes : DEFAULT_MAX_HANDSHAKES;
    s.max_open = o->max_connections ? o->max_connections : DEFAULT_MAX_CONNECTIONS;
    s.max_dials = o->max_dials ? o->max_dials : DEFAULT_MAX_DIALS;
    s.max_dials_per_peer = dials_per_peer(o, s.max_dials);
    s.dial_timeout_ms = o->dial_timeout_ms ? (int)o->dial_timeout_ms : DEFAULT_DIAL_TIMEOUT_MS;
    s.connections.what = "connections refused (limits)";
    s.connects.what = "CONNECTs refused (dial limit)";
    s.peer_connects.what = "CONNECTs refused (per-peer dial limit)";
    s.evictions.what = "pending handshakes closed for newer ones (limit)";
    s.log_timer = (watcher){-1, log_timer_events, log_timer_handle, NULL, &s};
    loop_add(&s.log_timer);
    static struct listener l;
    l.o = o;
    l.app = &s;
    l.cfg = load_config(o);
    if (hbone_config_set_server_limits(l.cfg, s.max_handshaking, s.max_open) < 0)
        exit(1);
    long idle_ms = o->idle_timeout_ms >= 0 ? o->idle_timeout_ms : DEFAULT_IDLE_TIMEOUT_MS;
    if (hbone_config_set_idle_timeout(l.cfg, (uint32_t)idle_ms) < 0)
        exit(1);
    l.cbs = pipe_callbacks();
    hbone_callbacks_set_tunnel_request(l.cbs, serve_request);
    hbone_callbacks_set_handshake(l.cbs, serve_handshake);
    l.accepted = serve_accepted;
    int port = listen_on(&l, o->listen);
    listening_address(&s, l.w.fd);
    fprintf(stderr, "hbone serve: listening on %s (port %d) as %s%s\n", o->listen, port,
            hbone_spiffe_id_str(hbone_config_identity(l.cfg), NULL),
            o->echo ? ", echoing tunnels" : "");
    /* An upstream that resets while bytes wait for it fails the next write
     * with EPIPE: that resets its tunnel, it must not end the server. */
    signal(SIGPIPE, SIG_IGN);
    loop_run();
    return 0;
}

/* --- connect ------------------------------------------------------------------ */

struct connect_state {
    int status;
    uint32_t reason;
    int closed;
    char failure[400]; /* why the connection failed, copied before it is freed */
};

static void connect_response(hbone_conn *conn, int32_t tunnel, int status, void *user)
{
    struct conn_watch *cw = user;
    struct connect_state *st = cw->app;
    st->status = status;
    if (status == 200) {
        /* stdin is read without blocking; stdout is written blocking. */
        int flags = fcntl(STDIN_FILENO, F_GETFL);
        fcntl(STDIN_FILENO, F_SETFL, flags | O_NONBLOCK);
        pipe_attach(hbone_conn_tunnel_get_user_data(conn, tunnel), STDIN_FILENO, STDOUT_FILENO);
    }
}

static void connect_done(tunnel_pipe *p, uint32_t reason)
{
    struct connect_state *st = p->ctx;
    st->closed = 1;
    st->reason = reason;
    /* A connection that failed takes its tunnel with it, and the driver
     * reports it closed only once the peer has closed too: its reason is
     * known now. */
    const char *why = hbone_conn_error_detail(p->conn);
    if (why[0])
        snprintf(st->failure, sizeof(st->failure), "%s", why);
    loop_stop(0);
}

static void connect_closed(struct conn_watch *cw)
{
    struct connect_state *st = cw->app;
    snprintf(st->failure, sizeof(st->failure), "%s", hbone_conn_error_detail(cw->conn));
    if (!st->closed)
        loop_stop(0);
}

static int cmd_connect(const struct options *o)
{
    hbone_config *cfg = load_config(o);
    hbone_callbacks *cbs = pipe_callbacks();
    hbone_callbacks_set_tunnel_response(cbs, connect_response);
    static struct connect_state st;
    struct conn_watch *cw = dial_peer(o, cfg, cbs, &st);
    cw->on_closed = connect_closed;
    int32_t tunnel = open_tunnel(cw);
    if (tunnel < 0 || !pipe_new(cw->conn, tunnel, connect_done, &st)) {
        fprintf(stderr, "hbone connect: cannot open the tunnel\n");
        return 1;
    }
    hbone_callbacks_del(cbs); /* the connection copied them */
    hbone_config_del(cfg);    /* and holds its own reference */
    signal(SIGPIPE, SIG_IGN);
    loop_run(); /* the connection's watcher may be freed now: use st only */
    loop_release_all();
    if (st.failure[0]) {
        fprintf(stderr, "hbone connect: %s\n", st.failure);
        return EXIT_TLS;
    }
    if (st.status != 200) {
        if (st.status)
            fprintf(stderr, "hbone connect: %s answered %d\n", o->authority, st.status);
        else
            fprintf(stderr, "hbone connect: no answer to the CONNECT\n");
        return st.status ? EXIT_STATUS : EXIT_RESET;
    }
    if (!st.closed || st.reason != 0) {
        fprintf(stderr, "hbone connect: the tunnel was %s\n",
                st.reason == HBONE_CLOSE_CONNECTION_LOST || !st.closed ? "lost with its connection"
                                                                       : "reset");
        return EXIT_RESET;
    }
    return 0;
}

/* --- forward ------------------------------------------------------------------ */

static void forward_response(hbone_conn *conn, int32_t tunnel, int status, void *user)
{
    (void)user;
    tunnel_pipe *p = hbone_conn_tunnel_get_user_data(conn, tunnel);
    if (p && status == 200)
        pipe_attach(p, p->in_fd, p->out_fd);
    else
        fprintf(stderr, "hbone forward: %s answered %d\n", p ? p->label : "?", status);
}

static void forward_done(tunnel_pipe *p, uint32_t reason)
{
    if (reason != 0)
        fprintf(stderr, "hbone forward: tunnel %d ended with %s 0x%x\n", (int)p->tunnel,
                reason == HBONE_CLOSE_CONNECTION_LOST ? "connection loss" : "reset", reason);
}

static void forward_lost(struct conn_watch *cw)
{
    fprintf(stderr, "hbone forward: connection to %s ended%s%s\n", cw->o->peer,
            hbone_conn_error_detail(cw->conn)[0] ? ": " : "", hbone_conn_error_detail(cw->conn));
    loop_stop(EXIT_RESET);
}

/* Every local connection gets its own tunnel on the one HBONE connection. */
static void forward_accepted(struct listener *l, int fd)
{
    struct conn_watch *peer = l->app;
    int32_t tunnel = open_tunnel(peer);
    tunnel_pipe *p = tunnel < 0 ? NULL : pipe_new(peer->conn, tunnel, forward_done, NULL);
    if (!p) {
        fprintf(stderr, "hbone forward: cannot open a tunnel\n");
        close(fd);
        if (tunnel >= 0)
            hbone_conn_tunnel_reset(peer->conn, tunnel, 0x8);
        return;
    }
    p->in_fd = p->out_fd = fd; /* piped once the 200 arrives */
    snprintf(p->label, sizeof(p->label), "tunnel %d to %s", (int)tunnel, l->o->authority);
}

static int cmd_forward(const struct options *o)
{
    if (!o->listen)
        fail_usage("%s", "--listen is required");
    hbone_config *cfg = load_config(o);
    hbone_callbacks *cbs = pipe_callbacks();
    hbone_callbacks_set_tunnel_response(cbs, forward_response);
    static struct listener l;
    l.o = o;
    l.cfg = cfg;
    l.cbs = cbs;
    l.accepted = forward_accepted;
    struct conn_watch *peer = dial_peer(o, cfg, cbs, NULL);
    peer->on_closed = forward_lost;
    l.app = peer;
    int port = listen_on(&l, o->listen);
    fprintf(stderr, "hbone forward: %s (port %d) -> %s via %s\n", o->listen, port, o->authority,
            o->peer);
    signal(SIGPIPE, SIG_IGN);
    loop_run();
    loop_release_all();
    hbone_callbacks_del(cbs);
    hbone_config_del(cfg);
    return loop_status();
}

/* --- flags ---------------------------------------------------------------------- */

static const char usage_serve[] =
    "usage: hbone serve --listen ADDR:PORT --cert CHAIN.pem --key KEY.pem --ca BUNDLE.pem\n"
    "                   [--trust-domain TD] [--allow SPIFFE_ID]... [--echo]\n"
    "                   [--max-handshakes N] [--max-connections N]\n"
    "                   [--max-dials N] [--max-dials-per-peer N] [--dial-timeout MS]\n"
    "                   [--idle-timeout MS]\n"
    "Terminate HBONE: authorize each CONNECT (--allow: only these peers, 401 otherwise),\n"
    "then dial its authority and pipe bytes both ways (503 if the dial fails), or with\n"
    "--echo send the tunnel's bytes back. One log line per tunnel on stderr.\n"
    "A CONNECT to serve's own listening address (any address of this host when it listens\n"
    "on 0.0.0.0 or [::]) and port is answered 403 without dialing.\n"
    "At most --max-handshakes connections (default 128) may be in the TLS handshake: a\n"
    "new one beyond that closes the one that has been in its handshake longest. At most\n"
    "--max-connections (default 1024) may be open in all: beyond that a new connection\n"
    "is closed at once. Both are logged (one line a second at most, then a count).\n"
    "A dial not connected within --dial-timeout ms (default 10000) is abandoned and\n"
    "answered 503; with --max-dials dials (default 256) in progress, a further CONNECT\n"
    "is answered 503 at once, without dialing, and logged the same way. So is one from a\n"
    "peer identity (over all its connections) with --max-dials-per-peer dials in\n"
    "progress (default 64, or --max-dials if lower; at most --max-dials).\n"
    "A connection that has carried no tunnel for --idle-timeout ms (default 600000, twice\n"
    "the 5 minutes after which ztunnel's client pool releases an unused connection; 0:\n"
    "never) is closed with GOAWAY(NO_ERROR), giving its --max-connections slot back.\n";
static const char usage_connect[] =
    "usage: hbone connect --peer ADDR:PORT --authority HOST:PORT --expect-id SPIFFE_ID\n"
    "                     --cert CHAIN.pem --key KEY.pem --ca BUNDLE.pem [--trust-domain TD]\n"
    "                     [--header 'name: value']...\n"
    "One tunnel: stdin into it, its bytes to stdout; EOF on stdin half-closes. Exit 0 after\n"
    "a clean close; 3 on a TLS or identity failure, 4 when the answer is not 200 (printed),\n"
    "5 when the tunnel is reset or lost, 2 for bad flags.\n";
static const char usage_forward[] =
    "usage: hbone forward --listen ADDR:PORT --peer ADDR:PORT --authority HOST:PORT\n"
    "                     --expect-id SPIFFE_ID --cert CHAIN.pem --key KEY.pem --ca BUNDLE.pem\n"
    "                     [--trust-domain TD] [--header 'name: value']...\n"
    "Every local TCP connection accepted gets its own tunnel, all on one HBONE connection.\n";
static const char usage_main[] =
    "usage: hbone serve|connect|forward [flags]   (hbone COMMAND --help for each)\n"
    "ADDR is a.b.c.d or a bracketed IPv6 address, e.g. [::1]:15008.\n";

/* A positive decimal count: no sign, no spaces, no suffix. */
static unsigned parse_limit(const char *flag, const char *text)
{
    char *end;
    errno = 0;
    unsigned long n = strtoul(text, &end, 10);
    if (*text < '0' || *text > '9' || *end || errno || n == 0 || n > INT_MAX)
        fail_usage("--%s %s: expected a positive integer", flag, text);
    return (unsigned)n;
}

/* A duration in ms where 0 means never: a decimal count, as parse_limit. */
static long parse_ms_or_never(const char *flag, const char *text)
{
    char *end;
    errno = 0;
    unsigned long n = strtoul(text, &end, 10);
    if (*text < '0' || *text > '9' || *end || errno || n > INT_MAX)
        fail_usage("--%s %s: expected a count of milliseconds (0: never)", flag, text);
    return (long)n;
}

static void parse_flags(int argc, char **argv, struct options *o, const char *usage)
{
    enum {
        LISTEN = 1,
        PEER,
        AUTHORITY,
        EXPECT_ID,
        CERT,
        KEY,
        CA,
        TRUST_DOMAIN,
        ALLOW,
        HEADER,
        ECHO,
        MAX_HANDSHAKES,
        MAX_CONNECTIONS,
        MAX_DIALS,
        MAX_DIALS_PER_PEER,
        DIAL_TIMEOUT,
        IDLE_TIMEOUT,
        HELP
    };
    static const struct option flags[] = {
        {"listen", required_argument, NULL, LISTEN},
        {"peer", required_argument, NULL, PEER},
        {"authority", required_argument, NULL, AUTHORITY},
        {"expect-id", required_argument, NULL, EXPECT_ID},
        {"cert", required_argument, NULL, CERT},
        {"key", required_argument, NULL, KEY},
        {"ca", required_argument, NULL, CA},
        {"trust-domain", required_argument, NULL, TRUST_DOMAIN},
        {"allow", required_argument, NULL, ALLOW},
        {"header", required_argument, NULL, HEADER},
        {"echo", no_argument, NULL, ECHO},
        {"max-handshakes", required_argument, NULL, MAX_HANDSHAKES},
        {"max-connections", required_argument, NULL, MAX_CONNECTIONS},
        {"max-dials", required_argument, NULL, MAX_DIALS},
        {"max-dials-per-peer", required_argument, NULL, MAX_DIALS_PER_PEER},
        {"dial-timeout", required_argument, NULL, DIAL_TIMEOUT},
        {"idle-timeout", required_argument, NULL, IDLE_TIMEOUT},
        {"help", no_argument, NULL, HELP},
        {NULL, 0, NULL, 0},
    };
    /* Each command takes only its own flags. */
    const char *own = strcmp(command, "serve") == 0 ? "listen cert key ca trust-domain allow echo "
                                                      "max-handshakes max-connections max-dials "
                                                      "max-dials-per-peer dial-timeout idle-timeout"
                      : strcmp(command, "connect") == 0 ? "peer authority expect-id cert key ca "
                                                          "trust-domain header"
                                                        : "listen peer authority expect-id cert "
                                                          "key ca trust-domain header";
    opterr = 0;
    int c, index = 0;
    while ((c = getopt_long(argc, argv, "", flags, &index)) != -1) {
        if (c == HELP) {
            fputs(usage, stdout);
            exit(0);
        }
        if (c == '?' || c == ':')
            fail_usage("unknown or incomplete flag %s", argv[optind - 1]);
        if (!strstr(own, flags[index].name))
            fail_usage("--%s does not apply to this command", flags[index].name);
        switch (c) {
        case LISTEN:
            o->listen = optarg;
            break;
        case PEER:
            o->peer = optarg;
            break;
        case AUTHORITY:
            o->authority = optarg;
            break;
        case EXPECT_ID:
            o->expect_id = optarg;
            break;
        case CERT:
            o->cert = optarg;
            break;
        case KEY:
            o->key = optarg;
            break;
        case CA:
            o->ca = optarg;
            break;
        case TRUST_DOMAIN:
            o->trust_domain = optarg;
            break;
        case ECHO:
            o->echo = 1;
            break;
        case MAX_HANDSHAKES:
            o->max_handshakes = parse_limit(flags[index].name, optarg);
            break;
        case MAX_CONNECTIONS:
            o->max_connections = parse_limit(flags[index].name, optarg);
            break;
        case MAX_DIALS:
            o->max_dials = parse_limit(flags[index].name, optarg);
            break;
        case MAX_DIALS_PER_PEER:
            o->max_dials_per_peer = parse_limit(flags[index].name, optarg);
            break;
        case DIAL_TIMEOUT:
            o->dial_timeout_ms = parse_limit(flags[index].name, optarg);
            break;
        case IDLE_TIMEOUT:
            o->idle_timeout_ms = parse_ms_or_never(flags[index].name, optarg);
            break;
        case ALLOW:
            if (o->n_allow == MAX_LIST)
                fail_usage("%s", "too many --allow");
            hbone_spiffe_id_del(parse_id(optarg)); /* only checked: exits on a bad ID */
            o->allow[o->n_allow++] = optarg;
            break;
        case HEADER:
            if (o->n_headers == MAX_LIST)
                fail_usage("%s", "too many --header");
            o->headers[o->n_headers++] = optarg;
            break;
        default:
            break;
        }
    }
    if (optind < argc)
        fail_usage("unexpected argument %s", argv[optind]);
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(usage_main, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    command = argv[1];
    struct options o = {.idle_timeout_ms = -1};
    if (strcmp(command, "serve") == 0) {
        parse_flags(argc - 1, argv + 1, &o, usage_serve);
        return cmd_serve(&o);
    }
    if (strcmp(command, "connect") == 0) {
        parse_flags(argc - 1, argv + 1, &o, usage_connect);
        return cmd_connect(&o);
    }
    if (strcmp(command, "forward") == 0) {
        parse_flags(argc - 1, argv + 1, &o, usage_forward);
        return cmd_forward(&o);
    }
    fprintf(stderr, "hbone: unknown command %s\n%s", command, usage_main);
    return EXIT_USAGE;
}
