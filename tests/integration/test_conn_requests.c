/* SPDX-License-Identifier: MIT */
/*
 * What an HBONE server does with requests that are not a well-formed classic
 * CONNECT, sent by a raw HTTP/2 client: each is answered (400) or reset
 * without the application seeing it, and the connection keeps serving.
 */
#include <check.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hbone/hbone.h>

#include "raw_h2.h"
#include "testlib.h"

struct server_log {
    int requests;
    char last_host[64];
    /* Of the last request: who the connection says sent it, and its
     * headers as the application reads them. */
    char peer[128];
    char header_names[8][32];
    char header_values[8][128];
    size_t n_headers;
};

static void on_request(hbone_conn *conn, int32_t tunnel, const char *host, size_t host_len,
                       uint16_t port, int kind, void *user)
{
    (void)port;
    (void)kind;
    struct server_log *log = user;
    log->requests++;
    snprintf(log->last_host, sizeof(log->last_host), "%.*s", (int)host_len, host);
    snprintf(log->peer, sizeof(log->peer), "%s",
             hbone_spiffe_id_str(hbone_conn_peer_id(conn), NULL));
    const char *name, *value;
    size_t name_len, value_len;
    for (log->n_headers = 0; hbone_conn_tunnel_header(conn, tunnel, log->n_headers, &name,
                                                      &name_len, &value, &value_len) == 0;
         log->n_headers++) {
        ck_assert_uint_lt(log->n_headers, 8);
        snprintf(log->header_names[log->n_headers], sizeof(log->header_names[0]), "%.*s",
                 (int)name_len, name);
        snprintf(log->header_values[log->n_headers], sizeof(log->header_values[0]), "%.*s",
                 (int)value_len, value);
    }
    ck_assert_int_eq(hbone_conn_tunnel_accept(conn, tunnel, NULL, NULL, NULL, NULL, 0), 0);
}

struct fixture {
    raw_h2 *client;
    hbone_conn *server;
    struct server_log log;
};

/* The server's flood budget (burst, refilled at 1 per second), or 0 for the
 * default. */
static uint32_t fixture_flood_burst;

static void setup_with(struct fixture *f, int hostnames, uint32_t header_list)
{
    memset(f, 0, sizeof(*f));
    hbone_config *cfg = tl_config("server", NULL);
    if (fixture_flood_burst)
        ck_assert_int_eq(hbone_config_set_flood_limit(cfg, fixture_flood_burst, 1), 0);
    if (hostnames)
        ck_assert_int_eq(hbone_config_set_hostname_authority(cfg, 1), 0);
    if (header_list)
        ck_assert_int_eq(hbone_config_set_max_header_list_size(cfg, header_list), 0);
    hbone_callbacks *cbs;
    ck_assert_int_eq(hbone_callbacks_new(&cbs), 0);
    hbone_callbacks_set_tunnel_request(cbs, on_request);
    ck_assert_int_eq(hbone_conn_server_new(&f->server, cfg, cbs, &f->log, 0), 0);
    hbone_callbacks_del(cbs);
    hbone_config_del(cfg);
    f->client = raw_h2_new();
}

static void setup(struct fixture *f)
{
    setup_with(f, 0, 0);
}

static void teardown(struct fixture *f)
{
    raw_h2_del(f->client);
    hbone_conn_del(f->server);
}

/* A good CONNECT still works: the canary after every bad request. */
static void check_canary(struct fixture *f)
{
    static const char *const good[] = {":method", "CONNECT", ":authority", "10.9.8.7:443"};
    int before = f->log.requests;
    int32_t id = raw_h2_request(f->client, good, 2, 0);
    raw_h2_pump(f->client, f->server);
    ck_assert_int_eq(f->log.requests, before + 1);
    ck_assert_str_eq(f->log.last_host, "10.9.8.7");
    ck_assert_int_eq(raw_h2_stream_of(f->client, id)->status, 200);
}

