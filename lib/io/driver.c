/* SPDX-License-Identifier: MIT */
/* One hbone_conn on one nonblocking socket. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <hbone/error.h>
#include <hbone/io.h>

#include "common/mem.h"

/* Read in large chunks (TLS records are up to 16 KiB; several per read),
 * and bound the reads per call so one busy socket cannot starve the loop. */
#define READ_BUFFER (64 * 1024)
#define READS_PER_CALL 16
/* Once the connection is finished and its last bytes are out, the driver
 * sends its FIN and reads, discarding, until the peer's, for at most this
 * long. Closing a socket that still holds unread bytes (the peer's last
 * WINDOW_UPDATE, say) makes the kernel answer with RST, and an RST can make
 * the peer's kernel drop our last frames before the peer has read them: a
 * tunnel that ended cleanly would arrive as lost. */
#define LINGER_MS 2000

struct hbone_io {
    hbone_conn *conn;
    int fd;
    int eof;
    int finished;  /* the connection is done: flush, then linger */
    int lingering; /* our FIN is sent: waiting for the peer's */
    uint64_t linger_until;
    uint8_t *in; /* ciphertext read but not yet taken by the connection */
    size_t in_len;
};

int hbone_io_new(hbone_io **out, hbone_conn *conn, int fd)
{
    if (!out || !conn || fd < 0)
        return HBONE_ERR_INVALID_ARGUMENT;
    hbone_io *io = hb_calloc(hb_mem_default(), 1, sizeof(*io));
    if (!io)
        return HBONE_ERR_NOMEM;
    io->conn = conn;
    io->fd = fd;
    *out = io;
    return 0;
}

void hbone_io_del(hbone_io *io)
{
    if (!io)
        return;
    close(io->fd);
    hb_free(hb_mem_default(), io->in);
    hb_free(hb_mem_default(), io);
}

int hbone_io_events(hbone_io *io, uint64_t now_ms)
{
    if (io->lingering)
        return HBONE_IO_READ;
    size_t pending = 0;
    (void)hbone_conn_output(io->conn, &pending, now_ms);
    if (io->finished)
        return pending ? HBONE_IO_WRITE : HBONE_IO_READ;
    /* A full read buffer means the connection holds input back until the
     * peer reads: poll for readability again only once there is room. */
    int can_read = !io->eof && io->in_len < READ_BUFFER;
    return (can_read ? HBONE_IO_READ : 0) | (pending ? HBONE_IO_WRITE : 0);
}

int hbone_io_timeout_ms(const hbone_io *io, uint64_t now_ms)
{
    if (io->lingering)
        return io->linger_until > now_ms ? (int)(io->linger_until - now_ms) : 0;
    uint64_t expiry = hbone_conn_get_expiry(io->conn);
    if (expiry == UINT64_MAX)
        return -1;
    if (expiry <= now_ms)
        return 0;
    uint64_t ms = expiry - now_ms;
    return ms > 1000000000 ? 1000000000 : (int)ms;
}

/* Hand buffered ciphertext to the connection; keep what it does not take. */
static int feed(hbone_io *io, uint64_t now_ms)
{
    size_t consumed = 0;
    int r = hbone_conn_input(io->conn, io->in, io->in_len, &consumed, now_ms);
    memmove(io->in, io->in + consumed, io->in_len - consumed);
    io->in_len -= consumed;
    return r;
}

static void release_idle_buffer(hbone_io *io)
{
    if (io->in_len == 0) {
        hb_free(hb_mem_default(), io->in);
        io->in = NULL;
    }
}

/* Reads land here when nothing is held back: one buffer per thread, so that
 * idle connections hold none and reads do not allocate. A callback that
 * drives another connection's driver from inside input finds it in use and
 * falls back to that connection's own buffer. */
static _Thread_local uint8_t scratch[READ_BUFFER];
static _Thread_local int scratch_in_use;

