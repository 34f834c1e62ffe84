/* SPDX-License-Identifier: MIT */
/*
 * Flow control and resources at scale, in memory with real TLS: a gibibyte
 * each way through one tunnel, an upstream that stops reading while a
 * sibling tunnel keeps flowing, and thousands of idle connections closed by
 * the idle timeout. Memory is read from a counting allocator (libhbone's
 * and nghttp2's allocations; wolfSSL's allocator is process-global and not
 * counted) and held to bounds derived from the configured limits.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <hbone/hbone.h>

#include "conn_pair.h"
#include "testlib.h"

#include "common/mem.h"

#define KIB ((size_t)1024)
#define MIB (1024 * KIB)

/* The defaults these tests rely on (hbone_config_set_http2 and
 * hbone_config_set_buffer_limits): the pair sets none of them. */
#define STREAM_WINDOW (4 * MIB)
#define TUNNEL_BUFFER (256 * KIB)
#define CONNECTION_BUFFER (256 * KIB)
/* What a connection may hold for output beyond its tunnels' buffers, as
 * hbone_config_set_buffer_limits documents it: about twice connection_bytes.
 * Framing stops once connection_bytes of ciphertext wait for the transport,
 * and the frame that crosses that line carries at most one tunnel buffer
 * (256 KiB here); the buffer grows by doubling, to 512 KiB. */
#define CONNECTION_OUTPUT (2 * CONNECTION_BUFFER)
/* Allocator rounding (a tunnel's ring is its buffer plus 16 bytes of
 * headroom, which malloc rounds up to whole pages) and nghttp2's small
 * per-frame items (WINDOW_UPDATEs queued while data flows). */
#define SLACK (64 * KIB)

/* Test data: a random pattern whose period is prime, read at any offset
 * for up to PATTERN_TAIL bytes, so that a block dropped, repeated or moved
 * changes the checksum. */
#define PATTERN_PERIOD 1048573
#define PATTERN_TAIL (256 * KIB)
static uint8_t pattern[PATTERN_PERIOD + PATTERN_TAIL];

static void make_pattern(unsigned seed)
{
    for (size_t i = 0; i < PATTERN_PERIOD; i++)
        pattern[i] = (uint8_t)(rand_r(&seed) >> 7);
    memcpy(pattern + PATTERN_PERIOD, pattern, PATTERN_TAIL);
}

/* Bytes [offset, offset + len) of the stream that starts at pattern offset
 * @p base (len <= PATTERN_TAIL). */
static const uint8_t *stream_at(size_t base, size_t offset)
{
    return pattern + (base + offset) % PATTERN_PERIOD;
}

/* The checksum of the first @p len bytes of stream @p base. */
static uint32_t stream_checksum(size_t base, size_t len)
{
    uint32_t sum = TL_CHECKSUM_INIT;
    for (size_t off = 0; off < len; off += PATTERN_TAIL) {
        size_t n = len - off < PATTERN_TAIL ? len - off : PATTERN_TAIL;
        sum = tl_checksum(sum, stream_at(base, off), n);
    }
    return sum;
}

/* The counting allocator, watched at every allocation for the most bytes
 * live at once. Sampling between pumps would see nothing: a pump runs until
 * nothing moves, and drained rings and output buffers are freed, so the
 * high-water marks are reached and gone inside it. */
struct peak_watch {
    tl_counting counts;
    hbone_mem *counting;
    size_t peak;
};

static void *watched(struct peak_watch *w, void *ptr)
{
    if (w->counts.live_bytes > w->peak)
        w->peak = w->counts.live_bytes;
    return ptr;
}

static void *watch_malloc(size_t size, void *user)
{
    struct peak_watch *w = user;
    return watched(w, hb_malloc(w->counting, size));
}

static void *watch_calloc(size_t nmemb, size_t size, void *user)
{
    struct peak_watch *w = user;
    return watched(w, hb_calloc(w->counting, nmemb, size));
}

static void *watch_realloc(void *ptr, size_t size, void *user)
{
    struct peak_watch *w = user;
    return watched(w, hb_realloc(w->counting, ptr, size));
}

static void watch_free(void *ptr, void *user)
{
    struct peak_watch *w = user;
    hb_free(w->counting, ptr);
}

