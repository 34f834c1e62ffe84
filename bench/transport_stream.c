/* SPDX-License-Identifier: MIT */
/*
 * The baselines: one channel per socket, as plain TCP or as raw TLS 1.3
 * (wolfSSL on the socket, mutual authentication with the same certificates,
 * cipher and 16 KiB records as libhbone). TLS has no half-close of its own
 * here: a FIN after the last record ends a direction, as END_STREAM does in
 * HBONE.
 *
 * The TLS baseline gets the same output strategy as libhbone's io driver:
 * records collect in a buffer and leave in one send() per loop round, and
 * reads take 64 KiB at a time (plain wolfSSL makes a system call per record
 * written and two per record read), so that the comparison measures HBONE's
 * framing, not a better use of the socket.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <wolfssl/options.h>

#include <wolfssl/ssl.h>

#include <hbone/io.h>

#include "bench.h"

#define READ_BUFFER (256 * 1024)
#define RECORD 16384
/* TLS: stop taking writes while this much ciphertext waits (libhbone's
 * high-water mark), resume at half. */
#define OUTPUT_HIGH_WATER (256 * 1024)
#define TLS_READ_BUFFER (64 * 1024) /* as libhbone's io driver */

typedef struct stream {
    loop_source src;
    channel ch;
    WOLFSSL *ssl; /* NULL: plain TCP */
    int server;
    int open;        /* handshake done (TCP: connected) */
    int want_write;  /* a write returned AGAIN: tell the workload later */
    int shut_wanted; /* TLS: shutdown once the buffered records left */
    int shut, peer_ended, closed;
    uint32_t hs_want; /* before open: what the connect or handshake waits for */
    /* TLS: records waiting for the socket. */
    uint8_t *out;
    size_t out_off, out_len, out_cap;
    /* TLS: bytes read from the socket, not yet taken by wolfSSL: in
     * shared_input during the stream's turn, else its own copy or NULL. */
    uint8_t *in;
    size_t in_off, in_len;
} stream;

/* TLS input is read into one buffer for all streams, as libhbone's io driver
 * reads; a stream keeps a copy of its own only of what is left when its turn
 * ends, so an idle one holds no input buffer. */
static uint8_t shared_input[TLS_READ_BUFFER];

static WOLFSSL_CTX *client_ctx, *server_ctx;
static transport_kind active_kind;
static stream **clients;
static size_t n_clients;

static void load_ctx(WOLFSSL_CTX **ctx, int server, const bench_pki *pki)
{
    bench_creds creds;
    bench_creds_load(&creds, pki, server ? "server" : "client");
    *ctx = wolfSSL_CTX_new(server ? wolfTLSv1_3_server_method() : wolfTLSv1_3_client_method());
    if (!*ctx)
        die("wolfSSL_CTX_new failed");
    /* What libhbone negotiates: AES-128-GCM, P-256, mutual authentication. */
    int groups[] = {WOLFSSL_ECC_SECP256R1};
    const int pem = WOLFSSL_FILETYPE_PEM;
    if (wolfSSL_CTX_set_cipher_list(*ctx, "TLS13-AES128-GCM-SHA256") != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_set_groups(*ctx, groups, 1) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_use_certificate_chain_buffer_format(*ctx, (const unsigned char *)creds.chain,
                                                        (long)creds.chain_len,
                                                        pem) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_use_PrivateKey_buffer(*ctx, (const unsigned char *)creds.key,
                                          (long)creds.key_len, pem) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_load_verify_buffer(*ctx, (const unsigned char *)creds.bundle,
                                       (long)creds.bundle_len, pem) != WOLFSSL_SUCCESS)
        die("cannot load the TLS baseline's certificates from %s", pki->dir);
    bench_creds_free(&creds);
    wolfSSL_CTX_set_verify(
        *ctx, WOLFSSL_VERIFY_PEER | (server ? WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), NULL);
    if (server)
        (void)wolfSSL_CTX_no_ticket_TLSv13(*ctx);
}

