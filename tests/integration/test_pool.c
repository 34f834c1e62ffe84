/* SPDX-License-Identifier: MIT */
/*
 * The connection pool (hbone/pool.h) driven as an application drives it:
 * for each tunnel the test asks the pool for a connection, and "dials" when
 * told to by creating a new in-memory client and server pair (conn_pair.h)
 * and handing the client to the pool. One virtual clock runs the pool and
 * every connection, so backoff and idle times are exact and nothing sleeps.
 *
 * What is checked is what pool.h promises: reuse per key (next hop, source,
 * set of expected identities), one dial per key at a time, the per-connection
 * tunnel cap and the server's SETTINGS_MAX_CONCURRENT_STREAMS, no new
 * tunnels after GOAWAY or the last stream id, identities outside the key
 * never served, backoff (100 ms doubling to 10 s) after failed dials and
 * failed or calmed-down connections and its end after a good handshake, the
 * idle hand-back, argument checks and allocation failures.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hbone/hbone.h>

#include "conn_pair.h"
#include "testlib.h"

#include "conn/conn_testing.h"
#include "tls/tls.h"

#define NEXT_HOP "10.0.0.2:15008"
#define CLIENT_ID "spiffe://cluster.local/ns/default/sa/client"
#define SOURCE_ADDRESS "10.0.0.1"
/* An identity no server of the test PKI presents. */
#define OTHER_ID "spiffe://cluster.local/ns/default/sa/payments"
#define AUTHORITY "10.0.0.7:8080"
#define ENHANCE_YOUR_CALM 0xb
/* pool.h's defaults. */
#define FIRST_BACKOFF_MS 100
#define MAX_BACKOFF_MS 10000
#define DEFAULT_IDLE_MS 300000
#define DEFAULT_CAP 100
#define MAX_PAIRS 8

static const char *const only_server[] = {SERVER_ID, NULL};
static const char *const only_other[] = {OTHER_ID, NULL};

/* --- the application around the pool ---------------------------------------- */

/* A pool, the clock it and every connection run on, and the connections
 * dialed so far (freed with the application). */
struct app {
    hbone_pool *pool;
    uint64_t now;
    struct pair *pairs[MAX_PAIRS];
    size_t n_pairs;
};

/* A pool allocating through @p mem (NULL: the C library's). */
static void app_init(struct app *a, const hbone_mem *mem)
{
    memset(a, 0, sizeof(*a));
    ck_assert_int_eq(hbone_pool_new(&a->pool, mem), 0);
    a->now = 1000; /* where every pair's clock starts (pair_start) */
}

static void app_free(struct app *a)
{
    hbone_pool_del(a->pool);
    for (size_t i = 0; i < a->n_pairs; i++) {
        pair_free(a->pairs[i]);
        free(a->pairs[i]);
    }
}

/* A key for @p next_hop from @p source_id at @p source_address, expecting
 * the NULL-terminated @p expected identities. */
static hbone_pool_key *key_of(const char *next_hop, const char *source_id,
                              const char *source_address, const char *const *expected)
{
    hbone_pool_key *key = NULL;
    ck_assert_int_eq(hbone_pool_key_new(&key, next_hop, strlen(next_hop), NULL), 0);
    ck_assert_int_eq(hbone_pool_key_set_source(key, source_id, strlen(source_id), source_address,
                                               strlen(source_address)),
                     0);
    for (size_t i = 0; expected[i]; i++) {
        hbone_spiffe_id *id = tl_id(expected[i]);
        ck_assert_int_eq(hbone_pool_key_add_expected(key, id), 0);
        hbone_spiffe_id_del(id); /* the key keeps its own copy */
    }
    return key;
}

/* The key most tests use: NEXT_HOP from the client, expecting the server. */
static hbone_pool_key *server_key(void)
{
    return key_of(NEXT_HOP, CLIENT_ID, SOURCE_ADDRESS, only_server);
}

/* A new client and server pair at the application's clock, whose client
 * expects @p expected; the server accepts tunnels and echoes them. (Its
 * connections are made at pair_start's 1000 whatever the clock: only the
 * silent-peer test runs their timers, on a pair made at 1000.) */
static struct pair *new_pair(struct app *a, const char *expected)
{
    TL_REQUIRE(a->n_pairs < MAX_PAIRS, "more than %d connections", MAX_PAIRS);
    struct pair *p = malloc(sizeof(*p));
    ck_assert_ptr_nonnull(p);
    pair_init(p, expected, 100 + (unsigned)a->n_pairs);
    p->now = a->now;
    p->server.auto_answer = 200;
    p->server.echo = 1;
    a->pairs[a->n_pairs++] = p;
    return p;
}

/* hbone_pool_get() for @p key now; *@p conn must be NULL unless it is 0. */
static int get(struct app *a, const hbone_pool_key *key, hbone_conn **conn)
{
    *conn = (hbone_conn *)&conn; /* anything but NULL: the pool must clear it */
    int r = hbone_pool_get(a->pool, key, a->now, conn);
    if (r == 0)
        ck_assert_ptr_nonnull(*conn);
    else
        ck_assert_ptr_null(*conn);
    return r;
}

/* hbone_pool_get() answers @p expected (HBONE_POOL_DIAL, HBONE_ERR_AGAIN...). */
static void expect_get(struct app *a, const hbone_pool_key *key, int expected)
{
    hbone_conn *conn;
    ck_assert_int_eq(get(a, key, &conn), expected);
}

/* The connection hbone_pool_get() hands out for @p key. */
static hbone_conn *get_conn(struct app *a, const hbone_pool_key *key)
{
    hbone_conn *conn;
    ck_assert_int_eq(get(a, key, &conn), 0);
    return conn;
}

/* HBONE_POOL_DIAL as the application answers it: a new pair whose client
 * expects @p expected, added to the pool for @p key. */
static struct pair *dial(struct app *a, const hbone_pool_key *key, const char *expected)
{
    expect_get(a, key, HBONE_POOL_DIAL);
    struct pair *p = new_pair(a, expected);
    ck_assert_int_eq(hbone_pool_add(a->pool, key, p->client.conn, a->now), 0);
    return p;
}

/* Move bytes between @p p's ends until both are quiet, at the
 * application's clock. */
static void pump_at(struct app *a, struct pair *p)
{
    p->now = a->now;
    pump(p, NULL, NULL);
}

/* A tunnel and what the client sent on it. */
struct flow {
    int32_t id;
    size_t sent;
    uint32_t sum;
};

/* A tunnel for @p key, opened on the connection the pool hands out, which
 * must be @p p's. */
static struct flow open_via_pool(struct app *a, const hbone_pool_key *key, struct pair *p)
{
    ck_assert_ptr_eq(get_conn(a, key), p->client.conn);
    p->now = a->now;
    struct flow f = {open_tunnel(p, AUTHORITY), 0, TL_CHECKSUM_INIT};
    return f;
}

/* Send @p len more bytes on @p f and let the echoes come back. */
static void flow_send(struct app *a, struct pair *p, struct flow *f, size_t len)
{
    p->now = a->now;
    write_all(p, &p->client, f->id, len, &f->sum);
    f->sent += len;
    pump(p, NULL, NULL);
    ck_assert_int_eq(log_of(&p->client, f->id)->status, 200);
}