/* An allocator over a new tl_counting in @p w (free with
 * peak_watch_del). */
static hbone_mem *peak_watch_new(struct peak_watch *w)
{
    memset(w, 0, sizeof(*w));
    w->counting = tl_counting_mem(&w->counts, -1);
    hbone_mem *mem = NULL;
    ck_assert_int_eq(hbone_mem_new(&mem, watch_malloc, watch_free, watch_calloc, watch_realloc, w),
                     0);
    return mem;
}

static void peak_watch_del(struct peak_watch *w, hbone_mem *mem)
{
    hbone_mem_del(mem);
    hbone_mem_del(w->counting);
}

START_TEST(a_gibibyte_each_way_in_one_tunnel)
{
    size_t total = (size_t)tl_scale(1024 * (long)MIB, 16 * (long)MIB);
    enum { MAX_WRITE = 200 * 1024 };
    unsigned seed = 7;
    make_pattern(seed);
    struct peak_watch w;
    hbone_mem *mem = peak_watch_new(&w);
    pair_mem = mem;
    struct pair p;
    pair_init(&p, SERVER_ID, 77);
    pair_mem = NULL;
    p.server.auto_answer = 200;
    p.server.echo = 1;
    int32_t id = open_tunnel(&p, "10.0.0.2:80");
    pump(&p, NULL, NULL);
    struct tunnel_log *cli = log_of(&p.client, id);
    ck_assert_int_eq(cli->status, 200);
    /* Both connections, their configs and the open tunnel, before any data. */
    size_t base = w.counts.live_bytes;
    w.peak = base;

    uint32_t sum = TL_CHECKSUM_INIT;
    size_t sent = 0;
    long partial = 0;
    while (sent < total) {
        size_t n = (size_t)rand_r(&seed) % MAX_WRITE + 1;
        if (n > total - sent)
            n = total - sent;
        const uint8_t *data = pattern + (size_t)rand_r(&seed) % PATTERN_PERIOD;
        /* Write until the tunnel's buffer is full, then let the bytes move
         * (and the echo come back) and write the rest. */
        size_t off = 0;
        int pumped = 0;
        while (off < n) {
            size_t accepted = 0;
            int r = hbone_conn_tunnel_write(p.client.conn, id, data + off, n - off, &accepted);
            /* A pump drains the echoing peer: right after one, the buffer
             * takes bytes again. */
            TL_REQUIRE((r == 0 && accepted > 0) ||
                           (r == HBONE_ERR_AGAIN && accepted == 0 && !pumped),
                       "write of %zu after %zu bytes: %s, %zu accepted", n - off, sent + off,
                       hbone_strerror(r), accepted);
            sum = tl_checksum(sum, data + off, accepted);
            off += accepted;
            if (off < n) {
                partial += r == 0;
                pump(&p, NULL, NULL);
                pumped = 1;
            }
        }
        sent += n;
    }
    ck_assert_int_eq(hbone_conn_tunnel_shutdown(p.client.conn, id), 0);
    pump(&p, NULL, NULL);

    /* Every byte went there and came back, in order, and both sides ended
     * cleanly. */
    assert_echoed_and_closed(&p, id, total, sum);
    /* The writes did fill the buffer and wait for the peer. */
    ck_assert_int_gt(partial, 0);

    /* The receive windows cost the library nothing: received bytes go
     * straight to the data callback (which consumes them here). What a side
     * holds beyond its state before the data is its tunnel's ring, at most
     * TUNNEL_BUFFER, and its connection's ciphertext, at most
     * CONNECTION_OUTPUT. wolfSSL's record buffers are outside the count.
     * Measured at 1 GiB: 61,464 bytes before the data, a peak of 897,128:
     * the client's full ring (256 KiB) and its output grown to 512 KiB,
     * against a bound of 1,699,864. */
    size_t bound = base + 2 * (TUNNEL_BUFFER + CONNECTION_OUTPUT) + SLACK;
    ck_assert_msg(w.peak <= bound, "peak %zu bytes live (%zu before data), bound %zu", w.peak, base,
                  bound);
    pair_free(&p);
    ck_assert_int_eq(w.counts.allocs, w.counts.frees);
    peak_watch_del(&w, mem);
}
END_TEST

