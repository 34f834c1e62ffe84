/* SPDX-License-Identifier: MIT */
/*
 * Client connections through the io driver: opening, placing tunnels,
 * draining, and judging how each connection ended.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "soak.h"

/* Well below a server's 200 concurrent streams, so that a drained
 * neighbour's tunnels landing here never meet REFUSED_STREAM. */
#define TUNNELS_PER_CONN 100

cconn *conn_list;
static hbone_callbacks *cbs;
static hbone_spiffe_id *server_id;
static uint64_t connect_retry_at;

static ctunnel *tunnel_of(hbone_conn *conn, int32_t id)
{
    return hbone_conn_tunnel_get_user_data(conn, id);
}

static void on_handshake(hbone_conn *conn, void *user)
{
    cconn *cc = user;
    /* expect_peer already made the library refuse anyone else; this checks
     * that the identity it reports is the one asked for. */
    if (!hbone_spiffe_id_equal(hbone_conn_peer_id(conn), server_id))
        fail("handshake reported a peer that is not %s", SOAK_SERVER_ID);
    cc->ready = 1;
}

static void on_response(hbone_conn *conn, int32_t id, int status, void *user)
{
    (void)user;
    ctunnel *t = tunnel_of(conn, id);
    if (t)
        tunnel_on_response(t, status);
}

static void on_data(hbone_conn *conn, int32_t id, const uint8_t *data, size_t len, void *user)
{
    cconn *cc = user;
    ctunnel *t = tunnel_of(conn, id);
    if (t)
        tunnel_on_data(t, data, len);
    else
        hbone_conn_tunnel_consume(conn, id, len);
    cc->dirty = 1; /* consumed bytes make WINDOW_UPDATEs to send */
}

static void on_end(hbone_conn *conn, int32_t id, void *user)
{
    (void)user;
    ctunnel *t = tunnel_of(conn, id);
    if (t)
        tunnel_on_end(t);
}

static void on_writable(hbone_conn *conn, int32_t id, void *user)
{
    (void)user;
    ctunnel *t = tunnel_of(conn, id);
    if (t)
        tunnel_on_writable(t);
}

static void on_close(hbone_conn *conn, int32_t id, uint32_t reason, void *user)
{
    cconn *cc = user;
    ctunnel *t = tunnel_of(conn, id);
    if (t)
        tunnel_on_close(t, reason);
    cc->dirty = 1;
}

hbone_callbacks *client_callbacks(void)
{
    if (cbs)
        return cbs;
    if (hbone_callbacks_new(&cbs) < 0 ||
        hbone_spiffe_id_parse(&server_id, SOAK_SERVER_ID, strlen(SOAK_SERVER_ID), NULL) < 0)
        die("out of memory");
    hbone_callbacks_set_handshake(cbs, on_handshake);
    hbone_callbacks_set_tunnel_response(cbs, on_response);
    hbone_callbacks_set_tunnel_data(cbs, on_data);
    hbone_callbacks_set_tunnel_end(cbs, on_end);
    hbone_callbacks_set_tunnel_writable(cbs, on_writable);
    hbone_callbacks_set_tunnel_close(cbs, on_close);
    return cbs;
}

void client_callbacks_free(void)
{
    hbone_callbacks_del(cbs);
    hbone_spiffe_id_del(server_id);
    cbs = NULL;
    server_id = NULL;
}

/* --- endings ----------------------------------------------------------------- */

/* Why a connection that ended may have ended; anything else is a failure. */
static void judge_end(cconn *cc)
{
    const char *why = hbone_conn_error_detail(cc->conn);
    if (cc->probe) {
        faults_on_probe_done(cc, cc->ready);
        return;
    }
    if (cc->srv->killed) {
        if (!cc->ready)
            stats.conns_failed_expected++;
        return;
    }
    if (!cc->ready) {
        fail("connection to server %d failed before its handshake: %s", cc->srv->index,
             why[0] ? why : "transport closed");
        return;
    }
    if (!cc->draining && !cc->server_draining)
        fail("connection to server %d ended unasked: %s", cc->srv->index, why[0] ? why : "closed");
    else if (why[0])
        fail("drained connection to server %d failed: %s", cc->srv->index, why);
}

