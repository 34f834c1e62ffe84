/* SPDX-License-Identifier: MIT */
/*
 * Hostile HTTP/2 peers: frames a correct client never sends, written by hand
 * after a real TLS handshake and HTTP/2 preface. Each case checks the
 * server's answer (a stream reset, or GOAWAY with the code RFC 9113 asks
 * for and a failed connection that names the cause), then that a canary
 * tunnel still moves checksummed data both ways: on the same connection when
 * the attack left it standing, else on a new connection from the same
 * config. Every case ends with all of the config's allocations freed.
 * Floods also come from a peer that never reads what the server sends: then
 * the memory the server holds, as the counting allocator sees it, has to
 * stay under a bound, however long the flood.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hbone/hbone.h>

#include "raw_h2.h"
#include "testlib.h"
#include "tls/tls.h"

/* Frame types and error codes, as numbers on the wire. */
#define DATA 0x0
#define HEADERS 0x1
#define PRIORITY 0x2
#define RST_STREAM 0x3
#define SETTINGS 0x4
#define PUSH_PROMISE 0x5
#define PING 0x6
#define GOAWAY 0x7
#define WINDOW_UPDATE 0x8
#define CONTINUATION 0x9
#define END_STREAM 0x1
#define END_HEADERS 0x4
#define ACK 0x1
#define PROTOCOL_ERROR 0x1
#define INTERNAL_ERROR 0x2
#define FLOW_CONTROL_ERROR 0x3
#define STREAM_CLOSED 0x5
#define FRAME_SIZE_ERROR 0x6
#define COMPRESSION_ERROR 0x9
#define ENHANCE_YOUR_CALM 0xb

struct tunnel_rec {
    int32_t id;
    uint64_t received;
    uint32_t checksum;
    int closed, ended;
    uint32_t reason;
};

struct app {
    struct tunnel_rec t[4096];
    size_t n, requests, closes, ends;
    int no_consume; /* leave received bytes unconsumed: the window stays shut */
};

