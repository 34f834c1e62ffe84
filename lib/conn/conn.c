/* SPDX-License-Identifier: MIT */
/*
 * An HBONE connection: the TLS session, the HTTP/2 session on top of it, and
 * the tunnels (CONNECT streams) in it. Sans-IO: ciphertext in and out.
 */
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <hbone/connect.h>
#include <hbone/conn.h>
#include <hbone/error.h>

#include "common/log.h"
#include "common/mem.h"
#include "conn/conn_testing.h"
#include "conn/tunnel.h"
#include "h2/h2.h"
#include "tls/config.h"
#include "tls/tls.h"

/* Plaintext is framed into TLS records of at most this size: a full record
 * carries frame headers with their payload and costs one AEAD pass. */
#define RECORD_PLAINTEXT 16384
/* Buffer limits and the flood budget come from the config
 * (hbone_config_set_buffer_limits, hbone_config_set_flood_limit). Framing
 * stops while the connection's ciphertext limit waits for the transport,
 * so memory stays bounded however much the tunnels have queued. Input stops
 * at twice that: a peer that does not read what it makes us send (KeyUpdate
 * replies, alerts: output that bypasses the framing) is held back by TCP
 * instead of growing our buffer. Framing overshoots its limit by at most one
 * frame, so ordinary traffic never gets there and two peers that both write
 * cannot deadlock. The flood budget counts frames that cost work without
 * moving a stream forward (empty DATA, PRIORITY, invalid frames, streams we
 * had to reset), as upstream nghttp2's glitch limiter does, which 1.52 lacks. */
/* An HTTP/2 frame header. */
#define H2_FRAME_HEADER 9
/* Below this much room, a DATA frame starts a new record rather than
 * filling the end of the current one. */
#define MIN_DATA_IN_PARTIAL_RECORD 1024
/* Input waits while nghttp2 holds this many frames to send (RST_STREAM,
 * WINDOW_UPDATE, responses: DATA is not counted): a peer that makes us
 * answer and does not read is held back by TCP, as with ciphertext below.
 * A connection has at most a few per stream in ordinary traffic. */
#define MAX_QUEUED_FRAMES 1000
/* HPACK counts each header field as its length plus 32 (RFC 9113 6.5.2). */
#define HEADER_FIELD_OVERHEAD 32

/* A token bucket, in thousandths of a token, refilled by the connection's
 * clock. */
typedef struct hb_bucket {
    uint64_t tokens;
    uint64_t refilled;
} hb_bucket;

struct hbone_callbacks {
    hbone_handshake_cb handshake;
    hbone_tunnel_request_cb tunnel_request;
    hbone_tunnel_response_cb tunnel_response;
    hbone_tunnel_data_cb tunnel_data;
    hbone_tunnel_end_cb tunnel_end;
    hbone_tunnel_writable_cb tunnel_writable;
    hbone_tunnel_close_cb tunnel_close;
};

struct hbone_conn {
    hbone_config *cfg;
    const hb_mem *mem; /* the config's */
    hbone_callbacks cbs;
    void *user_data;
    int server;
    hb_tls *tls;
    hb_h2 *h2;
    hb_h2_settings settings;
    int handshake_done;
    int closed; /* no more input will be processed */
    int error;  /* sticky fatal error */
    hb_detail detail;
    hb_tunnel *tunnels;
    /* Timers, in the caller's milliseconds; 0 means not armed. */
    uint64_t now;
    uint64_t handshake_deadline;
    uint64_t next_ping;
    uint64_t ping_deadline; /* a keepalive PING awaits its ACK */
    uint64_t drain_deadline;
    uint64_t idle_since;  /* no tunnel since then (0: tunnels open) */
    uint64_t stall_check; /* next look for stalled tunnels (hbone_config_set_stall_timeout) */
    uint64_t output_waiting_since; /* ciphertext waiting, none taken since (0: none waits) */
    int output_taken;              /* the transport took some since the last timed call */
    int draining;                  /* no new tunnels */
    uint32_t peer_goaway_error;    /* the code of the peer's GOAWAY, if not NO_ERROR */
    int flush_goaway;              /* failed, but a GOAWAY still has to go out */
    int peer_broke_http2;          /* nghttp2 sent GOAWAY with an error: fail once it is out */
    hb_bucket glitches;            /* frames that do no work: hbone_config_set_flood_limit */
    hb_bucket peer_resets;         /* RST_STREAM from the peer */
    int drain_ping_sent;           /* server: waiting for the ACK before the final GOAWAY */
    int64_t fixed_wall_clock;      /* tests only (hb_conn_set_wall_clock): 0 is the real one */
    int admitted;                  /* server: counted in the config's server load ... */
    int in_handshake;              /* ... and as a handshake still */
    /* Plaintext frames waiting to fill a TLS record: a buffer on the stack
     * of hbone_conn_output(), the only place frames are produced, so a
     * connection holds none between calls and no call allocates one. */
    uint8_t *record;
    size_t record_len;
};

/* --- callbacks object ---------------------------------------------------- */

int hbone_callbacks_new(hbone_callbacks **out)
{
    if (!out)
        return HBONE_ERR_INVALID_ARGUMENT;
    *out = hb_calloc(hb_mem_default(), 1, sizeof(**out));
    return *out ? 0 : HBONE_ERR_NOMEM;
}

void hbone_callbacks_del(hbone_callbacks *cbs)
{
    hb_free(hb_mem_default(), cbs);
}

#define CALLBACK_SETTER(field, type)                                                               \
    void hbone_callbacks_set_##field(hbone_callbacks *cbs, type cb)                                \
    {                                                                                              \
        if (cbs)                                                                                   \
            cbs->field = cb;                                                                       \
    }
CALLBACK_SETTER(handshake, hbone_handshake_cb)
CALLBACK_SETTER(tunnel_request, hbone_tunnel_request_cb)
CALLBACK_SETTER(tunnel_response, hbone_tunnel_response_cb)
CALLBACK_SETTER(tunnel_data, hbone_tunnel_data_cb)
CALLBACK_SETTER(tunnel_end, hbone_tunnel_end_cb)
CALLBACK_SETTER(tunnel_writable, hbone_tunnel_writable_cb)
CALLBACK_SETTER(tunnel_close, hbone_tunnel_close_cb)

/* --- tunnels ------------------------------------------------------------- */

static hb_tunnel *find_tunnel(const hbone_conn *c, int32_t id)
{
    for (hb_tunnel *t = c->tunnels; t; t = t->next) {
        if (t->id == id)
            return t;
    }
    return NULL;
}

static hb_tunnel *add_tunnel(hbone_conn *c, int32_t id)
{
    hb_tunnel *t = hb_calloc(c->mem, 1, sizeof(*t));
    if (!t)
        return NULL;
    t->id = id;
    c->idle_since = 0;
    t->next = c->tunnels;
    if (c->tunnels)
        c->tunnels->prev = t;
    c->tunnels = t;
    return t;
}

static void remove_tunnel(hbone_conn *c, hb_tunnel *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        c->tunnels = t->next;
    if (t->next)
        t->next->prev = t->prev;
    hb_tunnel_free(c->mem, t);
    if (!c->tunnels)
        c->idle_since = c->now;
}

