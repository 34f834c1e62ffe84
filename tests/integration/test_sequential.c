/* SPDX-License-Identifier: MIT */
/*
 * One connection over a long life: a million tunnels one batch after
 * another, each moving checksummed bytes both ways to a clean end, while
 * the memory both sides hold stays where it was after the first batches.
 */
#include <check.h>
#include <string.h>

#include <hbone/hbone.h>

#include "conn_pair.h"
#include "testlib.h"

enum { BATCH = 100, WARM_UP_BATCHES = 10, PAYLOAD = 8 };

/* BATCH tunnels, each echoing PAYLOAD bytes and ending cleanly on both
 * sides; returns the id of the last. */
static int32_t run_batch(struct pair *p, unsigned long batch)
{
    p->client.n_tunnels = p->server.n_tunnels = 0; /* fresh logs */
    int32_t ids[BATCH];
    uint32_t sums[BATCH];
    for (int i = 0; i < BATCH; i++) {
        ids[i] = open_tunnel(p, "10.0.0.2:80");
        uint8_t payload[PAYLOAD];
        for (int j = 0; j < PAYLOAD; j++)
            payload[j] = (uint8_t)(batch * 7 + (unsigned long)i * 3 + (unsigned long)j);
        size_t accepted = 0;
        int r = hbone_conn_tunnel_write(p->client.conn, ids[i], payload, PAYLOAD, &accepted);
        if (r == 0)
            r = hbone_conn_tunnel_shutdown(p->client.conn, ids[i]);
        TL_REQUIRE(r == 0 && accepted == PAYLOAD, "tunnel %d: %s", (int)ids[i], hbone_strerror(r));
        sums[i] = tl_checksum(TL_CHECKSUM_INIT, payload, PAYLOAD);
    }
    pump(p, NULL, NULL);
    for (int i = 0; i < BATCH; i++) {
        struct tunnel_log *c = log_of(&p->client, ids[i]), *s = log_of(&p->server, ids[i]);
        TL_REQUIRE(c->closed == 1 && c->reason == 0 && c->received == PAYLOAD &&
                       c->checksum == sums[i] && s->closed == 1 && s->reason == 0,
                   "batch %lu, tunnel %d: closed %d reason %u received %zu", batch, (int)ids[i],
                   c->closed, (unsigned)c->reason, c->received);
    }
    return ids[BATCH - 1];
}

START_TEST(a_million_sequential_tunnels_keep_memory_flat)
{
    long tunnels = tl_scale(1000000, 20000);
    tl_counting counts;
    hbone_mem *mem = tl_counting_mem(&counts, -1);
    pair_mem = mem;
    struct pair p;
    pair_init(&p, SERVER_ID, 21);
    pair_mem = NULL;
    p.server.auto_answer = 200;
    p.server.echo = 1;
    long warm_allocs = 0;
    size_t warm_bytes = 0;
    int32_t last = 0;
    for (unsigned long batch = 0; batch < (unsigned long)(tunnels / BATCH); batch++) {
        last = run_batch(&p, batch);
        if (batch + 1 == WARM_UP_BATCHES) {
            warm_allocs = counts.allocs - counts.frees;
            warm_bytes = counts.live_bytes;
        }
        /* No tunnel is open between batches: nothing may have grown. */
        if (batch + 1 >= WARM_UP_BATCHES) {
            TL_REQUIRE(counts.allocs - counts.frees <= warm_allocs &&
                           counts.live_bytes <= warm_bytes,
                       "after %lu tunnels: %ld allocations, %zu bytes live (%ld, %zu after "
                       "the warm-up)",
                       (batch + 1) * BATCH, counts.allocs - counts.frees, counts.live_bytes,
                       warm_allocs, warm_bytes);
        }
    }
    /* Client stream ids are odd, from 1: this was the millionth. */
    ck_assert_int_eq(last, 2 * tunnels - 1);
    ck_assert_int_eq(hbone_conn_is_closed(p.client.conn), 0);
    pair_free(&p);
    ck_assert_int_eq(counts.allocs, counts.frees);
    hbone_mem_del(mem);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sequential");
    TCase *tc = tcase_create("sequential");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, a_million_sequential_tunnels_keep_memory_flat);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
