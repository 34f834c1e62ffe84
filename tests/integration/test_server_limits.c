/* SPDX-License-Identifier: MIT */
/*
 * Server limits: how many connections a config admits in their TLS
 * handshake and open at once (hbone_config_set_server_limits), counted
 * across the configs of a certificate rotation and across threads.
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <hbone/hbone.h>

#include "testlib.h"

#define SERVER_ID "spiffe://cluster.local/ns/default/sa/server"

static void assert_load(const hbone_config *cfg, uint32_t handshakes, uint32_t connections)
{
    uint32_t h = 99, c = 99;
    ck_assert_int_eq(hbone_config_server_load(cfg, &h, &c), 0);
    ck_assert_uint_eq(h, handshakes);
    ck_assert_uint_eq(c, connections);
}

static hbone_conn *server_conn(hbone_config *cfg)
{
    hbone_conn *conn = NULL;
    ck_assert_int_eq(hbone_conn_server_new(&conn, cfg, NULL, NULL, 1), 0);
    return conn;
}

static void assert_refused(hbone_config *cfg)
{
    hbone_conn *conn = (hbone_conn *)&conn;
    ck_assert_int_eq(hbone_conn_server_new(&conn, cfg, NULL, NULL, 1), HBONE_ERR_LIMIT);
    ck_assert_ptr_null(conn);
}

/* Move ciphertext both ways until neither side has anything to say. */
static void pump(hbone_conn *a, hbone_conn *b)
{
    for (int moved = 1; moved;) {
        moved = 0;
        hbone_conn *from[2] = {a, b}, *to[2] = {b, a};
        for (int i = 0; i < 2; i++) {
            size_t len, used;
            const uint8_t *out = hbone_conn_output(from[i], &len, 1);
            if (!len)
                continue;
            ck_assert_int_eq(hbone_conn_input(to[i], out, len, &used, 1), 0);
            ck_assert_uint_eq(used, len);
            hbone_conn_output_consume(from[i], len);
            moved = 1;
        }
    }
}

/* Complete @p server's handshake with a fresh client. */
static void handshake(hbone_conn *server, hbone_config *client_cfg)
{
    hbone_conn *client;
    ck_assert_int_eq(hbone_conn_client_new(&client, client_cfg, NULL, NULL, 1), 0);
    hbone_spiffe_id *id = tl_id(SERVER_ID);
    ck_assert_int_eq(hbone_conn_expect_peer(client, id), 0);
    hbone_spiffe_id_del(id);
    pump(client, server);
    ck_assert_ptr_nonnull(hbone_conn_peer_id(server));
    hbone_conn_del(client);
}

/* Each limit holds on its own, and a slot comes back when its connection
 * finishes its handshake or goes. */
START_TEST(each_limit_admits_exactly_its_number)
{
    hbone_config *scfg = tl_config("server", NULL), *ccfg = tl_config("client", NULL);
    ck_assert_int_eq(hbone_config_set_server_limits(scfg, 2, 3), 0);
    hbone_conn *a = server_conn(scfg), *b = server_conn(scfg);
    assert_load(scfg, 2, 2);
    assert_refused(scfg); /* 2 handshakes pending */
    assert_load(scfg, 2, 2);
    handshake(a, ccfg);
    assert_load(scfg, 1, 2);
    hbone_conn *c = server_conn(scfg);
    assert_load(scfg, 2, 3);
    handshake(b, ccfg);
    assert_load(scfg, 1, 3);
    assert_refused(scfg); /* 3 connections open */
    hbone_conn_del(a);
    assert_load(scfg, 1, 2);
    hbone_conn *d = server_conn(scfg);
    /* One that never completes its handshake counts as one until it goes. */
    ck_assert_int_eq(hbone_conn_handle_expiry(c, 1 + 10000), HBONE_ERR_TIMEOUT);
    assert_load(scfg, 2, 3);
    hbone_conn_del(c);
    hbone_conn_del(d);
    assert_load(scfg, 0, 1);
    hbone_conn_del(b);
    assert_load(scfg, 0, 0);
    hbone_config_del(scfg);
    hbone_config_del(ccfg);
}
END_TEST

/* 128 handshakes by default; client connections are not counted; 0 is no
 * limit. */
