/* SPDX-License-Identifier: MIT */
/*
 * epoll-echo: an HBONE echo server on Linux epoll, built on libhbone's io
 * layer. Each connection is one hbone_io registered with epoll; its interest
 * bits and timer come from the driver. Tunnels are answered 200 and echoed,
 * with backpressure: an echo waits while its tunnel is full.
 *
 * usage: epoll-echo ADDR:PORT PKI_DIR   (prints "listening on ... (port N)")
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <hbone/hbone.h>

#define MAX_EVENTS 64

struct connection {
    hbone_conn *conn;
    hbone_io *io;
    int fd;
    int registered_events;
};

static int epfd;

static char *read_file(const char *dir, const char *name, size_t *len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    char *buf = malloc(1 << 20);
    *len = f && buf ? fread(buf, 1, 1 << 20, f) : 0;
    if (f)
        fclose(f);
    if (!*len) {
        fprintf(stderr, "epoll-echo: cannot read %s\n", path);
        exit(1);
    }
    return buf;
}

/* What a tunnel still has to echo: it waits here while the tunnel is full. */
struct echo {
    uint8_t *data;
    size_t len;
    int end; /* the client ended its side: end ours once the echo is out */
};

/* Send what waits, crediting the client only for what went back: a client
 * that does not read its echo is held back by its own window. */
static void flush(hbone_conn *conn, int32_t tunnel, struct echo *e)
{
    while (e->len) {
        size_t accepted = 0;
        if (hbone_conn_tunnel_write(conn, tunnel, e->data, e->len, &accepted) < 0)
            return; /* full: the writable event calls again */
        memmove(e->data, e->data + accepted, e->len - accepted);
        e->len -= accepted;
        hbone_conn_tunnel_consume(conn, tunnel, accepted);
    }
    if (e->end) {
        e->end = 0;
        hbone_conn_tunnel_shutdown(conn, tunnel);
    }
}

static void on_request(hbone_conn *conn, int32_t tunnel, const char *host, size_t host_len,
                       uint16_t port, int kind, void *user)
{
    (void)host;
    (void)host_len;
    (void)port;
    (void)kind;
    (void)user;
    struct echo *e = calloc(1, sizeof(*e));
    if (!e) {
        hbone_conn_tunnel_reject(conn, tunnel, 503);
        return;
    }
    hbone_conn_tunnel_set_user_data(conn, tunnel, e);
    hbone_conn_tunnel_accept(conn, tunnel, NULL, NULL, NULL, NULL, 0);
}

static void on_data(hbone_conn *conn, int32_t tunnel, const uint8_t *data, size_t len, void *user)
{
    (void)user;
    struct echo *e = hbone_conn_tunnel_get_user_data(conn, tunnel);
    uint8_t *grown = e ? realloc(e->data, e->len + len) : NULL;
    if (!grown) {
        hbone_conn_tunnel_reset(conn, tunnel, 0xa);
        return;
    }
    e->data = grown;
    memcpy(e->data + e->len, data, len);
    e->len += len;
    flush(conn, tunnel, e);
}

static void on_writable(hbone_conn *conn, int32_t tunnel, void *user)
{
    (void)user;
    struct echo *e = hbone_conn_tunnel_get_user_data(conn, tunnel);
    if (e)
        flush(conn, tunnel, e);
}

static void on_end(hbone_conn *conn, int32_t tunnel, void *user)
{
    (void)user;
    struct echo *e = hbone_conn_tunnel_get_user_data(conn, tunnel);
    if (e) {
        e->end = 1;
        flush(conn, tunnel, e);
    }
}

static void on_close(hbone_conn *conn, int32_t tunnel, uint32_t reason, void *user)
{
    (void)reason;
    (void)user;
    struct echo *e = hbone_conn_tunnel_get_user_data(conn, tunnel);
    if (e) {
        free(e->data);
        free(e);
    }
}

