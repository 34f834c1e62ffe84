/* SPDX-License-Identifier: MIT */
/*
 * mtls-demo: a libhbone client and server complete a real mutual-TLS 1.3
 * handshake over loopback TCP with SPIFFE certificates, then exchange a
 * message, driven by one poll() loop over the sans-IO TLS sessions.
 *
 * This is the foundation demo: it uses the TLS layer directly, which is
 * internal. It becomes the HBONE tunnel demo (public hbone_conn API) once
 * tunnels exist.
 *
 * usage: mtls-demo PKI_DIR   (a directory made by tests/support/gen-pki.sh)
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

#include "tls/tls.h"

#define SERVER_ID "spiffe://cluster.local/ns/default/sa/server"
#define WRONG_ID "spiffe://cluster.local/ns/default/sa/payments"
#define IO_TIMEOUT_MS 5000

struct side {
    const char *name;
    int fd;
    hb_tls *tls;
    int done;  /* handshake complete */
    int error; /* fatal error, 0 if none */
    int eof;
    uint8_t in[16384];
    size_t in_len;
    char plain[256];
    size_t plain_len;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static char *read_file(const char *dir, const char *name, size_t *len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "mtls-demo: cannot open %s: %s\n", path, strerror(errno));
        exit(1);
    }
    char *buf = malloc(1 << 20);
    *len = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (!buf || *len == 0) {
        fprintf(stderr, "mtls-demo: cannot read %s\n", path);
        exit(1);
    }
    buf[*len] = '\0';
    return buf;
}

static void check(int r, const char *what, const hbone_config *cfg)
{
    if (r < 0) {
        fprintf(stderr, "mtls-demo: %s: %s%s%s\n", what, hbone_strerror(r), cfg ? ": " : "",
                cfg ? hbone_config_error_detail(cfg) : "");
        exit(1);
    }
}

static hbone_config *make_config(const char *pki, const char *leaf)
{
    hbone_config *cfg;
    check(hbone_config_new(&cfg, NULL), "config", NULL);
    char name[256];
    size_t chain_len, key_len, bundle_len;
    snprintf(name, sizeof(name), "%s.chain.pem", leaf);
    char *chain = read_file(pki, name, &chain_len);
    snprintf(name, sizeof(name), "%s.key", leaf);
    char *key = read_file(pki, name, &key_len);
    char *bundle = read_file(pki, "bundle-cluster.local.pem", &bundle_len);
    check(hbone_config_set_certificate(cfg, chain, chain_len, key, key_len), leaf, cfg);
    check(hbone_config_add_trust_bundle(cfg, "cluster.local", 13, bundle, bundle_len), "bundle",
          cfg);
    free(chain);
    free(key);
    free(bundle);
    return cfg;
}

static void set_nonblocking(int fd)
{
    int one = 1;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* A connected loopback socket pair through a real listener. */
static void connect_pair(int *client_fd, int *server_fd, int *port)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof(addr);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(lfd, 4) < 0 ||
        getsockname(lfd, (struct sockaddr *)&addr, &alen) < 0) {
        perror("mtls-demo: listen");
        exit(1);
    }
    *port = ntohs(addr.sin_port);
    *client_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (*client_fd < 0 || connect(*client_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        perror("mtls-demo: connect");
        exit(1);
    }
    *server_fd = accept(lfd, NULL, NULL);
    if (*server_fd < 0) {
        perror("mtls-demo: accept");
        exit(1);
    }
    close(lfd);
    set_nonblocking(*client_fd);
    set_nonblocking(*server_fd);
}

/* Send what the session has for the peer; keep the rest for later. */
static void flush(struct side *s)
{
    size_t len;
    const uint8_t *out;
    while ((out = hb_tls_output(s->tls, &len)) != NULL) {
        ssize_t n = send(s->fd, out, len, MSG_NOSIGNAL);
        if (n <= 0)
            return;
        hb_tls_output_consume(s->tls, (size_t)n);
    }
}

/* Read from the socket and feed the session: handshake first, then data. */
static void service(struct side *s)
{
    if (s->error)
        return;
    ssize_t n = recv(s->fd, s->in + s->in_len, sizeof(s->in) - s->in_len, 0);
    if (n == 0)
        s->eof = 1;
    if (n > 0)
        s->in_len += (size_t)n;
    size_t consumed = 0;
    int r;
    if (!s->done) {
        r = hb_tls_handshake(s->tls, s->in, s->in_len, &consumed);
        if (r == 0)
            s->done = 1;
    } else {
        size_t nread = 0;
        r = hb_tls_read(s->tls, s->in, s->in_len, &consumed, (uint8_t *)s->plain + s->plain_len,
                        sizeof(s->plain) - 1 - s->plain_len, &nread);
        s->plain_len += nread;
        s->plain[s->plain_len] = '\0';
        if (r == HBONE_ERR_CLOSED)
            s->eof = 1;
    }
    memmove(s->in, s->in + consumed, s->in_len - consumed);
    s->in_len -= consumed;
    if (r < 0 && hbone_err_is_fatal(r))
        s->error = r;
    flush(s);
}

