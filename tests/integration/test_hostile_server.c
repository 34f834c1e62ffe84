/* SPDX-License-Identifier: MIT */
/*
 * The libhbone client facing a hostile or odd HTTP/2 server. The server is
 * scripted here byte by byte over the test-only plaintext connection
 * (conn/conn_testing.h): every frame it sends is built by hand, and the
 * client's output is parsed back into frames, so that each case can assert
 * both what the application saw (events, in order) and what the client put
 * on the wire (HEADERS, RST_STREAM and GOAWAY codes). Each case ends with a
 * canary tunnel that moves checksummed bytes both ways, on the same
 * connection when the case left it standing, else on a new one from the
 * same config; and with every allocation of that config freed.
 */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hbone/hbone.h>

#include "conn/conn_testing.h"
#include "testlib.h"

/* Frame types, flags and error codes, as numbers on the wire (RFC 9113). */
#define DATA 0x0
#define HEADERS 0x1
#define RST_STREAM 0x3
#define SETTINGS 0x4
#define PUSH_PROMISE 0x5
#define GOAWAY 0x7
#define WINDOW_UPDATE 0x8
#define END_STREAM 0x1
#define ACK 0x1
#define END_HEADERS 0x4
#define PADDED 0x8
#define NO_ERROR 0x0
#define PROTOCOL_ERROR 0x1
#define INTERNAL_ERROR 0x2
#define REFUSED_STREAM 0x7
#define ENHANCE_YOUR_CALM 0xb
#define SETTINGS_MAX_CONCURRENT_STREAMS 0x3
#define SETTINGS_ENABLE_PUSH 0x2
#define SETTINGS_INITIAL_WINDOW_SIZE 0x4

#define PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define PREFACE_LEN 24
#define AUTHORITY "10.0.0.7:8080"
/* Several DATA frames each way. */
#define CANARY_BYTES 40000
/* The server's windows: flow control never shapes a case. */
#define SERVER_WINDOW (16u << 20)
#define MAX_SEEN 4096
#define MAX_TUNNELS 64

struct buf {
    uint8_t *b;
    size_t len, cap;
};

/* A frame the client sent. */
struct seen {
    uint8_t type, flags;
    int32_t stream;
    uint32_t len;
    uint32_t code; /* RST_STREAM, GOAWAY */
    int32_t last;  /* GOAWAY */
};

/* Server side: what the client sent on one stream. */
struct sink {
    int32_t id;
    struct buf data;
    int ended;
};

/* Client side: what its application got on one tunnel. */
struct tun {
    int32_t id;
    size_t written;
    uint64_t received;
    uint32_t sum;
};

struct peer {
    tl_counting counts;
    hbone_mem *mem;
    hbone_config *cfg;
    hbone_callbacks *cbs;
    hbone_conn *conn; /* the client under test */
    uint64_t now;
    /* The wire, as the scripted server reads it. */
    struct buf in; /* client output not yet parsed into frames */
    int preface_seen;
    int enable_push; /* the client's SETTINGS_ENABLE_PUSH, -1 if absent */
    struct seen seen[MAX_SEEN];
    size_t n_seen;
    struct sink sinks[MAX_TUNNELS];
    size_t n_sinks;
    /* The application. */
    char log[4096];
    struct tun tuns[MAX_TUNNELS];
    size_t n_tuns;
    int refusal_write; /* hbone_conn_tunnel_write() from a refusal's response event */
    int retry_on_refusal;
    int retry_rc; /* hbone_conn_tunnel_open() from a REFUSED_STREAM close event */
    int retries;
};

/* --- bytes ------------------------------------------------------------------ */

static void put(struct buf *b, const void *data, size_t len)
{
    if (b->len + len > b->cap) {
        b->cap = (b->len + len) * 2 + 64;
        b->b = realloc(b->b, b->cap);
        ck_assert_ptr_nonnull(b->b);
    }
    if (len)
        memcpy(b->b + b->len, data, len);
    b->len += len;
}

static void put_byte(struct buf *b, uint8_t v)
{
    put(b, &v, 1);
}

