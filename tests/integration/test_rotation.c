/* SPDX-License-Identifier: MIT */
/*
 * Certificate and trust-bundle rotation under live traffic. A config is
 * immutable once used, so rotating means a new config: new connections use
 * it, connections already up keep theirs, and an old config is freed with
 * the last connection that uses it.
 *
 * The PKI's "server" leaf chains to root A and "server-next" (the same
 * SPIFFE ID) to the RSA root, so a client that trusts only one of the roots
 * tells which certificate a server presented.
 */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <hbone/hbone.h>

#include "conn_pair.h"
#include "testlib.h"

#include "conn/conn_testing.h"
#include "identity/x509.h"

enum { LIVE_TUNNELS = 50, TUNNEL_BYTES = 10000 };

/* The handshake of @p client_cfg with @p server_cfg: 0 when it completes,
 * else the client's error (the server's in *@p server_err). */
static int handshake(hbone_config *client_cfg, hbone_config *server_cfg, int *server_err)
{
    struct pair p;
    pair_start(&p, client_cfg, server_cfg, SERVER_ID, 41);
    int cerr = 0, serr = 0;
    pump(&p, &cerr, &serr);
    if (cerr == 0 && serr == 0)
        ck_assert_ptr_nonnull(hbone_conn_peer_id(p.client.conn));
    pair_free(&p);
    if (server_err)
        *server_err = serr;
    return cerr ? cerr : serr;
}

/* Open LIVE_TUNNELS tunnels to the (echoing) server and send each its
 * first half. */
static void start_tunnels(struct pair *p, int32_t *ids, uint32_t *sums)
{
    p->server.auto_answer = 200;
    p->server.echo = 1;
    for (int i = 0; i < LIVE_TUNNELS; i++) {
        ids[i] = open_tunnel(p, "10.0.0.2:80");
        sums[i] = TL_CHECKSUM_INIT;
    }
    pump(p, NULL, NULL);
    for (int i = 0; i < LIVE_TUNNELS; i++)
        write_all(p, &p->client, ids[i], TUNNEL_BYTES / 2, &sums[i]);
    pump(p, NULL, NULL);
}

/* Send each tunnel its second half, end it, and check every byte came back
 * and every tunnel ended cleanly. */
static void finish_tunnels(struct pair *p, const int32_t *ids, uint32_t *sums)
{
    for (int i = 0; i < LIVE_TUNNELS; i++) {
        write_all(p, &p->client, ids[i], TUNNEL_BYTES / 2, &sums[i]);
        ck_assert_int_eq(hbone_conn_tunnel_shutdown(p->client.conn, ids[i]), 0);
    }
    pump(p, NULL, NULL);
    for (int i = 0; i < LIVE_TUNNELS; i++) {
        struct tunnel_log *l = log_of(&p->client, ids[i]);
        ck_assert_uint_eq(l->received, TUNNEL_BYTES);
        ck_assert_uint_eq(l->checksum, sums[i]);
        ck_assert_int_eq(l->closed, 1);
        ck_assert_uint_eq(l->reason, 0);
    }
}

/* The server's certificate is rotated under 50 live tunnels: they carry on
 * untouched, new handshakes present the new certificate, and the old
 * config is freed with its last connection. */
