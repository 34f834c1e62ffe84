/* SPDX-License-Identifier: MIT */
/*
 * Rates: how many operations per second a client keeps going with a fixed
 * number of them in flight. An operation is one of
 *  - ROUND_TRIP: a 1-byte echo on a warm channel (the baselines' unit);
 *  - TUNNEL: on a warm HBONE connection, CONNECT -> 200 -> 1-byte echo ->
 *    both ends closed;
 *  - CONNECTION: a new connection (TCP, TLS handshake, or mTLS + HTTP/2)
 *    with its first channel and a 1-byte echo, then closed.
 */
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "client.h"

#define RATE_TIMEOUT_US (120u * 1000000u)

typedef struct slot {
    channel *ch;
    int echoed;
} slot;

static rate_kind mode;
static const bench_target *target;
static slot *slots;
static size_t started, completed, wanted;
static int finished, warming;

static void slot_next(slot *s);

static void count_one(void)
{
    completed++;
    finished = completed >= wanted;
}

static void send_byte(slot *s)
{
    static const uint8_t one = 'x';
    channel_write_all(s->ch, &one, 1);
}

static void on_open(channel *ch, int ok)
{
    slot *s = ch->app;
    if (!ok)
        die("a channel was refused");
    static const uint8_t echo = WORK_ECHO;
    channel_write_all(ch, &echo, 1);
    send_byte(s);
}

static void on_data(channel *ch, const uint8_t *data, size_t len)
{
    (void)data;
    slot *s = ch->app;
    ch->ops->consume(ch, len);
    if (mode == RATE_ROUND_TRIP) {
        count_one();
        if (!warming && started < wanted) {
            started++;
            send_byte(s);
        }
        return;
    }
    s->echoed = 1;
    ch->ops->shutdown(ch); /* the echo ends its side in turn */
}

static void on_end(channel *ch)
{
    (void)ch;
}

static void on_close(channel *ch)
{
    slot *s = ch->app;
    if (!s->echoed)
        die("a channel closed before its echo");
    count_one();
    if (mode == RATE_CONNECTION)
        ch->ops->close_connection(ch);
    s->ch = NULL;
    if (!warming)
        slot_next(s);
}

static void attach(channel *ch, size_t index, void *arg)
{
    (void)index;
    slot *s = arg;
    s->ch = ch;
    s->echoed = 0;
    ch->app = s;
    ch->on_open = on_open;
    ch->on_data = on_data;
    ch->on_end = on_end;
    ch->on_close = on_close;
    ch->on_writable = NULL;
}

static void slot_next(slot *s)
{
    if (started >= wanted)
        return;
    started++;
    int r = mode == RATE_TUNNEL ? hbone_transport_open_more(1, attach, s)
                                : transport_open(target->kind, target->address, 1, 1, attach, s);
    if (r < 0)
        die("could not open a channel to %s", target->address);
}

double run_rate(const bench_target *t, rate_kind kind, size_t in_flight, size_t operations)
{
    mode = kind;
    target = t;
    free(slots);
    slots = calloc(in_flight, sizeof(*slots));
    if (!slots)
        die("out of memory");
    started = completed = 0;
    wanted = operations;
    finished = 0;
    if (kind != RATE_CONNECTION) {
        /* Warm channels (round trips) or a warm connection (tunnels): each
         * warm-up is one echo, not counted. */
        size_t warm = kind == RATE_ROUND_TRIP ? in_flight : 1;
        warming = 1;
        wanted = warm;
        for (size_t i = 0; i < warm; i++) {
            if (transport_open(t->kind, t->address, 1, 1, attach, &slots[i]) < 0)
                die("could not connect to %s", t->address);
        }
        if (loop_run_until(&finished, now_us() + RATE_TIMEOUT_US) < 0)
            die("the warm-up did not finish");
        warming = 0;
        completed = 0;
        wanted = operations;
        finished = 0;
    }
    uint64_t t0 = now_us();
    for (size_t i = 0; i < in_flight; i++) {
        if (kind == RATE_ROUND_TRIP) {
            started++;
            send_byte(&slots[i]);
        } else {
            slot_next(&slots[i]);
        }
    }
    if (loop_run_until(&finished, now_us() + RATE_TIMEOUT_US) < 0)
        die("%zu of %zu operations done in time", completed, wanted);
    double seconds = (double)(now_us() - t0) / 1e6;
    transport_close_all();
    return (double)completed / seconds;
}
