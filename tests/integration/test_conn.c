/* SPDX-License-Identifier: MIT */
/*
 * HBONE connections end to end in memory: a libhbone client and server
 * exchange ciphertext in random chunks and partial writes, and tunnels go
 * through every part of their lifecycle.
 */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <hbone/hbone.h>

#include "conn_pair.h"
#include "testlib.h"

#include "conn/conn_testing.h"

START_TEST(tunnel_lifecycle_with_data_both_ways)
{
    struct pair p;
    pair_init(&p, SERVER_ID, 1000 + (unsigned)_i);
    p.server.auto_answer = 200;
    p.server.echo = 1;
    int32_t id = open_tunnel(&p, "10.0.0.2:8080");
    pump(&p, NULL, NULL);
    ck_assert_int_eq(p.client.handshakes, 1);
    ck_assert_int_eq(p.server.handshakes, 1);
    struct tunnel_log *srv = log_of(&p.server, id), *cli = log_of(&p.client, id);
    ck_assert_int_eq(srv->requested, 1);
    ck_assert_str_eq(srv->host, "10.0.0.2");
    ck_assert_uint_eq(srv->port, 8080);
    ck_assert_int_eq(srv->kind, HBONE_AUTHORITY_IPV4);
    ck_assert_str_eq(srv->first_header, "forwarded: for=\"10.0.0.1:34567\"");
    ck_assert_int_eq(cli->status, 200);
    ck_assert_str_eq(hbone_spiffe_id_str(hbone_conn_peer_id(p.server.conn), NULL),
                     "spiffe://cluster.local/ns/default/sa/client");

    /* An empty write is no write, even before the tunnel has a buffer. */
    size_t none = 1;
    ck_assert_int_eq(hbone_conn_tunnel_write(p.client.conn, id, (const uint8_t *)"", 0, &none), 0);
    ck_assert_uint_eq(none, 0);

    uint32_t sent = TL_CHECKSUM_INIT;
    size_t len = 3 * 1024 * 1024 + 17; /* below the 4 MiB window, above one buffer */
    write_all(&p, &p.client, id, len, &sent);
    ck_assert_int_eq(hbone_conn_tunnel_shutdown(p.client.conn, id), 0);
    pump(&p, NULL, NULL);
    /* The server saw every byte, echoed it, and ended when the client did. */
    assert_echoed_and_closed(&p, id, len, sent);
    /* The id is gone after its close event. */
    size_t accepted;
    ck_assert_int_eq(hbone_conn_tunnel_write(p.client.conn, id, (const uint8_t *)"x", 1, &accepted),
                     HBONE_ERR_NOT_FOUND);
    pair_free(&p);
}
END_TEST

START_TEST(rejected_tunnels_report_their_status)
{
    static const int statuses[] = {401, 503, 403};
    struct pair p;
    pair_init(&p, SERVER_ID, 7);
    p.server.auto_answer = statuses[_i];
    int32_t id = open_tunnel(&p, "[fd00::2]:80");
    pump(&p, NULL, NULL);
    struct tunnel_log *cli = log_of(&p.client, id), *srv = log_of(&p.server, id);
    ck_assert_int_eq(srv->kind, HBONE_AUTHORITY_IPV6);
    ck_assert_str_eq(srv->host, "fd00::2");
    ck_assert_int_eq(cli->status, statuses[_i]);
    ck_assert_int_eq(cli->closed, 1);
    ck_assert_int_eq(srv->closed, 1);
    ck_assert_int_eq(cli->ended, 0); /* a refusal is not data that ended */
    pair_free(&p);
}
END_TEST

START_TEST(later_answer_and_half_close_from_the_server)
{
    struct pair p;
    pair_init(&p, SERVER_ID, 99);
    int32_t id = open_tunnel(&p, "127.0.0.1:9");
    pump(&p, NULL, NULL);
    ck_assert_int_eq(log_of(&p.server, id)->requested, 1);
    ck_assert_int_eq(log_of(&p.client, id)->status, 0); /* still waiting */
    /* Data written before the answer waits for the 200. */
    size_t accepted;
    ck_assert_int_eq(
        hbone_conn_tunnel_write(p.client.conn, id, (const uint8_t *)"early", 5, &accepted), 0);
    pump(&p, NULL, NULL);
    ck_assert_uint_eq(log_of(&p.server, id)->received, 0);
    static const char *const names[] = {"baggage"};
    static const size_t name_lens[] = {7};
    static const char *const values[] = {"k8s.namespace.name=default"};
    static const size_t value_lens[] = {26};
    ck_assert_int_eq(
        hbone_conn_tunnel_accept(p.server.conn, id, names, name_lens, values, value_lens, 1), 0);
    ck_assert_int_eq(hbone_conn_tunnel_accept(p.server.conn, id, NULL, NULL, NULL, NULL, 0),
                     HBONE_ERR_INVALID_STATE);
    pump(&p, NULL, NULL);
    ck_assert_int_eq(log_of(&p.client, id)->status, 200);
    ck_assert_uint_eq(log_of(&p.server, id)->received, 5);
    /* The server ends its side first; the client can still send. */
    ck_assert_int_eq(hbone_conn_tunnel_shutdown(p.server.conn, id), 0);
    pump(&p, NULL, NULL);
    ck_assert_int_eq(log_of(&p.client, id)->ended, 1);
    ck_assert_int_eq(log_of(&p.client, id)->closed, 0);
    ck_assert_int_eq(
        hbone_conn_tunnel_write(p.client.conn, id, (const uint8_t *)"more", 4, &accepted), 0);
    ck_assert_int_eq(hbone_conn_tunnel_shutdown(p.client.conn, id), 0);
    pump(&p, NULL, NULL);
    ck_assert_uint_eq(log_of(&p.server, id)->received, 9);
    ck_assert_int_eq(log_of(&p.server, id)->ended, 1);
    ck_assert_int_eq(log_of(&p.client, id)->closed, 1);
    ck_assert_uint_eq(log_of(&p.client, id)->reason, 0);
    pair_free(&p);
}
END_TEST

START_TEST(reset_carries_its_code)
{
    /* _i: 0 the client resets, 1 the server does (its upstream broke). */
    struct pair p;
    pair_init(&p, SERVER_ID, 5);
    p.server.auto_answer = 200;
    int32_t id = open_tunnel(&p, "10.1.2.3:443");
    pump(&p, NULL, NULL);
    hbone_conn *resetter = _i ? p.server.conn : p.client.conn;
    ck_assert_int_eq(hbone_conn_tunnel_reset(resetter, id, 0xa), 0); /* CONNECT_ERROR */
    pump(&p, NULL, NULL);
    ck_assert_int_eq(log_of(&p.server, id)->closed, 1);
    ck_assert_uint_eq(log_of(&p.server, id)->reason, 0xa);
    ck_assert_int_eq(log_of(&p.client, id)->closed, 1);
    ck_assert_uint_eq(log_of(&p.client, id)->reason, 0xa);
    pair_free(&p);
}
END_TEST

