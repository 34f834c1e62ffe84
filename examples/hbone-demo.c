/* SPDX-License-Identifier: MIT */
/*
 * hbone-demo: an HBONE client and server in one process, talking over a real
 * loopback TCP connection with mutual TLS and SPIFFE identities, driven by
 * one poll() loop through libhbone's public, sans-IO API.
 *
 * The server plays a node proxy's inbound side: it accepts CONNECTs to port
 * 8080 (answering 200 and echoing the tunnel's bytes back) and refuses other
 * ports with 403. The client opens one tunnel of each kind, pushes 4 MiB
 * through the first, checks what comes back, and both sides close cleanly.
 * Then a client that expects another identity refuses the same server.
 *
 * usage: hbone-demo PKI_DIR   (a directory made by tests/support/gen-pki.sh)
 * Exits 0 only if everything above happened as described.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <hbone/hbone.h>

#define SERVER_ID "spiffe://cluster.local/ns/default/sa/server"
#define WRONG_ID "spiffe://cluster.local/ns/default/sa/payments"
#define PAYLOAD (4u << 20)
#define CHUNK 65536

/* One end of the TCP connection and the HBONE connection on it. */
struct endpoint {
    const char *name;
    int fd;
    hbone_conn *conn;
    uint8_t in[65536];
    size_t in_len;
    int failed;
};

/* What the client knows about its tunnels. */
struct client_state {
    int32_t echo_tunnel, denied_tunnel;
    int echo_status, denied_status;
    size_t sent, received;
    uint32_t sent_sum, received_sum;
    int echo_closed, denied_closed;
    uint32_t echo_reason;
    struct timespec started;
    double handshake_ms;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static double seconds_since(const struct timespec *start)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)(ts.tv_sec - start->tv_sec) + (double)(ts.tv_nsec - start->tv_nsec) / 1e9;
}

static uint32_t checksum(uint32_t sum, const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len; i++)
        sum = (sum ^ data[i]) * 16777619u;
    return sum;
}

static void die(const char *what, int r)
{
    fprintf(stderr, "hbone-demo: %s: %s\n", what, r < 0 ? hbone_strerror(r) : strerror(errno));
    exit(1);
}

static char *read_file(const char *dir, const char *name, size_t *len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        die(path, 0);
    char *buf = malloc(1 << 20);
    *len = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (!buf || *len == 0)
        die(path, 0);
    return buf;
}

static hbone_config *make_config(const char *pki, const char *leaf)
{
    hbone_config *cfg;
    int r = hbone_config_new(&cfg, NULL);
    if (r < 0)
        die("config", r);
    char chain_name[64], key_name[64];
    snprintf(chain_name, sizeof(chain_name), "%s.chain.pem", leaf);
    snprintf(key_name, sizeof(key_name), "%s.key", leaf);
    size_t chain_len, key_len, bundle_len;
    char *chain = read_file(pki, chain_name, &chain_len);
    char *key = read_file(pki, key_name, &key_len);
    char *bundle = read_file(pki, "bundle-cluster.local.pem", &bundle_len);
    if ((r = hbone_config_set_certificate(cfg, chain, chain_len, key, key_len)) < 0 ||
        (r = hbone_config_add_trust_bundle(cfg, "cluster.local", 13, bundle, bundle_len)) < 0) {
        fprintf(stderr, "hbone-demo: %s: %s\n", leaf, hbone_config_error_detail(cfg));
        exit(1);
    }
    free(chain);
    free(key);
    free(bundle);
    return cfg;
}

/* --- the server: echo on port 8080, 403 elsewhere ------------------------ */

static void server_request(hbone_conn *conn, int32_t tunnel, const char *host, size_t host_len,
                           uint16_t port, int kind, void *user)
{
    (void)kind;
    (void)user;
    const char *peer = hbone_spiffe_id_str(hbone_conn_peer_id(conn), NULL);
    if (port != 8080) {
        printf("  server: %s asks for %.*s:%u -> 403 (only port 8080 is served)\n", peer,
               (int)host_len, host, port);
        hbone_conn_tunnel_reject(conn, tunnel, 403);
        return;
    }
    printf("  server: %s asks for %.*s:%u -> 200, echoing\n", peer, (int)host_len, host, port);
    hbone_conn_tunnel_accept(conn, tunnel, NULL, NULL, NULL, NULL, 0);
}

/* The echo waiting for room in the tunnel (one tunnel is echoed at a time). */
static uint8_t *echo_buf;
static size_t echo_len;
static int echo_end;

/* Send what waits; credit the peer only for what left, so a client that
 * does not read its echo is held back by its own window. */
