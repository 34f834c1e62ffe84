/* SPDX-License-Identifier: MIT */
/*
 * Hostile HTTP/2 peers: frames a correct client never sends, written by hand
 * after a real TLS handshake and HTTP/2 preface. Each case checks the
 * server's answer (a stream reset, or GOAWAY with the code RFC 9113 asks
 * for and a failed connection that names the cause), then that a canary
 * tunnel still moves checksummed data both ways: on the same connection when
 * the attack left it standing, else on a new connection from the same
 * config. Every case ends with all of the config's allocations freed.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hbone/hbone.h>

#include "raw_h2.h"
#include "testlib.h"

/* Frame types and error codes, as numbers on the wire. */
#define DATA 0x0
#define HEADERS 0x1
#define RST_STREAM 0x3
#define SETTINGS 0x4
#define PUSH_PROMISE 0x5
#define GOAWAY 0x7
#define WINDOW_UPDATE 0x8
#define CONTINUATION 0x9
#define END_STREAM 0x1
#define END_HEADERS 0x4
#define PROTOCOL_ERROR 0x1
#define FLOW_CONTROL_ERROR 0x3
#define FRAME_SIZE_ERROR 0x6
#define COMPRESSION_ERROR 0x9
#define ENHANCE_YOUR_CALM 0xb

struct tunnel_rec {
    int32_t id;
    uint64_t received;
    uint32_t checksum;
    int closed;
};

struct app {
    struct tunnel_rec t[4096];
    size_t n, requests, closes;
    int no_consume; /* leave received bytes unconsumed: the window stays shut */
};

struct fixture {
    tl_counting counts;
    hbone_mem *mem;
    hbone_config *cfg;
    raw_h2 *client;
    hbone_conn *server;
    struct app app;
};

static struct tunnel_rec *rec_of(struct app *a, int32_t id)
{
    for (size_t i = 0; i < a->n; i++) {
        if (a->t[i].id == id)
            return &a->t[i];
    }
    ck_assert_uint_lt(a->n, sizeof(a->t) / sizeof(a->t[0]));
    struct tunnel_rec *r = &a->t[a->n++];
    memset(r, 0, sizeof(*r));
    r->id = id;
    r->checksum = TL_CHECKSUM_INIT;
    return r;
}

static void on_request(hbone_conn *conn, int32_t tunnel, const char *host, size_t host_len,
                       uint16_t port, int kind, void *user)
{
    (void)host;
    (void)host_len;
    (void)port;
    (void)kind;
    struct app *a = user;
    a->requests++;
    rec_of(a, tunnel);
    ck_assert_int_eq(hbone_conn_tunnel_accept(conn, tunnel, NULL, NULL, NULL, NULL, 0), 0);
}

static void on_data(hbone_conn *conn, int32_t tunnel, const uint8_t *data, size_t len, void *user)
{
    struct tunnel_rec *r = rec_of(user, tunnel);
    r->received += len;
    r->checksum = tl_checksum(r->checksum, data, len);
    if (!((struct app *)user)->no_consume)
        ck_assert_int_eq(hbone_conn_tunnel_consume(conn, tunnel, len), 0);
}

static void on_close(hbone_conn *conn, int32_t tunnel, uint32_t reason, void *user)
{
    (void)conn;
    (void)reason;
    struct app *a = user;
    struct tunnel_rec *r = rec_of(a, tunnel);
    ck_assert_int_eq(r->closed, 0); /* exactly once */
    r->closed = 1;
    a->closes++;
}

/* A server connection and a raw client (@p raw: one that sends only what
 * the test writes), past the TLS handshake and, unless raw, SETTINGS. */
static void connect_with(struct fixture *f, int raw)
{
    memset(&f->app, 0, sizeof(f->app));
    hbone_callbacks *cbs;
    ck_assert_int_eq(hbone_callbacks_new(&cbs), 0);
    hbone_callbacks_set_tunnel_request(cbs, on_request);
    hbone_callbacks_set_tunnel_data(cbs, on_data);
    hbone_callbacks_set_tunnel_close(cbs, on_close);
    ck_assert_int_eq(hbone_conn_server_new(&f->server, f->cfg, cbs, &f->app, 0), 0);
    hbone_callbacks_del(cbs);
    f->client = raw ? raw_h2_new_raw() : raw_h2_new();
    raw_h2_pump(f->client, f->server);
}

static void connect_pair(struct fixture *f)
{
    connect_with(f, 0);
}