struct bad_request {
    const char *name;
    const char *fields[12];
    size_t n_fields;
    int end_stream;
    int status;          /* expected :status, or 0 for a reset */
    uint32_t reset_code; /* when status is 0 */
};

/* clang-format off */
static const struct bad_request bad_requests[] = {
    {"authority without port", {":method", "CONNECT", ":authority", "10.0.0.2"}, 2, 0, 400, 0},
    {"authority port 0", {":method", "CONNECT", ":authority", "10.0.0.2:0"}, 2, 0, 400, 0},
    {"hostname not enabled", {":method", "CONNECT", ":authority", "example.com:80"}, 2, 0, 400, 0},
    {"ipv6 with zone", {":method", "CONNECT", ":authority", "[fe80::1%eth0]:80"}, 2, 0, 400, 0},
    {"userinfo", {":method", "CONNECT", ":authority", "a@10.0.0.2:80"}, 2, 0, 400, 0},
    {"GET instead of CONNECT",
     {":method", "GET", ":scheme", "https", ":path", "/", ":authority", "10.0.0.2:80"}, 4, 1, 400, 0},
    {"CONNECT with END_STREAM", {":method", "CONNECT", ":authority", "10.0.0.2:80"}, 2, 1, 400, 0},
    {"content-length on CONNECT",
     {":method", "CONNECT", ":authority", "10.0.0.2:80", "content-length", "0"}, 3, 0, 400, 0},
    {"CONNECT with :path",
     {":method", "CONNECT", ":authority", "10.0.0.2:80", ":path", "/"}, 3, 0, 0, 0x1},
    {"CONNECT with :scheme",
     {":method", "CONNECT", ":authority", "10.0.0.2:80", ":scheme", "https"}, 3, 0, 0, 0x1},
    {"extended CONNECT (:protocol)",
     {":method", "CONNECT", ":protocol", "websocket", ":scheme", "https", ":path", "/",
      ":authority", "10.0.0.2:80"}, 5, 0, 0, 0x1},
    {"missing :authority", {":method", "CONNECT"}, 1, 0, 0, 0x1},
    {"uppercase header name",
     {":method", "CONNECT", ":authority", "10.0.0.2:80", "Baggage", "x"}, 3, 0, 0, 0x1},
    {"space in a header name",
     {":method", "CONNECT", ":authority", "10.0.0.2:80", "x y", "1"}, 3, 0, 0, 0x1},
    {"newline in a header value",
     {":method", "CONNECT", ":authority", "10.0.0.2:80", "baggage", "a\nb"}, 3, 0, 0, 0x1},
    {"parentheses in a header name",
     {":method", "CONNECT", ":authority", "10.0.0.2:80", "x(y)", "1"}, 3, 0, 0, 0x1},
    {"connection-specific header",
     {":method", "CONNECT", ":authority", "10.0.0.2:80", "connection", "close"}, 3, 0, 0, 0x1},
};
/* clang-format on */
#define N_BAD (sizeof(bad_requests) / sizeof(bad_requests[0]))

START_TEST(bad_request_is_answered_without_the_application)
{
    const struct bad_request *b = &bad_requests[_i];
    struct fixture f;
    setup(&f);
    int32_t id = raw_h2_request(f.client, b->fields, b->n_fields, b->end_stream);
    raw_h2_pump(f.client, f.server);
    const raw_h2_stream *s = raw_h2_stream_of(f.client, id);
    ck_assert_msg(f.log.requests == 0, "%s reached the application", b->name);
    if (b->status) {
        ck_assert_msg(s->status == b->status, "%s: status %d, want %d", b->name, s->status,
                      b->status);
        ck_assert_msg(s->ended, "%s: the refusal did not end the stream", b->name);
    } else {
        ck_assert_msg(s->closed && s->status == 0 && s->close_code == b->reset_code,
                      "%s: closed %d status %d code %u, want reset %u", b->name, s->closed,
                      s->status, s->close_code, b->reset_code);
    }
    check_canary(&f);
    teardown(&f);
}
END_TEST

