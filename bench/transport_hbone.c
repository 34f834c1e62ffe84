/* SPDX-License-Identifier: MIT */
/*
 * HBONE through libhbone's public API and its io driver: tunnels are
 * channels, several per connection. Writes only queue; each connection
 * sends once per loop round (its flush), so many tunnel writes leave in one
 * batch of full records.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include <hbone/hbone.h>

#include "bench.h"

#define SERVER_ID "spiffe://cluster.local/ns/default/sa/server"

typedef struct htunnel htunnel;

typedef struct hconn {
    loop_source src;
    hbone_conn *conn;
    hbone_io *io;
    int server;
    int closed;
    int close_requested; /* by a channel: close after this round */
    struct hconn *next_client;
    struct htunnel *tunnels; /* to free when the connection goes */
} hconn;

struct htunnel {
    channel ch;
    hconn *hc;
    int32_t id;
    int want_write;
    struct htunnel *prev, *next;
};

static hbone_config *client_cfg, *server_cfg;
static hbone_callbacks *callbacks;
static hconn *clients;

static hbone_config *load_config(const bench_pki *pki, const char *leaf)
{
    hbone_config *cfg;
    if (hbone_config_new(&cfg, NULL) < 0)
        die("hbone_config_new failed");
    bench_creds creds;
    bench_creds_load(&creds, pki, leaf);
    int r =
        hbone_config_set_certificate(cfg, creds.chain, creds.chain_len, creds.key, creds.key_len);
    if (r == 0)
        r = hbone_config_add_trust_bundle(cfg, "cluster.local", 13, creds.bundle, creds.bundle_len);
    if (r < 0)
        die("%s: %s", pki->dir, hbone_config_error_detail(cfg));
    bench_creds_free(&creds);
    return cfg;
}

/* --- connections ------------------------------------------------------------ */

static void tunnel_free(htunnel *t);

/* libhbone's clock: the loop's, read once per round. */
static uint64_t now_ms(void)
{
    return loop_now_us() / 1000u;
}

static void sync_loop(hconn *hc)
{
    uint64_t now = now_ms();
    int ev = hbone_io_events(hc->io, now);
    loop_update(&hc->src,
                (ev & HBONE_IO_READ ? EPOLLIN : 0) | (ev & HBONE_IO_WRITE ? EPOLLOUT : 0));
    int t = hbone_io_timeout_ms(hc->io, now);
    hc->src.deadline_us = t < 0 ? 0 : loop_now_us() + (uint64_t)t * 1000u;
}

static void conn_close(hconn *hc)
{
    if (hc->closed)
        return;
    hc->closed = 1;
    loop_remove(&hc->src);
    if (!hc->server) {
        for (hconn **p = &clients; *p; p = &(*p)->next_client) {
            if (*p == hc) {
                *p = hc->next_client;
                break;
            }
        }
    }
    hbone_io_del(hc->io);
    hbone_conn_del(hc->conn); /* tunnels still open vanish without events */
    while (hc->tunnels) {
        /* A server's workload frees its state on close; a client that
         * closes everything has no use for the event. */
        if (hc->server && hc->tunnels->ch.on_close)
            hc->tunnels->ch.on_close(&hc->tunnels->ch);
        tunnel_free(hc->tunnels);
    }
    loop_free_later(hc);
}

static void conn_handle(loop_source *src, uint32_t ready)
{
    hconn *hc = (hconn *)src;
    int bits = (ready & (EPOLLIN | EPOLLHUP | EPOLLERR) ? HBONE_IO_READ : 0) |
               (ready & EPOLLOUT ? HBONE_IO_WRITE : 0);
    if (hbone_io_handle(hc->io, bits, now_ms()) == HBONE_ERR_CLOSED) {
        const char *why = hbone_conn_error_detail(hc->conn);
        if (why[0])
            fprintf(stderr, "hbone-bench: HBONE connection failed: %s\n", why);
        conn_close(hc);
        return;
    }
    sync_loop(hc);
}

static void conn_flush(loop_source *src)
{
    hconn *hc = (hconn *)src;
    if (hc->close_requested)
        conn_close(hc);
    else
        conn_handle(src, 0); /* 0: nothing ready, just send what waits */
}