/* End @p f: every byte went through and came back, both ends closed it
 * cleanly. */
static void flow_finish(struct app *a, struct pair *p, struct flow *f)
{
    p->now = a->now;
    ck_assert_int_eq(hbone_conn_tunnel_shutdown(p->client.conn, f->id), 0);
    pump(p, NULL, NULL);
    assert_echoed_and_closed(p, f->id, f->sent, f->sum);
}

/* The key backs off until @p until, which hbone_pool_get_expiry() names:
 * HBONE_ERR_AGAIN now and a millisecond before; the clock then stands at
 * @p until. */
static void expect_backoff_until(struct app *a, const hbone_pool_key *key, uint64_t until)
{
    expect_get(a, key, HBONE_ERR_AGAIN);
    ck_assert_uint_eq(hbone_pool_get_expiry(a->pool), until);
    ck_assert_uint_gt(until, a->now);
    a->now = until - 1;
    expect_get(a, key, HBONE_ERR_AGAIN);
    a->now = until;
}

/* The wait after @p failures failures in a row, by pool.h's rule. */
static uint64_t backoff_after(int failures, uint64_t first_ms, uint64_t max_ms)
{
    uint64_t wait = first_ms;
    for (int i = 1; i < failures && wait < max_ms; i++)
        wait *= 2;
    return wait < max_ms ? wait : max_ms;
}

/* --- reuse and keys ----------------------------------------------------------- */

/* One dial for a key, then every tunnel of the key on that connection, from
 * its handshake on. */
START_TEST(one_connection_serves_its_key)
{
    struct app a;
    app_init(&a, NULL);
    hbone_pool_key *key = server_key();
    expect_get(&a, key, HBONE_POOL_DIAL);
    /* Being dialed: nobody else dials it. */
    expect_get(&a, key, HBONE_ERR_AGAIN);
    expect_get(&a, key, HBONE_ERR_AGAIN);
    struct pair *p = new_pair(&a, SERVER_ID);
    ck_assert_int_eq(hbone_pool_add(a.pool, key, p->client.conn, a.now), 0);
    ck_assert_uint_eq(hbone_pool_size(a.pool), 1);

    /* Still in its handshake, it is handed out: the tunnel waits for it. */
    ck_assert_ptr_null(hbone_conn_peer_id(p->client.conn));
    struct flow first = open_via_pool(&a, key, p);
    struct flow second = open_via_pool(&a, key, p);
    flow_send(&a, p, &first, 3000);
    ck_assert_ptr_nonnull(hbone_conn_peer_id(p->client.conn));
    struct flow third = open_via_pool(&a, key, p);
    flow_send(&a, p, &second, 5000);
    flow_send(&a, p, &third, 7000);
    flow_finish(&a, p, &first);
    flow_finish(&a, p, &second);
    flow_finish(&a, p, &third);
    ck_assert_int_eq(p->server.handshakes, 1);
    ck_assert_uint_eq(hbone_pool_size(a.pool), 1);

    /* The pool keeps its own copy of the key: an equal one, made anew,
     * finds the connection after the first is gone. */
    hbone_pool_key_del(key);
    key = server_key();
    struct flow again = open_via_pool(&a, key, p);
    flow_send(&a, p, &again, 100);
    flow_finish(&a, p, &again);
    hbone_pool_key_del(key);
    app_free(&a);
}
END_TEST

/* A connection serves only its own key: another next hop, source identity,
 * source address or set of expected identities dials its own. The set is a
 * set: the same identities in another order are the same key, and the next
 * hop is compared by its bytes, whatever follows them. */
START_TEST(keys_that_differ_never_share)
{
    struct app a;
    app_init(&a, NULL);
    hbone_pool_key *key = server_key();
    struct pair *p = dial(&a, key, SERVER_ID);
    pump_at(&a, p);
    ck_assert_ptr_eq(get_conn(&a, key), p->client.conn);
    open_tunnel(p, AUTHORITY); /* the conn handed out takes its tunnel */

    static const char *const server_and_other[] = {SERVER_ID, OTHER_ID, NULL};
    hbone_pool_key *others[] = {
        key_of("10.0.0.3:15008", CLIENT_ID, SOURCE_ADDRESS, only_server),
        key_of("10.0.0.2:1500", CLIENT_ID, SOURCE_ADDRESS, only_server),
        key_of(NEXT_HOP, "spiffe://cluster.local/ns/default/sa/client2", SOURCE_ADDRESS,
               only_server),
        key_of(NEXT_HOP, CLIENT_ID, "10.0.0.9", only_server),
        key_of(NEXT_HOP, CLIENT_ID, "", only_server),
        key_of(NEXT_HOP, CLIENT_ID, SOURCE_ADDRESS, server_and_other),
    };
    size_t n_others = sizeof(others) / sizeof(others[0]);
    for (size_t i = 0; i < n_others; i++)
        expect_get(&a, others[i], HBONE_POOL_DIAL);
    /* The first key is not held up by those dials. */
    ck_assert_ptr_eq(get_conn(&a, key), p->client.conn);
    open_tunnel(p, AUTHORITY);

    /* The next hop is its first next_hop_len bytes. */
    hbone_pool_key *same_hop = NULL;
    ck_assert_int_eq(hbone_pool_key_new(&same_hop, NEXT_HOP "99", strlen(NEXT_HOP), NULL), 0);
    ck_assert_int_eq(hbone_pool_key_set_source(same_hop, CLIENT_ID, strlen(CLIENT_ID),
                                               SOURCE_ADDRESS, strlen(SOURCE_ADDRESS)),
                     0);
    hbone_spiffe_id *server = tl_id(SERVER_ID);
    ck_assert_int_eq(hbone_pool_key_add_expected(same_hop, server), 0);
    hbone_spiffe_id_del(server);
    ck_assert_ptr_eq(get_conn(&a, same_hop), p->client.conn);
    open_tunnel(p, AUTHORITY);

    /* Two expected identities, dialed in one order, found in the other. */
    static const char *const other_and_server[] = {OTHER_ID, SERVER_ID, NULL};
    hbone_pool_key *both = key_of("10.0.0.4:15008", CLIENT_ID, SOURCE_ADDRESS, server_and_other);
    hbone_pool_key *both_reversed =
        key_of("10.0.0.4:15008", CLIENT_ID, SOURCE_ADDRESS, other_and_server);
    struct pair *q = dial(&a, both, SERVER_ID);
    pump_at(&a, q);
    struct flow f = open_via_pool(&a, both_reversed, q);
    flow_send(&a, q, &f, 1000);
    flow_finish(&a, q, &f);

    pump_at(&a, p);
    ck_assert_uint_eq(hbone_pool_size(a.pool), 2);
    for (size_t i = 0; i < n_others; i++)
        hbone_pool_key_del(others[i]);
    hbone_pool_key_del(same_hop);
    hbone_pool_key_del(both);
    hbone_pool_key_del(both_reversed);
    hbone_pool_key_del(key);
    app_free(&a);
}
END_TEST

