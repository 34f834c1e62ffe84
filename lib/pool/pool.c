/* SPDX-License-Identifier: MIT */
/*
 * Client connection reuse, keyed like ztunnel's pool. Bookkeeping only: the
 * application dials, owns and frees the connections (include/hbone/pool.h).
 *
 * A pool is two lists: the keys it knows (each with its dial in progress and
 * its backoff) and the connections it holds (each with its key). Both stay
 * short in practice (one entry per next hop and identity set a node talks
 * to, and a few connections each), so they are searched linearly.
 */
#include <hbone/pool.h>

#include <string.h>

#include <hbone/error.h>

#include "common/mem.h"

#define DEFAULT_TUNNELS_PER_CONNECTION 100 /* ztunnel's */
#define DEFAULT_IDLE_TIMEOUT_MS 300000     /* ztunnel's: 5 minutes */
#define DEFAULT_BACKOFF_FIRST_MS 100
#define DEFAULT_BACKOFF_MAX_MS 10000

struct hbone_pool_key {
    hb_mem mem;
    char *next_hop;
    char *source_id;
    char *source_address;
    char **expected; /* SPIFFE ID strings, no duplicates */
    size_t n_expected;
};

/* What the pool knows of one key. */
typedef struct key_state {
    struct key_state *next;
    hbone_pool_key *key; /* the pool's copy */
    size_t n_conns;
    int dialing;       /* HBONE_POOL_DIAL said, neither add nor dial_failed yet */
    int waiting;       /* a get was told to wait for the backoff */
    uint32_t failures; /* in a row: since the last completed handshake */
    uint64_t retry_at; /* with failures: no dial before then */
} key_state;

typedef struct pooled {
    struct pooled *next;
    hbone_conn *conn;
    key_state *key;
    int failure_noted; /* its failure has made the key back off already */
} pooled;

struct hbone_pool {
    hb_mem mem;
    key_state *keys;
    pooled *conns;
    size_t n_conns;
    uint32_t tunnels_per_connection;
    uint32_t idle_timeout_ms;
    uint32_t backoff_first_ms, backoff_max_ms;
};

/* --- keys ------------------------------------------------------------------- */

static void free_strings(const hb_mem *mem, char **strings, size_t n)
{
    for (size_t i = 0; i < n; i++)
        hb_free(mem, strings[i]);
    hb_free(mem, strings);
}

int hbone_pool_key_new(hbone_pool_key **out, const char *next_hop, size_t next_hop_len,
                       const hbone_mem *mem)
{
    if (!out)
        return HBONE_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!next_hop || !next_hop_len)
        return HBONE_ERR_INVALID_ARGUMENT;
    mem = hb_mem_or_default(mem);
    hbone_pool_key *key = hb_calloc(mem, 1, sizeof(*key));
    if (!key)
        return HBONE_ERR_NOMEM;
    key->mem = *mem;
    key->next_hop = hb_strndup(mem, next_hop, next_hop_len);
    key->source_id = hb_strndup(mem, "", 0);
    key->source_address = hb_strndup(mem, "", 0);
    if (!key->next_hop || !key->source_id || !key->source_address) {
        hbone_pool_key_del(key);
        return HBONE_ERR_NOMEM;
    }
    *out = key;
    return 0;
}

void hbone_pool_key_del(hbone_pool_key *key)
{
    if (!key)
        return;
    hb_mem mem = key->mem;
    hb_free(&mem, key->next_hop);
    hb_free(&mem, key->source_id);
    hb_free(&mem, key->source_address);
    free_strings(&mem, key->expected, key->n_expected);
    hb_free(&mem, key);
}

int hbone_pool_key_set_source(hbone_pool_key *key, const char *identity, size_t identity_len,
                              const char *address, size_t address_len)
{
    if (!key || (!identity && identity_len) || (!address && address_len))
        return HBONE_ERR_INVALID_ARGUMENT;
    char *id = hb_strndup(&key->mem, identity ? identity : "", identity_len);
    char *addr = hb_strndup(&key->mem, address ? address : "", address_len);
    if (!id || !addr) {
        hb_free(&key->mem, id);
        hb_free(&key->mem, addr);
        return HBONE_ERR_NOMEM;
    }
    hb_free(&key->mem, key->source_id);
    hb_free(&key->mem, key->source_address);
    key->source_id = id;
    key->source_address = addr;
    return 0;
}

