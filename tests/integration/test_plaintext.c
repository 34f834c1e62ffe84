/* SPDX-License-Identifier: MIT */
/*
 * The test-only plaintext connection (conn/conn_testing.h, HB_TESTING): a
 * client and a server built with hb_conn_new_plaintext() carry a tunnel
 * with data both ways over raw HTTP/2, with no certificate anywhere. The
 * fuzzers for the HTTP/2 and CONNECT logic rely on exactly this. That the
 * installed libhbone.so has none of it is checked by tests/plaintext-gate.sh.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <hbone/hbone.h>

#include "conn/conn_testing.h"
#include "testlib.h"

#define PAYLOAD 100000 /* several DATA frames and records each way */

struct side {
    hbone_conn *conn;
    int handshakes, requests, responses, ends, closes;
    int status;
    uint32_t reason;
    int32_t tunnel;
    uint8_t *received;
    size_t received_len;
};

static void on_handshake(hbone_conn *conn, void *user)
{
    struct side *s = user;
    /* No TLS, so no identity: the one thing a plaintext conn lacks. */
    ck_assert_ptr_null(hbone_conn_peer_id(conn));
    s->handshakes++;
}

static void on_request(hbone_conn *conn, int32_t tunnel, const char *host, size_t host_len,
                       uint16_t port, int kind, void *user)
{
    struct side *s = user;
    ck_assert_int_eq((int)host_len, 8);
    ck_assert_int_eq(memcmp(host, "10.0.0.7", 8), 0);
    ck_assert_uint_eq(port, 8080);
    ck_assert_int_eq(kind, HBONE_AUTHORITY_IPV4);
    s->requests++;
    s->tunnel = tunnel;
    ck_assert_int_eq(hbone_conn_tunnel_accept(conn, tunnel, NULL, NULL, NULL, NULL, 0), 0);
}

static void on_response(hbone_conn *conn, int32_t tunnel, int status, void *user)
{
    (void)conn;
    struct side *s = user;
    ck_assert_int_eq(tunnel, s->tunnel);
    s->responses++;
    s->status = status;
}

static void on_data(hbone_conn *conn, int32_t tunnel, const uint8_t *data, size_t len, void *user)
{
    struct side *s = user;
    ck_assert_uint_le(s->received_len + len, PAYLOAD);
    memcpy(s->received + s->received_len, data, len);
    s->received_len += len;
    ck_assert_int_eq(hbone_conn_tunnel_consume(conn, tunnel, len), 0);
}

static void on_end(hbone_conn *conn, int32_t tunnel, void *user)
{
    (void)conn;
    (void)tunnel;
    ((struct side *)user)->ends++;
}

static void on_close(hbone_conn *conn, int32_t tunnel, uint32_t reason, void *user)
{
    (void)conn;
    (void)tunnel;
    struct side *s = user;
    s->closes++;
    s->reason = reason;
}

/* Move everything both ways, in uneven chunks, until nothing moves. */
static void pump(struct side *client, struct side *server, uint64_t now)
{
    struct side *sides[2] = {client, server};
    for (int rounds = 0; rounds < 100000; rounds++) {
        int progress = 0;
        for (int i = 0; i < 2; i++) {
            hbone_conn *from = sides[i]->conn, *to = sides[1 - i]->conn;
            size_t len;
            const uint8_t *out = hbone_conn_output(from, &len, now);
            if (!len)
                continue;
            size_t n = len > 7777 ? 7777 : len;
            size_t consumed = 0;
            ck_assert_int_eq(hbone_conn_input(to, out, n, &consumed, now), 0);
            ck_assert_uint_eq(consumed, n); /* nothing waits: the peer reads */
            hbone_conn_output_consume(from, consumed);
            progress = 1;
        }
        if (!progress)
            return;
    }
    ck_abort_msg("the pair never went quiet");
}

static void write_pattern(hbone_conn *conn, int32_t tunnel, uint8_t salt)
{
    static uint8_t data[PAYLOAD];
    for (size_t i = 0; i < PAYLOAD; i++)
        data[i] = (uint8_t)(i * 31 + salt);
    size_t accepted = 0;
    ck_assert_int_eq(hbone_conn_tunnel_write(conn, tunnel, data, PAYLOAD, &accepted), 0);
    ck_assert_uint_eq(accepted, PAYLOAD);
    ck_assert_int_eq(hbone_conn_tunnel_shutdown(conn, tunnel), 0);
}

