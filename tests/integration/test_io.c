/* SPDX-License-Identifier: MIT */
/*
 * The socket driver: an HBONE client and server on real loopback sockets
 * (IPv4 and IPv6), each driven by hbone_io from one poll() loop.
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <hbone/hbone.h>

#include "testlib.h"

#define SERVER_ID "spiffe://cluster.local/ns/default/sa/server"
#define PAYLOAD (1u << 20)

struct state {
    int32_t tunnel;
    int status, closed;
    uint32_t reason;
    size_t sent, received;
    uint32_t sent_sum, received_sum;
    int server_requests;
    /* The server echoes; what the tunnel could not take yet waits here. */
    uint8_t *echo;
    size_t echo_len;
    int echo_end; /* the client ended: end too once the echo is out */
};

static void server_request(hbone_conn *conn, int32_t tunnel, const char *host, size_t host_len,
                           uint16_t port, int kind, void *user)
{
    (void)host;
    (void)host_len;
    (void)port;
    (void)kind;
    ((struct state *)user)->server_requests++;
    ck_assert_int_eq(hbone_conn_tunnel_accept(conn, tunnel, NULL, NULL, NULL, NULL, 0), 0);
}

/* Write the pending echo; credit the peer for what left, end if due. */
static void flush_echo(hbone_conn *conn, int32_t tunnel, struct state *st)
{
    while (st->echo_len) {
        size_t accepted = 0;
        int r = hbone_conn_tunnel_write(conn, tunnel, st->echo, st->echo_len, &accepted);
        if (r == HBONE_ERR_AGAIN)
            return; /* a writable event brings us back */
        ck_assert_int_eq(r, 0);
        memmove(st->echo, st->echo + accepted, st->echo_len - accepted);
        st->echo_len -= accepted;
        ck_assert_int_eq(hbone_conn_tunnel_consume(conn, tunnel, accepted), 0);
    }
    if (st->echo_end) {
        st->echo_end = 0;
        ck_assert_int_eq(hbone_conn_tunnel_shutdown(conn, tunnel), 0);
    }
}

static void server_data(hbone_conn *conn, int32_t tunnel, const uint8_t *data, size_t len,
                        void *user)
{
    struct state *st = user;
    st->echo = realloc(st->echo, st->echo_len + len);
    ck_assert_ptr_nonnull(st->echo);
    memcpy(st->echo + st->echo_len, data, len);
    st->echo_len += len;
    flush_echo(conn, tunnel, st);
}

static void server_writable(hbone_conn *conn, int32_t tunnel, void *user)
{
    flush_echo(conn, tunnel, user);
}

static void server_end(hbone_conn *conn, int32_t tunnel, void *user)
{
    struct state *st = user;
    st->echo_end = 1;
    flush_echo(conn, tunnel, st);
}

static void client_response(hbone_conn *conn, int32_t tunnel, int status, void *user)
{
    (void)conn;
    (void)tunnel;
    ((struct state *)user)->status = status;
}

static void client_data(hbone_conn *conn, int32_t tunnel, const uint8_t *data, size_t len,
                        void *user)
{
    struct state *st = user;
    st->received += len;
    st->received_sum = tl_checksum(st->received_sum, data, len);
    ck_assert_int_eq(hbone_conn_tunnel_consume(conn, tunnel, len), 0);
}

static void client_close(hbone_conn *conn, int32_t tunnel, uint32_t reason, void *user)
{
    (void)conn;
    (void)tunnel;
    struct state *st = user;
    st->closed = 1;
    st->reason = reason;
}

static void send_more(hbone_conn *conn, struct state *st)
{
    uint8_t chunk[32768];
    while (st->status == 200 && st->sent < PAYLOAD) {
        size_t n = sizeof(chunk) < PAYLOAD - st->sent ? sizeof(chunk) : PAYLOAD - st->sent;
        for (size_t i = 0; i < n; i++)
            chunk[i] = (uint8_t)((st->sent + i) * 7 + 1);
        size_t accepted = 0;
        if (hbone_conn_tunnel_write(conn, st->tunnel, chunk, n, &accepted) != 0)
            return;
        st->sent_sum = tl_checksum(st->sent_sum, chunk, accepted);
        st->sent += accepted;
        if (st->sent == PAYLOAD)
            ck_assert_int_eq(hbone_conn_tunnel_shutdown(conn, st->tunnel), 0);
    }
}

static void client_writable(hbone_conn *conn, int32_t tunnel, void *user)
{
    (void)tunnel;
    send_more(conn, user);
}

