/* SPDX-License-Identifier: MIT */
/*
 * The server side of every workload, the same over every transport: the
 * channel's first byte says what to do (sink, echo, download).
 */
#include <stdlib.h>
#include <string.h>

#include "bench.h"

int server_http1_preamble;

typedef struct server_work {
    int mode; /* 0 until the first byte */
    int preamble_done;
    size_t preamble_seen; /* bytes of "\r\n\r\n" matched */
    uint64_t count;       /* sink: bytes received */
    uint64_t to_send;     /* download: bytes still to send */
    uint8_t header[8];    /* sink, download: the length announced */
    size_t header_len;
    uint8_t *echo; /* echo: bytes still to send back */
    size_t echo_len, echo_cap;
    int peer_ended, shut;
} server_work;

static const char http1_ok[] = "HTTP/1.1 200 OK\r\n\r\n";

static void finish(channel *ch, server_work *w)
{
    if (!w->shut) {
        w->shut = 1;
        ch->ops->shutdown(ch);
    }
}

static void send_download(channel *ch, server_work *w)
{
    const uint8_t *pattern = bench_pattern();
    while (w->to_send) {
        size_t n = w->to_send < BENCH_PATTERN ? (size_t)w->to_send : BENCH_PATTERN;
        size_t accepted = 0;
        if (ch->ops->write(ch, pattern, n, &accepted) < 0 && accepted == 0)
            return; /* on_writable resumes */
        w->to_send -= accepted;
    }
    finish(ch, w);
}

static void flush_echo(channel *ch, server_work *w)
{
    size_t off = 0;
    while (off < w->echo_len) {
        size_t accepted = 0;
        if (ch->ops->write(ch, w->echo + off, w->echo_len - off, &accepted) < 0 && accepted == 0)
            break;
        off += accepted;
    }
    /* Credit the peer only for what went back: an echo cannot run ahead. */
    ch->ops->consume(ch, off);
    memmove(w->echo, w->echo + off, w->echo_len - off);
    w->echo_len -= off;
    if (w->echo_len == 0 && w->peer_ended)
        finish(ch, w);
}

static void echo_append(server_work *w, const uint8_t *data, size_t len)
{
    if (w->echo_cap - w->echo_len < len) {
        w->echo_cap = (w->echo_len + len) * 2;
        w->echo = realloc(w->echo, w->echo_cap);
        if (!w->echo)
            die("out of memory");
    }
    memcpy(w->echo + w->echo_len, data, len);
    w->echo_len += len;
}

/* The 8-byte length that follows the mode byte; returns the bytes used. */
static size_t take_length(server_work *w, const uint8_t *data, size_t len)
{
    size_t i = 0;
    while (i < len && w->header_len < sizeof(w->header))
        w->header[w->header_len++] = data[i++];
    return i;
}

/* The sink got everything announced: say so, so that the client can stop
 * its clock. (Not at the client's FIN: nghttpx does not pass that on.) */
static void answer_count(channel *ch, server_work *w)
{
    uint8_t reply[8];
    put_u64(reply, w->count);
    size_t accepted;
    ch->ops->write(ch, reply, sizeof(reply), &accepted);
    finish(ch, w);
}

/* Skip nghttpx's request head, answer it, and carry on with the rest. */
static size_t skip_preamble(channel *ch, server_work *w, const uint8_t *data, size_t len)
{
    static const char end[] = "\r\n\r\n";
    size_t i = 0;
    while (i < len && w->preamble_seen < 4) {
        w->preamble_seen = data[i] == (uint8_t)end[w->preamble_seen] ? w->preamble_seen + 1
                           : data[i] == '\r'                         ? 1
                                                                     : 0;
        i++;
    }
    if (w->preamble_seen == 4) {
        w->preamble_done = 1;
        size_t accepted;
        ch->ops->write(ch, (const uint8_t *)http1_ok, sizeof(http1_ok) - 1, &accepted);
    }
    return i;
}

static void on_data(channel *ch, const uint8_t *data, size_t len)
{
    server_work *w = ch->app;
    size_t used = 0;
    if (!w->preamble_done)
        used = skip_preamble(ch, w, data, len);
    if (!w->mode && used < len)
        w->mode = data[used++];
    const uint8_t *payload = data + used;
    size_t n = len - used;
    switch (w->mode) {
    case 0: /* all of it was the preamble */
        ch->ops->consume(ch, len);
        break;
    case WORK_SINK:
        ch->ops->consume(ch, len);
        n -= take_length(w, payload, n);
        w->count += n;
        if (w->header_len == sizeof(w->header) && w->count == get_u64(w->header))
            answer_count(ch, w);
        break;
    case WORK_DOWNLOAD:
        ch->ops->consume(ch, len);
        take_length(w, payload, n);
        if (w->header_len == sizeof(w->header) && !w->to_send && !w->shut) {
            w->to_send = get_u64(w->header);
            send_download(ch, w);
        }
        break;
    case WORK_ECHO:
        ch->ops->consume(ch, used); /* the rest is credited as it goes back */
        echo_append(w, payload, n);
        flush_echo(ch, w);
        break;
    default:
        die("unknown workload byte 0x%02x", w->mode);
    }
}

static void on_writable(channel *ch)
{
    server_work *w = ch->app;
    if (w->mode == WORK_DOWNLOAD)
        send_download(ch, w);
    else if (w->mode == WORK_ECHO)
        flush_echo(ch, w);
}

static void on_end(channel *ch)
{
    server_work *w = ch->app;
    w->peer_ended = 1;
    if (w->mode == WORK_ECHO) {
        flush_echo(ch, w);
    } else if (w->mode != WORK_DOWNLOAD) {
        finish(ch, w);
    }
}

static void on_close(channel *ch)
{
    server_work *w = ch->app;
    free(w->echo);
    free(w);
}

void server_workload_attach(channel *ch)
{
    server_work *w = calloc(1, sizeof(*w));
    if (!w)
        die("out of memory");
    w->preamble_done = !server_http1_preamble;
    ch->app = w;
    ch->on_data = on_data;
    ch->on_writable = on_writable;
    ch->on_end = on_end;
    ch->on_close = on_close;
}