START_TEST(no_error_reset_is_clean_only_after_the_end)
{
    /* The server resets with NO_ERROR: _i 0 before ending its side (the
     * client's data may be cut short), 1 after it (RFC 9113 8.1's "stop
     * sending", which ztunnel's h2 stack sends). */
    struct pair p;
    pair_init(&p, SERVER_ID, 6);
    p.server.auto_answer = 200;
    int32_t id = open_tunnel(&p, "10.1.2.3:443");
    pump(&p, NULL, NULL);
    if (_i) {
        ck_assert_int_eq(hbone_conn_tunnel_shutdown(p.server.conn, id), 0);
        pump(&p, NULL, NULL);
        ck_assert_int_eq(log_of(&p.client, id)->ended, 1);
    }
    ck_assert_int_eq(hbone_conn_tunnel_reset(p.server.conn, id, 0x0), 0);
    pump(&p, NULL, NULL);
    ck_assert_int_eq(log_of(&p.client, id)->closed, 1);
    ck_assert_uint_eq(log_of(&p.client, id)->reason, _i ? 0 : HBONE_CLOSE_RESET_BEFORE_END);
    /* The server reset it without the client having ended: not clean there either. */
    ck_assert_uint_eq(log_of(&p.server, id)->reason, HBONE_CLOSE_RESET_BEFORE_END);
    pair_free(&p);
}
END_TEST

START_TEST(transport_ending_in_the_handshake_is_named)
{
    /* _i 0: the client's dial is closed before any answer; 1: a server's
     * client goes away after its hello. After the handshake the same end
     * of input is a quiet close (lost_connection_aborts_every_tunnel). */
    struct pair p;
    pair_init(&p, SERVER_ID, 7);
    size_t len;
    const uint8_t *hello = hbone_conn_output(p.client.conn, &len, p.now);
    ck_assert_uint_gt(len, 0);
    hbone_conn *ending = p.client.conn;
    if (_i) {
        size_t consumed;
        ck_assert_int_eq(hbone_conn_input(p.server.conn, hello, len, &consumed, p.now), 0);
        ending = p.server.conn;
    }
    ck_assert_str_eq(hbone_conn_error_detail(ending), "");
    ck_assert_int_eq(hbone_conn_input_eof(ending), 0);
    ck_assert_str_eq(hbone_conn_error_detail(ending),
                     "the peer closed the connection during the TLS handshake");
    size_t consumed;
    ck_assert_int_eq(hbone_conn_input(ending, (const uint8_t *)"x", 1, &consumed, p.now),
                     HBONE_ERR_CLOSED);
    pair_free(&p);
}
END_TEST

START_TEST(many_tunnels_share_one_connection)
{
    struct pair p;
    pair_init(&p, SERVER_ID, 31337);
    p.server.auto_answer = 200;
    p.server.echo = 1;
    enum { N = 100 };
    int32_t ids[N];
    uint32_t sums[N];
    for (int i = 0; i < N; i++) {
        char authority[32];
        snprintf(authority, sizeof(authority), "10.0.%d.%d:%d", i / 250, i % 250 + 1, 1000 + i);
        ids[i] = open_tunnel(&p, authority);
        sums[i] = TL_CHECKSUM_INIT;
    }
    pump(&p, NULL, NULL);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(log_of(&p.client, ids[i])->status, 200);
        write_all(&p, &p.client, ids[i], 20000 + (size_t)i * 97, &sums[i]);
        ck_assert_int_eq(hbone_conn_tunnel_shutdown(p.client.conn, ids[i]), 0);
    }
    pump(&p, NULL, NULL);
    for (int i = 0; i < N; i++) {
        struct tunnel_log *cli = log_of(&p.client, ids[i]);
        ck_assert_uint_eq(cli->received, 20000 + (size_t)i * 97);
        ck_assert_uint_eq(cli->checksum, sums[i]);
        ck_assert_int_eq(cli->closed, 1);
        ck_assert_uint_eq(cli->reason, 0);
    }
    pair_free(&p);
}
END_TEST

START_TEST(lost_connection_aborts_every_tunnel)
{
    struct pair p;
    pair_init(&p, SERVER_ID, 3);
    p.server.auto_answer = 200;
    int32_t a = open_tunnel(&p, "10.0.0.1:1"), b = open_tunnel(&p, "10.0.0.1:2");
    pump(&p, NULL, NULL);
    ck_assert_int_eq(hbone_conn_input_eof(p.server.conn), 0);
    ck_assert_int_eq(log_of(&p.server, a)->closed, 1);
    ck_assert_int_eq(log_of(&p.server, b)->closed, 1);
    ck_assert_uint_eq(log_of(&p.server, a)->reason, HBONE_CLOSE_CONNECTION_LOST);
    ck_assert_uint_eq(log_of(&p.server, b)->reason, HBONE_CLOSE_CONNECTION_LOST);
    ck_assert_int_eq(hbone_conn_is_closed(p.server.conn), 1);
    ck_assert_int_eq(hbone_conn_input_eof(p.client.conn), 0);
    ck_assert_uint_eq(log_of(&p.client, a)->reason, HBONE_CLOSE_CONNECTION_LOST);
    pair_free(&p);
}
END_TEST

START_TEST(wrong_server_identity_fails_before_any_connect)
{
    struct pair p;
    pair_init(&p, "spiffe://cluster.local/ns/default/sa/payments", 11);
    p.server.auto_answer = 200;
    int32_t id = open_tunnel(&p, "10.0.0.2:80");
    int cerr = 0, serr = 0;
    pump(&p, &cerr, &serr);
    ck_assert_int_eq(cerr, HBONE_ERR_ID_MISMATCH);
    ck_assert_str_eq(hbone_conn_error_detail(p.client.conn),
                     "peer presented " SERVER_ID
                     ", expected spiffe://cluster.local/ns/default/sa/payments");
    ck_assert_int_eq(log_of(&p.server, id)->requested, 0);
    ck_assert_uint_eq(log_of(&p.client, id)->reason, HBONE_CLOSE_CONNECTION_LOST);
    ck_assert_int_eq(hbone_conn_is_closed(p.client.conn), 1);
    pair_free(&p);
}
END_TEST

START_TEST(backpressure_until_the_peer_consumes)
{
    struct pair p;
    pair_init(&p, SERVER_ID, 77);
    p.server.auto_answer = 200;
    p.server.consume_later = 1; /* the server's application stops reading */
    int32_t id = open_tunnel(&p, "10.0.0.2:80");
    pump(&p, NULL, NULL);
    uint8_t chunk[65536];
    memset(chunk, 0x5a, sizeof(chunk));
    size_t total = 0, accepted = 0;
    int r = 0;
    /* The client can queue only the peer's window plus its own buffer. */
    for (int i = 0; i < 1000; i++) {
        r = hbone_conn_tunnel_write(p.client.conn, id, chunk, sizeof(chunk), &accepted);
        if (r == HBONE_ERR_AGAIN) {
            pump(&p, NULL, NULL);
            r = hbone_conn_tunnel_write(p.client.conn, id, chunk, sizeof(chunk), &accepted);
            if (r == HBONE_ERR_AGAIN)
                break;
        }
        ck_assert_int_eq(r, 0);
        total += accepted;
    }
    ck_assert_int_eq(r, HBONE_ERR_AGAIN);
    struct tunnel_log *srv = log_of(&p.server, id), *cli = log_of(&p.client, id);
    ck_assert_uint_eq(srv->received, 4u * 1024 * 1024); /* exactly the stream window */
    ck_assert_uint_gt(total, srv->received);
    int writable_before = cli->writable;
    /* The server's application reads it all: the window opens again. */
    ck_assert_int_eq(hbone_conn_tunnel_consume(p.server.conn, id, srv->received), 0);
    pump(&p, NULL, NULL);
    ck_assert_int_gt(cli->writable, writable_before);
    ck_assert_uint_eq(srv->received, total);
    pair_free(&p);
}
END_TEST