/* Close a tunnel: tell the application if it knows it, then forget it. */
static void close_tunnel(hbone_conn *c, hb_tunnel *t, uint32_t reason)
{
    t->closing = 1; /* from here on the id is invalid for the application */
    if (t->visible && c->cbs.tunnel_close)
        c->cbs.tunnel_close(c, t->id, reason, c->user_data);
    /* Bytes the application can no longer consume still count against the
     * connection window: give them back, or the connection would shrink. */
    if (t->unconsumed && !c->closed)
        (void)hb_h2_consume(c->h2, t->id, t->unconsumed);
    remove_tunnel(c, t);
}

/* The connection is gone: no tunnel may look like it ended cleanly. */
static void lose_all_tunnels(hbone_conn *c)
{
    while (c->tunnels)
        close_tunnel(c, c->tunnels, HBONE_CLOSE_CONNECTION_LOST);
}

static int fail(hbone_conn *c, int code)
{
    if (!c->error) {
        c->error = code;
        c->closed = 1;
        hb_log(&c->cfg->log, HBONE_LOG_WARN, "HBONE %s connection failed: %s",
               c->server ? "server" : "client",
               c->detail.text[0] ? c->detail.text : hbone_strerror(code));
        lose_all_tunnels(c);
    }
    return c->error;
}

/* --- HTTP/2 events --------------------------------------------------------- */

static int on_begin_request(void *ctx, int32_t stream)
{
    hbone_conn *c = ctx;
    return add_tunnel(c, stream) ? 0 : HBONE_ERR_NOMEM;
}

/* A request being reset keeps nothing: its fields could be up to the
 * header budget, on every stream a peer opens, for as long as the reset
 * waits to be sent. */
static void stop_collecting(hbone_conn *c, hb_tunnel *t)
{
    t->resetting = 1;
    hb_tunnel_forget_request(c->mem, t);
}

static void on_invalid_header(void *ctx, int32_t stream)
{
    hbone_conn *c = ctx;
    hb_tunnel *t = find_tunnel(c, stream);
    if (t)
        stop_collecting(c, t);
}

static int on_header(void *ctx, int32_t stream, const uint8_t *name, size_t name_len,
                     const uint8_t *value, size_t value_len)
{
    hbone_conn *c = ctx;
    hb_tunnel *t = find_tunnel(c, stream);
    if (!t || t->resetting)
        return 0;
    /* nghttp2 does not hold a peer to the header-list size we advertised.
     * The budget is per tunnel, so endless 1xx responses exhaust it too. */
    t->header_bytes += name_len + value_len + HEADER_FIELD_OVERHEAD;
    if (t->header_bytes > c->settings.max_header_list_size) {
        hb_log(&c->cfg->log, HBONE_LOG_INFO,
               "tunnel %d: peer's headers exceed the %u-byte header list limit, reset", (int)stream,
               (unsigned)c->settings.max_header_list_size);
        stop_collecting(c, t);
        return HBONE_ERR_PROTOCOL;
    }
    if (!c->server) {
        /* nghttp2 has checked :status is three digits (HTTP messaging), but
         * not that it is a status: 000-099 and 600-999 are not (RFC 9110
         * section 15), and 0 would read as "no status yet". Reset. */
        if (name_len == 7 && memcmp(name, ":status", 7) == 0 && value_len == 3) {
            if (value[0] < '1' || value[0] > '5')
                return HBONE_ERR_PROTOCOL;
            t->status = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
        }
        return 0;
    }
    if (name_len > 0 && name[0] == ':') {
        if (name_len == 7 && memcmp(name, ":method", 7) == 0)
            t->bad_request |= !(value_len == 7 && memcmp(value, "CONNECT", 7) == 0);
        else if (name_len == 10 && memcmp(name, ":authority", 10) == 0 && !t->authority) {
            t->authority = hb_strndup(c->mem, (const char *)value, value_len);
            if (!t->authority)
                return HBONE_ERR_NOMEM;
            t->authority_len = value_len;
        } else {
            t->bad_request = 1; /* :path, :scheme, :protocol: not classic CONNECT */
        }
        return 0;
    }
    /* A CONNECT carries no message body, so no length for one. */
    if (name_len == 14 && memcmp(name, "content-length", 14) == 0)
        t->bad_request = 1;
    return hb_tunnel_add_header(c->mem, t, name, name_len, value, value_len);
}

/* --- the peer's certificate expiring ---------------------------------------- */

/* Wall-clock time: certificates expire by it, whatever the caller's clock. */
static int64_t wall_clock(const hbone_conn *c)
{
    return c->fixed_wall_clock ? c->fixed_wall_clock : (int64_t)time(NULL);
}

/* Whether the certificate the peer proved its identity with has expired
 * (RFC 5280: valid through notAfter). A connection keeps its tunnels then,
 * but takes no new ones: they would rest on an identity no longer
 * vouched for. */
static int peer_expired(const hbone_conn *c)
{
    int64_t not_after = hb_tls_peer_not_after(c->tls);
    return not_after && wall_clock(c) > not_after;
}

/* No new tunnels on this connection (GOAWAY); those open carry on. */
static void stop_new_tunnels(hbone_conn *c)
{
    if (c->draining)
        return;
    time_t t = (time_t)hb_tls_peer_not_after(c->tls);
    struct tm tm;
    char when[32] = "?";
    if (gmtime_r(&t, &tm))
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    hb_log(&c->cfg->log, HBONE_LOG_INFO,
           "the certificate of %s expired at %s: no new tunnels on this connection",
           hbone_spiffe_id_str(hb_tls_peer_id(c->tls), NULL), when);
    c->draining = 1;
    (void)hb_h2_goaway(c->h2); /* without it, it closes with its transport */
}

/* Server: the request is complete; answer bad ones ourselves. */
static int request_done(hbone_conn *c, hb_tunnel *t, int end_stream)
{
    const char *host = NULL;
    size_t host_len = 0;
    uint16_t port = 0;
    int kind = 0;
    if (peer_expired(c)) {
        /* Refused, not failed: the client may retry it on a new connection. */
        stop_new_tunnels(c);
        t->answered = 1;
        hb_tunnel_forget_request(c->mem, t);
        return hb_h2_reset(c->h2, t->id, HB_H2_REFUSED_STREAM);
    }
    int valid =
        !t->bad_request && !end_stream && t->authority &&
        hbone_authority_parse(t->authority, t->authority_len,
                              c->cfg->hostname_authority ? HBONE_AUTHORITY_ALLOW_HOSTNAME : 0,
                              &host, &host_len, &port, &kind, NULL) == 0;
    if (!valid) {
        hb_log(&c->cfg->log, HBONE_LOG_INFO, "tunnel %d: malformed CONNECT, answered 400",
               (int)t->id);
        t->answered = 1;
        hb_tunnel_forget_request(c->mem, t);
        return hb_h2_submit_response(c->h2, t->id, 400, NULL, NULL, NULL, NULL, 0, 0);
    }
    t->visible = 1;
    if (c->cbs.tunnel_request)
        c->cbs.tunnel_request(c, t->id, host, host_len, port, kind, c->user_data);
    else
        return hbone_conn_tunnel_reject(c, t->id, 503);
    return 0;
}