static void check_pattern(const struct side *s, uint8_t salt)
{
    ck_assert_uint_eq(s->received_len, PAYLOAD);
    for (size_t i = 0; i < PAYLOAD; i++)
        ck_assert_msg(s->received[i] == (uint8_t)(i * 31 + salt), "byte %zu differs", i);
}

START_TEST(plaintext_pair_carries_a_tunnel_both_ways)
{
    tl_counting counts;
    hbone_mem *mem = tl_counting_mem(&counts, -1);
    hbone_config *cfg;
    ck_assert_int_eq(hbone_config_new(&cfg, mem), 0);
    ck_assert_int_eq(hbone_config_set_keepalive(cfg, 0, 0), 0);
    hbone_callbacks *cbs;
    ck_assert_int_eq(hbone_callbacks_new(&cbs), 0);
    hbone_callbacks_set_handshake(cbs, on_handshake);
    hbone_callbacks_set_tunnel_request(cbs, on_request);
    hbone_callbacks_set_tunnel_response(cbs, on_response);
    hbone_callbacks_set_tunnel_data(cbs, on_data);
    hbone_callbacks_set_tunnel_end(cbs, on_end);
    hbone_callbacks_set_tunnel_close(cbs, on_close);

    struct side client = {0}, server = {0};
    client.received = malloc(PAYLOAD);
    server.received = malloc(PAYLOAD);
    ck_assert_ptr_nonnull(client.received);
    ck_assert_ptr_nonnull(server.received);
    uint64_t now = 5000;
    /* One config without certificate or bundle serves both roles. */
    ck_assert_int_eq(hb_conn_new_plaintext(&client.conn, cfg, cbs, &client, 0, now), 0);
    ck_assert_int_eq(hb_conn_new_plaintext(&server.conn, cfg, cbs, &server, 1, now), 0);
    hbone_callbacks_del(cbs);
    /* It is in use now, so frozen like any other. */
    ck_assert_int_eq(hbone_config_set_keepalive(cfg, 1000, 2000), HBONE_ERR_CONFIG_FROZEN);

    /* The client's first bytes are HTTP/2 itself: the connection preface. */
    size_t len;
    const uint8_t *out = hbone_conn_output(client.conn, &len, now);
    ck_assert_uint_ge(len, 24);
    ck_assert_int_eq(memcmp(out, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24), 0);
    ck_assert_int_eq(client.handshakes, 1);
    ck_assert_str_eq(hbone_conn_cipher(client.conn), "none (plaintext, test builds only)");

    ck_assert_int_eq(hbone_conn_tunnel_open(client.conn, "10.0.0.7:8080", 13, NULL, NULL, NULL,
                                            NULL, 0, &client.tunnel),
                     0);
    /* Queued before the 200: held until then. */
    write_pattern(client.conn, client.tunnel, 1);
    pump(&client, &server, now);
    ck_assert_int_eq(server.handshakes, 1);
    ck_assert_int_eq(server.requests, 1);
    ck_assert_int_eq(client.responses, 1);
    ck_assert_int_eq(client.status, 200);
    check_pattern(&server, 1);
    ck_assert_int_eq(server.ends, 1);

    write_pattern(server.conn, server.tunnel, 2);
    pump(&client, &server, now);
    check_pattern(&client, 2);
    ck_assert_int_eq(client.ends, 1);
    /* Both sides ended: a clean close, once, on each side. */
    ck_assert_int_eq(client.closes, 1);
    ck_assert_int_eq(server.closes, 1);
    ck_assert_uint_eq(client.reason, 0);
    ck_assert_uint_eq(server.reason, 0);
    ck_assert(!hbone_conn_is_closed(client.conn));

    hbone_conn_del(client.conn);
    hbone_conn_del(server.conn);
    hbone_config_del(cfg);
    ck_assert_int_eq(counts.allocs, counts.frees);
    hbone_mem_del(mem);
    free(client.received);
    free(server.received);
}
END_TEST