static hconn *conn_new(int fd, int server)
{
    hconn *hc = calloc(1, sizeof(*hc));
    if (!hc)
        die("out of memory");
    hc->server = server;
    hbone_config *cfg = server ? server_cfg : client_cfg;
    int r = server ? hbone_conn_server_new(&hc->conn, cfg, callbacks, hc, now_ms())
                   : hbone_conn_client_new(&hc->conn, cfg, callbacks, hc, now_ms());
    if (r < 0)
        die("hbone_conn_new: %s", hbone_strerror(r));
    if (!server) {
        hbone_spiffe_id *id;
        if (hbone_spiffe_id_parse(&id, SERVER_ID, strlen(SERVER_ID), NULL) < 0 ||
            hbone_conn_expect_peer(hc->conn, id) < 0)
            die("cannot expect %s", SERVER_ID);
        hbone_spiffe_id_del(id);
    }
    if (hbone_io_new(&hc->io, hc->conn, fd) < 0)
        die("hbone_io_new failed");
    hc->src.fd = fd;
    hc->src.handle = conn_handle;
    hc->src.flush = conn_flush;
    if (loop_add(&hc->src, EPOLLIN | EPOLLOUT, 1) < 0)
        die("epoll: %s", strerror(errno));
    return hc;
}

/* --- tunnels as channels --------------------------------------------------- */

static htunnel *tunnel_of(hbone_conn *conn, int32_t id)
{
    return hbone_conn_tunnel_get_user_data(conn, id);
}

static int tunnel_write(channel *ch, const uint8_t *data, size_t len, size_t *accepted)
{
    htunnel *t = ch->transport;
    int r = hbone_conn_tunnel_write(t->hc->conn, t->id, data, len, accepted);
    if (*accepted)
        loop_mark_dirty(&t->hc->src);
    if (r == HBONE_ERR_AGAIN || (r == 0 && *accepted < len))
        t->want_write = 1;
    return r == 0 ? 0 : -1;
}

static void tunnel_consume(channel *ch, size_t len)
{
    htunnel *t = ch->transport;
    hbone_conn_tunnel_consume(t->hc->conn, t->id, len);
    loop_mark_dirty(&t->hc->src);
}

static void tunnel_shutdown(channel *ch)
{
    htunnel *t = ch->transport;
    hbone_conn_tunnel_shutdown(t->hc->conn, t->id);
    loop_mark_dirty(&t->hc->src);
}

static void tunnel_close_connection(channel *ch)
{
    htunnel *t = ch->transport;
    /* Not now: this may run inside the connection's own callback. */
    t->hc->close_requested = 1;
    loop_mark_dirty(&t->hc->src);
}

static const channel_ops tunnel_ops = {tunnel_write, tunnel_consume, tunnel_shutdown,
                                       tunnel_close_connection};

static htunnel *tunnel_new(hconn *hc, int32_t id)
{
    htunnel *t = calloc(1, sizeof(*t));
    if (!t)
        die("out of memory");
    t->hc = hc;
    t->id = id;
    t->ch.ops = &tunnel_ops;
    t->ch.transport = t;
    t->next = hc->tunnels;
    if (hc->tunnels)
        hc->tunnels->prev = t;
    hc->tunnels = t;
    hbone_conn_tunnel_set_user_data(hc->conn, id, t);
    return t;
}

static void tunnel_free(htunnel *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        t->hc->tunnels = t->next;
    if (t->next)
        t->next->prev = t->prev;
    free(t);
}

static void on_request(hbone_conn *conn, int32_t id, const char *host, size_t host_len,
                       uint16_t port, int kind, void *user)
{
    (void)host;
    (void)host_len;
    (void)port;
    (void)kind;
    htunnel *t = tunnel_new(user, id);
    hbone_conn_tunnel_accept(conn, id, NULL, NULL, NULL, NULL, 0);
    server_workload_attach(&t->ch);
}

static void on_response(hbone_conn *conn, int32_t id, int status, void *user)
{
    (void)user;
    htunnel *t = tunnel_of(conn, id);
    if (t && t->ch.on_open)
        t->ch.on_open(&t->ch, status == 200);
}

static void on_data(hbone_conn *conn, int32_t id, const uint8_t *data, size_t len, void *user)
{
    (void)user;
    htunnel *t = tunnel_of(conn, id);
    if (t && t->ch.on_data)
        t->ch.on_data(&t->ch, data, len);
}

static void on_end(hbone_conn *conn, int32_t id, void *user)
{
    (void)user;
    htunnel *t = tunnel_of(conn, id);
    if (t && t->ch.on_end)
        t->ch.on_end(&t->ch);
}