/* Feed @p n bytes read into the scratch buffer; keep what is not taken. */
static int feed_scratch(hbone_io *io, size_t n, uint64_t now_ms)
{
    size_t consumed = 0;
    scratch_in_use = 1;
    int r = hbone_conn_input(io->conn, scratch, n, &consumed, now_ms);
    scratch_in_use = 0;
    if (consumed < n) {
        if (!io->in && !(io->in = hb_malloc(hb_mem_default(), READ_BUFFER)))
            return HBONE_ERR_NOMEM;
        memcpy(io->in, scratch + consumed, n - consumed);
        io->in_len = n - consumed;
    }
    return r;
}

static int read_socket(hbone_io *io, uint64_t now_ms)
{
    for (int i = 0; i < READS_PER_CALL && !io->eof && io->in_len < READ_BUFFER; i++) {
        int use_scratch = io->in_len == 0 && !scratch_in_use;
        if (!use_scratch && !io->in && !(io->in = hb_malloc(hb_mem_default(), READ_BUFFER)))
            return HBONE_ERR_NOMEM;
        uint8_t *buf = use_scratch ? scratch : io->in + io->in_len;
        ssize_t n = recv(io->fd, buf, READ_BUFFER - io->in_len, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                break;
            io->eof = 1; /* a reset or error is the end of the transport too */
            break;
        }
        if (n == 0) {
            io->eof = 1;
            break;
        }
        int r;
        if (use_scratch) {
            r = feed_scratch(io, (size_t)n, now_ms);
        } else {
            io->in_len += (size_t)n;
            r = feed(io, now_ms);
        }
        if (r < 0)
            return r;
    }
    release_idle_buffer(io); /* idle: give the read buffer back */
    if (io->eof)
        hbone_conn_input_eof(io->conn);
    return 0;
}

static int write_socket(hbone_io *io, uint64_t now_ms)
{
    size_t len;
    const uint8_t *out;
    while ((out = hbone_conn_output(io->conn, &len, now_ms)) != NULL) {
        ssize_t n = send(io->fd, out, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return 0;
            io->eof = 1;
            hbone_conn_input_eof(io->conn);
            return 0;
        }
        hbone_conn_output_consume(io->conn, (size_t)n);
    }
    return 0;
}

/* Lingering: read and drop what the peer still sends. Returns 1 once its
 * FIN (or an error, or the deadline) says the socket can be closed. */
static int linger(hbone_io *io, uint64_t now_ms)
{
    for (int i = 0; i < READS_PER_CALL; i++) {
        uint8_t drop[4096];
        ssize_t n = recv(io->fd, drop, sizeof(drop), 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            return 1;
        if (n < 0)
            break;
    }
    return now_ms >= io->linger_until;
}

int hbone_io_handle(hbone_io *io, int ready, uint64_t now_ms)
{
    if (!io)
        return HBONE_ERR_INVALID_ARGUMENT;
    if (io->lingering)
        return linger(io, now_ms) ? HBONE_ERR_CLOSED : 0;
    int r = 0;
    if ((ready & HBONE_IO_READ) && !io->finished)
        r = read_socket(io, now_ms);
    if (r == 0 && !io->finished && hbone_conn_get_expiry(io->conn) <= now_ms)
        r = hbone_conn_handle_expiry(io->conn, now_ms);
    /* Always try to write: reading and timers produce output, and a failed
     * connection may still owe the peer an alert. */
    (void)write_socket(io, now_ms);
    if (r == 0 && io->in_len && !io->finished) {
        /* Input held back until the peer read our output may go in now. */
        r = feed(io, now_ms);
        release_idle_buffer(io);
        (void)write_socket(io, now_ms);
    }
    if (io->eof)
        return HBONE_ERR_CLOSED; /* the peer is gone: nothing to wait for */
    if (r < 0 || hbone_conn_is_closed(io->conn))
        io->finished = 1;
    if (!io->finished)
        return 0;
    size_t pending = 0;
    (void)hbone_conn_output(io->conn, &pending, now_ms);
    if (pending)
        return 0; /* the last bytes first (an alert, a GOAWAY) */
    shutdown(io->fd, SHUT_WR);
    io->lingering = 1;
    io->linger_until = now_ms + LINGER_MS;
    return linger(io, now_ms) ? HBONE_ERR_CLOSED : 0;
}