/* Client: a final response arrived. */
static int response_done(hbone_conn *c, hb_tunnel *t)
{
    if (t->status >= 100 && t->status < 200) {
        t->status = 0; /* informational: the final response follows */
        return 0;
    }
    t->answered = 1;
    t->established = t->status == 200;
    if (!t->established) {
        /* A refused tunnel carries no data: end our side cleanly. */
        t->local_shut = 1;
        hb_tunnel_discard(c->mem, t);
    }
    if (c->cbs.tunnel_response)
        c->cbs.tunnel_response(c, t->id, t->status, c->user_data);
    if (hb_tunnel_pending(t) || t->local_shut) {
        t->deferred = 0;
        return hb_h2_resume(c->h2, t->id);
    }
    return 0;
}

/* The peer ended its side: tell the application once. */
/* A refused tunnel (answered, not established) carries nothing: the body of
 * a refusal, or what a client sends after it, is not tunnel data, and the
 * application has already been told the tunnel failed. */
static int refused(const hb_tunnel *t)
{
    return t->answered && !t->established;
}

static void peer_ended(hbone_conn *c, hb_tunnel *t)
{
    if (!t->visible || t->peer_ended || refused(t))
        return;
    t->peer_ended = 1;
    if (c->cbs.tunnel_end)
        c->cbs.tunnel_end(c, t->id, c->user_data);
}

static int on_headers_done(void *ctx, int32_t stream, int end_stream)
{
    hbone_conn *c = ctx;
    hb_tunnel *t = find_tunnel(c, stream);
    if (!t)
        return 0;
    if (t->answered) {
        /* A later header block (trailers) can only end the tunnel. */
        if (end_stream)
            peer_ended(c, t);
        return 0;
    }
    if (t->resetting)
        return 0;
    int r = c->server ? request_done(c, t, end_stream) : response_done(c, t);
    /* A 200 that also ends the stream: established, and already ended. */
    if (r == 0 && end_stream && (t = find_tunnel(c, stream)) && t->established)
        peer_ended(c, t);
    return r;
}

static int on_data(void *ctx, int32_t stream, const uint8_t *data, size_t len)
{
    hbone_conn *c = ctx;
    hb_tunnel *t = find_tunnel(c, stream);
    if (!t || !t->visible || refused(t)) {
        /* Nobody will consume these bytes: give the window back now. */
        return hb_h2_consume(c->h2, stream, len);
    }
    if (!c->cbs.tunnel_data)
        return hb_h2_consume(c->h2, stream, len);
    t->unconsumed += len;
    c->cbs.tunnel_data(c, stream, data, len, c->user_data);
    return 0;
}

static int on_end(void *ctx, int32_t stream)
{
    hbone_conn *c = ctx;
    hb_tunnel *t = find_tunnel(c, stream);
    if (t)
        peer_ended(c, t);
    return 0;
}

static void on_close(void *ctx, int32_t stream, uint32_t error_code)
{
    hbone_conn *c = ctx;
    hb_tunnel *t = find_tunnel(c, stream);
    if (!t)
        return;
    /* NO_ERROR means clean only once the peer's side is complete; a refusal
     * is complete as it stands. */
    if (error_code == HB_H2_NO_ERROR && !t->peer_ended && !refused(t))
        error_code = HBONE_CLOSE_RESET_BEFORE_END;
    /* REFUSED_STREAM tells the application the peer never processed the
     * tunnel, so it may retry it elsewhere. A tunnel the peer has answered
     * was processed, whatever a later GOAWAY or reset claims: replaying it
     * could repeat what it carried. */
    if (error_code == HB_H2_REFUSED_STREAM && t->answered && !refused(t))
        error_code = HBONE_CLOSE_CONNECTION_LOST;
    if (t->stalled)
        error_code = HBONE_CLOSE_STALLED;
    close_tunnel(c, t, error_code);
}

static ssize_t read_data(void *ctx, int32_t stream, size_t len, int *eof)
{
    hbone_conn *c = ctx;
    hb_tunnel *t = find_tunnel(c, stream);
    if (!t)
        return -1;
    /* A client sends nothing before the answer, its FIN included (ztunnel
     * waits the same way): a refusal must not find the data delivered. A
     * refused tunnel then ends its side with an empty END_STREAM. */
    if (!t->answered) {
        t->deferred = 1;
        return HB_H2_DEFERRED;
    }
    size_t pending = hb_tunnel_pending(t);
    size_t n = pending < len ? pending : len;
    if (n == pending && t->local_shut) {
        *eof = 1;
    } else if (n == 0) {
        t->deferred = 1;
        return HB_H2_DEFERRED;
    }
    return (ssize_t)n;
}

/* End the connection for flooding: GOAWAY(ENHANCE_YOUR_CALM), then fail. */
static int calm_down(hbone_conn *c, const char *why)
{
    hb_detail_set(&c->detail, HBONE_ERR_PROTOCOL, "peer %s: closed with ENHANCE_YOUR_CALM", why);
    if (hb_h2_calm_down(c->h2) == 0)
        c->flush_goaway = 1;
    return HBONE_ERR_PROTOCOL;
}

static void bucket_fill(hb_bucket *b, uint64_t now, uint32_t burst)
{
    b->tokens = (uint64_t)burst * 1000u;
    b->refilled = now;
}

/* Take one token, refilling first at @p per_second since the last time;
 * returns 0 when none is left. */
static int bucket_take(hb_bucket *b, uint64_t now, uint32_t burst, uint32_t per_second)
{
    uint64_t elapsed = now > b->refilled ? now - b->refilled : 0;
    uint64_t full = (uint64_t)burst * 1000u;
    b->refilled = now;
    /* ms x tokens/s = thousandths; the cap also keeps the sum from wrapping. */
    b->tokens += elapsed < full ? elapsed * per_second : full;
    if (b->tokens > full)
        b->tokens = full;
    if (b->tokens < 1000)
        return 0;
    b->tokens -= 1000;
    return 1;
}

static int on_glitch(void *ctx)
{
    hbone_conn *c = ctx;
    if (!bucket_take(&c->glitches, c->now, c->cfg->flood_burst, c->cfg->flood_per_second))
        return calm_down(c, "sent too many frames that do no work (empty DATA, PRIORITY, "
                            "PUSH_PROMISE, invalid frames or streams it made us reset)");
    return 0;
}

/* The same budget as nghttp2's reset limit, counted here so that input stops
 * at the reset that overdraws it: nghttp2 would still hand the application
 * every request in the rest of the input before it ends the connection. */
static int on_peer_reset(void *ctx)
{
    hbone_conn *c = ctx;
    if (!bucket_take(&c->peer_resets, c->now, HB_H2_RESET_BURST, HB_H2_RESET_PER_SECOND))
        return calm_down(c, "reset streams faster than allowed (Rapid Reset)");
    return 0;
}

/* nghttp2 ended the connection over a frame of the peer's (our own reasons,
 * ENHANCE_YOUR_CALM or a failure, have their detail already). The
 * connection fails once that GOAWAY is on its way. */
