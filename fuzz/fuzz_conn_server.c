/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: a server connection (lib/conn/conn.c, lib/conn/tunnel.c,
 * lib/h2/h2.c) fed a raw client byte stream: HTTP/2 preface, frames,
 * CONNECT requests. It runs in plaintext mode (hb_conn_new_plaintext, test
 * builds only), so the fuzzer reaches the HTTP/2 and CONNECT logic directly,
 * which real TLS would block.
 *
 * Input: 7 control bytes, then the client's bytes.
 *   [0] config (conn_fixture.c cf_configure; bit 7: prepend the preface)
 *   [1] how tunnel requests are answered: bits 0-2 accept now (0-3), reject
 *       now (4), leave pending to answer later (5), per tunnel at random
 *       (6, 7); bits 3-7 the rejection status (400 + 3 * n)
 *   [2] application behaviour: bit 0 write on accept, bit 1 consume in the
 *       data callback (else later, in parts), bit 2 shut down on the peer's
 *       end, bit 3 reset tunnels now and then, bit 4 drain once, bit 5
 *       delete the connection at a random step, bit 6 accept with a header,
 *       bit 7 echo data back
 *   [3,4] seed for chunk sizes, partial output consumes and step choices
 *   [5] clock step (ms, up to 16 x this per step)
 *   [6] largest input chunk (1 + 16 x this)
 * It is driven as an event loop drives it: input in chunks, output taken in
 * part, timers run on a virtual clock.
 *
 * Invariants, besides no crash and no leak (counting allocator):
 *  - the event invariants of conn_fixture.h (events only for known, open
 *    tunnels, ends at most once, closes exactly once once the transport has
 *    ended, nothing after the connection reported closed, a fatal error
 *    comes with a detail);
 *  - a request event names a valid authority (host and port as parsed);
 *  - input is taken only from what was offered, output stays within a
 *    bound linear in the input, the data written and the timers run;
 *  - hbone_conn_del at any step is clean.
 */
#include <stdlib.h>
#include <string.h>

#include <hbone/hbone.h>

#include "conn_fixture.h"
#include "fuzz_common.h"

#define CONTROL_BYTES 7

static const uint8_t preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

struct server {
    cf_side side;
    cf_rng rng;
    uint8_t answer, behaviour;
    uint64_t written; /* all tunnels: what the application queued */
};

static void write_some(struct server *s, cf_tunnel *t, size_t len)
{
    uint8_t buf[4096];
    if (len > sizeof(buf))
        len = sizeof(buf);
    for (size_t i = 0; i < len; i++)
        buf[i] = cf_pattern(t->id, 1, t->written + i);
    size_t accepted = 0;
    int r = hbone_conn_tunnel_write(s->side.conn, t->id, buf, len, &accepted);
    FUZZ_CHECK(r == 0 || r == HBONE_ERR_AGAIN || r == HBONE_ERR_INVALID_STATE ||
               r == HBONE_ERR_NOMEM);
    FUZZ_CHECK(accepted <= len && (r == 0 || accepted == 0));
    t->written += accepted;
    s->written += accepted;
}

static void answer(struct server *s, cf_tunnel *t, int how)
{
    int r;
    if (how == 4) {
        r = hbone_conn_tunnel_reject(s->side.conn, t->id, 400 + 3 * (s->answer >> 3));
    } else if (s->behaviour & 0x40) {
        const char *names[] = {"baggage"}, *values[] = {"k8s.cluster.name=fuzz"};
        size_t name_lens[] = {7}, value_lens[] = {21};
        r = hbone_conn_tunnel_accept(s->side.conn, t->id, names, name_lens, values, value_lens, 1);
    } else {
        r = hbone_conn_tunnel_accept(s->side.conn, t->id, NULL, NULL, NULL, NULL, 0);
    }
    FUZZ_CHECK(r == 0 || r == HBONE_ERR_NOMEM);
    if (r < 0)
        return;
    t->answered = 1;
    t->accepted = how != 4;
    if (t->accepted && (s->behaviour & 0x01))
        write_some(s, t, 1 + cf_rng_below(&s->rng, 3000));
}

static void on_handshake(hbone_conn *conn, void *user)
{
    struct server *s = user;
    FUZZ_CHECK(conn == s->side.conn);
    FUZZ_CHECK(hbone_conn_peer_id(conn) == NULL); /* plaintext: no identity */
}

