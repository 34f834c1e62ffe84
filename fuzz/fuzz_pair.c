/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: a plaintext client and server connection (lib/conn/conn.c,
 * lib/conn/tunnel.c, lib/h2/h2.c over hb_conn_new_plaintext, test builds
 * only) wired together in memory, run by a program the input spells out, in
 * ngtcp2's style: the fuzzer chooses what the applications do, how the
 * transport cuts the byte streams, what callbacks do, and which allocation
 * fails.
 *
 * Input: 1 config byte (conn_fixture.c cf_configure), 2 seed bytes, then
 * operations of one byte plus arguments:
 *   open a tunnel (authority), write n bytes on a tunnel (either side),
 *   consume, shut down (half-close), reset, pump the transport (chunk sizes
 *   per direction), move one chunk one way, advance the clock, make a
 *   side's callbacks misbehave (reset from the data, end or response
 *   callback, reject requests, leave them pending), answer pending
 *   requests, fail the n-th allocation from now, drain, end a side's input.
 * Then everything is answered, consumed, shut down and pumped until quiet.
 *
 * Invariants, besides no crash and no leak (counting allocator):
 *  - the event invariants of conn_fixture.h on both sides;
 *  - whatever arrives on a tunnel is, in order, a prefix of what the other
 *    side wrote on it (every byte is checked against the writer's pattern);
 *  - when nothing disruptive was scripted (no allocation failure, reset,
 *    rejection, misbehaving callback, drain, end of input, clock jump
 *    with timers on, or a tiny flood budget): neither side fails; every
 *    tunnel the client opened is accepted with 200 (or refused with
 *    REFUSED_STREAM before the server's SETTINGS arrived); every byte
 *    written arrives, each side sees the other's end, and both close the
 *    tunnel cleanly (reason 0);
 *  - with failures injected, every call fails with a documented code and
 *    ending the input of both sides closes every tunnel exactly once.
 */
#include <stdlib.h>
#include <string.h>

#include <hbone/hbone.h>

#include "conn_fixture.h"
#include "fuzz_common.h"

#define MAX_OPS 512
#define MAX_PUMP_ROUNDS 4096

/* A side's callbacks misbehaving, as set by the program. */
#define MIS_RESET_ON_DATA 0x01
#define MIS_REJECT 0x02 /* server: refuse requests */
#define MIS_RESET_ON_END 0x04
#define MIS_PENDING 0x08 /* server: leave requests for later */
#define MIS_RESET_ON_RESPONSE 0x10
#define MIS_SHUT_ON_WRITABLE 0x20

static const char *const authorities[4] = {"10.0.0.1:80", "[fd00::1]:15008", "svc.ns:8080",
                                           "127.0.0.1:15001"};

struct pside {
    cf_side side;
    int dir; /* the direction this side writes: 0 client, 1 server */
    uint8_t mischief;
    int consume_in_callback;
    struct pair *pair;
};

struct pair {
    struct pside c, s;
    cf_rng rng;
    uint64_t now;
    int disrupted; /* something was scripted that may legitimately cut data */
    int timers;    /* keepalive, idle and stall timeouts configured */
    /* Bytes in flight: [0] to the server, [1] to the client. */
    uint8_t *q[2];
    size_t qlen[2], qcap[2];
    uint32_t chunk[2]; /* largest piece moved at once, per direction */
};

static int ok_or(int r, int a, int b)
{
    return r == 0 || r == HBONE_ERR_NOMEM || r == a || r == b;
}

static void reset(struct pside *ps, int32_t id)
{
    int r = hbone_conn_tunnel_reset(ps->side.conn, id, 0x8 /* CANCEL */);
    FUZZ_CHECK(ok_or(r, HBONE_ERR_INVALID_STATE, HBONE_ERR_NOT_FOUND));
}

static void on_request(hbone_conn *conn, int32_t id, const char *host, size_t host_len,
                       uint16_t port, int kind, void *user)
{
    (void)host;
    (void)host_len;
    (void)port;
    (void)kind;
    struct pside *ps = user;
    cf_tunnel *t = cf_learn(&ps->side, id);
    /* Only what the client opened arrives (a failed open may still leak a
     * HEADERS frame out, so only when nothing was disrupted). */
    FUZZ_CHECK(ps->pair->disrupted || cf_find(&ps->pair->c.side, id));
    if (ps->mischief & MIS_PENDING)
        return;
    int r = (ps->mischief & MIS_REJECT)
                ? hbone_conn_tunnel_reject(conn, id, 503)
                : hbone_conn_tunnel_accept(conn, id, NULL, NULL, NULL, NULL, 0);
    FUZZ_CHECK(ok_or(r, 0, 0));
    if (r == 0) {
        t->answered = 1;
        t->accepted = !(ps->mischief & MIS_REJECT);
    }
}

static void on_response(hbone_conn *conn, int32_t id, int status, void *user)
{
    struct pside *ps = user;
    cf_tunnel *t = cf_event(&ps->side, id);
    FUZZ_CHECK(t->responses == 0);
    FUZZ_CHECK(status == 200 || status == 403 || status == 503); /* what the server sends */
    t->responses = 1;
    t->status = status;
    if (ps->mischief & MIS_RESET_ON_RESPONSE)
        reset(ps, id);
    (void)conn;
}

static void on_data(hbone_conn *conn, int32_t id, const uint8_t *data, size_t len, void *user)
{
    struct pside *ps = user;
    cf_tunnel *t = cf_on_data(&ps->side, id, len);
    uint64_t base = t->received - len;
    for (size_t i = 0; i < len; i++)
        FUZZ_CHECK(data[i] == cf_pattern(id, 1 - ps->dir, base + i));
    if (ps->consume_in_callback) {
        int r = hbone_conn_tunnel_consume(conn, id, len);
        FUZZ_CHECK(ok_or(r, 0, 0));
        if (r == 0)
            t->unconsumed -= len;
    }
    if (ps->mischief & MIS_RESET_ON_DATA)
        reset(ps, id);
}

static void on_end(hbone_conn *conn, int32_t id, void *user)
{
    (void)conn;
    struct pside *ps = user;
    cf_on_end(&ps->side, id);
    if (ps->mischief & MIS_RESET_ON_END)
        reset(ps, id);
}

static void on_writable(hbone_conn *conn, int32_t id, void *user)
{
    struct pside *ps = user;
    cf_tunnel *t = cf_event(&ps->side, id);
    if ((ps->mischief & MIS_SHUT_ON_WRITABLE) && !t->shut) {
        FUZZ_CHECK(ok_or(hbone_conn_tunnel_shutdown(conn, id), 0, 0));
        t->shut = 1;
    }
}

static void on_close(hbone_conn *conn, int32_t id, uint32_t reason, void *user)
{
    (void)conn;
    cf_on_close(&((struct pside *)user)->side, id, reason);
}

/* --- the transport ------------------------------------------------------ */

static void queue_append(struct pair *p, int dir, const uint8_t *data, size_t len)
{
    if (p->qcap[dir] - p->qlen[dir] < len) {
        size_t cap = p->qcap[dir] ? p->qcap[dir] : 4096;
        while (cap - p->qlen[dir] < len)
            cap *= 2;
        uint8_t *grown = realloc(p->q[dir], cap);
        FUZZ_CHECK(grown != NULL);
        p->q[dir] = grown;
        p->qcap[dir] = cap;
    }
    memcpy(p->q[dir] + p->qlen[dir], data, len);
    p->qlen[dir] += len;
}

/* One piece each way of @p dir (0: client to server): some of the sender's
 * output into the pipe, some of the pipe into the receiver. Returns 1 if
 * anything moved. */
static int move(struct pair *p, int dir)
{
    struct pside *from = dir ? &p->s : &p->c, *to = dir ? &p->c : &p->s;
    int moved = 0;
    size_t len = 0;
    const uint8_t *out = hbone_conn_output(from->side.conn, &len, p->now);
    FUZZ_CHECK((out == NULL) == (len == 0));
    if (len) {
        size_t n = 1 + cf_rng_below(&p->rng, p->chunk[dir]);
        if (n > len)
            n = len;
        queue_append(p, dir, out, n);
        hbone_conn_output_consume(from->side.conn, n);
        moved = 1;
    }
    if (p->qlen[dir] && !to->side.fatal) {
        size_t n = 1 + cf_rng_below(&p->rng, p->chunk[dir]);
        if (n > p->qlen[dir])
            n = p->qlen[dir];
        size_t consumed = 0;
        int r = hbone_conn_input(to->side.conn, p->q[dir], n, &consumed, p->now);
        FUZZ_CHECK(consumed <= n);
        cf_check_result(&to->side, r);
        memmove(p->q[dir], p->q[dir] + consumed, p->qlen[dir] - consumed);
        p->qlen[dir] -= consumed;
        moved |= consumed > 0;
    }
    if (to->side.fatal)
        p->qlen[dir] = 0; /* the receiver is gone: so is the transport */
    cf_poll_closed(&p->c.side);
    cf_poll_closed(&p->s.side);
    return moved;
}

static void pump(struct pair *p)
{
    for (int i = 0; i < MAX_PUMP_ROUNDS; i++) {
        int moved = move(p, 0);
        moved |= move(p, 1);
        if (!moved)
            return;
    }
}

/* --- the program -------------------------------------------------------- */

static struct pside *side_of(struct pair *p, uint8_t b)
{
    return b & 1 ? &p->s : &p->c;
}

static void write_on(struct pside *ps, cf_tunnel *t, size_t len)
{
    static uint8_t buf[65536];
    if (len > sizeof(buf))
        len = sizeof(buf);
    for (size_t i = 0; i < len; i++)
        buf[i] = cf_pattern(t->id, ps->dir, t->written + i);
    size_t accepted = 0;
    int r = hbone_conn_tunnel_write(ps->side.conn, t->id, buf, len, &accepted);
    FUZZ_CHECK(ok_or(r, HBONE_ERR_AGAIN, HBONE_ERR_INVALID_STATE));
    FUZZ_CHECK(accepted <= len && (r == 0 || accepted == 0));
    t->written += accepted;
}

static void consume_all(struct pside *ps)
{
    for (size_t i = 0; i < ps->side.n_tunnels; i++) {
        cf_tunnel *t = &ps->side.tunnels[i];
        if (t->closes || !t->unconsumed)
            continue;
        int r = hbone_conn_tunnel_consume(ps->side.conn, t->id, (size_t)t->unconsumed);
        FUZZ_CHECK(ok_or(r, 0, 0));
        if (r == 0)
            t->unconsumed = 0;
    }
}

/* Answer what waits and shut down what is open; returns 1 if it did any. */
static int wind_down(struct pside *ps)
{
    int acted = 0;
    for (size_t i = 0; i < ps->side.n_tunnels; i++) {
        cf_tunnel *t = &ps->side.tunnels[i];
        if (t->closes)
            continue;
        if (ps->side.server && !t->answered) {
            int r = hbone_conn_tunnel_accept(ps->side.conn, t->id, NULL, NULL, NULL, NULL, 0);
            FUZZ_CHECK(ok_or(r, 0, 0));
            t->answered = r == 0;
            t->accepted = r == 0;
            acted = 1;
        }
        if (!t->shut && (!ps->side.server || t->answered)) {
            int r = hbone_conn_tunnel_shutdown(ps->side.conn, t->id);
            FUZZ_CHECK(ok_or(r, 0, 0));
            t->shut = r == 0;
            acted = 1;
        }
    }
    return acted;
}

static void run_op(struct pair *p, cf_cursor *in)
{
    uint8_t op = cf_byte(in);
    uint8_t arg = cf_byte(in);
    struct pside *ps = side_of(p, arg);
    cf_tunnel *t = cf_pick_open(&ps->side, arg >> 1);
    switch (op % 16) {
    case 0: { /* open */
        const char *a = authorities[arg & 3];
        int32_t id = 0;
        int r =
            hbone_conn_tunnel_open(p->c.side.conn, a, strlen(a), NULL, NULL, NULL, NULL, 0, &id);
        FUZZ_CHECK(ok_or(r, HBONE_ERR_INVALID_STATE, 0));
        if (r == 0)
            cf_learn(&p->c.side, id);
        break;
    }
    case 1: { /* write */
        uint8_t size = cf_byte(in);
        if (t && !t->shut)
            write_on(ps, t, 1 + (size_t)size * size / 4); /* up to 16 KiB: fast runs */
        break;
    }
    case 2: /* consume */
        if (t && t->unconsumed) {
            size_t n = (size_t)(cf_byte(in) & 1 ? t->unconsumed : (t->unconsumed + 1) / 2);
            int r = hbone_conn_tunnel_consume(ps->side.conn, t->id, n);
            FUZZ_CHECK(ok_or(r, 0, 0));
            if (r == 0)
                t->unconsumed -= n;
        }
        break;
    case 3: /* half-close */
        if (t && !t->shut) {
            int r = hbone_conn_tunnel_shutdown(ps->side.conn, t->id);
            FUZZ_CHECK(ok_or(r, HBONE_ERR_INVALID_STATE, 0));
            t->shut = r == 0;
        }
        break;
    case 4: /* reset */
        if (t) {
            p->disrupted = 1;
            int r = hbone_conn_tunnel_reset(ps->side.conn, t->id, cf_byte(in) % 14);
            FUZZ_CHECK(ok_or(r, HBONE_ERR_INVALID_STATE, 0));
        }
        break;
    case 5: /* pump, with chunk sizes for each direction */
        p->chunk[0] = 1 + (uint32_t)arg * arg;
        p->chunk[1] = 1 + (uint32_t)cf_byte(in) * 64;
        pump(p);
        break;
    case 6:
    case 7: /* one piece one way */
        move(p, arg & 1);
        break;
    case 8: /* time passes */
        p->now += (uint64_t)arg * 16;
        if (p->timers && arg)
            p->disrupted = 1;
        for (int i = 0; i < 2; i++) {
            struct pside *x = i ? &p->s : &p->c;
            if (hbone_conn_get_expiry(x->side.conn) <= p->now)
                cf_check_result(&x->side, hbone_conn_handle_expiry(x->side.conn, p->now));
        }
        break;
    case 9: /* callbacks misbehave */
        ps->mischief = cf_byte(in);
        if (ps->mischief & ~MIS_PENDING)
            p->disrupted = 1;
        break;
    case 10: /* answer what is pending */
        for (size_t i = 0; i < p->s.side.n_tunnels; i++) {
            cf_tunnel *x = &p->s.side.tunnels[i];
            if (x->closes || x->answered)
                continue;
            int r = arg & 1 ? hbone_conn_tunnel_reject(p->s.side.conn, x->id, 403)
                            : hbone_conn_tunnel_accept(p->s.side.conn, x->id, NULL, NULL, NULL,
                                                       NULL, 0);
            FUZZ_CHECK(ok_or(r, 0, 0));
            if (arg & 1)
                p->disrupted = 1;
            x->answered = r == 0;
            x->accepted = r == 0 && !(arg & 1);
        }
        break;
    case 11: /* fail the n-th allocation from now */
        p->disrupted = 1;
        fuzz_mem_fail_nth(1 + (uint64_t)arg * 4 + cf_byte(in) % 4);
        break;
    case 12: { /* drain */
        p->disrupted = 1;
        int r = hbone_conn_drain(ps->side.conn, p->now, 1 + (uint32_t)cf_byte(in) * 8);
        FUZZ_CHECK(ok_or(r, HBONE_ERR_INVALID_STATE, 0));
        break;
    }
    case 13: /* the transport ends under a side */
        p->disrupted = 1;
        FUZZ_CHECK(hbone_conn_input_eof(ps->side.conn) == 0);
        break;
    case 14:
        ps->consume_in_callback = arg & 2;
        break;
    default:
        break;
    }
}

static void init_side(struct pair *p, struct pside *ps, hbone_config *cfg,
                      const hbone_callbacks *cbs, int server)
{
    ps->pair = p;
    ps->dir = server;
    ps->side.server = server;
    int r = hb_conn_new_plaintext(&ps->side.conn, cfg, cbs, ps, server, p->now);
    FUZZ_CHECK(r == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cf_cursor in = {data, size, 0};
    uint8_t flags = cf_byte(&in);
    struct pair p;
    memset(&p, 0, sizeof(p));
    cf_rng_seed(&p.rng, cf_u16(&in));
    p.now = 1000;
    p.timers = (flags & 0x03) != 0;
    /* A 10-frame flood budget is less than ordinary traffic can spend: the
     * REFUSED_STREAMs of the SETTINGS race alone count against it. */
    p.disrupted = (flags & 0x20) != 0;
    p.chunk[0] = p.chunk[1] = 16384;

    fuzz_mem_begin();
    hbone_config *cfg = NULL;
    FUZZ_CHECK(hbone_config_new(&cfg, fuzz_mem()) == 0);
    /* Both roles share one config; hostnames allowed, so every authority
     * in the list is served. */
    cf_configure(cfg, (uint8_t)(flags | 0x40));
    hbone_callbacks *cbs = NULL;
    FUZZ_CHECK(hbone_callbacks_new(&cbs) == 0);
    hbone_callbacks_set_tunnel_request(cbs, on_request);
    hbone_callbacks_set_tunnel_response(cbs, on_response);
    hbone_callbacks_set_tunnel_data(cbs, on_data);
    hbone_callbacks_set_tunnel_end(cbs, on_end);
    hbone_callbacks_set_tunnel_writable(cbs, on_writable);
    hbone_callbacks_set_tunnel_close(cbs, on_close);
    init_side(&p, &p.c, cfg, cbs, 0);
    init_side(&p, &p.s, cfg, cbs, 1);
    hbone_callbacks_del(cbs);
    hbone_config_del(cfg);

    for (int ops = 0; ops < MAX_OPS && in.off < in.len; ops++)
        run_op(&p, &in);

    /* The end of the program: no more injected failures or misbehaviour;
     * answer, consume and shut down everything, until nothing moves. */
    fuzz_mem_fail_nth(0);
    p.c.mischief = p.s.mischief = 0;
    p.c.consume_in_callback = p.s.consume_in_callback = 1;
    p.chunk[0] = p.chunk[1] = 65536;
    for (int round = 0; round < 64; round++) {
        consume_all(&p.c);
        consume_all(&p.s);
        int acted = wind_down(&p.c);
        acted |= wind_down(&p.s);
        int moved = move(&p, 0);
        moved |= move(&p, 1);
        pump(&p);
        if (!acted && !moved)
            break;
    }

    if (!p.disrupted) {
        size_t refused = 0;
        FUZZ_CHECK(!p.c.side.fatal && !p.s.side.fatal);
        for (size_t i = 0; i < p.c.side.n_tunnels; i++) {
            cf_tunnel *ct = &p.c.side.tunnels[i];
            cf_tunnel *st = cf_find(&p.s.side, ct->id);
            if (!st && ct->responses == 0 && ct->reason == 0x7) {
                /* REFUSED_STREAM: opened before the server's SETTINGS said
                 * how many streams it takes (RFC 9113 5.1.2); the server
                 * never processed it, so the application may retry. */
                refused++;
                continue;
            }
            FUZZ_CHECK(st != NULL);
            FUZZ_CHECK(ct->responses == 1 && ct->status == 200);
            FUZZ_CHECK(st->received == ct->written && ct->received == st->written);
            FUZZ_CHECK(ct->ends == 1 && st->ends == 1);
            FUZZ_CHECK(ct->closes == 1 && ct->reason == 0);
            FUZZ_CHECK(st->closes == 1 && st->reason == 0);
        }
        FUZZ_CHECK(p.s.side.n_tunnels + refused == p.c.side.n_tunnels);
    }
    cf_poll_closed(&p.c.side);
    cf_poll_closed(&p.s.side);
    cf_finish(&p.c.side);
    cf_finish(&p.s.side);
    hbone_conn_del(p.c.side.conn);
    hbone_conn_del(p.s.side.conn);
    cf_side_free(&p.c.side);
    cf_side_free(&p.s.side);
    free(p.q[0]);
    free(p.q[1]);
    fuzz_mem_end();
    return 0;
}