static int expects(const hbone_pool_key *key, const char *id)
{
    for (size_t i = 0; i < key->n_expected; i++) {
        if (strcmp(key->expected[i], id) == 0)
            return 1;
    }
    return 0;
}

static int add_expected_str(hbone_pool_key *key, const char *id)
{
    if (expects(key, id))
        return 0;
    char **grown = hb_realloc(&key->mem, key->expected, (key->n_expected + 1) * sizeof(*grown));
    if (!grown)
        return HBONE_ERR_NOMEM;
    key->expected = grown;
    key->expected[key->n_expected] = hb_strndup(&key->mem, id, strlen(id));
    if (!key->expected[key->n_expected])
        return HBONE_ERR_NOMEM;
    key->n_expected++;
    return 0;
}

int hbone_pool_key_add_expected(hbone_pool_key *key, const hbone_spiffe_id *id)
{
    if (!key || !id)
        return HBONE_ERR_INVALID_ARGUMENT;
    return add_expected_str(key, hbone_spiffe_id_str(id, NULL));
}

/* Same next hop, same source, the same set of expected identities. */
static int keys_equal(const hbone_pool_key *a, const hbone_pool_key *b)
{
    if (strcmp(a->next_hop, b->next_hop) != 0 || strcmp(a->source_id, b->source_id) != 0 ||
        strcmp(a->source_address, b->source_address) != 0 || a->n_expected != b->n_expected)
        return 0;
    for (size_t i = 0; i < a->n_expected; i++) {
        if (!expects(b, a->expected[i]))
            return 0;
    }
    return 1;
}

static hbone_pool_key *copy_key(const hb_mem *mem, const hbone_pool_key *key)
{
    hbone_pool_key *copy = NULL;
    if (hbone_pool_key_new(&copy, key->next_hop, strlen(key->next_hop), mem) < 0)
        return NULL;
    int r = hbone_pool_key_set_source(copy, key->source_id, strlen(key->source_id),
                                      key->source_address, strlen(key->source_address));
    for (size_t i = 0; r == 0 && i < key->n_expected; i++)
        r = add_expected_str(copy, key->expected[i]);
    if (r < 0) {
        hbone_pool_key_del(copy);
        return NULL;
    }
    return copy;
}

/* --- the pool ------------------------------------------------------------------ */

int hbone_pool_new(hbone_pool **out, const hbone_mem *mem)
{
    if (!out)
        return HBONE_ERR_INVALID_ARGUMENT;
    mem = hb_mem_or_default(mem);
    hbone_pool *pool = hb_calloc(mem, 1, sizeof(*pool));
    *out = pool;
    if (!pool)
        return HBONE_ERR_NOMEM;
    pool->mem = *mem;
    pool->tunnels_per_connection = DEFAULT_TUNNELS_PER_CONNECTION;
    pool->idle_timeout_ms = DEFAULT_IDLE_TIMEOUT_MS;
    pool->backoff_first_ms = DEFAULT_BACKOFF_FIRST_MS;
    pool->backoff_max_ms = DEFAULT_BACKOFF_MAX_MS;
    return 0;
}

void hbone_pool_del(hbone_pool *pool)
{
    if (!pool)
        return;
    while (pool->conns) {
        pooled *p = pool->conns;
        pool->conns = p->next;
        hb_free(&pool->mem, p);
    }
    while (pool->keys) {
        key_state *k = pool->keys;
        pool->keys = k->next;
        hbone_pool_key_del(k->key);
        hb_free(&pool->mem, k);
    }
    hb_mem mem = pool->mem;
    hb_free(&mem, pool);
}

int hbone_pool_set_limits(hbone_pool *pool, uint32_t tunnels_per_connection,
                          uint32_t idle_timeout_ms)
{
    if (!pool || !tunnels_per_connection)
        return HBONE_ERR_INVALID_ARGUMENT;
    pool->tunnels_per_connection = tunnels_per_connection;
    pool->idle_timeout_ms = idle_timeout_ms;
    return 0;
}