static void on_request(hbone_conn *conn, int32_t id, const char *host, size_t host_len,
                       uint16_t port, int kind, void *user)
{
    struct server *s = user;
    cf_tunnel *t = cf_learn(&s->side, id);
    FUZZ_CHECK(host != NULL && host_len > 0 && port != 0);
    FUZZ_CHECK(kind == HBONE_AUTHORITY_IPV4 || kind == HBONE_AUTHORITY_IPV6 ||
               kind == HBONE_AUTHORITY_HOSTNAME);
    /* Headers of a pending request can be read, and end with NOT_FOUND. */
    size_t n = 0;
    const char *name;
    size_t name_len;
    while (hbone_conn_tunnel_header(conn, id, n, &name, &name_len, NULL, NULL) == 0) {
        FUZZ_CHECK(name_len > 0 && name[0] != ':');
        n++;
    }
    int how = s->answer & 7;
    if (how >= 6)
        how = (int)cf_rng_below(&s->rng, 6);
    if (how <= 4)
        answer(s, t, how < 4 ? 0 : 4);
}

static void on_data(hbone_conn *conn, int32_t id, const uint8_t *data, size_t len, void *user)
{
    struct server *s = user;
    cf_tunnel *t = cf_on_data(&s->side, id, len);
    /* Data may come before the answer (RFC 9113 8.5: everything after the
     * request's HEADERS is tunnel data), but never after a refusal. */
    FUZZ_CHECK(!t->answered || t->accepted);
    if (s->behaviour & 0x80) {
        size_t accepted = 0;
        int r = hbone_conn_tunnel_write(conn, id, data, len, &accepted);
        FUZZ_CHECK(r == 0 || r == HBONE_ERR_AGAIN || r == HBONE_ERR_INVALID_STATE ||
                   r == HBONE_ERR_NOMEM);
        t->written += accepted;
        s->written += accepted;
    }
    if (s->behaviour & 0x02) {
        int r = hbone_conn_tunnel_consume(conn, id, len);
        FUZZ_CHECK(r == 0 || r == HBONE_ERR_NOMEM);
        if (r == 0)
            t->unconsumed -= len;
    }
}

static void on_end(hbone_conn *conn, int32_t id, void *user)
{
    struct server *s = user;
    cf_tunnel *t = cf_on_end(&s->side, id);
    FUZZ_CHECK(!t->answered || t->accepted);
    if ((s->behaviour & 0x04) && t->answered) { /* before the answer, it is refused */
        int r = hbone_conn_tunnel_shutdown(conn, id);
        FUZZ_CHECK(r == 0 || r == HBONE_ERR_NOMEM);
        t->shut = 1;
    }
}

static void on_writable(hbone_conn *conn, int32_t id, void *user)
{
    (void)conn;
    struct server *s = user;
    cf_event(&s->side, id);
}

static void on_close(hbone_conn *conn, int32_t id, uint32_t reason, void *user)
{
    (void)conn;
    struct server *s = user;
    cf_on_close(&s->side, id, reason);
}