static void on_goaway_sent(void *ctx, uint32_t error_code, const char *why, size_t why_len)
{
    hbone_conn *c = ctx;
    if (c->error || c->detail.text[0])
        return;
    hb_detail_set(&c->detail, HBONE_ERR_PROTOCOL, "the peer broke HTTP/2 (%s)%s%.*s",
                  hb_h2_error_name(error_code), why_len ? ": " : "", (int)why_len, why);
    c->peer_broke_http2 = 1;
}

/* The peer's GOAWAY with an error: the connection ends without failing on
 * our side, but the application should learn why, to back off from a peer
 * that said ENHANCE_YOUR_CALM rather than retry at once. Debug data is the
 * peer's text: only printable ASCII of it is kept. */
static void on_goaway_received(void *ctx, uint32_t error_code, const char *why, size_t why_len)
{
    hbone_conn *c = ctx;
    if (!c->peer_goaway_error)
        c->peer_goaway_error = error_code;
    if (c->error || c->detail.text[0])
        return;
    char text[128];
    size_t n = 0;
    for (size_t i = 0; i < why_len && n + 1 < sizeof(text); i++)
        text[n++] = why[i] >= 0x20 && why[i] < 0x7f ? why[i] : '?';
    text[n] = '\0';
    hb_detail_set(&c->detail, HBONE_ERR_CLOSED, "the peer sent GOAWAY(%s)%s%s",
                  hb_h2_error_name(error_code), n ? ": " : "", text);
}

static const uint8_t keepalive_opaque[8] = {'h', 'b', 'o', 'n', 'e', 'k', 'p', 'a'};
static const uint8_t drain_opaque[8] = {'h', 'b', 'o', 'n', 'e', 'd', 'r', 'n'};

static void on_ping_ack(void *ctx, const uint8_t opaque[8])
{
    hbone_conn *c = ctx;
    if (memcmp(opaque, keepalive_opaque, 8) == 0) {
        c->ping_deadline = 0;
    } else if (memcmp(opaque, drain_opaque, 8) == 0 && c->drain_ping_sent) {
        /* Every stream the peer opened before our notice has arrived by now:
         * name the last one and let those finish. */
        c->drain_ping_sent = 0;
        if (hb_h2_goaway(c->h2) < 0)
            c->drain_deadline = c->now; /* cannot drain politely: end now */
    }
}

static size_t output_waiting(const hbone_conn *c)
{
    size_t pending;
    (void)hb_tls_output(c->tls, &pending);
    return pending;
}

/* Encrypt the collected plaintext as one record. */
static int flush_record(hbone_conn *c)
{
    if (c->record_len == 0)
        return 0;
    int r = hb_tls_write(c->tls, c->record, c->record_len);
    c->record_len = 0;
    return r;
}

static int flush_full_record(hbone_conn *c)
{
    return c->record_len == RECORD_PLAINTEXT ? flush_record(c) : 0;
}

/* Collect frames into full records; returns 1 to pause framing once enough
 * ciphertext is waiting for the transport. */
static int on_send(void *ctx, const uint8_t *data, size_t len)
{
    hbone_conn *c = ctx;
    int r = 0;
    while (r == 0 && len > 0) {
        size_t room = RECORD_PLAINTEXT - c->record_len;
        size_t n = len < room ? len : room;
        memcpy(c->record + c->record_len, data, n);
        c->record_len += n;
        data += n;
        len -= n;
        r = flush_full_record(c);
    }
    if (r < 0)
        return r;
    return output_waiting(c) >= c->cfg->connection_buffer ? 1 : 0;
}

/* Size DATA frames so that each one ends where a record ends: the peer then
 * decrypts whole frames, and records stay full. A frame that would only fit
 * in a sliver of the current record starts a new record instead. */
static size_t next_data_length(void *ctx)
{
    const hbone_conn *c = ctx;
    size_t room = RECORD_PLAINTEXT - c->record_len;
    if (room < H2_FRAME_HEADER + MIN_DATA_IN_PARTIAL_RECORD)
        room = RECORD_PLAINTEXT;
    return room - H2_FRAME_HEADER;
}

/* A DATA frame that fills a record on its own is encrypted where its
 * payload lies, with its header written into the free bytes just before:
 * no copy on our side. Returns 1 if it was, 0 to copy. */
static int send_frame_in_place(hbone_conn *c, hb_tunnel *t, const uint8_t *header,
                               size_t payload_len, int *result)
{
    size_t contiguous, room;
    uint8_t *payload = hb_tunnel_peek(t, &contiguous, &room);
    if (c->record_len != 0 || H2_FRAME_HEADER + payload_len != RECORD_PLAINTEXT ||
        contiguous < payload_len || room < H2_FRAME_HEADER)
        return 0;
    memcpy(payload - H2_FRAME_HEADER, header, H2_FRAME_HEADER);
    *result = hb_tls_write(c->tls, payload - H2_FRAME_HEADER, RECORD_PLAINTEXT);
    hb_tunnel_skip(c->mem, t, payload_len);
    return 1;
}

/* A DATA frame: its header, then the payload moved from the tunnel's buffer
 * straight into the record. nghttp2 drops such a frame if its stream closed
 * first, and the tunnel lives exactly as long as its stream. */
static int send_data(void *ctx, int32_t stream, const uint8_t *header, size_t payload_len)
{
    hbone_conn *c = ctx;
    hb_tunnel *t = find_tunnel(c, stream);
    int r = 0;
    if (!send_frame_in_place(c, t, header, payload_len, &r)) {
        if (c->record_len + H2_FRAME_HEADER + payload_len > RECORD_PLAINTEXT)
            r = flush_record(c);
        if (r == 0) {
            memcpy(c->record + c->record_len, header, H2_FRAME_HEADER);
            c->record_len += H2_FRAME_HEADER;
            c->record_len += hb_tunnel_take(c->mem, t, c->record + c->record_len, payload_len);
            r = flush_full_record(c);
        }
    }
    if (r < 0)
        return r;
    /* Progress: the stall clock starts again (c->now is fresh here: frames
     * are only produced by hbone_conn_output()). */
    t->waiting_since = hb_tunnel_pending(t) ? c->now : 0;
    /* Half empty before asking for more: large writes, few events. */
    if (t->want_writable && hb_tunnel_pending(t) <= c->cfg->tunnel_buffer / 2) {
        t->want_writable = 0;
        if (c->cbs.tunnel_writable)
            c->cbs.tunnel_writable(c, stream, c->user_data);
    }
    return output_waiting(c) >= c->cfg->connection_buffer ? 1 : 0;
}

static const hb_h2_events h2_events = {
    .on_begin_request = on_begin_request,
    .on_invalid_header = on_invalid_header,
    .on_header = on_header,
    .on_headers_done = on_headers_done,
    .on_data = on_data,
    .on_end = on_end,
    .on_close = on_close,
    .read_data = read_data,
    .next_data_length = next_data_length,
    .send_data = send_data,
    .on_glitch = on_glitch,
    .on_peer_reset = on_peer_reset,
    .on_goaway_sent = on_goaway_sent,
    .on_goaway_received = on_goaway_received,
    .on_ping_ack = on_ping_ack,
    .on_send = on_send,
};