/* A tunnel takes what its configured buffer holds and no more. */
START_TEST(tunnel_buffer_is_configurable)
{
    struct pair p;
    pair_tunnel_buffer = 32 * 1024;
    pair_connection_buffer = 256 * 1024;
    pair_init(&p, SERVER_ID, 78);
    pair_tunnel_buffer = pair_connection_buffer = 0;
    p.server.auto_answer = 200;
    int32_t id = open_tunnel(&p, "10.0.0.2:80");
    pump(&p, NULL, NULL);
    static uint8_t data[100 * 1024];
    size_t accepted = 0;
    ck_assert_int_eq(hbone_conn_tunnel_write(p.client.conn, id, data, sizeof(data), &accepted), 0);
    ck_assert_uint_eq(accepted, 32 * 1024);
    ck_assert_int_eq(hbone_conn_tunnel_write(p.client.conn, id, data, sizeof(data), &accepted),
                     HBONE_ERR_AGAIN);
    ck_assert_uint_eq(accepted, 0);
    /* Once sent, the buffer takes the next 32 KiB. */
    pump(&p, NULL, NULL);
    ck_assert_int_eq(hbone_conn_tunnel_write(p.client.conn, id, data, sizeof(data), &accepted), 0);
    ck_assert_uint_eq(accepted, 32 * 1024);
    pair_free(&p);
}
END_TEST

/* Framing stops once the configured ciphertext waits for the transport. */
START_TEST(connection_buffer_is_configurable)
{
    struct pair p;
    pair_tunnel_buffer = 1024 * 1024;
    pair_connection_buffer = 64 * 1024;
    pair_init(&p, SERVER_ID, 79);
    pair_tunnel_buffer = pair_connection_buffer = 0;
    p.server.auto_answer = 200;
    int32_t id = open_tunnel(&p, "10.0.0.2:80");
    pump(&p, NULL, NULL);
    static uint8_t data[512 * 1024];
    size_t accepted = 0;
    ck_assert_int_eq(hbone_conn_tunnel_write(p.client.conn, id, data, sizeof(data), &accepted), 0);
    ck_assert_uint_eq(accepted, sizeof(data));
    /* The transport takes nothing: what waits stops growing past the limit
     * plus the one record in progress. */
    size_t len = 0, before;
    do {
        before = len;
        (void)hbone_conn_output(p.client.conn, &len, p.now);
    } while (len != before);
    ck_assert_uint_ge(len, 64 * 1024);
    ck_assert_uint_le(len, 64 * 1024 + 16384 + 64);
    /* Everything still arrives once the transport moves again. */
    pump(&p, NULL, NULL);
    ck_assert_uint_eq(log_of(&p.server, id)->received, sizeof(data));
    pair_free(&p);
}
END_TEST

/* Each allocation of a scenario fails in turn (the 1st, the 2nd, ...):
 * _i 0 opening a tunnel, 1 moving data both ways, 2 closing it; _i 3-5 the
 * same with wolfSSL's allocations failing instead of libhbone's. Every run
 * ends without a crash or a leak, and either completes exactly or reports
 * an error somewhere (a call, either connection, or the tunnel's close
 * reason): never a silent half-success. */
START_TEST(every_allocation_failure_in_a_tunnel_is_clean)
{
    enum { DATA = 100 * 1024 };
    static uint8_t data[DATA];
    for (size_t i = 0; i < DATA; i++)
        data[i] = (uint8_t)(i * 7);
    uint32_t sum = tl_checksum(TL_CHECKSUM_INIT, data, DATA);
    int phase = _i % 3;
    for (long n = 1;; n++) {
        ck_assert_int_lt(n, 5000);
        tl_counting own_counts, wolfssl_counts;
        hbone_mem *mem = tl_counting_mem(&own_counts, -1);
        tl_count_wolfssl(&wolfssl_counts, -1);
        tl_counting *failing = _i < 3 ? &own_counts : &wolfssl_counts;
        struct pair p;
        pair_mem = mem;
        pair_init(&p, SERVER_ID, 300 + (unsigned)n);
        pair_mem = NULL;
        p.server.auto_answer = 200;
        p.server.echo = 1;
        p.client.tolerate_nomem = p.server.tolerate_nomem = 1;
        int32_t id = 0;
        if (phase > 0) {
            id = open_tunnel(&p, "10.0.0.2:80");
            pump(&p, NULL, NULL);
        } else {
            pump(&p, NULL, NULL); /* the handshake; its failures are handshake/'s */
        }
        failing->budget = n - 1; /* the nth allocation from here fails */
        long attempts = failing->attempts;
        int api = 0, cerr = 0, serr = 0;
        size_t accepted = 0;
        if (phase == 0) {
            api = hbone_conn_tunnel_open(p.client.conn, "10.0.0.2:80", 11, NULL, NULL, NULL, NULL,
                                         0, &id);
        } else if (phase == 1) {
            api = hbone_conn_tunnel_write(p.client.conn, id, data, DATA, &accepted);
        } else {
            api = hbone_conn_tunnel_shutdown(p.client.conn, id);
        }
        pump(&p, &cerr, &serr);
        int failed = failing->attempts - attempts >= n; /* the nth attempt came, and failed */
        failing->budget = -1;
        struct tunnel_log *cli = id > 0 ? log_of(&p.client, id) : NULL;
        struct tunnel_log *srv = id > 0 ? log_of(&p.server, id) : NULL;
        int reported = api < 0 || cerr < 0 || serr < 0 || p.client.app_errors ||
                       p.server.app_errors || hbone_conn_error_detail(p.client.conn)[0] ||
                       hbone_conn_error_detail(p.server.conn)[0] || (cli && cli->reason) ||
                       (srv && srv->reason);
        if (!reported) {
            /* Then it all happened: the tunnel is up, the echo whole, the
             * close clean. */
            ck_assert_int_eq(cli->status, 200);
            if (phase == 1) {
                ck_assert_uint_eq(accepted, DATA);
                ck_assert_uint_eq(cli->received, DATA);
                ck_assert_uint_eq(cli->checksum, sum);
            }
            if (phase == 2)
                ck_assert_int_eq(cli->closed, 1);
        }
        pair_free(&p);
        size_t leaked;
        ck_assert_msg(tl_count_wolfssl_end(&leaked, 1) == 0, "n %ld: wolfSSL blocks left", n);
        ck_assert_int_eq(own_counts.allocs, own_counts.frees);
        hbone_mem_del(mem);
        if (!failed) {
            /* the scenario needs fewer than n allocations: all were tried */
            printf("%s, phase %d: %ld allocations swept\n", _i < 3 ? "libhbone" : "wolfSSL", phase,
                   n - 1);
            break;
        }
    }
}
END_TEST