struct fixture {
    tl_counting counts;
    hbone_mem *mem;
    hbone_config *cfg;
    raw_h2 *client;
    hbone_conn *server;
    struct app app;
    size_t peak; /* the most live_bytes seen by watch() */
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

static void on_end(hbone_conn *conn, int32_t tunnel, void *user)
{
    (void)conn;
    struct app *a = user;
    struct tunnel_rec *r = rec_of(a, tunnel);
    ck_assert_int_eq(r->ended, 0); /* exactly once */
    r->ended = 1;
    a->ends++;
}

static void on_close(hbone_conn *conn, int32_t tunnel, uint32_t reason, void *user)
{
    (void)conn;
    struct app *a = user;
    struct tunnel_rec *r = rec_of(a, tunnel);
    ck_assert_int_eq(r->closed, 0); /* exactly once */
    r->closed = 1;
    r->reason = reason;
    a->closes++;
}

/* A server connection from the fixture's config, its application
 * recording into f->app. */
static void server_new(struct fixture *f)
{
    memset(&f->app, 0, sizeof(f->app));
    hbone_callbacks *cbs;
    ck_assert_int_eq(hbone_callbacks_new(&cbs), 0);
    hbone_callbacks_set_tunnel_request(cbs, on_request);
    hbone_callbacks_set_tunnel_data(cbs, on_data);
    hbone_callbacks_set_tunnel_end(cbs, on_end);
    hbone_callbacks_set_tunnel_close(cbs, on_close);
    ck_assert_int_eq(hbone_conn_server_new(&f->server, f->cfg, cbs, &f->app, 0), 0);
    hbone_callbacks_del(cbs);
}

/* A server connection and a raw client (@p raw: one that sends only what
 * the test writes), past the TLS handshake and, unless raw, SETTINGS. */
static void connect_with(struct fixture *f, int raw)
{
    server_new(f);
    f->client = raw ? raw_h2_new_raw() : raw_h2_new();
    raw_h2_pump(f->client, f->server);
}

static void connect_pair(struct fixture *f)
{
    connect_with(f, 0);
}

static void disconnect(struct fixture *f)
{
    if (f->client)
        raw_h2_del(f->client);
    hbone_conn_del(f->server);
    f->client = NULL;
    f->server = NULL;
}

/* @p flood_burst: the server's flood budget (hbone_config_set_flood_limit,
 * refilled at 1 per second of a clock that stands still here), 0 for the
 * default. */
static void setup_with(struct fixture *f, uint32_t flood_burst)
{
    memset(f, 0, sizeof(*f));
    f->mem = tl_counting_mem(&f->counts, -1);
    f->cfg = tl_config_mem("server", NULL, f->mem);
    if (flood_burst)
        ck_assert_int_eq(hbone_config_set_flood_limit(f->cfg, flood_burst, 1), 0);
    connect_pair(f);
}

static void setup(struct fixture *f)
{
    setup_with(f, 0);
}

/* Memory the server's connection holds (and the config's, constant): the
 * counting allocator sees every allocation but wolfSSL's. */
static void watch(struct fixture *f)
{
    if (f->counts.live_bytes > f->peak)
        f->peak = f->counts.live_bytes;
}

/* Start watching from now: returns what is held now, the baseline. */
static size_t watch_from(struct fixture *f)
{
    f->peak = f->counts.live_bytes;
    return f->peak;
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

/* The client preface with 16 MiB windows, so that the server's sending is
 * never what a case measures, and if @p ack the acknowledgement of the
 * server's SETTINGS (which arrived with the handshake): only then do its
 * 4 MiB stream window and its stream limit apply. Returns its length (at
 * most 64). */
static size_t preface_frames(uint8_t *out, int ack)
{
    size_t at = sizeof(preface) - 1;
    memcpy(out, preface, at);
    at += raw_h2_frame_header(out + at, 6, SETTINGS, 0, 0);
    static const uint8_t initial_window[6] = {0x00, 0x04, 0x01, 0x00, 0x00, 0x00};
    memcpy(out + at, initial_window, 6);
    at += 6;
    at += raw_h2_frame_header(out + at, 4, WINDOW_UPDATE, 0, 0);
    static const uint8_t increment[4] = {0x00, 0xff, 0x00, 0x01}; /* 16 MiB - 65535 */
    memcpy(out + at, increment, 4);
    at += 4;
    if (ack)
        at += raw_h2_frame_header(out + at, 0, SETTINGS, ACK, 0);
    return at;
}

/* Raw mode: the preface. */
static void send_preface(struct fixture *f)
{
    uint8_t frames[64];
    raw_h2_send_raw(f->client, frames, preface_frames(frames, 1));
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

/* --- a peer that never reads ---------------------------------------------- */

struct bytes {
    uint8_t *p;
    size_t len, off, cap; /* bytes [off, len) are still to be taken */
};

static void bytes_push(struct bytes *b, const uint8_t *data, size_t n)
{
    if (n == 0)
        return;
    if (b->cap - b->len < n) {
        b->cap = 2 * (b->len + n);
        b->p = realloc(b->p, b->cap);
        ck_assert_ptr_nonnull(b->p);
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

/* What a mute client learnt of one stream once it read. */
struct mute_stream {
    int32_t id;
    int status; /* 200 if the server accepted it */
    int reset;
    uint32_t code; /* RST_STREAM's */
    uint64_t received;
    uint32_t checksum;
};

/* A TLS client that writes frames and, after the handshake, takes none of
 * the server's output until mute_read(): the server offers output after
 * every read, as an event loop does, and the transport never takes it, as
 * a socket whose peer stopped reading. */
struct mute {
    hb_tls *tls;
    struct bytes out;   /* ciphertext for the server */
    struct bytes in;    /* the server's ciphertext, decrypted by mute_read() */
    struct bytes plain; /* the server's frames, not yet parsed */
    struct mute_stream streams[128];
    size_t n_streams;
    int goaway;
    uint32_t goaway_code;
    size_t resets, acks; /* RST_STREAM frames; PING and SETTINGS ACKs */
};

static struct mute_stream *mute_stream(struct mute *m, int32_t id)
{
    for (size_t i = 0; i < m->n_streams; i++) {
        if (m->streams[i].id == id)
            return &m->streams[i];
    }
    ck_assert_uint_lt(m->n_streams, sizeof(m->streams) / sizeof(m->streams[0]));
    struct mute_stream *s = &m->streams[m->n_streams++];
    memset(s, 0, sizeof(*s));
    s->id = id;
    s->checksum = TL_CHECKSUM_INIT;
    return s;
}

static void mute_take_tls_output(struct mute *m)
{
    size_t len;
    const uint8_t *out = hb_tls_output(m->tls, &len);
    bytes_push(&m->out, out, len);
    hb_tls_output_consume(m->tls, len);
}

/* A new server connection and a mute client past the TLS handshake. */
static void mute_connect(struct fixture *f, struct mute *m)
{
    memset(m, 0, sizeof(*m));
    hbone_config *cfg = tl_config("client", NULL);
    ck_assert_int_eq(hb_tls_new(&m->tls, cfg, HB_TLS_CLIENT), 0);
    hbone_config_del(cfg);
    hbone_spiffe_id *id = tl_id("spiffe://cluster.local/ns/default/sa/server");
    ck_assert_int_eq(hb_tls_expect_peer(m->tls, id), 0);
    hbone_spiffe_id_del(id);
    server_new(f);
    int done = 0;
    for (int round = 0; round < 100 && !(done && hbone_conn_cipher(f->server)); round++) {
        size_t used = 0, len;
        if (!done) {
            int r = hb_tls_handshake(m->tls, m->in.p + m->in.off, m->in.len - m->in.off, &used);
            ck_assert_msg(r == 0 || r == HBONE_ERR_AGAIN, "%s", hb_tls_error_detail(m->tls));
            m->in.off += used;
            done = r == 0;
        }
        mute_take_tls_output(m);
        ck_assert_int_eq(
            hbone_conn_input(f->server, m->out.p + m->out.off, m->out.len - m->out.off, &used, 0),
            0);
        m->out.off += used;
        const uint8_t *out = hbone_conn_output(f->server, &len, 0);
        bytes_push(&m->in, out, len);
        hbone_conn_output_consume(f->server, len);
    }
    ck_assert_msg(done && hbone_conn_cipher(f->server), "no handshake");
}

static void mute_free(struct mute *m)
{
    hb_tls_del(m->tls);
    free(m->out.p);
    free(m->in.p);
    free(m->plain.p);
}

/* Queue frames for the server as one TLS record per 16 KiB. */
static void mute_send(struct mute *m, const uint8_t *frames, size_t len)
{
    ck_assert_int_eq(hb_tls_write(m->tls, frames, len), 0);
    mute_take_tls_output(m);
}

/* Let the server read what the client sent, @p records TLS records per read
 * (0: all there is), offering its output after each read; none is taken.
 * Returns the first error of its input, or 0 once it takes no more. */
static int mute_deliver(struct fixture *f, struct mute *m, size_t records)
{
    for (;;) {
        size_t avail = m->out.len - m->out.off, offer = records ? 0 : avail;
        for (size_t i = 0; i < records && offer + 5 <= avail; i++) {
            const uint8_t *h = m->out.p + m->out.off + offer;
            offer += 5 + ((size_t)h[3] << 8 | h[4]);
        }
        if (offer == 0)
            return 0;
        size_t used = 0, len;
        int r = hbone_conn_input(f->server, m->out.p + m->out.off, offer, &used, 0);
        m->out.off += used;
        watch(f);
        (void)hbone_conn_output(f->server, &len, 0);
        watch(f);
        if (r < 0)
            return r;
        if (used == 0)
            return 0; /* held back: the rest waits in the transport */
    }
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void mute_frame(struct mute *m, uint8_t type, uint8_t flags, int32_t id, const uint8_t *p,
                       size_t len)
{
    if (type == GOAWAY && len >= 8) {
        m->goaway = 1;
        m->goaway_code = be32(p + 4);
    } else if ((type == PING || type == SETTINGS) && (flags & ACK)) {
        m->acks++;
    } else if (type == RST_STREAM && len >= 4) {
        m->resets++;
    }
    struct mute_stream *s = NULL;
    for (size_t i = 0; i < m->n_streams && id; i++) {
        if (m->streams[i].id == id)
            s = &m->streams[i];
    }
    if (!s)
        return;
    if (type == RST_STREAM && len >= 4) {
        s->reset = 1;
        s->code = be32(p);
    } else if (type == HEADERS && len > 0 && p[0] == 0x88) {
        s->status = 200; /* HPACK static entry 8, ":status: 200", as nghttp2 sends it */
    } else if (type == DATA) {
        s->received += len;
        s->checksum = tl_checksum(s->checksum, p, len);
    }
}

/* The client reads at last: everything the server has and will send, while
 * the server takes the rest of the client's bytes, until neither moves. */
static int mute_read(struct fixture *f, struct mute *m)
{
    int first_error = 0;
    for (int round = 0; round < 100000; round++) {
        size_t used = 0, len;
        if (m->out.off < m->out.len) {
            int r = hbone_conn_input(f->server, m->out.p + m->out.off, m->out.len - m->out.off,
                                     &used, 0);
            if (r < 0 && !first_error)
                first_error = r;
            m->out.off = r < 0 ? m->out.len : m->out.off + used;
        }
        watch(f);
        const uint8_t *out = hbone_conn_output(f->server, &len, 0);
        watch(f);
        bytes_push(&m->in, out, len);
        hbone_conn_output_consume(f->server, len);
        size_t decrypted = 0;
        for (;;) {
            uint8_t plain[16384];
            size_t took = 0, nread = 0;
            int r = hb_tls_read(m->tls, m->in.p + m->in.off, m->in.len - m->in.off, &took, plain,
                                sizeof(plain), &nread);
            ck_assert_msg(r == 0 || r == HBONE_ERR_AGAIN || r == HBONE_ERR_CLOSED,
                          "mute client read: %d", r);
            m->in.off += took;
            bytes_push(&m->plain, plain, nread);
            decrypted += nread;
            if (r != 0)
                break;
        }
        while (m->plain.len - m->plain.off >= 9) {
            const uint8_t *h = m->plain.p + m->plain.off;
            size_t flen = (size_t)h[0] << 16 | (size_t)h[1] << 8 | h[2];
            if (m->plain.len - m->plain.off < 9 + flen)
                break;
            mute_frame(m, h[3], h[4], (int32_t)(be32(h + 5) & 0x7fffffff), h + 9, flen);
            m->plain.off += 9 + flen;
        }
        if (!used && !len && !decrypted)
            return first_error;
    }
    ck_abort_msg("the exchange did not settle");
    return first_error;
}

/* The canary over the mute client, once it reads. */
static void mute_canary(struct fixture *f, struct mute *m, int32_t id)
{
    uint8_t frame[64];
    struct mute_stream *s = mute_stream(m, id);
    mute_send(m, frame, connect_headers(frame, id, END_HEADERS));
    static uint8_t data[65536];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 11 + (size_t)id);
    uint32_t sum = tl_checksum(TL_CHECKSUM_INIT, data, sizeof(data));
    static uint8_t frames[4 * (9 + 16384)];
    size_t at = 0;
    for (size_t off = 0; off < sizeof(data); off += 16384) {
        at += raw_h2_frame_header(frames + at, 16384, DATA, 0, id);
        memcpy(frames + at, data + off, 16384);
        at += 16384;
    }
    mute_send(m, frames, at);
    ck_assert_int_eq(mute_read(f, m), 0);
    ck_assert_int_eq(s->status, 200);
    size_t accepted = 0;
    ck_assert_int_eq(hbone_conn_tunnel_write(f->server, id, data, sizeof(data), &accepted), 0);
    ck_assert_uint_eq(accepted, sizeof(data));
    ck_assert_int_eq(mute_read(f, m), 0);
    struct tunnel_rec *r = rec_of(&f->app, id);
    ck_assert_uint_eq(r->received, sizeof(data));
    ck_assert_uint_eq(r->checksum, sum);
    ck_assert_uint_eq(s->received, sizeof(data));
    ck_assert_uint_eq(s->checksum, sum);
}

/* A fixture whose client is mute, past its preface (@p ack: see
 * preface_frames). */
static void setup_mute(struct fixture *f, struct mute *m, uint32_t flood_burst, int ack)
{
    setup_with(f, flood_burst);
    disconnect(f);
    mute_connect(f, m);
    uint8_t frames[64];
    mute_send(m, frames, preface_frames(frames, ack));
    ck_assert_int_eq(mute_deliver(f, m, 0), 0);
}

static void teardown_mute(struct fixture *f, struct mute *m)
{
    mute_free(m);
    teardown(f);
}

/* --- frames that do no work: the flood budget --------------------------- */

/* @p count PRIORITY frames (_i 0) on idle streams, or empty DATA frames on
 * the open tunnel @p stream (_i 1). */
static int no_work_flood(struct fixture *f, int empty_data, int count, int32_t stream)
{
    static uint8_t frames[2000 * 14];
    size_t at = 0;
    ck_assert_int_le(count, 2000);
    for (int i = 0; i < count; i++) {
        if (empty_data) {
            at += raw_h2_frame_header(frames + at, 0, DATA, 0, stream);
        } else {
            at += raw_h2_frame_header(frames + at, 5, PRIORITY, 0, 2 * i + 101);
            memset(frames + at, 0, 4);
            frames[at + 4] = 15; /* weight */
            at += 5;
        }
    }
    return send_frames(f, frames, at);
}

static int32_t open_tunnel(struct fixture *f)
{
    static const char *const good[] = {":method", "CONNECT", ":authority", "10.1.1.1:80"};
    int32_t id = raw_h2_request(f->client, good, 2, 0);
    raw_h2_pump(f->client, f->server);
    ck_assert_int_eq(raw_h2_stream_of(f->client, id)->status, 200);
    return id;
}

START_TEST(priority_and_empty_data_floods_end_the_connection)
{
    /* 1100 against the default budget of 1000; the open tunnel is closed
     * with the connection. */
    struct fixture f;
    setup(&f);
    int32_t id = open_tunnel(&f);
    expect_goaway(&f, no_work_flood(&f, _i, 1100, id), ENHANCE_YOUR_CALM, "frames that do no work");
    teardown(&f);
}
END_TEST

START_TEST(priority_and_empty_data_frames_within_the_budget)
{
    struct fixture f;
    setup(&f);
    int32_t id = open_tunnel(&f);
    ck_assert_int_eq(no_work_flood(&f, _i, 1000, id), 0);
    ck_assert_int_eq(raw_h2_goaway(f.client, NULL), 0);
    ck_assert_int_eq(rec_of(&f.app, id)->closed, 0);
    canary(&f);
    teardown(&f);
}
END_TEST

START_TEST(streams_made_to_reset_end_the_connection)
{
    /* MadeYouReset with the default budget: malformed requests, 100 per
     * read, until the server has had enough. None reaches the
     * application. */
    struct fixture f;
    setup(&f);
    static const char *const bad[] = {":method",     "CONNECT", ":authority",
                                      "10.0.0.2:80", "Upper",   "x"};
    int r = 0, rounds = 0;
    for (; rounds < 20 && r == 0; rounds++) {
        for (int i = 0; i < 100; i++)
            raw_h2_request(f.client, bad, 3, 0);
        r = raw_h2_pump_status(f.client, f.server);
    }
    ck_assert_uint_eq(f.app.requests, 0);
    expect_goaway(&f, r, ENHANCE_YOUR_CALM, "streams it made us reset");
    teardown(&f);
}
END_TEST

/* Streams nghttp2 rejects on its own (malformed requests, stream
 * flow-control errors, a second HEADERS) count once, as
 * hbone_config_set_flood_limit documents, like those libhbone resets
 * itself. They used to count twice (the rejected frame and the RST_STREAM
 * it caused each took a token), so the default budget ended a connection
 * after 500 such streams. */
#define REJECTED_BY_NGHTTP2 1

enum trigger_kind { T_REQUEST, T_WINDOW_OVERFLOW, T_SECOND_HEADERS, T_HUGE_HEADER };

/* The reset of a request over the header list limit: PROTOCOL_ERROR, the
 * peer's fault (not nghttp2's INTERNAL_ERROR for a failed callback). */
#define OVER_THE_LIMIT PROTOCOL_ERROR
static int reset_code_is(uint32_t code, uint32_t expected)
{
    return code == expected;
}

struct trigger {
    const char *name;
    int kind;
    const char *fields[8];
    size_t n_fields;
    int status;          /* the answer, or 0 for a reset */
    uint32_t reset_code; /* when reset */
    int cost;            /* flood budget tokens per stream */
};

/* clang-format off */
static const struct trigger triggers[] = {
    {"connection-specific header", T_REQUEST,
     {":method", "CONNECT", ":authority", "10.0.0.2:80", "connection", "close"}, 3,
     0, PROTOCOL_ERROR, REJECTED_BY_NGHTTP2},
    {"te: gzip", T_REQUEST,
     {":method", "CONNECT", ":authority", "10.0.0.2:80", "te", "gzip"}, 3,
     0, PROTOCOL_ERROR, REJECTED_BY_NGHTTP2},
    {"uppercase header name", T_REQUEST,
     {":method", "CONNECT", ":authority", "10.0.0.2:80", "Upper", "x"}, 3,
     0, PROTOCOL_ERROR, REJECTED_BY_NGHTTP2},
    {"authority with a space", T_REQUEST, {":method", "CONNECT", ":authority", "10.0.0.2 :80"}, 2,
     0, PROTOCOL_ERROR, REJECTED_BY_NGHTTP2},
    {"content-length not a number", T_REQUEST,
     {":method", "CONNECT", ":authority", "10.0.0.2:80", "content-length", "x"}, 3,
     0, PROTOCOL_ERROR, REJECTED_BY_NGHTTP2},
    {"missing :authority", T_REQUEST, {":method", "CONNECT"}, 1,
     0, PROTOCOL_ERROR, REJECTED_BY_NGHTTP2},
    {":path on CONNECT", T_REQUEST,
     {":method", "CONNECT", ":authority", "10.0.0.2:80", ":path", "/"}, 3,
     0, PROTOCOL_ERROR, REJECTED_BY_NGHTTP2},
    {"stream window overflow", T_WINDOW_OVERFLOW, {0}, 0,
     0, FLOW_CONTROL_ERROR, REJECTED_BY_NGHTTP2},
    {"second HEADERS without END_STREAM", T_SECOND_HEADERS, {0}, 0,
     0, PROTOCOL_ERROR, REJECTED_BY_NGHTTP2},
    {"space in a header name", T_REQUEST,
     {":method", "CONNECT", ":authority", "10.0.0.2:80", "x y", "1"}, 3,
     0, PROTOCOL_ERROR, 1},
    {"header list over the limit", T_HUGE_HEADER, {0}, 0, 0, OVER_THE_LIMIT, 1},
    /* Answered, not reset: they cost what any request costs. */
    {"hostname while hostnames are disabled", T_REQUEST,
     {":method", "CONNECT", ":authority", "example.com:80"}, 2, 400, 0, 0},
    {"content-length on CONNECT", T_REQUEST,
     {":method", "CONNECT", ":authority", "10.0.0.2:80", "content-length", "0"}, 3, 400, 0, 0},
    /* Allowed (RFC 9113 8.2.2). */
    {"te: trailers", T_REQUEST,
     {":method", "CONNECT", ":authority", "10.0.0.2:80", "te", "trailers"}, 3, 200, 0, 0},
};
/* clang-format on */
#define N_TRIGGERS (sizeof(triggers) / sizeof(triggers[0]))

/* One stream the server must answer or reset the way @p k says; returns
 * its id once sent (not yet pumped). */
static int32_t fire(struct fixture *f, const struct trigger *k)
{
    static char huge[65 * 1024];
    static const char *const huge_fields[] = {":method",     "CONNECT", ":authority",
                                              "10.0.0.2:80", "x-huge",  huge};
    if (k->kind == T_REQUEST)
        return raw_h2_request(f->client, k->fields, k->n_fields, 0);
    if (k->kind == T_HUGE_HEADER) {
        memset(huge, 'h', sizeof(huge) - 1);
        return raw_h2_request(f->client, huge_fields, 3, 0);
    }
    int32_t id = open_tunnel(f);
    uint8_t frame[64];
    size_t at = 0;
    if (k->kind == T_WINDOW_OVERFLOW) {
        at = raw_h2_frame_header(frame, 4, WINDOW_UPDATE, 0, id);
        frame[at++] = 0x7f;
        frame[at++] = 0xff;
        frame[at++] = 0xff;
        frame[at++] = 0xff;
    } else {
        at = 9 + hpack_literal(frame + 9, "x-more", "1");
        raw_h2_frame_header(frame, (uint32_t)(at - 9), HEADERS, END_HEADERS, id);
    }
    raw_h2_send_raw(f->client, frame, at);
    return id;
}

START_TEST(streams_reset_for_the_peer_count_against_the_flood_budget)
{
    /* With a budget of 12 and a clock that stands still: as many such
     * streams as the budget pays for are tolerated, one more ends the
     * connection. Streams that are answered cost nothing: three times the
     * budget of them leave it standing. */
    enum { BURST = 12 };
    const struct trigger *k = &triggers[_i];
    struct fixture f;
    setup_with(&f, BURST);
    int tolerated = k->cost ? BURST / k->cost : 3 * BURST;
    for (int i = 0; i < tolerated; i++) {
        int32_t id = fire(&f, k);
        int r = raw_h2_pump_status(f.client, f.server);
        ck_assert_msg(r == 0, "%s: stream %d of %d tolerated ended it: %s", k->name, i + 1,
                      tolerated, hbone_conn_error_detail(f.server));
        const raw_h2_stream *s = raw_h2_stream_of(f.client, id);
        if (k->status) {
            ck_assert_msg(s->status == k->status, "%s: status %d", k->name, s->status);
        } else {
            /* A tunnel is reset after its 200; a request instead of one. */
            int tunnel = k->kind == T_WINDOW_OVERFLOW || k->kind == T_SECOND_HEADERS;
            ck_assert_msg(s->closed && s->status == (tunnel ? 200 : 0) &&
                              reset_code_is(s->close_code, k->reset_code),
                          "%s: closed %d status %d code %u", k->name, s->closed, s->status,
                          s->close_code);
        }
    }
    ck_assert_int_eq(raw_h2_goaway(f.client, NULL), 0);
    if (k->cost) {
        fire(&f, k);
        expect_goaway(&f, raw_h2_pump_status(f.client, f.server), ENHANCE_YOUR_CALM,
                      "streams it made us reset");
    } else {
        canary(&f);
    }
    teardown(&f);
}
END_TEST

START_TEST(stream_errors_nghttp2_makes_connection_errors)
{
    /* Not MadeYouReset material: nghttp2 1.52 answers these with GOAWAY
     * rather than a stream reset. _i 0: WINDOW_UPDATE of 0 on a tunnel
     * (RFC 9113 allows either); 1: DATA after the tunnel's END_STREAM. */
    struct fixture f;
    setup(&f);
    int32_t id = open_tunnel(&f);
    uint8_t frames[64];
    size_t at = 0;
    if (_i == 0) {
        at = raw_h2_frame_header(frames, 4, WINDOW_UPDATE, 0, id);
        memset(frames + at, 0, 4);
        at += 4;
    } else {
        at = raw_h2_frame_header(frames, 1, DATA, END_STREAM, id);
        frames[at++] = 'a';
        at += raw_h2_frame_header(frames + at, 1, DATA, 0, id);
        frames[at++] = 'b';
    }
    int r = send_frames(&f, frames, at);
    if (_i == 0) {
        expect_goaway(&f, r, PROTOCOL_ERROR, "WINDOW_UPDATE: window_size_increment == 0");
    } else {
        ck_assert_int_eq(rec_of(&f.app, id)->ended, 1);
        ck_assert_uint_eq(rec_of(&f.app, id)->received, 1);
        expect_goaway(&f, r, STREAM_CLOSED, "DATA: stream in half-closed(remote)");
    }
    teardown(&f);
}
END_TEST

/* --- trailers and a second HEADERS on a tunnel ---------------------------- */

/* Open a tunnel and send @p len checked bytes on it; returns its id and the
 * bytes' checksum in *@p sum. */
static int32_t tunnel_with_data(struct fixture *f, size_t len, uint32_t *sum)
{
    int32_t id = open_tunnel(f);
    static uint8_t data[65536];
    ck_assert_uint_le(len, sizeof(data));
    for (size_t i = 0; i < len; i++)
        data[i] = (uint8_t)(i * 5 + 1);
    *sum = tl_checksum(TL_CHECKSUM_INIT, data, len);
    raw_h2_send_data(f->client, id, data, len);
    return id;
}

START_TEST(trailers_end_the_tunnel)
{
    /* A HEADERS with END_STREAM after the 200 is the client's end of the
     * tunnel, like END_STREAM on DATA: every byte before it arrives, the
     * server's side stays open, and its reply half-closes cleanly. */
    struct fixture f;
    setup(&f);
    uint32_t sum;
    int32_t id = tunnel_with_data(&f, 65536, &sum);
    uint8_t frame[64];
    size_t at = 9 + hpack_literal(frame + 9, "x-trailer", "1");
    raw_h2_frame_header(frame, (uint32_t)(at - 9), HEADERS, END_HEADERS | END_STREAM, id);
    ck_assert_int_eq(send_frames(&f, frame, at), 0);
    struct tunnel_rec *t = rec_of(&f.app, id);
    ck_assert_uint_eq(t->received, 65536);
    ck_assert_uint_eq(t->checksum, sum);
    ck_assert_int_eq(t->ended, 1);
    ck_assert_int_eq(t->closed, 0);
    static const uint8_t reply[] = "the rest of the reply";
    size_t accepted = 0;
    ck_assert_int_eq(hbone_conn_tunnel_write(f.server, id, reply, sizeof(reply), &accepted), 0);
    ck_assert_uint_eq(accepted, sizeof(reply));
    ck_assert_int_eq(hbone_conn_tunnel_shutdown(f.server, id), 0);
    raw_h2_pump(f.client, f.server);
    const raw_h2_stream *s = raw_h2_stream_of(f.client, id);
    ck_assert_uint_eq(s->received, sizeof(reply));
    ck_assert_uint_eq(s->checksum, tl_checksum(TL_CHECKSUM_INIT, reply, sizeof(reply)));
    ck_assert_int_eq(s->ended, 1);
    ck_assert_int_eq(t->closed, 1);
    ck_assert_uint_eq(t->reason, 0); /* a clean end both ways */
    ck_assert_int_eq(raw_h2_goaway(f.client, NULL), 0);
    canary(&f);
    teardown(&f);
}
END_TEST

START_TEST(a_second_headers_resets_the_tunnel)
{
    /* Without END_STREAM it cannot be trailers (RFC 9113 8.1): nghttp2
     * resets the stream (PROTOCOL_ERROR). The bytes before it arrived, the
     * tunnel is closed with that code, never ended, and the connection
     * carries on. */
    struct fixture f;
    setup(&f);
    uint32_t sum;
    int32_t id = tunnel_with_data(&f, 4096, &sum);
    uint8_t frame[64];
    size_t at = 9 + hpack_literal(frame + 9, "x-more", "1");
    raw_h2_frame_header(frame, (uint32_t)(at - 9), HEADERS, END_HEADERS, id);
    ck_assert_int_eq(send_frames(&f, frame, at), 0);
    struct tunnel_rec *t = rec_of(&f.app, id);
    ck_assert_uint_eq(t->received, 4096);
    ck_assert_uint_eq(t->checksum, sum);
    ck_assert_int_eq(t->ended, 0);
    ck_assert_int_eq(t->closed, 1);
    ck_assert_uint_eq(t->reason, PROTOCOL_ERROR);
    const raw_h2_stream *s = raw_h2_stream_of(f.client, id);
    ck_assert_int_eq(s->closed, 1);
    ck_assert_uint_eq(s->close_code, PROTOCOL_ERROR);
    ck_assert_int_eq(raw_h2_goaway(f.client, NULL), 0);
    canary(&f);
    teardown(&f);
}
END_TEST

/* --- floods from a peer that never reads ---------------------------------- */

#define KiB 1024u
/* The server's limit on ciphertext waiting for the peer, by default: framing
 * stops there (hbone_config_set_buffer_limits). */
#define CONNECTION_BUFFER (256 * KiB)

START_TEST(ack_floods_from_a_peer_that_never_reads)
{
    /* _i & 1: SETTINGS, else PING; _i & 2: one TLS record per read, the
     * server offering its output after each, else everything in one read.
     * Every one of these frames asks for an ACK. nghttp2 queues at most 100
     * unsent ACKs and then reports a flood, which ends the connection;
     * trickled, the ACKs first fill the ciphertext waiting for the peer up
     * to the connection buffer, and only then pile up. Memory is that
     * buffer (grown by doubling, so twice the limit at most) and the 100
     * ACKs (a few hundred bytes each), not one per frame: 40,000 ACKs kept
     * would be megabytes. */
    int settings = _i & 1, trickle = _i & 2;
    enum { N = 40000, PER_RECORD = 50 };
    struct fixture f;
    struct mute m;
    setup_mute(&f, &m, 0, 1);
    size_t before = watch_from(&f);
    static uint8_t frames[PER_RECORD * 17];
    for (int i = 0; i < N / PER_RECORD; i++) {
        size_t at = 0;
        for (int j = 0; j < PER_RECORD; j++) {
            if (settings) {
                at += raw_h2_frame_header(frames + at, 0, SETTINGS, 0, 0);
            } else {
                at += raw_h2_frame_header(frames + at, 8, PING, 0, 0);
                memset(frames + at, j, 8);
                at += 8;
            }
        }
        mute_send(&m, frames, at);
    }
    ck_assert_int_eq(mute_deliver(&f, &m, trickle ? 1 : 0), HBONE_ERR_PROTOCOL);
    const char *detail = hbone_conn_error_detail(f.server);
    ck_assert_msg(strstr(detail, "Flooding was detected") != NULL, "detail: %s", detail);
    size_t bound = (trickle ? 2 * CONNECTION_BUFFER : 0) + 64 * KiB;
    ck_assert_msg(f.peak - before <= bound, "%zu bytes held for the flood, bound %zu",
                  f.peak - before, bound);
    ck_assert_uint_lt(m.out.off, m.out.len); /* the rest was never read */
    /* What it had sent before is still delivered, then the connection just
     * ends: a GOAWAY would sit behind ACKs the peer does not read. */
    ck_assert_int_eq(mute_read(&f, &m), HBONE_ERR_PROTOCOL);
    ck_assert_int_eq(m.goaway, 0);
    ck_assert_uint_lt(m.acks, N);
    ck_assert_int_eq(hbone_conn_is_closed(f.server), 1);
    mute_free(&m);
    disconnect(&f);
    connect_pair(&f);
    canary(&f);
    teardown(&f);
}
END_TEST

/* @p n bad requests on fresh streams from *@p stream on, each with an
 * uppercase header name (RFC 9113 8.2.1: malformed, so the server resets
 * it), in records of 200. */
static void send_bad_requests(struct mute *m, int n, int32_t *stream)
{
    static uint8_t frames[200 * 64];
    for (int i = 0; i < n; i += 200) {
        size_t at = 0;
        for (int j = 0; j < 200 && i + j < n; j++) {
            size_t start = at;
            at += 9;
            at += hpack_literal(frames + at, ":method", "CONNECT");
            at += hpack_literal(frames + at, ":authority", "10.0.0.1:80");
            at += hpack_literal(frames + at, "Upper", "x");
            raw_h2_frame_header(frames + start, (uint32_t)(at - start - 9), HEADERS, END_HEADERS,
                                *stream);
            *stream += 2;
        }
        mute_send(m, frames, at);
    }
}

START_TEST(a_reset_flood_that_never_reads_is_held_back)
{
    /* Requests the server must reset, from a peer that reads none of the
     * resets and, to keep the connection, never acknowledges our SETTINGS:
     * the stream limit then refuses streams (REFUSED_STREAM, one more reset
     * each) instead of ending the connection. The flood budget is out of
     * the way. The server frames resets until the connection buffer is
     * full, queues up to 1000 frames more, then takes no more input: the
     * rest waits in the transport, and memory stops growing however many
     * requests follow. _i: everything in one read, or one record per
     * read. Bound: the ciphertext buffer (twice the connection buffer at
     * most) and about 1,300 queued resets (1000 plus one record's worth)
     * at a few hundred bytes each; one allocation per request would be
     * megabytes. */
    size_t records = _i ? 1 : 0;
    const size_t bound = 2 * CONNECTION_BUFFER + 512 * KiB;
    struct fixture f;
    struct mute m;
    setup_mute(&f, &m, 1000000, 0);
    size_t before = watch_from(&f);
    int32_t stream = 1;
    int total = (int)tl_scale(100000, 60000);
    send_bad_requests(&m, 10000, &stream);
    ck_assert_int_eq(mute_deliver(&f, &m, records), 0);
    ck_assert_uint_le(f.peak - before, bound);
    send_bad_requests(&m, 40000, &stream);
    ck_assert_int_eq(mute_deliver(&f, &m, records), 0);
    ck_assert_uint_le(f.peak - before, bound);
    size_t taken = m.out.off, held = f.counts.live_bytes;
    ck_assert_uint_lt(taken, m.out.len); /* held back */
    send_bad_requests(&m, total - 50000, &stream);
    ck_assert_int_eq(mute_deliver(&f, &m, records), 0);
    ck_assert_uint_eq(m.out.off, taken);
    ck_assert_uint_eq(f.counts.live_bytes, held);
    ck_assert_uint_le(f.peak - before, bound);
    ck_assert_uint_eq(f.app.requests, 0);
    ck_assert_int_eq(mute_read(&f, &m), 0);
    ck_assert_int_eq(m.goaway, 0);
    /* The peer reads, acknowledges our SETTINGS, and is served again. (The
     * canary's bytes also bring in the requests whose plaintext the server
     * had decrypted before it held back: see the case below.) */
    uint8_t ack[9];
    mute_send(&m, ack, raw_h2_frame_header(ack, 0, SETTINGS, ACK, 0));
    mute_canary(&f, &m, stream);
    ck_assert_uint_eq(m.resets, (size_t)total);
    teardown_mute(&f, &m);
}
END_TEST

/* Once input is held back, plaintext wolfSSL has already decrypted (the
 * 16 KiB plaintext buffer fills across two records, and the second
 * record's ciphertext counts as consumed) is still read through: the
 * caller was told every byte was consumed, and nothing would make it call
 * again for it. Before the fix 29 of 100,000 requests (134 when read one
 * record at a time) were never answered. */
START_TEST(input_held_back_is_all_taken_once_the_peer_reads)
{
    size_t records = _i ? 1 : 0;
    struct fixture f;
    struct mute m;
    setup_mute(&f, &m, 1000000, 0);
    int32_t stream = 1;
    send_bad_requests(&m, 100000, &stream);
    ck_assert_int_eq(mute_deliver(&f, &m, records), 0);
    ck_assert_uint_lt(m.out.off, m.out.len); /* held back */
    ck_assert_int_eq(mute_read(&f, &m), 0);
    ck_assert_uint_eq(m.out.off, m.out.len);
    ck_assert_uint_eq(m.resets, 100000);
    teardown_mute(&f, &m);
}
END_TEST

/* --- HPACK bombs ------------------------------------------------------------ */

/* An HPACK integer (RFC 7541 5.1) in a first byte @p first with @p prefix
 * bits for it. */
static size_t hpack_int(uint8_t *out, uint8_t first, int prefix, size_t v)
{
    size_t max = ((size_t)1 << prefix) - 1, at = 0;
    if (v < max) {
        out[at++] = (uint8_t)(first | v);
        return at;
    }
    out[at++] = (uint8_t)(first | max);
    for (v -= max; v >= 128; v >>= 7)
        out[at++] = (uint8_t)(0x80 | (v & 0x7f));
    out[at++] = (uint8_t)v;
    return at;
}

/* A literal field with incremental indexing, new name (RFC 7541 6.2.1): it
 * becomes dynamic table entry 62. The value is @p value_len bytes of 'b'. */
static size_t hpack_insert(uint8_t *out, const char *name, size_t value_len)
{
    size_t n = strlen(name), at = 0;
    out[at++] = 0x40;
    at += hpack_int(out + at, 0, 7, n);
    memcpy(out + at, name, n);
    at += n;
    at += hpack_int(out + at, 0, 7, value_len);
    memset(out + at, 'b', value_len);
    return at + value_len;
}

/* A HEADERS frame: a CONNECT to 10.0.0.1:80 whose header block then names
 * dynamic entry 62 @p refs times (one byte each: 0x80 | 62). */
static size_t bomb_headers(uint8_t *out, int32_t stream, int refs)
{
    size_t at = 9;
    at += hpack_literal(out + at, ":method", "CONNECT");
    at += hpack_literal(out + at, ":authority", "10.0.0.1:80");
    memset(out + at, 0x80 | 62, (size_t)refs);
    at += (size_t)refs;
    raw_h2_frame_header(out, (uint32_t)(at - 9), HEADERS, END_HEADERS, stream);
    return at;
}

/* Stream 1: a CONNECT that puts a 4000-byte field into the server's 4 KiB
 * dynamic table (6 + 4000 + 32 bytes as HPACK counts it), a legitimate
 * tunnel in its own right. */
static void hpack_arm(struct fixture *f, struct mute *m)
{
    static uint8_t frame[9 + 64 + 4100];
    size_t at = 9;
    at += hpack_literal(frame + at, ":method", "CONNECT");
    at += hpack_literal(frame + at, ":authority", "10.0.0.1:80");
    at += hpack_insert(frame + at, "x-bomb", 4000);
    raw_h2_frame_header(frame, (uint32_t)(at - 9), HEADERS, END_HEADERS, 1);
    mute_send(m, frame, at);
    ck_assert_int_eq(mute_read(f, m), 0);
    ck_assert_uint_eq(f->app.requests, 1);
}

START_TEST(hpack_bomb_through_the_dynamic_table)
{
    /* Each request is 1000 bytes naming that entry: 4 MB decoded, against
     * a 64 KiB header list. The budget counts decoded bytes, so the stream
     * is reset at the 17th reference, and what it held so far (16 copies
     * of the field) goes with it; the rest of the block is only decoded
     * (to keep the table in step), never kept. 100 such requests cost the
     * server no more than one, and the connection carries on. */
    enum { REQUESTS = 100, REFS = 1000 };
    struct fixture f;
    struct mute m;
    setup_mute(&f, &m, 0, 1);
    hpack_arm(&f, &m);
    size_t before = watch_from(&f);
    static uint8_t frame[9 + 64 + REFS];
    for (int i = 0; i < REQUESTS; i++) {
        int32_t id = 3 + 2 * i;
        struct mute_stream *s = mute_stream(&m, id);
        mute_send(&m, frame, bomb_headers(frame, id, REFS));
        ck_assert_int_eq(mute_read(&f, &m), 0);
        ck_assert_int_eq(s->reset, 1);
        ck_assert_msg(reset_code_is(s->code, OVER_THE_LIMIT), "reset with %u", s->code);
    }
    ck_assert_uint_eq(f.app.requests, 1);
    ck_assert_int_eq(m.goaway, 0);
    /* 64 KiB of copied fields plus their bookkeeping, at most. */
    ck_assert_msg(f.peak - before <= 128 * KiB, "%zu bytes held", f.peak - before);
    ck_assert_uint_le(f.counts.live_bytes, before);
    mute_canary(&f, &m, 3 + 2 * REQUESTS);
    teardown_mute(&f, &m);
}
END_TEST

/* The same bomb on 199 streams in one read, from a peer that does not read:
 * a request over the budget keeps none of its fields while its reset
 * waits. Before the fix each kept 64 KiB until its reset was sent: 12.5 MiB
 * (measured peak 13,068,096 bytes) for 14 KB on the wire. */
START_TEST(hpack_bombs_on_many_streams_at_once)
{
    enum { REQUESTS = 199, REFS = 20 };
    struct fixture f;
    struct mute m;
    setup_mute(&f, &m, 0, 1);
    hpack_arm(&f, &m);
    size_t before = watch_from(&f);
    static uint8_t frames[REQUESTS * (9 + 64 + REFS)];
    size_t at = 0;
    for (int i = 0; i < REQUESTS; i++)
        at += bomb_headers(frames + at, 3 + 2 * i, REFS);
    mute_send(&m, frames, at);
    ck_assert_int_eq(mute_deliver(&f, &m, 0), 0);
    ck_assert_msg(f.peak - before <= 1024 * KiB, "%zu bytes held for %zu on the wire",
                  f.peak - before, at);
    ck_assert_int_eq(mute_read(&f, &m), 0);
    ck_assert_uint_eq(m.resets, REQUESTS);
    mute_canary(&f, &m, 3 + 2 * REQUESTS);
    teardown_mute(&f, &m);
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
    tcase_add_loop_test(tc, priority_and_empty_data_floods_end_the_connection, 0, 2);
    tcase_add_loop_test(tc, priority_and_empty_data_frames_within_the_budget, 0, 2);
    tcase_add_test(tc, streams_made_to_reset_end_the_connection);
    tcase_add_loop_test(tc, streams_reset_for_the_peer_count_against_the_flood_budget, 0,
                        (int)N_TRIGGERS);
    tcase_add_loop_test(tc, stream_errors_nghttp2_makes_connection_errors, 0, 2);
    tcase_add_test(tc, trailers_end_the_tunnel);
    tcase_add_test(tc, a_second_headers_resets_the_tunnel);
    tcase_add_loop_test(tc, ack_floods_from_a_peer_that_never_reads, 0, 4);
    tcase_add_loop_test(tc, a_reset_flood_that_never_reads_is_held_back, 0, 2);
    tcase_add_test(tc, hpack_bomb_through_the_dynamic_table);
    tcase_add_test(tc, hpack_bombs_on_many_streams_at_once);
    tcase_add_loop_test(tc, input_held_back_is_all_taken_once_the_peer_reads, 0, 2);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