int hbone_pool_set_backoff(hbone_pool *pool, uint32_t first_ms, uint32_t max_ms)
{
    if (!pool || !first_ms || max_ms < first_ms)
        return HBONE_ERR_INVALID_ARGUMENT;
    pool->backoff_first_ms = first_ms;
    pool->backoff_max_ms = max_ms;
    return 0;
}

size_t hbone_pool_size(const hbone_pool *pool)
{
    return pool ? pool->n_conns : 0;
}

static key_state *find_key(const hbone_pool *pool, const hbone_pool_key *key)
{
    for (key_state *k = pool->keys; k; k = k->next) {
        if (keys_equal(k->key, key))
            return k;
    }
    return NULL;
}

static key_state *find_or_add_key(hbone_pool *pool, const hbone_pool_key *key)
{
    key_state *k = find_key(pool, key);
    if (k)
        return k;
    k = hb_calloc(&pool->mem, 1, sizeof(*k));
    if (!k)
        return NULL;
    k->key = copy_key(&pool->mem, key);
    if (!k->key) {
        hb_free(&pool->mem, k);
        return NULL;
    }
    k->next = pool->keys;
    pool->keys = k;
    return k;
}

/* A key is kept while it has connections or a dial, and while its backoff
 * may still matter: forgetting it would make the next failure wait only the
 * first delay again. Once the longest delay has passed, it starts afresh. */
static void forget_key_if_unused(hbone_pool *pool, key_state *k, uint64_t now)
{
    if (k->n_conns || k->dialing || (k->failures && now < k->retry_at + pool->backoff_max_ms))
        return;
    key_state **link = &pool->keys;
    while (*link != k)
        link = &(*link)->next;
    *link = k->next;
    hbone_pool_key_del(k->key);
    hb_free(&pool->mem, k);
}

/* The key's connections keep failing: wait before the next dial, twice as
 * long each time. */
static void back_off(const hbone_pool *pool, key_state *k, uint64_t now)
{
    uint64_t wait = pool->backoff_first_ms;
    for (uint32_t i = 0; i < k->failures && wait < pool->backoff_max_ms; i++)
        wait *= 2;
    if (wait > pool->backoff_max_ms)
        wait = pool->backoff_max_ms;
    k->failures++;
    k->retry_at = now + wait;
}

/* A connection is a failure when it ended before proving the server's
 * identity, or when the server ended it with an error code. */
static int has_failed(hbone_conn *conn, uint32_t capacity)
{
    return (!hbone_conn_peer_id(conn) && !capacity) || hbone_conn_peer_goaway_error(conn);
}

static void note_failure(const hbone_pool *pool, pooled *p, uint64_t now)
{
    if (p->failure_noted)
        return;
    p->failure_noted = 1;
    back_off(pool, p->key, now);
}

/* @p p leaves the pool. Only a connection that served its whole life
 * without failing ends the key's backoff: one that completes its handshake
 * and is then told to calm down must not (each new one would be dialed at
 * once, a retry storm). */
static void note_end(const hbone_pool *pool, pooled *p, uint64_t now)
{
    if (has_failed(p->conn, hbone_conn_tunnel_capacity(p->conn)))
        note_failure(pool, p, now);
    else if (!p->failure_noted)
        p->key->failures = 0;
}

/* Whether @p p can take one more tunnel for its key now; notes on the way
 * whether it has failed. */
static int usable(const hbone_pool *pool, pooled *p, uint64_t now)
{
    uint32_t capacity = hbone_conn_tunnel_capacity(p->conn);
    if (has_failed(p->conn, capacity)) {
        note_failure(pool, p, now);
        return 0;
    }
    const hbone_spiffe_id *peer = hbone_conn_peer_id(p->conn);
    if (peer && !expects(p->key->key, hbone_spiffe_id_str(peer, NULL)))
        return 0; /* never, whatever it was added with */
    return capacity > 0 && hbone_conn_tunnel_count(p->conn) < pool->tunnels_per_connection;
}