/* The application's own moves between input chunks. */
static void app_step(struct server *s)
{
    cf_tunnel *t = cf_pick_open(&s->side, cf_rng_next(&s->rng));
    if (!t)
        return;
    switch (cf_rng_below(&s->rng, 6)) {
    case 0: /* answer a pending request */
        if (!t->answered)
            answer(s, t, cf_rng_below(&s->rng, 2) ? 0 : 4);
        break;
    case 1: { /* consume part of what arrived */
        uint64_t n = t->unconsumed ? 1 + cf_rng_below(&s->rng, (uint32_t)t->unconsumed) : 0;
        int r = hbone_conn_tunnel_consume(s->side.conn, t->id, (size_t)n);
        FUZZ_CHECK(r == 0 || r == HBONE_ERR_NOMEM);
        if (r == 0)
            t->unconsumed -= n;
        /* More than delivered is refused. */
        FUZZ_CHECK(hbone_conn_tunnel_consume(s->side.conn, t->id, t->unconsumed + 1) ==
                   HBONE_ERR_INVALID_ARGUMENT);
        break;
    }
    case 2:
        if (t->accepted && !t->shut && (s->behaviour & 0x01))
            write_some(s, t, 1 + cf_rng_below(&s->rng, 4096));
        break;
    case 3:
        if (t->answered && !t->shut) {
            int r = hbone_conn_tunnel_shutdown(s->side.conn, t->id);
            FUZZ_CHECK(r == 0 || r == HBONE_ERR_NOMEM);
            t->shut = 1;
        }
        break;
    case 4:
        if (s->behaviour & 0x08) {
            int r = hbone_conn_tunnel_reset(s->side.conn, t->id, cf_rng_below(&s->rng, 14));
            FUZZ_CHECK(r == 0 || r == HBONE_ERR_NOMEM || r == HBONE_ERR_INVALID_STATE);
        }
        break;
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < CONTROL_BYTES)
        return 0;
    cf_cursor ctl = {data, CONTROL_BYTES, 0};
    uint8_t flags = cf_byte(&ctl);
    struct server s;
    memset(&s, 0, sizeof(s));
    s.answer = cf_byte(&ctl);
    s.behaviour = cf_byte(&ctl);
    cf_rng_seed(&s.rng, cf_u16(&ctl));
    uint32_t clock_step = 16u * cf_byte(&ctl);
    uint32_t max_chunk = 1 + 16u * cf_byte(&ctl);
    /* The preface is the one thing a fuzzer finds slowly on its own. */
    size_t skip = (flags & 0x80) ? sizeof(preface) - 1 : 0;
    size_t stream_len = skip + size - CONTROL_BYTES;
    uint8_t *stream = malloc(stream_len);
    FUZZ_CHECK(stream != NULL);
    memcpy(stream, preface, skip);
    memcpy(stream + skip, data + CONTROL_BYTES, size - CONTROL_BYTES);

    fuzz_mem_begin();
    hbone_config *cfg = NULL;
    FUZZ_CHECK(hbone_config_new(&cfg, fuzz_mem()) == 0);
    cf_configure(cfg, flags);
    hbone_callbacks *cbs = NULL;
    FUZZ_CHECK(hbone_callbacks_new(&cbs) == 0);
    hbone_callbacks_set_handshake(cbs, on_handshake);
    hbone_callbacks_set_tunnel_request(cbs, on_request);
    hbone_callbacks_set_tunnel_data(cbs, on_data);
    hbone_callbacks_set_tunnel_end(cbs, on_end);
    hbone_callbacks_set_tunnel_writable(cbs, on_writable);
    hbone_callbacks_set_tunnel_close(cbs, on_close);
    uint64_t now = 1000;
    s.side.server = 1;
    FUZZ_CHECK(hb_conn_new_plaintext(&s.side.conn, cfg, cbs, &s, 1, now) == 0);
    hbone_callbacks_del(cbs);
    hbone_config_del(cfg);
    hbone_conn *conn = s.side.conn;

    uint64_t in_total = 0, out_total = 0, expiries = 0;
    size_t off = 0;
    uint32_t del_at = (s.behaviour & 0x20) ? cf_rng_below(&s.rng, 64) : UINT32_MAX;
    uint32_t drain_at = (s.behaviour & 0x10) ? cf_rng_below(&s.rng, 64) : UINT32_MAX;
    int deleted = 0;
    /* Enough steps to offer every byte one at a time, and to flush. */
    size_t max_steps = 2 * stream_len + 256;
    for (size_t step = 0; step < max_steps; step++) {
        if (step == del_at) {
            hbone_conn_del(conn); /* at any point, with whatever is open */
            deleted = 1;
            break;
        }
        if (!s.side.fatal && off < stream_len) {
            size_t n = 1 + cf_rng_below(&s.rng, max_chunk);
            if (n > stream_len - off)
                n = stream_len - off;
            size_t consumed = 0;
            int r = hbone_conn_input(conn, stream + off, n, &consumed, now);
            FUZZ_CHECK(consumed <= n);
            cf_check_result(&s.side, r);
            off += consumed;
            in_total += consumed;
        }
        /* Take some or all of the output, as a socket would. */
        size_t len = 0;
        const uint8_t *out = hbone_conn_output(conn, &len, now);
        FUZZ_CHECK((out == NULL) == (len == 0));
        if (len) {
            size_t take = cf_rng_below(&s.rng, 4) ? len : cf_rng_below(&s.rng, (uint32_t)len + 1);
            hbone_conn_output_consume(conn, take);
            out_total += take;
        }
        if (step == drain_at) {
            int r = hbone_conn_drain(conn, now, 200);
            FUZZ_CHECK(r == 0 || r == HBONE_ERR_INVALID_STATE || r == HBONE_ERR_NOMEM);
        }
        app_step(&s);
        now += cf_rng_below(&s.rng, clock_step + 1);
        if (hbone_conn_get_expiry(conn) <= now) {
            expiries++;
            cf_check_result(&s.side, hbone_conn_handle_expiry(conn, now));
        }
        if (cf_poll_closed(&s.side))
            break;
        if ((off >= stream_len || s.side.fatal) && len == 0)
            break;
    }
    if (!deleted) {
        /* Everything still to send, then the peer goes away. */
        for (int i = 0; i < 64; i++) {
            size_t len = 0;
            (void)hbone_conn_output(conn, &len, now);
            if (!len)
                break;
            hbone_conn_output_consume(conn, len);
            out_total += len;
        }
        /* Output answers input, the application's writes (at worst a 9-byte
         * header per payload byte, under a 1-byte window) and timers;
         * anything beyond means the peer can make us amplify. */
        FUZZ_CHECK(out_total <= 65536 + 16 * in_total + 16 * s.written + 64 * expiries);
        cf_poll_closed(&s.side);
        cf_finish(&s.side);
        hbone_conn_del(conn);
    }
    cf_side_free(&s.side);
    free(stream);
    fuzz_mem_end();
    return 0;
}