START_TEST(oversized_headers_reset_one_stream)
{
    struct fixture f;
    setup(&f);
    /* 100 fields of 700 bytes: over the 64 KiB header list we advertise. */
    static char value[701];
    memset(value, 'v', 700);
    const char *fields[2 * 100];
    char names[98][8];
    fields[0] = ":method";
    fields[1] = "CONNECT";
    fields[2] = ":authority";
    fields[3] = "10.0.0.2:80";
    for (int i = 0; i < 98; i++) {
        snprintf(names[i], sizeof(names[i]), "x-%03d", i);
        fields[4 + 2 * i] = names[i];
        fields[5 + 2 * i] = value;
    }
    int32_t id = raw_h2_request(f.client, fields, 100, 0);
    raw_h2_pump(f.client, f.server);
    const raw_h2_stream *s = raw_h2_stream_of(f.client, id);
    ck_assert_int_eq(f.log.requests, 0);
    ck_assert_int_eq(s->closed, 1);
    ck_assert_int_eq(s->status, 0);
    ck_assert_uint_ne(s->close_code, 0);
    check_canary(&f);
    teardown(&f);
}
END_TEST

START_TEST(header_list_limit_is_configurable)
{
    /* 5 KiB of headers: within the default 64 KiB, over a 4 KiB limit. */
    struct fixture f;
    setup_with(&f, 0, _i ? 4096 : 0);
    static char value[5 * 1024];
    memset(value, 'v', sizeof(value) - 1);
    const char *fields[] = {":method", "CONNECT", ":authority", "10.0.0.3:80", "x-big", value};
    int32_t id = raw_h2_request(f.client, fields, 3, 0);
    raw_h2_pump(f.client, f.server);
    ck_assert_uint_eq(raw_h2_server_setting(f.client, NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE),
                      _i ? 4096 : 64 * 1024);
    const raw_h2_stream *s = raw_h2_stream_of(f.client, id);
    if (_i) {
        ck_assert_int_eq(f.log.requests, 0);
        ck_assert_int_eq(s->closed, 1);
        ck_assert_uint_ne(s->close_code, 0);
        check_canary(&f);
    } else {
        ck_assert_int_eq(f.log.requests, 1);
        ck_assert_int_eq(s->status, 200);
    }
    teardown(&f);
}
END_TEST

START_TEST(request_headers_reach_the_application)
{
    struct fixture f;
    setup(&f);
    static const char *const fields[] = {":method",    "CONNECT",
                                         ":authority", "[fd00::9]:15008",
                                         "forwarded",  "for=\"[fd00::1]:4000\"",
                                         "baggage",    "k8s.namespace.name=ns"};
    int32_t id = raw_h2_request(f.client, fields, 4, 0);
    raw_h2_pump(f.client, f.server);
    ck_assert_int_eq(f.log.requests, 1);
    ck_assert_str_eq(f.log.last_host, "fd00::9");
    ck_assert_int_eq(raw_h2_stream_of(f.client, id)->status, 200);
    teardown(&f);
}
END_TEST

/* @p count PRIORITY frames, or empty DATA frames on @p stream. */
static void flood(struct fixture *f, int count, int empty_data, int32_t stream)
{
    uint8_t frame[14];
    for (int i = 0; i < count; i++) {
        size_t n;
        if (empty_data) {
            n = raw_h2_frame_header(frame, 0, 0x0, 0, stream);
        } else {
            n = raw_h2_frame_header(frame, 5, 0x2, 0, 2 * i + 101);
            memset(frame + n, 0, 4);
            frame[n + 4] = 15; /* weight */
            n += 5;
        }
        raw_h2_send_raw(f->client, frame, n);
    }
}

static int32_t open_good(struct fixture *f)
{
    static const char *const good[] = {":method", "CONNECT", ":authority", "10.1.1.1:80"};
    int32_t id = raw_h2_request(f->client, good, 2, 0);
    raw_h2_pump(f->client, f->server);
    ck_assert_int_eq(raw_h2_stream_of(f->client, id)->status, 200);
    return id;
}