static void flush_echo(hbone_conn *conn, int32_t tunnel)
{
    while (echo_len) {
        size_t accepted = 0;
        if (hbone_conn_tunnel_write(conn, tunnel, echo_buf, echo_len, &accepted) < 0)
            return; /* full: the writable event calls again */
        memmove(echo_buf, echo_buf + accepted, echo_len - accepted);
        echo_len -= accepted;
        hbone_conn_tunnel_consume(conn, tunnel, accepted);
    }
    if (echo_end) {
        echo_end = 0;
        hbone_conn_tunnel_shutdown(conn, tunnel); /* the client ended: so do we */
    }
}

static void server_data(hbone_conn *conn, int32_t tunnel, const uint8_t *data, size_t len,
                        void *user)
{
    (void)user;
    uint8_t *grown = realloc(echo_buf, echo_len + len);
    if (!grown) {
        hbone_conn_tunnel_reset(conn, tunnel, 0xa);
        return;
    }
    echo_buf = grown;
    memcpy(echo_buf + echo_len, data, len);
    echo_len += len;
    flush_echo(conn, tunnel);
}

static void server_writable(hbone_conn *conn, int32_t tunnel, void *user)
{
    (void)user;
    flush_echo(conn, tunnel);
}

static void server_end(hbone_conn *conn, int32_t tunnel, void *user)
{
    (void)user;
    echo_end = 1;
    flush_echo(conn, tunnel);
}

/* --- the client ----------------------------------------------------------- */

static void client_handshake(hbone_conn *conn, void *user)
{
    (void)conn;
    struct client_state *st = user;
    st->handshake_ms = seconds_since(&st->started) * 1000;
}

static void client_response(hbone_conn *conn, int32_t tunnel, int status, void *user)
{
    (void)conn;
    struct client_state *st = user;
    if (tunnel == st->echo_tunnel)
        st->echo_status = status;
    else
        st->denied_status = status;
}

static void client_data(hbone_conn *conn, int32_t tunnel, const uint8_t *data, size_t len,
                        void *user)
{
    struct client_state *st = user;
    st->received += len;
    st->received_sum = checksum(st->received_sum, data, len);
    hbone_conn_tunnel_consume(conn, tunnel, len);
}

static void client_close(hbone_conn *conn, int32_t tunnel, uint32_t reason, void *user)
{
    (void)conn;
    struct client_state *st = user;
    if (tunnel == st->echo_tunnel) {
        st->echo_closed = 1;
        st->echo_reason = reason;
    } else {
        st->denied_closed = 1;
    }
}

/* Feed more of the payload while the tunnel takes it. */
static void client_send_more(hbone_conn *conn, struct client_state *st)
{
    static uint8_t chunk[CHUNK];
    while (st->echo_status == 200 && st->sent < PAYLOAD) {
        size_t n = PAYLOAD - st->sent < CHUNK ? PAYLOAD - st->sent : CHUNK;
        for (size_t i = 0; i < n; i++)
            chunk[i] = (uint8_t)((st->sent + i) * 2654435761u >> 24);
        size_t accepted = 0;
        if (hbone_conn_tunnel_write(conn, st->echo_tunnel, chunk, n, &accepted) < 0)
            return; /* AGAIN: the writable event brings us back */
        st->sent_sum = checksum(st->sent_sum, chunk, accepted);
        st->sent += accepted;
        if (st->sent == PAYLOAD)
            hbone_conn_tunnel_shutdown(conn, st->echo_tunnel);
    }
}

static void client_writable(hbone_conn *conn, int32_t tunnel, void *user)
{
    (void)tunnel;
    client_send_more(conn, user);
}

/* --- sockets and the loop ------------------------------------------------- */