/* Run both drivers until @p stop says so; returns 0, or -1 after 10 s. */
static int loop(hbone_io *a, hbone_io *b, int fd_a, int fd_b, int (*stop)(struct state *),
                struct state *st, hbone_conn *client)
{
    uint64_t give_up = hbone_io_now_ms() + 10000;
    int done_a = 0, done_b = 0;
    while (!stop(st)) {
        uint64_t now = hbone_io_now_ms();
        if (now > give_up)
            return -1;
        struct pollfd fds[2] = {{fd_a, (short)(done_a ? 0 : hbone_io_events(a, now)), 0},
                                {fd_b, (short)(done_b ? 0 : hbone_io_events(b, now)), 0}};
        int t1 = hbone_io_timeout_ms(a, now), t2 = hbone_io_timeout_ms(b, now);
        int timeout = t1 < 0 ? t2 : (t2 < 0 || t1 < t2 ? t1 : t2);
        if (timeout < 0 || timeout > 100)
            timeout = 100;
        ck_assert_int_ge(poll(fds, 2, timeout), 0);
        now = hbone_io_now_ms();
        /* A hang-up or error is read as such by the driver. */
        for (int i = 0; i < 2; i++) {
            int ready = fds[i].revents & (POLLHUP | POLLERR) ? HBONE_IO_READ : fds[i].revents;
            int *done = i ? &done_b : &done_a;
            if (!*done)
                *done = hbone_io_handle(i ? b : a, ready, now) == HBONE_ERR_CLOSED;
        }
        send_more(client, st);
        if (done_a && done_b)
            break;
    }
    return 0;
}

static int tunnel_closed(struct state *st)
{
    return st->closed;
}

static void tunnel_over_loopback(const char *listen_address)
{
    struct state st = {.sent_sum = TL_CHECKSUM_INIT, .received_sum = TL_CHECKSUM_INIT};
    int lfd, cfd, sfd;
    uint16_t port;
    ck_assert_int_eq(hbone_io_listen(listen_address, strlen(listen_address), 8, &lfd, &port), 0);
    ck_assert_uint_ne(port, 0);
    char target[80];
    snprintf(target, sizeof(target), "%.*s%u",
             (int)(strrchr(listen_address, ':') + 1 - listen_address), listen_address, port);
    ck_assert_int_eq(hbone_io_connect(target, strlen(target), &cfd), 0);
    struct pollfd pfd = {lfd, POLLIN, 0};
    ck_assert_int_eq(poll(&pfd, 1, 5000), 1);
    ck_assert_int_eq(hbone_io_accept(lfd, &sfd), 0);
    close(lfd);
    pfd = (struct pollfd){cfd, POLLOUT, 0};
    ck_assert_int_eq(poll(&pfd, 1, 5000), 1);
    ck_assert_int_eq(hbone_io_connect_result(cfd), 0);

    hbone_callbacks *scbs, *ccbs;
    ck_assert_int_eq(hbone_callbacks_new(&scbs), 0);
    ck_assert_int_eq(hbone_callbacks_new(&ccbs), 0);
    hbone_callbacks_set_tunnel_request(scbs, server_request);
    hbone_callbacks_set_tunnel_data(scbs, server_data);
    hbone_callbacks_set_tunnel_end(scbs, server_end);
    hbone_callbacks_set_tunnel_writable(scbs, server_writable);
    hbone_callbacks_set_tunnel_response(ccbs, client_response);
    hbone_callbacks_set_tunnel_data(ccbs, client_data);
    hbone_callbacks_set_tunnel_writable(ccbs, client_writable);
    hbone_callbacks_set_tunnel_close(ccbs, client_close);
    hbone_config *scfg = tl_config("server", NULL), *ccfg = tl_config("client", NULL);
    hbone_conn *server, *client;
    uint64_t now = hbone_io_now_ms();
    ck_assert_int_eq(hbone_conn_server_new(&server, scfg, scbs, &st, now), 0);
    ck_assert_int_eq(hbone_conn_client_new(&client, ccfg, ccbs, &st, now), 0);
    hbone_callbacks_del(scbs);
    hbone_callbacks_del(ccbs);
    hbone_config_del(scfg);
    hbone_config_del(ccfg);
    hbone_spiffe_id *id = tl_id(SERVER_ID);
    ck_assert_int_eq(hbone_conn_expect_peer(client, id), 0);
    hbone_spiffe_id_del(id);
    ck_assert_int_eq(
        hbone_conn_tunnel_open(client, "10.0.0.2:80", 11, NULL, NULL, NULL, NULL, 0, &st.tunnel),
        0);
    hbone_io *cio, *sio;
    ck_assert_int_eq(hbone_io_new(&cio, client, cfd), 0);
    ck_assert_int_eq(hbone_io_new(&sio, server, sfd), 0);

    ck_assert_int_eq(loop(cio, sio, cfd, sfd, tunnel_closed, &st, client), 0);
    ck_assert_int_eq(st.server_requests, 1);
    ck_assert_int_eq(st.status, 200);
    ck_assert_uint_eq(st.received, PAYLOAD);
    ck_assert_uint_eq(st.received_sum, st.sent_sum);
    ck_assert_uint_eq(st.reason, 0);

    free(st.echo);
    hbone_io_del(cio);
    hbone_io_del(sio);
    hbone_conn_del(client);
    hbone_conn_del(server);
}