START_TEST(server_certificate_rotated_under_live_tunnels)
{
    tl_counting old_counts;
    hbone_mem *old_mem = tl_counting_mem(&old_counts, -1);
    hbone_config *old_cfg = tl_config_mem("server", NULL, old_mem);
    hbone_config *client_cfg = tl_config("client", NULL);
    struct pair live;
    pair_start(&live, client_cfg, old_cfg, SERVER_ID, 42);
    int32_t ids[LIVE_TUNNELS];
    uint32_t sums[LIVE_TUNNELS];
    start_tunnels(&live, ids, sums);

    /* Rotate: the application swaps configs and drops the old one. */
    hbone_config *new_cfg = tl_config("server-next", NULL);
    ck_assert_int_eq(hbone_config_share_server_limits(new_cfg, old_cfg), 0);
    hbone_config_del(old_cfg);
    ck_assert_int_gt(old_counts.allocs, old_counts.frees); /* the live connection holds it */

    /* New handshakes present the new certificate: only its root will do. */
    hbone_config *trusts_new = tl_config_trusting("client", "root-rsa.pem", NULL);
    hbone_config *trusts_old = tl_config_trusting("client", "root-a.pem", NULL);
    ck_assert_int_eq(handshake(trusts_new, new_cfg, NULL), 0);
    int refusal = handshake(trusts_old, new_cfg, NULL);
    ck_assert_msg(refusal == HBONE_ERR_TLS_CERT_UNTRUSTED || refusal == HBONE_ERR_ID_BUNDLE,
                  "a client trusting only the old root: %s", hbone_strerror(refusal));
    ck_assert_int_eq(handshake(client_cfg, new_cfg, NULL), 0);

    /* The tunnels from before the rotation never noticed. */
    finish_tunnels(&live, ids, sums);
    ck_assert_int_eq(hbone_conn_is_closed(live.client.conn), 0);
    pair_free(&live);
    /* All the old config's memory is back but the server count it made,
     * which the new config shares. */
    ck_assert_int_eq(old_counts.allocs - old_counts.frees, 1);

    hbone_config_del(trusts_new);
    hbone_config_del(trusts_old);
    hbone_config_del(new_cfg);
    ck_assert_int_eq(old_counts.allocs, old_counts.frees);
    hbone_config_del(client_cfg);
    hbone_mem_del(old_mem);
}
END_TEST

/* A server config whose cluster.local bundle is @p bundles (PKI files). */
static hbone_config *server_trusting(const char *const *bundles)
{
    hbone_config *cfg = tl_config_trusting("server", bundles[0], NULL);
    for (size_t i = 1; bundles[i]; i++) {
        size_t len;
        char *pem = tl_pki_read(bundles[i], &len);
        ck_assert_int_eq(hbone_config_add_trust_bundle(cfg, "cluster.local", 13, pem, len), 0);
        free(pem);
    }
    return cfg;
}

/* The trust bundle rotates from root A to the RSA root in two steps (add
 * the new root, then remove the old): clients from either root get in
 * while both are trusted, only the new ones after, and a tunnel opened
 * before the rotation carries on throughout. */
START_TEST(trust_bundle_rotated_in_two_steps)
{
    hbone_config *old_client = tl_config("client", NULL);     /* root A */
    hbone_config *new_client = tl_config("rsa-client", NULL); /* RSA root */
    const char *const before[] = {"root-a.pem", NULL},
                      *during[] = {"root-a.pem", "root-rsa.pem", NULL},
                      *after[] = {"root-rsa.pem", NULL};
    hbone_config *cfg = server_trusting(before);
    struct pair live;
    pair_start(&live, old_client, cfg, SERVER_ID, 43);
    int32_t ids[LIVE_TUNNELS];
    uint32_t sums[LIVE_TUNNELS];
    start_tunnels(&live, ids, sums);
    int server_err = 0;
    ck_assert_int_eq(handshake(old_client, cfg, NULL), 0);
    ck_assert_int_ne(handshake(new_client, cfg, &server_err), 0);
    ck_assert_int_eq(server_err, HBONE_ERR_TLS_CERT_UNTRUSTED);
    hbone_config_del(cfg);

    cfg = server_trusting(during);
    ck_assert_int_eq(handshake(old_client, cfg, NULL), 0);
    ck_assert_int_eq(handshake(new_client, cfg, NULL), 0);
    hbone_config_del(cfg);

    cfg = server_trusting(after);
    ck_assert_int_ne(handshake(old_client, cfg, &server_err), 0);
    ck_assert_int_eq(server_err, HBONE_ERR_TLS_CERT_UNTRUSTED);
    ck_assert_int_eq(handshake(new_client, cfg, NULL), 0);
    hbone_config_del(cfg);

    finish_tunnels(&live, ids, sums);
    pair_free(&live);
    hbone_config_del(old_client);
    hbone_config_del(new_client);
}
END_TEST