/* --- how many tunnels a connection takes -------------------------------------- */

/* With a cap of 3, the fourth tunnel dials a second connection; when a
 * tunnel of the first ends, the first takes the next one. */
START_TEST(tunnels_per_connection_are_capped)
{
    struct app a;
    app_init(&a, NULL);
    ck_assert_int_eq(hbone_pool_set_limits(a.pool, 3, 0), 0);
    hbone_pool_key *key = server_key();
    struct pair *first = dial(&a, key, SERVER_ID);
    pump_at(&a, first);
    struct flow on_first[3];
    for (int i = 0; i < 3; i++)
        on_first[i] = open_via_pool(&a, key, first);
    struct pair *second = dial(&a, key, SERVER_ID);
    struct flow on_second[3];
    for (int i = 0; i < 3; i++)
        on_second[i] = open_via_pool(&a, key, second);
    for (int i = 0; i < 3; i++) {
        flow_send(&a, first, &on_first[i], 2000);
        flow_send(&a, second, &on_second[i], 2000);
    }
    /* Both are full: a tunnel ending on the first makes room there. */
    flow_finish(&a, first, &on_first[1]);
    on_first[1] = open_via_pool(&a, key, first);
    flow_send(&a, first, &on_first[1], 500);
    for (int i = 0; i < 3; i++) {
        flow_finish(&a, first, &on_first[i]);
        flow_finish(&a, second, &on_second[i]);
    }
    ck_assert_uint_eq(hbone_pool_size(a.pool), 2);
    hbone_pool_key_del(key);
    app_free(&a);
}
END_TEST

/* Without a cap of the application's, a connection takes 100 tunnels (the
 * server allowing 200). */
START_TEST(the_default_cap_is_100)
{
    struct app a;
    app_init(&a, NULL);
    hbone_pool_key *key = server_key();
    pair_stream_window = 65535;
    pair_max_streams = 2 * DEFAULT_CAP;
    struct pair *p = dial(&a, key, SERVER_ID);
    pair_stream_window = pair_max_streams = 0;
    pump_at(&a, p);
    for (int i = 0; i < DEFAULT_CAP; i++)
        open_via_pool(&a, key, p);
    ck_assert_uint_gt(hbone_conn_tunnel_capacity(p->client.conn), 0); /* the server's limit */
    expect_get(&a, key, HBONE_POOL_DIAL);
    hbone_pool_key_del(key);
    app_free(&a);
}
END_TEST

/* A server allowing 2 tunnels at a time lowers the cap to 2 once its
 * SETTINGS have arrived. */
START_TEST(the_server_stream_limit_lowers_the_cap)
{
    struct app a;
    app_init(&a, NULL);
    hbone_pool_key *key = server_key();
    pair_stream_window = 65535;
    pair_max_streams = 2;
    struct pair *p = dial(&a, key, SERVER_ID);
    pair_stream_window = pair_max_streams = 0;
    pump_at(&a, p);
    ck_assert_uint_eq(hbone_conn_tunnel_capacity(p->client.conn), 2);
    struct flow f[2] = {open_via_pool(&a, key, p), open_via_pool(&a, key, p)};
    struct pair *next = dial(&a, key, SERVER_ID);
    struct flow g = open_via_pool(&a, key, next);
    for (int i = 0; i < 2; i++) {
        flow_send(&a, p, &f[i], 1000);
        flow_finish(&a, p, &f[i]);
    }
    flow_send(&a, next, &g, 1000);
    flow_finish(&a, next, &g);
    hbone_pool_key_del(key);
    app_free(&a);
}
END_TEST

/* --- identities ------------------------------------------------------------------ */

/* The server presents a valid chain for another SPIFFE ID than the key
 * expects: the handshake is aborted, the tunnel waiting on it fails without
 * reaching the server, and once the application removes the connection the
 * key backs off before its next dial. */
START_TEST(a_wrong_server_identity_fails_the_dial_and_backs_off)
{
    struct app a;
    app_init(&a, NULL);
    hbone_pool_key *key = key_of(NEXT_HOP, CLIENT_ID, SOURCE_ADDRESS, only_other);
    struct pair *p = dial(&a, key, OTHER_ID);
    struct flow f = open_via_pool(&a, key, p); /* waits for the handshake */
    int client_err = 0, server_err = 0;
    pump(p, &client_err, &server_err);
    ck_assert_int_eq(client_err, HBONE_ERR_ID_MISMATCH);
    ck_assert_int_eq(log_of(&p->server, f.id)->requested, 0);
    ck_assert_uint_eq(log_of(&p->client, f.id)->reason, HBONE_CLOSE_CONNECTION_LOST);
    hbone_pool_remove(a.pool, p->client.conn, a.now);
    ck_assert_uint_eq(hbone_pool_size(a.pool), 0);
    expect_backoff_until(&a, key, a.now + FIRST_BACKOFF_MS);
    expect_get(&a, key, HBONE_POOL_DIAL);

    /* Before the application removes it, the pool does not hand it out:
     * seeing it failed, it backs off at once. */
    hbone_pool_key *other_hop = key_of("10.0.0.3:15008", CLIENT_ID, SOURCE_ADDRESS, only_other);
    struct pair *q = dial(&a, other_hop, OTHER_ID);
    pump(q, &client_err, &server_err);
    ck_assert_int_eq(client_err, HBONE_ERR_ID_MISMATCH);
    const uint64_t failed_at = a.now;
    for (int i = 0; i < 3; i++)
        expect_get(&a, other_hop, HBONE_ERR_AGAIN);
    /* One failed connection is one failure, whichever call noticed it. */
    a.now += 10;
    hbone_pool_remove(a.pool, q->client.conn, a.now);
    expect_backoff_until(&a, other_hop, failed_at + FIRST_BACKOFF_MS);
    hbone_pool_key_del(key);
    hbone_pool_key_del(other_hop);
    app_free(&a);
}
END_TEST

/* A connection added for a key, but verified as a server outside the key's
 * expected set (its application expected another identity of it): its
 * handshake succeeds, and the pool never hands it out for that key. */
START_TEST(a_verified_identity_outside_the_key_is_never_served)
{
    struct app a;
    app_init(&a, NULL);
    hbone_pool_key *key = key_of(NEXT_HOP, CLIENT_ID, SOURCE_ADDRESS, only_other);
    struct pair *p = dial(&a, key, SERVER_ID);
    pump_at(&a, p);
    ck_assert_str_eq(hbone_spiffe_id_str(hbone_conn_peer_id(p->client.conn), NULL), SERVER_ID);
    ck_assert_uint_gt(hbone_conn_tunnel_capacity(p->client.conn), 0);
    for (int i = 0; i < 3; i++) {
        hbone_conn *conn;
        ck_assert_int_ne(get(&a, key, &conn), 0);
        a.now += 1000;
    }
    hbone_pool_key_del(key);
    app_free(&a);
}
END_TEST

/* --- connections that take no new tunnels --------------------------------------- */