/* Each allocation of the same exchange fails in turn: every failure is a
 * clean error code and nothing leaks. */
START_TEST(plaintext_conn_survives_each_allocation_failure)
{
    for (long budget = 0;; budget++) {
        tl_counting counts;
        hbone_mem *mem = tl_counting_mem(&counts, budget);
        hbone_config *cfg = NULL;
        if (hbone_config_new(&cfg, mem) != 0) {
            hbone_mem_del(mem);
            continue;
        }
        hbone_conn *client = NULL;
        int r = hb_conn_new_plaintext(&client, cfg, NULL, NULL, 0, 1);
        ck_assert(r == 0 || r == HBONE_ERR_NOMEM);
        if (r == 0) {
            int32_t id;
            r = hbone_conn_tunnel_open(client, "[::1]:15008", 11, NULL, NULL, NULL, NULL, 0, &id);
            ck_assert(r == 0 || r == HBONE_ERR_NOMEM);
            size_t len;
            (void)hbone_conn_output(client, &len, 1);
        }
        hbone_conn_del(client);
        hbone_config_del(cfg);
        ck_assert_int_eq(counts.allocs, counts.frees);
        hbone_mem_del(mem);
        if (counts.attempts <= budget)
            break; /* the whole exchange fit in the budget: every failure was tried */
        ck_assert_int_lt(budget, 10000);
    }
}
END_TEST

/* A request the client holds back because the server allows no stream at
 * all (SETTINGS_MAX_CONCURRENT_STREAMS 0) when the client's own GOAWAY ends
 * the session: it is closed as refused (retry elsewhere) before the
 * connection says it is closed, never forgotten. Found by the conn_client
 * fuzzer (fuzz/corpus/conn_client/found-held-request-forgotten-at-goaway). */
START_TEST(a_request_held_back_when_the_session_ends_is_refused)
{
    hbone_config *cfg;
    ck_assert_int_eq(hbone_config_new(&cfg, NULL), 0);
    hbone_callbacks *cbs;
    ck_assert_int_eq(hbone_callbacks_new(&cbs), 0);
    hbone_callbacks_set_tunnel_close(cbs, on_close);
    struct side client = {0};
    ck_assert_int_eq(hb_conn_new_plaintext(&client.conn, cfg, cbs, &client, 0, 1), 0);
    hbone_callbacks_del(cbs);
    hbone_config_del(cfg);
    /* The server's preface: SETTINGS with MAX_CONCURRENT_STREAMS (3) = 0. */
    static const uint8_t settings[] = {0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0};
    size_t consumed, len;
    ck_assert_int_eq(hbone_conn_input(client.conn, settings, sizeof(settings), &consumed, 1), 0);
    ck_assert_uint_eq(consumed, sizeof(settings));
    int32_t held = 0;
    ck_assert_int_eq(
        hbone_conn_tunnel_open(client.conn, "10.0.0.7:8080", 13, NULL, NULL, NULL, NULL, 0, &held),
        0);
    (void)hbone_conn_output(client.conn, &len, 1);
    hbone_conn_output_consume(client.conn, len);
    ck_assert_int_eq(client.closes, 0);
    ck_assert_int_eq(hbone_conn_drain(client.conn, 1, 5000), 0);
    (void)hbone_conn_output(client.conn, &len, 1); /* the GOAWAY */
    ck_assert_uint_gt(len, 0);
    hbone_conn_output_consume(client.conn, len);
    ck_assert_int_eq(hbone_conn_is_closed(client.conn), 1);
    ck_assert_int_eq(client.closes, 1);
    ck_assert_uint_eq(client.reason, 0x7); /* REFUSED_STREAM */
    hbone_conn_del(client.conn);
}
END_TEST

/* A HEADERS frame for stream @p id: a CONNECT the server must reset (an
 * uppercase header name), HPACK literals without indexing. Returns its
 * length. */