/* Threads set up connections from whatever config is current while the
 * main thread rotates it: every handshake completes with one of the two
 * certificates, and every config is freed (valgrind and ASan check). */
enum { SETUP_THREADS = 3, HANDSHAKES_PER_THREAD = 40, ROTATIONS = 30 };
static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static hbone_config *current;
static hbone_config *shared_client;

static hbone_config *take_current(void)
{
    pthread_mutex_lock(&current_lock);
    hbone_config *cfg = hbone_config_ref(current);
    pthread_mutex_unlock(&current_lock);
    return cfg;
}

static void *set_up_connections(void *arg)
{
    (void)arg;
    for (int i = 0; i < HANDSHAKES_PER_THREAD; i++) {
        hbone_config *cfg = take_current();
        int r = handshake(shared_client, cfg, NULL);
        hbone_config_del(cfg);
        TL_REQUIRE(r == 0, "handshake %d during rotation: %s", i, hbone_strerror(r));
    }
    return NULL;
}

START_TEST(rotation_races_with_connection_setup)
{
    shared_client = tl_config("client", NULL); /* trusts both roots */
    current = tl_config("server", NULL);
    pthread_t threads[SETUP_THREADS];
    for (int i = 0; i < SETUP_THREADS; i++)
        ck_assert_int_eq(pthread_create(&threads[i], NULL, set_up_connections, NULL), 0);
    for (int i = 0; i < ROTATIONS; i++) {
        hbone_config *next = tl_config(i % 2 ? "server" : "server-next", NULL);
        pthread_mutex_lock(&current_lock);
        ck_assert_int_eq(hbone_config_share_server_limits(next, current), 0);
        hbone_config *old = current;
        current = next;
        pthread_mutex_unlock(&current_lock);
        hbone_config_del(old); /* freed by whichever thread lets go last */
    }
    for (int i = 0; i < SETUP_THREADS; i++)
        ck_assert_int_eq(pthread_join(threads[i], NULL), 0);
    uint32_t handshakes = 99, open = 99;
    ck_assert_int_eq(hbone_config_server_load(current, &handshakes, &open), 0);
    ck_assert_uint_eq(handshakes, 0);
    ck_assert_uint_eq(open, 0);
    hbone_config_del(current);
    hbone_config_del(shared_client);
}
END_TEST

/* When the PKI's leaf @p name expires (seconds since the epoch). */
static int64_t expiry_of(const char *name)
{
    size_t len;
    uint8_t *der = tl_pki_der(name, &len);
    hb_x509_leaf leaf;
    ck_assert_int_eq(hb_x509_parse_leaf(der, len, &leaf), 0);
    free(der);
    ck_assert_int_gt(leaf.not_after, 0);
    return leaf.not_after;
}

/* A pair whose echoing server has carried 5000 bytes of a live tunnel
 * (its id in *@p live, the checksum in *@p sum). */
static void start_live_tunnel(struct pair *p, unsigned seed, int32_t *live, uint32_t *sum)
{
    pair_init(p, SERVER_ID, seed);
    p->server.auto_answer = 200;
    p->server.echo = 1;
    *live = open_tunnel(p, "10.0.0.2:80");
    *sum = TL_CHECKSUM_INIT;
    write_all(p, &p->client, *live, 5000, sum);
    pump(p, NULL, NULL);
}

/* The server's certificate expires under a live tunnel: through its
 * notAfter the client still opens tunnels; after it, none (the caller opens
 * them on a new connection), while the live tunnel carries on to a clean
 * end and the connection then closes. */