/* Write stream @p base to @p id from @p s, from *@p sent up to @p limit,
 * until the tunnel takes no more; *@p sum follows. Returns the number of
 * writes refused with HBONE_ERR_AGAIN (0 or 1). */
static int write_until_full(struct side *s, int32_t id, size_t base, size_t limit, size_t *sent,
                            uint32_t *sum)
{
    while (*sent < limit) {
        size_t n = limit - *sent < 65536 ? limit - *sent : 65536;
        size_t accepted = 0;
        int r = hbone_conn_tunnel_write(s->conn, id, stream_at(base, *sent), n, &accepted);
        if (r == HBONE_ERR_AGAIN) {
            TL_REQUIRE(accepted == 0, "AGAIN with %zu accepted", accepted);
            return 1;
        }
        TL_REQUIRE(r == 0 && accepted > 0, "tunnel %d: %d", (int)id, r);
        *sum = tl_checksum(*sum, stream_at(base, *sent), accepted);
        *sent += accepted;
    }
    return 0;
}

/* The server's application consumes what @p id has received so far. */
static void consume_all(struct pair *p, int32_t id, size_t *consumed)
{
    struct tunnel_log *l = log_of(&p->server, id);
    if (l->closed || l->received == *consumed)
        return;
    int r = hbone_conn_tunnel_consume(p->server.conn, id, l->received - *consumed);
    TL_REQUIRE(r == 0, "consume: %s", hbone_strerror(r));
    *consumed = l->received;
}