static void disconnect(struct fixture *f)
{
    raw_h2_del(f->client);
    hbone_conn_del(f->server);
    f->client = NULL;
    f->server = NULL;
}

static void setup(struct fixture *f)
{
    memset(f, 0, sizeof(*f));
    f->mem = tl_counting_mem(&f->counts, -1);
    f->cfg = tl_config_mem("server", NULL, f->mem);
    connect_pair(f);
}

static void teardown(struct fixture *f)
{
    disconnect(f);
    hbone_config_del(f->cfg);
    ck_assert_int_eq(f->counts.allocs, f->counts.frees);
    hbone_mem_del(f->mem);
}

/* A tunnel that moves 64 KiB each way, checked byte for byte. */
static void canary(struct fixture *f)
{
    static const char *const good[] = {":method", "CONNECT", ":authority", "10.9.8.7:443"};
    int32_t id = raw_h2_request(f->client, good, 2, 0);
    raw_h2_pump(f->client, f->server);
    ck_assert_int_eq(raw_h2_stream_of(f->client, id)->status, 200);
    static uint8_t data[65536];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 7 + (size_t)id);
    uint32_t sum = tl_checksum(TL_CHECKSUM_INIT, data, sizeof(data));
    raw_h2_send_data(f->client, id, data, sizeof(data));
    size_t accepted = 0;
    ck_assert_int_eq(hbone_conn_tunnel_write(f->server, id, data, sizeof(data), &accepted), 0);
    ck_assert_uint_eq(accepted, sizeof(data));
    raw_h2_pump(f->client, f->server);
    struct tunnel_rec *r = rec_of(&f->app, id);
    ck_assert_uint_eq(r->received, sizeof(data));
    ck_assert_uint_eq(r->checksum, sum);
    ck_assert_uint_eq(raw_h2_stream_of(f->client, id)->received, sizeof(data));
    ck_assert_uint_eq(raw_h2_stream_of(f->client, id)->checksum, sum);
}

/* The attack ended the connection: GOAWAY with @p code reached the client,
 * the server is closed and its error names @p cause, every tunnel the
 * application had was closed once; then a new connection from the same
 * config carries a canary. (@p input_result: nghttp2 may end the connection
 * from input that it accepted, or refuse the input itself.) */
static void expect_goaway(struct fixture *f, int input_result, uint32_t code, const char *cause)
{
    ck_assert_int_le(input_result, 0);
    uint32_t got = 0;
    ck_assert_msg(raw_h2_goaway(f->client, &got) == 1, "no GOAWAY");
    ck_assert_msg(got == code, "GOAWAY code 0x%x, expected 0x%x", got, code);
    ck_assert_int_eq(hbone_conn_is_closed(f->server), 1);
    const char *detail = hbone_conn_error_detail(f->server);
    ck_assert_msg(strstr(detail, cause) != NULL, "detail \"%s\" does not name \"%s\"", detail,
                  cause);
    ck_assert_uint_eq(f->app.closes, f->app.requests);
    disconnect(f);
    connect_pair(f);
    canary(f);
}

static int send_frames(struct fixture *f, const uint8_t *frames, size_t len)
{
    raw_h2_send_raw(f->client, frames, len);
    return raw_h2_pump_status(f->client, f->server);
}

/* A literal header field without indexing, new name (RFC 7541 6.2.2);
 * names and values under 127 bytes. */
static size_t hpack_literal(uint8_t *out, const char *name, const char *value)
{
    size_t n = strlen(name), v = strlen(value), at = 0;
    out[at++] = 0x00;
    out[at++] = (uint8_t)n;
    memcpy(out + at, name, n);
    at += n;
    out[at++] = (uint8_t)v;
    memcpy(out + at, value, v);
    return at + v;
}

/* A HEADERS frame opening @p stream with a CONNECT to 10.0.0.1:80. */
static size_t connect_headers(uint8_t *out, int32_t stream, uint8_t flags)
{
    size_t at = 9;
    at += hpack_literal(out + at, ":method", "CONNECT");
    at += hpack_literal(out + at, ":authority", "10.0.0.1:80");
    raw_h2_frame_header(out, (uint32_t)(at - 9), HEADERS, flags, stream);
    return at;
}