START_TEST(tunnel_over_ipv4_loopback)
{
    tunnel_over_loopback("127.0.0.1:0");
}
END_TEST

START_TEST(tunnel_over_ipv6_loopback)
{
    tunnel_over_loopback("[::1]:0");
}
END_TEST

START_TEST(refused_connection_is_reported)
{
    /* A port nobody listens on: bind one, close it, connect to it. */
    int lfd, fd;
    uint16_t port;
    ck_assert_int_eq(hbone_io_listen("127.0.0.1:0", 11, 1, &lfd, &port), 0);
    close(lfd);
    char target[32];
    snprintf(target, sizeof(target), "127.0.0.1:%u", port);
    ck_assert_int_eq(hbone_io_connect(target, strlen(target), &fd), 0);
    struct pollfd pfd = {fd, POLLOUT, 0};
    ck_assert_int_eq(poll(&pfd, 1, 5000), 1);
    ck_assert_int_eq(hbone_io_connect_result(fd), HBONE_ERR_IO);
    ck_assert_int_eq(errno, ECONNREFUSED);
    close(fd);
}
END_TEST

/* A finished connection's socket is not closed while the peer may still
 * send (closing with unread bytes would answer RST, which can destroy our
 * last frames on their way): the driver sends FIN, drops what still comes,
 * and reports the end at the peer's FIN, or after at most 2 s. */
START_TEST(a_finished_connection_waits_for_the_peers_end)
{
    int lfd, peer, sfd;
    uint16_t port;
    ck_assert_int_eq(hbone_io_listen("127.0.0.1:0", 11, 8, &lfd, &port), 0);
    char target[32];
    snprintf(target, sizeof(target), "127.0.0.1:%u", port);
    ck_assert_int_eq(hbone_io_connect(target, strlen(target), &peer), 0);
    struct pollfd pfd = {lfd, POLLIN, 0};
    ck_assert_int_eq(poll(&pfd, 1, 5000), 1);
    ck_assert_int_eq(hbone_io_accept(lfd, &sfd), 0);
    close(lfd);
    pfd = (struct pollfd){peer, POLLOUT, 0};
    ck_assert_int_eq(poll(&pfd, 1, 5000), 1);
    hbone_config *cfg = tl_config("server", NULL);
    hbone_callbacks *cbs;
    ck_assert_int_eq(hbone_callbacks_new(&cbs), 0);
    hbone_conn *server;
    uint64_t now = 1000;
    ck_assert_int_eq(hbone_conn_server_new(&server, cfg, cbs, NULL, now), 0);
    hbone_callbacks_del(cbs);
    hbone_config_del(cfg);
    hbone_io *io;
    ck_assert_int_eq(hbone_io_new(&io, server, sfd), 0);

    /* Plaintext HTTP fails the TLS handshake: the connection is finished. */
    static const char get[] = "GET / HTTP/1.1\r\n\r\n";
    ck_assert_int_eq(send(peer, get, sizeof(get) - 1, 0), (ssize_t)sizeof(get) - 1);
    pfd = (struct pollfd){sfd, POLLIN, 0};
    ck_assert_int_eq(poll(&pfd, 1, 5000), 1);
    ck_assert_int_eq(hbone_io_handle(io, HBONE_IO_READ, now), 0); /* not closed yet */
    ck_assert_int_lt(hbone_conn_input(server, NULL, 0, &(size_t){0}, now), 0);
    ck_assert_int_eq(hbone_io_events(io, now), HBONE_IO_READ);
    int wait = hbone_io_timeout_ms(io, now);
    ck_assert_int_gt(wait, 0);
    ck_assert_int_le(wait, 2000);
    /* The peer gets whatever was owed (an alert, if any), then our FIN. */
    uint8_t buf[4096];
    ssize_t n = -1;
    pfd = (struct pollfd){peer, POLLIN, 0};
    while (poll(&pfd, 1, 5000) == 1 && (n = recv(peer, buf, sizeof(buf), 0)) > 0)
        continue;
    ck_assert_int_eq(n, 0); /* EOF, and the socket still open: no RST */
    /* What the peer still sends is read and dropped. */
    ck_assert_int_eq(send(peer, "late", 4, 0), 4);
    pfd = (struct pollfd){sfd, POLLIN, 0};
    ck_assert_int_eq(poll(&pfd, 1, 5000), 1);
    ck_assert_int_eq(hbone_io_handle(io, HBONE_IO_READ, now + 10), 0);
    /* The peer's FIN ends it. */
    ck_assert_int_eq(shutdown(peer, SHUT_WR), 0);
    ck_assert_int_eq(poll(&pfd, 1, 5000), 1);
    ck_assert_int_eq(hbone_io_handle(io, HBONE_IO_READ, now + 20), HBONE_ERR_CLOSED);
    hbone_io_del(io);
    hbone_conn_del(server);
    close(peer);
}
END_TEST

