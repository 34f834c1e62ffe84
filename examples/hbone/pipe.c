/* SPDX-License-Identifier: MIT */
#include "pipe.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_CHUNK 65536
#define CONNECT_ERROR 0xa

static void append(uint8_t **buf, size_t *len, const uint8_t *data, size_t n)
{
    uint8_t *grown = realloc(*buf, *len + n);
    if (!grown)
        abort(); /* an example tool: out of memory ends it */
    memcpy(grown + *len, data, n);
    *buf = grown;
    *len += n;
}

static void drop_front(uint8_t *buf, size_t *len, size_t n)
{
    memmove(buf, buf + n, *len - n);
    *len -= n;
}

/* Our FIN towards the peer, once everything read has gone into the tunnel. */
static void maybe_shut_tunnel(tunnel_pipe *p)
{
    if (p->in_eof && !p->to_tunnel_len && !p->tunnel_shut && !p->closed) {
        p->tunnel_shut = 1;
        hbone_conn_tunnel_shutdown(p->conn, p->tunnel);
    }
}

/* The peer's FIN towards the fd, once everything received has been written. */
static void maybe_shut_fd(tunnel_pipe *p)
{
    if (!p->peer_ended || p->to_fd_len || p->fd_shut || p->out_fd < 0)
        return;
    p->fd_shut = 1;
    if (p->out_fd == p->in_fd)
        shutdown(p->out_fd, SHUT_WR);
    else
        close(p->out_fd); /* stdout: closing it is how the reader sees EOF */
}

static void flush_to_tunnel(tunnel_pipe *p)
{
    while (p->to_tunnel_len && !p->closed) {
        size_t accepted = 0;
        if (hbone_conn_tunnel_write(p->conn, p->tunnel, p->to_tunnel, p->to_tunnel_len, &accepted) <
            0)
            return; /* full: the writable event resumes */
        p->up += accepted;
        drop_front(p->to_tunnel, &p->to_tunnel_len, accepted);
        /* An echo credits what it received only as it leaves again. */
        if (p->echo)
            hbone_conn_tunnel_consume(p->conn, p->tunnel, accepted);
    }
    maybe_shut_tunnel(p);
}

static void flush_to_fd(tunnel_pipe *p)
{
    while (p->to_fd_len && p->out_fd >= 0) {
        ssize_t n = write(p->out_fd, p->to_fd, p->to_fd_len);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return;
            /* The far side is gone: abort the tunnel as a TCP error. */
            hbone_conn_tunnel_reset(p->conn, p->tunnel, CONNECT_ERROR);
            p->to_fd_len = 0;
            return;
        }
        /* Credit the peer only now: a slow reader slows its own tunnel. */
        hbone_conn_tunnel_consume(p->conn, p->tunnel, (size_t)n);
        p->down += (uint64_t)n;
        drop_front(p->to_fd, &p->to_fd_len, (size_t)n);
    }
    maybe_shut_fd(p);
}

static void read_fd(tunnel_pipe *p)
{
    uint8_t buf[READ_CHUNK];
    ssize_t n = read(p->in_fd, buf, sizeof(buf));
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            hbone_conn_tunnel_reset(p->conn, p->tunnel, CONNECT_ERROR); /* e.g. a TCP RST */
        return;
    }
    if (n == 0) {
        p->in_eof = 1;
        maybe_shut_tunnel(p);
        return;
    }
    append(&p->to_tunnel, &p->to_tunnel_len, buf, (size_t)n);
    flush_to_tunnel(p);
}

/* The dial is over, for whatever reason: this runs once per dial, so the
 * caller's bookkeeping (serve's counts of dials in progress, in all and by
 * the peer) is undone once.
 * A failed dial's socket goes at once rather than with the tunnel: a peer
 * piling up CONNECTs to a black hole must not hold descriptors by them. */
static void end_dial(tunnel_pipe *p, int err)
{
    p->dialing = 0;
    if (err) {
        close(p->in_fd);
        p->in_fd = p->out_fd = p->w.fd = -1; /* the watcher stays, idle, until the close */
    } else {
        p->established = 1;
    }
    if (p->dialed)
        p->dialed(p, err);
}

static void finish_dial(tunnel_pipe *p)
{
    int err = hbone_io_connect_result(p->in_fd) == 0 ? 0 : errno ? errno : EIO;
    end_dial(p, err);
}

static short pipe_events(watcher *w, uint64_t now, int *timeout_ms)
{
    tunnel_pipe *p = w->ctx;
    if (p->closed)
        return 0;
    if (p->dialing) {
        /* Without a deadline a black hole holds the socket for the kernel's
         * SYN retries (about two minutes). */
        *timeout_ms = p->dial_deadline > now ? (int)(p->dial_deadline - now) : 0;
        return POLLOUT;
    }
    short ev = 0;
    /* Read only when the tunnel took the last read: that is the backpressure. */
    if (p->established && !p->in_eof && !p->to_tunnel_len)
        ev |= POLLIN;
    if (p->to_fd_len && p->out_fd == p->in_fd)
        ev |= POLLOUT;
    return ev;
}

