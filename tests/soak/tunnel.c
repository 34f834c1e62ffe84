/* SPDX-License-Identifier: MIT */
/*
 * Client tunnel scripts. Each tunnel writes a pattern determined by its
 * seed, in random pieces, and knows exactly how it must end:
 *
 *   echo          half-close after the last byte, get every byte back, then
 *                 the server's end: a clean close
 *   sink          half-close, get the server's count and hash of what it
 *                 received (16 bytes), then a clean close
 *   client reset  reset (CANCEL or CONNECT_ERROR) mid-stream after the 200;
 *                 the server must see that very code
 *   server reset  the server resets with CONNECT_ERROR after N KiB; the
 *                 client must see that code
 *   reject        the server answers 503; a clean close
 *
 * A tunnel whose server was killed must end as lost, never cleanly unless
 * it had completed in full.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "soak.h"

#define PIECE_MAX 65536
#define STALL_MS 90000 /* no event for this long is a hang */

static uint8_t scratch[PIECE_MAX];

const char *tunnel_kind_name(int kind)
{
    static const char *const names[S_KINDS] = {"echo", "sink", "client-reset", "server-reset",
                                               "reject"};
    return kind >= 0 && kind < S_KINDS ? names[kind] : "?";
}

static void tunnel_fail(ctunnel *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void tunnel_fail(ctunnel *t, const char *fmt, ...)
{
    if (t->failed)
        return; /* one failure per tunnel: the first says the most */
    t->failed = 1;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fail("%s tunnel %d (server %d, size %llu, sent %llu, received %llu, status %d): %s",
         tunnel_kind_name(t->kind), (int)t->id, t->cc ? t->cc->srv->index : -1,
         (unsigned long long)t->size, (unsigned long long)t->sent, (unsigned long long)t->received,
         t->status, msg);
    /* Abort it so that it ends now; from its close event this is a no-op. */
    if (t->cc) {
        hbone_conn_tunnel_reset(t->cc->conn, t->id, CODE_CANCEL);
        t->cc->dirty = 1;
    }
}

/* Mostly small, sometimes large: log-uniform up to the maximum, and some
 * empty streams. */
static uint64_t random_size(uint64_t *rng)
{
    if (rng_below(rng, 20) == 0)
        return 0;
    unsigned bits = 1;
    while ((1ull << bits) < opt.max_size)
        bits++;
    uint64_t size = rng_below(rng, (1ull << rng_below(rng, bits + 1))) + 1;
    return size > opt.max_size ? opt.max_size : size;
}

void tunnel_plan(ctunnel *t, uint64_t *rng)
{
    t->seed = rng_next(rng);
    t->rng = t->seed ^ 0x5eed;
    unsigned roll = (unsigned)rng_below(rng, 100);
    t->kind = roll < 40   ? S_ECHO
              : roll < 65 ? S_SINK
              : roll < 80 ? S_RESET_CLIENT
              : roll < 90 ? S_RESET_SERVER
                          : S_REJECT;
    t->size = random_size(rng);
    if (t->kind == S_RESET_CLIENT) {
        if (t->size < 2)
            t->size = 2 + rng_below(rng, 4096);
        t->stop_at = 1 + rng_below(rng, t->size - 1);
        t->reset_code = rng_below(rng, 2) ? CODE_CANCEL : CODE_CONNECT_ERROR;
    } else if (t->kind == S_RESET_SERVER) {
        uint64_t most = t->size / 1024;
        most = most < 1 ? 1 : most > RESET_MAX_KIB ? RESET_MAX_KIB : most;
        t->reset_kib = 1 + rng_below(rng, most);
        if (t->size < t->reset_kib * 1024)
            t->size = t->reset_kib * 1024 + rng_below(rng, 65536);
    } else if (t->kind == S_REJECT) {
        t->size = 0;
    }
    t->hash_sent = HASH_INIT;
}

static int port_of(const ctunnel *t)
{
    switch (t->kind) {
    case S_SINK:
        return PORT_SINK;
    case S_RESET_SERVER:
        return PORT_RESET + (int)t->reset_kib;
    case S_REJECT:
        return PORT_REJECT;
    default:
        return PORT_ECHO;
    }
}

static void progress(ctunnel *t)
{
    t->last_progress = now_ms();
}

int tunnel_start(ctunnel *t, cconn *cc)
{
    char authority[32];
    int n = snprintf(authority, sizeof(authority), "127.0.0.1:%d", port_of(t));
    int r =
        hbone_conn_tunnel_open(cc->conn, authority, (size_t)n, NULL, NULL, NULL, NULL, 0, &t->id);
    if (r < 0)
        return -1;
    hbone_conn_tunnel_set_user_data(cc->conn, t->id, t);
    t->cc = cc;
    t->next = cc->tunnels;
    if (cc->tunnels)
        cc->tunnels->prev = t;
    cc->tunnels = t;
    cc->n_tunnels++;
    cc->srv->tunnels++;
    active_tunnels++;
    stats.started++;
    progress(t);
    tunnel_pump(t); /* held by the library until the 200 */
    return 0;
}

static size_t random_piece(uint64_t *rng)
{
    unsigned roll = (unsigned)rng_below(rng, 100);
    if (roll < 10)
        return 1 + (size_t)rng_below(rng, 16);
    if (roll < 40)
        return 1 + (size_t)rng_below(rng, 1024);
    return 1 + (size_t)rng_below(rng, PIECE_MAX);
}

void tunnel_pump(ctunnel *t)
{
    if (t->kind == S_REJECT || t->shut || t->reset_sent || t->failed)
        return;
    uint64_t limit = t->kind == S_RESET_CLIENT ? t->stop_at : t->size;
    while (t->sent < limit) {
        size_t piece = random_piece(&t->rng);
        if (piece > limit - t->sent)
            piece = (size_t)(limit - t->sent);
        pattern_fill(t->seed, t->sent, scratch, piece);
        size_t n = 0;
        int r = hbone_conn_tunnel_write(t->cc->conn, t->id, scratch, piece, &n);
        if (r == HBONE_ERR_AGAIN) {
            t->want_write = 1;
            return;
        }
        if (r < 0) {
            tunnel_fail(t, "write: %s", hbone_strerror(r));
            return;
        }
        if (t->kind == S_SINK)
            t->hash_sent = hash_update(t->hash_sent, scratch, n);
        t->sent += n;
        stats.bytes_sent += n;
        t->cc->dirty = 1;
        progress(t);
    }
    if (t->kind == S_RESET_CLIENT) {
        /* Only once the server has the stream: a reset before the CONNECT
         * left might never reach it, and its count must match ours. */
        if (t->status == 200 && !t->reset_sent) {
            t->reset_sent = 1;
            stats.resets_expected++;
            if (t->reset_code == CODE_CANCEL)
                t->cc->srv->expect_cancels++;
            else
                t->cc->srv->expect_connect_errors++;
            hbone_conn_tunnel_reset(t->cc->conn, t->id, t->reset_code);
            t->cc->dirty = 1;
        }
        return;
    }
    t->shut = 1;
    int r = hbone_conn_tunnel_shutdown(t->cc->conn, t->id);
    if (r < 0)
        tunnel_fail(t, "shutdown: %s", hbone_strerror(r));
    t->cc->dirty = 1;
}

void tunnel_on_response(ctunnel *t, int status)
{
    progress(t);
    t->status = status;
    int want = t->kind == S_REJECT ? 503 : 200;
    if (status != want) {
        tunnel_fail(t, "response %d, expected %d", status, want);
        return;
    }
    tunnel_pump(t);
}

/* Every byte that comes back is compared with the pattern at its offset. */
static void verify_echo(ctunnel *t, const uint8_t *data, size_t len)
{
    if (t->received + len > t->sent) {
        tunnel_fail(t, "%zu bytes came back, more than were sent", len);
        return;
    }
    size_t done = 0;
    while (done < len && !t->failed) {
        size_t n = len - done < PIECE_MAX ? len - done : PIECE_MAX;
        pattern_fill(t->seed, t->received + done, scratch, n);
        if (memcmp(scratch, data + done, n) != 0) {
            size_t at = 0;
            while (scratch[at] == data[done + at])
                at++;
            tunnel_fail(t, "echoed byte %llu differs from what was sent",
                        (unsigned long long)(t->received + done + at));
            return;
        }
        done += n;
    }
    stats.bytes_verified += len;
}

void tunnel_on_data(ctunnel *t, const uint8_t *data, size_t len)
{
    progress(t);
    if (t->kind == S_SINK) {
        if (t->reply_len + len > sizeof(t->reply))
            tunnel_fail(t, "the sink answered more than 16 bytes");
        else
            memcpy(t->reply + t->reply_len, data, len);
        t->reply_len += len;
    } else if (t->kind == S_REJECT) {
        tunnel_fail(t, "data on a refused tunnel");
    } else if (!t->failed) {
        verify_echo(t, data, len);
    }
    t->received += len;
    int r = hbone_conn_tunnel_consume(t->cc->conn, t->id, len);
    if (r < 0)
        tunnel_fail(t, "consume: %s", hbone_strerror(r));
}

void tunnel_on_end(ctunnel *t)
{
    progress(t);
    t->ended = 1;
}

void tunnel_on_writable(ctunnel *t)
{
    progress(t);
    if (t->want_write) {
        t->want_write = 0;
        tunnel_pump(t);
    }
}

/* Did the tunnel end exactly as its script says? */
static void judge(ctunnel *t, uint32_t reason)
{
    switch (t->kind) {
    case S_ECHO:
        if (reason != 0 || t->status != 200 || !t->ended || t->sent != t->size ||
            t->received != t->size)
            tunnel_fail(t, "echo ended with 0x%x, %s", reason, t->ended ? "ended" : "not ended");
        break;
    case S_SINK:
        if (reason != 0 || t->status != 200 || !t->ended || t->reply_len != 16) {
            tunnel_fail(t, "sink ended with 0x%x and a %zu-byte answer", reason, t->reply_len);
        } else if (get_u64(t->reply) != t->size || get_u64(t->reply + 8) != t->hash_sent) {
            tunnel_fail(t, "the sink counted %llu bytes, hash %016llx; sent %llu, hash %016llx",
                        (unsigned long long)get_u64(t->reply),
                        (unsigned long long)get_u64(t->reply + 8), (unsigned long long)t->size,
                        (unsigned long long)t->hash_sent);
        } else {
            stats.bytes_verified += t->size;
        }
        break;
    case S_RESET_CLIENT:
        if (!t->reset_sent || reason != t->reset_code)
            tunnel_fail(t, "closed with 0x%x, expected our reset 0x%x", reason, t->reset_code);
        else
            stats.resets_seen++;
        break;
    case S_RESET_SERVER:
        stats.resets_expected++;
        /* The server may reset before its 200 has left (a client that has
         * already half-closed sends its data without waiting for the 200),
         * and then the 200 never comes: no status is fine, another is not. */
        if (reason != CODE_CONNECT_ERROR || (t->status != 200 && t->status != 0))
            tunnel_fail(t, "closed with 0x%x, expected the server's CONNECT_ERROR", reason);
        else
            stats.resets_seen++;
        break;
    case S_REJECT:
        if (reason != 0 || t->status != 503)
            tunnel_fail(t, "refusal ended with 0x%x", reason);
        break;
    }
    if (!t->failed)
        stats.finished[t->kind]++;
}

void tunnel_on_close(ctunnel *t, uint32_t reason)
{
    cconn *cc = t->cc;
    if (reason == HBONE_CLOSE_CONNECTION_LOST) {
        if (cc->srv->killed) {
            stats.lost++;                       /* as it must: its server was killed under it */
            stats.resets_lost += t->reset_sent; /* the RST never left */
        } else
            tunnel_fail(t, "lost, though its server is alive");
    } else if (reason == CODE_REFUSED_STREAM && t->status == 0 && cc->server_draining) {
        stats.retried++; /* sent as the server drained: a new tunnel replaces it */
    } else {
        judge(t, reason);
    }
    if (t->prev)
        t->prev->next = t->next;
    else
        cc->tunnels = t->next;
    if (t->next)
        t->next->prev = t->prev;
    cc->n_tunnels--;
    cc->srv->tunnels--;
    active_tunnels--;
    free(t);
}

void tunnels_watchdog(uint64_t now)
{
    for (cconn *cc = conn_list; cc; cc = cc->next) {
        for (ctunnel *t = cc->tunnels; t; t = t->next) {
            if (now - t->last_progress > STALL_MS && !t->failed) {
                tunnel_fail(t, "no progress for %d s", STALL_MS / 1000);
            }
        }
    }
}
