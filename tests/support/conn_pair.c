/* SPDX-License-Identifier: MIT */
#include "conn_pair.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

/* Options for the next pair_init() (conn_pair.h). */
uint32_t pair_stream_window, pair_max_streams, pair_idle_ms, pair_client_header_list;
long pair_stall_ms = -1;
uint32_t pair_tunnel_buffer, pair_connection_buffer;
const hbone_mem *pair_mem;

struct tunnel_log *log_of(struct side *s, int32_t id)
{
    for (size_t i = 0; i < s->n_tunnels; i++) {
        if (s->tunnels[i].id == id)
            return &s->tunnels[i];
    }
    TL_REQUIRE(s->n_tunnels < MAX_TUNNELS, "more than %d tunnels logged", MAX_TUNNELS);
    struct tunnel_log *l = &s->tunnels[s->n_tunnels++];
    memset(l, 0, sizeof(*l));
    l->id = id;
    l->checksum = TL_CHECKSUM_INIT;
    return l;
}

static void on_handshake(hbone_conn *conn, void *user)
{
    struct side *s = user;
    ck_assert_ptr_nonnull(hbone_conn_peer_id(conn));
    s->handshakes++;
}

/* Check the result of one of the application's calls. Where allocations are
 * made to fail, a call may fail for want of memory: the application then
 * resets the tunnel, as a real one would. */
static void app_call(struct side *s, hbone_conn *conn, int32_t tunnel, int r)
{
    if (r == HBONE_ERR_NOMEM && s->tolerate_nomem) {
        s->app_errors++;
        (void)hbone_conn_tunnel_reset(conn, tunnel, 0xa);
        return;
    }
    TL_REQUIRE(r == 0, "application call: %s", hbone_strerror(r));
}

static void on_request(hbone_conn *conn, int32_t tunnel, const char *host, size_t host_len,
                       uint16_t port, int kind, void *user)
{
    struct side *s = user;
    struct tunnel_log *l = log_of(s, tunnel);
    l->requested = 1;
    snprintf(l->host, sizeof(l->host), "%.*s", (int)host_len, host);
    l->port = port;
    l->kind = kind;
    const char *name, *value;
    size_t name_len, value_len;
    if (hbone_conn_tunnel_header(conn, tunnel, 0, &name, &name_len, &value, &value_len) == 0)
        snprintf(l->first_header, sizeof(l->first_header), "%.*s: %.*s", (int)name_len, name,
                 (int)value_len, value);
    if (s->auto_answer == 200 && s->big_header) {
        static char big_value[64 * 1024];
        ck_assert_uint_le(s->big_header, sizeof(big_value));
        memset(big_value, 'v', s->big_header);
        const char *names[] = {"x-big"}, *values[] = {big_value};
        size_t name_lens[] = {5}, value_lens[] = {s->big_header};
        ck_assert_int_eq(
            hbone_conn_tunnel_accept(conn, tunnel, names, name_lens, values, value_lens, 1), 0);
    } else if (s->auto_answer == 200)
        app_call(s, conn, tunnel,
                 hbone_conn_tunnel_accept(conn, tunnel, NULL, NULL, NULL, NULL, 0));
    else if (s->auto_answer)
        ck_assert_int_eq(hbone_conn_tunnel_reject(conn, tunnel, s->auto_answer), 0);
}

static void on_response(hbone_conn *conn, int32_t tunnel, int status, void *user)
{
    (void)conn;
    log_of(user, tunnel)->status = status;
}

static void on_data(hbone_conn *conn, int32_t tunnel, const uint8_t *data, size_t len, void *user)
{
    struct side *s = user;
    struct tunnel_log *l = log_of(s, tunnel);
    l->received += len;
    l->checksum = tl_checksum(l->checksum, data, len);
    if (s->echo) {
        size_t accepted = 0;
        int r = hbone_conn_tunnel_write(conn, tunnel, data, len, &accepted);
        if (r == 0 && accepted != len)
            r = HBONE_ERR_NOMEM; /* the buffer could not grow to take it all */
        TL_REQUIRE(r == 0 || s->tolerate_nomem, "echo write: %d, %zu of %zu", r, accepted, len);
        if (r < 0) {
            app_call(s, conn, tunnel, r);
            return;
        }
    }
    if (!s->consume_later)
        app_call(s, conn, tunnel, hbone_conn_tunnel_consume(conn, tunnel, len));
}