static void put32(struct buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    put(b, x, 4);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void buf_free(struct buf *b)
{
    free(b->b);
    memset(b, 0, sizeof(*b));
}

/* A frame: 9-byte header, then @p len bytes of payload. */
static void frame(struct buf *out, uint8_t type, uint8_t flags, int32_t stream, const void *payload,
                  size_t len)
{
    ck_assert_uint_lt(len, 1u << 24);
    uint8_t h[9] = {(uint8_t)(len >> 16),
                    (uint8_t)(len >> 8),
                    (uint8_t)len,
                    type,
                    flags,
                    (uint8_t)(stream >> 24),
                    (uint8_t)(stream >> 16),
                    (uint8_t)(stream >> 8),
                    (uint8_t)stream};
    put(out, h, 9);
    put(out, payload, len);
}

/* An HPACK header block from (name, value) pairs ending at NULL, as
 * literals without indexing (no dynamic table on either side to keep in
 * step): ":status" by its static-table name index (8), any other name
 * spelled out. */
static void header_block(struct buf *out, const char *const *fields)
{
    for (size_t i = 0; fields[i]; i += 2) {
        size_t nl = strlen(fields[i]), vl = strlen(fields[i + 1]);
        ck_assert_uint_lt(nl, 127);
        ck_assert_uint_lt(vl, 127);
        if (strcmp(fields[i], ":status") == 0) {
            put_byte(out, 0x08);
        } else {
            put_byte(out, 0x00);
            put_byte(out, (uint8_t)nl);
            put(out, fields[i], nl);
        }
        put_byte(out, (uint8_t)vl);
        put(out, fields[i + 1], vl);
    }
}

static void headers_frame(struct buf *out, int32_t stream, uint8_t flags, const char *const *fields)
{
    struct buf block = {0};
    header_block(&block, fields);
    frame(out, HEADERS, flags | END_HEADERS, stream, block.b, block.len);
    buf_free(&block);
}

/* Byte @p i of what the client writes on tunnel @p id. */
static uint8_t pattern(int32_t id, size_t i)
{
    return (uint8_t)(i * 131 + (size_t)id * 7 + (i >> 9));
}

static uint32_t pattern_sum(int32_t id, size_t len)
{
    uint32_t sum = TL_CHECKSUM_INIT;
    for (size_t i = 0; i < len; i++) {
        uint8_t b = pattern(id, i);
        sum = tl_checksum(sum, &b, 1);
    }
    return sum;
}

/* --- the application -------------------------------------------------------- */

static void logf_(struct peer *p, const char *fmt, ...)
{
    size_t used = strlen(p->log);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(p->log + used, sizeof(p->log) - used, fmt, ap);
    va_end(ap);
    ck_assert_int_lt(n, (int)(sizeof(p->log) - used));
}

/* The events since the last check are exactly @p fmt (one line each);
 * @p line: the caller's, to say which check failed. */
static void expect_log_at(int line, struct peer *p, const char *fmt, ...)
{
    char want[sizeof(p->log)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(want, sizeof(want), fmt, ap);
    va_end(ap);
    ck_assert_msg(strcmp(p->log, want) == 0, "line %d: events \"%s\", expected \"%s\"", line,
                  p->log, want);
    p->log[0] = '\0';
}
#define expect_log(...) expect_log_at(__LINE__, __VA_ARGS__)

static int line_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sort the lines of @p text in place (the pointers go into @p lines). */
static size_t sorted_lines(char *text, char **lines, size_t max)
{
    size_t n = 0;
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        ck_assert_uint_lt(n, max);
        lines[n++] = l;
    }
    qsort(lines, n, sizeof(*lines), line_cmp);
    return n;
}

/* The same, in any order: for tunnels closed together, whose order nobody
 * promises. */
static void expect_log_unordered_at(int line, struct peer *p, const char *fmt, ...)
{
    char want[sizeof(p->log)], got[sizeof(p->log)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(want, sizeof(want), fmt, ap);
    va_end(ap);
    memcpy(got, p->log, sizeof(got));
    char *w[64], *g[64];
    size_t nw = sorted_lines(want, w, 64), ng = sorted_lines(got, g, 64);
    ck_assert_msg(nw == ng, "line %d: events \"%s\", expected %zu of them", line, p->log, nw);
    for (size_t i = 0; i < nw; i++)
        ck_assert_msg(strcmp(w[i], g[i]) == 0,
                      "line %d: events \"%s\": \"%s\" where \"%s\" was expected", line, p->log,
                      g[i], w[i]);
    p->log[0] = '\0';
}
#define expect_log_unordered(...) expect_log_unordered_at(__LINE__, __VA_ARGS__)

static struct tun *tun_of(struct peer *p, int32_t id)
{
    for (size_t i = 0; i < p->n_tuns; i++) {
        if (p->tuns[i].id == id)
            return &p->tuns[i];
    }
    ck_assert_uint_lt(p->n_tuns, MAX_TUNNELS);
    struct tun *t = &p->tuns[p->n_tuns++];
    memset(t, 0, sizeof(*t));
    t->id = id;
    t->sum = TL_CHECKSUM_INIT;
    return t;
}

static void on_response(hbone_conn *conn, int32_t tunnel, int status, void *user)
{
    struct peer *p = user;
    logf_(p, "response %d %d\n", (int)tunnel, status);
    if (status != 200) {
        size_t accepted = 1;
        p->refusal_write =
            hbone_conn_tunnel_write(conn, tunnel, (const uint8_t *)"x", 1, &accepted);
        ck_assert_uint_eq(accepted, 0);
    }
}

static void on_data(hbone_conn *conn, int32_t tunnel, const uint8_t *data, size_t len, void *user)
{
    struct peer *p = user;
    struct tun *t = tun_of(p, tunnel);
    if (t->received == 0)
        logf_(p, "data %d\n", (int)tunnel);
    t->received += len;
    t->sum = tl_checksum(t->sum, data, len);
    ck_assert_int_eq(hbone_conn_tunnel_consume(conn, tunnel, len), 0);
}

static void on_end(hbone_conn *conn, int32_t tunnel, void *user)
{
    (void)conn;
    logf_(user, "end %d\n", (int)tunnel);
}

static void on_close(hbone_conn *conn, int32_t tunnel, uint32_t reason, void *user)
{
    struct peer *p = user;
    logf_(p, "close %d 0x%x\n", (int)tunnel, (unsigned)reason);
    /* An application that retries a refused tunnel at once, on the
     * connection it has: the first place a retry storm would start. */
    if (p->retry_on_refusal && reason == REFUSED_STREAM) {
        int32_t id = -1;
        p->retry_rc = hbone_conn_tunnel_open(conn, AUTHORITY, strlen(AUTHORITY), NULL, NULL, NULL,
                                             NULL, 0, &id);
        ck_assert_int_eq(id, 0);
        p->retries++;
    }
}

/* --- the scripted server: reading the client -------------------------------- */

static struct sink *sink_of(struct peer *p, int32_t id)
{
    for (size_t i = 0; i < p->n_sinks; i++) {
        if (p->sinks[i].id == id)
            return &p->sinks[i];
    }
    ck_assert_uint_lt(p->n_sinks, MAX_TUNNELS);
    struct sink *s = &p->sinks[p->n_sinks++];
    memset(s, 0, sizeof(*s));
    s->id = id;
    return s;
}

/* Split what the client sent into frames, keeping an incomplete one. */
static void parse(struct peer *p)
{
    size_t off = 0;
    if (!p->preface_seen) {
        if (p->in.len < PREFACE_LEN)
            return;
        ck_assert_int_eq(memcmp(p->in.b, PREFACE, PREFACE_LEN), 0);
        p->preface_seen = 1;
        off = PREFACE_LEN;
    }
    while (p->in.len - off >= 9) {
        const uint8_t *h = p->in.b + off, *pl = h + 9;
        uint32_t len = (uint32_t)h[0] << 16 | (uint32_t)h[1] << 8 | h[2];
        if (p->in.len - off - 9 < len)
            break;
        ck_assert_uint_lt(p->n_seen, MAX_SEEN);
        struct seen *s = &p->seen[p->n_seen++];
        memset(s, 0, sizeof(*s));
        s->type = h[3];
        s->flags = h[4];
        s->stream = (int32_t)(get32(h + 5) & 0x7fffffffu);
        s->len = len;
        if (s->type == DATA) {
            const uint8_t *d = pl;
            size_t n = len;
            if (s->flags & PADDED) {
                ck_assert_uint_ge(n, 1u + pl[0]);
                d++;
                n -= 1u + pl[0];
            }
            struct sink *k = sink_of(p, s->stream);
            ck_assert_msg(!k->ended, "DATA after END_STREAM on %d", (int)s->stream);
            put(&k->data, d, n);
            k->ended = (s->flags & END_STREAM) != 0;
        } else if (s->type == RST_STREAM) {
            ck_assert_uint_eq(len, 4);
            s->code = get32(pl);
        } else if (s->type == GOAWAY) {
            ck_assert_uint_ge(len, 8);
            s->last = (int32_t)(get32(pl) & 0x7fffffffu);
            s->code = get32(pl + 4);
        } else if (s->type == SETTINGS && !(s->flags & ACK)) {
            for (size_t i = 0; i + 6 <= len; i += 6) {
                if ((pl[i] << 8 | pl[i + 1]) == SETTINGS_ENABLE_PUSH)
                    p->enable_push = (int)get32(pl + i + 2);
            }
        } else if (s->type == HEADERS) {
            /* A header block this small never needs CONTINUATION. */
            ck_assert_uint_eq(s->flags & END_HEADERS, END_HEADERS);
        }
        off += 9 + len;
    }
    memmove(p->in.b, p->in.b + off, p->in.len - off);
    p->in.len -= off;
}

/* Take everything the client has to send. */
static void flush(struct peer *p)
{
    for (int i = 0; i < 10000; i++) {
        size_t len = 0;
        const uint8_t *out = hbone_conn_output(p->conn, &len, p->now);
        if (!len)
            return;
        put(&p->in, out, len);
        hbone_conn_output_consume(p->conn, len);
        parse(p);
    }
    ck_abort_msg("the client never stopped sending");
}

/* How many frames of @p type on @p stream (-1: any) the client sent from
 * the @p from-th on. */
static size_t count(const struct peer *p, size_t from, uint8_t type, int32_t stream)
{
    size_t n = 0;
    for (size_t i = from; i < p->n_seen; i++)
        n += p->seen[i].type == type && (stream < 0 || p->seen[i].stream == stream);
    return n;
}

/* The one frame of @p type on @p stream the client sent from @p from on. */
static const struct seen *only(const struct peer *p, size_t from, uint8_t type, int32_t stream)
{
    const struct seen *found = NULL;
    for (size_t i = from; i < p->n_seen; i++) {
        if (p->seen[i].type == type && (stream < 0 || p->seen[i].stream == stream)) {
            ck_assert_msg(!found, "frame type %u on stream %d sent twice", type, (int)stream);
            found = &p->seen[i];
        }
    }
    ck_assert_msg(found != NULL, "no frame type %u on stream %d", type, (int)stream);
    return found;
}

/* --- the scripted server: talking to the client ----------------------------- */

/* The client takes all of @p len (plaintext: no record to wait for);
 * returns hbone_conn_input()'s result, then takes the client's answer. */
static int feed_rc(struct peer *p, const struct buf *b)
{
    size_t consumed = 0;
    int r = hbone_conn_input(p->conn, b->b, b->len, &consumed, p->now);
    if (r == 0)
        ck_assert_uint_eq(consumed, b->len);
    flush(p);
    return r;
}

static void feed(struct peer *p, struct buf *b)
{
    ck_assert_int_eq(feed_rc(p, b), 0);
    buf_free(b);
}

static void send_headers(struct peer *p, int32_t stream, uint8_t flags, const char *const *fields)
{
    struct buf b = {0};
    headers_frame(&b, stream, flags, fields);
    feed(p, &b);
}

static void respond(struct peer *p, int32_t stream, const char *status, uint8_t flags)
{
    send_headers(p, stream, flags, (const char *[]){":status", status, NULL});
}

static void send_data(struct peer *p, int32_t stream, const uint8_t *data, size_t len, int end)
{
    struct buf b = {0};
    do {
        size_t n = len > 16384 ? 16384 : len; /* the default SETTINGS_MAX_FRAME_SIZE */
        frame(&b, DATA, n == len && end ? END_STREAM : 0, stream, data, n);
        data += n;
        len -= n;
    } while (len);
    feed(p, &b);
}

static void send_goaway(struct peer *p, int32_t last, uint32_t code, const char *debug)
{
    struct buf payload = {0}, b = {0};
    put32(&payload, (uint32_t)last);
    put32(&payload, code);
    put(&payload, debug, strlen(debug));
    frame(&b, GOAWAY, 0, 0, payload.b, payload.len);
    buf_free(&payload);
    feed(p, &b);
}

/* --- connections, tunnels, canaries ------------------------------------------ */

static void setup(struct peer *p)
{
    memset(p, 0, sizeof(*p));
    p->now = 1000;
    p->mem = tl_counting_mem(&p->counts, -1);
    ck_assert_int_eq(hbone_config_new(&p->cfg, p->mem), 0);
    ck_assert_int_eq(hbone_config_set_keepalive(p->cfg, 0, 0), 0);
    ck_assert_int_eq(hbone_callbacks_new(&p->cbs), 0);
    hbone_callbacks_set_tunnel_response(p->cbs, on_response);
    hbone_callbacks_set_tunnel_data(p->cbs, on_data);
    hbone_callbacks_set_tunnel_end(p->cbs, on_end);
    hbone_callbacks_set_tunnel_close(p->cbs, on_close);
}

static void forget_wire(struct peer *p)
{
    buf_free(&p->in);
    for (size_t i = 0; i < p->n_sinks; i++)
        buf_free(&p->sinks[i].data);
    p->n_sinks = 0;
    p->n_seen = 0;
    p->preface_seen = 0;
    p->enable_push = -1;
    p->n_tuns = 0;
    p->log[0] = '\0';
}

/* A client, and the server's side of the preface: SETTINGS with large
 * windows, a large connection window, and unless @p no_ack the ACK of the
 * client's SETTINGS (which puts them in force). */
static void connect_client_acking(struct peer *p, int ack)
{
    forget_wire(p);
    ck_assert_int_eq(hb_conn_new_plaintext(&p->conn, p->cfg, p->cbs, p, 0, p->now), 0);
    flush(p);
    ck_assert_int_eq(p->preface_seen, 1);
    ck_assert_uint_ge(p->n_seen, 1);
    ck_assert_uint_eq(p->seen[0].type, SETTINGS);
    ck_assert_uint_eq(p->seen[0].flags, 0);
    struct buf b = {0}, iv = {0};
    put_byte(&iv, 0);
    put_byte(&iv, SETTINGS_INITIAL_WINDOW_SIZE);
    put32(&iv, SERVER_WINDOW);
    put_byte(&iv, 0);
    put_byte(&iv, SETTINGS_MAX_CONCURRENT_STREAMS);
    put32(&iv, 100);
    frame(&b, SETTINGS, 0, 0, iv.b, iv.len);
    buf_free(&iv);
    if (ack)
        frame(&b, SETTINGS, ACK, 0, NULL, 0);
    uint8_t wu[4] = {(uint8_t)(SERVER_WINDOW >> 24), (uint8_t)(SERVER_WINDOW >> 16),
                     (uint8_t)(SERVER_WINDOW >> 8), (uint8_t)SERVER_WINDOW};
    frame(&b, WINDOW_UPDATE, 0, 0, wu, 4);
    size_t mark = p->n_seen;
    feed(p, &b);
    ck_assert_uint_eq(only(p, mark, SETTINGS, 0)->flags, ACK); /* of the server's */
    ck_assert_str_eq(p->log, "");
}

static void connect_client(struct peer *p)
{
    connect_client_acking(p, 1);
}

static void disconnect(struct peer *p)
{
    hbone_conn_del(p->conn);
    p->conn = NULL;
}

/* Every allocation made through the config's allocator is freed. */
static void finish(struct peer *p)
{
    disconnect(p);
    hbone_config_del(p->cfg);
    hbone_callbacks_del(p->cbs);
    ck_assert_int_eq(p->counts.allocs, p->counts.frees);
    ck_assert_uint_eq(p->counts.live_bytes, 0);
    hbone_mem_del(p->mem);
    forget_wire(p);
}

/* Open a tunnel; its CONNECT is on the wire (HEADERS, not ending the
 * stream: a tunnel's request has no end). */
static int32_t open_tunnel(struct peer *p)
{
    int32_t id = 0;
    ck_assert_int_eq(hbone_conn_tunnel_open(p->conn, AUTHORITY, strlen(AUTHORITY), NULL, NULL, NULL,
                                            NULL, 0, &id),
                     0);
    ck_assert_int_gt(id, 0);
    ck_assert_int_eq(id % 2, 1);
    tun_of(p, id);
    size_t mark = p->n_seen;
    flush(p);
    ck_assert_uint_eq(only(p, mark, HEADERS, id)->flags, END_HEADERS);
    return id;
}

static void write_pattern(struct peer *p, int32_t id, size_t len)
{
    struct tun *t = tun_of(p, id);
    uint8_t *data = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(data);
    for (size_t i = 0; i < len; i++)
        data[i] = pattern(id, t->written + i);
    size_t accepted = 0;
    ck_assert_int_eq(hbone_conn_tunnel_write(p->conn, id, data, len, &accepted), 0);
    ck_assert_uint_eq(accepted, len);
    t->written += len;
    free(data);
}

/* The client's bytes on @p id reached the server whole, in order, ended. */
static void expect_received_by_server(struct peer *p, int32_t id, size_t len)
{
    struct sink *k = sink_of(p, id);
    ck_assert_uint_eq(k->data.len, len);
    ck_assert_uint_eq(tl_checksum(TL_CHECKSUM_INIT, k->data.b, k->data.len), pattern_sum(id, len));
}

/* The server sends back what it received on @p id. */
static void echo(struct peer *p, int32_t id, int end)
{
    struct sink *k = sink_of(p, id);
    struct buf copy = {0}; /* feeding may add to the sinks */
    put(&copy, k->data.b, k->data.len);
    send_data(p, id, copy.b, copy.len, end);
    buf_free(&copy);
}

/* On an established tunnel: the client writes the rest of CANARY_BYTES and
 * ends its side; the server echoes them and ends its side. */
static void move_both_ways(struct peer *p, int32_t id)
{
    struct tun *t = tun_of(p, id);
    write_pattern(p, id, CANARY_BYTES - t->written);
    ck_assert_int_eq(hbone_conn_tunnel_shutdown(p->conn, id), 0);
    size_t mark = p->n_seen;
    flush(p);
    ck_assert_uint_eq(count(p, mark, RST_STREAM, -1), 0);
    expect_received_by_server(p, id, CANARY_BYTES);
    ck_assert_int_eq(sink_of(p, id)->ended, 1);
    echo(p, id, 1);
    t = tun_of(p, id);
    ck_assert_uint_eq(t->received, CANARY_BYTES);
    ck_assert_uint_eq(t->sum, pattern_sum(id, CANARY_BYTES));
}

/* A fresh tunnel answered 200 carries checksummed bytes both ways and
 * closes cleanly. */
static void canary(struct peer *p)
{
    ck_assert_int_eq(hbone_conn_is_closed(p->conn), 0);
    expect_log(p, "");
    int32_t id = open_tunnel(p);
    respond(p, id, "200", 0);
    move_both_ways(p, id);
    expect_log(p, "response %d 200\ndata %d\nend %d\nclose %d 0x0\n", id, id, id, id);
    ck_assert_int_eq(hbone_conn_is_closed(p->conn), 0);
}

/* After a connection the case ended: the same config serves a canary on a
 * new connection, then everything is given back. */
static void canary_on_a_new_connection_and_finish(struct peer *p)
{
    disconnect(p);
    connect_client(p);
    canary(p);
    finish(p);
    free(p);
}

/* The connection failed over the server's frames: the client sent
 * GOAWAY(@p code) (naming no stream of the server's: it accepted none),
 * says it is closed, keeps the error, and names @p cause. */
static void expect_failed(struct peer *p, size_t mark, uint32_t code, const char *cause)
{
    const struct seen *g = only(p, mark, GOAWAY, 0);
    ck_assert_msg(g->code == code, "GOAWAY code 0x%x, expected 0x%x", g->code, code);
    ck_assert_int_eq(g->last, 0);
    ck_assert_int_eq(hbone_conn_is_closed(p->conn), 1);
    struct buf nothing = {0};
    put_byte(&nothing, 0);
    ck_assert_int_eq(feed_rc(p, &nothing), HBONE_ERR_PROTOCOL);
    buf_free(&nothing);
    const char *detail = hbone_conn_error_detail(p->conn);
    ck_assert_msg(strstr(detail, cause) != NULL, "detail \"%s\" does not name \"%s\"", detail,
                  cause);
    /* Nothing more leaves a failed connection. */
    size_t len = 1;
    (void)hbone_conn_output(p->conn, &len, p->now);
    ck_assert_uint_eq(len, 0);
}

/* --- 1. refusals ------------------------------------------------------------- */

/* A refusal is surfaced as its status, then a clean close: the tunnel
 * carries nothing either way (the body of a refusal is not tunnel data,
 * and what the application wrote before it never leaves), and the client
 * ends its side with an empty DATA, not a reset. The connection serves the
 * next tunnel. */
START_TEST(refusals_are_surfaced_and_carry_no_data)
{
    static const char *const statuses[] = {"400", "401", "403", "503"};
    struct peer *p = calloc(1, sizeof(*p));
    ck_assert_ptr_nonnull(p);
    setup(p);
    connect_client(p);
    for (size_t i = 0; i < 4; i++) {
        int32_t id = open_tunnel(p);
        write_pattern(p, id, 1000); /* held until a 200 that never comes */
        flush(p);
        ck_assert_uint_eq(count(p, 0, DATA, id), 0);
        p->refusal_write = 1;
        size_t mark = p->n_seen;
        if (i % 2 == 0) {
            respond(p, id, statuses[i], END_STREAM);
        } else {
            static const uint8_t body[] = "access denied by policy";
            respond(p, id, statuses[i], 0);
            send_data(p, id, body, sizeof(body) - 1, 0);
            send_data(p, id, NULL, 0, 1);
        }
        expect_log(p, "response %d %s\nclose %d 0x0\n", id, statuses[i], id);
        ck_assert_int_eq(p->refusal_write, HBONE_ERR_INVALID_STATE);
        ck_assert_uint_eq(tun_of(p, id)->received, 0);
        /* Our side ended cleanly, with none of the held bytes. */
        const struct seen *fin = only(p, mark, DATA, id);
        ck_assert_uint_eq(fin->flags, END_STREAM);
        ck_assert_uint_eq(fin->len, 0);
        ck_assert_uint_eq(count(p, mark, RST_STREAM, -1), 0);
        size_t accepted;
        ck_assert_int_eq(hbone_conn_tunnel_write(p->conn, id, (const uint8_t *)"x", 1, &accepted),
                         HBONE_ERR_NOT_FOUND);
        canary(p);
    }
    finish(p);
    free(p);
}
END_TEST

/* Held data stays held when the application ends its side while waiting
 * for the answer: a refusing server never sees any of it. */
START_TEST(data_held_then_shut_before_a_refusal_never_leaves)
{
    struct peer *p = calloc(1, sizeof(*p));
    ck_assert_ptr_nonnull(p);
    setup(p);
    connect_client(p);
    int32_t id = open_tunnel(p);
    write_pattern(p, id, 1000);
    ck_assert_int_eq(hbone_conn_tunnel_shutdown(p->conn, id), 0);
    flush(p);
    ck_assert_uint_eq(count(p, 0, DATA, id), 0);
    respond(p, id, "401", END_STREAM);
    expect_log(p, "response %d 401\nclose %d 0x0\n", id, id);
    const struct seen *fin = only(p, 0, DATA, id);
    ck_assert_uint_eq(fin->flags, END_STREAM);
    ck_assert_uint_eq(fin->len, 0);
    canary(p);
    finish(p);
    free(p);
}
END_TEST

/* The same, but the application writes and ends its side before its
 * CONNECT has left (open, write, shutdown, then the first
 * hbone_conn_output()): the bytes and the FIN are still held until the
 * answer, so the refusal finds nothing delivered. This used to fail: the
 * FIN released the held bytes right behind the HEADERS. */
START_TEST(data_written_and_shut_before_the_connect_left_is_held)
{
    struct peer *p = calloc(1, sizeof(*p));
    ck_assert_ptr_nonnull(p);
    setup(p);
    connect_client(p);
    int32_t id = 0;
    ck_assert_int_eq(hbone_conn_tunnel_open(p->conn, AUTHORITY, strlen(AUTHORITY), NULL, NULL, NULL,
                                            NULL, 0, &id),
                     0);
    tun_of(p, id);
    write_pattern(p, id, 1000);
    ck_assert_int_eq(hbone_conn_tunnel_shutdown(p->conn, id), 0);
    flush(p);
    ck_assert_uint_eq(count(p, 0, HEADERS, id), 1);
    ck_assert_uint_eq(sink_of(p, id)->data.len, 0);
    ck_assert_int_eq(sink_of(p, id)->ended, 0);
    respond(p, id, "401", END_STREAM);
    expect_log(p, "response %d 401\nclose %d 0x0\n", id, id);
    ck_assert_uint_eq(sink_of(p, id)->data.len, 0);
    canary(p);
    finish(p);
    free(p);
}
END_TEST

/* --- 2. informational responses -------------------------------------------- */

/* 1xx responses are not the answer: the application hears nothing and the
 * held data stays held until the 200, which is surfaced exactly once. */
START_TEST(informational_responses_before_the_200_are_not_surfaced)
{
    struct peer *p = calloc(1, sizeof(*p));
    ck_assert_ptr_nonnull(p);
    setup(p);
    connect_client(p);
    int32_t id = open_tunnel(p);
    write_pattern(p, id, 1000);
    struct buf b = {0};
    headers_frame(&b, id, 0, (const char *[]){":status", "100", NULL});
    headers_frame(&b, id, 0,
                  (const char *[]){":status", "103", "link", "</s.css>; rel=preload", NULL});
    headers_frame(&b, id, 0, (const char *[]){":status", "100", NULL});
    feed(p, &b);
    respond(p, id, "103", 0); /* and one more, on its own */
    expect_log(p, "");
    ck_assert_uint_eq(count(p, 0, DATA, id), 0);
    ck_assert_uint_eq(count(p, 0, RST_STREAM, -1), 0);
    respond(p, id, "200", 0);
    expect_log(p, "response %d 200\n", id);
    expect_received_by_server(p, id, 1000); /* released by the 200 */
    move_both_ways(p, id);
    expect_log(p, "data %d\nend %d\nclose %d 0x0\n", id, id, id);
    canary(p);
    finish(p);
    free(p);
}
END_TEST

/* --- 3. a 200 that ends the stream ------------------------------------------ */

/* Established and ended at once: the client may still send its side, and
 * the tunnel closes cleanly once it has. */
START_TEST(a_200_with_end_stream_is_established_and_ended)
{
    struct peer *p = calloc(1, sizeof(*p));
    ck_assert_ptr_nonnull(p);
    setup(p);
    connect_client(p);
    int32_t id = open_tunnel(p);
    respond(p, id, "200", END_STREAM);
    expect_log(p, "response %d 200\nend %d\n", id, id);
    write_pattern(p, id, CANARY_BYTES);
    ck_assert_int_eq(hbone_conn_tunnel_shutdown(p->conn, id), 0);
    size_t mark = p->n_seen;
    flush(p);
    expect_received_by_server(p, id, CANARY_BYTES);
    ck_assert_int_eq(sink_of(p, id)->ended, 1);
    ck_assert_uint_eq(count(p, mark, RST_STREAM, -1), 0);
    expect_log(p, "close %d 0x0\n", id);
    canary(p);
    finish(p);
    free(p);
}
END_TEST

/* --- 4. trailers and a second header block ---------------------------------- */

/* Trailers end the tunnel; the data before them arrives intact. */
START_TEST(trailers_end_the_tunnel_with_its_data_intact)
{
    struct peer *p = calloc(1, sizeof(*p));
    ck_assert_ptr_nonnull(p);
    setup(p);
    connect_client(p);
    int32_t id = open_tunnel(p);
    respond(p, id, "200", 0);
    write_pattern(p, id, CANARY_BYTES);
    flush(p);
    expect_received_by_server(p, id, CANARY_BYTES);
    echo(p, id, 0);
    send_headers(p, id, END_STREAM, (const char *[]){"x-trailer", "done", NULL});
    expect_log(p, "response %d 200\ndata %d\nend %d\n", id, id, id);
    struct tun *t = tun_of(p, id);
    ck_assert_uint_eq(t->received, CANARY_BYTES);
    ck_assert_uint_eq(t->sum, pattern_sum(id, CANARY_BYTES));
    ck_assert_int_eq(hbone_conn_tunnel_shutdown(p->conn, id), 0);
    flush(p);
    ck_assert_int_eq(sink_of(p, id)->ended, 1);
    expect_log(p, "close %d 0x0\n", id);
    ck_assert_uint_eq(count(p, 0, RST_STREAM, -1), 0);
    canary(p);
    finish(p);
    free(p);
}
END_TEST

/* A header block after the 200 that does not end the stream is no
 * trailer (RFC 9113 section 8.1): the stream is malformed, reset with
 * PROTOCOL_ERROR, and the application is told so; the data before it was
 * delivered, the connection goes on. */
START_TEST(a_second_header_block_without_end_stream_resets_the_tunnel)
{
    struct peer *p = calloc(1, sizeof(*p));
    ck_assert_ptr_nonnull(p);
    setup(p);
    connect_client(p);
    int32_t id = open_tunnel(p);
    respond(p, id, "200", 0);
    static const uint8_t some[] = "some bytes";
    send_data(p, id, some, sizeof(some) - 1, 0);
    size_t mark = p->n_seen;
    send_headers(p, id, 0, (const char *[]){"x-more", "1", NULL});
    ck_assert_uint_eq(only(p, mark, RST_STREAM, id)->code, PROTOCOL_ERROR);
    expect_log(p, "response %d 200\ndata %d\nclose %d 0x1\n", id, id, id);
    ck_assert_uint_eq(tun_of(p, id)->received, sizeof(some) - 1);
    ck_assert_uint_eq(count(p, mark, GOAWAY, -1), 0);
    canary(p);
    finish(p);
    free(p);
}
END_TEST

/* --- 5. PUSH_PROMISE ------------------------------------------------------- */

/* A PUSH_PROMISE on @p stream for @p promised, as a server would push a
 * GET. */
static void push_promise(struct buf *out, int32_t stream, int32_t promised)
{
    struct buf payload = {0};
    put32(&payload, (uint32_t)promised);
    header_block(&payload, (const char *[]){":method", "GET", ":scheme", "https", ":path", "/",
                                            ":authority", AUTHORITY, NULL});
    frame(out, PUSH_PROMISE, END_HEADERS, stream, payload.b, payload.len);
    buf_free(&payload);
}

/* The client refused push (SETTINGS_ENABLE_PUSH 0) and the server
 * acknowledged it: a PUSH_PROMISE is a connection error of type
 * PROTOCOL_ERROR (RFC 9113 section 6.5.2). The client sends GOAWAY, fails
 * with HBONE_ERR_PROTOCOL and a detail naming it, and every tunnel, answered
 * or not, is closed as lost with the connection (the server may have acted
 * on either: neither may be retried as if refused). */
START_TEST(push_promise_fails_the_connection)
{
    struct peer *p = calloc(1, sizeof(*p));
    ck_assert_ptr_nonnull(p);
    setup(p);
    connect_client(p);
    ck_assert_int_eq(p->enable_push, 0);
    int32_t a = open_tunnel(p), b = open_tunnel(p);
    respond(p, a, "200", 0);
    expect_log(p, "response %d 200\n", a);
    struct buf f = {0};
    push_promise(&f, a, 2);
    size_t mark = p->n_seen;
    int r = feed_rc(p, &f);
    buf_free(&f);
    /* nghttp2 takes the frame and queues its GOAWAY: the connection fails
     * as that GOAWAY leaves, which feed_rc()'s flush saw to. */
    ck_assert_int_eq(r, 0);
    expect_log_unordered(p, "close %d 0x100\nclose %d 0x100\n", a, b);
    expect_failed(p, mark, PROTOCOL_ERROR, "PUSH_PROMISE");
    ck_assert_uint_eq(count(p, mark, HEADERS, -1), 0);
    int32_t id = -1;
    ck_assert_int_eq(hbone_conn_tunnel_open(p->conn, AUTHORITY, strlen(AUTHORITY), NULL, NULL, NULL,
                                            NULL, 0, &id),
                     HBONE_ERR_INVALID_STATE);
    ck_assert_int_eq(id, 0);
    canary_on_a_new_connection_and_finish(p);
}
END_TEST

/* Before the server has acknowledged SETTINGS_ENABLE_PUSH 0, a push is
 * no protocol error yet (RFC 9113 section 6.5.3: settings apply once
 * acknowledged): each promise is cancelled (RST_STREAM(CANCEL) on the
 * promised stream), nothing reaches the application, nothing is kept per
 * promise, and the promised stream's response is ignored. Once the ACK is
 * in, the next promise fails the connection. */
START_TEST(a_push_promise_before_the_settings_ack_is_cancelled)
{
    enum { PROMISES = 500 };
    struct peer *p = calloc(1, sizeof(*p));
    ck_assert_ptr_nonnull(p);
    setup(p);
    connect_client_acking(p, 0);
    int32_t a = open_tunnel(p);
    respond(p, a, "200", 0);
    expect_log(p, "response %d 200\n", a);
    size_t mark = p->n_seen, live = 0;
    for (int32_t i = 0; i < PROMISES; i++) {
        struct buf f = {0};
        push_promise(&f, a, 2 + 2 * i);
        feed(p, &f);
        if (i == 10)
            live = p->counts.live_bytes;
    }
    ck_assert_uint_le(p->counts.live_bytes, live);
    ck_assert_uint_eq(p->n_seen - mark, PROMISES); /* a reset each, nothing else */
    for (int32_t i = 0; i < PROMISES; i++) {
        const struct seen *s = &p->seen[mark + (size_t)i];
        ck_assert_uint_eq(s->type, RST_STREAM);
        ck_assert_int_eq(s->stream, 2 + 2 * i);
        ck_assert_uint_eq(s->code, 0x8); /* CANCEL */
    }
    struct buf b = {0};
    headers_frame(&b, 2, 0, (const char *[]){":status", "200", NULL});
    frame(&b, DATA, 0, 2, "pushed", 6);
    mark = p->n_seen;
    feed(p, &b);
    expect_log(p, "");
    ck_assert_uint_eq(count(p, mark, RST_STREAM, -1), 0);
    ck_assert_uint_eq(count(p, mark, GOAWAY, -1), 0);
    move_both_ways(p, a);
    expect_log(p, "data %d\nend %d\nclose %d 0x0\n", a, a, a);
    canary(p);
    /* The ACK puts ENABLE_PUSH 0 in force. */
    frame(&b, SETTINGS, ACK, 0, NULL, 0);
    feed(p, &b);
    int32_t c = open_tunnel(p);
    push_promise(&b, c, 2 * PROMISES + 2);
    mark = p->n_seen;
    ck_assert_int_eq(feed_rc(p, &b), 0);
    buf_free(&b);
    expect_log(p, "close %d 0x100\n", c);
    expect_failed(p, mark, PROTOCOL_ERROR, "PUSH_PROMISE: push disabled");
    canary_on_a_new_connection_and_finish(p);
}
END_TEST

/* Each cancelled promise is a frame that did no work: a server that keeps
 * promising before it acknowledges our SETTINGS overdraws the flood budget
 * and the connection ends with ENHANCE_YOUR_CALM, as for any other flood.
 * The budget is lowered so that the flood is short. */
START_TEST(push_promises_before_the_settings_ack_count_against_the_flood_budget)
{
    enum { BURST = 20 };
    struct peer *p = calloc(1, sizeof(*p));
    ck_assert_ptr_nonnull(p);
    setup(p);
    ck_assert_int_eq(hbone_config_set_flood_limit(p->cfg, BURST, 1), 0);
    connect_client_acking(p, 0);
    int32_t a = open_tunnel(p);
    respond(p, a, "200", 0);
    expect_log(p, "response %d 200\n", a);
    size_t mark = p->n_seen;
    int promises = 0, rc = 0;
    while (rc == 0 && promises < 10 * BURST) {
        struct buf f = {0};
        push_promise(&f, a, 2 + 2 * promises++);
        rc = feed_rc(p, &f);
        buf_free(&f);
    }
    ck_assert_int_eq(rc, HBONE_ERR_PROTOCOL);
    ck_assert_int_eq(promises, BURST + 1);
    expect_log(p, "close %d 0x100\n", a);
    ck_assert_uint_eq(count(p, mark, RST_STREAM, -1), BURST);
    expect_failed(p, mark, ENHANCE_YOUR_CALM, "frames that do no work");
    canary_on_a_new_connection_and_finish(p);
}
END_TEST

/* --- 6. GOAWAY with an error code -------------------------------------------- */

/* GOAWAY(ENHANCE_YOUR_CALM) naming the first of two tunnels: the second is
 * closed as REFUSED_STREAM (the server never saw it: retry elsewhere), and
 * a retry on this connection, even from inside that close event, is turned
 * down at once. The client sends nothing new: no HEADERS, no reset. The
 * first tunnel finishes its exchange, and then the connection is over. */
START_TEST(goaway_with_an_error_refuses_tunnels_above_its_last_stream)
{
    struct peer *p = calloc(1, sizeof(*p));
    ck_assert_ptr_nonnull(p);
    setup(p);
    connect_client(p);
    int32_t a = open_tunnel(p), b = open_tunnel(p);
    ck_assert_int_lt(a, b);
    respond(p, a, "200", 0);
    expect_log(p, "response %d 200\n", a);
    p->retry_on_refusal = 1;
    p->retry_rc = 1;
    size_t mark = p->n_seen;
    ck_assert_uint_eq(hbone_conn_peer_goaway_error(p->conn), 0);
    send_goaway(p, a, ENHANCE_YOUR_CALM, "slow down\n");
    ck_assert_uint_eq(hbone_conn_peer_goaway_error(p->conn), ENHANCE_YOUR_CALM);
    expect_log(p, "close %d 0x7\n", b);
    /* The application learns why, to back off (the peer's text sanitised). */
    ck_assert_str_eq(hbone_conn_error_detail(p->conn),
                     "the peer sent GOAWAY(ENHANCE_YOUR_CALM): slow down?");
    ck_assert_int_eq(p->retries, 1);
    ck_assert_int_eq(p->retry_rc, HBONE_ERR_INVALID_STATE);
    int32_t id = -1;
    for (int i = 0; i < 100; i++) {
        ck_assert_int_eq(hbone_conn_tunnel_open(p->conn, AUTHORITY, strlen(AUTHORITY), NULL, NULL,
                                                NULL, NULL, 0, &id),
                         HBONE_ERR_INVALID_STATE);
        ck_assert_int_eq(id, 0);
    }
    flush(p);
    ck_assert_int_eq(hbone_conn_is_closed(p->conn), 0); /* a is still open */
    move_both_ways(p, a);
    expect_log(p, "data %d\nend %d\nclose %d 0x0\n", a, a, a);
    ck_assert_int_eq(hbone_conn_is_closed(p->conn), 1);
    /* From the GOAWAY on: a's data and window credit, nothing else. */
    for (size_t i = mark; i < p->n_seen; i++) {
        const struct seen *s = &p->seen[i];
        ck_assert_msg((s->type == DATA && s->stream == a) || s->type == WINDOW_UPDATE,
                      "frame type %u on stream %d after GOAWAY", s->type, (int)s->stream);
        ck_assert_msg(s->type != WINDOW_UPDATE || s->stream == 0 || s->stream == a,
                      "WINDOW_UPDATE on stream %d", (int)s->stream);
    }
    ck_assert_uint_ge(count(p, mark, DATA, a), 1);
    ck_assert_int_eq(p->retries, 1);
    canary_on_a_new_connection_and_finish(p);
}
END_TEST

/* GOAWAY(INTERNAL_ERROR) with last-stream-id 0: no tunnel was processed,
 * all are refused, and the connection is over at once. */
START_TEST(goaway_with_an_error_and_no_stream_refuses_every_tunnel)
{
    struct peer *p = calloc(1, sizeof(*p));
    ck_assert_ptr_nonnull(p);
    setup(p);
    connect_client(p);
    int32_t a = open_tunnel(p), b = open_tunnel(p);
    write_pattern(p, a, 1000);
    size_t mark = p->n_seen;
    send_goaway(p, 0, INTERNAL_ERROR, "");
    expect_log_unordered(p, "close %d 0x7\nclose %d 0x7\n", a, b);
    ck_assert_int_eq(hbone_conn_is_closed(p->conn), 1);
    ck_assert_uint_eq(p->n_seen, mark); /* not a byte in answer */
    int32_t id = -1;
    ck_assert_int_eq(hbone_conn_tunnel_open(p->conn, AUTHORITY, strlen(AUTHORITY), NULL, NULL, NULL,
                                            NULL, 0, &id),
                     HBONE_ERR_INVALID_STATE);
    ck_assert_int_eq(id, 0);
    flush(p);
    ck_assert_uint_eq(p->n_seen, mark);
    canary_on_a_new_connection_and_finish(p);
}
END_TEST

/* A second GOAWAY may only lower the last stream id (RFC 9113 section
 * 6.8): raising it, to take back a refusal, is a connection error. */
START_TEST(a_goaway_raising_its_last_stream_id_fails_the_connection)
{
    struct peer *p = calloc(1, sizeof(*p));
    ck_assert_ptr_nonnull(p);
    setup(p);
    connect_client(p);
    int32_t a = open_tunnel(p), b = open_tunnel(p);
    respond(p, a, "200", 0);
    send_goaway(p, a, NO_ERROR, "");
    ck_assert_uint_eq(hbone_conn_peer_goaway_error(p->conn), 0); /* a clean end */
    expect_log(p, "response %d 200\nclose %d 0x7\n", a, b);
    size_t mark = p->n_seen;
    struct buf payload = {0}, f = {0};
    put32(&payload, (uint32_t)b);
    put32(&payload, NO_ERROR);
    frame(&f, GOAWAY, 0, 0, payload.b, payload.len);
    buf_free(&payload);
    ck_assert_int_eq(feed_rc(p, &f), 0);
    buf_free(&f);
    expect_log(p, "close %d 0x100\n", a);
    expect_failed(p, mark, PROTOCOL_ERROR, "GOAWAY: invalid last_stream_id");
    canary_on_a_new_connection_and_finish(p);
}
END_TEST

/* A server answers 200, takes bytes on the tunnel, then sends GOAWAY with
 * last-stream-id 0, disowning it. nghttp2 closes the stream with
 * REFUSED_STREAM, which means "retry elsewhere": replaying it would repeat
 * bytes the server already has. A tunnel that was answered has been
 * processed (RFC 9113 section 8.7), so it closes as lost. */
START_TEST(a_goaway_that_disowns_an_answered_tunnel_does_not_make_it_retryable)
{
    struct peer *p = calloc(1, sizeof(*p));
    ck_assert_ptr_nonnull(p);
    setup(p);
    connect_client(p);
    int32_t a = open_tunnel(p), b = open_tunnel(p);
    respond(p, a, "200", 0);
    write_pattern(p, a, 1000);
    flush(p);
    expect_received_by_server(p, a, 1000);
    expect_log(p, "response %d 200\n", a);
    send_goaway(p, 0, INTERNAL_ERROR, "");
    expect_log_unordered(p, "close %d 0x100\nclose %d 0x7\n", a, b);
    canary_on_a_new_connection_and_finish(p);
}
END_TEST

/* --- 7. statuses that are not statuses ------------------------------------- */

/* A :status that is no HTTP status (RFC 9110 section 15: 100-599; 101 has
 * no place in HTTP/2), two of them, or one in trailers: the tunnel is
 * reset and never surfaced as answered; the connection goes on. */
START_TEST(a_bad_status_resets_the_tunnel_unsurfaced)
{
    static const struct {
        const char *fields[7];
        uint32_t code;
    } cases[] = {
        /* Caught by the library's own range check: the peer's fault, so
         * PROTOCOL_ERROR (not nghttp2's INTERNAL_ERROR for a failed
         * callback). */
        {{":status", "600", NULL}, PROTOCOL_ERROR},
        {{":status", "099", NULL}, PROTOCOL_ERROR},
        {{":status", "000", NULL}, PROTOCOL_ERROR},
        {{":status", "999", NULL}, PROTOCOL_ERROR},
        /* Caught by nghttp2's HTTP messaging rules. */
        {{":status", "101", NULL}, PROTOCOL_ERROR},
        {{":status", "2000", NULL}, PROTOCOL_ERROR},
        {{":status", "20x", NULL}, PROTOCOL_ERROR},
        {{":status", "", NULL}, PROTOCOL_ERROR},
        {{":status", "200", ":status", "200", NULL}, PROTOCOL_ERROR},
        {{":status", "401", ":status", "200", NULL}, PROTOCOL_ERROR},
        {{"x-no-status", "1", NULL}, PROTOCOL_ERROR},
    };
    struct peer *p = calloc(1, sizeof(*p));
    ck_assert_ptr_nonnull(p);
    setup(p);
    connect_client(p);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int32_t id = open_tunnel(p);
        write_pattern(p, id, 100);
        size_t mark = p->n_seen;
        send_headers(p, id, 0, cases[i].fields);
        const struct seen *rst = only(p, mark, RST_STREAM, id);
        ck_assert_msg(rst->code == cases[i].code, "case %zu: RST_STREAM 0x%x, expected 0x%x", i,
                      rst->code, cases[i].code);
        expect_log(p, "close %d 0x%x\n", id, (unsigned)cases[i].code);
        ck_assert_uint_eq(count(p, mark, DATA, id), 0);
        ck_assert_uint_eq(count(p, mark, GOAWAY, -1), 0);
    }
    /* A 200, then trailers carrying a :status: the tunnel was answered, but
     * the malformed trailers reset it rather than end it. */
    int32_t id = open_tunnel(p);
    respond(p, id, "200", 0);
    size_t mark = p->n_seen;
    send_headers(p, id, END_STREAM, (const char *[]){":status", "200", NULL});
    ck_assert_uint_eq(only(p, mark, RST_STREAM, id)->code, PROTOCOL_ERROR);
    expect_log(p, "response %d 200\nclose %d 0x1\n", id, id);
    canary(p);
    finish(p);
    free(p);
}
END_TEST

/* --- 8. streams the client never opened ------------------------------------- */

/* A response on a stream the client never opened (an even id, or an odd one
 * above its last) is a request to a client: a connection error of type
 * PROTOCOL_ERROR. Every tunnel is lost with the connection. */
START_TEST(headers_on_a_stream_never_opened_fail_the_connection)
{
    static const int32_t ids[] = {2, 99};
    struct peer *p = calloc(1, sizeof(*p));
    ck_assert_ptr_nonnull(p);
    setup(p);
    for (size_t i = 0; i < 2; i++) {
        connect_client(p);
        int32_t a = open_tunnel(p);
        respond(p, a, "200", 0);
        expect_log(p, "response %d 200\n", a);
        size_t mark = p->n_seen;
        struct buf b = {0};
        headers_frame(&b, ids[i], 0, (const char *[]){":status", "200", NULL});
        ck_assert_int_eq(feed_rc(p, &b), 0);
        buf_free(&b);
        expect_log(p, "close %d 0x100\n", a);
        expect_failed(p, mark, PROTOCOL_ERROR, "client received request");
        disconnect(p);
    }
    connect_client(p);
    canary(p);
    finish(p);
    free(p);
}
END_TEST

/* A response on a stream that has come and gone may have crossed our own
 * end of it: ignored, the connection goes on. */
START_TEST(headers_on_a_closed_stream_are_ignored)
{
    struct peer *p = calloc(1, sizeof(*p));
    ck_assert_ptr_nonnull(p);
    setup(p);
    connect_client(p);
    canary(p);
    int32_t done = p->tuns[0].id;
    size_t mark = p->n_seen;
    respond(p, done, "200", 0);
    expect_log(p, "");
    ck_assert_uint_eq(p->n_seen, mark);
    /* Late DATA too, more than the client's whole connection window: it
     * is dropped, yet credited back, or the connection would stall. */
    static uint8_t late[16384];
    for (int i = 0; i < 1100; i++)
        send_data(p, done, late, sizeof(late), 0);
    expect_log(p, "");
    ck_assert_uint_eq(count(p, mark, RST_STREAM, -1), 0);
    ck_assert_uint_eq(count(p, mark, GOAWAY, -1), 0);
    ck_assert_uint_ge(count(p, mark, WINDOW_UPDATE, 0), 1);
    canary(p);
    finish(p);
    free(p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("hostile-server");
    TCase *tc = tcase_create("hostile-server");
    tcase_add_test(tc, refusals_are_surfaced_and_carry_no_data);
    tcase_add_test(tc, data_held_then_shut_before_a_refusal_never_leaves);
    tcase_add_test(tc, informational_responses_before_the_200_are_not_surfaced);
    tcase_add_test(tc, a_200_with_end_stream_is_established_and_ended);
    tcase_add_test(tc, trailers_end_the_tunnel_with_its_data_intact);
    tcase_add_test(tc, a_second_header_block_without_end_stream_resets_the_tunnel);
    tcase_add_test(tc, push_promise_fails_the_connection);
    tcase_add_test(tc, a_push_promise_before_the_settings_ack_is_cancelled);
    tcase_add_test(tc, push_promises_before_the_settings_ack_count_against_the_flood_budget);
    tcase_add_test(tc, goaway_with_an_error_refuses_tunnels_above_its_last_stream);
    tcase_add_test(tc, goaway_with_an_error_and_no_stream_refuses_every_tunnel);
    tcase_add_test(tc, a_goaway_raising_its_last_stream_id_fails_the_connection);
    tcase_add_test(tc, a_bad_status_resets_the_tunnel_unsurfaced);
    tcase_add_test(tc, headers_on_a_stream_never_opened_fail_the_connection);
    tcase_add_test(tc, headers_on_a_closed_stream_are_ignored);
    tcase_add_test(tc, data_written_and_shut_before_the_connect_left_is_held);
    tcase_add_test(tc, a_goaway_that_disowns_an_answered_tunnel_does_not_make_it_retryable);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