/* The server drains: once its GOAWAY is in, new tunnels dial a new
 * connection, while the tunnel open on the old one finishes with all its
 * data. A graceful end is no failure: nothing backs off. */
START_TEST(a_draining_connection_takes_no_new_tunnels)
{
    struct app a;
    app_init(&a, NULL);
    hbone_pool_key *key = server_key();
    struct pair *old = dial(&a, key, SERVER_ID);
    pump_at(&a, old);
    struct flow f = open_via_pool(&a, key, old);
    flow_send(&a, old, &f, 20000);
    ck_assert_int_eq(hbone_conn_drain(old->server.conn, a.now, 5000), 0);
    pump_at(&a, old);
    struct pair *fresh = dial(&a, key, SERVER_ID);
    struct flow g = open_via_pool(&a, key, fresh);
    flow_send(&a, fresh, &g, 1000);
    flow_send(&a, old, &f, 20000);
    flow_finish(&a, old, &f);
    hbone_pool_remove(a.pool, old->client.conn, a.now);
    ck_assert_uint_eq(hbone_pool_size(a.pool), 1);
    struct flow h = open_via_pool(&a, key, fresh);
    flow_send(&a, fresh, &h, 1000);
    flow_finish(&a, fresh, &g);
    flow_finish(&a, fresh, &h);
    hbone_pool_key_del(key);
    app_free(&a);
}
END_TEST

/* A connection reaches the last stream id, 2^31 - 1: the tunnel that takes
 * it opens there, the next one dials a new connection, and the old tunnels
 * carry on to a clean end. */
START_TEST(a_connection_out_of_stream_ids_takes_no_new_tunnels)
{
    struct app a;
    app_init(&a, NULL);
    hbone_pool_key *key = server_key();
    struct pair *old = dial(&a, key, SERVER_ID);
    pump_at(&a, old);
    struct flow f[3];
    f[0] = open_via_pool(&a, key, old);
    flow_send(&a, old, &f[0], 1000);
    ck_assert_int_eq(hb_conn_set_next_stream_id(old->client.conn, INT32_MAX - 2), 0);
    f[1] = open_via_pool(&a, key, old);
    f[2] = open_via_pool(&a, key, old);
    ck_assert_int_eq(f[2].id, INT32_MAX);
    struct pair *fresh = dial(&a, key, SERVER_ID);
    struct flow g = open_via_pool(&a, key, fresh);
    for (int i = 0; i < 3; i++) {
        flow_send(&a, old, &f[i], 30000);
        flow_finish(&a, old, &f[i]);
    }
    flow_send(&a, fresh, &g, 1000);
    flow_finish(&a, fresh, &g);
    hbone_pool_key_del(key);
    app_free(&a);
}
END_TEST

/* --- failures and backoff -------------------------------------------------------- */

/* A byte queue. */
struct bytes {
    uint8_t *b;
    size_t len;
};

static void bytes_push(struct bytes *q, const uint8_t *data, size_t len)
{
    q->b = realloc(q->b, q->len + len);
    ck_assert_ptr_nonnull(q->b);
    memcpy(q->b + q->len, data, len);
    q->len += len;
}

static void bytes_pop(struct bytes *q, size_t n)
{
    memmove(q->b, q->b + n, q->len - n);
    q->len -= n;
}

/* An overloaded server, scripted over a real TLS session: it completes the
 * handshake as "server" (so the client's handshake succeeds), then its
 * HTTP/2 says only SETTINGS and GOAWAY(ENHANCE_YOUR_CALM), when told to, and
 * ignores what the client says. */
struct calm_server {
    hb_tls *tls;
    struct bytes from_client;
    int handshake_done, client_done, said;
};

/* Move bytes between @p s and @p client until both are quiet; once the
 * handshake is done and if @p calm_down, say SETTINGS and GOAWAY. */
static void calm_exchange(struct calm_server *s, hbone_conn *client, uint64_t now, int calm_down)
{
    /* An empty SETTINGS frame, then GOAWAY(last stream 0, ENHANCE_YOUR_CALM). */
    static const uint8_t frames[] = {0, 0, 0, 0x4, 0, 0, 0, 0, 0, 0, 0, 8, 0x7,
                                     0, 0, 0, 0,   0, 0, 0, 0, 0, 0, 0, 0, ENHANCE_YOUR_CALM};
    int progress = 1;
    for (int round = 0; progress && round < 1000; round++) {
        progress = 0;
        size_t len, consumed = 0;
        const uint8_t *out = hbone_conn_output(client, &len, now);
        if (len) {
            bytes_push(&s->from_client, out, len);
            hbone_conn_output_consume(client, len);
            progress = 1;
        }
        if (!s->handshake_done) {
            int r = hb_tls_handshake(s->tls, s->from_client.b, s->from_client.len, &consumed);
            TL_REQUIRE(r == 0 || r == HBONE_ERR_AGAIN, "scripted server: %s",
                       hb_tls_error_detail(s->tls));
            s->handshake_done = r == 0;
        } else if (!s->client_done) {
            uint8_t ignored[4096];
            size_t nread = 0;
            int r = hb_tls_read(s->tls, s->from_client.b, s->from_client.len, &consumed, ignored,
                                sizeof(ignored), &nread);
            TL_REQUIRE(r == 0 || r == HBONE_ERR_AGAIN || r == HBONE_ERR_CLOSED,
                       "scripted server: %s", hb_tls_error_detail(s->tls));
            s->client_done = r == HBONE_ERR_CLOSED;
            progress |= nread > 0;
        }
        bytes_pop(&s->from_client, consumed);
        progress |= consumed > 0;
        if (s->handshake_done && calm_down && !s->said) {
            ck_assert_int_eq(hb_tls_write(s->tls, frames, sizeof(frames)), 0);
            s->said = progress = 1;
        }
        const uint8_t *reply = hb_tls_output(s->tls, &len);
        if (len) {
            consumed = 0;
            ck_assert_int_eq(hbone_conn_input(client, reply, len, &consumed, now), 0);
            hb_tls_output_consume(s->tls, consumed);
            progress |= consumed > 0;
        }
    }
}

/* HBONE_POOL_DIAL answered with a connection to a server that calms it
 * down right after the handshake; if @p tunnel_waits, a tunnel is asked of
 * the pool in between (as the tunnels that made the application dial
 * would), and is refused by the GOAWAY. The application then removes and
 * frees the connection. */
