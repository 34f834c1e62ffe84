/* SPDX-License-Identifier: MIT */
#include "raw_h2.h"

#include <check.h>
#include <nghttp2/nghttp2.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "tls/tls.h"

struct raw_h2 {
    hb_tls *tls;
    nghttp2_session *session;
    int handshake_done;
    raw_h2_stream streams[RAW_H2_MAX_STREAMS];
    size_t n_streams;
    uint8_t *to_server, *to_client;
    size_t to_server_len, to_client_len;
    int goaway;
    uint32_t goaway_code;
    /* Raw mode: nghttp2 neither sends nor reads; the test writes every byte
     * and the server's frames are parsed here, to play a client that is
     * not HTTP/2 at all or breaks it from the first byte. */
    int raw;
    uint8_t *raw_in; /* server plaintext not yet parsed into frames */
    size_t raw_in_len;
    /* The record tap: plaintext of each record, and where each one ends. */
    int tap;
    uint8_t *plain_log;
    size_t plain_len;
    size_t *record_ends;
    size_t n_records;
};

#define TLS_RECORD_HEADER 5
#define RECORD_PLAINTEXT_MAX 16384

static raw_h2_stream *stream_of(raw_h2 *c, int32_t id)
{
    for (size_t i = 0; i < c->n_streams; i++) {
        if (c->streams[i].id == id)
            return &c->streams[i];
    }
    ck_assert_uint_lt(c->n_streams, RAW_H2_MAX_STREAMS);
    raw_h2_stream *s = &c->streams[c->n_streams++];
    memset(s, 0, sizeof(*s));
    s->id = id;
    return s;
}

const raw_h2_stream *raw_h2_stream_of(const raw_h2 *c, int32_t id)
{
    return stream_of((raw_h2 *)c, id);
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t name_len, const uint8_t *value, size_t value_len, uint8_t flags,
                     void *user)
{
    (void)session;
    (void)flags;
    if (name_len == 7 && memcmp(name, ":status", 7) == 0 && value_len == 3)
        stream_of(user, frame->hd.stream_id)->status = atoi((const char *)value);
    return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    (void)session;
    if (frame->hd.type == NGHTTP2_GOAWAY) {
        raw_h2 *c = user;
        c->goaway = 1;
        c->goaway_code = frame->goaway.error_code;
    }
    if (frame->hd.stream_id && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
        (frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA))
        stream_of(user, frame->hd.stream_id)->ended = 1;
    return 0;
}

static int on_close(nghttp2_session *session, int32_t id, uint32_t code, void *user)
{
    (void)session;
    raw_h2_stream *s = stream_of(user, id);
    s->closed = 1;
    s->close_code = code;
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *user)
{
    (void)flags;
    raw_h2_stream *s = stream_of(user, id);
    if (s->received == 0)
        s->checksum = TL_CHECKSUM_INIT;
    s->received += len;
    s->checksum = tl_checksum(s->checksum, data, len);
    /* Credit at once, so a canary never stalls on this client's window. */
    nghttp2_session_consume(session, id, len);
    return 0;
}

static void push(uint8_t **q, size_t *len, const uint8_t *data, size_t n)
{
    if (n == 0)
        return;
    *q = realloc(*q, *len + n);
    ck_assert_ptr_nonnull(*q);
    memcpy(*q + *len, data, n);
    *len += n;
}

static void pop(uint8_t *q, size_t *len, size_t n)
{
    if (n == 0)
        return;
    memmove(q, q + n, *len - n);
    *len -= n;
}