START_TEST(frame_floods_end_the_connection)
{
    /* _i: 0 PRIORITY flood, 1 empty DATA flood. */
    struct fixture f;
    setup(&f);
    int32_t id = open_good(&f);
    flood(&f, 1100, _i, id);
    int r = raw_h2_pump_status(f.client, f.server);
    ck_assert_int_eq(r, HBONE_ERR_PROTOCOL);
    ck_assert_ptr_nonnull(strstr(hbone_conn_error_detail(f.server), "ENHANCE_YOUR_CALM"));
    uint32_t code = 0;
    ck_assert_int_eq(raw_h2_goaway(f.client, &code), 1);
    ck_assert_uint_eq(code, 0xb);
    teardown(&f);
}
END_TEST

START_TEST(a_few_such_frames_are_tolerated)
{
    /* Under the burst, the same frames do not end the connection. */
    struct fixture f;
    setup(&f);
    int32_t id = open_good(&f);
    flood(&f, 900, _i, id);
    ck_assert_int_eq(raw_h2_pump_status(f.client, f.server), 0);
    ck_assert_int_eq(raw_h2_goaway(f.client, NULL), 0);
    check_canary(&f);
    teardown(&f);
}
END_TEST

START_TEST(the_flood_budget_is_configurable)
{
    /* A budget of 10: ten such frames pass, the eleventh ends it. */
    for (int count = 10; count <= 11; count++) {
        struct fixture f;
        fixture_flood_burst = 10;
        setup(&f);
        fixture_flood_burst = 0;
        int32_t id = open_good(&f);
        flood(&f, count, _i, id);
        int r = raw_h2_pump_status(f.client, f.server);
        if (count == 10) {
            ck_assert_int_eq(r, 0);
            check_canary(&f);
        } else {
            ck_assert_int_eq(r, HBONE_ERR_PROTOCOL);
            ck_assert_ptr_nonnull(strstr(hbone_conn_error_detail(f.server), "ENHANCE_YOUR_CALM"));
        }
        teardown(&f);
    }
}
END_TEST

START_TEST(streams_reset_for_the_peer_count_too)
{
    /* MadeYouReset: each request is malformed so that the server resets it
     * (PROTOCOL_ERROR); a thousand and more of them end the connection. */
    struct fixture f;
    setup(&f);
    static const char *const bad[] = {":method",     "CONNECT", ":authority",
                                      "10.0.0.2:80", "Upper",   "x"};
    int r = 0;
    for (int round = 0; round < 12 && r == 0; round++) {
        for (int i = 0; i < 100; i++)
            raw_h2_request(f.client, bad, 3, 0);
        r = raw_h2_pump_status(f.client, f.server);
    }
    ck_assert_int_eq(r, HBONE_ERR_PROTOCOL);
    ck_assert_ptr_nonnull(strstr(hbone_conn_error_detail(f.server), "ENHANCE_YOUR_CALM"));
    ck_assert_int_eq(f.log.requests, 0);
    teardown(&f);
}
END_TEST