START_TEST(client_api_refuses_bad_requests)
{
    struct pair p;
    pair_init(&p, SERVER_ID, 1);
    int32_t id;
    ck_assert_int_eq(
        hbone_conn_tunnel_open(p.client.conn, "10.0.0.2", 8, NULL, NULL, NULL, NULL, 0, &id),
        HBONE_ERR_AUTHORITY);
    static const char *const names[] = {":path"};
    static const size_t name_lens[] = {5};
    static const char *const values[] = {"/"};
    static const size_t value_lens[] = {1};
    ck_assert_int_eq(hbone_conn_tunnel_open(p.client.conn, "10.0.0.2:80", 11, names, name_lens,
                                            values, value_lens, 1, &id),
                     HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(
        hbone_conn_tunnel_open(p.server.conn, "10.0.0.2:80", 11, NULL, NULL, NULL, NULL, 0, &id),
        HBONE_ERR_INVALID_STATE);
    ck_assert_int_eq(hbone_conn_tunnel_reject(p.server.conn, 1, 200), HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_conn_tunnel_accept(p.server.conn, 1, NULL, NULL, NULL, NULL, 0),
                     HBONE_ERR_NOT_FOUND);
    pair_free(&p);
}
END_TEST

START_TEST(closed_tunnels_return_their_window)
{
    /* The server's application never consumes; each tunnel fills its 4 MiB
     * stream window and is then reset. Five of them exceed the 16 MiB
     * connection window: the last gets through only if closing a tunnel
     * gives its unconsumed bytes back to the connection. */
    struct pair p;
    pair_init(&p, SERVER_ID, 4242);
    p.server.auto_answer = 200;
    p.server.consume_later = 1;
    static uint8_t chunk[1 << 20];
    memset(chunk, 0xa5, sizeof(chunk));
    for (int i = 0; i < 5; i++) {
        int32_t id = open_tunnel(&p, "10.0.0.2:80");
        pump(&p, NULL, NULL);
        for (int m = 0; m < 4; m++) {
            size_t accepted = 0, off = 0;
            int stalls = 0;
            while (off < sizeof(chunk)) {
                int r = hbone_conn_tunnel_write(p.client.conn, id, chunk + off, sizeof(chunk) - off,
                                                &accepted);
                if (r == HBONE_ERR_AGAIN) {
                    /* A stalled window shows as AGAIN that pumping cannot clear. */
                    ck_assert_msg(++stalls < 100, "tunnel %d stalled after %zu bytes", i,
                                  (size_t)m * sizeof(chunk) + off);
                    pump(&p, NULL, NULL);
                    continue;
                }
                stalls = 0;
                ck_assert_int_eq(r, 0);
                off += accepted;
            }
        }
        pump(&p, NULL, NULL);
        ck_assert_msg(log_of(&p.server, id)->received == 4u << 20, "tunnel %d: %zu bytes", i,
                      log_of(&p.server, id)->received);
        /* Consuming more than was delivered is refused. */
        ck_assert_int_eq(hbone_conn_tunnel_consume(p.server.conn, id, (4u << 20) + 1),
                         HBONE_ERR_INVALID_ARGUMENT);
        ck_assert_int_eq(hbone_conn_tunnel_reset(p.client.conn, id, 0x8), 0);
        pump(&p, NULL, NULL);
        ck_assert_int_eq(log_of(&p.server, id)->closed, 1);
    }
    pair_free(&p);
}
END_TEST

START_TEST(handshake_times_out)
{
    struct pair p;
    pair_init(&p, SERVER_ID, 1);
    /* The client never speaks: the server gives up after 10 s, not before. */
    ck_assert_uint_eq(hbone_conn_get_expiry(p.server.conn), p.now + 10000);
    ck_assert_int_eq(hbone_conn_handle_expiry(p.server.conn, p.now + 9999), 0);
    ck_assert_int_eq(hbone_conn_handle_expiry(p.server.conn, p.now + 10000), HBONE_ERR_TIMEOUT);
    ck_assert_str_eq(hbone_conn_error_detail(p.server.conn),
                     "TLS handshake not complete after 10000 ms");
    ck_assert_int_eq(hbone_conn_is_closed(p.server.conn), 1);
    ck_assert_uint_eq(hbone_conn_get_expiry(p.server.conn), UINT64_MAX);
    pair_free(&p);
}
END_TEST

/* Slowloris: a client that trickles its ClientHello, a byte every 3 s, gains
 * nothing by it: the handshake deadline runs from the connection's start,
 * not from the last byte. */
START_TEST(a_trickled_handshake_times_out_all_the_same)
{
    struct pair p;
    pair_init(&p, SERVER_ID, 18);
    uint64_t start = p.now;
    size_t len;
    const uint8_t *hello = hbone_conn_output(p.client.conn, &len, p.now);
    ck_assert_uint_gt(len, 10);
    int r = 0;
    size_t fed = 0;
    while (r == 0 && fed < len) {
        size_t consumed;
        ck_assert_int_eq(hbone_conn_input(p.server.conn, hello + fed, 1, &consumed, p.now), 0);
        fed += consumed;
        p.now += 3000;
        if (hbone_conn_get_expiry(p.server.conn) <= p.now)
            r = hbone_conn_handle_expiry(p.server.conn, p.now);
    }
    ck_assert_int_eq(r, HBONE_ERR_TIMEOUT);
    ck_assert_uint_eq(p.now, start + 12000); /* the first check after 10 s */
    ck_assert_uint_eq(fed, 4);
    ck_assert_str_eq(hbone_conn_error_detail(p.server.conn),
                     "TLS handshake not complete after 10000 ms");
    pair_free(&p);
}
END_TEST

START_TEST(timers_follow_the_config)
{
    /* Keepalive and handshake timeout off: no timer runs at all. */
    hbone_config *cfg = tl_config("server", NULL);
    ck_assert_int_eq(hbone_config_set_keepalive(cfg, 0, 0), 0);
    ck_assert_int_eq(hbone_config_set_handshake_timeout(cfg, 0), 0);
    hbone_conn *conn;
    ck_assert_int_eq(hbone_conn_server_new(&conn, cfg, NULL, NULL, 5), 0);
    ck_assert_uint_eq(hbone_conn_get_expiry(conn), UINT64_MAX);
    hbone_conn_del(conn);
    hbone_config_del(cfg);
    /* A shorter handshake timeout is honoured. */
    cfg = tl_config("server", NULL);
    ck_assert_int_eq(hbone_config_set_handshake_timeout(cfg, 250), 0);
    ck_assert_int_eq(hbone_conn_server_new(&conn, cfg, NULL, NULL, 5), 0);
    ck_assert_uint_eq(hbone_conn_get_expiry(conn), 255);
    ck_assert_int_eq(hbone_conn_handle_expiry(conn, 255), HBONE_ERR_TIMEOUT);
    hbone_conn_del(conn);
    hbone_config_del(cfg);
}
END_TEST

START_TEST(idle_connections_close)
{
    /* 30 s without a tunnel (keepalive off, so only the idle timer runs). */
    struct pair p;
    pair_idle_ms = 30000;
    pair_stall_ms = 0; /* no timer but the idle one */
    pair_init(&p, SERVER_ID, 9);
    pair_idle_ms = 0;
    pair_stall_ms = -1;
    p.server.auto_answer = 200;
    int32_t id = open_tunnel(&p, "10.0.0.2:80");
    pump(&p, NULL, NULL);
    /* A connection with a tunnel is not idle. */
    ck_assert_uint_eq(hbone_conn_get_expiry(p.server.conn), UINT64_MAX);
    ck_assert_int_eq(hbone_conn_tunnel_reset(p.client.conn, id, 0x8), 0);
    pump(&p, NULL, NULL);
    uint64_t idle_from = p.now;
    ck_assert_uint_eq(hbone_conn_get_expiry(p.server.conn), idle_from + 30000);
    p.now = idle_from + 30000;
    ck_assert_int_eq(hbone_conn_handle_expiry(p.server.conn, p.now), 0);
    pump(&p, NULL, NULL);
    /* The server said GOAWAY and is done; the client, told so, is too. */
    ck_assert_int_eq(hbone_conn_is_closed(p.server.conn), 1);
    ck_assert_int_eq(hbone_conn_is_closed(p.client.conn), 1);
    /* No tunnel can start on it any more. */
    int32_t late = 0;
    int r =
        hbone_conn_tunnel_open(p.client.conn, "10.0.0.2:80", 11, NULL, NULL, NULL, NULL, 0, &late);
    if (r == 0)
        pump(&p, NULL, NULL);
    else
        ck_assert_int_eq(r, HBONE_ERR_INVALID_STATE);
    ck_assert_int_eq(log_of(&p.server, late)->requested, 0);
    pair_free(&p);
}
END_TEST

/* What a pool asks of a client connection: how many tunnels it may still
 * open (the server's SETTINGS_MAX_CONCURRENT_STREAMS less those open), how
 * many are open, and since when none has been. */
START_TEST(tunnel_capacity_follows_the_server)
{
    struct pair p;
    pair_stream_window = 65535; /* the default: pair_max_streams goes with it */
    pair_max_streams = 3;
    pair_init(&p, SERVER_ID, 12);
    pair_stream_window = pair_max_streams = 0;
    p.server.auto_answer = 200;
    hbone_conn *c = p.client.conn;
    ck_assert_uint_eq(hbone_conn_tunnel_capacity(p.server.conn), 0); /* servers open none */
    ck_assert_uint_eq(hbone_conn_tunnel_count(c), 0);
    ck_assert_uint_eq(hbone_conn_idle_since(c), 0); /* not before its handshake */
    pump(&p, NULL, NULL);
    ck_assert_uint_eq(hbone_conn_idle_since(c), p.now); /* idle since its handshake */
    ck_assert_uint_eq(hbone_conn_tunnel_capacity(c), 3);
    int32_t a = open_tunnel(&p, "10.0.0.2:80");
    int32_t b = open_tunnel(&p, "10.0.0.2:81");
    pump(&p, NULL, NULL);
    ck_assert_uint_eq(hbone_conn_tunnel_count(c), 2);
    ck_assert_uint_eq(hbone_conn_tunnel_capacity(c), 1);
    ck_assert_uint_eq(hbone_conn_idle_since(c), 0);
    p.now += 500;
    ck_assert_int_eq(hbone_conn_tunnel_reset(c, a, 0x8), 0);
    pump(&p, NULL, NULL);
    ck_assert_uint_eq(hbone_conn_tunnel_count(c), 1);
    ck_assert_uint_eq(hbone_conn_tunnel_capacity(c), 2);
    ck_assert_uint_eq(hbone_conn_idle_since(c), 0);
    ck_assert_int_eq(hbone_conn_tunnel_reset(c, b, 0x8), 0);
    pump(&p, NULL, NULL);
    ck_assert_uint_eq(hbone_conn_idle_since(c), p.now);
    ck_assert_uint_eq(hbone_conn_tunnel_capacity(c), 3);
    /* Draining, it takes no new tunnel, whatever the server allows. */
    ck_assert_int_eq(hbone_conn_drain(c, p.now, 1000), 0);
    ck_assert_uint_eq(hbone_conn_tunnel_capacity(c), 0);
    ck_assert_uint_eq(hbone_conn_tunnel_capacity(NULL), 0);
    ck_assert_uint_eq(hbone_conn_tunnel_count(NULL), 0);
    ck_assert_uint_eq(hbone_conn_idle_since(NULL), 0);
    ck_assert_uint_eq(hbone_conn_peer_goaway_error(c), 0); /* ours is not the peer's */
    pair_free(&p);
}
END_TEST

START_TEST(keepalive_pings_keep_a_quiet_connection)
{
    struct pair p;
    pair_init(&p, SERVER_ID, 2);
    p.server.auto_answer = 200;
    int32_t id = open_tunnel(&p, "10.0.0.2:80");
    pump(&p, NULL, NULL);
    uint64_t connected = p.now;
    /* Both ends ping every 10 s; each answers the other's. An hour passes. */
    while (p.now < connected + 3600 * 1000) {
        advance_to_expiry(&p, NULL, NULL);
        pump(&p, NULL, NULL);
    }
    ck_assert_uint_ge(p.now, connected + 3600 * 1000 - 10000);
    ck_assert_int_eq(log_of(&p.client, id)->closed, 0);
    ck_assert_int_eq(hbone_conn_is_closed(p.client.conn), 0);
    pair_free(&p);
}
END_TEST

START_TEST(unanswered_ping_ends_the_connection)
{
    struct pair p;
    pair_init(&p, SERVER_ID, 3);
    p.server.auto_answer = 200;
    int32_t id = open_tunnel(&p, "10.0.0.2:80");
    pump(&p, NULL, NULL);
    /* The network goes silent: nothing either side sends arrives. */
    uint64_t start = p.now;
    int cerr = 0, serr = 0;
    for (int i = 0; i < 10 && cerr == 0; i++) {
        advance_to_expiry(&p, &cerr, &serr);
        size_t len;
        (void)hbone_conn_output(p.client.conn, &len, p.now);
        hbone_conn_output_consume(p.client.conn, len);
        (void)hbone_conn_output(p.server.conn, &len, p.now);
        hbone_conn_output_consume(p.server.conn, len); /* lost */
    }
    ck_assert_int_eq(cerr, HBONE_ERR_TIMEOUT);
    ck_assert_int_eq(serr, HBONE_ERR_TIMEOUT);
    /* First PING at +10 s, given up 20 s later. */
    ck_assert_uint_eq(p.now, start + 30000);
    ck_assert_str_eq(hbone_conn_error_detail(p.client.conn),
                     "peer did not answer a PING within 20000 ms");
    ck_assert_uint_eq(log_of(&p.client, id)->reason, HBONE_CLOSE_CONNECTION_LOST);
    pair_free(&p);
}
END_TEST

START_TEST(drain_lets_open_tunnels_finish)
{
    struct pair p;
    pair_init(&p, SERVER_ID, 4);
    p.server.auto_answer = 200;
    p.server.echo = 1;
    int32_t id = open_tunnel(&p, "10.0.0.2:80");
    pump(&p, NULL, NULL);
    ck_assert_int_eq(hbone_conn_drain(p.server.conn, p.now, 5000), 0);
    pump(&p, NULL, NULL);
    /* The open tunnel still carries data both ways. */
    uint32_t sum = TL_CHECKSUM_INIT;
    write_all(&p, &p.client, id, 100000, &sum);
    ck_assert_int_eq(hbone_conn_tunnel_shutdown(p.client.conn, id), 0);
    pump(&p, NULL, NULL);
    struct tunnel_log *cli = log_of(&p.client, id);
    ck_assert_uint_eq(cli->received, 100000);
    ck_assert_uint_eq(cli->checksum, sum);
    ck_assert_int_eq(cli->closed, 1);
    ck_assert_uint_eq(cli->reason, 0);
    /* A tunnel opened after the GOAWAY is refused, never served. */
    int32_t late = 0;
    int r =
        hbone_conn_tunnel_open(p.client.conn, "10.0.0.3:80", 11, NULL, NULL, NULL, NULL, 0, &late);
    if (r == 0) {
        pump(&p, NULL, NULL);
        ck_assert_int_eq(log_of(&p.client, late)->closed, 1);
        ck_assert_int_ne(log_of(&p.client, late)->status, 200);
    } else {
        ck_assert_int_eq(r, HBONE_ERR_INVALID_STATE);
    }
    ck_assert_int_eq(log_of(&p.server, late)->requested, 0);
    /* Nothing left: both ends are done. */
    ck_assert_int_eq(hbone_conn_is_closed(p.server.conn), 1);
    pair_free(&p);
}
END_TEST

/* A tunnel the client holds back at the server's stream limit when the
 * server drains is closed as refused (retry elsewhere), and the server
 * never sees it. */
START_TEST(a_request_held_back_at_goaway_is_refused)
{
    pair_stream_window = 65535;
    pair_max_streams = 1;
    struct pair p;
    pair_init(&p, SERVER_ID, 16);
    pair_stream_window = pair_max_streams = 0;
    p.server.auto_answer = 200;
    p.server.echo = 1;
    int32_t active = open_tunnel(&p, "10.0.0.2:80");
    pump(&p, NULL, NULL); /* the server's limit of 1 is known from here */
    int32_t held = open_tunnel(&p, "10.0.0.2:81");
    pump(&p, NULL, NULL);
    ck_assert_int_eq(log_of(&p.server, held)->requested, 0);
    ck_assert_int_eq(hbone_conn_drain(p.server.conn, p.now, 5000), 0);
    pump(&p, NULL, NULL);
    uint32_t sum = TL_CHECKSUM_INIT;
    write_all(&p, &p.client, active, 1000, &sum);
    ck_assert_int_eq(hbone_conn_tunnel_shutdown(p.client.conn, active), 0);
    pump(&p, NULL, NULL);
    ck_assert_uint_eq(log_of(&p.client, active)->checksum, sum);
    ck_assert_uint_eq(log_of(&p.client, active)->reason, 0);
    ck_assert_int_eq(hbone_conn_is_closed(p.client.conn), 1);
    ck_assert_int_eq(log_of(&p.client, held)->closed, 1);
    ck_assert_uint_eq(log_of(&p.client, held)->reason, 0x7); /* REFUSED_STREAM */
    ck_assert_int_eq(log_of(&p.server, held)->requested, 0);
    pair_free(&p);
}
END_TEST

START_TEST(drain_deadline_ends_what_is_left)
{
    struct pair p;
    pair_init(&p, SERVER_ID, 5);
    p.server.auto_answer = 200;
    int32_t id = open_tunnel(&p, "10.0.0.2:80");
    pump(&p, NULL, NULL);
    ck_assert_int_eq(hbone_conn_drain(p.server.conn, p.now, 5000), 0);
    pump(&p, NULL, NULL);
    ck_assert_int_eq(log_of(&p.server, id)->closed, 0);
    ck_assert_uint_eq(hbone_conn_get_expiry(p.server.conn), p.now + 5000);
    p.now += 5000;
    ck_assert_int_eq(hbone_conn_handle_expiry(p.server.conn, p.now), 0);
    ck_assert_int_eq(log_of(&p.server, id)->closed, 1);
    ck_assert_uint_eq(log_of(&p.server, id)->reason, HBONE_CLOSE_CONNECTION_LOST);
    /* The final GOAWAY still goes out. */
    size_t len = 0;
    (void)hbone_conn_output(p.server.conn, &len, p.now);
    ck_assert_uint_gt(len, 0);
    pump(&p, NULL, NULL);
    pair_free(&p);
}
END_TEST

/* A peer that keeps a tunnel's window shut: the tunnel is reset after the
 * stall timeout (not before, and by 1.25 x it), the peer sees CANCEL, and a
 * canary on the same connection keeps moving. _i 0: the client's tunnel
 * stalls (the server's application stops reading), 1: the server's. */
START_TEST(stalled_tunnel_is_reset)
{
    pair_stall_ms = 4000;
    pair_stream_window = 65535;
    struct pair p;
    pair_init(&p, SERVER_ID, 10 + _i);
    pair_stall_ms = -1;
    pair_stream_window = 0;
    p.server.auto_answer = 200;
    struct side *writer = _i ? &p.server : &p.client, *reader = _i ? &p.client : &p.server;
    reader->consume_later = 1;
    int32_t stuck = open_tunnel(&p, "10.0.0.2:80"), canary = open_tunnel(&p, "10.0.0.2:81");
    pump(&p, NULL, NULL);
    fill_until_full(&p, writer, stuck);
    uint64_t last_progress = p.now;
    uint32_t sum = TL_CHECKSUM_INIT;
    struct tunnel_log *w = log_of(writer, stuck), *r = log_of(reader, stuck);
    while (!w->closed) {
        advance_to_expiry(&p, NULL, NULL);
        move_canary(&p, writer, reader, canary, &sum);
        ck_assert_uint_le(p.now, last_progress + 5000);
        if (p.now < last_progress + 4000)
            ck_assert_int_eq(w->closed, 0);
    }
    ck_assert_uint_ge(p.now, last_progress + 4000);
    ck_assert_uint_eq(w->reason, HBONE_CLOSE_STALLED);
    ck_assert_int_eq(r->closed, 1);
    ck_assert_uint_eq(r->reason, 0x8);
    /* The canary carried every byte, and still does. */
    move_canary(&p, writer, reader, canary, &sum);
    ck_assert_uint_eq(log_of(reader, canary)->checksum, sum);
    ck_assert_int_eq(log_of(writer, canary)->closed, 0);
    ck_assert_int_eq(hbone_conn_is_closed(p.client.conn), 0);
    pair_free(&p);
}
END_TEST

/* A pair with a stall timeout of @p stall_ms and a 64 KiB window, whose
 * server application stops reading: returns a tunnel the client has filled
 * (the peer's window and its own buffer). */
static int32_t stalled_tunnel(struct pair *p, long stall_ms, unsigned seed)
{
    pair_stall_ms = stall_ms;
    pair_stream_window = 65535;
    pair_init(p, SERVER_ID, seed);
    pair_stall_ms = -1;
    pair_stream_window = 0;
    p->server.auto_answer = 200;
    p->server.consume_later = 1;
    int32_t id = open_tunnel(p, "10.0.0.2:80");
    pump(p, NULL, NULL);
    fill_until_full(p, &p->client, id);
    return id;
}

/* Progress restarts the clock: a peer that takes a little (32 KiB) every
 * half timeout keeps its tunnel for as long as it does. */
START_TEST(a_slow_peer_is_not_stalled)
{
    struct pair p;
    int32_t id = stalled_tunnel(&p, 4000, 12);
    struct tunnel_log *srv = log_of(&p.server, id);
    size_t consumed = 0;
    uint64_t start = p.now;
    while (p.now < start + 30000) {
        p.now += 2000;
        ck_assert_int_eq(hbone_conn_handle_expiry(p.client.conn, p.now), 0);
        /* Half the window: enough for a WINDOW_UPDATE. */
        size_t n = srv->received - consumed < 32768 ? srv->received - consumed : 32768;
        ck_assert_int_eq(hbone_conn_tunnel_consume(p.server.conn, id, n), 0);
        consumed += n;
        pump(&p, NULL, NULL);
        ck_assert_int_eq(log_of(&p.client, id)->closed, 0);
    }
    ck_assert_uint_gt(consumed, 2 * 65535); /* it did move, slowly */
    pair_free(&p);
}
END_TEST

/* 0 turns the stall timeout off: no timer runs for a stalled tunnel. */
START_TEST(stall_timeout_can_be_turned_off)
{
    struct pair p;
    int32_t id = stalled_tunnel(&p, 0, 13);
    ck_assert_uint_eq(hbone_conn_get_expiry(p.client.conn), UINT64_MAX);
    ck_assert_uint_eq(hbone_conn_get_expiry(p.server.conn), UINT64_MAX);
    p.now += 24 * 3600 * 1000;
    ck_assert_int_eq(hbone_conn_handle_expiry(p.client.conn, p.now), 0);
    pump(&p, NULL, NULL);
    ck_assert_int_eq(log_of(&p.client, id)->closed, 0);
    ck_assert_int_eq(hbone_config_set_stall_timeout(NULL, 1), HBONE_ERR_INVALID_ARGUMENT);
    pair_free(&p);
}
END_TEST

/* A transport that takes none of the connection's output for the stall
 * timeout ends the connection, named; taking some restarts the clock. */
START_TEST(output_nobody_takes_ends_the_connection)
{
    pair_stall_ms = 4000;
    struct pair p;
    pair_init(&p, SERVER_ID, 14);
    pair_stall_ms = -1;
    p.server.auto_answer = 200;
    int32_t id = open_tunnel(&p, "10.0.0.2:80");
    pump(&p, NULL, NULL);
    static uint8_t data[100000];
    size_t accepted, len;
    ck_assert_int_eq(hbone_conn_tunnel_write(p.client.conn, id, data, sizeof(data), &accepted), 0);
    (void)hbone_conn_output(p.client.conn, &len, p.now);
    ck_assert_uint_gt(len, 0);
    uint64_t since = p.now;
    ck_assert_uint_le(hbone_conn_get_expiry(p.client.conn), since + 4000);
    /* The transport takes one byte at +3 s: the clock starts again. */
    p.now = since + 3000;
    hbone_conn_output_consume(p.client.conn, 1);
    (void)hbone_conn_output(p.client.conn, &len, p.now);
    ck_assert_int_eq(hbone_conn_handle_expiry(p.client.conn, since + 4000), 0);
    ck_assert_int_eq(hbone_conn_handle_expiry(p.client.conn, since + 6999), 0);
    ck_assert_int_eq(log_of(&p.client, id)->closed, 0);
    ck_assert_int_eq(hbone_conn_handle_expiry(p.client.conn, since + 7000), HBONE_ERR_TIMEOUT);
    char expected[128];
    snprintf(expected, sizeof(expected),
             "the peer took none of %zu bytes of our output for 4000 ms", len);
    ck_assert_str_eq(hbone_conn_error_detail(p.client.conn), expected);
    ck_assert_uint_eq(log_of(&p.client, id)->reason, HBONE_CLOSE_CONNECTION_LOST);
    pair_free(&p);
}
END_TEST

/* A client connection that reaches the last stream id (2^31 - 1): that
 * tunnel opens, the connection takes no more (the caller opens them on a
 * new one), its open tunnels carry on to a clean end, and then it closes. */
START_TEST(stream_ids_run_out)
{
    struct pair p;
    pair_init(&p, SERVER_ID, 15);
    p.server.auto_answer = 200;
    p.server.echo = 1;
    int32_t first = open_tunnel(&p, "10.0.0.2:80");
    pump(&p, NULL, NULL);
    ck_assert_int_eq(hb_conn_set_next_stream_id(p.client.conn, INT32_MAX - 2), 0);
    int32_t before_last = open_tunnel(&p, "10.0.0.2:81"), last = open_tunnel(&p, "10.0.0.2:82");
    ck_assert_int_eq(before_last, INT32_MAX - 2);
    ck_assert_int_eq(last, INT32_MAX);
    int32_t none = 0;
    ck_assert_int_eq(
        hbone_conn_tunnel_open(p.client.conn, "10.0.0.2:83", 11, NULL, NULL, NULL, NULL, 0, &none),
        HBONE_ERR_INVALID_STATE);
    ck_assert_int_eq(none, 0);
    pump(&p, NULL, NULL);
    int32_t ids[] = {first, before_last, last};
    uint32_t sums[3];
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(log_of(&p.client, ids[i])->status, 200);
        sums[i] = TL_CHECKSUM_INIT;
        write_all(&p, &p.client, ids[i], 50000, &sums[i]);
        ck_assert_int_eq(hbone_conn_tunnel_shutdown(p.client.conn, ids[i]), 0);
        pump(&p, NULL, NULL);
        ck_assert_int_eq(hbone_conn_is_closed(p.client.conn), i == 2);
    }
    for (int i = 0; i < 3; i++) {
        struct tunnel_log *l = log_of(&p.client, ids[i]);
        ck_assert_uint_eq(l->received, 50000);
        ck_assert_uint_eq(l->checksum, sums[i]);
        ck_assert_int_eq(l->closed, 1);
        ck_assert_uint_eq(l->reason, 0);
    }
    ck_assert_int_eq(hbone_conn_is_closed(p.server.conn), 1);
    /* The hook itself refuses what nghttp2 would: an even or used id. */
    ck_assert_int_eq(hb_conn_set_next_stream_id(p.server.conn, 3), HBONE_ERR_INVALID_ARGUMENT);
    pair_free(&p);
}
END_TEST