raw_h2 *raw_h2_new(void)
{
    raw_h2 *c = calloc(1, sizeof(*c));
    ck_assert_ptr_nonnull(c);
    hbone_config *cfg = tl_config("client", NULL);
    ck_assert_int_eq(hb_tls_new(&c->tls, cfg, HB_TLS_CLIENT), 0);
    hbone_config_del(cfg);
    hbone_spiffe_id *id = tl_id("spiffe://cluster.local/ns/default/sa/server");
    ck_assert_int_eq(hb_tls_expect_peer(c->tls, id), 0);
    hbone_spiffe_id_del(id);
    nghttp2_session_callbacks *cbs;
    ck_assert_int_eq(nghttp2_session_callbacks_new(&cbs), 0);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_close);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    /* No HTTP messaging checks: this client sends what tests ask for. */
    nghttp2_option *opt;
    ck_assert_int_eq(nghttp2_option_new(&opt), 0);
    nghttp2_option_set_no_http_messaging(opt, 1);
    nghttp2_option_set_max_send_header_block_length(opt, 1 << 20); /* for header floods */
    ck_assert_int_eq(nghttp2_session_client_new2(&c->session, cbs, c, opt), 0);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    ck_assert_int_eq(nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, NULL, 0), 0);
    return c;
}

void raw_h2_del(raw_h2 *c)
{
    nghttp2_session_del(c->session);
    hb_tls_del(c->tls);
    free(c->to_server);
    free(c->to_client);
    free(c->plain_log);
    free(c->record_ends);
    free(c->raw_in);
    free(c);
}

size_t raw_h2_frame_header(uint8_t *out, uint32_t len, uint8_t type, uint8_t flags, int32_t stream);

raw_h2 *raw_h2_new_raw(void)
{
    raw_h2 *c = raw_h2_new();
    c->raw = 1;
    return c;
}

/* Raw mode: note what the server's frames say (GOAWAY, RST_STREAM, a 200,
 * DATA), as far as a test needs. */
static void raw_frame(raw_h2 *c, uint8_t type, uint8_t flags, int32_t id, const uint8_t *p,
                      size_t len)
{
    if (type == NGHTTP2_GOAWAY && len >= 8) {
        c->goaway = 1;
        c->goaway_code = (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7];
        return;
    }
    if (id == 0)
        return;
    raw_h2_stream *s = stream_of(c, id);
    if (type == NGHTTP2_RST_STREAM && len >= 4) {
        s->closed = 1;
        s->close_code = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    } else if (type == NGHTTP2_HEADERS && len > 0 && p[0] == 0x88) {
        s->status = 200; /* HPACK static entry 8, ":status: 200", as nghttp2 sends it */
    } else if (type == NGHTTP2_DATA) {
        if (s->received == 0)
            s->checksum = TL_CHECKSUM_INIT;
        s->received += len;
        s->checksum = tl_checksum(s->checksum, p, len);
    }
    if ((type == NGHTTP2_HEADERS || type == NGHTTP2_DATA) && (flags & NGHTTP2_FLAG_END_STREAM))
        s->ended = 1;
}

static void raw_parse(raw_h2 *c, const uint8_t *plain, size_t len)
{
    push(&c->raw_in, &c->raw_in_len, plain, len);
    size_t at = 0;
    while (c->raw_in_len - at >= 9) {
        const uint8_t *h = c->raw_in + at;
        size_t flen = (size_t)h[0] << 16 | (size_t)h[1] << 8 | h[2];
        if (c->raw_in_len - at < 9 + flen)
            break;
        int32_t id = (int32_t)(((uint32_t)h[5] & 0x7f) << 24 | (uint32_t)h[6] << 16 |
                               (uint32_t)h[7] << 8 | h[8]);
        raw_frame(c, h[3], h[4], id, h + 9, flen);
        at += 9 + flen;
    }
    pop(c->raw_in, &c->raw_in_len, at);
}