static void on_end(hbone_conn *conn, int32_t tunnel, void *user)
{
    struct side *s = user;
    log_of(s, tunnel)->ended++;
    if (s->echo)
        app_call(s, conn, tunnel, hbone_conn_tunnel_shutdown(conn, tunnel));
}

static void on_writable(hbone_conn *conn, int32_t tunnel, void *user)
{
    (void)conn;
    log_of(user, tunnel)->writable++;
}

static void on_close(hbone_conn *conn, int32_t tunnel, uint32_t reason, void *user)
{
    struct tunnel_log *l = log_of(user, tunnel);
    /* During its close event a tunnel takes no more calls, but its user data
     * is still there to be freed. */
    size_t accepted;
    TL_REQUIRE(hbone_conn_tunnel_write(conn, tunnel, (const uint8_t *)"x", 1, &accepted) ==
                   HBONE_ERR_NOT_FOUND,
               "tunnel %d takes writes in its close event", (int)tunnel);
    void *data = hbone_conn_tunnel_get_user_data(conn, tunnel);
    TL_REQUIRE(data == NULL || data == l, "tunnel %d: wrong user data", (int)tunnel);
    l->closed++;
    l->reason = reason;
}

static hbone_callbacks *all_callbacks(void)
{
    hbone_callbacks *cbs;
    ck_assert_int_eq(hbone_callbacks_new(&cbs), 0);
    hbone_callbacks_set_handshake(cbs, on_handshake);
    hbone_callbacks_set_tunnel_request(cbs, on_request);
    hbone_callbacks_set_tunnel_response(cbs, on_response);
    hbone_callbacks_set_tunnel_data(cbs, on_data);
    hbone_callbacks_set_tunnel_end(cbs, on_end);
    hbone_callbacks_set_tunnel_writable(cbs, on_writable);
    hbone_callbacks_set_tunnel_close(cbs, on_close);
    return cbs;
}

void pair_start(struct pair *p, hbone_config *ccfg, hbone_config *scfg, const char *expected,
                unsigned seed)
{
    memset(p, 0, sizeof(*p));
    p->seed = seed;
    p->now = 1000;
    hbone_callbacks *cbs = all_callbacks();
    ck_assert_int_eq(hbone_conn_client_new(&p->client.conn, ccfg, cbs, &p->client, p->now), 0);
    ck_assert_int_eq(hbone_conn_server_new(&p->server.conn, scfg, cbs, &p->server, p->now), 0);
    hbone_callbacks_del(cbs); /* connections copied it */
    hbone_spiffe_id *id = tl_id(expected);
    ck_assert_int_eq(hbone_conn_expect_peer(p->client.conn, id), 0);
    hbone_spiffe_id_del(id);
}

void pair_init(struct pair *p, const char *expected, unsigned seed)
{
    hbone_config *ccfg = tl_config_mem("client", NULL, pair_mem),
                 *scfg = tl_config_mem("server", NULL, pair_mem);
    if (pair_idle_ms) {
        ck_assert_int_eq(hbone_config_set_idle_timeout(scfg, pair_idle_ms), 0);
        ck_assert_int_eq(hbone_config_set_keepalive(scfg, 0, 0), 0);
        ck_assert_int_eq(hbone_config_set_keepalive(ccfg, 0, 0), 0);
    }
    if (pair_stream_window) {
        uint32_t max_streams = pair_max_streams ? pair_max_streams : 200;
        ck_assert_int_eq(hbone_config_set_http2(ccfg, pair_stream_window, 4 * pair_stream_window,
                                                16384, max_streams),
                         0);
        ck_assert_int_eq(hbone_config_set_http2(scfg, pair_stream_window, 4 * pair_stream_window,
                                                16384, max_streams),
                         0);
    }
    if (pair_stall_ms >= 0) {
        ck_assert_int_eq(hbone_config_set_stall_timeout(scfg, (uint32_t)pair_stall_ms), 0);
        ck_assert_int_eq(hbone_config_set_stall_timeout(ccfg, (uint32_t)pair_stall_ms), 0);
        ck_assert_int_eq(hbone_config_set_keepalive(scfg, 0, 0), 0);
        ck_assert_int_eq(hbone_config_set_keepalive(ccfg, 0, 0), 0);
    }
    if (pair_client_header_list)
        ck_assert_int_eq(hbone_config_set_max_header_list_size(ccfg, pair_client_header_list), 0);
    if (pair_tunnel_buffer)
        ck_assert_int_eq(
            hbone_config_set_buffer_limits(ccfg, pair_tunnel_buffer, pair_connection_buffer), 0);
    pair_start(p, ccfg, scfg, expected, seed);
    hbone_config_del(ccfg);
    hbone_config_del(scfg);
}