static void loopback_pair(int *client_fd, int *server_fd)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in addr = {.sin_family = AF_INET};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof(addr);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(lfd, 1) < 0 ||
        getsockname(lfd, (struct sockaddr *)&addr, &alen) < 0)
        die("listen", 0);
    *client_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (*client_fd < 0 || connect(*client_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
        die("connect", 0);
    *server_fd = accept(lfd, NULL, NULL);
    if (*server_fd < 0)
        die("accept", 0);
    close(lfd);
    int fds[2] = {*client_fd, *server_fd};
    for (int i = 0; i < 2; i++) {
        fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
        setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    printf("TCP connection over 127.0.0.1:%u\n", ntohs(addr.sin_port));
}

static void pump_out(struct endpoint *e)
{
    size_t len;
    const uint8_t *out;
    while ((out = hbone_conn_output(e->conn, &len, now_ms())) != NULL) {
        ssize_t n = send(e->fd, out, len, MSG_NOSIGNAL);
        if (n <= 0)
            return;
        hbone_conn_output_consume(e->conn, (size_t)n);
    }
}

static void pump_in(struct endpoint *e)
{
    ssize_t n = recv(e->fd, e->in + e->in_len, sizeof(e->in) - e->in_len, 0);
    if (n == 0)
        hbone_conn_input_eof(e->conn);
    if (n <= 0)
        return;
    e->in_len += (size_t)n;
    size_t consumed = 0;
    int r = hbone_conn_input(e->conn, e->in, e->in_len, &consumed, now_ms());
    memmove(e->in, e->in + consumed, e->in_len - consumed);
    e->in_len -= consumed;
    if (r < 0 && !e->failed) {
        e->failed = r;
        printf("  %s: connection failed: %s\n", e->name, hbone_conn_error_detail(e->conn));
    }
}

static int run_until(struct endpoint *a, struct endpoint *b, int (*done)(void *), void *arg)
{
    for (int idle = 0; !done(arg) && idle < 50;) {
        pump_out(a);
        pump_out(b);
        struct pollfd fds[2] = {{a->fd, POLLIN, 0}, {b->fd, POLLIN, 0}};
        size_t pending;
        for (int i = 0; i < 2; i++) {
            struct endpoint *e = i ? b : a;
            hbone_conn_output(e->conn, &pending, now_ms());
            if (pending)
                fds[i].events |= POLLOUT;
        }
        int n = poll(fds, 2, 100);
        idle = n == 0 ? idle + 1 : 0;
        if (fds[0].revents & POLLIN)
            pump_in(a);
        if (fds[1].revents & POLLIN)
            pump_in(b);
        uint64_t t = now_ms();
        if (hbone_conn_get_expiry(a->conn) <= t)
            hbone_conn_handle_expiry(a->conn, t);
        if (hbone_conn_get_expiry(b->conn) <= t)
            hbone_conn_handle_expiry(b->conn, t);
    }
    return done(arg) ? 0 : -1;
}

static int responses_in(void *arg)
{
    const struct client_state *st = arg;
    return st->echo_status && st->denied_status;
}

static int tunnels_done(void *arg)
{
    const struct client_state *st = arg;
    return st->echo_closed && st->denied_closed;
}

static struct endpoint *closing[2];

static int client_failed(void *arg)
{
    const struct endpoint *client = arg;
    return client->failed != 0;
}

/* A second connection whose client expects another server identity: the
 * handshake fails on the client, before any CONNECT leaves it. */
static int wrong_identity(hbone_config *ccfg, hbone_config *scfg)
{
    struct endpoint client = {.name = "client"}, server = {.name = "server"};
    loopback_pair(&client.fd, &server.fd);
    hbone_spiffe_id *expected;
    int32_t tunnel;
    int r;
    if ((r = hbone_conn_server_new(&server.conn, scfg, NULL, NULL, now_ms())) < 0 ||
        (r = hbone_conn_client_new(&client.conn, ccfg, NULL, NULL, now_ms())) < 0 ||
        (r = hbone_spiffe_id_parse(&expected, WRONG_ID, strlen(WRONG_ID), NULL)) < 0)
        die("connection", r);
    if ((r = hbone_conn_expect_peer(client.conn, expected)) < 0 ||
        (r = hbone_conn_tunnel_open(client.conn, "10.0.0.3:8080", 13, NULL, NULL, NULL, NULL, 0,
                                    &tunnel)) < 0)
        die("wrong identity setup", r);
    hbone_spiffe_id_del(expected);
    printf("client: CONNECT 10.0.0.3:8080, expecting the server to be %s\n", WRONG_ID);
    int refused = run_until(&client, &server, client_failed, &client) == 0 &&
                  client.failed == HBONE_ERR_ID_MISMATCH;
    hbone_conn_del(client.conn);
    hbone_conn_del(server.conn);
    close(client.fd);
    close(server.fd);
    return refused;
}

static int both_closed(void *arg)
{
    (void)arg;
    return hbone_conn_is_closed(closing[0]->conn) && hbone_conn_is_closed(closing[1]->conn);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PKI_DIR\n", argv[0]);
        return 2;
    }
    printf("libhbone %s on %s; AES-GCM hardware acceleration: %s\n", hbone_version_string(),
           hbone_tls_library(), hbone_tls_aes_hw_accelerated() ? "yes" : "no");
    hbone_config *scfg = make_config(argv[1], "server"), *ccfg = make_config(argv[1], "client");

    hbone_callbacks *server_cbs, *client_cbs;
    if (hbone_callbacks_new(&server_cbs) < 0 || hbone_callbacks_new(&client_cbs) < 0)
        die("callbacks", HBONE_ERR_NOMEM);
    hbone_callbacks_set_tunnel_request(server_cbs, server_request);
    hbone_callbacks_set_tunnel_data(server_cbs, server_data);
    hbone_callbacks_set_tunnel_end(server_cbs, server_end);
    hbone_callbacks_set_tunnel_writable(server_cbs, server_writable);
    hbone_callbacks_set_handshake(client_cbs, client_handshake);
    hbone_callbacks_set_tunnel_response(client_cbs, client_response);
    hbone_callbacks_set_tunnel_data(client_cbs, client_data);
    hbone_callbacks_set_tunnel_writable(client_cbs, client_writable);
    hbone_callbacks_set_tunnel_close(client_cbs, client_close);

    struct client_state st = {.sent_sum = 2166136261u, .received_sum = 2166136261u};
    struct endpoint client = {.name = "client"}, server = {.name = "server"};
    loopback_pair(&client.fd, &server.fd);
    int r;
    if ((r = hbone_conn_server_new(&server.conn, scfg, server_cbs, NULL, now_ms())) < 0 ||
        (r = hbone_conn_client_new(&client.conn, ccfg, client_cbs, &st, now_ms())) < 0)
        die("connection", r);
    hbone_callbacks_del(server_cbs);
    hbone_callbacks_del(client_cbs);
    hbone_spiffe_id *expected;
    if ((r = hbone_spiffe_id_parse(&expected, SERVER_ID, strlen(SERVER_ID), NULL)) < 0 ||
        (r = hbone_conn_expect_peer(client.conn, expected)) < 0)
        die("expected identity", r);
    hbone_spiffe_id_del(expected);

    /* Both CONNECTs are queued now; they go out right after the handshake. */
    static const char *const names[] = {"forwarded"};
    static const size_t name_lens[] = {9};
    static const char *const values[] = {"for=\"10.0.0.1:41234\""};
    static const size_t value_lens[] = {20};
    if ((r = hbone_conn_tunnel_open(client.conn, "10.0.0.2:8080", 13, names, name_lens, values,
                                    value_lens, 1, &st.echo_tunnel)) < 0 ||
        (r = hbone_conn_tunnel_open(client.conn, "10.0.0.2:22", 11, NULL, NULL, NULL, NULL, 0,
                                    &st.denied_tunnel)) < 0)
        die("open tunnel", r);
    printf("client: CONNECT 10.0.0.2:8080 and 10.0.0.2:22, expecting the server to be %s\n",
           SERVER_ID);

    clock_gettime(CLOCK_MONOTONIC, &st.started);
    if (run_until(&client, &server, responses_in, &st) < 0) {
        fprintf(stderr, "hbone-demo: no responses (client: %s; server: %s)\n",
                hbone_conn_error_detail(client.conn), hbone_conn_error_detail(server.conn));
        return 1;
    }
    printf("mutual TLS 1.3 handshake in %.2f ms, %s\n", st.handshake_ms,
           hbone_conn_cipher(client.conn));
    printf("  client verified the server as %s\n",
           hbone_spiffe_id_str(hbone_conn_peer_id(client.conn), NULL));
    printf("  server verified the client as %s\n",
           hbone_spiffe_id_str(hbone_conn_peer_id(server.conn), NULL));
    printf("client: 10.0.0.2:8080 answered %d, 10.0.0.2:22 answered %d\n", st.echo_status,
           st.denied_status);

    client_send_more(client.conn, &st);
    if (run_until(&client, &server, tunnels_done, &st) < 0)
        die("tunnels did not finish", HBONE_ERR_TIMEOUT);
    double elapsed = seconds_since(&st.started);
    int intact = st.received == st.sent && st.received_sum == st.sent_sum;
    printf("client: sent %zu bytes, received %zu back, checksums %s, tunnel closed %s\n", st.sent,
           st.received, intact ? "match" : "DIFFER",
           st.echo_reason == 0 ? "cleanly (both sides ended)" : "with a reset");
    printf("        %.0f ms from connect to close (both ends on one thread)\n", elapsed * 1000);

    /* A graceful end: the server drains, the connection closes. */
    hbone_conn_drain(server.conn, now_ms(), 1000);
    closing[0] = &client;
    closing[1] = &server;
    run_until(&client, &server, both_closed, NULL);
    printf("server: drained; connection closed\n\n");
    int refused = wrong_identity(ccfg, scfg);

    hbone_conn_del(client.conn);
    hbone_conn_del(server.conn);
    close(client.fd);
    close(server.fd);
    hbone_config_del(ccfg);
    hbone_config_del(scfg);
    free(echo_buf);
    int as_described = intact && st.echo_status == 200 && st.denied_status == 403 &&
                       st.echo_reason == 0 && refused;
    return as_described ? 0 : 1;
}