static void dial_calm_server(struct app *a, const hbone_pool_key *key, hbone_config *client_cfg,
                             hbone_config *server_cfg, int tunnel_waits)
{
    hbone_conn *conn;
    ck_assert_int_eq(hbone_conn_client_new(&conn, client_cfg, NULL, NULL, a->now), 0);
    hbone_spiffe_id *server = tl_id(SERVER_ID);
    ck_assert_int_eq(hbone_conn_expect_peer(conn, server), 0);
    hbone_spiffe_id_del(server);
    ck_assert_int_eq(hbone_pool_add(a->pool, key, conn, a->now), 0);
    struct calm_server s = {0};
    ck_assert_int_eq(hb_tls_new(&s.tls, server_cfg, HB_TLS_SERVER), 0);
    calm_exchange(&s, conn, a->now, 0);
    ck_assert_ptr_nonnull(hbone_conn_peer_id(conn)); /* the handshake completed */
    if (tunnel_waits) {
        ck_assert_ptr_eq(get_conn(a, key), conn);
        int32_t tunnel = 0;
        ck_assert_int_eq(hbone_conn_tunnel_open(conn, AUTHORITY, strlen(AUTHORITY), NULL, NULL,
                                                NULL, NULL, 0, &tunnel),
                         0);
    }
    calm_exchange(&s, conn, a->now, 1);
    ck_assert_int_eq(s.said, 1);
    ck_assert_uint_eq(hbone_conn_peer_goaway_error(conn), ENHANCE_YOUR_CALM);
    ck_assert_uint_eq(hbone_conn_tunnel_capacity(conn), 0);
    ck_assert_uint_eq(hbone_conn_tunnel_count(conn), 0); /* the waiting tunnel was refused */
    free(s.from_client.b);
    hb_tls_del(s.tls);
    hbone_pool_remove(a->pool, conn, a->now);
    hbone_conn_del(conn);
}

/* A server that completes every handshake and then answers
 * GOAWAY(ENHANCE_YOUR_CALM) sees no retry storm: over a minute the waits
 * between dials run 100 ms, 200 ms... up to 10 s and never shrink, twelve
 * dials in all; whether or not a tunnel was handed the connection between
 * its handshake and the GOAWAY (_i 1 and 0). A server that completes its
 * handshake and ends gracefully ends the backoff: the next failure waits
 * 100 ms again. */
START_TEST(a_calmed_down_key_sees_no_retry_storm)
{
    struct app a;
    app_init(&a, NULL);
    hbone_pool_key *key = server_key();
    hbone_config *client_cfg = tl_config("client", NULL), *server_cfg = tl_config("server", NULL);
    const uint64_t start = a.now;
    uint64_t last_dial = 0;
    int dials = 0;
    while (a.now < start + 60000) {
        hbone_conn *conn;
        int r = get(&a, key, &conn);
        if (r == HBONE_ERR_AGAIN) {
            uint64_t next = hbone_pool_get_expiry(a.pool);
            ck_assert_uint_gt(next, a.now);
            a.now = next;
            continue;
        }
        ck_assert_int_eq(r, HBONE_POOL_DIAL);
        if (dials > 0)
            ck_assert_uint_eq(a.now - last_dial,
                              backoff_after(dials, FIRST_BACKOFF_MS, MAX_BACKOFF_MS));
        last_dial = a.now;
        dials++;
        dial_calm_server(&a, key, client_cfg, server_cfg, _i);
    }
    /* 0, 0.1, 0.3, 0.7, 1.5, 3.1, 6.3, 12.7, 22.7, 32.7, 42.7, 52.7 s. */
    ck_assert_int_lt(dials, 15);
    ck_assert_int_eq(dials, 12);

    /* The server recovers: a handshake, a tunnel, a graceful drain. */
    a.now = hbone_pool_get_expiry(a.pool);
    struct pair *healthy = dial(&a, key, SERVER_ID);
    pump_at(&a, healthy);
    struct flow f = open_via_pool(&a, key, healthy);
    flow_send(&a, healthy, &f, 1000);
    flow_finish(&a, healthy, &f);
    ck_assert_int_eq(hbone_conn_drain(healthy->server.conn, a.now, 1000), 0);
    pump_at(&a, healthy);
    hbone_pool_remove(a.pool, healthy->client.conn, a.now);
    /* Then it calms the next connection down: the backoff starts over. */
    expect_get(&a, key, HBONE_POOL_DIAL);
    dial_calm_server(&a, key, client_cfg, server_cfg, _i);
    expect_backoff_until(&a, key, a.now + FIRST_BACKOFF_MS);
    expect_get(&a, key, HBONE_POOL_DIAL);
    hbone_config_del(client_cfg);
    hbone_config_del(server_cfg);
    hbone_pool_key_del(key);
    app_free(&a);
}
END_TEST

/* Lose @p conn's output: the network between the ends is gone. */
static void drop_output(hbone_conn *conn, uint64_t now)
{
    size_t len;
    (void)hbone_conn_output(conn, &len, now);
    hbone_conn_output_consume(conn, len);
}

/* The server goes silent: the client's keepalive PING goes unanswered and
 * the connection ends. It had completed its handshake, so this is no
 * reason to back off: the next tunnel dials a fresh connection at once. */
START_TEST(a_silent_peer_is_replaced_at_once)
{
    struct app a;
    app_init(&a, NULL);
    hbone_pool_key *key = server_key();
    struct pair *old = dial(&a, key, SERVER_ID);
    pump_at(&a, old);
    struct flow f = open_via_pool(&a, key, old);
    flow_send(&a, old, &f, 1000);
    int r = 0;
    for (int i = 0; i < 10 && r == 0; i++) {
        a.now = hbone_conn_get_expiry(old->client.conn);
        r = hbone_conn_handle_expiry(old->client.conn, a.now);
        drop_output(old->client.conn, a.now);
    }
    ck_assert_int_eq(r, HBONE_ERR_TIMEOUT);
    ck_assert_uint_eq(log_of(&old->client, f.id)->reason, HBONE_CLOSE_CONNECTION_LOST);
    struct pair *fresh = dial(&a, key, SERVER_ID);
    hbone_pool_remove(a.pool, old->client.conn, a.now);
    struct flow g = open_via_pool(&a, key, fresh);
    flow_send(&a, fresh, &g, 1000);
    flow_finish(&a, fresh, &g);
    ck_assert_uint_eq(hbone_pool_size(a.pool), 1);
    hbone_pool_key_del(key);
    app_free(&a);
}
END_TEST

/* The transport of a connection ends. In its handshake, that is a failed
 * dial: the key backs off. After its handshake, it is not. */
START_TEST(a_connection_lost_in_its_handshake_backs_off)
{
    struct app a;
    app_init(&a, NULL);
    hbone_pool_key *key = server_key();
    struct pair *early = dial(&a, key, SERVER_ID);
    drop_output(early->client.conn, a.now); /* the ClientHello, never answered */
    ck_assert_int_eq(hbone_conn_input_eof(early->client.conn), 0);
    hbone_pool_remove(a.pool, early->client.conn, a.now);
    expect_backoff_until(&a, key, a.now + FIRST_BACKOFF_MS);

    struct pair *late = dial(&a, key, SERVER_ID);
    pump_at(&a, late);
    ck_assert_ptr_nonnull(hbone_conn_peer_id(late->client.conn));
    ck_assert_int_eq(hbone_conn_input_eof(late->client.conn), 0);
    hbone_pool_remove(a.pool, late->client.conn, a.now);
    expect_get(&a, key, HBONE_POOL_DIAL);
    hbone_pool_key_del(key);
    app_free(&a);
}
END_TEST

/* Dials that cannot even start back the key off: 100 ms, then twice as long
 * after each further failure, up to 10 s. A failure reported with no dial in
 * progress is refused. hbone_pool_get_expiry() names the earliest end of a
 * backoff. */