int stream_transport_init(transport_kind kind, const bench_pki *pki)
{
    active_kind = kind;
    if (kind == TRANSPORT_TLS && !client_ctx) {
        if (wolfSSL_Init() != WOLFSSL_SUCCESS)
            die("wolfSSL_Init failed");
        load_ctx(&client_ctx, 0, pki);
        load_ctx(&server_ctx, 1, pki);
    }
    return 0;
}

/* --- one stream ------------------------------------------------------------ */

static void stream_close(stream *s)
{
    if (s->closed)
        return;
    s->closed = 1;
    loop_remove(&s->src);
    for (size_t i = 0; !s->server && i < n_clients; i++) {
        if (clients[i] == s) {
            clients[i] = clients[--n_clients];
            break;
        }
    }
    if (s->ssl)
        wolfSSL_free(s->ssl);
    close(s->src.fd);
    if (s->ch.on_close)
        s->ch.on_close(&s->ch);
    free(s->out);
    if (s->in != shared_input)
        free(s->in);
    s->in = NULL;
    loop_free_later(s);
}

static void maybe_finish(stream *s)
{
    if (s->shut && s->peer_ended)
        stream_close(s);
}

static size_t waiting(const stream *s)
{
    return s->out_len - s->out_off;
}

static void update_interest(stream *s)
{
    uint32_t ev = s->hs_want;
    if (s->open) {
        ev = s->peer_ended ? 0 : EPOLLIN;
        if (s->want_write || waiting(s))
            ev |= EPOLLOUT;
    }
    loop_update(&s->src, ev);
}

static void do_shutdown(stream *s)
{
    if (waiting(s)) {
        s->shut_wanted = 1; /* after the buffered records */
        return;
    }
    s->shut = 1;
    shutdown(s->src.fd, SHUT_WR);
    maybe_finish(s);
}

static int tls_error_is_retry(stream *s, int ret)
{
    int err = wolfSSL_get_error(s->ssl, ret);
    return err == WOLFSSL_ERROR_WANT_READ || err == WOLFSSL_ERROR_WANT_WRITE;
}

/* wolfSSL's output: collect it for the flush. */
static int tls_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    stream *s = ctx;
    size_t n = (size_t)sz;
    if (s->out_off && s->out_off >= waiting(s)) {
        memmove(s->out, s->out + s->out_off, waiting(s));
        s->out_len -= s->out_off;
        s->out_off = 0;
    }
    if (s->out_cap - s->out_len < n) {
        s->out_cap = (s->out_len + n) * 2;
        s->out = realloc(s->out, s->out_cap);
        if (!s->out)
            die("out of memory");
    }
    memcpy(s->out + s->out_len, buf, n);
    s->out_len += n;
    loop_mark_dirty(&s->src);
    return sz;
}

/* wolfSSL's input, from large reads (as libhbone's driver reads): wolfSSL
 * on its own asks for a record header, then the record. */
static int tls_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    stream *s = ctx;
    if (s->in_off == s->in_len) {
        if (s->in != shared_input)
            free(s->in);
        s->in = shared_input;
        s->in_off = s->in_len = 0;
        ssize_t n = recv(s->src.fd, s->in, TLS_READ_BUFFER, 0);
        if (n == 0)
            return WOLFSSL_CBIO_ERR_CONN_CLOSE;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return WOLFSSL_CBIO_ERR_WANT_READ;
        if (n < 0)
            return errno == EINTR ? WOLFSSL_CBIO_ERR_ISR : WOLFSSL_CBIO_ERR_CONN_RST;
        s->in_off = 0;
        s->in_len = (size_t)n;
    }
    size_t n = s->in_len - s->in_off < (size_t)sz ? s->in_len - s->in_off : (size_t)sz;
    memcpy(buf, s->in + s->in_off, n);
    s->in_off += n;
    return (int)n;
}

static void flush_output(stream *s)
{
    while (waiting(s)) {
        ssize_t n = send(s->src.fd, s->out + s->out_off, waiting(s), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                stream_close(s);
            return;
        }
        s->out_off += (size_t)n;
    }
    /* Drained: like a libhbone session, an idle stream holds no output. */
    free(s->out);
    s->out = NULL;
    s->out_off = s->out_len = s->out_cap = 0;
    if (s->shut_wanted) {
        s->shut_wanted = 0;
        do_shutdown(s);
    }
}