int32_t raw_h2_request(raw_h2 *c, const char *const *fields, size_t n_fields, int end_stream)
{
    nghttp2_nv nva[128];
    ck_assert_uint_le(n_fields, 128);
    for (size_t i = 0; i < n_fields; i++) {
        const char *name = fields[2 * i], *value = fields[2 * i + 1];
        /* Without a copy nghttp2 also leaves the name's case alone. The
         * fields must live until the request is sent (the next pump). */
        nva[i] = (nghttp2_nv){(uint8_t *)(uintptr_t)name, (uint8_t *)(uintptr_t)value, strlen(name),
                              strlen(value),
                              NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE};
    }
    nghttp2_priority_spec *no_priority = NULL;
    int32_t id;
    if (end_stream) {
        id = nghttp2_submit_headers(c->session, NGHTTP2_FLAG_END_STREAM, -1, no_priority, nva,
                                    n_fields, NULL);
    } else {
        id = nghttp2_submit_headers(c->session, NGHTTP2_FLAG_NONE, -1, no_priority, nva, n_fields,
                                    NULL);
    }
    ck_assert_int_gt(id, 0);
    stream_of(c, id);
    return id;
}

static void tap_record(raw_h2 *c, const uint8_t *plain, size_t len)
{
    push(&c->plain_log, &c->plain_len, plain, len);
    c->record_ends = realloc(c->record_ends, (c->n_records + 1) * sizeof(*c->record_ends));
    ck_assert_ptr_nonnull(c->record_ends);
    c->record_ends[c->n_records++] = c->plain_len;
}

/* One round of the raw client: handshake or HTTP/2, both directions. */
static int client_step(raw_h2 *c)
{
    int progress = 0;
    size_t consumed = 0;
    if (!c->handshake_done) {
        int r = hb_tls_handshake(c->tls, c->to_client, c->to_client_len, &consumed);
        ck_assert_msg(r == 0 || r == HBONE_ERR_AGAIN, "raw client handshake: %s",
                      hb_tls_error_detail(c->tls));
        c->handshake_done = r == 0;
        progress |= r == 0;
    } else {
        uint8_t plain[16384];
        size_t nread = 0;
        size_t offer = c->to_client_len;
        if (c->tap) {
            /* Exactly one whole record, so the plaintext is that record's. */
            if (offer < TLS_RECORD_HEADER)
                return 0;
            offer = TLS_RECORD_HEADER + ((size_t)c->to_client[3] << 8 | c->to_client[4]);
            if (offer > c->to_client_len)
                return 0;
        }
        int r = hb_tls_read(c->tls, c->to_client, offer, &consumed, plain, sizeof(plain), &nread);
        if (c->tap && nread)
            tap_record(c, plain, nread);
        ck_assert_msg(r == 0 || r == HBONE_ERR_AGAIN || r == HBONE_ERR_CLOSED,
                      "raw client read: %d", r);
        if (nread && c->raw)
            raw_parse(c, plain, nread);
        else if (nread)
            ck_assert_int_ge(nghttp2_session_mem_recv(c->session, plain, nread), 0);
        progress |= nread > 0;
    }
    pop(c->to_client, &c->to_client_len, consumed);
    progress |= consumed > 0;
    if (c->handshake_done && !c->raw) {
        const uint8_t *data;
        ssize_t n;
        while ((n = nghttp2_session_mem_send(c->session, &data)) > 0)
            ck_assert_int_eq(hb_tls_write(c->tls, data, (size_t)n), 0);
    }
    size_t len;
    const uint8_t *out = hb_tls_output(c->tls, &len);
    push(&c->to_server, &c->to_server_len, out, len);
    hb_tls_output_consume(c->tls, len);
    return progress | (len > 0);
}

int raw_h2_pump_status(raw_h2 *c, hbone_conn *server)
{
    int first_error = 0;
    for (int rounds = 0; rounds < 100000; rounds++) {
        int progress = client_step(c);
        size_t consumed = 0, len;
        int r = hbone_conn_input(server, c->to_server, c->to_server_len, &consumed, 0);
        if (r < 0 && !first_error)
            first_error = r;
        if (r < 0)
            consumed = c->to_server_len; /* a failed server reads no more */
        pop(c->to_server, &c->to_server_len, consumed);
        progress |= consumed > 0;
        const uint8_t *out = hbone_conn_output(server, &len, 0);
        push(&c->to_client, &c->to_client_len, out, len);
        hbone_conn_output_consume(server, len);
        progress |= len > 0;
        if (!progress)
            return first_error;
    }
    ck_abort_msg("raw HTTP/2 exchange did not settle");
    return first_error;
}