START_TEST(failed_dials_back_off)
{
    struct app a;
    app_init(&a, NULL);
    hbone_pool_key *key = server_key();
    ck_assert_int_eq(hbone_pool_dial_failed(a.pool, key, a.now), HBONE_ERR_INVALID_ARGUMENT);
    for (int failures = 1; failures <= 10; failures++) {
        expect_get(&a, key, HBONE_POOL_DIAL);
        ck_assert_int_eq(hbone_pool_dial_failed(a.pool, key, a.now), 0);
        ck_assert_int_eq(hbone_pool_dial_failed(a.pool, key, a.now), HBONE_ERR_INVALID_ARGUMENT);
        uint64_t wait = backoff_after(failures, FIRST_BACKOFF_MS, MAX_BACKOFF_MS);
        if (failures == 10) {
            /* Another key's first failure ends first. */
            hbone_pool_key *other =
                key_of("10.0.0.3:15008", CLIENT_ID, SOURCE_ADDRESS, only_server);
            expect_get(&a, other, HBONE_POOL_DIAL);
            ck_assert_int_eq(hbone_pool_dial_failed(a.pool, other, a.now), 0);
            expect_get(&a, other, HBONE_ERR_AGAIN);
            ck_assert_uint_eq(hbone_pool_get_expiry(a.pool), a.now + FIRST_BACKOFF_MS);
            a.now += FIRST_BACKOFF_MS;
            wait -= FIRST_BACKOFF_MS;
            expect_get(&a, other, HBONE_POOL_DIAL); /* dialing now: no expiry of its own */
            hbone_pool_key_del(other);
        }
        expect_backoff_until(&a, key, a.now + wait);
    }
    /* A dial that was added is no longer in progress. */
    struct pair *p = dial(&a, key, SERVER_ID);
    ck_assert_int_eq(hbone_pool_dial_failed(a.pool, key, a.now), HBONE_ERR_INVALID_ARGUMENT);
    pump_at(&a, p);
    struct flow f = open_via_pool(&a, key, p);
    flow_send(&a, p, &f, 100);
    flow_finish(&a, p, &f);
    hbone_pool_key_del(key);
    app_free(&a);
}
END_TEST

/* hbone_pool_get_expiry() names the end of a backoff as soon as it starts,
 * after a failed dial or the removal of a failed connection: an event loop
 * sets its timer from it right then, with no other call in between. */
START_TEST(the_expiry_names_a_backoff_once_a_tunnel_waits)
{
    struct app a;
    app_init(&a, NULL);
    hbone_pool_key *key = server_key();
    expect_get(&a, key, HBONE_POOL_DIAL);
    ck_assert_int_eq(hbone_pool_dial_failed(a.pool, key, a.now), 0);
    /* Nothing waits for the key yet: no timer is needed for it. */
    ck_assert_uint_eq(hbone_pool_get_expiry(a.pool), 0);
    expect_get(&a, key, HBONE_ERR_AGAIN);
    ck_assert_uint_eq(hbone_pool_get_expiry(a.pool), a.now + FIRST_BACKOFF_MS);
    a.now += FIRST_BACKOFF_MS;
    struct pair *p = dial(&a, key, SERVER_ID);
    ck_assert_uint_eq(hbone_pool_get_expiry(a.pool), 0);       /* the dial ended the wait */
    ck_assert_int_eq(hbone_conn_input_eof(p->client.conn), 0); /* lost in its handshake */
    hbone_pool_remove(a.pool, p->client.conn, a.now);
    expect_get(&a, key, HBONE_ERR_AGAIN);
    ck_assert_uint_eq(hbone_pool_get_expiry(a.pool), a.now + 2 * FIRST_BACKOFF_MS);
    hbone_pool_key_del(key);
    app_free(&a);
}
END_TEST

/* The application's backoff: 50 ms first, at most 120 ms. */
START_TEST(the_backoff_is_configurable)
{
    struct app a;
    app_init(&a, NULL);
    ck_assert_int_eq(hbone_pool_set_backoff(a.pool, 50, 120), 0);
    hbone_pool_key *key = server_key();
    const uint64_t waits[] = {50, 100, 120, 120};
    for (size_t i = 0; i < sizeof(waits) / sizeof(waits[0]); i++) {
        expect_get(&a, key, HBONE_POOL_DIAL);
        ck_assert_int_eq(hbone_pool_dial_failed(a.pool, key, a.now), 0);
        expect_backoff_until(&a, key, a.now + waits[i]);
    }
    expect_get(&a, key, HBONE_POOL_DIAL);
    hbone_pool_key_del(key);
    app_free(&a);
}
END_TEST

/* --- idle connections ------------------------------------------------------------ */

/* With an idle timeout of 1 s, a connection whose tunnels have all ended is
 * handed back 1 s after the last ended, not before (a tunnel in between
 * starts the second over); one with a tunnel open, never. */
START_TEST(idle_connections_are_handed_back)
{
    struct app a;
    app_init(&a, NULL);
    ck_assert_int_eq(hbone_pool_set_limits(a.pool, DEFAULT_CAP, 1000), 0);
    hbone_pool_key *quiet_key = server_key();
    hbone_pool_key *busy_key = key_of("10.0.0.3:15008", CLIENT_ID, SOURCE_ADDRESS, only_server);
    struct pair *quiet = dial(&a, quiet_key, SERVER_ID), *busy = dial(&a, busy_key, SERVER_ID);
    pump_at(&a, quiet);
    pump_at(&a, busy);
    struct flow q = open_via_pool(&a, quiet_key, quiet), b = open_via_pool(&a, busy_key, busy);
    flow_send(&a, quiet, &q, 1000);
    flow_send(&a, busy, &b, 1000);
    ck_assert_uint_eq(hbone_pool_get_expiry(a.pool), 0);
    ck_assert_ptr_null(hbone_pool_take_idle(a.pool, a.now));

    a.now += 50;
    flow_finish(&a, quiet, &q);
    const uint64_t first_idle = hbone_conn_idle_since(quiet->client.conn);
    ck_assert_uint_eq(first_idle, a.now);
    ck_assert_uint_eq(hbone_pool_get_expiry(a.pool), first_idle + 1000);
    /* Used again half way: idle from the end of that use. */
    a.now += 500;
    q = open_via_pool(&a, quiet_key, quiet);
    flow_send(&a, quiet, &q, 100);
    a.now += 100;
    flow_finish(&a, quiet, &q);
    const uint64_t idle = hbone_conn_idle_since(quiet->client.conn);
    ck_assert_uint_eq(idle, a.now);
    ck_assert_uint_eq(hbone_pool_get_expiry(a.pool), idle + 1000);
    a.now = first_idle + 1000;
    ck_assert_ptr_null(hbone_pool_take_idle(a.pool, a.now));
    a.now = idle + 999;
    ck_assert_ptr_null(hbone_pool_take_idle(a.pool, a.now));
    a.now = idle + 1000;
    ck_assert_ptr_eq(hbone_pool_take_idle(a.pool, a.now), quiet->client.conn);
    ck_assert_ptr_null(hbone_pool_take_idle(a.pool, a.now));
    ck_assert_uint_eq(hbone_pool_size(a.pool), 1);
    expect_get(&a, quiet_key, HBONE_POOL_DIAL); /* the pool holds it no more */

    /* The busy one stays, however long its tunnel lasts. */
    a.now += 3600 * 1000;
    ck_assert_ptr_null(hbone_pool_take_idle(a.pool, a.now));
    ck_assert_uint_eq(hbone_pool_size(a.pool), 1);
    flow_send(&a, busy, &b, 1000);
    flow_finish(&a, busy, &b);
    a.now += 1000;
    ck_assert_ptr_eq(hbone_pool_take_idle(a.pool, a.now), busy->client.conn);
    ck_assert_uint_eq(hbone_pool_size(a.pool), 0);
    hbone_pool_key_del(quiet_key);
    hbone_pool_key_del(busy_key);
    app_free(&a);
}
END_TEST