static int stream_write(channel *ch, const uint8_t *data, size_t len, size_t *accepted)
{
    stream *s = ch->transport;
    *accepted = 0;
    if (s->closed || s->shut || s->shut_wanted || !s->open)
        return -1;
    if (!s->ssl) {
        ssize_t n = send(s->src.fd, data, len, MSG_NOSIGNAL);
        if (n > 0)
            *accepted = (size_t)n;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            stream_close(s);
            return -1;
        }
    } else {
        while (*accepted < len && waiting(s) < OUTPUT_HIGH_WATER) {
            size_t chunk = len - *accepted < RECORD ? len - *accepted : RECORD;
            int ret = wolfSSL_write(s->ssl, data + *accepted, (int)chunk);
            if (ret <= 0) {
                stream_close(s);
                return -1;
            }
            *accepted += (size_t)ret;
        }
    }
    if (*accepted < len) {
        s->want_write = 1;
        update_interest(s);
    }
    return *accepted ? 0 : -1;
}

static void stream_consume(channel *ch, size_t len)
{
    (void)ch;
    (void)len; /* the kernel's window does this for sockets */
}

static void stream_shutdown(channel *ch)
{
    stream *s = ch->transport;
    if (!s->closed && !s->shut)
        do_shutdown(s);
}

static void stream_close_connection(channel *ch)
{
    stream *s = ch->transport;
    s->ch.on_close = NULL;
    stream_close(s);
}

static const channel_ops stream_ops = {stream_write, stream_consume, stream_shutdown,
                                       stream_close_connection};

static void handshake(stream *s)
{
    int ret = s->server ? wolfSSL_accept(s->ssl) : wolfSSL_connect(s->ssl);
    if (ret == WOLFSSL_SUCCESS) {
        s->open = 1;
        if (s->server)
            server_workload_attach(&s->ch);
        else if (s->ch.on_open)
            s->ch.on_open(&s->ch, 1);
        return;
    }
    if (tls_error_is_retry(s, ret)) {
        s->hs_want =
            wolfSSL_get_error(s->ssl, ret) == WOLFSSL_ERROR_WANT_WRITE ? EPOLLOUT : EPOLLIN;
    } else {
        if (!s->server && s->ch.on_open)
            s->ch.on_open(&s->ch, 0);
        stream_close(s);
    }
}

static void read_input(stream *s)
{
    static uint8_t buf[READ_BUFFER];
    /* TLS reads until wolfSSL wants the socket: bytes already read into our
     * buffer would not wake epoll again. */
    int rounds = s->ssl ? 64 : 4;
    for (int round = 0; round < rounds && !s->closed && !s->peer_ended; round++) {
        ssize_t n;
        if (s->ssl) {
            int ret = wolfSSL_read(s->ssl, buf, sizeof(buf));
            if (ret <= 0 && tls_error_is_retry(s, ret))
                return;
            n = ret > 0 ? ret : 0; /* an error or the FIN: the end */
        } else {
            n = recv(s->src.fd, buf, sizeof(buf), 0);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                return;
            if (n < 0)
                n = 0;
        }
        if (n == 0) {
            s->peer_ended = 1;
            if (s->ch.on_end)
                s->ch.on_end(&s->ch);
            if (!s->closed)
                maybe_finish(s);
            return;
        }
        if (s->ch.on_data)
            s->ch.on_data(&s->ch, buf, (size_t)n);
    }
}

static void on_writable(stream *s)
{
    if (s->ssl)
        flush_output(s);
    if (!s->closed && s->want_write && waiting(s) <= OUTPUT_HIGH_WATER / 2) {
        s->want_write = 0;
        if (s->ch.on_writable)
            s->ch.on_writable(&s->ch);
    }
}

static void stream_flush(loop_source *src)
{
    stream *s = (stream *)src;
    on_writable(s);
    if (!s->closed)
        update_interest(s);
}