START_TEST(data_on_stream_zero)
{
    struct fixture f;
    setup(&f);
    uint8_t frame[13] = {0};
    raw_h2_frame_header(frame, 4, DATA, 0, 0);
    expect_goaway(&f, send_frames(&f, frame, sizeof(frame)), PROTOCOL_ERROR,
                  "(PROTOCOL_ERROR): DATA: stream_id == 0");
    teardown(&f);
}
END_TEST

START_TEST(a_frame_over_the_advertised_size)
{
    /* We advertise 1 MiB frames; one byte more is refused by its header. */
    struct fixture f;
    setup(&f);
    uint8_t frame[9];
    raw_h2_frame_header(frame, (1u << 20) + 1, DATA, 0, 1);
    expect_goaway(&f, send_frames(&f, frame, sizeof(frame)), FRAME_SIZE_ERROR,
                  "(FRAME_SIZE_ERROR): too large frame size");
    teardown(&f);
}
END_TEST

START_TEST(invalid_settings_values)
{
    /* ENABLE_PUSH 2, INITIAL_WINDOW_SIZE 2^31, MAX_FRAME_SIZE below 16 KiB. */
    static const struct {
        uint16_t id;
        uint32_t value;
        uint32_t code;
    } cases[] = {{0x2, 2, PROTOCOL_ERROR},
                 {0x4, 0x80000000u, FLOW_CONTROL_ERROR},
                 {0x5, 100, PROTOCOL_ERROR}};
    struct fixture f;
    setup(&f);
    uint8_t frame[15];
    raw_h2_frame_header(frame, 6, SETTINGS, 0, 0);
    frame[9] = (uint8_t)(cases[_i].id >> 8);
    frame[10] = (uint8_t)cases[_i].id;
    frame[11] = (uint8_t)(cases[_i].value >> 24);
    frame[12] = (uint8_t)(cases[_i].value >> 16);
    frame[13] = (uint8_t)(cases[_i].value >> 8);
    frame[14] = (uint8_t)cases[_i].value;
    expect_goaway(&f, send_frames(&f, frame, sizeof(frame)), cases[_i].code, "SETTINGS");
    teardown(&f);
}
END_TEST

START_TEST(push_promise_from_a_client)
{
    struct fixture f;
    setup(&f);
    uint8_t frame[9 + 4 + 64];
    size_t at = 9;
    frame[at++] = 0; /* promised stream 2 */
    frame[at++] = 0;
    frame[at++] = 0;
    frame[at++] = 2;
    at += hpack_literal(frame + at, ":method", "GET");
    raw_h2_frame_header(frame, (uint32_t)(at - 9), PUSH_PROMISE, END_HEADERS, 1);
    expect_goaway(&f, send_frames(&f, frame, at), PROTOCOL_ERROR, "PUSH_PROMISE");
    teardown(&f);
}
END_TEST

START_TEST(connection_window_overflow)
{
    struct fixture f;
    setup(&f);
    uint8_t frame[13];
    raw_h2_frame_header(frame, 4, WINDOW_UPDATE, 0, 0);
    frame[9] = 0x7f;
    frame[10] = frame[11] = frame[12] = 0xff;
    expect_goaway(&f, send_frames(&f, frame, sizeof(frame)), FLOW_CONTROL_ERROR,
                  "(FLOW_CONTROL_ERROR)");
    teardown(&f);
}
END_TEST

START_TEST(stream_window_overflow_resets_only_that_stream)
{
    struct fixture f;
    setup(&f);
    static const char *const good[] = {":method", "CONNECT", ":authority", "10.1.1.1:80"};
    int32_t id = raw_h2_request(f.client, good, 2, 0);
    raw_h2_pump(f.client, f.server);
    uint8_t frame[13];
    raw_h2_frame_header(frame, 4, WINDOW_UPDATE, 0, id);
    frame[9] = 0x7f;
    frame[10] = frame[11] = frame[12] = 0xff;
    ck_assert_int_eq(send_frames(&f, frame, sizeof(frame)), 0);
    ck_assert_int_eq(raw_h2_stream_of(f.client, id)->closed, 1);
    ck_assert_uint_eq(raw_h2_stream_of(f.client, id)->close_code, FLOW_CONTROL_ERROR);
    ck_assert_int_eq(rec_of(&f.app, id)->closed, 1);
    ck_assert_int_eq(raw_h2_goaway(f.client, NULL), 0);
    canary(&f);
    teardown(&f);
}
END_TEST