START_TEST(an_upstream_that_stops_reading_holds_only_its_window)
{
    size_t stuck_total = (size_t)tl_scale(100 * (long)MIB, 8 * (long)MIB);
    size_t sibling_total = (size_t)tl_scale(10 * (long)MIB, (long)MIB);
    /* Pattern offsets of the three streams. */
    enum { STUCK = 0, UP = 333331, DOWN = 666661 };
    make_pattern(11);
    struct peak_watch w;
    hbone_mem *mem = peak_watch_new(&w);
    pair_mem = mem;
    struct pair p;
    pair_init(&p, SERVER_ID, 12);
    pair_mem = NULL;
    p.server.auto_answer = 200;
    /* The server's application consumes only when this test says so: never
     * on the stuck tunnel until the end, at once on the sibling. */
    p.server.consume_later = 1;
    int32_t stuck = open_tunnel(&p, "10.0.0.2:80"), sib = open_tunnel(&p, "10.0.0.3:80");
    pump(&p, NULL, NULL);
    struct tunnel_log *cs = log_of(&p.client, stuck), *ss = log_of(&p.server, stuck);
    struct tunnel_log *cb = log_of(&p.client, sib), *sb = log_of(&p.server, sib);
    ck_assert_int_eq(cs->status, 200);
    ck_assert_int_eq(cb->status, 200);
    size_t base = w.counts.live_bytes;
    w.peak = base;

    /* The client pushes the stuck tunnel's bytes until it takes no more:
     * the server's window and then the client's own buffer fill up. */
    size_t stuck_sent = 0;
    uint32_t stuck_sum = TL_CHECKSUM_INIT;
    for (int round = 0;; round++) {
        TL_REQUIRE(round < 1000, "the stuck tunnel never filled: %zu taken", stuck_sent);
        size_t before = stuck_sent;
        int refused =
            write_until_full(&p.client, stuck, STUCK, stuck_total, &stuck_sent, &stuck_sum);
        if (refused && stuck_sent == before)
            break; /* refused right after a pump moved all it could */
        pump(&p, NULL, NULL);
    }
    /* Exactly the peer's stream window went out, and exactly the tunnel's
     * buffer waits behind it; the server's application got the window, in
     * order, and nothing more is coming. */
    ck_assert_uint_eq(stuck_sent, STREAM_WINDOW + TUNNEL_BUFFER);
    ck_assert_uint_eq(ss->received, STREAM_WINDOW);
    ck_assert_uint_eq(ss->checksum, stream_checksum(STUCK, STREAM_WINDOW));
    ck_assert_int_eq(ss->ended, 0);

    /* Meanwhile the sibling moves its bytes both ways, the server's
     * application consuming them as they come, and the client keeps trying
     * the stuck tunnel, which keeps refusing. */
    size_t up_sent = 0, down_sent = 0, sib_consumed = 0;
    uint32_t up_sum = TL_CHECKSUM_INIT, down_sum = TL_CHECKSUM_INIT;
    int up_shut = 0, down_shut = 0, sib_rounds;
    for (sib_rounds = 0; !(cb->closed && sb->closed); sib_rounds++) {
        TL_REQUIRE(sib_rounds < 100000, "the sibling did not finish: %zu up, %zu down",
                   sb->received, cb->received);
        TL_REQUIRE(
            write_until_full(&p.client, stuck, STUCK, stuck_total, &stuck_sent, &stuck_sum) == 1 &&
                stuck_sent == STREAM_WINDOW + TUNNEL_BUFFER,
            "round %d: the stuck tunnel took bytes (%zu in all)", sib_rounds, stuck_sent);
        (void)write_until_full(&p.client, sib, UP,
                               up_sent + 50000 < sibling_total ? up_sent + 50000 : sibling_total,
                               &up_sent, &up_sum);
        (void)write_until_full(&p.server, sib, DOWN,
                               down_sent + 50000 < sibling_total ? down_sent + 50000
                                                                 : sibling_total,
                               &down_sent, &down_sum);
        if (up_sent == sibling_total && !up_shut++)
            ck_assert_int_eq(hbone_conn_tunnel_shutdown(p.client.conn, sib), 0);
        if (down_sent == sibling_total && !down_shut++)
            ck_assert_int_eq(hbone_conn_tunnel_shutdown(p.server.conn, sib), 0);
        pump(&p, NULL, NULL);
        consume_all(&p, sib, &sib_consumed);
    }
    /* The sibling went through whole. */
    ck_assert_uint_eq(sb->received, sibling_total);
    ck_assert_uint_eq(sb->checksum, up_sum);
    ck_assert_uint_eq(cb->received, sibling_total);
    ck_assert_uint_eq(cb->checksum, down_sum);
    ck_assert_uint_eq(sb->reason, 0);
    ck_assert_uint_eq(cb->reason, 0);

    /* The stuck tunnel is as it was: still full, still open, the server's
     * application still holding exactly the window. */
    ck_assert_int_gt(sib_rounds, 10);
    size_t accepted = 1;
    ck_assert_int_eq(hbone_conn_tunnel_write(p.client.conn, stuck, pattern, 1, &accepted),
                     HBONE_ERR_AGAIN);
    ck_assert_uint_eq(accepted, 0);
    ck_assert_uint_eq(ss->received, STREAM_WINDOW);
    ck_assert_int_eq(ss->closed, 0);
    ck_assert_int_eq(cs->closed, 0);

    /* None of the window is held by the library (the data callback had it
     * all; an application that does not consume holds it itself): what is
     * live beyond the state before the data is at most the client's full
     * ring on the stuck tunnel, the sibling's ring on each side, and each
     * connection's output. Measured: 62,808 bytes before the data, a peak
     * of 988,504 (the stuck ring, the sibling's, the client's output at
     * 512 KiB), against a bound of 1,963,352: under half the 4 MiB window
     * the peer was sent, while the client tried to push 100 MiB. */
    size_t bound = base + 3 * TUNNEL_BUFFER + 2 * CONNECTION_OUTPUT + SLACK;
    ck_assert_msg(w.peak <= bound, "peak %zu bytes live (%zu before data), bound %zu", w.peak, base,
                  bound);

    /* The upstream reads again: the rest flows and arrives. */
    size_t stuck_consumed = 0;
    int stuck_shut = 0;
    for (int round = 0; !ss->ended; round++) {
        TL_REQUIRE(round < 100000, "the stuck tunnel did not finish: %zu received", ss->received);
        consume_all(&p, stuck, &stuck_consumed);
        (void)write_until_full(&p.client, stuck, STUCK, stuck_total, &stuck_sent, &stuck_sum);
        if (stuck_sent == stuck_total && !stuck_shut++)
            ck_assert_int_eq(hbone_conn_tunnel_shutdown(p.client.conn, stuck), 0);
        pump(&p, NULL, NULL);
        /* The window holds for as long as the application lags. */
        TL_REQUIRE(ss->received - stuck_consumed <= STREAM_WINDOW, "%zu bytes unconsumed",
                   ss->received - stuck_consumed);
    }
    ck_assert_int_gt(cs->writable, 0);
    consume_all(&p, stuck, &stuck_consumed);
    ck_assert_int_eq(hbone_conn_tunnel_shutdown(p.server.conn, stuck), 0);
    pump(&p, NULL, NULL);
    ck_assert_uint_eq(ss->received, stuck_total);
    ck_assert_uint_eq(ss->checksum, stuck_sum);
    ck_assert_uint_eq(ss->checksum, stream_checksum(STUCK, stuck_total));
    ck_assert_int_eq(ss->closed, 1);
    ck_assert_int_eq(cs->closed, 1);
    ck_assert_uint_eq(ss->reason, 0);
    ck_assert_uint_eq(cs->reason, 0);
    /* Draining it took no more. */
    ck_assert_msg(w.peak <= bound, "peak %zu bytes live (%zu before data), bound %zu", w.peak, base,
                  bound);
    pair_free(&p);
    ck_assert_int_eq(w.counts.allocs, w.counts.frees);
    peak_watch_del(&w, mem);
}
END_TEST

