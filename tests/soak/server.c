/* SPDX-License-Identifier: MIT */
/*
 * An HBONE server child. The CONNECT port picks what a tunnel does (see
 * soak.h). The control socket carries commands from the client process:
 * 'r' rotate the certificate (answered 'R' once new connections use the
 * new one), 'd' drain every connection, 'q' (or EOF) finish: wait for the
 * connections to go, free everything, report counters as one line, exit.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "soak.h"

typedef struct sconn sconn;
typedef struct stunnel stunnel;

struct stunnel {
    sconn *sc;
    int32_t id;
    int port;
    uint64_t received, hash;
    uint8_t *echo; /* received, not yet written back */
    size_t echo_len, echo_cap;
    int peer_ended, shut, reset;
    stunnel *prev, *next;
};

struct sconn {
    source src;
    hbone_conn *conn;
    hbone_io *io;
    int handshake_done;
    stunnel *tunnels;
    sconn *next;
};

static mem_counter mem;
static hbone_config *cfg;
static hbone_callbacks *cbs;
static const char *pki;
static int gen;
static source listener, control;
static int listening, quitting;
static uint64_t accept_retry_at; /* accepting paused (EMFILE) until then */
static sconn *conns;
static server_stats st;
static int fds_at_start;

static void tunnel_free(stunnel *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        t->sc->tunnels = t->next;
    if (t->next)
        t->next->prev = t->prev;
    free(t->echo);
    free(t);
}

static stunnel *tunnel_of(hbone_conn *conn, int32_t id)
{
    return hbone_conn_tunnel_get_user_data(conn, id);
}

static void finish(stunnel *t)
{
    if (!t->shut) {
        t->shut = 1;
        hbone_conn_tunnel_shutdown(t->sc->conn, t->id);
    }
}

/* Write back what waits; credit the client only for what went, so that an
 * echo holds at most a window of data. */
static void flush_echo(stunnel *t)
{
    size_t off = 0;
    while (off < t->echo_len) {
        size_t n = 0;
        if (hbone_conn_tunnel_write(t->sc->conn, t->id, t->echo + off, t->echo_len - off, &n) < 0)
            break; /* AGAIN: the writable event resumes */
        off += n;
    }
    if (off) {
        hbone_conn_tunnel_consume(t->sc->conn, t->id, off);
        memmove(t->echo, t->echo + off, t->echo_len - off);
        t->echo_len -= off;
    }
    if (t->echo_len == 0 && t->peer_ended)
        finish(t);
}

static void on_request(hbone_conn *conn, int32_t id, const char *host, size_t host_len,
                       uint16_t port, int kind, void *user)
{
    (void)host;
    (void)host_len;
    (void)kind;
    sconn *sc = user;
    st.tunnels++;
    if (port == PORT_REJECT) {
        hbone_conn_tunnel_reject(conn, id, 503);
        return; /* invisible to us from here: nothing to keep */
    }
    stunnel *t = xcalloc(1, sizeof(*t));
    t->sc = sc;
    t->id = id;
    t->port = port;
    t->hash = HASH_INIT;
    t->next = sc->tunnels;
    if (sc->tunnels)
        sc->tunnels->prev = t;
    sc->tunnels = t;
    hbone_conn_tunnel_set_user_data(conn, id, t);
    if (port != PORT_ECHO && port != PORT_SINK &&
        (port <= PORT_RESET || port > PORT_RESET + RESET_MAX_KIB)) {
        hbone_conn_tunnel_reject(conn, id, 400);
        return;
    }
    hbone_conn_tunnel_accept(conn, id, NULL, NULL, NULL, NULL, 0);
}

static void on_data(hbone_conn *conn, int32_t id, const uint8_t *data, size_t len, void *user)
{
    (void)user;
    stunnel *t = tunnel_of(conn, id);
    if (!t || t->reset) {
        hbone_conn_tunnel_consume(conn, id, len);
        return;
    }
    t->received += len;
    if (t->port == PORT_SINK) {
        t->hash = hash_update(t->hash, data, len);
        hbone_conn_tunnel_consume(conn, id, len);
        return;
    }
    if (t->echo_cap - t->echo_len < len) {
        t->echo_cap = (t->echo_len + len) * 2;
        t->echo = realloc(t->echo, t->echo_cap);
        if (!t->echo)
            die("out of memory");
    }
    memcpy(t->echo + t->echo_len, data, len);
    t->echo_len += len;
    flush_echo(t);
    if (t->port > PORT_RESET && t->received >= (uint64_t)(t->port - PORT_RESET) * 1024) {
        /* The far side's TCP connection "failed": what HBONE says is
         * CONNECT_ERROR, and the client expects exactly that. */
        t->reset = 1;
        hbone_conn_tunnel_reset(conn, id, CODE_CONNECT_ERROR);
    }
}