static void on_writable(hbone_conn *conn, int32_t id, void *user)
{
    (void)user;
    htunnel *t = tunnel_of(conn, id);
    if (t && t->want_write) {
        t->want_write = 0;
        if (t->ch.on_writable)
            t->ch.on_writable(&t->ch);
    }
}

static void on_close(hbone_conn *conn, int32_t id, uint32_t reason, void *user)
{
    htunnel *t = tunnel_of(conn, id);
    if (!t)
        return;
    /* A server sees the client hang up at the end of each run: no news. */
    hconn *hc = user;
    if (reason != 0 && !(hc->server && reason == HBONE_CLOSE_CONNECTION_LOST))
        fprintf(stderr, "hbone-bench: tunnel %d closed with 0x%x\n", (int)id, reason);
    if (t->ch.on_close)
        t->ch.on_close(&t->ch);
    tunnel_free(t);
}

int hbone_transport_init(const bench_pki *pki)
{
    if (callbacks)
        return 0;
    client_cfg = load_config(pki, "client");
    server_cfg = load_config(pki, "server");
    /* The bench measures what a server can hold, not what it should admit:
     * its 1,000 idle connections may all arrive at once. */
    if (hbone_config_set_server_limits(server_cfg, 0, 0) < 0)
        die("hbone_config_set_server_limits failed");
    if (hbone_callbacks_new(&callbacks) < 0)
        die("out of memory");
    hbone_callbacks_set_tunnel_request(callbacks, on_request);
    hbone_callbacks_set_tunnel_response(callbacks, on_response);
    hbone_callbacks_set_tunnel_data(callbacks, on_data);
    hbone_callbacks_set_tunnel_end(callbacks, on_end);
    hbone_callbacks_set_tunnel_writable(callbacks, on_writable);
    hbone_callbacks_set_tunnel_close(callbacks, on_close);
    return 0;
}

/* --- server ------------------------------------------------------------ */

static void accept_ready(loop_source *src, uint32_t ready)
{
    (void)ready;
    int fd;
    while (hbone_io_accept(src->fd, &fd) == 0)
        conn_new(fd, 1);
}

void hbone_transport_serve(int listen_fd)
{
    loop_serve(listen_fd, accept_ready);
}

/* --- client ------------------------------------------------------------ */

/* The authority tells nothing to the bench server (it serves every
 * tunnel the same way); nghttpx passes it to its backend. */
static const char authority[] = "127.0.0.1:9";

int hbone_transport_open(const char *address, size_t conns, size_t n,
                         void (*attach)(channel *ch, size_t index, void *arg), void *arg)
{
    hconn **opened = calloc(conns, sizeof(*opened));
    if (!opened)
        die("out of memory");
    for (size_t c = 0; c < conns; c++) {
        int fd;
        struct pollfd pfd;
        if (hbone_io_connect(address, strlen(address), &fd) < 0)
            return -1;
        pfd = (struct pollfd){fd, POLLOUT, 0};
        if (poll(&pfd, 1, 10000) != 1 || hbone_io_connect_result(fd) < 0)
            return -1;
        opened[c] = conn_new(fd, 0);
        opened[c]->next_client = clients;
        clients = opened[c];
    }
    for (size_t i = 0; i < n; i++) {
        hconn *hc = opened[i % conns];
        int32_t id;
        int r = hbone_conn_tunnel_open(hc->conn, authority, sizeof(authority) - 1, NULL, NULL, NULL,
                                       NULL, 0, &id);
        if (r < 0)
            die("hbone_conn_tunnel_open: %s", hbone_strerror(r));
        htunnel *t = tunnel_new(hc, id);
        attach(&t->ch, i, arg);
        loop_mark_dirty(&hc->src);
    }
    free(opened);
    return 0;
}

int hbone_transport_open_more(size_t n, void (*attach)(channel *ch, size_t index, void *arg),
                              void *arg)
{
    hconn *hc = clients;
    for (size_t i = 0; i < n; i++, hc = hc->next_client ? hc->next_client : clients) {
        if (!hc)
            return -1;
        int32_t id;
        int r = hbone_conn_tunnel_open(hc->conn, authority, sizeof(authority) - 1, NULL, NULL, NULL,
                                       NULL, 0, &id);
        if (r < 0)
            return -1;
        htunnel *t = tunnel_new(hc, id);
        attach(&t->ch, i, arg);
        loop_mark_dirty(&hc->src);
    }
    return 0;
}

void hbone_transport_close_all(void)
{
    while (clients)
        conn_close(clients);
}