void pair_free(struct pair *p)
{
    hbone_conn_del(p->client.conn);
    hbone_conn_del(p->server.conn);
    free(p->to_server);
    free(p->to_client);
}

/* Take part of @p from's output (as a socket with a small buffer would). */
static int move_output(struct pair *p, hbone_conn *from, uint8_t **queue, size_t *queue_len)
{
    size_t len;
    const uint8_t *out = hbone_conn_output(from, &len, p->now);
    if (!len)
        return 0;
    size_t n = (size_t)rand_r(&p->seed) % 20000 + 1;
    if (n > len)
        n = len;
    *queue = realloc(*queue, *queue_len + n);
    TL_REQUIRE(*queue, "out of memory");
    memcpy(*queue + *queue_len, out, n);
    *queue_len += n;
    hbone_conn_output_consume(from, n);
    return 1;
}

/* Deliver part of the queued bytes; returns the first error, or 0. */
static int move_input(struct pair *p, hbone_conn *to, uint8_t *queue, size_t *queue_len,
                      int *progress)
{
    if (!*queue_len)
        return 0;
    size_t n = (size_t)rand_r(&p->seed) % 20000 + 1;
    if (n > *queue_len)
        n = *queue_len;
    size_t consumed = 0;
    int r = hbone_conn_input(to, queue, n, &consumed, p->now);
    memmove(queue, queue + consumed, *queue_len - consumed);
    *queue_len -= consumed;
    *progress |= consumed > 0;
    return r;
}

/* Move bytes both ways until nothing moves. Errors are returned per side. */
void pump(struct pair *p, int *client_err, int *server_err)
{
    int cerr = 0, serr = 0;
    for (int rounds = 0; rounds < 1000000; rounds++) {
        int progress = 0;
        progress |= move_output(p, p->client.conn, &p->to_server, &p->to_server_len);
        progress |= move_output(p, p->server.conn, &p->to_client, &p->to_client_len);
        int r = move_input(p, p->server.conn, p->to_server, &p->to_server_len, &progress);
        if (r < 0 && !serr)
            serr = r;
        r = move_input(p, p->client.conn, p->to_client, &p->to_client_len, &progress);
        if (r < 0 && !cerr)
            cerr = r;
        if (!progress)
            break;
    }
    if (client_err)
        *client_err = cerr;
    else
        TL_REQUIRE(cerr == 0, "client: %d %s", cerr, hbone_conn_error_detail(p->client.conn));
    if (server_err)
        *server_err = serr;
    else
        TL_REQUIRE(serr == 0, "server: %d %s", serr, hbone_conn_error_detail(p->server.conn));
}

int32_t open_tunnel(struct pair *p, const char *authority)
{
    static const char *const names[] = {"forwarded", "baggage"};
    static const size_t name_lens[] = {9, 7};
    static const char *const values[] = {"for=\"10.0.0.1:34567\"", ""};
    static const size_t value_lens[] = {20, 0};
    int32_t id = 0;
    int r = hbone_conn_tunnel_open(p->client.conn, authority, strlen(authority), names, name_lens,
                                   values, value_lens, 2, &id);
    TL_REQUIRE(r == 0 && id > 0, "open %s: %s", authority, hbone_strerror(r));
    struct tunnel_log *l = log_of(&p->client, id);
    TL_REQUIRE(hbone_conn_tunnel_set_user_data(p->client.conn, id, l) == 0 &&
                   hbone_conn_tunnel_get_user_data(p->client.conn, id) == l,
               "tunnel %d: user data not kept", (int)id);
    return id;
}