START_TEST(client_opens_nothing_once_the_server_certificate_expired)
{
    int64_t not_after = expiry_of("server.chain.pem");
    struct pair p;
    int32_t live;
    uint32_t sum;
    start_live_tunnel(&p, 44, &live, &sum);
    hb_conn_set_wall_clock(p.client.conn, not_after);
    int32_t last = open_tunnel(&p, "10.0.0.2:81");
    hb_conn_set_wall_clock(p.client.conn, not_after + 1);
    int32_t refused = 0;
    ck_assert_int_eq(hbone_conn_tunnel_open(p.client.conn, "10.0.0.2:82", 11, NULL, NULL, NULL,
                                            NULL, 0, &refused),
                     HBONE_ERR_INVALID_STATE);
    pump(&p, NULL, NULL);
    ck_assert_int_eq(log_of(&p.server, last)->requested, 1);
    ck_assert_int_eq(hbone_conn_tunnel_shutdown(p.client.conn, last), 0);
    write_all(&p, &p.client, live, 5000, &sum);
    ck_assert_int_eq(hbone_conn_tunnel_shutdown(p.client.conn, live), 0);
    pump(&p, NULL, NULL);
    struct tunnel_log *l = log_of(&p.client, live);
    ck_assert_uint_eq(l->received, 10000);
    ck_assert_uint_eq(l->checksum, sum);
    ck_assert_int_eq(l->closed, 1);
    ck_assert_uint_eq(l->reason, 0);
    ck_assert_int_eq(hbone_conn_is_closed(p.client.conn), 1);
    pair_free(&p);
}
END_TEST

/* The client's certificate expires under a live tunnel: the server refuses
 * new tunnels (REFUSED_STREAM, so that the client may retry elsewhere, and
 * GOAWAY) without its application seeing them; the live tunnel carries
 * on. */
START_TEST(server_refuses_tunnels_once_the_client_certificate_expired)
{
    int64_t not_after = expiry_of("client.chain.pem");
    struct pair p;
    int32_t live;
    uint32_t sum;
    start_live_tunnel(&p, 45, &live, &sum);
    hb_conn_set_wall_clock(p.server.conn, not_after + 1);
    int32_t late = open_tunnel(&p, "10.0.0.2:81");
    pump(&p, NULL, NULL);
    ck_assert_int_eq(log_of(&p.server, late)->requested, 0);
    ck_assert_int_eq(log_of(&p.client, late)->closed, 1);
    ck_assert_uint_eq(log_of(&p.client, late)->reason, 0x7); /* REFUSED_STREAM */
    int32_t after_goaway = 0;
    ck_assert_int_eq(hbone_conn_tunnel_open(p.client.conn, "10.0.0.2:82", 11, NULL, NULL, NULL,
                                            NULL, 0, &after_goaway),
                     HBONE_ERR_INVALID_STATE);
    write_all(&p, &p.client, live, 5000, &sum);
    ck_assert_int_eq(hbone_conn_tunnel_shutdown(p.client.conn, live), 0);
    pump(&p, NULL, NULL);
    struct tunnel_log *l = log_of(&p.client, live);
    ck_assert_uint_eq(l->received, 10000);
    ck_assert_uint_eq(l->checksum, sum);
    ck_assert_uint_eq(l->reason, 0);
    ck_assert_int_eq(hbone_conn_is_closed(p.server.conn), 1);
    pair_free(&p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rotation");
    TCase *tc = tcase_create("rotation");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, server_certificate_rotated_under_live_tunnels);
    tcase_add_test(tc, trust_bundle_rotated_in_two_steps);
    tcase_add_test(tc, rotation_races_with_connection_setup);
    tcase_add_test(tc, client_opens_nothing_once_the_server_certificate_expired);
    tcase_add_test(tc, server_refuses_tunnels_once_the_client_certificate_expired);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
