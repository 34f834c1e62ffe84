/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: a client connection (lib/conn/conn.c, lib/conn/tunnel.c,
 * lib/h2/h2.c) that opens tunnels and is fed a raw "server" byte stream:
 * SETTINGS, response HEADERS (1xx, 200, refusals, trailers), DATA,
 * RST_STREAM, GOAWAY, PING. Plaintext mode (hb_conn_new_plaintext, test
 * builds only) lets the fuzzer speak HTTP/2 to it directly.
 *
 * Input: 8 control bytes, then the server's bytes.
 *   [0] config (conn_fixture.c cf_configure; bit 7: prepend an empty
 *       SETTINGS frame, the server preface)
 *   [1] bits 0-1: tunnels opened before any input (1-4); bits 2-4: how many
 *       more may be opened while the stream runs
 *   [2] application behaviour: bit 0 write before the response, bit 1
 *       consume in the data callback (else later, in parts), bit 2 shut
 *       down after a 200, bit 3 reset tunnels now and then, bit 4 drain
 *       once, bit 5 delete the connection at a random step, bit 6 write
 *       on a 200, bit 7 shut down on the peer's end
 *   [3,4] seed for chunk sizes, partial output consumes and step choices
 *   [5] clock step (ms, up to 16 x this per step)
 *   [6] largest input chunk (1 + 16 x this)
 *   [7] authorities: which of a fixed list each open uses
 *
 * Invariants, besides no crash and no leak (counting allocator):
 *  - the event invariants of conn_fixture.h (events only for known, open
 *    tunnels, ends at most once, closes exactly once once the transport has
 *    ended, nothing after the connection reported closed, a fatal error
 *    comes with a detail);
 *  - each tunnel gets at most one response event, with a final status
 *    (200-599: informational 1xx responses are never surfaced, and
 *    nothing outside RFC 9110's range passes for a status), before any
 *    data or end; data arrives only on a tunnel answered 200;
 *  - opening with a malformed authority fails with HBONE_ERR_AUTHORITY and
 *    opens nothing;
 *  - output stays within a bound linear in the input, the data written and
 *    the timers run; hbone_conn_del at any step is clean.
 */
#include <stdlib.h>
#include <string.h>

#include <hbone/hbone.h>

#include "conn_fixture.h"
#include "fuzz_common.h"

#define CONTROL_BYTES 8

static const uint8_t empty_settings[9] = {0, 0, 0, 4, 0, 0, 0, 0, 0};

static const struct {
    const char *text;
    int valid;
} authorities[8] = {
    {"10.0.0.1:80", 1}, {"[fd00::7]:15008", 1}, {"svc.ns.svc:8080", 1}, {"255.255.255.255:1", 1},
    {"10.0.0.1", 0},    {"[::1]:0", 0},         {"10.0.0.1:99999", 0},  {"", 0},
};

struct client {
    cf_side side;
    cf_rng rng;
    uint8_t behaviour;
    uint64_t written;
};

static void write_some(struct client *c, cf_tunnel *t, size_t len)
{
    uint8_t buf[4096];
    if (len > sizeof(buf))
        len = sizeof(buf);
    for (size_t i = 0; i < len; i++)
        buf[i] = cf_pattern(t->id, 0, t->written + i);
    size_t accepted = 0;
    int r = hbone_conn_tunnel_write(c->side.conn, t->id, buf, len, &accepted);
    FUZZ_CHECK(r == 0 || r == HBONE_ERR_AGAIN || r == HBONE_ERR_INVALID_STATE ||
               r == HBONE_ERR_NOMEM);
    FUZZ_CHECK(accepted <= len && (r == 0 || accepted == 0));
    /* Refused tunnels take nothing more. */
    if (t->responses && t->status != 200)
        FUZZ_CHECK(r == HBONE_ERR_INVALID_STATE);
    t->written += accepted;
    c->written += accepted;
}

static void open_tunnel(struct client *c, uint8_t which)
{
    const char *a = authorities[which % 8].text;
    int32_t id = -1;
    const char *names[] = {"forwarded"}, *values[] = {"for=\"10.1.2.3\""};
    size_t name_lens[] = {9}, value_lens[] = {15};
    int r = hbone_conn_tunnel_open(c->side.conn, a, strlen(a), names, name_lens, values, value_lens,
                                   which & 8 ? 1 : 0, &id);
    if (!authorities[which % 8].valid) {
        /* A closing connection refuses before it looks at the authority. */
        FUZZ_CHECK((r == HBONE_ERR_AUTHORITY || r == HBONE_ERR_INVALID_STATE) && id == 0);
        return;
    }
    /* Closing or closed refuses; a stream id space used up refuses too. */
    FUZZ_CHECK(r == 0 || r == HBONE_ERR_INVALID_STATE || r == HBONE_ERR_NOMEM);
    if (r < 0) {
        FUZZ_CHECK(id == 0);
        return;
    }
    cf_tunnel *t = cf_learn(&c->side, id);
    if (c->behaviour & 0x01)
        write_some(c, t, 1 + cf_rng_below(&c->rng, 2000));
}

static void on_handshake(hbone_conn *conn, void *user)
{
    struct client *c = user;
    FUZZ_CHECK(conn == c->side.conn);
    FUZZ_CHECK(hbone_conn_peer_id(conn) == NULL);
}

static void on_response(hbone_conn *conn, int32_t id, int status, void *user)
{
    struct client *c = user;
    cf_tunnel *t = cf_event(&c->side, id);
    FUZZ_CHECK(t->responses == 0 && t->ends == 0 && t->received == 0);
    FUZZ_CHECK(status >= 200 && status <= 599); /* final, and a real status */
    t->responses++;
    t->status = status;
    if (status != 200)
        return;
    if (c->behaviour & 0x40)
        write_some(c, t, 1 + cf_rng_below(&c->rng, 3000));
    if (c->behaviour & 0x04) {
        int r = hbone_conn_tunnel_shutdown(conn, id);
        FUZZ_CHECK(r == 0 || r == HBONE_ERR_NOMEM);
        t->shut = 1;
    }
}

static void on_data(hbone_conn *conn, int32_t id, const uint8_t *data, size_t len, void *user)
{
    (void)data;
    struct client *c = user;
    cf_tunnel *t = cf_on_data(&c->side, id, len);
    /* Only an established tunnel carries bytes: a refusal's body is not
     * tunnel data. */
    FUZZ_CHECK(t->responses == 1 && t->status == 200);
    if (c->behaviour & 0x02) {
        int r = hbone_conn_tunnel_consume(conn, id, len);
        FUZZ_CHECK(r == 0 || r == HBONE_ERR_NOMEM);
        if (r == 0)
            t->unconsumed -= len;
    }
}

static void on_end(hbone_conn *conn, int32_t id, void *user)
{
    struct client *c = user;
    cf_tunnel *t = cf_on_end(&c->side, id);
    FUZZ_CHECK(t->responses == 1 && t->status == 200); /* a refusal has no end of its own */
    if ((c->behaviour & 0x80) && !t->shut) {
        int r = hbone_conn_tunnel_shutdown(conn, id);
        FUZZ_CHECK(r == 0 || r == HBONE_ERR_NOMEM);
        t->shut = 1;
    }
}

static void on_writable(hbone_conn *conn, int32_t id, void *user)
{
    (void)conn;
    struct client *c = user;
    cf_event(&c->side, id);
}

static void on_close(hbone_conn *conn, int32_t id, uint32_t reason, void *user)
{
    (void)conn;
    struct client *c = user;
    cf_on_close(&c->side, id, reason);
}

static void app_step(struct client *c, uint32_t *more_opens, uint8_t *which)
{
    if (*more_opens && cf_rng_below(&c->rng, 8) == 0) {
        (*more_opens)--;
        open_tunnel(c, (*which)++);
        return;
    }
    cf_tunnel *t = cf_pick_open(&c->side, cf_rng_next(&c->rng));
    if (!t)
        return;
    switch (cf_rng_below(&c->rng, 5)) {
    case 0: {
        uint64_t n = t->unconsumed ? 1 + cf_rng_below(&c->rng, (uint32_t)t->unconsumed) : 0;
        int r = hbone_conn_tunnel_consume(c->side.conn, t->id, (size_t)n);
        FUZZ_CHECK(r == 0 || r == HBONE_ERR_NOMEM);
        if (r == 0)
            t->unconsumed -= n;
        break;
    }
    case 1:
        if (!t->shut && (!t->responses || t->status == 200))
            write_some(c, t, 1 + cf_rng_below(&c->rng, 4096));
        break;
    case 2:
        if (!t->shut) {
            int r = hbone_conn_tunnel_shutdown(c->side.conn, t->id);
            FUZZ_CHECK(r == 0 || r == HBONE_ERR_NOMEM);
            t->shut = 1;
        }
        break;
    case 3:
        if (c->behaviour & 0x08) {
            int r = hbone_conn_tunnel_reset(c->side.conn, t->id, cf_rng_below(&c->rng, 14));
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
    uint8_t opens = cf_byte(&ctl);
    struct client c;
    memset(&c, 0, sizeof(c));
    c.behaviour = cf_byte(&ctl);
    cf_rng_seed(&c.rng, cf_u16(&ctl));
    uint32_t clock_step = 16u * cf_byte(&ctl);
    uint32_t max_chunk = 1 + 16u * cf_byte(&ctl);
    uint8_t which = cf_byte(&ctl);
    /* A valid server preface lets the fuzzer spend its bytes on the rest. */
    size_t skip = (flags & 0x80) ? sizeof(empty_settings) : 0;
    size_t stream_len = skip + size - CONTROL_BYTES;
    uint8_t *stream = malloc(stream_len);
    FUZZ_CHECK(stream != NULL);
    memcpy(stream, empty_settings, skip);
    memcpy(stream + skip, data + CONTROL_BYTES, size - CONTROL_BYTES);

    fuzz_mem_begin();
    hbone_config *cfg = NULL;
    FUZZ_CHECK(hbone_config_new(&cfg, fuzz_mem()) == 0);
    cf_configure(cfg, flags & 0x3f);
    hbone_callbacks *cbs = NULL;
    FUZZ_CHECK(hbone_callbacks_new(&cbs) == 0);
    hbone_callbacks_set_handshake(cbs, on_handshake);
    hbone_callbacks_set_tunnel_response(cbs, on_response);
    hbone_callbacks_set_tunnel_data(cbs, on_data);
    hbone_callbacks_set_tunnel_end(cbs, on_end);
    hbone_callbacks_set_tunnel_writable(cbs, on_writable);
    hbone_callbacks_set_tunnel_close(cbs, on_close);
    uint64_t now = 1000;
    FUZZ_CHECK(hb_conn_new_plaintext(&c.side.conn, cfg, cbs, &c, 0, now) == 0);
    hbone_callbacks_del(cbs);
    hbone_config_del(cfg);
    hbone_conn *conn = c.side.conn;

    for (int i = 0; i <= (opens & 3); i++)
        open_tunnel(&c, which++);
    uint32_t more_opens = (opens >> 2) & 7;

    uint64_t in_total = 0, out_total = 0, expiries = 0;
    size_t off = 0;
    uint32_t del_at = (c.behaviour & 0x20) ? cf_rng_below(&c.rng, 64) : UINT32_MAX;
    uint32_t drain_at = (c.behaviour & 0x10) ? cf_rng_below(&c.rng, 64) : UINT32_MAX;
    int deleted = 0;
    size_t max_steps = 2 * stream_len + 256;
    for (size_t step = 0; step < max_steps; step++) {
        if (step == del_at) {
            hbone_conn_del(conn);
            deleted = 1;
            break;
        }
        /* Output first: the client speaks first (preface, SETTINGS,
         * CONNECTs), as a real server would see it. */
        size_t len = 0;
        const uint8_t *out = hbone_conn_output(conn, &len, now);
        FUZZ_CHECK((out == NULL) == (len == 0));
        if (len) {
            size_t take = cf_rng_below(&c.rng, 4) ? len : cf_rng_below(&c.rng, (uint32_t)len + 1);
            hbone_conn_output_consume(conn, take);
            out_total += take;
        }
        if (!c.side.fatal && off < stream_len) {
            size_t n = 1 + cf_rng_below(&c.rng, max_chunk);
            if (n > stream_len - off)
                n = stream_len - off;
            size_t consumed = 0;
            int r = hbone_conn_input(conn, stream + off, n, &consumed, now);
            FUZZ_CHECK(consumed <= n);
            cf_check_result(&c.side, r);
            off += consumed;
            in_total += consumed;
        }
        if (step == drain_at) {
            int r = hbone_conn_drain(conn, now, 200);
            FUZZ_CHECK(r == 0 || r == HBONE_ERR_INVALID_STATE || r == HBONE_ERR_NOMEM);
        }
        app_step(&c, &more_opens, &which);
        now += cf_rng_below(&c.rng, clock_step + 1);
        if (hbone_conn_get_expiry(conn) <= now) {
            expiries++;
            cf_check_result(&c.side, hbone_conn_handle_expiry(conn, now));
        }
        if (cf_poll_closed(&c.side))
            break;
        if ((off >= stream_len || c.side.fatal) && len == 0)
            break;
    }
    if (!deleted) {
        for (int i = 0; i < 64; i++) {
            size_t len = 0;
            (void)hbone_conn_output(conn, &len, now);
            if (!len)
                break;
            hbone_conn_output_consume(conn, len);
            out_total += len;
        }
        /* The CONNECTs themselves are a few hundred bytes each. */
        FUZZ_CHECK(out_total <= 65536 + 16 * in_total + 16 * c.written + 64 * expiries +
                                    1024 * c.side.n_tunnels);
        cf_poll_closed(&c.side);
        cf_finish(&c.side);
        hbone_conn_del(conn);
    }
    cf_side_free(&c.side);
    free(stream);
    fuzz_mem_end();
    return 0;
}