/* A server that has just accepted its last descriptor can still set up TLS
 * for it: the tuned wolfSSL seeds each session with getrandom(2) rather than
 * a descriptor of /dev/urandom (Debian's build needs one: not tested there). */
START_TEST(a_session_needs_no_descriptor)
{
#ifdef HB_TEST_WOLFSSL_SYSTEM
    return;
#endif
    hbone_config *ccfg = tl_config("client", NULL), *scfg = tl_config("server", NULL);
    struct rlimit saved;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &saved), 0);
    /* Take every descriptor there is under a low limit. */
    int fds[64], n = 0;
    int probe = open("/dev/null", O_RDONLY);
    ck_assert_int_ge(probe, 0);
    struct rlimit low = {(rlim_t)probe + 8, saved.rlim_max};
    close(probe);
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    while (n < 64 && (fds[n] = open("/dev/null", O_RDONLY)) >= 0)
        n++;
    ck_assert_int_lt(n, 64);
    ck_assert_int_lt(open("/dev/null", O_RDONLY), 0); /* none left */
    struct pair p;
    pair_start(&p, ccfg, scfg, SERVER_ID, 17);
    int cerr = 0, serr = 0;
    pump(&p, &cerr, &serr);
    while (n > 0)
        close(fds[--n]);
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &saved), 0);
    ck_assert_msg(cerr == 0 && serr == 0, "client: %s, server: %s",
                  hbone_conn_error_detail(p.client.conn), hbone_conn_error_detail(p.server.conn));
    ck_assert_ptr_nonnull(hbone_conn_peer_id(p.server.conn));
    pair_free(&p);
    hbone_config_del(ccfg);
    hbone_config_del(scfg);
}
END_TEST

