/* SPDX-License-Identifier: MIT */
/*
 * The client side of the workloads: open channels, wait until every one is
 * established, then run and time the work. Setup is never inside a
 * throughput or latency figure.
 */
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "client.h"

#define OPEN_TIMEOUT_US (30u * 1000000u)
#define RUN_TIMEOUT_US (120u * 1000000u)

typedef struct client_work {
    channel *ch;
    int mode;
    uint64_t to_send;  /* upload: payload bytes still to send */
    uint64_t expect;   /* bytes to receive before done */
    uint64_t received; /* payload bytes received */
    uint8_t reply[8];  /* upload: the sink's count */
    size_t reply_len;
    size_t message; /* echo: bytes per round trip */
    int sent_header, opened, failed, ended, closed;
} client_work;

static client_work *works;
static size_t n_works;
static size_t n_opened, n_failed, n_done;
static int all_opened, all_done, round_trip_done;

static void check_all_opened(void)
{
    all_opened = n_opened + n_failed == n_works;
}

static void mark_done(client_work *w)
{
    if (w->ended)
        return;
    w->ended = 1;
    all_done = ++n_done == n_works;
}

static void on_open(channel *ch, int ok)
{
    client_work *w = ch->app;
    w->opened = ok;
    w->failed = !ok;
    n_opened += ok;
    n_failed += !ok;
    check_all_opened();
}

static void upload_more(channel *ch, client_work *w)
{
    const uint8_t *pattern = bench_pattern();
    while (w->to_send) {
        size_t n = w->to_send < BENCH_PATTERN ? (size_t)w->to_send : BENCH_PATTERN;
        size_t accepted = 0;
        if (ch->ops->write(ch, pattern, n, &accepted) < 0 && accepted == 0)
            return;
        w->to_send -= accepted;
    }
    ch->ops->shutdown(ch);
}

/* Send the channel's first bytes: the mode, and what it needs. */
static void start(client_work *w)
{
    uint8_t header[9] = {(uint8_t)w->mode};
    size_t len = 1;
    if (w->mode != WORK_ECHO) {
        put_u64(header + 1, w->expect);
        len = 9;
    }
    channel_write_all(w->ch, header, len);
    w->sent_header = 1;
    if (w->mode == WORK_SINK)
        upload_more(w->ch, w);
}

static void on_data(channel *ch, const uint8_t *data, size_t len)
{
    client_work *w = ch->app;
    ch->ops->consume(ch, len);
    if (w->mode == WORK_SINK) {
        for (size_t i = 0; i < len && w->reply_len < sizeof(w->reply); i++)
            w->reply[w->reply_len++] = data[i];
        if (w->reply_len == sizeof(w->reply)) {
            if (get_u64(w->reply) != w->expect)
                die("the sink counted %llu bytes, %llu were sent",
                    (unsigned long long)get_u64(w->reply), (unsigned long long)w->expect);
            mark_done(w);
        }
        return;
    }
    w->received += len;
    if (w->mode == WORK_DOWNLOAD && w->received == w->expect) {
        ch->ops->shutdown(ch);
        mark_done(w);
    }
    if (w->mode == WORK_ECHO && w->received >= w->message) {
        w->received -= w->message;
        round_trip_done = 1;
    }
}

static void on_writable(channel *ch)
{
    client_work *w = ch->app;
    if (w->mode == WORK_SINK && w->sent_header)
        upload_more(ch, w);
}

static void on_end(channel *ch)
{
    client_work *w = ch->app;
    if (!w->ended)
        die("the server ended a channel early (%llu of %llu bytes)",
            (unsigned long long)w->received, (unsigned long long)w->expect);
}

static void on_close(channel *ch)
{
    client_work *w = ch->app;
    w->closed = 1;
    w->ch = NULL;
    if (!w->ended && w->opened)
        die("a channel closed before its work was done");
}

static void attach(channel *ch, size_t index, void *arg)
{
    (void)arg;
    client_work *w = &works[index];
    w->ch = ch;
    ch->app = w;
    ch->on_open = on_open;
    ch->on_data = on_data;
    ch->on_writable = on_writable;
    ch->on_end = on_end;
    ch->on_close = on_close;
}

/* Open @p n channels over @p conns connections and wait for all of them. */
static void open_channels(const bench_target *t, size_t conns, size_t n)
{
    free(works);
    works = calloc(n, sizeof(*works));
    if (!works)
        die("out of memory");
    n_works = n;
    n_opened = n_failed = n_done = 0;
    all_opened = all_done = 0;
    if (transport_open(t->kind, t->address, conns, n, attach, NULL) < 0)
        die("cannot connect to %s (%s)", t->address, transport_name(t->kind));
    if (loop_run_until(&all_opened, now_us() + OPEN_TIMEOUT_US) < 0)
        die("%zu of %zu channels opened in time", n_opened, n);
    if (n_failed)
        die("%zu channels were refused", n_failed);
}

double run_bulk(const bench_target *t, int upload, size_t conns, size_t channels,
                uint64_t bytes_per_channel)
{
    open_channels(t, conns, channels);
    uint64_t t0 = now_us();
    for (size_t i = 0; i < n_works; i++) {
        works[i].mode = upload ? WORK_SINK : WORK_DOWNLOAD;
        works[i].expect = bytes_per_channel;
        works[i].to_send = upload ? bytes_per_channel : 0;
        start(&works[i]);
    }
    if (loop_run_until(&all_done, now_us() + RUN_TIMEOUT_US) < 0)
        die("bulk transfer did not finish in time (%zu of %zu done)", n_done, n_works);
    uint64_t t1 = now_us();
    transport_close_all();
    double seconds = (double)(t1 - t0) / 1e6;
    return (double)bytes_per_channel * (double)channels / seconds;
}

void run_echo(const bench_target *t, size_t message, size_t count, double *rtt_us)
{
    open_channels(t, 1, 1);
    client_work *w = &works[0];
    w->mode = WORK_ECHO;
    w->message = message;
    start(w);
    const uint8_t *pattern = bench_pattern();
    for (size_t i = 0; i < count; i++) {
        round_trip_done = 0;
        uint64_t t0 = now_us();
        channel_write_all(w->ch, pattern, message);
        if (loop_run_until(&round_trip_done, now_us() + RUN_TIMEOUT_US) < 0)
            die("no echo within the timeout");
        rtt_us[i] = (double)(now_us() - t0);
    }
    transport_close_all();
}