void raw_h2_pump(raw_h2 *c, hbone_conn *server)
{
    int r = raw_h2_pump_status(c, server);
    ck_assert_msg(r == 0, "server input: %s", hbone_conn_error_detail(server));
}

void raw_h2_send_raw(raw_h2 *c, const uint8_t *frames, size_t len)
{
    ck_assert_int_eq(hb_tls_write(c->tls, frames, len), 0);
    size_t out_len;
    const uint8_t *out = hb_tls_output(c->tls, &out_len);
    push(&c->to_server, &c->to_server_len, out, out_len);
    hb_tls_output_consume(c->tls, out_len);
}

size_t raw_h2_frame_header(uint8_t *out, uint32_t len, uint8_t type, uint8_t flags, int32_t stream)
{
    out[0] = (uint8_t)(len >> 16);
    out[1] = (uint8_t)(len >> 8);
    out[2] = (uint8_t)len;
    out[3] = type;
    out[4] = flags;
    out[5] = (uint8_t)((uint32_t)stream >> 24);
    out[6] = (uint8_t)((uint32_t)stream >> 16);
    out[7] = (uint8_t)((uint32_t)stream >> 8);
    out[8] = (uint8_t)stream;
    return 9;
}

void raw_h2_send_data(raw_h2 *c, int32_t stream, const uint8_t *data, size_t len)
{
    static uint8_t frame[9 + 16384];
    while (len > 0) {
        size_t n = len < 16384 ? len : 16384;
        size_t h = raw_h2_frame_header(frame, (uint32_t)n, NGHTTP2_DATA, 0, stream);
        memcpy(frame + h, data, n);
        raw_h2_send_raw(c, frame, h + n);
        data += n;
        len -= n;
    }
}

int raw_h2_goaway(const raw_h2 *c, uint32_t *code)
{
    if (code)
        *code = c->goaway_code;
    return c->goaway;
}

void raw_h2_large_windows(raw_h2 *c)
{
    const int32_t window = 16 << 20;
    nghttp2_settings_entry iv = {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, (uint32_t)window};
    ck_assert_int_eq(nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, &iv, 1), 0);
    ck_assert_int_eq(
        nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0, window), 0);
}

void raw_h2_tap_records(raw_h2 *c)
{
    c->tap = 1;
}

/* The record holding plaintext offset @p off. */
static size_t record_at(const raw_h2 *c, size_t off)
{
    size_t i = 0;
    while (i < c->n_records && c->record_ends[i] <= off)
        i++;
    return i;
}

void raw_h2_record_stats(const raw_h2 *c, raw_h2_records *st)
{
    memset(st, 0, sizeof(*st));
    st->records = c->n_records;
    size_t last_data_record = SIZE_MAX;
    for (size_t pos = 0; pos + 9 <= c->plain_len;) {
        const uint8_t *h = c->plain_log + pos;
        size_t len = (size_t)h[0] << 16 | (size_t)h[1] << 8 | h[2];
        size_t end = pos + 9 + len;
        ck_assert_uint_le(end, c->plain_len);
        if (h[3] == NGHTTP2_DATA && len > 0) {
            size_t first = record_at(c, pos), last = record_at(c, end - 1);
            st->data_frames++;
            st->data_bytes += len;
            st->split_data_frames += first != last;
            for (size_t r = first; r <= last; r++) {
                if (r == last_data_record)
                    continue;
                last_data_record = r;
                size_t start = r ? c->record_ends[r - 1] : 0;
                st->data_records++;
                st->full_data_records += c->record_ends[r] - start == RECORD_PLAINTEXT_MAX;
            }
        }
        pos = end;
    }
}

uint32_t raw_h2_server_setting(const raw_h2 *c, int id)
{
    return nghttp2_session_get_remote_settings(c->session, (nghttp2_settings_id)id);
}