static void conn_release(cconn *cc)
{
    loop_remove(&cc->src);
    if (cc->io)
        hbone_io_del(cc->io); /* closes the socket */
    else
        close(cc->src.fd);
    hbone_conn_del(cc->conn);
    if (!cc->probe)
        cc->srv->conns--;
    for (cconn **p = &conn_list; *p; p = &(*p)->next) {
        if (*p == cc) {
            *p = cc->next;
            break;
        }
    }
    loop_free_later(cc);
}

static void conn_finish(cconn *cc)
{
    if (cc->done)
        return;
    cc->done = 1;
    cc->usable = 0;
    judge_end(cc);
    /* A closed connection has closed its tunnels with an event; any left
     * would vanish silently with hbone_conn_del(). */
    while (cc->tunnels) {
        fail("tunnel %d outlived its connection", (int)cc->tunnels->id);
        tunnel_on_close(cc->tunnels, HBONE_CLOSE_CONNECTION_LOST);
    }
    /* The driver reported the end only once the server had closed too. */
    conn_release(cc);
}

/* --- driving ------------------------------------------------------------------- */

static void after_io(cconn *cc, int r)
{
    if (r == HBONE_ERR_CLOSED) {
        conn_finish(cc);
        return;
    }
    cc->dirty = 0;
    if (cc->probe && cc->ready && !cc->draining) {
        /* Not from the handshake callback: a drain there would re-enter. */
        faults_on_probe_done(cc, 1);
        conn_drain(cc);
        r = hbone_io_handle(cc->io, 0, now_ms());
        if (r == HBONE_ERR_CLOSED) {
            conn_finish(cc);
            return;
        }
    }
    loop_update(&cc->src, epoll_bits(hbone_io_events(cc->io, now_ms())));
}

static void conn_ready(source *src, uint32_t ready)
{
    cconn *cc = (cconn *)src;
    if (cc->connecting) {
        if (hbone_io_connect_result(src->fd) < 0) {
            int err = errno;
            if (!cc->srv->killed && !cc->probe)
                fail("connect to server %d: %s", cc->srv->index, strerror(err));
            conn_finish(cc);
            return;
        }
        cc->connecting = 0;
        if (hbone_io_new(&cc->io, cc->conn, src->fd) < 0)
            die("hbone_io_new failed");
    }
    after_io(cc, hbone_io_handle(cc->io, io_bits(ready), now_ms()));
}

cconn *conn_open(server_proc *srv, hbone_config *cfg, int probe, int probe_expect_ok)
{
    int fd;
    if (hbone_io_connect(srv->address, strlen(srv->address), &fd) < 0)
        return NULL; /* EMFILE and the like: the caller tries again later */
    cconn *cc = xcalloc(1, sizeof(*cc));
    int r = hbone_conn_client_new(&cc->conn, cfg, client_callbacks(), cc, now_ms());
    if (r == 0)
        r = hbone_conn_expect_peer(cc->conn, server_id);
    if (r < 0) {
        /* Seen with descriptors exhausted (wolfSSL wants one for its
         * RNG): as transient as the connect failing. */
        int err = errno;
        if (stats.connect_retries < 5)
            note("hbone_conn_client_new: %s", hbone_strerror(r));
        hbone_conn_del(cc->conn);
        free(cc);
        close(fd);
        srv->aborted_connects++; /* the server may see a failed handshake */
        errno = err;
        return NULL;
    }
    cc->srv = srv;
    cc->probe = probe;
    cc->probe_expect_ok = probe_expect_ok;
    cc->connecting = 1;
    cc->src.fd = fd;
    cc->src.handle = conn_ready;
    loop_add(&cc->src, EPOLLOUT);
    cc->next = conn_list;
    conn_list = cc;
    if (!probe)
        srv->conns++;
    /* A server told to drain drains whatever it has accepted by the time it
     * reads the command, this connection perhaps included. */
    cc->server_draining = srv->drain_pending;
    cc->usable = !probe && !srv->drain_pending;
    stats.conns_opened++;
    return cc;
}