/* A connection of @p key that served one tunnel, idle since now. */
static struct pair *idle_connection(struct app *a, const hbone_pool_key *key)
{
    struct pair *p = dial(a, key, SERVER_ID);
    pump_at(a, p);
    struct flow f = open_via_pool(a, key, p);
    flow_send(a, p, &f, 100);
    flow_finish(a, p, &f);
    ck_assert_uint_eq(hbone_conn_idle_since(p->client.conn), a->now);
    return p;
}

/* By default a connection is handed back after 5 minutes idle; with an
 * idle timeout of 0, never. */
START_TEST(the_idle_timeout_defaults_to_five_minutes)
{
    hbone_pool_key *key = server_key();
    struct app a;
    app_init(&a, NULL);
    struct pair *p = idle_connection(&a, key);
    const uint64_t idle = a.now;
    ck_assert_uint_eq(hbone_pool_get_expiry(a.pool), idle + DEFAULT_IDLE_MS);
    a.now = idle + DEFAULT_IDLE_MS - 1;
    ck_assert_ptr_null(hbone_pool_take_idle(a.pool, a.now));
    a.now = idle + DEFAULT_IDLE_MS;
    ck_assert_ptr_eq(hbone_pool_take_idle(a.pool, a.now), p->client.conn);
    app_free(&a);

    app_init(&a, NULL);
    ck_assert_int_eq(hbone_pool_set_limits(a.pool, DEFAULT_CAP, 0), 0);
    idle_connection(&a, key);
    ck_assert_uint_eq(hbone_pool_get_expiry(a.pool), 0);
    a.now += 10ull * 24 * 3600 * 1000;
    ck_assert_ptr_null(hbone_pool_take_idle(a.pool, a.now));
    ck_assert_uint_eq(hbone_pool_size(a.pool), 1);
    app_free(&a);
    hbone_pool_key_del(key);
}
END_TEST

/* --- arguments and allocation failures ------------------------------------------ */