int hbone_pool_get(hbone_pool *pool, const hbone_pool_key *key, uint64_t now_ms,
                   hbone_conn **conn_out)
{
    if (conn_out)
        *conn_out = NULL;
    if (!pool || !key || !conn_out || !key->n_expected)
        return HBONE_ERR_INVALID_ARGUMENT;
    key_state *k = find_key(pool, key);
    for (pooled *p = pool->conns; k && p; p = p->next) {
        if (p->key == k && usable(pool, p, now_ms)) {
            *conn_out = p->conn;
            return 0;
        }
    }
    if (k && k->dialing)
        return HBONE_ERR_AGAIN;
    if (k && k->failures && now_ms < k->retry_at) {
        k->waiting = 1;
        return HBONE_ERR_AGAIN;
    }
    k = k ? k : find_or_add_key(pool, key);
    if (!k)
        return HBONE_ERR_NOMEM;
    k->dialing = 1;
    k->waiting = 0;
    return HBONE_POOL_DIAL;
}

int hbone_pool_add(hbone_pool *pool, const hbone_pool_key *key, hbone_conn *conn, uint64_t now_ms)
{
    if (!pool || !key || !conn || !key->n_expected || !hbone_conn_tunnel_capacity(conn))
        return HBONE_ERR_INVALID_ARGUMENT;
    for (pooled *p = pool->conns; p; p = p->next) {
        if (p->conn == conn)
            return HBONE_ERR_INVALID_ARGUMENT;
    }
    key_state *k = find_or_add_key(pool, key);
    pooled *p = k ? hb_calloc(&pool->mem, 1, sizeof(*p)) : NULL;
    if (!p) {
        if (k)
            forget_key_if_unused(pool, k, now_ms);
        return HBONE_ERR_NOMEM;
    }
    p->conn = conn;
    p->key = k;
    p->next = pool->conns;
    pool->conns = p;
    pool->n_conns++;
    k->n_conns++;
    k->dialing = 0;
    return 0;
}

int hbone_pool_dial_failed(hbone_pool *pool, const hbone_pool_key *key, uint64_t now_ms)
{
    key_state *k = pool && key ? find_key(pool, key) : NULL;
    if (!k || !k->dialing)
        return HBONE_ERR_INVALID_ARGUMENT;
    k->dialing = 0;
    back_off(pool, k, now_ms);
    return 0;
}

/* Unlink @p conn's entry and return its key, or NULL if it is not pooled. */
static key_state *unlink_conn(hbone_pool *pool, const hbone_conn *conn, pooled **entry)
{
    for (pooled **link = &pool->conns; *link; link = &(*link)->next) {
        pooled *p = *link;
        if (p->conn != conn)
            continue;
        *link = p->next;
        pool->n_conns--;
        p->key->n_conns--;
        *entry = p;
        return p->key;
    }
    return NULL;
}

void hbone_pool_remove(hbone_pool *pool, hbone_conn *conn, uint64_t now_ms)
{
    pooled *p = NULL;
    key_state *k = pool && conn ? unlink_conn(pool, conn, &p) : NULL;
    if (!k)
        return;
    note_end(pool, p, now_ms);
    hb_free(&pool->mem, p);
    forget_key_if_unused(pool, k, now_ms);
}

/* When @p p has been idle for the idle timeout; 0 if it is not idle. */
static uint64_t idle_expiry(const hbone_pool *pool, const pooled *p)
{
    uint64_t since = hbone_conn_idle_since(p->conn);
    return since && pool->idle_timeout_ms ? since + pool->idle_timeout_ms : 0;
}

hbone_conn *hbone_pool_take_idle(hbone_pool *pool, uint64_t now_ms)
{
    for (pooled *p = pool ? pool->conns : NULL; p; p = p->next) {
        uint64_t at = idle_expiry(pool, p);
        if (!at || now_ms < at)
            continue;
        hbone_conn *conn = p->conn;
        pooled *entry = NULL;
        key_state *k = unlink_conn(pool, conn, &entry);
        note_end(pool, entry, now_ms);
        hb_free(&pool->mem, entry);
        forget_key_if_unused(pool, k, now_ms);
        return conn;
    }
    return NULL;
}

static uint64_t earliest(uint64_t a, uint64_t b)
{
    return !a || (b && b < a) ? b : a;
}

uint64_t hbone_pool_get_expiry(const hbone_pool *pool)
{
    uint64_t t = 0;
    for (const pooled *p = pool ? pool->conns : NULL; p; p = p->next)
        t = earliest(t, idle_expiry(pool, p));
    for (const key_state *k = pool ? pool->keys : NULL; k; k = k->next) {
        if (k->waiting)
            t = earliest(t, k->retry_at);
    }
    return t;
}