START_TEST(identity_comes_from_the_certificate_never_from_headers)
{
    /* Headers that claim another identity, the way proxies pass one on
     * (Envoy's XFCC, baggage, Forwarded), change nothing: the peer is who
     * its certificate says, and the headers are opaque values the
     * application may read, in order, byte for byte. */
    static const char *const claims[] = {
        "x-forwarded-client-cert",
        "By=spiffe://evil/ns/x/sa/y;URI=spiffe://cluster.local/ns/default/sa/admin",
        "baggage",
        "k8s.identity=admin,spiffe.id=spiffe://cluster.local/ns/default/sa/admin",
        "forwarded",
        "for=\"spiffe://cluster.local/ns/default/sa/admin\";by=10.0.0.1",
        "x-spiffe-id",
        "spiffe://cluster.local/ns/default/sa/admin"};
    enum { N_CLAIMS = sizeof(claims) / sizeof(claims[0]) / 2 };
    const char *fields[2 * (2 + N_CLAIMS)] = {":method", "CONNECT", ":authority", "10.0.0.4:80"};
    memcpy(fields + 4, claims, sizeof(claims));
    struct fixture f;
    setup(&f);
    int32_t id = raw_h2_request(f.client, fields, 2 + N_CLAIMS, 0);
    raw_h2_pump(f.client, f.server);
    ck_assert_int_eq(raw_h2_stream_of(f.client, id)->status, 200);
    ck_assert_int_eq(f.log.requests, 1);
    ck_assert_str_eq(f.log.peer, "spiffe://cluster.local/ns/default/sa/client");
    ck_assert_uint_eq(f.log.n_headers, N_CLAIMS);
    for (size_t i = 0; i < N_CLAIMS; i++) {
        ck_assert_str_eq(f.log.header_names[i], claims[2 * i]);
        ck_assert_str_eq(f.log.header_values[i], claims[2 * i + 1]);
    }
    /* Nor afterwards, once the request is answered. */
    ck_assert_str_eq(hbone_spiffe_id_str(hbone_conn_peer_id(f.server), NULL),
                     "spiffe://cluster.local/ns/default/sa/client");
    teardown(&f);
}
END_TEST

START_TEST(hostnames_when_the_application_enables_them)
{
    struct fixture f;
    setup_with(&f, 1, 0);
    static const char *const fields[] = {":method", "CONNECT", ":authority",
                                         "reviews.bookinfo.svc.cluster.local:9080"};
    int32_t id = raw_h2_request(f.client, fields, 2, 0);
    raw_h2_pump(f.client, f.server);
    ck_assert_int_eq(f.log.requests, 1);
    ck_assert_str_eq(f.log.last_host, "reviews.bookinfo.svc.cluster.local");
    ck_assert_int_eq(raw_h2_stream_of(f.client, id)->status, 200);
    teardown(&f);
}
END_TEST

START_TEST(ack_floods_from_a_peer_that_never_reads)
{
    /* _i: 0 PING, 1 SETTINGS. All arrive before the server may send
     * anything: their ACKs would pile up without bound. */
    struct fixture f;
    setup(&f);
    open_good(&f);
    uint8_t frame[17];
    for (int i = 0; i < 500; i++) {
        size_t n;
        if (_i == 0) {
            n = raw_h2_frame_header(frame, 8, 0x6, 0, 0);
            memset(frame + n, i & 0xff, 8);
            n += 8;
        } else {
            n = raw_h2_frame_header(frame, 0, 0x4, 0, 0); /* an empty SETTINGS */
        }
        raw_h2_send_raw(f.client, frame, n);
    }
    ck_assert_int_eq(raw_h2_pump_status(f.client, f.server), HBONE_ERR_PROTOCOL);
    ck_assert_int_eq(f.log.requests, 1);
    teardown(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("conn-requests");
    TCase *tc = tcase_create("requests");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, bad_request_is_answered_without_the_application, 0, (int)N_BAD);
    tcase_add_test(tc, oversized_headers_reset_one_stream);
    tcase_add_test(tc, request_headers_reach_the_application);
    tcase_add_loop_test(tc, header_list_limit_is_configurable, 0, 2);
    tcase_add_loop_test(tc, frame_floods_end_the_connection, 0, 2);
    tcase_add_loop_test(tc, a_few_such_frames_are_tolerated, 0, 2);
    tcase_add_loop_test(tc, the_flood_budget_is_configurable, 0, 2);
    tcase_add_test(tc, streams_reset_for_the_peer_count_too);
    tcase_add_test(tc, identity_comes_from_the_certificate_never_from_headers);
    tcase_add_test(tc, hostnames_when_the_application_enables_them);
    tcase_add_loop_test(tc, ack_floods_from_a_peer_that_never_reads, 0, 2);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
