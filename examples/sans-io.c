/* SPDX-License-Identifier: MIT */
/*
 * sans-io: libhbone without sockets. A client and a server connection are
 * wired back to back through two memory buffers and a virtual clock; the
 * program opens a tunnel, sends a message, reads the echo and closes. The
 * same calls carry HBONE over any byte stream: an event loop's sockets, a
 * test harness, or another tunnel (double HBONE).
 *
 * usage: sans-io PKI_DIR   (a directory made by tests/support/gen-pki.sh)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hbone/hbone.h>

static uint64_t now = 1000; /* milliseconds; advanced by hand */

struct wire {
    uint8_t data[1 << 20];
    size_t len;
};

static char *read_file(const char *dir, const char *name, size_t *len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    char *buf = malloc(1 << 20);
    *len = f && buf ? fread(buf, 1, 1 << 20, f) : 0;
    if (f)
        fclose(f);
    if (!*len) {
        fprintf(stderr, "sans-io: cannot read %s\n", path);
        exit(1);
    }
    return buf;
}

static hbone_config *config(const char *pki, const char *leaf)
{
    hbone_config *cfg;
    char chain_name[64], key_name[64];
    snprintf(chain_name, sizeof(chain_name), "%s.chain.pem", leaf);
    snprintf(key_name, sizeof(key_name), "%s.key", leaf);
    size_t chain_len, key_len, ca_len;
    char *chain = read_file(pki, chain_name, &chain_len), *key = read_file(pki, key_name, &key_len);
    char *ca = read_file(pki, "bundle-cluster.local.pem", &ca_len);
    if (hbone_config_new(&cfg, NULL) < 0 ||
        hbone_config_set_certificate(cfg, chain, chain_len, key, key_len) < 0 ||
        hbone_config_add_trust_bundle(cfg, "cluster.local", 13, ca, ca_len) < 0) {
        fprintf(stderr, "sans-io: %s\n", hbone_config_error_detail(cfg));
        exit(1);
    }
    free(chain);
    free(key);
    free(ca);
    return cfg;
}

/* Move what @p from has for the peer into @p wire, and what @p wire holds
 * into @p to. Returns how many bytes moved. */
static size_t transfer(hbone_conn *from, struct wire *wire, hbone_conn *to)
{
    size_t moved = 0, len, consumed = 0;
    const uint8_t *out = hbone_conn_output(from, &len, now);
    if (len > sizeof(wire->data) - wire->len)
        len = sizeof(wire->data) - wire->len;
    if (len) { /* out is NULL when there is nothing */
        memcpy(wire->data + wire->len, out, len);
        wire->len += len;
        hbone_conn_output_consume(from, len);
    }
    if (hbone_conn_input(to, wire->data, wire->len, &consumed, now) < 0)
        fprintf(stderr, "sans-io: %s\n", hbone_conn_error_detail(to));
    memmove(wire->data, wire->data + consumed, wire->len - consumed);
    wire->len -= consumed;
    moved = len + consumed;
    return moved;
}

static char echo_back[256];
static size_t echo_len;
static int closed;

static void server_request(hbone_conn *conn, int32_t tunnel, const char *host, size_t host_len,
                           uint16_t port, int kind, void *user)
{
    (void)kind;
    (void)user;
    printf("server: CONNECT %.*s:%u from %s -> 200\n", (int)host_len, host, port,
           hbone_spiffe_id_str(hbone_conn_peer_id(conn), NULL));
    hbone_conn_tunnel_accept(conn, tunnel, NULL, NULL, NULL, NULL, 0);
}

static void server_data(hbone_conn *conn, int32_t tunnel, const uint8_t *data, size_t len,
                        void *user)
{
    (void)user;
    size_t accepted;
    hbone_conn_tunnel_write(conn, tunnel, data, len, &accepted); /* small: all fits */
    hbone_conn_tunnel_consume(conn, tunnel, len);
}

static void server_end(hbone_conn *conn, int32_t tunnel, void *user)
{
    (void)user;
    hbone_conn_tunnel_shutdown(conn, tunnel);
}

static void client_data(hbone_conn *conn, int32_t tunnel, const uint8_t *data, size_t len,
                        void *user)
{
    (void)user;
    if (len > sizeof(echo_back) - 1 - echo_len)
        len = sizeof(echo_back) - 1 - echo_len;
    memcpy(echo_back + echo_len, data, len);
    echo_len += len;
    hbone_conn_tunnel_consume(conn, tunnel, len);
}

static void client_close(hbone_conn *conn, int32_t tunnel, uint32_t reason, void *user)
{
    (void)conn;
    (void)tunnel;
    (void)user;
    closed = reason == 0 ? 1 : -1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PKI_DIR\n", argv[0]);
        return 2;
    }
    hbone_config *ccfg = config(argv[1], "client"), *scfg = config(argv[1], "server");
    hbone_callbacks *cbs;
    hbone_callbacks_new(&cbs);
    hbone_callbacks_set_tunnel_request(cbs, server_request);
    hbone_callbacks_set_tunnel_end(cbs, server_end);
    hbone_callbacks_set_tunnel_close(cbs, client_close);
    hbone_conn *client, *server;
    hbone_callbacks_set_tunnel_data(cbs, client_data);
    hbone_conn_client_new(&client, ccfg, cbs, NULL, now);
    hbone_callbacks_set_tunnel_data(cbs, server_data);
    hbone_conn_server_new(&server, scfg, cbs, NULL, now);
    hbone_callbacks_del(cbs);
    hbone_config_del(ccfg);
    hbone_config_del(scfg);

    static const char server_id[] = "spiffe://cluster.local/ns/default/sa/server";
    hbone_spiffe_id *id;
    hbone_spiffe_id_parse(&id, server_id, sizeof(server_id) - 1, NULL);
    hbone_conn_expect_peer(client, id);
    hbone_spiffe_id_del(id);
    int32_t tunnel;
    hbone_conn_tunnel_open(client, "10.0.0.2:8080", 13, NULL, NULL, NULL, NULL, 0, &tunnel);
    static const char message[] = "hello through a tunnel made of memory";
    size_t accepted;
    hbone_conn_tunnel_write(client, tunnel, (const uint8_t *)message, sizeof(message) - 1,
                            &accepted);
    hbone_conn_tunnel_shutdown(client, tunnel); /* sent after the 200, then FIN */

    static struct wire to_server, to_client;
    int rounds = 0;
    while (transfer(client, &to_server, server) + transfer(server, &to_client, client) > 0) {
        rounds++;
        now += 1; /* time passes as the application says */
    }
    printf("client: echo \"%s\" after %d rounds, tunnel %s\n", echo_back, rounds,
           closed == 1 ? "closed cleanly" : "not closed cleanly");
    int ok = closed == 1 && strcmp(echo_back, message) == 0;
    hbone_conn_del(client);
    hbone_conn_del(server);
    return ok ? 0 : 1;
}