/* A peer that never closes: the wait ends at the deadline. */
START_TEST(lingering_ends_at_its_deadline)
{
    int lfd, peer, sfd;
    uint16_t port;
    ck_assert_int_eq(hbone_io_listen("127.0.0.1:0", 11, 8, &lfd, &port), 0);
    char target[32];
    snprintf(target, sizeof(target), "127.0.0.1:%u", port);
    ck_assert_int_eq(hbone_io_connect(target, strlen(target), &peer), 0);
    struct pollfd pfd = {lfd, POLLIN, 0};
    ck_assert_int_eq(poll(&pfd, 1, 5000), 1);
    ck_assert_int_eq(hbone_io_accept(lfd, &sfd), 0);
    close(lfd);
    hbone_config *cfg = tl_config("server", NULL);
    hbone_callbacks *cbs;
    ck_assert_int_eq(hbone_callbacks_new(&cbs), 0);
    hbone_conn *server;
    uint64_t now = 1000;
    ck_assert_int_eq(hbone_conn_server_new(&server, cfg, cbs, NULL, now), 0);
    hbone_callbacks_del(cbs);
    hbone_config_del(cfg);
    hbone_io *io;
    ck_assert_int_eq(hbone_io_new(&io, server, sfd), 0);
    /* The handshake times out (10 s of virtual time): finished, lingering. */
    ck_assert_int_eq(hbone_io_handle(io, 0, now + 10000), 0);
    int wait = hbone_io_timeout_ms(io, now + 10000);
    ck_assert_int_eq(wait, 2000);
    ck_assert_int_eq(hbone_io_handle(io, 0, now + 10000 + 1999), 0);
    ck_assert_int_eq(hbone_io_handle(io, 0, now + 10000 + 2000), HBONE_ERR_CLOSED);
    hbone_io_del(io);
    hbone_conn_del(server);
    close(peer);
}
END_TEST

START_TEST(addresses_are_checked)
{
    int fd = 7;
    ck_assert_int_eq(hbone_io_listen("localhost:80", 12, 1, &fd, NULL), HBONE_ERR_AUTHORITY);
    ck_assert_int_eq(fd, -1);
    ck_assert_int_eq(hbone_io_connect("::1:80", 6, &fd), HBONE_ERR_AUTHORITY);
    ck_assert_int_eq(hbone_io_connect("127.0.0.1:80", 12, NULL), HBONE_ERR_INVALID_ARGUMENT);
    /* An address this host does not have cannot be bound. */
    ck_assert_int_eq(hbone_io_listen("192.0.2.1:0", 11, 1, &fd, NULL), HBONE_ERR_IO);
    ck_assert_int_eq(errno, EADDRNOTAVAIL);
    ck_assert_int_eq(hbone_io_accept(-1, &fd), HBONE_ERR_IO);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("io");
    TCase *tc = tcase_create("sockets");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, tunnel_over_ipv4_loopback);
    tcase_add_test(tc, tunnel_over_ipv6_loopback);
    tcase_add_test(tc, refused_connection_is_reported);
    tcase_add_test(tc, addresses_are_checked);
    tcase_add_test(tc, a_finished_connection_waits_for_the_peers_end);
    tcase_add_test(tc, lingering_ends_at_its_deadline);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