/* Make epoll wait for what the driver wants now. */
static void update_interest(struct connection *c, uint64_t now)
{
    int want = hbone_io_events(c->io, now);
    uint32_t events = (want & HBONE_IO_READ ? EPOLLIN : 0) | (want & HBONE_IO_WRITE ? EPOLLOUT : 0);
    if ((int)events == c->registered_events)
        return;
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->registered_events = (int)events;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s ADDR:PORT PKI_DIR\n", argv[0]);
        return 2;
    }
    size_t chain_len, key_len, ca_len;
    char *chain = read_file(argv[2], "server.chain.pem", &chain_len);
    char *key = read_file(argv[2], "server.key", &key_len);
    char *ca = read_file(argv[2], "bundle-cluster.local.pem", &ca_len);
    hbone_config *cfg;
    if (hbone_config_new(&cfg, NULL) < 0 ||
        hbone_config_set_certificate(cfg, chain, chain_len, key, key_len) < 0 ||
        hbone_config_add_trust_bundle(cfg, "cluster.local", 13, ca, ca_len) < 0) {
        fprintf(stderr, "epoll-echo: %s\n", hbone_config_error_detail(cfg));
        return 1;
    }
    free(chain);
    free(key);
    free(ca);
    hbone_callbacks *cbs;
    hbone_callbacks_new(&cbs);
    hbone_callbacks_set_tunnel_request(cbs, on_request);
    hbone_callbacks_set_tunnel_data(cbs, on_data);
    hbone_callbacks_set_tunnel_end(cbs, on_end);
    hbone_callbacks_set_tunnel_writable(cbs, on_writable);
    hbone_callbacks_set_tunnel_close(cbs, on_close);

    int lfd;
    uint16_t port;
    if (hbone_io_listen(argv[1], strlen(argv[1]), 128, &lfd, &port) < 0) {
        perror("epoll-echo: listen");
        return 1;
    }
    epfd = epoll_create1(0);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev);
    fprintf(stderr, "epoll-echo: listening on %s (port %u)\n", argv[1], port);

    /* Connections with a timer pending are few; scanning them keeps the
     * example short. A real server would keep a timer heap. */
    struct connection *conns[1024];
    size_t n_conns = 0;
    for (;;) {
        uint64_t now = hbone_io_now_ms();
        int timeout = -1;
        for (size_t i = 0; i < n_conns; i++) {
            int t = hbone_io_timeout_ms(conns[i]->io, now);
            if (t >= 0 && (timeout < 0 || t < timeout))
                timeout = t;
        }
        struct epoll_event events[MAX_EVENTS];
        int n = epoll_wait(epfd, events, MAX_EVENTS, timeout);
        now = hbone_io_now_ms();
        for (int i = 0; i < n; i++) {
            struct connection *c = events[i].data.ptr;
            if (!c) { /* the listener */
                int fd;
                while (n_conns < 1024 && hbone_io_accept(lfd, &fd) == 0) {
                    c = calloc(1, sizeof(*c));
                    if (!c || hbone_conn_server_new(&c->conn, cfg, cbs, NULL, now) < 0 ||
                        hbone_io_new(&c->io, c->conn, fd) < 0) {
                        close(fd);
                        free(c);
                        continue;
                    }
                    c->fd = fd;
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
                    c->registered_events = EPOLLIN;
                    conns[n_conns++] = c;
                }
                continue;
            }
            int ready = (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR) ? HBONE_IO_READ : 0) |
                        (events[i].events & EPOLLOUT ? HBONE_IO_WRITE : 0);
            (void)hbone_io_handle(c->io, ready, now);
        }
        /* Run timers, refresh interest, and retire finished connections. */
        for (size_t i = 0; i < n_conns;) {
            struct connection *c = conns[i];
            if (hbone_io_handle(c->io, 0, now) == HBONE_ERR_CLOSED) {
                epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
                hbone_io_del(c->io); /* closes the socket */
                hbone_conn_del(c->conn);
                free(c);
                conns[i] = conns[--n_conns];
                continue;
            }
            update_interest(c, now);
            i++;
        }
    }
}