/* The end of a stream's turn: what it read and did not use moves out of
 * shared_input. */
static void keep_leftover_input(stream *s)
{
    if (s->closed || s->in != shared_input)
        return;
    size_t left = s->in_len - s->in_off;
    s->in = NULL;
    if (left) {
        if (!(s->in = malloc(left)))
            die("out of memory");
        memcpy(s->in, shared_input + s->in_off, left);
    }
    s->in_off = 0;
    s->in_len = left;
}

static void stream_turn(stream *s, uint32_t ready)
{
    if (!s->open && s->ssl) {
        handshake(s); /* wolfSSL reports a failed connect as an error */
        /* Data that came with the last handshake flight is already read. */
        if (s->open && !s->closed)
            read_input(s);
        if (!s->closed)
            update_interest(s);
        return;
    }
    if (!s->open) {
        if (ready & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
            s->open = hbone_io_connect_result(s->src.fd) == 0;
            if (s->ch.on_open)
                s->ch.on_open(&s->ch, s->open);
            if (!s->open)
                stream_close(s);
        }
        if (!s->closed)
            update_interest(s);
        return;
    }
    if (ready & EPOLLOUT)
        on_writable(s);
    if (!s->closed && (ready & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        read_input(s);
    if (!s->closed)
        update_interest(s);
}

static void stream_handle(loop_source *src, uint32_t ready)
{
    stream *s = (stream *)src;
    stream_turn(s, ready);
    keep_leftover_input(s);
}

static stream *stream_new(int fd, int server)
{
    stream *s = calloc(1, sizeof(*s));
    if (!s)
        die("out of memory");
    s->src.fd = fd;
    s->src.handle = stream_handle;
    s->server = server;
    s->src.flush = stream_flush;
    s->ch.ops = &stream_ops;
    s->ch.transport = s;
    if (active_kind == TRANSPORT_TLS) {
        s->ssl = wolfSSL_new(server ? server_ctx : client_ctx);
        if (!s->ssl)
            die("wolfSSL_new failed");
        wolfSSL_SSLSetIORecv(s->ssl, tls_recv);
        wolfSSL_SSLSetIOSend(s->ssl, tls_send);
        wolfSSL_SetIOReadCtx(s->ssl, s);
        wolfSSL_SetIOWriteCtx(s->ssl, s);
        if (!server)
            (void)wolfSSL_UseKeyShare(s->ssl, WOLFSSL_ECC_SECP256R1);
    }
    /* Connecting waits for writability; a TLS server waits for the hello. */
    s->hs_want = server ? EPOLLIN : EPOLLOUT;
    if (loop_add(&s->src, s->hs_want, 0) < 0)
        die("epoll: %s", strerror(errno));
    return s;
}

/* --- server ------------------------------------------------------------ */

static void accept_ready(loop_source *src, uint32_t ready)
{
    (void)ready;
    int fd;
    while (hbone_io_accept(src->fd, &fd) == 0) {
        stream *s = stream_new(fd, 1);
        if (!s->ssl) {
            s->open = 1;
            server_workload_attach(&s->ch);
            update_interest(s);
        }
    }
}

void stream_transport_serve(int listen_fd)
{
    loop_serve(listen_fd, accept_ready);
}

/* --- client ------------------------------------------------------------ */

int stream_transport_open(const char *address, size_t n,
                          void (*attach)(channel *ch, size_t index, void *arg), void *arg)
{
    clients = realloc(clients, (n_clients + n) * sizeof(*clients));
    if (!clients)
        die("out of memory");
    for (size_t i = 0; i < n; i++) {
        int fd;
        if (hbone_io_connect(address, strlen(address), &fd) < 0)
            return -1;
        stream *s = stream_new(fd, 0);
        attach(&s->ch, i, arg);
        clients[n_clients++] = s;
    }
    return 0;
}

void stream_transport_close_all(void)
{
    while (n_clients) {
        clients[n_clients - 1]->ch.on_close = NULL;
        stream_close(clients[n_clients - 1]);
    }
}