START_TEST(configured_settings_apply)
{
    /* A 256 KiB stream window and at most 2 tunnels at a time on the server. */
    pair_stream_window = 256 * 1024;
    pair_max_streams = 2;
    struct pair p;
    pair_init(&p, SERVER_ID, 8);
    pair_stream_window = pair_max_streams = 0;
    p.server.auto_answer = 200;
    p.server.consume_later = 1;
    /* Opened before the server's SETTINGS arrive: the third is refused
     * (REFUSED_STREAM, which a pool may retry on another connection). */
    int32_t a = open_tunnel(&p, "10.0.0.1:1"), b = open_tunnel(&p, "10.0.0.1:2");
    int32_t c = open_tunnel(&p, "10.0.0.1:3");
    pump(&p, NULL, NULL);
    ck_assert_int_eq(log_of(&p.server, a)->requested, 1);
    ck_assert_int_eq(log_of(&p.server, b)->requested, 1);
    ck_assert_int_eq(log_of(&p.server, c)->requested, 0);
    ck_assert_int_eq(log_of(&p.client, c)->closed, 1);
    ck_assert_uint_eq(log_of(&p.client, c)->reason, 0x7);
    /* Once the limit is known, a third waits in the client until one ends. */
    int32_t d = open_tunnel(&p, "10.0.0.1:4");
    pump(&p, NULL, NULL);
    ck_assert_int_eq(log_of(&p.server, d)->requested, 0);
    ck_assert_int_eq(log_of(&p.client, d)->closed, 0);
    static uint8_t chunk[300 * 1024];
    size_t accepted;
    ck_assert_int_eq(hbone_conn_tunnel_write(p.client.conn, a, chunk, sizeof(chunk), &accepted), 0);
    pump(&p, NULL, NULL);
    ck_assert_uint_eq(log_of(&p.server, a)->received, 256 * 1024); /* the stream window */
    ck_assert_int_eq(hbone_conn_tunnel_reset(p.client.conn, b, 0x8), 0);
    pump(&p, NULL, NULL);
    ck_assert_int_eq(log_of(&p.server, d)->requested, 1);
    pair_free(&p);
}
END_TEST