START_TEST(unknown_frame_types_in_bulk_are_ignored)
{
    /* RFC 9113 4.1: ignore them. They cost little to skip; the connection
     * carries on. */
    struct fixture f;
    setup(&f);
    enum { N = 5000 };
    static uint8_t frames[N * 17];
    for (size_t i = 0; i < N; i++) {
        raw_h2_frame_header(frames + i * 17, 8, 0xfa, 0, (int32_t)(i % 7));
        memset(frames + i * 17 + 9, 0xab, 8);
    }
    ck_assert_int_eq(send_frames(&f, frames, sizeof(frames)), 0);
    ck_assert_int_eq(raw_h2_goaway(f.client, NULL), 0);
    canary(&f);
    teardown(&f);
}
END_TEST

START_TEST(continuation_flood)
{
    /* A header block that never ends: nghttp2 1.52 (patched) stops at 8
     * CONTINUATION frames instead of buffering without end. */
    struct fixture f;
    setup(&f);
    static uint8_t frames[9 + 64 + 100 * (9 + 16)];
    size_t at = 9;
    at += hpack_literal(frames + at, ":method", "CONNECT");
    raw_h2_frame_header(frames, (uint32_t)(at - 9), HEADERS, 0, 1);
    for (int i = 0; i < 100; i++) {
        raw_h2_frame_header(frames + at, 16, CONTINUATION, 0, 1);
        at += 9;
        at += hpack_literal(frames + at, "x-fill", "0123456");
    }
    int r = send_frames(&f, frames, at);
    ck_assert_int_lt(r, 0);
    ck_assert_msg(hbone_conn_error_detail(f.server)[0] != '\0', "no error detail");
    ck_assert_uint_eq(f.app.requests, 0);
    disconnect(&f);
    connect_pair(&f);
    canary(&f);
    teardown(&f);
}
END_TEST

START_TEST(rapid_reset_is_limited_and_every_request_is_closed)
{
    /* HEADERS then RST_STREAM, over and over (CVE-2023-44487): input stops
     * at the reset that overdraws the budget (1000), the connection ends
     * with ENHANCE_YOUR_CALM, and every request the application saw was
     * closed, so no upstream dial outlives its stream. */
    struct fixture f;
    setup(&f);
    enum { ROUNDS = 3000, BUDGET = 1000 };
    static uint8_t frames[ROUNDS * 64];
    size_t at = 0;
    for (int i = 0; i < ROUNDS; i++) {
        int32_t stream = 1 + 2 * i;
        at += connect_headers(frames + at, stream, END_HEADERS);
        raw_h2_frame_header(frames + at, 4, RST_STREAM, 0, stream);
        memset(frames + at + 9, 0, 4);
        frames[at + 12] = 0x8; /* CANCEL */
        at += 13;
    }
    int r = send_frames(&f, frames, at);
    ck_assert_uint_gt(f.app.requests, BUDGET);
    ck_assert_uint_le(f.app.requests, BUDGET + 1);
    expect_goaway(&f, r, ENHANCE_YOUR_CALM, "Rapid Reset");
    teardown(&f);
}
END_TEST

START_TEST(resets_within_the_budget_are_tolerated)
{
    /* Clients cancel tunnels all the time: 900 at once is no attack. */
    struct fixture f;
    setup(&f);
    enum { ROUNDS = 900 };
    static uint8_t frames[ROUNDS * 64];
    size_t at = 0;
    for (int i = 0; i < ROUNDS; i++) {
        int32_t stream = 1 + 2 * i;
        at += connect_headers(frames + at, stream, END_HEADERS);
        raw_h2_frame_header(frames + at, 4, RST_STREAM, 0, stream);
        memset(frames + at + 9, 0, 4);
        frames[at + 12] = 0x8; /* CANCEL */
        at += 13;
    }
    ck_assert_int_eq(send_frames(&f, frames, at), 0);
    ck_assert_uint_eq(f.app.requests, ROUNDS);
    ck_assert_uint_eq(f.app.closes, ROUNDS);
    ck_assert_int_eq(raw_h2_goaway(f.client, NULL), 0);
    /* The raw client numbers its own streams from 1, below those: a new
     * connection for the canary. */
    disconnect(&f);
    connect_pair(&f);
    canary(&f);
    teardown(&f);
}
END_TEST

START_TEST(even_stream_id_from_a_client)
{
    struct fixture f;
    setup(&f);
    uint8_t frame[64];
    size_t n = connect_headers(frame, 2, END_HEADERS);
    expect_goaway(&f, send_frames(&f, frame, n), PROTOCOL_ERROR, "invalid stream_id");
    teardown(&f);
}
END_TEST