/* --- connection ------------------------------------------------------------- */

/* @p plaintext: a session without TLS (test builds only, see
 * conn_testing.h); always 0 in libhbone.so. */
static int conn_new(hbone_conn **out, hbone_config *cfg, const hbone_callbacks *cbs,
                    void *user_data, int server, int plaintext, uint64_t now)
{
    if (!out || !cfg)
        return HBONE_ERR_INVALID_ARGUMENT;
    *out = NULL;
    /* Refused before anything is spent on it. */
    if (server &&
        hb_server_load_admit(cfg->server_load, cfg->max_handshakes, cfg->max_connections) < 0)
        return HBONE_ERR_LIMIT;
    hbone_conn *c = hb_calloc(&cfg->mem, 1, sizeof(*c));
    if (!c) {
        if (server)
            hb_server_load_leave_in_handshake(cfg->server_load);
        return HBONE_ERR_NOMEM;
    }
    c->admitted = c->in_handshake = server;
    int role = server ? HB_TLS_SERVER : HB_TLS_CLIENT;
#ifdef HB_TESTING
    int r = plaintext ? hb_tls_new_plaintext(&c->tls, cfg, role) : hb_tls_new(&c->tls, cfg, role);
#else
    (void)plaintext;
    int r = hb_tls_new(&c->tls, cfg, role);
#endif
    if (r < 0) {
        if (server)
            hb_server_load_leave_in_handshake(cfg->server_load);
        hb_free(&cfg->mem, c);
        return r;
    }
    c->cfg = hbone_config_ref(cfg);
    c->mem = &cfg->mem;
    if (cbs)
        c->cbs = *cbs;
    c->user_data = user_data;
    c->server = server;
    c->now = now;
    bucket_fill(&c->glitches, now, cfg->flood_burst);
    bucket_fill(&c->peer_resets, now, HB_H2_RESET_BURST);
    if (cfg->handshake_timeout_ms)
        c->handshake_deadline = now + cfg->handshake_timeout_ms;
    hb_h2_default_settings(&c->settings, server);
    if (cfg->h2_stream_window) {
        c->settings.stream_window = cfg->h2_stream_window;
        c->settings.connection_window = cfg->h2_connection_window;
        c->settings.max_frame_size = cfg->h2_max_frame_size;
        if (server)
            c->settings.max_concurrent_streams = cfg->h2_max_concurrent_streams;
    }
    if (cfg->h2_max_header_list_size)
        c->settings.max_header_list_size = cfg->h2_max_header_list_size;
    r = hb_h2_new(&c->h2, server, &c->settings, c->mem, &h2_events, c);
    if (r < 0) {
        hbone_conn_del(c);
        return r;
    }
    *out = c;
    return 0;
}

int hbone_conn_client_new(hbone_conn **out, hbone_config *cfg, const hbone_callbacks *cbs,
                          void *user_data, uint64_t now_ms)
{
    return conn_new(out, cfg, cbs, user_data, 0, 0, now_ms);
}

int hbone_conn_server_new(hbone_conn **out, hbone_config *cfg, const hbone_callbacks *cbs,
                          void *user_data, uint64_t now_ms)
{
    return conn_new(out, cfg, cbs, user_data, 1, 0, now_ms);
}

#ifdef HB_TESTING
int hb_conn_new_plaintext(hbone_conn **out, hbone_config *cfg, const hbone_callbacks *cbs,
                          void *user_data, int server, uint64_t now_ms)
{
    return conn_new(out, cfg, cbs, user_data, server ? 1 : 0, 1, now_ms);
}

void hb_conn_set_wall_clock(hbone_conn *c, int64_t seconds)
{
    c->fixed_wall_clock = seconds;
}

int hb_conn_set_next_stream_id(hbone_conn *c, int32_t id)
{
    return c && !c->server ? hb_h2_set_next_stream_id(c->h2, id) : HBONE_ERR_INVALID_ARGUMENT;
}
#endif

void hbone_conn_del(hbone_conn *c)
{
    if (!c)
        return;
    hbone_config *cfg = c->cfg;
    /* Tunnels vanish silently: the application is tearing everything down. */
    while (c->tunnels)
        remove_tunnel(c, c->tunnels);
    hb_h2_del(c->h2);
    hb_tls_del(c->tls);
    if (c->in_handshake)
        hb_server_load_handshake_over(cfg->server_load);
    if (c->admitted)
        hb_server_load_leave(cfg->server_load);
    hb_free(&cfg->mem, c);
    hbone_config_del(cfg);
}

int hbone_conn_expect_peer(hbone_conn *c, const hbone_spiffe_id *id)
{
    if (!c || !id)
        return HBONE_ERR_INVALID_ARGUMENT;
    return hb_tls_expect_peer(c->tls, id);
}

/* Run the handshake with @p in; on completion announce it. */
static int advance_handshake(hbone_conn *c, const uint8_t *in, size_t len, size_t *consumed)
{
    int r = hb_tls_handshake(c->tls, in, len, consumed);
    if (r == HBONE_ERR_AGAIN)
        return 0;
    if (r < 0) {
        hb_detail_set(&c->detail, r, "%s", hb_tls_error_detail(c->tls));
        return fail(c, r);
    }
    c->handshake_done = 1;
    c->handshake_deadline = 0;
    if (c->in_handshake) {
        c->in_handshake = 0;
        hb_server_load_handshake_over(c->cfg->server_load);
    }
    if (!c->tunnels)
        c->idle_since = c->now;
    if (c->cfg->keepalive_interval_ms)
        c->next_ping = c->now + c->cfg->keepalive_interval_ms;
    if (c->cbs.handshake)
        c->cbs.handshake(c, c->user_data);
    return 0;
}

/* The peer closed TLS (close_notify) or the transport: tunnels still open are
 * lost, and nothing more will be read. */
static void end_of_input(hbone_conn *c)
{
    if (!c->handshake_done && !c->error) {
        /* Say so: otherwise a refused or dropped dial looks like a quiet end. */
        hb_detail_set(&c->detail, HBONE_ERR_CLOSED,
                      "the peer closed the connection during the TLS handshake");
        fail(c, HBONE_ERR_CLOSED);
        return;
    }
    c->closed = 1;
    lose_all_tunnels(c);
}

/* The HTTP/2 session is over (GOAWAY, no stream left): hbone_conn_is_closed()
 * says so, and from then on the connection stays closed, whatever would be
 * queued later (a keepalive PING would make nghttp2 want to write again,
 * and a tunnel opened then would never get its close event). Each entry
 * point that may act on the session notes it first. A tunnel still here
 * then is a request nghttp2 holds back and will never send (the peer's
 * stream limit was reached when GOAWAY ended the session): it is closed as
 * refused, which tells the application it may retry it elsewhere. */
static void note_session_over(hbone_conn *c)
{
    if (c->handshake_done && !c->closed && !c->error && !hb_h2_alive(c->h2)) {
        c->closed = 1;
        while (c->tunnels)
            close_tunnel(c, c->tunnels, HB_H2_REFUSED_STREAM);
    }
}

/* --- stalls: hbone_config_set_stall_timeout ---------------------------------- */