static size_t bad_connect(uint8_t *out, int32_t id)
{
    static const uint8_t block[] = {0x02, 7,   'C', 'O', 'N', 'N', 'E', 'C', 'T', /* :method */
                                    0x01, 13,  '1', '0', '.', '0', '.', '0', '.',
                                    '7',  ':', '8', '0', '8', '0',                 /* :authority */
                                    0x00, 5,   'X', '-', 'B', 'a', 'd', 1,   '1'}; /* uppercase */
    uint8_t head[9] = {0,
                       0,
                       sizeof(block),
                       0x1,
                       0x4,
                       (uint8_t)(id >> 24),
                       (uint8_t)(id >> 16),
                       (uint8_t)(id >> 8),
                       (uint8_t)id};
    memcpy(out, head, 9);
    memcpy(out + 9, block, sizeof(block));
    return 9 + sizeof(block);
}

/* A peer that makes the server reset stream after stream and never reads
 * the resets: input stops once 1000 frames wait to be sent, so memory stays
 * bounded however long the peer goes on, and resumes once it reads. The
 * flood budget is lifted so that only this bound is at work. */
START_TEST(unread_resets_hold_input_back)
{
    enum { REQUESTS = 20000 };
    tl_counting counts;
    hbone_mem *mem = tl_counting_mem(&counts, -1);
    hbone_config *cfg;
    ck_assert_int_eq(hbone_config_new(&cfg, mem), 0);
    ck_assert_int_eq(hbone_config_set_flood_limit(cfg, 1000000, 1000000), 0);
    hbone_callbacks *cbs;
    ck_assert_int_eq(hbone_callbacks_new(&cbs), 0);
    hbone_callbacks_set_tunnel_request(cbs, on_request);
    struct side server = {0};
    ck_assert_int_eq(hb_conn_new_plaintext(&server.conn, cfg, cbs, &server, 1, 1), 0);
    hbone_callbacks_del(cbs);
    hbone_config_del(cfg);
    static const uint8_t preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    static const uint8_t settings[9] = {0, 0, 0, 4, 0, 0, 0, 0, 0};
    size_t consumed, len;
    ck_assert_int_eq(hbone_conn_input(server.conn, preface, 24, &consumed, 1), 0);
    ck_assert_int_eq(hbone_conn_input(server.conn, settings, 9, &consumed, 1), 0);
    /* Stream after stream, until the server takes no more. */
    uint8_t frame[64];
    size_t n = 0;
    int held_at = -1;
    for (int i = 0; i < REQUESTS && held_at < 0; i++) {
        n = bad_connect(frame, 1 + 2 * i);
        ck_assert_int_eq(hbone_conn_input(server.conn, frame, n, &consumed, 1), 0);
        if (consumed < n) {
            ck_assert_uint_eq(consumed, 0); /* it stops between frames */
            held_at = i;
        }
    }
    ck_assert_int_gt(held_at, 900);
    ck_assert_int_lt(held_at, 1100);
    size_t live = counts.live_bytes;
    ck_assert_uint_lt(live, 1024 * 1024);
    /* However long the peer goes on, nothing more is taken or kept. */
    for (int i = 0; i < REQUESTS; i++) {
        ck_assert_int_eq(hbone_conn_input(server.conn, frame, n, &consumed, 1), 0);
        TL_REQUIRE(consumed == 0 && counts.live_bytes == live, "took %zu, %zu bytes live", consumed,
                   counts.live_bytes);
    }
    /* The peer reads: the resets go out and input resumes. */
    (void)hbone_conn_output(server.conn, &len, 1);
    ck_assert_uint_gt(len, 0);
    hbone_conn_output_consume(server.conn, len);
    ck_assert_int_eq(hbone_conn_input(server.conn, frame, n, &consumed, 1), 0);
    ck_assert_uint_eq(consumed, n);
    ck_assert_int_eq(server.requests, 0);
    hbone_conn_del(server.conn);
    ck_assert_int_eq(counts.allocs, counts.frees);
    hbone_mem_del(mem);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("plaintext");
    TCase *tc = tcase_create("plaintext");
    tcase_add_test(tc, plaintext_pair_carries_a_tunnel_both_ways);
    tcase_add_test(tc, plaintext_conn_survives_each_allocation_failure);
    tcase_add_test(tc, a_request_held_back_when_the_session_ends_is_refused);
    tcase_add_test(tc, unread_resets_hold_input_back);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