START_TEST(arguments_are_checked)
{
    struct app a;
    app_init(&a, NULL);
    hbone_spiffe_id *server = tl_id(SERVER_ID);
    hbone_conn *conn = NULL;

    /* Keys. */
    hbone_pool_key *bare = NULL;
    ck_assert_int_eq(hbone_pool_key_new(NULL, NEXT_HOP, strlen(NEXT_HOP), NULL),
                     HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_pool_key_new(&bare, NULL, 5, NULL), HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_pool_key_new(&bare, NEXT_HOP, 0, NULL), HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(bare);
    hbone_pool_key_del(NULL);
    ck_assert_int_eq(hbone_pool_key_new(&bare, NEXT_HOP, strlen(NEXT_HOP), NULL), 0);
    ck_assert_int_eq(hbone_pool_key_set_source(NULL, CLIENT_ID, strlen(CLIENT_ID), NULL, 0),
                     HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_pool_key_set_source(bare, NULL, 3, NULL, 0), HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_pool_key_set_source(bare, NULL, 0, NULL, 4), HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_pool_key_set_source(bare, NULL, 0, NULL, 0), 0); /* both empty */
    ck_assert_int_eq(hbone_pool_key_add_expected(NULL, server), HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_pool_key_add_expected(bare, NULL), HBONE_ERR_INVALID_ARGUMENT);
    hbone_pool_key_del(bare);

    /* Pools. */
    ck_assert_int_eq(hbone_pool_new(NULL, NULL), HBONE_ERR_INVALID_ARGUMENT);
    hbone_pool_del(NULL);
    ck_assert_int_eq(hbone_pool_set_limits(NULL, 1, 1000), HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_pool_set_limits(a.pool, 0, 1000), HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_pool_set_limits(a.pool, 1, 0), 0);
    ck_assert_int_eq(hbone_pool_set_backoff(NULL, 100, 10000), HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_pool_set_backoff(a.pool, 0, 10000), HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_pool_set_backoff(a.pool, 100, 99), HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_pool_set_backoff(a.pool, 100, 0), HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_pool_set_backoff(a.pool, 100, 100), 0);
    ck_assert_int_eq(hbone_pool_set_backoff(a.pool, FIRST_BACKOFF_MS, MAX_BACKOFF_MS), 0);
    ck_assert_ptr_null(hbone_pool_take_idle(NULL, a.now));
    ck_assert_uint_eq(hbone_pool_get_expiry(NULL), 0);
    ck_assert_uint_eq(hbone_pool_size(NULL), 0);

    /* Getting, adding, failing and removing. */
    hbone_pool_key *key = server_key();
    conn = (hbone_conn *)&conn;
    ck_assert_int_eq(hbone_pool_get(NULL, key, a.now, &conn), HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(conn);
    conn = (hbone_conn *)&conn;
    ck_assert_int_eq(hbone_pool_get(a.pool, NULL, a.now, &conn), HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(conn);
    ck_assert_int_eq(hbone_pool_get(a.pool, key, a.now, NULL), HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_pool_dial_failed(NULL, key, a.now), HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_pool_dial_failed(a.pool, NULL, a.now), HBONE_ERR_INVALID_ARGUMENT);
    struct pair *p = new_pair(&a, SERVER_ID);
    expect_get(&a, key, HBONE_POOL_DIAL);
    ck_assert_int_eq(hbone_pool_add(NULL, key, p->client.conn, a.now), HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_pool_add(a.pool, NULL, p->client.conn, a.now),
                     HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_pool_add(a.pool, key, NULL, a.now), HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_pool_add(a.pool, key, p->server.conn, a.now),
                     HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_uint_eq(hbone_pool_size(a.pool), 0);
    ck_assert_int_eq(hbone_pool_add(a.pool, key, p->client.conn, a.now), 0);
    ck_assert_int_eq(hbone_pool_add(a.pool, key, p->client.conn, a.now),
                     HBONE_ERR_INVALID_ARGUMENT);
    hbone_pool_key *other = key_of("10.0.0.3:15008", CLIENT_ID, SOURCE_ADDRESS, only_server);
    expect_get(&a, other, HBONE_POOL_DIAL);
    ck_assert_int_eq(hbone_pool_add(a.pool, other, p->client.conn, a.now),
                     HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_uint_eq(hbone_pool_size(a.pool), 1);
    /* Removing what the pool does not hold changes nothing: no connection
     * goes... */
    struct pair *stranger = new_pair(&a, SERVER_ID);
    hbone_pool_remove(NULL, p->client.conn, a.now);
    hbone_pool_remove(a.pool, NULL, a.now);
    hbone_pool_remove(a.pool, stranger->client.conn, a.now);
    hbone_pool_remove(a.pool, stranger->server.conn, a.now);
    ck_assert_uint_eq(hbone_pool_size(a.pool), 1);
    /* ... nor counts as a failure: the next one waits the first delay. */
    ck_assert_int_eq(hbone_pool_dial_failed(a.pool, other, a.now), 0);
    expect_backoff_until(&a, other, a.now + FIRST_BACKOFF_MS);
    struct flow f = open_via_pool(&a, key, p);
    flow_send(&a, p, &f, 100);
    flow_finish(&a, p, &f);
    hbone_pool_key_del(key);
    hbone_pool_key_del(other);
    hbone_spiffe_id_del(server);
    app_free(&a);
}
END_TEST

/* Each allocation of making a key fails in turn: HBONE_ERR_NOMEM, and
 * nothing leaks. */
START_TEST(key_allocation_failures_are_clean)
{
    hbone_spiffe_id *server = tl_id(SERVER_ID), *other = tl_id(OTHER_ID);
    int r = HBONE_ERR_NOMEM;
    long budget;
    for (budget = 0; r != 0; budget++) {
        TL_REQUIRE(budget < 100, "a key takes 100 allocations?");
        tl_counting counts;
        hbone_mem *mem = tl_counting_mem(&counts, budget);
        hbone_pool_key *key = NULL;
        r = hbone_pool_key_new(&key, NEXT_HOP, strlen(NEXT_HOP), mem);
        if (r != 0)
            ck_assert_ptr_null(key);
        if (r == 0)
            r = hbone_pool_key_set_source(key, CLIENT_ID, strlen(CLIENT_ID), SOURCE_ADDRESS,
                                          strlen(SOURCE_ADDRESS));
        if (r == 0)
            r = hbone_pool_key_add_expected(key, server);
        if (r == 0)
            r = hbone_pool_key_add_expected(key, other);
        ck_assert_msg(r == 0 || r == HBONE_ERR_NOMEM, "budget %ld: %s", budget, hbone_strerror(r));
        hbone_pool_key_del(key);
        ck_assert_int_eq(counts.allocs, counts.frees);
        hbone_mem_del(mem);
    }
    ck_assert_int_gt(budget, 2); /* the key and at least its next hop */
    hbone_spiffe_id_del(server);
    hbone_spiffe_id_del(other);
}
END_TEST

/* Each allocation of making a pool fails in turn. */
START_TEST(pool_allocation_failures_are_clean)
{
    int r = HBONE_ERR_NOMEM;
    long budget;
    for (budget = 0; r != 0; budget++) {
        TL_REQUIRE(budget < 100, "a pool takes 100 allocations?");
        tl_counting counts;
        hbone_mem *mem = tl_counting_mem(&counts, budget);
        hbone_pool *pool = NULL;
        r = hbone_pool_new(&pool, mem);
        if (r != 0) {
            ck_assert_int_eq(r, HBONE_ERR_NOMEM);
            ck_assert_ptr_null(pool);
        }
        ck_assert_uint_eq(hbone_pool_size(pool), 0);
        hbone_pool_del(pool);
        ck_assert_int_eq(counts.allocs, counts.frees);
        hbone_mem_del(mem);
    }
    ck_assert_int_gt(budget, 1);
}
END_TEST

/* Each allocation of a first hbone_pool_get() (HBONE_POOL_DIAL) and of the
 * hbone_pool_add() after it fails in turn. A failed get starts no dial; a
 * failed add leaves the dial in progress, to be added again. Either way the
 * connection ends up handed out, and the pool frees all it took. */
START_TEST(get_and_add_allocation_failures_are_clean)
{
    int failures = 0;
    for (long budget = 0;; budget++) {
        TL_REQUIRE(budget < 100, "a dial takes 100 allocations?");
        tl_counting counts;
        hbone_mem *mem = tl_counting_mem(&counts, -1);
        struct app a;
        app_init(&a, mem);
        hbone_pool_key *key = server_key();
        struct pair *p = new_pair(&a, SERVER_ID);
        counts.budget = budget;
        hbone_conn *conn;
        int r = get(&a, key, &conn), failed = 0;
        if (r == HBONE_ERR_NOMEM) {
            failed = 1;
            counts.budget = -1;
            r = get(&a, key, &conn);
        }
        ck_assert_int_eq(r, HBONE_POOL_DIAL);
        r = hbone_pool_add(a.pool, key, p->client.conn, a.now);
        if (r == HBONE_ERR_NOMEM) {
            failed = 1;
            counts.budget = -1;
            expect_get(&a, key, HBONE_ERR_AGAIN);
            ck_assert_uint_eq(hbone_pool_size(a.pool), 0);
            r = hbone_pool_add(a.pool, key, p->client.conn, a.now);
        }
        ck_assert_int_eq(r, 0);
        open_via_pool(&a, key, p);
        hbone_pool_key_del(key);
        app_free(&a);
        ck_assert_int_eq(counts.allocs, counts.frees);
        hbone_mem_del(mem);
        if (!failed)
            break;
        failures++;
    }
    ck_assert_int_gt(failures, 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pool");
    TCase *tc = tcase_create("pool");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, one_connection_serves_its_key);
    tcase_add_test(tc, keys_that_differ_never_share);
    tcase_add_test(tc, tunnels_per_connection_are_capped);
    tcase_add_test(tc, the_default_cap_is_100);
    tcase_add_test(tc, the_server_stream_limit_lowers_the_cap);
    tcase_add_test(tc, a_wrong_server_identity_fails_the_dial_and_backs_off);
    tcase_add_test(tc, a_verified_identity_outside_the_key_is_never_served);
    tcase_add_test(tc, a_draining_connection_takes_no_new_tunnels);
    tcase_add_test(tc, a_connection_out_of_stream_ids_takes_no_new_tunnels);
    tcase_add_loop_test(tc, a_calmed_down_key_sees_no_retry_storm, 0, 2);
    tcase_add_test(tc, a_silent_peer_is_replaced_at_once);
    tcase_add_test(tc, a_connection_lost_in_its_handshake_backs_off);
    tcase_add_test(tc, failed_dials_back_off);
    tcase_add_test(tc, the_expiry_names_a_backoff_once_a_tunnel_waits);
    tcase_add_test(tc, the_backoff_is_configurable);
    tcase_add_test(tc, idle_connections_are_handed_back);
    tcase_add_test(tc, the_idle_timeout_defaults_to_five_minutes);
    tcase_add_test(tc, arguments_are_checked);
    tcase_add_test(tc, key_allocation_failures_are_clean);
    tcase_add_test(tc, pool_allocation_failures_are_clean);
    tcase_add_test(tc, get_and_add_allocation_failures_are_clean);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