START_TEST(response_headers_within_the_client_limit)
{
    /* A 20 KiB response header: over a client's default 16 KiB header list,
     * within 32 KiB once configured. */
    pair_client_header_list = _i ? 32 * 1024 : 0;
    struct pair p;
    pair_init(&p, SERVER_ID, 9);
    pair_client_header_list = 0;
    p.server.auto_answer = 200;
    p.server.big_header = 20 * 1024;
    int32_t id = open_tunnel(&p, "10.0.0.1:80");
    pump(&p, NULL, NULL);
    struct tunnel_log *l = log_of(&p.client, id);
    if (_i) {
        ck_assert_int_eq(l->status, 200);
        ck_assert_int_eq(l->closed, 0);
    } else {
        ck_assert_int_eq(l->status, 0);
        ck_assert_int_eq(l->closed, 1);
        ck_assert_uint_ne(l->reason, 0);
        /* Only that tunnel: the connection still opens others. */
        p.server.big_header = 0;
        int32_t next = open_tunnel(&p, "10.0.0.1:81");
        pump(&p, NULL, NULL);
        ck_assert_int_eq(log_of(&p.client, next)->status, 200);
    }
    pair_free(&p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("conn");
    TCase *tc = tcase_create("tunnels");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, tunnel_lifecycle_with_data_both_ways, 0, 3);
    tcase_add_loop_test(tc, rejected_tunnels_report_their_status, 0, 3);
    tcase_add_test(tc, later_answer_and_half_close_from_the_server);
    tcase_add_loop_test(tc, reset_carries_its_code, 0, 2);
    tcase_add_loop_test(tc, no_error_reset_is_clean_only_after_the_end, 0, 2);
    tcase_add_test(tc, many_tunnels_share_one_connection);
    tcase_add_test(tc, lost_connection_aborts_every_tunnel);
    tcase_add_loop_test(tc, transport_ending_in_the_handshake_is_named, 0, 2);
    tcase_add_test(tc, wrong_server_identity_fails_before_any_connect);
    tcase_add_test(tc, backpressure_until_the_peer_consumes);
    tcase_add_test(tc, tunnel_buffer_is_configurable);
    tcase_add_test(tc, connection_buffer_is_configurable);
    tcase_add_loop_test(tc, every_allocation_failure_in_a_tunnel_is_clean, 0, 6);
    tcase_add_test(tc, client_api_refuses_bad_requests);
    tcase_add_test(tc, closed_tunnels_return_their_window);
    tcase_add_test(tc, handshake_times_out);
    tcase_add_test(tc, timers_follow_the_config);
    tcase_add_test(tc, a_trickled_handshake_times_out_all_the_same);
    tcase_add_test(tc, keepalive_pings_keep_a_quiet_connection);
    tcase_add_test(tc, unanswered_ping_ends_the_connection);
    tcase_add_test(tc, drain_lets_open_tunnels_finish);
    tcase_add_test(tc, drain_deadline_ends_what_is_left);
    tcase_add_test(tc, a_request_held_back_at_goaway_is_refused);
    tcase_add_test(tc, configured_settings_apply);
    tcase_add_test(tc, a_session_needs_no_descriptor);
    tcase_add_loop_test(tc, stalled_tunnel_is_reset, 0, 2);
    tcase_add_test(tc, a_slow_peer_is_not_stalled);
    tcase_add_test(tc, stall_timeout_can_be_turned_off);
    tcase_add_test(tc, output_nobody_takes_ends_the_connection);
    tcase_add_test(tc, stream_ids_run_out);
    tcase_add_loop_test(tc, response_headers_within_the_client_limit, 0, 2);
    tcase_add_test(tc, idle_connections_close);
    tcase_add_test(tc, tunnel_capacity_follows_the_server);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