void conn_drain(cconn *cc)
{
    if (cc->draining || cc->done)
        return;
    cc->draining = 1;
    cc->usable = 0;
    int r = hbone_conn_drain(cc->conn, now_ms(), 60000);
    if (r < 0 && r != HBONE_ERR_INVALID_STATE)
        fail("hbone_conn_drain: %s", hbone_strerror(r));
    cc->dirty = 1;
}

void conns_flush(void)
{
    for (cconn *cc = conn_list, *next; cc; cc = next) {
        next = cc->next;
        if (cc->dirty && cc->io && !cc->done)
            after_io(cc, hbone_io_handle(cc->io, 0, now_ms()));
    }
}

int conns_timeout(uint64_t now)
{
    int t = -1;
    for (cconn *cc = conn_list; cc; cc = cc->next) {
        int ct = cc->io && !cc->done ? hbone_io_timeout_ms(cc->io, now) : -1;
        if (ct >= 0 && (t < 0 || ct < t))
            t = ct;
    }
    if (connect_retry_at) {
        int rt = connect_retry_at > now ? (int)(connect_retry_at - now) : 0;
        if (t < 0 || rt < t)
            t = rt;
    }
    return t;
}

void conns_run_timers(uint64_t now)
{
    for (cconn *cc = conn_list, *next; cc; cc = next) {
        next = cc->next;
        if (cc->io && !cc->done && hbone_io_timeout_ms(cc->io, now) == 0) {
            after_io(cc, hbone_io_handle(cc->io, 0, now));
        }
    }
}

/* --- keeping connections and tunnels busy ------------------------------------------ */

static server_proc *least_loaded_server(void)
{
    server_proc *best = NULL;
    for (server_proc *s = server_list; s; s = s->next) {
        if (s->alive && !s->killed && !s->quitting && (!best || s->conns < best->conns))
            best = s;
    }
    return best;
}

void conns_maintain(void)
{
    uint64_t now = now_ms();
    if (connect_retry_at && now < connect_retry_at)
        return;
    connect_retry_at = 0;
    int usable = 0;
    for (cconn *cc = conn_list; cc; cc = cc->next)
        usable += cc->usable;
    while (usable < (int)opt.connections) {
        server_proc *s = least_loaded_server();
        if (!s)
            return;
        if (!conn_open(s, client_cfg, 0, 0)) {
            /* Out of descriptors or ports: wait on a timer, not a spin. */
            if (stats.connect_retries++ < 5)
                note("connect: %s; retrying in 100 ms", strerror(errno));
            connect_retry_at = now + 100;
            return;
        }
        usable++;
    }
}

static cconn *best_conn(void)
{
    cconn *best = NULL;
    for (cconn *cc = conn_list; cc; cc = cc->next) {
        if (cc->usable && cc->ready && cc->n_tunnels < TUNNELS_PER_CONN &&
            (!best || cc->n_tunnels < best->n_tunnels))
            best = cc;
    }
    return best;
}

void conns_fill(uint64_t *plan_rng)
{
    while (active_tunnels < opt.tunnels) {
        cconn *cc = best_conn();
        if (!cc)
            return;
        ctunnel *t = xcalloc(1, sizeof(*t));
        tunnel_plan(t, plan_rng);
        while (cc && tunnel_start(t, cc) < 0) {
            cc->usable = 0; /* it refuses new tunnels (GOAWAY received) */
            cc = best_conn();
        }
        if (!cc) {
            free(t);
            return;
        }
        cc->dirty = 1;
    }
}
