/* SPDX-License-Identifier: MIT */
/* Bytes between a tunnel and file descriptors (a socket, or stdin and
 * stdout), with backpressure both ways and the TCP <-> HTTP/2 mapping:
 * FIN <-> END_STREAM, RST <-> RST_STREAM(CONNECT_ERROR). */
#ifndef HBONE_TOOL_PIPE_H
#define HBONE_TOOL_PIPE_H

#include <stddef.h>
#include <stdint.h>

#include <hbone/hbone.h>

#include "loop.h"

typedef struct tunnel_pipe tunnel_pipe;

/* Called once when the tunnel closed; @p reason as in hbone_tunnel_close_cb. */
typedef void (*pipe_done_fn)(tunnel_pipe *p, uint32_t reason);
/* Called exactly once when a dial is over: @p error is 0 (connected), an
 * errno value from connect, ETIMEDOUT when its time ran out, or ECANCELED when
 * the tunnel closed first (p->closed is set then: there is nothing to answer).
 * On any error the dialing socket is already closed. */
typedef void (*pipe_dialed_fn)(tunnel_pipe *p, int error);

struct tunnel_pipe {
    watcher w; /* the fd side, in the loop while attached */
    hbone_conn *conn;
    int32_t tunnel;
    int in_fd, out_fd; /* -1 until attached; may be one socket */
    int echo;          /* no fds: the tunnel's bytes go back into it */
    int in_loop;       /* w is in the loop, which releases it */
    int dialing;       /* waiting for the upstream TCP connect */
    uint64_t dial_deadline;
    int established;
    uint8_t *to_tunnel, *to_fd;
    size_t to_tunnel_len, to_fd_len;
    int in_eof, tunnel_shut, peer_ended, fd_shut, closed;
    uint64_t up, down; /* bytes fd -> tunnel, tunnel -> fd */
    uint64_t started;
    pipe_done_fn done;
    pipe_dialed_fn dialed;
    void *ctx;
    void *dial_ctx;      /* the dialer's, for @p dialed (serve: the peer's share) */
    const char *outcome; /* for the log line, when the tunnel was answered early */
    char label[400];     /* for log lines */
};

tunnel_pipe *pipe_new(hbone_conn *conn, int32_t tunnel, pipe_done_fn done, void *ctx);
/* Connect the fd side once the tunnel is established. One socket serves as
 * both; otherwise @p out_fd is written blocking (stdout). */
int pipe_attach(tunnel_pipe *p, int in_fd, int out_fd);
/* No fds: echo the tunnel's bytes back. */
void pipe_attach_echo(tunnel_pipe *p);
/* Dial @p address ("ip:port") for this tunnel, giving up after @p timeout_ms;
 * @p dialed reports the end of it, then pipe_attach() is implied on success.
 * Returns 0, or an error with nothing dialing (and @p dialed never called). */
int pipe_dial(tunnel_pipe *p, const char *address, size_t len, int timeout_ms,
              pipe_dialed_fn dialed);

/* hbone callbacks that find the pipe through the tunnel's user data. */
void pipe_on_data(hbone_conn *conn, int32_t tunnel, const uint8_t *data, size_t len, void *user);
void pipe_on_end(hbone_conn *conn, int32_t tunnel, void *user);
void pipe_on_writable(hbone_conn *conn, int32_t tunnel, void *user);
void pipe_on_close(hbone_conn *conn, int32_t tunnel, uint32_t reason, void *user);

#endif