static int pipe_handle(watcher *w, short revents, uint64_t now)
{
    tunnel_pipe *p = w->ctx;
    if (p->closed)
        return -1;
    if (p->dialing) {
        if (revents)
            finish_dial(p);
        else if (now >= p->dial_deadline)
            end_dial(p, ETIMEDOUT);
        return 0;
    }
    if (revents & (POLLIN | POLLHUP | POLLERR))
        read_fd(p);
    if (revents & POLLOUT)
        flush_to_fd(p);
    return 0;
}

static void pipe_release(watcher *w)
{
    tunnel_pipe *p = w->ctx;
    if (p->in_fd >= 0)
        close(p->in_fd);
    if (p->out_fd >= 0 && p->out_fd != p->in_fd && !p->fd_shut)
        close(p->out_fd);
    free(p->to_tunnel);
    free(p->to_fd);
    free(p);
}

tunnel_pipe *pipe_new(hbone_conn *conn, int32_t tunnel, pipe_done_fn done, void *ctx)
{
    tunnel_pipe *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->conn = conn;
    p->tunnel = tunnel;
    p->in_fd = p->out_fd = -1;
    p->done = done;
    p->ctx = ctx;
    p->started = hbone_io_now_ms();
    p->w = (watcher){-1, pipe_events, pipe_handle, pipe_release, p};
    hbone_conn_tunnel_set_user_data(conn, tunnel, p);
    return p;
}

int pipe_attach(tunnel_pipe *p, int in_fd, int out_fd)
{
    p->in_fd = in_fd;
    p->out_fd = out_fd;
    p->established = 1;
    p->w.fd = in_fd;
    if (loop_add(&p->w) < 0)
        return -1;
    p->in_loop = 1;
    return 0;
}

void pipe_attach_echo(tunnel_pipe *p)
{
    p->echo = 1;
    p->established = 1;
}

int pipe_dial(tunnel_pipe *p, const char *address, size_t len, int timeout_ms,
              pipe_dialed_fn dialed)
{
    int fd;
    int r = hbone_io_connect(address, len, &fd);
    if (r < 0)
        return r;
    p->w.fd = fd;
    if (loop_add(&p->w) < 0) {
        close(fd);
        p->w.fd = -1;
        return HBONE_ERR_NOMEM;
    }
    p->in_loop = 1;
    p->in_fd = p->out_fd = fd;
    p->dialing = 1;
    p->dial_deadline = hbone_io_now_ms() + (uint64_t)timeout_ms;
    p->dialed = dialed;
    return 0;
}

/* --- hbone callbacks: the pipe is the tunnel's user data ------------------ */

static tunnel_pipe *pipe_of(hbone_conn *conn, int32_t tunnel)
{
    return hbone_conn_tunnel_get_user_data(conn, tunnel);
}

void pipe_on_data(hbone_conn *conn, int32_t tunnel, const uint8_t *data, size_t len, void *user)
{
    (void)user;
    tunnel_pipe *p = pipe_of(conn, tunnel);
    if (!p || p->closed) {
        hbone_conn_tunnel_consume(conn, tunnel, len);
        return;
    }
    if (p->echo) {
        p->down += len;
        append(&p->to_tunnel, &p->to_tunnel_len, data, len);
        flush_to_tunnel(p);
        return;
    }
    append(&p->to_fd, &p->to_fd_len, data, len);
    flush_to_fd(p);
}

void pipe_on_end(hbone_conn *conn, int32_t tunnel, void *user)
{
    (void)user;
    tunnel_pipe *p = pipe_of(conn, tunnel);
    if (!p)
        return;
    p->peer_ended = 1;
    if (p->echo) {
        p->in_eof = 1; /* the echo ends its side once the client has */
        maybe_shut_tunnel(p);
    }
    maybe_shut_fd(p);
}

void pipe_on_writable(hbone_conn *conn, int32_t tunnel, void *user)
{
    (void)user;
    tunnel_pipe *p = pipe_of(conn, tunnel);
    if (p)
        flush_to_tunnel(p);
}

void pipe_on_close(hbone_conn *conn, int32_t tunnel, uint32_t reason, void *user)
{
    (void)user;
    tunnel_pipe *p = pipe_of(conn, tunnel);
    if (!p)
        return;
    p->closed = 1;
    if (p->dialing)
        end_dial(p, ECANCELED); /* reset or lost while dialing: no socket left behind */
    if (reason != 0 && p->in_fd >= 0 && p->in_fd == p->out_fd) {
        /* Mirror the reset: an abortive close sends a TCP RST. */
        struct linger lg = {1, 0};
        setsockopt(p->in_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    if (p->done)
        p->done(p, reason);
    if (!p->in_loop)
        pipe_release(&p->w); /* never joined the loop */
    /* Otherwise the loop releases it on its next round. */
}