START_TEST(stream_ids_going_backwards)
{
    /* RFC 9113 asks for PROTOCOL_ERROR; nghttp2 ignores a HEADERS whose id
     * is below one already seen (it cannot tell a stream it never saw from
     * one it closed), so the request goes nowhere and costs the decoding of
     * its header block, like any frame. */
    struct fixture f;
    setup(&f);
    uint8_t frames[128];
    size_t at = connect_headers(frames, 5, END_HEADERS);
    at += connect_headers(frames + at, 3, END_HEADERS);
    ck_assert_int_eq(send_frames(&f, frames, at), 0);
    ck_assert_uint_eq(f.app.requests, 1);
    ck_assert_int_eq(rec_of(&f.app, 5)->closed, 0);
    ck_assert_uint_eq(f.app.n, 1); /* stream 3 never reached it */
    ck_assert_int_eq(raw_h2_goaway(f.client, NULL), 0);
    /* This raw client numbers its own streams from 1: a new connection. */
    disconnect(&f);
    connect_pair(&f);
    canary(&f);
    teardown(&f);
}
END_TEST

START_TEST(hpack_index_out_of_range)
{
    struct fixture f;
    setup(&f);
    uint8_t frame[9 + 3];
    frame[9] = 0xff; /* indexed field 127 + 0x7f: far past both tables */
    frame[10] = 0x7f;
    frame[11] = 0x00;
    raw_h2_frame_header(frame, 3, HEADERS, END_HEADERS, 1);
    expect_goaway(&f, send_frames(&f, frame, sizeof(frame)), COMPRESSION_ERROR,
                  "(COMPRESSION_ERROR)");
    teardown(&f);
}
END_TEST

START_TEST(hpack_table_size_above_the_advertised_one)
{
    /* A dynamic table size update to 1 MiB, when we allow 4 KiB. */
    struct fixture f;
    setup(&f);
    uint8_t frame[64];
    size_t at = 9;
    frame[at++] = 0x3f; /* size update, 5-bit prefix full */
    frame[at++] = 0xe1; /* 1048576 - 31, in 7-bit groups */
    frame[at++] = 0xff;
    frame[at++] = 0x3f;
    at += hpack_literal(frame + at, ":method", "CONNECT");
    raw_h2_frame_header(frame, (uint32_t)(at - 9), HEADERS, END_HEADERS, 1);
    expect_goaway(&f, send_frames(&f, frame, at), COMPRESSION_ERROR, "(COMPRESSION_ERROR)");
    teardown(&f);
}
END_TEST

START_TEST(goaway_with_a_growing_last_stream_id)
{
    /* A peer may only lower the last stream id it will process; raising it
     * is a protocol error. */
    struct fixture f;
    setup(&f);
    uint8_t frames[2 * 17];
    for (int i = 0; i < 2; i++) {
        uint8_t *p = frames + i * 17;
        raw_h2_frame_header(p, 8, GOAWAY, 0, 0);
        memset(p + 9, 0, 8);
        p[12] = (uint8_t)(i == 0 ? 0 : 2); /* last stream id 0, then 2 */
    }
    expect_goaway(&f, send_frames(&f, frames, sizeof(frames)), PROTOCOL_ERROR,
                  "GOAWAY: invalid last_stream_id");
    teardown(&f);
}
END_TEST

/* --- clients that break HTTP/2 from the first byte ----------------------- */

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/* Raw mode: the client preface with 16 MiB windows, so that the server's
 * sending is never what a case measures, and the acknowledgement of the
 * server's SETTINGS (which arrived with the handshake): only then does its
 * 4 MiB stream window apply. */
static void send_preface(struct fixture *f)
{
    uint8_t frames[9 + 6 + 13 + 9];
    raw_h2_frame_header(frames, 6, SETTINGS, 0, 0);
    static const uint8_t initial_window[6] = {0x00, 0x04, 0x01, 0x00, 0x00, 0x00};
    memcpy(frames + 9, initial_window, 6);
    raw_h2_frame_header(frames + 15, 4, WINDOW_UPDATE, 0, 0);
    static const uint8_t increment[4] = {0x00, 0xff, 0x00, 0x01}; /* 16 MiB - 65535 */
    memcpy(frames + 24, increment, 4);
    raw_h2_frame_header(frames + 28, 0, SETTINGS, 0x1 /* ACK */, 0);
    raw_h2_send_raw(f->client, (const uint8_t *)preface, sizeof(preface) - 1);
    raw_h2_send_raw(f->client, frames, sizeof(frames));
    ck_assert_int_eq(raw_h2_pump_status(f->client, f->server), 0);
}