/* Run the poll loop until @p done says so or nothing happens for a while. */
static int run(struct side *a, struct side *b, int (*done)(struct side *, struct side *))
{
    while (!done(a, b)) {
        struct pollfd fds[2] = {{a->fd, POLLIN, 0}, {b->fd, POLLIN, 0}};
        int n = poll(fds, 2, IO_TIMEOUT_MS);
        if (n <= 0)
            return -1;
        if (fds[0].revents)
            service(a);
        if (fds[1].revents)
            service(b);
    }
    return 0;
}

static int handshakes_settled(struct side *c, struct side *s)
{
    return (c->done || c->error || c->eof) && (s->done || s->error || s->eof);
}

static int message_arrived(struct side *c, struct side *s)
{
    (void)c;
    return s->plain_len > 0 || s->error || s->eof;
}

static int reply_arrived(struct side *c, struct side *s)
{
    (void)s;
    return c->plain_len > 0 || c->error || c->eof;
}

static void open_sessions(struct side *c, struct side *s, hbone_config *ccfg, hbone_config *scfg,
                          const char *expected, int *port)
{
    memset(c, 0, sizeof(*c));
    memset(s, 0, sizeof(*s));
    c->name = "client";
    s->name = "server";
    connect_pair(&c->fd, &s->fd, port);
    check(hb_tls_new(&c->tls, ccfg, HB_TLS_CLIENT), "client session", NULL);
    check(hb_tls_new(&s->tls, scfg, HB_TLS_SERVER), "server session", NULL);
    hbone_spiffe_id *id;
    check(hbone_spiffe_id_parse(&id, expected, strlen(expected), NULL), "expected id", NULL);
    check(hb_tls_expect_peer(c->tls, id), "expect peer", NULL);
    hbone_spiffe_id_del(id);
}

static void close_sessions(struct side *c, struct side *s)
{
    hb_tls_del(c->tls);
    hb_tls_del(s->tls);
    close(c->fd);
    close(s->fd);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PKI_DIR\n", argv[0]);
        return 2;
    }
    printf("libhbone %s: mutual TLS 1.3 with SPIFFE identities over loopback TCP\n",
           hbone_version_string());
    printf("  TLS library       %s\n", hbone_tls_library());
    printf("  AES-GCM hardware  %s\n",
           hbone_tls_aes_hw_accelerated() ? "yes (AES-NI)" : "no (software AES)");

    hbone_config *scfg = make_config(argv[1], "server");
    hbone_config *ccfg = make_config(argv[1], "client");
    printf("  server identity   %s\n", hbone_spiffe_id_str(hbone_config_identity(scfg), NULL));
    printf("  client identity   %s\n\n", hbone_spiffe_id_str(hbone_config_identity(ccfg), NULL));

    struct side c, s;
    int port;
    open_sessions(&c, &s, ccfg, scfg, SERVER_ID, &port);
    double start = now_ms();
    service(&c); /* the client speaks first: its ClientHello */
    if (run(&c, &s, handshakes_settled) < 0 || !c.done || !s.done) {
        fprintf(stderr, "mtls-demo: handshake failed: client: %s; server: %s\n",
                hb_tls_error_detail(c.tls), hb_tls_error_detail(s.tls));
        return 1;
    }
    double elapsed = now_ms() - start;
    printf("handshake over 127.0.0.1:%d completed in %.2f ms\n", port, elapsed);
    printf("  client verified server as %s\n", hbone_spiffe_id_str(hb_tls_peer_id(c.tls), NULL));
    printf("  server verified client as %s\n", hbone_spiffe_id_str(hb_tls_peer_id(s.tls), NULL));
    printf("  cipher suite %s, key exchange %s, ALPN h2\n", hb_tls_cipher(c.tls),
           hb_tls_group(c.tls));

    static const char ping[] = "hello from the client";
    static const char pong[] = "hello back from the server";
    check(hb_tls_write(c.tls, (const uint8_t *)ping, sizeof(ping) - 1), "client write", NULL);
    flush(&c);
    if (run(&c, &s, message_arrived) < 0 || strcmp(s.plain, ping) != 0) {
        fprintf(stderr, "mtls-demo: server did not receive the message\n");
        return 1;
    }
    check(hb_tls_write(s.tls, (const uint8_t *)pong, sizeof(pong) - 1), "server write", NULL);
    flush(&s);
    if (run(&c, &s, reply_arrived) < 0 || strcmp(c.plain, pong) != 0) {
        fprintf(stderr, "mtls-demo: client did not receive the reply\n");
        return 1;
    }
    printf("  server received \"%s\"; client received \"%s\"\n\n", s.plain, c.plain);
    close_sessions(&c, &s);

    /* The same server, but a client that expects another identity. */
    open_sessions(&c, &s, ccfg, scfg, WRONG_ID, &port);
    service(&c);
    run(&c, &s, handshakes_settled);
    if (c.error != HBONE_ERR_ID_MISMATCH) {
        fprintf(stderr, "mtls-demo: a client expecting %s was not refused\n", WRONG_ID);
        return 1;
    }
    printf("a client expecting %s refuses the server:\n  %s\n", WRONG_ID,
           hb_tls_error_detail(c.tls));
    close_sessions(&c, &s);

    hbone_config_del(ccfg);
    hbone_config_del(scfg);
    return 0;
}