/* The clock of waiting output starts, or starts again, at the first timed
 * call after the transport took some: consumption itself carries no time. */
static void watch_output(hbone_conn *c, size_t waiting)
{
    if (!waiting)
        c->output_waiting_since = 0;
    else if (!c->output_waiting_since || c->output_taken)
        c->output_waiting_since = c->now;
    c->output_taken = 0;
}

static uint64_t stall_check_period(const hbone_conn *c)
{
    uint32_t period = c->cfg->stall_timeout_ms / 4;
    return period ? period : 1;
}

/* Tunnels are looked at every quarter of the stall timeout while there are
 * any: O(1) on the data path, whatever the number of tunnels. */
static void arm_stall_check(hbone_conn *c)
{
    if (c->cfg->stall_timeout_ms && c->tunnels && !c->stall_check && c->handshake_done)
        c->stall_check = c->now + stall_check_period(c);
}

/* Reset every tunnel whose queued bytes have waited the stall timeout. A
 * tunnel's clock starts at the check that first finds it waiting, or at its
 * last progress (send_data), so it goes between the timeout and 1.25 x it
 * after the peer last took something. */
static int check_stalls(hbone_conn *c)
{
    c->stall_check = 0;
    for (hb_tunnel *t = c->tunnels; t; t = t->next) {
        if (!hb_tunnel_pending(t) || t->stalled || t->resetting) {
            t->waiting_since = 0;
        } else if (!t->waiting_since) {
            t->waiting_since = c->now;
        } else if (c->now - t->waiting_since >= c->cfg->stall_timeout_ms) {
            hb_log(&c->cfg->log, HBONE_LOG_INFO,
                   "tunnel %d: the peer took none of %zu waiting bytes for %u ms, reset",
                   (int)t->id, hb_tunnel_pending(t), (unsigned)c->cfg->stall_timeout_ms);
            t->stalled = 1;
            hb_tunnel_discard(c->mem, t); /* nobody will send it: free it now */
            int r = hb_h2_reset(c->h2, t->id, HB_H2_CANCEL);
            if (r < 0) {
                hb_detail_set(&c->detail, r, "resetting a stalled tunnel failed: %s",
                              hbone_strerror(r));
                return fail(c, r);
            }
        }
    }
    arm_stall_check(c);
    return 0;
}

static int input(hbone_conn *c, const uint8_t *data, size_t len, size_t *consumed)
{
    if (c->error)
        return c->error;
    if (c->closed)
        return 0;
    arm_stall_check(c);
    size_t used = 0;
    if (!c->handshake_done) {
        int r = advance_handshake(c, data, len, &used);
        *consumed = used;
        if (r < 0 || !c->handshake_done)
            return r;
    }
    uint8_t plain[RECORD_PLAINTEXT];
    for (;;) {
        /* A peer that does not read what it makes us send: none of its
         * ciphertext is taken until it has read. What was taken already
         * (part of a record may have been, to fill the plaintext buffer) is
         * still read through: the caller was told it was consumed and has
         * no reason to call again for it. */
        int held = output_waiting(c) >= 2 * (size_t)c->cfg->connection_buffer ||
                   hb_h2_queued_frames(c->h2) >= MAX_QUEUED_FRAMES;
        size_t took = 0, nread = 0;
        int r = hb_tls_read(c->tls, data + used, held ? 0 : len - used, &took, plain, sizeof(plain),
                            &nread);
        used += took;
        *consumed = used;
        if (nread > 0) {
            int h = hb_h2_recv(c->h2, plain, nread);
            if (h < 0) {
                if (!c->detail.text[0])
                    hb_detail_set(&c->detail, h, "HTTP/2 protocol error from the peer: %s",
                                  hb_h2_recv_error(c->h2));
                return fail(c, h);
            }
        }
        if (r == HBONE_ERR_AGAIN)
            return 0;
        if (r == HBONE_ERR_CLOSED) {
            end_of_input(c);
            return 0;
        }
        if (r < 0) {
            hb_detail_set(&c->detail, r, "%s", hb_tls_error_detail(c->tls));
            return fail(c, r);
        }
    }
}

int hbone_conn_input(hbone_conn *c, const uint8_t *data, size_t len, size_t *consumed,
                     uint64_t now_ms)
{
    if (consumed)
        *consumed = 0;
    if (!c || !consumed || (!data && len))
        return HBONE_ERR_INVALID_ARGUMENT;
    c->now = now_ms;
    note_session_over(c);
    int r = input(c, data, len, consumed);
    /* Only frames received can have ended the session: note it before
     * hbone_conn_is_closed() says so. */
    if (*consumed)
        note_session_over(c);
    return r;
}

int hbone_conn_input_eof(hbone_conn *c)
{
    if (!c)
        return HBONE_ERR_INVALID_ARGUMENT;
    end_of_input(c);
    return 0;
}

const uint8_t *hbone_conn_output(hbone_conn *c, size_t *len, uint64_t now_ms)
{
    if (!len)
        return NULL;
    *len = 0;
    if (!c)
        return NULL;
    c->now = now_ms;
    note_session_over(c);
    if (!c->handshake_done && !c->error) {
        size_t unused;
        (void)advance_handshake(c, NULL, 0, &unused); /* the client's first flight */
    }
    if (c->handshake_done && ((!c->error && !c->closed) || c->flush_goaway)) {
        c->flush_goaway = 0;
        /* Asking nghttp2 first is cheap; building nothing is not. */
        if (output_waiting(c) < c->cfg->connection_buffer && hb_h2_want_write(c->h2)) {
            uint8_t record[RECORD_PLAINTEXT];
            c->record = record;
            c->record_len = 0;
            int r = hb_h2_send(c->h2);
            if (r == 0)
                r = flush_record(c);
            c->record = NULL;
            if (r == 0 && c->peer_broke_http2)
                fail(c, HBONE_ERR_PROTOCOL); /* its GOAWAY is in the output */
            if (r < 0) {
                if (!c->detail.text[0]) /* a flood ended it: that detail stays */
                    hb_detail_set(&c->detail, r, "sending failed: %s", hbone_strerror(r));
                fail(c, r);
            }
            /* Only sending can end the session here (our GOAWAY, the last
             * stream's end): note it before hbone_conn_is_closed() says so. */
            note_session_over(c);
        }
    }
    const uint8_t *out = hb_tls_output(c->tls, len);
    watch_output(c, *len);
    arm_stall_check(c);
    return out;
}

void hbone_conn_output_consume(hbone_conn *c, size_t n)
{
    if (!c || !n)
        return;
    hb_tls_output_consume(c->tls, n);
    c->output_taken = 1;
    if (!output_waiting(c))
        c->output_waiting_since = 0;
}

int hbone_conn_is_closed(const hbone_conn *c)
{
    if (!c)
        return 1;
    if (output_waiting(c))
        return 0;
    return c->closed || c->error || (c->handshake_done && !hb_h2_alive(c->h2));
}

const hbone_spiffe_id *hbone_conn_peer_id(const hbone_conn *c)
{
    return c ? hb_tls_peer_id(c->tls) : NULL;
}