static void on_end(hbone_conn *conn, int32_t id, void *user)
{
    (void)user;
    stunnel *t = tunnel_of(conn, id);
    if (!t || t->reset)
        return;
    t->peer_ended = 1;
    if (t->port == PORT_SINK) {
        uint8_t reply[16];
        size_t n;
        put_u64(reply, t->received);
        put_u64(reply + 8, t->hash);
        /* 16 bytes into an empty tunnel buffer: always taken whole. */
        if (hbone_conn_tunnel_write(conn, id, reply, sizeof(reply), &n) < 0 || n != sizeof(reply))
            st.failures++;
        finish(t);
    } else {
        flush_echo(t);
    }
}

static void on_writable(hbone_conn *conn, int32_t id, void *user)
{
    (void)user;
    stunnel *t = tunnel_of(conn, id);
    if (t && !t->reset && t->port != PORT_SINK)
        flush_echo(t);
}

static void on_close(hbone_conn *conn, int32_t id, uint32_t reason, void *user)
{
    (void)user;
    stunnel *t = tunnel_of(conn, id);
    if (!t)
        return;
    if (t->reset) {
        if (reason != CODE_CONNECT_ERROR)
            st.failures++;
    } else if (reason == CODE_CANCEL) {
        st.cancels++;
    } else if (reason == CODE_CONNECT_ERROR) {
        st.connect_errors++;
    } else if (reason == HBONE_CLOSE_CONNECTION_LOST) {
        st.lost++;
    } else if (reason != 0) {
        fprintf(stderr, "hbone-soak server: tunnel %d closed with 0x%x\n", (int)id, reason);
        st.failures++;
    }
    tunnel_free(t);
}

static void on_handshake(hbone_conn *conn, void *user)
{
    (void)conn;
    ((sconn *)user)->handshake_done = 1;
}

static void sync_events(sconn *sc)
{
    loop_update(&sc->src, epoll_bits(hbone_io_events(sc->io, now_ms())));
}

static void conn_close(sconn *sc)
{
    if (!sc->handshake_done)
        st.handshake_failures++; /* the rotation probes that must fail */
    loop_remove(&sc->src);
    hbone_io_del(sc->io);
    hbone_conn_del(sc->conn);
    while (sc->tunnels) {
        st.lost++; /* only if the connection ended without telling them */
        tunnel_free(sc->tunnels);
    }
    for (sconn **p = &conns; *p; p = &(*p)->next) {
        if (*p == sc) {
            *p = sc->next;
            break;
        }
    }
    loop_free_later(sc);
}

static void conn_ready(source *src, uint32_t ready)
{
    sconn *sc = (sconn *)src;
    /* The driver reports the end only once the client has closed too, so
     * that no RST can cut off our last frames (lib/io/driver.c). */
    if (hbone_io_handle(sc->io, io_bits(ready), now_ms()) == HBONE_ERR_CLOSED)
        conn_close(sc);
    else
        sync_events(sc);
}

static void accept_ready(source *src, uint32_t ready)
{
    (void)ready;
    for (;;) {
        int fd;
        int r = hbone_io_accept(src->fd, &fd);
        if (r == HBONE_ERR_AGAIN)
            return;
        if (r < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* The pending connection stays readable: stop listening
                 * for a while rather than spin on it. */
                loop_remove(&listener);
                listening = 0;
                accept_retry_at = now_ms() + 100;
            }
            return;
        }
        sconn *sc = xcalloc(1, sizeof(*sc));
        if (hbone_conn_server_new(&sc->conn, cfg, cbs, sc, now_ms()) < 0 ||
            hbone_io_new(&sc->io, sc->conn, fd) < 0) {
            /* Out of descriptors or memory: refuse this one, and pause
             * accepting as for EMFILE rather than fail the next at once. */
            hbone_conn_del(sc->conn);
            free(sc);
            close(fd);
            loop_remove(&listener);
            listening = 0;
            accept_retry_at = now_ms() + 100;
            return;
        }
        sc->src.fd = fd;
        sc->src.handle = conn_ready;
        sc->next = conns;
        conns = sc;
        loop_add(&sc->src, EPOLLIN);
    }
}

static void rotate(void)
{
    /* Connections made so far keep the old config (their reference); it is
     * freed with the last of them. They keep counting against the server
     * limits, which the new config shares. */
    hbone_config *old = cfg;
    cfg = config_server(pki, ++gen, &mem);
    if (hbone_config_share_server_limits(cfg, old) < 0)
        die("sharing the server limits failed");
    hbone_config_del(old);
    const char ack = 'R';
    if (write(control.fd, &ack, 1) != 1)
        die("control socket: %s", strerror(errno));
}