/* Raw mode: the canary on a stream the test numbers. */
static void raw_canary(struct fixture *f, int32_t id)
{
    uint8_t frame[64];
    ck_assert_int_eq(send_frames(f, frame, connect_headers(frame, id, END_HEADERS)), 0);
    ck_assert_int_eq(raw_h2_stream_of(f->client, id)->status, 200);
    static uint8_t data[65536];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 13 + (size_t)id);
    uint32_t sum = tl_checksum(TL_CHECKSUM_INIT, data, sizeof(data));
    raw_h2_send_data(f->client, id, data, sizeof(data));
    size_t accepted = 0;
    ck_assert_int_eq(hbone_conn_tunnel_write(f->server, id, data, sizeof(data), &accepted), 0);
    ck_assert_uint_eq(accepted, sizeof(data));
    ck_assert_int_eq(raw_h2_pump_status(f->client, f->server), 0);
    struct tunnel_rec *r = rec_of(&f->app, id);
    ck_assert_uint_eq(r->received, sizeof(data));
    ck_assert_uint_eq(r->checksum, sum);
    ck_assert_uint_eq(raw_h2_stream_of(f->client, id)->received, sizeof(data));
    ck_assert_uint_eq(raw_h2_stream_of(f->client, id)->checksum, sum);
}

static void setup_raw(struct fixture *f)
{
    setup(f);
    disconnect(f);
    connect_with(f, 1);
}

START_TEST(http11_instead_of_the_preface)
{
    struct fixture f;
    setup_raw(&f);
    static const char get[] = "GET / HTTP/1.1\r\nHost: 10.0.0.1\r\n\r\n";
    raw_h2_send_raw(f.client, (const uint8_t *)get, sizeof(get) - 1);
    ck_assert_int_eq(raw_h2_pump_status(f.client, f.server), HBONE_ERR_PROTOCOL);
    const char *detail = hbone_conn_error_detail(f.server);
    ck_assert_msg(strstr(detail, "magic") != NULL, "detail: %s", detail);
    ck_assert_uint_eq(f.app.requests, 0);
    disconnect(&f);
    connect_pair(&f);
    canary(&f);
    teardown(&f);
}
END_TEST

START_TEST(first_frame_not_settings)
{
    struct fixture f;
    setup_raw(&f);
    uint8_t ping[17] = {0};
    raw_h2_frame_header(ping, 8, 0x6, 0, 0);
    raw_h2_send_raw(f.client, (const uint8_t *)preface, sizeof(preface) - 1);
    expect_goaway(&f, send_frames(&f, ping, sizeof(ping)), PROTOCOL_ERROR, "SETTINGS");
    teardown(&f);
}
END_TEST

START_TEST(more_streams_than_advertised)
{
    /* We advertise 200 concurrent streams, and the client acknowledged it:
     * a 201st is a protocol error (nghttp2 chooses the connection error
     * over REFUSED_STREAM then), and each of the 200 is closed. */
    struct fixture f;
    setup_raw(&f);
    send_preface(&f);
    static uint8_t frames[201 * 64];
    size_t at = 0;
    for (int i = 0; i < 201; i++)
        at += connect_headers(frames + at, 1 + 2 * i, END_HEADERS);
    int r = send_frames(&f, frames, at);
    ck_assert_uint_eq(f.app.requests, 200);
    expect_goaway(&f, r, PROTOCOL_ERROR, "max concurrent streams exceeded");
    teardown(&f);
}
END_TEST