const char *hbone_conn_cipher(const hbone_conn *c)
{
    return c && c->handshake_done ? hb_tls_cipher(c->tls) : NULL;
}

const char *hbone_conn_error_detail(const hbone_conn *c)
{
    return c ? c->detail.text : "";
}

/* --- timers -------------------------------------------------------------------- */

static uint64_t earliest(uint64_t a, uint64_t b)
{
    if (!a)
        return b;
    if (!b)
        return a;
    return a < b ? a : b;
}

uint64_t hbone_conn_get_expiry(const hbone_conn *c)
{
    if (!c || c->error || c->closed)
        return UINT64_MAX;
    uint64_t t = earliest(earliest(c->handshake_deadline, c->next_ping), c->ping_deadline);
    t = earliest(t, c->drain_deadline);
    if (c->idle_since && c->cfg->idle_timeout_ms && c->handshake_done && !c->draining)
        t = earliest(t, c->idle_since + c->cfg->idle_timeout_ms);
    t = earliest(t, c->stall_check);
    if (c->output_waiting_since && c->cfg->stall_timeout_ms)
        t = earliest(t, c->output_waiting_since + c->cfg->stall_timeout_ms);
    return t ? t : UINT64_MAX;
}

static int due(uint64_t deadline, uint64_t now)
{
    return deadline && now >= deadline;
}

int hbone_conn_handle_expiry(hbone_conn *c, uint64_t now_ms)
{
    if (!c)
        return HBONE_ERR_INVALID_ARGUMENT;
    note_session_over(c);
    if (c->error)
        return c->error;
    if (c->closed)
        return 0;
    c->now = now_ms;
    if (due(c->handshake_deadline, now_ms)) {
        hb_detail_set(&c->detail, HBONE_ERR_TIMEOUT, "TLS handshake not complete after %u ms",
                      (unsigned)c->cfg->handshake_timeout_ms);
        return fail(c, HBONE_ERR_TIMEOUT);
    }
    if (due(c->ping_deadline, now_ms)) {
        hb_detail_set(&c->detail, HBONE_ERR_TIMEOUT, "peer did not answer a PING within %u ms",
                      (unsigned)c->cfg->keepalive_timeout_ms);
        return fail(c, HBONE_ERR_TIMEOUT);
    }
    if (c->output_taken)
        watch_output(c, output_waiting(c));
    if (c->output_waiting_since && c->cfg->stall_timeout_ms &&
        now_ms >= c->output_waiting_since + c->cfg->stall_timeout_ms) {
        hb_detail_set(&c->detail, HBONE_ERR_TIMEOUT,
                      "the peer took none of %zu bytes of our output for %u ms", output_waiting(c),
                      (unsigned)c->cfg->stall_timeout_ms);
        return fail(c, HBONE_ERR_TIMEOUT);
    }
    if (due(c->drain_deadline, now_ms)) {
        /* Grace is over: GOAWAY and close, whatever is still open. */
        c->drain_deadline = 0;
        if (hb_h2_terminate(c->h2) == 0)
            c->flush_goaway = 1; /* closed, but that GOAWAY still goes out */
        c->closed = 1;
        lose_all_tunnels(c);
        return 0;
    }
    if (c->idle_since && c->cfg->idle_timeout_ms && c->handshake_done && !c->draining &&
        now_ms >= c->idle_since + c->cfg->idle_timeout_ms) {
        /* Nothing to wait for: GOAWAY(NO_ERROR) and done. */
        hb_log(&c->cfg->log, HBONE_LOG_INFO, "closing a connection idle for %u ms",
               (unsigned)c->cfg->idle_timeout_ms);
        c->draining = 1;
        if (hb_h2_terminate(c->h2) == 0)
            c->flush_goaway = 1;
        c->closed = 1;
        return 0;
    }
    if (due(c->stall_check, now_ms)) {
        int r = check_stalls(c);
        if (r < 0)
            return r;
    }
    if (due(c->next_ping, now_ms)) {
        c->next_ping = now_ms + c->cfg->keepalive_interval_ms;
        if (!c->ping_deadline) {
            int r = hb_h2_ping(c->h2, keepalive_opaque);
            if (r < 0) {
                /* A fatal error always comes with a detail. */
                hb_detail_set(&c->detail, r, "queueing a keepalive PING failed: %s",
                              hbone_strerror(r));
                return fail(c, r);
            }
            c->ping_deadline = now_ms + c->cfg->keepalive_timeout_ms;
        }
    }
    return 0;
}

int hbone_conn_drain(hbone_conn *c, uint64_t now_ms, uint32_t grace_ms)
{
    if (!c)
        return HBONE_ERR_INVALID_ARGUMENT;
    if (c->error || c->closed)
        return HBONE_ERR_INVALID_STATE;
    if (c->draining)
        return 0;
    c->now = now_ms;
    c->draining = 1;
    c->drain_deadline = now_ms + (grace_ms ? grace_ms : 1);
    int r;
    if (c->server) {
        /* Two steps, so that streams already on their way are not refused. */
        r = hb_h2_shutdown_notice(c->h2);
        if (r == 0)
            r = hb_h2_ping(c->h2, drain_opaque);
        c->drain_ping_sent = r == 0;
    } else {
        r = hb_h2_goaway(c->h2);
    }
    return r;
}

/* --- tunnel API --------------------------------------------------------------- */

/* The tunnel the application may act on, or NULL. */
static hb_tunnel *app_tunnel(const hbone_conn *c, int32_t id)
{
    if (!c)
        return NULL;
    hb_tunnel *t = find_tunnel(c, id);
    return t && t->visible && !t->closing ? t : NULL;
}

static int check_headers(const char *const *names, const size_t *name_lens,
                         const char *const *values, const size_t *value_lens, size_t n)
{
    if (n && (!names || !name_lens || !values || !value_lens))
        return HBONE_ERR_INVALID_ARGUMENT;
    for (size_t i = 0; i < n; i++) {
        if (!names[i] || !values[i] || name_lens[i] == 0 || names[i][0] == ':')
            return HBONE_ERR_INVALID_ARGUMENT;
    }
    return 0;
}

/* Whether a client connection may open a tunnel now; notes on the way that
 * it never will again (the peer's certificate expired, its GOAWAY came). */
static int takes_new_tunnels(hbone_conn *c)
{
    note_session_over(c);
    if (!c->server && !c->closed && !c->error && peer_expired(c))
        stop_new_tunnels(c);
    if (c->server || c->closed || c->error || c->draining)
        return 0;
    if (!hb_h2_request_allowed(c->h2)) {
        c->draining = 1; /* the peer's GOAWAY came: nghttp2 would refuse it later */
        return 0;
    }
    return 1;
}

size_t hbone_conn_tunnel_count(const hbone_conn *c)
{
    size_t n = 0;
    for (const hb_tunnel *t = c ? c->tunnels : NULL; t; t = t->next)
        n++;
    return n;
}

uint32_t hbone_conn_tunnel_capacity(hbone_conn *c)
{
    if (!c || !takes_new_tunnels(c))
        return 0;
    uint32_t max = hb_h2_peer_max_streams(c->h2);
    size_t open = hbone_conn_tunnel_count(c);
    return open >= max ? 0 : max - (uint32_t)open;
}