#define IDLE_MS 30000

static void count_idle_closes(int level, const char *message, size_t len, void *user)
{
    static const char idle[] = "closing a connection idle";
    if (level == HBONE_LOG_INFO && len >= sizeof(idle) - 1 &&
        memcmp(message, idle, sizeof(idle) - 1) == 0)
        ++*(long *)user;
}

START_TEST(thousands_of_idle_connections)
{
    long n = tl_scale(2000, 100);
    /* Separate allocators, so that the server's share is its own. */
    tl_counting ccounts, scounts;
    hbone_mem *cmem = tl_counting_mem(&ccounts, -1), *smem = tl_counting_mem(&scounts, -1);
    hbone_config *ccfg = tl_config_mem("client", NULL, cmem);
    hbone_config *scfg = tl_config_mem("server", NULL, smem);
    /* Keepalive off on both, so that the idle timer is the only one. */
    ck_assert_int_eq(hbone_config_set_keepalive(ccfg, 0, 0), 0);
    ck_assert_int_eq(hbone_config_set_keepalive(scfg, 0, 0), 0);
    ck_assert_int_eq(hbone_config_set_idle_timeout(scfg, IDLE_MS), 0);
    long idle_closes = 0;
    ck_assert_int_eq(hbone_config_set_log(scfg, count_idle_closes, HBONE_LOG_INFO, &idle_closes),
                     0);
    size_t cbase = ccounts.live_bytes, sbase = scounts.live_bytes;

    struct pair *pairs = calloc((size_t)n, sizeof(*pairs));
    ck_assert_ptr_nonnull(pairs);
    for (long i = 0; i < n; i++) {
        /* One at a time: the default limit on handshakes in progress is
         * 128, and each completes here before the next starts. */
        struct pair *p = &pairs[i];
        pair_start(p, ccfg, scfg, SERVER_ID, (unsigned)i);
        pump(p, NULL, NULL);
        uint32_t handshakes = 1, open = 0;
        ck_assert_int_eq(hbone_config_server_load(scfg, &handshakes, &open), 0);
        TL_REQUIRE(p->client.handshakes == 1 && p->server.handshakes == 1 && handshakes == 0 &&
                       open == (uint32_t)i + 1,
                   "connection %ld: handshakes %d/%d, load %u/%u", i, p->client.handshakes,
                   p->server.handshakes, handshakes, open);
    }
    uint32_t handshakes = 1, open = 0;
    ck_assert_int_eq(hbone_config_server_load(scfg, &handshakes, &open), 0);
    ck_assert_uint_eq(handshakes, 0);
    ck_assert_uint_eq(open, (uint32_t)n);

    /* An idle connection holds its nghttp2 session (about 25 KiB allocated
     * whatever the settings, 16 KiB of it a frame buffer whose untouched
     * pages are not resident: the bench's 23 KiB is resident memory) and
     * libhbone's own state (about 1.5 KiB); drained ciphertext and tunnel
     * buffers are freed. wolfSSL's share (about 4 KiB) is not counted.
     * Measured: 26,896 bytes per server connection, 26,920 per client. */
    size_t server_per_conn = (scounts.live_bytes - sbase) / (size_t)n;
    size_t client_per_conn = (ccounts.live_bytes - cbase) / (size_t)n;
    ck_assert_msg(server_per_conn < 48 * KIB, "%zu bytes per idle server connection",
                  server_per_conn);
    ck_assert_msg(client_per_conn < 48 * KIB, "%zu bytes per idle client connection",
                  client_per_conn);

    /* Every connection became idle at its handshake, at the pair's clock
     * of 1000: one millisecond short of the timeout, none closes. */
    for (long i = 0; i < n; i++) {
        struct pair *p = &pairs[i];
        uint64_t expiry = hbone_conn_get_expiry(p->server.conn);
        TL_REQUIRE(expiry == p->now + IDLE_MS, "connection %ld expires at %llu", i,
                   (unsigned long long)expiry);
        TL_REQUIRE(hbone_conn_get_expiry(p->client.conn) == UINT64_MAX, "client %ld has a timer",
                   i);
        TL_REQUIRE(hbone_conn_handle_expiry(p->server.conn, expiry - 1) == 0,
                   "connection %ld: early expiry failed", i);
        pump(p, NULL, NULL);
        TL_REQUIRE(!hbone_conn_is_closed(p->server.conn) && !hbone_conn_is_closed(p->client.conn),
                   "connection %ld closed before its idle timeout", i);
    }
    ck_assert_int_eq(idle_closes, 0);
    /* At the timeout each server sends GOAWAY(NO_ERROR) and is done; its
     * client, told so, is done too, with no error to report and no new
     * tunnels. (The idle close sends no close_notify: a client closed
     * cleanly here has read the GOAWAY.) */
    for (long i = 0; i < n; i++) {
        struct pair *p = &pairs[i];
        p->now += IDLE_MS;
        TL_REQUIRE(hbone_conn_handle_expiry(p->server.conn, p->now) == 0,
                   "connection %ld: expiry failed", i);
        pump(p, NULL, NULL);
        int32_t late = 0;
        TL_REQUIRE(hbone_conn_is_closed(p->server.conn) && hbone_conn_is_closed(p->client.conn) &&
                       hbone_conn_error_detail(p->client.conn)[0] == '\0' &&
                       hbone_conn_tunnel_open(p->client.conn, "10.0.0.2:80", 11, NULL, NULL, NULL,
                                              NULL, 0, &late) == HBONE_ERR_INVALID_STATE,
                   "connection %ld: server closed %d, client closed %d (%s)", i,
                   hbone_conn_is_closed(p->server.conn), hbone_conn_is_closed(p->client.conn),
                   hbone_conn_error_detail(p->client.conn));
    }
    ck_assert_int_eq(idle_closes, n);
    /* Closed connections count until they are deleted. */
    ck_assert_int_eq(hbone_config_server_load(scfg, &handshakes, &open), 0);
    ck_assert_uint_eq(open, (uint32_t)n);

    for (long i = 0; i < n; i++)
        pair_free(&pairs[i]);
    free(pairs);
    ck_assert_int_eq(hbone_config_server_load(scfg, &handshakes, &open), 0);
    ck_assert_uint_eq(handshakes, 0);
    ck_assert_uint_eq(open, 0);
    ck_assert_uint_eq(scounts.live_bytes, sbase);
    ck_assert_uint_eq(ccounts.live_bytes, cbase);
    hbone_config_del(ccfg);
    hbone_config_del(scfg);
    ck_assert_int_eq(ccounts.allocs, ccounts.frees);
    ck_assert_int_eq(scounts.allocs, scounts.frees);
    hbone_mem_del(cmem);
    hbone_mem_del(smem);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("scale");
    TCase *tc = tcase_create("scale");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, a_gibibyte_each_way_in_one_tunnel);
    tcase_add_test(tc, an_upstream_that_stops_reading_holds_only_its_window);
    tcase_add_test(tc, thousands_of_idle_connections);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