START_TEST(defaults_and_no_limit)
{
    enum { DEFAULT_HANDSHAKES = 128, MANY = 300 };
    static hbone_conn *conns[MANY];
    hbone_config *scfg = tl_config("server", NULL);
    for (int i = 0; i < DEFAULT_HANDSHAKES; i++)
        conns[i] = server_conn(scfg);
    assert_refused(scfg);
    for (int i = 0; i < DEFAULT_HANDSHAKES; i++)
        hbone_conn_del(conns[i]);
    hbone_config_del(scfg);

    hbone_config *ccfg = tl_config("client", NULL);
    ck_assert_int_eq(hbone_config_set_server_limits(ccfg, 1, 1), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(hbone_conn_client_new(&conns[i], ccfg, NULL, NULL, 1), 0);
    assert_load(ccfg, 0, 0);
    for (int i = 0; i < 3; i++)
        hbone_conn_del(conns[i]);
    hbone_config_del(ccfg);

    scfg = tl_config("server", NULL);
    ck_assert_int_eq(hbone_config_set_server_limits(scfg, 0, 0), 0);
    for (int i = 0; i < MANY; i++)
        conns[i] = server_conn(scfg);
    assert_load(scfg, MANY, MANY);
    for (int i = 0; i < MANY; i++)
        hbone_conn_del(conns[i]);
    assert_load(scfg, 0, 0);
    hbone_config_del(scfg);
}
END_TEST

/* A rotated config counts the connections still open on the old one, and
 * they keep counting after the old config's last reference is dropped. */
START_TEST(rotation_keeps_the_count)
{
    hbone_config *old_cfg = tl_config("server", NULL);
    ck_assert_int_eq(hbone_config_set_server_limits(old_cfg, 10, 2), 0);
    hbone_conn *a = server_conn(old_cfg), *b = server_conn(old_cfg);
    hbone_config *new_cfg = tl_config("server-next", NULL);
    ck_assert_int_eq(hbone_config_share_server_limits(new_cfg, old_cfg), 0);
    hbone_config_del(old_cfg); /* rotated out: only its connections hold it */
    assert_load(new_cfg, 2, 2);
    assert_refused(new_cfg);
    hbone_conn_del(a);
    hbone_conn *c = server_conn(new_cfg);
    assert_load(new_cfg, 2, 2);
    /* Its limits were taken too. */
    assert_refused(new_cfg);
    hbone_conn_del(b);
    hbone_conn_del(c);
    assert_load(new_cfg, 0, 0);
    hbone_config_del(new_cfg);

    /* Without sharing, each config counts only its own. */
    hbone_config *one = tl_config("server", NULL), *other = tl_config("server", NULL);
    ck_assert_int_eq(hbone_config_set_server_limits(one, 1, 1), 0);
    ck_assert_int_eq(hbone_config_set_server_limits(other, 1, 1), 0);
    a = server_conn(one);
    b = server_conn(other);
    assert_load(other, 1, 1);
    hbone_conn_del(a);
    hbone_conn_del(b);
    hbone_config_del(one);
    hbone_config_del(other);
}
END_TEST

START_TEST(setters_check_their_arguments)
{
    hbone_config *cfg = tl_config("server", NULL), *from = tl_config("server", NULL);
    ck_assert_int_eq(hbone_config_set_server_limits(NULL, 1, 1), HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_config_share_server_limits(NULL, from), HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_config_share_server_limits(cfg, NULL), HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_config_server_load(NULL, NULL, NULL), HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_config_server_load(cfg, NULL, NULL), 0);
    /* Once in use, a config's limits no longer change. */
    hbone_conn *conn = server_conn(cfg);
    ck_assert_int_eq(hbone_config_set_server_limits(cfg, 1, 1), HBONE_ERR_CONFIG_FROZEN);
    ck_assert_int_eq(hbone_config_share_server_limits(cfg, from), HBONE_ERR_CONFIG_FROZEN);
    assert_load(cfg, 1, 1);
    assert_load(from, 0, 0);
    hbone_conn_del(conn);
    hbone_config_del(cfg);
    hbone_config_del(from);
}
END_TEST

/* Threads creating and deleting server connections at once, on a config
 * and its rotated successor, each holding up to HOLD at a time: never more
 * admitted than the limit (without it, two threads alone would pass it),
 * and the count ends at zero. The test's own count goes up after an
 * admission and down before the delete, so it never exceeds the library's. */
enum { THREADS = 4, LIMIT = 3, HOLD = 2, ROUNDS = 300 };
static atomic_int live, most_live, admitted, refused;
static pthread_barrier_t start_together;

static void *churn(void *arg)
{
    hbone_config *cfg = arg;
    pthread_barrier_wait(&start_together);
    for (int i = 0; i < ROUNDS; i++) {
        hbone_conn *held[HOLD];
        int n = 0;
        for (int j = 0; j < HOLD; j++) {
            int r = hbone_conn_server_new(&held[n], cfg, NULL, NULL, 1);
            if (r == HBONE_ERR_LIMIT) {
                atomic_fetch_add(&refused, 1);
                continue;
            }
            ck_assert_int_eq(r, 0);
            n++;
            atomic_fetch_add(&admitted, 1);
            int now_live = atomic_fetch_add(&live, 1) + 1;
            int seen = atomic_load(&most_live);
            while (now_live > seen && !atomic_compare_exchange_weak(&most_live, &seen, now_live))
                ;
        }
        while (n > 0) {
            atomic_fetch_sub(&live, 1);
            hbone_conn_del(held[--n]);
        }
    }
    return NULL;
}

START_TEST(limits_hold_across_threads)
{
    hbone_config *old_cfg = tl_config("server", NULL), *new_cfg = tl_config("server-next", NULL);
    ck_assert_int_eq(hbone_config_set_server_limits(old_cfg, LIMIT, LIMIT), 0);
    ck_assert_int_eq(hbone_config_share_server_limits(new_cfg, old_cfg), 0);
    pthread_t threads[THREADS];
    ck_assert_int_eq(pthread_barrier_init(&start_together, NULL, THREADS), 0);
    for (int i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_create(&threads[i], NULL, churn, i % 2 ? new_cfg : old_cfg), 0);
    for (int i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_join(threads[i], NULL), 0);
    pthread_barrier_destroy(&start_together);
    ck_assert_int_le(atomic_load(&most_live), LIMIT);
    ck_assert_int_eq(atomic_load(&admitted) + atomic_load(&refused), THREADS * ROUNDS * HOLD);
    ck_assert_int_gt(atomic_load(&admitted), 0);
    assert_load(old_cfg, 0, 0);
    hbone_config_del(old_cfg);
    hbone_config_del(new_cfg);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("server-limits");
    TCase *tc = tcase_create("limits");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, each_limit_admits_exactly_its_number);
    tcase_add_test(tc, defaults_and_no_limit);
    tcase_add_test(tc, rotation_keeps_the_count);
    tcase_add_test(tc, setters_check_their_arguments);
    tcase_add_test(tc, limits_hold_across_threads);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