static void control_ready(source *src, uint32_t ready)
{
    (void)ready;
    char cmd[16];
    ssize_t n = read(src->fd, cmd, sizeof(cmd));
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        quitting = 1;
        loop_remove(src);
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        if (cmd[i] == 'r') {
            rotate();
        } else if (cmd[i] == 'd') {
            for (sconn *sc = conns; sc; sc = sc->next) {
                hbone_conn_drain(sc->conn, now_ms(), 30000);
                sync_events(sc);
            }
            const char ack = 'D';
            if (write(control.fd, &ack, 1) != 1)
                die("control socket: %s", strerror(errno));
        } else if (cmd[i] == 'q') {
            quitting = 1;
        }
    }
}

static int next_timeout(uint64_t now)
{
    int t = -1;
    for (sconn *sc = conns; sc; sc = sc->next) {
        int ct = hbone_io_timeout_ms(sc->io, now);
        if (ct >= 0 && (t < 0 || ct < t))
            t = ct;
    }
    if (!listening && !quitting) {
        int at = accept_retry_at > now ? (int)(accept_retry_at - now) : 0;
        if (t < 0 || at < t)
            t = at;
    }
    return t;
}

static void run_timers(uint64_t now)
{
    for (sconn *sc = conns, *next; sc; sc = next) {
        next = sc->next;
        if (hbone_io_timeout_ms(sc->io, now) == 0)
            conn_ready(&sc->src, 0);
    }
    if (!listening && !quitting && now >= accept_retry_at) {
        loop_add(&listener, EPOLLIN);
        listening = 1;
    }
}

static _Noreturn void finish_and_exit(int ctl_fd)
{
    if (listening)
        loop_remove(&listener);
    close(listener.fd);
    /* The client has closed its connections: give ours the time to see
     * that; a connection still open after this is counted as leaked. */
    uint64_t deadline = now_ms() + 10000;
    while (conns && now_ms() < deadline) {
        int t = next_timeout(now_ms());
        uint64_t left = deadline - now_ms();
        loop_round(t < 0 || (uint64_t)t > left ? (int)left : t);
        run_timers(now_ms());
    }
    while (conns) {
        st.failures++;
        conn_close(conns);
    }
    loop_round(0); /* the graveyard */
    /* Every connection is gone, so none may still count, across the
     * rotations. */
    uint32_t handshakes, open;
    hbone_config_server_load(cfg, &handshakes, &open);
    if (handshakes || open) {
        fprintf(stderr, "soak server: %u handshakes and %u connections still counted\n", handshakes,
                open);
        st.failures++;
    }
    hbone_config_del(cfg);
    hbone_callbacks_del(cbs);
    loop_fini();
    st.live_allocs = mem.allocs - mem.frees;
    /* At the start: stdio, listener, control. Now the listener is gone. */
    st.fds_leaked = count_open_fds() - (fds_at_start - 1);
    char line[256];
    int n = snprintf(line, sizeof(line),
                     "tunnels=%llu cancels=%llu connect_errors=%llu lost=%llu "
                     "handshake_failures=%llu failures=%llu live_allocs=%llu fds_leaked=%d\n",
                     (unsigned long long)st.tunnels, (unsigned long long)st.cancels,
                     (unsigned long long)st.connect_errors, (unsigned long long)st.lost,
                     (unsigned long long)st.handshake_failures, (unsigned long long)st.failures,
                     (unsigned long long)st.live_allocs, st.fds_leaked);
    int ok = write(ctl_fd, line, (size_t)n) == n;
    close(ctl_fd);
    _exit(ok && st.failures == 0 && st.live_allocs == 0 && st.fds_leaked == 0 ? 0 : 1);
}

void server_main(int listen_fd, int ctl_fd, const char *pki_dir, int generation_)
{
    pki = pki_dir;
    gen = generation_;
    loop_init();
    fds_at_start = count_open_fds() - 1; /* less the epoll fd */
    cfg = config_server(pki, gen, &mem);
    if (hbone_callbacks_new(&cbs) < 0)
        die("out of memory");
    hbone_callbacks_set_handshake(cbs, on_handshake);
    hbone_callbacks_set_tunnel_request(cbs, on_request);
    hbone_callbacks_set_tunnel_data(cbs, on_data);
    hbone_callbacks_set_tunnel_end(cbs, on_end);
    hbone_callbacks_set_tunnel_writable(cbs, on_writable);
    hbone_callbacks_set_tunnel_close(cbs, on_close);
    listener.fd = listen_fd;
    listener.handle = accept_ready;
    loop_add(&listener, EPOLLIN);
    listening = 1;
    control.fd = ctl_fd;
    control.handle = control_ready;
    loop_add(&control, EPOLLIN);
    while (!quitting) {
        loop_round(next_timeout(now_ms()));
        run_timers(now_ms());
    }
    if (!control.removed)
        loop_remove(&control);
    finish_and_exit(ctl_fd);
}
