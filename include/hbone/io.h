/* SPDX-License-Identifier: MIT */
/*
 * libhbone io: the optional POSIX socket driver. It owns file descriptors
 * and nothing else: an hbone_io moves bytes between one nonblocking TCP
 * socket and one hbone_conn, and tells the application's event loop (poll,
 * epoll, libuv...) what to wait for and for how long.
 *
 *   for (;;) {
 *       pfd.events = hbone_io_events(io);          // HBONE_IO_READ/WRITE
 *       poll(&pfd, 1, hbone_io_timeout_ms(io, now));
 *       r = hbone_io_handle(io, pfd.revents ? ready : 0, now);
 *       if (r == HBONE_ERR_CLOSED) break;          // done, or failed
 *   }
 */
#ifndef HBONE_IO_H
#define HBONE_IO_H

#include <stddef.h>
#include <stdint.h>

#include <hbone/conn.h>
#include <hbone/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Interest and readiness bits (the same values as POLLIN and POLLOUT). */
#define HBONE_IO_READ 0x001
#define HBONE_IO_WRITE 0x004

/**
 * Listen on "a.b.c.d:port" or "[ipv6]:port" (port 0: any). The socket is
 * nonblocking, with SO_REUSEADDR. *@p port_out (if not NULL) receives the
 * bound port. Returns 0, HBONE_ERR_AUTHORITY (bad address text) or
 * HBONE_ERR_IO (the system call's error is in errno).
 */
HBONE_API int hbone_io_listen(const char *address, size_t len, int backlog, int *fd_out,
                              uint16_t *port_out);

/**
 * Accept one connection as a nonblocking socket with TCP_NODELAY. Returns
 * 0, HBONE_ERR_AGAIN (none pending) or HBONE_ERR_IO.
 */
HBONE_API int hbone_io_accept(int listen_fd, int *fd_out);

/**
 * Start connecting to "a.b.c.d:port" or "[ipv6]:port" without blocking; the
 * socket becomes writable when the connection is made (or failed: see
 * hbone_io_connect_result()). Returns 0, HBONE_ERR_AUTHORITY or HBONE_ERR_IO.
 */
HBONE_API int hbone_io_connect(const char *address, size_t len, int *fd_out);

/** After a connecting socket became writable: 0 if connected, else
 * HBONE_ERR_IO with errno set to the reason (ECONNREFUSED...). */
HBONE_API int hbone_io_connect_result(int fd);

/** A socket driver for one connection; opaque. */
typedef struct hbone_io hbone_io;

/**
 * Drive @p conn over the connected socket @p fd, which the driver then owns
 * (it is closed by hbone_io_del()); @p conn stays the caller's and must
 * outlive the driver. Returns 0, HBONE_ERR_INVALID_ARGUMENT or
 * HBONE_ERR_NOMEM.
 */
HBONE_API int hbone_io_new(hbone_io **out, hbone_conn *conn, int fd);

/** Close the socket and free the driver (NULL is a no-op). */
HBONE_API void hbone_io_del(hbone_io *io);

/** What to wait for: HBONE_IO_READ, plus HBONE_IO_WRITE while output waits. */
HBONE_API int hbone_io_events(hbone_io *io, uint64_t now_ms);

/** Milliseconds until the connection's next timer (for poll), -1 if none. */
HBONE_API int hbone_io_timeout_ms(const hbone_io *io, uint64_t now_ms);

/**
 * Do the work: read what the socket has (in large batches) into the
 * connection, run due timers, and write what the connection has. @p ready
 * holds the HBONE_IO_* bits the event loop reported (0 after a timeout).
 * Returns 0; HBONE_ERR_CLOSED once the connection is finished (ended
 * cleanly, failed, or the transport closed) and the driver can be deleted;
 * hbone_conn_error_detail() tells a failure apart. A finished connection's
 * last bytes are sent first; then the driver sends FIN and waits up to 2 s
 * for the peer's, reading and dropping what still comes (closing a socket
 * with unread bytes would send RST, which can destroy our last frames on
 * their way to the peer). Keep polling with hbone_io_events() and
 * hbone_io_timeout_ms() meanwhile.
 */
HBONE_API int hbone_io_handle(hbone_io *io, int ready, uint64_t now_ms);

/** Milliseconds on CLOCK_MONOTONIC: the clock the io layer's callers use. */
HBONE_API uint64_t hbone_io_now_ms(void);

#ifdef __cplusplus
}
#endif

#endif /* HBONE_IO_H */