START_TEST(data_beyond_the_stream_window)
{
    /* The application reads nothing, so the 4 MiB window stays shut; a frame
     * past it resets that stream (FLOW_CONTROL_ERROR) and only that one.
     * nghttp2 still hands over the payload of the frame that overran, so
     * the application may see up to one frame more than the window. */
    struct fixture f;
    setup_raw(&f);
    f.app.no_consume = 1;
    send_preface(&f);
    uint8_t frame[64];
    ck_assert_int_eq(send_frames(&f, frame, connect_headers(frame, 1, END_HEADERS)), 0);
    static uint8_t data[4 * 1024 * 1024 + 16384];
    raw_h2_send_data(f.client, 1, data, sizeof(data));
    ck_assert_int_eq(raw_h2_pump_status(f.client, f.server), 0);
    ck_assert_int_eq(raw_h2_stream_of(f.client, 1)->closed, 1);
    ck_assert_uint_eq(raw_h2_stream_of(f.client, 1)->close_code, FLOW_CONTROL_ERROR);
    ck_assert_uint_ge(rec_of(&f.app, 1)->received, 4 * 1024 * 1024);
    ck_assert_uint_le(rec_of(&f.app, 1)->received, sizeof(data));
    ck_assert_int_eq(rec_of(&f.app, 1)->closed, 1);
    ck_assert_int_eq(raw_h2_goaway(f.client, NULL), 0);
    f.app.no_consume = 0;
    raw_canary(&f, 3);
    teardown(&f);
}
END_TEST

START_TEST(window_update_flood_is_harmless)
{
    /* 10,000 WINDOW_UPDATEs of one byte each: legal, cheap to apply, and
     * they change nothing else. */
    struct fixture f;
    setup_raw(&f);
    send_preface(&f);
    enum { N = 10000 };
    static uint8_t frames[N * 13];
    for (size_t i = 0; i < N; i++) {
        uint8_t *p = frames + i * 13;
        raw_h2_frame_header(p, 4, WINDOW_UPDATE, 0, 0);
        memset(p + 9, 0, 4);
        p[12] = 1;
    }
    ck_assert_int_eq(send_frames(&f, frames, sizeof(frames)), 0);
    ck_assert_int_eq(raw_h2_goaway(f.client, NULL), 0);
    raw_canary(&f, 1);
    teardown(&f);
}
END_TEST

START_TEST(one_byte_data_frames)
{
    /* 100,000 DATA frames of one byte each arrive whole, in order, and
     * cost no memory beyond the tunnel's. */
    struct fixture f;
    setup_raw(&f);
    send_preface(&f);
    uint8_t frame[64];
    ck_assert_int_eq(send_frames(&f, frame, connect_headers(frame, 1, END_HEADERS)), 0);
    enum { N = 100000 };
    static uint8_t frames[N * 10];
    uint32_t sum = TL_CHECKSUM_INIT;
    for (size_t i = 0; i < N; i++) {
        uint8_t byte = (uint8_t)(i * 31);
        raw_h2_frame_header(frames + i * 10, 1, DATA, 0, 1);
        frames[i * 10 + 9] = byte;
        sum = tl_checksum(sum, &byte, 1);
    }
    ck_assert_int_eq(send_frames(&f, frames, sizeof(frames)), 0);
    ck_assert_uint_eq(rec_of(&f.app, 1)->received, N);
    ck_assert_uint_eq(rec_of(&f.app, 1)->checksum, sum);
    ck_assert_int_eq(raw_h2_goaway(f.client, NULL), 0);
    raw_canary(&f, 3);
    teardown(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("hostile-h2");
    TCase *tc = tcase_create("frames");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, data_on_stream_zero);
    tcase_add_test(tc, a_frame_over_the_advertised_size);
    tcase_add_loop_test(tc, invalid_settings_values, 0, 3);
    tcase_add_test(tc, push_promise_from_a_client);
    tcase_add_test(tc, connection_window_overflow);
    tcase_add_test(tc, stream_window_overflow_resets_only_that_stream);
    tcase_add_test(tc, unknown_frame_types_in_bulk_are_ignored);
    tcase_add_test(tc, continuation_flood);
    tcase_add_test(tc, rapid_reset_is_limited_and_every_request_is_closed);
    tcase_add_test(tc, resets_within_the_budget_are_tolerated);
    tcase_add_test(tc, even_stream_id_from_a_client);
    tcase_add_test(tc, stream_ids_going_backwards);
    tcase_add_test(tc, hpack_index_out_of_range);
    tcase_add_test(tc, hpack_table_size_above_the_advertised_one);
    tcase_add_test(tc, goaway_with_a_growing_last_stream_id);
    tcase_add_test(tc, http11_instead_of_the_preface);
    tcase_add_test(tc, first_frame_not_settings);
    tcase_add_test(tc, more_streams_than_advertised);
    tcase_add_test(tc, data_beyond_the_stream_window);
    tcase_add_test(tc, window_update_flood_is_harmless);
    tcase_add_test(tc, one_byte_data_frames);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