uint64_t hbone_conn_idle_since(const hbone_conn *c)
{
    return c && c->handshake_done ? c->idle_since : 0;
}

uint32_t hbone_conn_peer_goaway_error(const hbone_conn *c)
{
    return c ? c->peer_goaway_error : 0;
}

int hbone_conn_tunnel_open(hbone_conn *c, const char *authority, size_t authority_len,
                           const char *const *names, const size_t *name_lens,
                           const char *const *values, const size_t *value_lens, size_t n,
                           int32_t *tunnel_out)
{
    if (!c || !authority || !tunnel_out)
        return HBONE_ERR_INVALID_ARGUMENT;
    *tunnel_out = 0;
    if (!takes_new_tunnels(c))
        return HBONE_ERR_INVALID_STATE;
    int r = check_headers(names, name_lens, values, value_lens, n);
    if (r < 0)
        return r;
    r = hbone_authority_parse(authority, authority_len, HBONE_AUTHORITY_ALLOW_HOSTNAME, NULL, NULL,
                              NULL, NULL, NULL);
    if (r < 0)
        return r;
    int32_t id;
    r = hb_h2_submit_connect(c->h2, authority, authority_len, names, name_lens, values, value_lens,
                             n, &id);
    if (r < 0)
        return r;
    hb_tunnel *t = add_tunnel(c, id);
    if (!t) {
        (void)hb_h2_reset(c->h2, id, HB_H2_INTERNAL_ERROR);
        return HBONE_ERR_NOMEM;
    }
    t->visible = 1;
    *tunnel_out = id;
    if (!hb_h2_request_allowed(c->h2)) {
        /* That was the last id: the connection serves what it has and
         * closes when they end; new tunnels need a new connection. */
        hb_log(&c->cfg->log, HBONE_LOG_INFO,
               "tunnel %d used the connection's last stream id: no new tunnels on it", (int)id);
        c->draining = 1;
        (void)hb_h2_goaway(c->h2); /* without it, it closes with its transport */
    }
    return 0;
}

int hbone_conn_tunnel_header(const hbone_conn *c, int32_t tunnel, size_t index, const char **name,
                             size_t *name_len, const char **value, size_t *value_len)
{
    if (!c)
        return HBONE_ERR_INVALID_ARGUMENT;
    hb_tunnel *t = app_tunnel(c, tunnel);
    if (!t || !c->server || t->answered || index >= t->n_headers)
        return HBONE_ERR_NOT_FOUND;
    const hb_header *h = &t->headers[index];
    if (name)
        *name = h->name;
    if (name_len)
        *name_len = h->name_len;
    if (value)
        *value = h->value;
    if (value_len)
        *value_len = h->value_len;
    return 0;
}

static int answer(hbone_conn *c, int32_t tunnel, int status, const char *const *names,
                  const size_t *name_lens, const char *const *values, const size_t *value_lens,
                  size_t n)
{
    hb_tunnel *t = app_tunnel(c, tunnel);
    if (!t)
        return HBONE_ERR_NOT_FOUND;
    if (!c->server || t->answered)
        return HBONE_ERR_INVALID_STATE;
    int r = check_headers(names, name_lens, values, value_lens, n);
    if (r < 0)
        return r;
    int ok = status == 200;
    r = hb_h2_submit_response(c->h2, tunnel, status, names, name_lens, values, value_lens, n, ok);
    if (r < 0)
        return r;
    t->answered = 1;
    t->established = ok;
    hb_tunnel_forget_request(c->mem, t);
    return 0;
}

int hbone_conn_tunnel_accept(hbone_conn *c, int32_t tunnel, const char *const *names,
                             const size_t *name_lens, const char *const *values,
                             const size_t *value_lens, size_t n)
{
    return answer(c, tunnel, 200, names, name_lens, values, value_lens, n);
}

int hbone_conn_tunnel_reject(hbone_conn *c, int32_t tunnel, int status)
{
    if (status < 400 || status > 599)
        return HBONE_ERR_INVALID_ARGUMENT;
    return answer(c, tunnel, status, NULL, NULL, NULL, NULL, 0);
}

static int resume(hbone_conn *c, hb_tunnel *t)
{
    if (!t->deferred)
        return 0;
    t->deferred = 0;
    return hb_h2_resume(c->h2, t->id);
}

int hbone_conn_tunnel_write(hbone_conn *c, int32_t tunnel, const uint8_t *data, size_t len,
                            size_t *accepted)
{
    if (accepted)
        *accepted = 0;
    if (!accepted || (!data && len))
        return HBONE_ERR_INVALID_ARGUMENT;
    hb_tunnel *t = app_tunnel(c, tunnel);
    if (!t)
        return HBONE_ERR_NOT_FOUND;
    if (t->local_shut || (c->server && !t->established) || (t->answered && !t->established))
        return HBONE_ERR_INVALID_STATE;
    size_t pending = hb_tunnel_pending(t);
    if (pending >= c->cfg->tunnel_buffer) {
        t->want_writable = 1;
        return HBONE_ERR_AGAIN;
    }
    size_t n = c->cfg->tunnel_buffer - pending;
    if (n > len)
        n = len;
    int r = hb_tunnel_queue(c->mem, t, data, n);
    if (r < 0)
        return r;
    *accepted = n;
    return t->established ? resume(c, t) : 0;
}

int hbone_conn_tunnel_consume(hbone_conn *c, int32_t tunnel, size_t n)
{
    hb_tunnel *t = app_tunnel(c, tunnel);
    if (!t)
        return HBONE_ERR_NOT_FOUND;
    if (n > t->unconsumed)
        return HBONE_ERR_INVALID_ARGUMENT;
    int r = hb_h2_consume(c->h2, tunnel, n);
    if (r == 0)
        t->unconsumed -= n;
    return r;
}

int hbone_conn_tunnel_shutdown(hbone_conn *c, int32_t tunnel)
{
    hb_tunnel *t = app_tunnel(c, tunnel);
    if (!t)
        return HBONE_ERR_NOT_FOUND;
    if (c->server && !t->answered)
        return HBONE_ERR_INVALID_STATE;
    if (t->local_shut)
        return 0;
    t->local_shut = 1;
    return t->established ? resume(c, t) : 0;
}

int hbone_conn_tunnel_reset(hbone_conn *c, int32_t tunnel, uint32_t error_code)
{
    if (!app_tunnel(c, tunnel))
        return HBONE_ERR_NOT_FOUND;
    return hb_h2_reset(c->h2, tunnel, error_code);
}

int hbone_conn_tunnel_set_user_data(hbone_conn *c, int32_t tunnel, void *user_data)
{
    hb_tunnel *t = app_tunnel(c, tunnel);
    if (!t)
        return HBONE_ERR_NOT_FOUND;
    t->user_data = user_data;
    return 0;
}

void *hbone_conn_tunnel_get_user_data(const hbone_conn *c, int32_t tunnel)
{
    /* Still answered during the close event: that is where it is freed. */
    hb_tunnel *t = c ? find_tunnel(c, tunnel) : NULL;
    return t && t->visible ? t->user_data : NULL;
}