/* Write all of @p len pattern bytes, pumping whenever the tunnel is full. */
void write_all(struct pair *p, struct side *s, int32_t id, size_t len, uint32_t *sum)
{
    uint8_t chunk[70000];
    size_t sent = 0;
    int stalls = 0;
    while (sent < len) {
        size_t n = (size_t)rand_r(&p->seed) % sizeof(chunk) + 1;
        if (n > len - sent)
            n = len - sent;
        for (size_t i = 0; i < n; i++)
            chunk[i] = (uint8_t)((sent + i) * 131 + 7);
        size_t accepted = 0;
        int r = hbone_conn_tunnel_write(s->conn, id, chunk, n, &accepted);
        if (r == HBONE_ERR_AGAIN) {
            ck_assert_uint_eq(accepted, 0);
            ck_assert_msg(++stalls < 100, "tunnel %d stalled after %zu bytes", (int)id, sent);
            pump(p, NULL, NULL);
            continue;
        }
        stalls = 0;
        ck_assert_int_eq(r, 0);
        *sum = tl_checksum(*sum, chunk, accepted);
        sent += accepted;
    }
}

/* Advance the virtual clock to the next expiry of either side, run it. */
void assert_echoed_and_closed(struct pair *p, int32_t id, size_t len, uint32_t sum)
{
    struct tunnel_log *srv = log_of(&p->server, id), *cli = log_of(&p->client, id);
    ck_assert_uint_eq(srv->received, len);
    ck_assert_uint_eq(srv->checksum, sum);
    ck_assert_uint_eq(cli->received, len);
    ck_assert_uint_eq(cli->checksum, sum);
    ck_assert_int_eq(srv->ended, 1);
    ck_assert_int_eq(cli->ended, 1);
    ck_assert_int_eq(srv->closed, 1);
    ck_assert_int_eq(cli->closed, 1);
    ck_assert_uint_eq(srv->reason, 0);
    ck_assert_uint_eq(cli->reason, 0);
}

void advance_to_expiry(struct pair *p, int *client_err, int *server_err)
{
    uint64_t c = hbone_conn_get_expiry(p->client.conn), s = hbone_conn_get_expiry(p->server.conn);
    uint64_t next = c < s ? c : s;
    ck_assert_uint_ne(next, UINT64_MAX);
    ck_assert_uint_ge(next, p->now);
    p->now = next;
    int r = hbone_conn_handle_expiry(p->client.conn, p->now);
    if (client_err)
        *client_err = r;
    else
        ck_assert_int_eq(r, 0);
    r = hbone_conn_handle_expiry(p->server.conn, p->now);
    if (server_err)
        *server_err = r;
    else
        ck_assert_int_eq(r, 0);
}

/* Write to @p id from @p s until the tunnel takes no more: the peer's
 * window and our buffer are full. */
void fill_until_full(struct pair *p, struct side *s, int32_t id)
{
    static uint8_t chunk[65536];
    for (int i = 0; i < 1000; i++) {
        size_t accepted = 0;
        int r = hbone_conn_tunnel_write(s->conn, id, chunk, sizeof(chunk), &accepted);
        if (r == HBONE_ERR_AGAIN) {
            pump(p, NULL, NULL);
            r = hbone_conn_tunnel_write(s->conn, id, chunk, sizeof(chunk), &accepted);
            if (r == HBONE_ERR_AGAIN)
                return;
        }
        ck_assert_int_eq(r, 0);
    }
    ck_abort_msg("tunnel %d never filled up", (int)id);
}

/* Move 16 KiB over the canary from @p writer to @p reader, whose
 * application consumes only when told: it does so here. */
void move_canary(struct pair *p, struct side *writer, struct side *reader, int32_t canary,
                 uint32_t *sum)
{
    write_all(p, writer, canary, 16384, sum);
    pump(p, NULL, NULL);
    struct tunnel_log *l = log_of(reader, canary);
    ck_assert_int_eq(hbone_conn_tunnel_consume(reader->conn, canary, l->received), 0);
    l->received = 0; /* counts what is left to consume from here */
    pump(p, NULL, NULL);
}
