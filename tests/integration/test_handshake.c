/* SPDX-License-Identifier: MIT */
/*
 * Mutual-TLS handshakes between a real libhbone client and server in memory:
 * every good and bad certificate of the test PKI, with the byte stream
 * delivered whole, one byte at a time, and in random chunks.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hbone/conn.h>

#include "testlib.h"
#include "identity/pem.h"
#include "tls/config.h"
#include "tls/wolfssl.h"
#include "raw_tls.h"
#include "tls_pair.h"

#define ID(sa) "spiffe://cluster.local/ns/default/sa/" sa
#define B_ID(sa) "spiffe://td-b.example/ns/default/sa/" sa

/* The peer of the failing side either got an alert or still waits. */
#define ALERT_OR_WAITING 1
/* A TLS 1.3 client is done once it has sent its Finished, before the server
 * has judged its certificate: a server that refuses it without an alert
 * leaves it established (the connection then ends with the transport). */
#define DONE_OR_ALERT 2

static const int chunkings[] = {TL_CHUNK_WHOLE, TL_CHUNK_ONE_BYTE, TL_CHUNK_RANDOM};
#define N_CHUNKINGS 3

/* A config presenting PKI leaf @p leaf, checked (as users get) or not (to
 * play a peer with a certificate libhbone would refuse to present). */
static hbone_config *peer_config(const char *leaf, const char *key_suffix, int check_svid,
                                 int lenient, const char *const *extra_bundles,
                                 const char *accept_td, const hbone_mem *mem)
{
    hbone_config *cfg = NULL;
    ck_assert_int_eq(hbone_config_new(&cfg, mem), 0);
    if (lenient)
        ck_assert_int_eq(hbone_config_set_svid_mode(cfg, HBONE_SVID_LENIENT), 0);
    char name[256];
    size_t chain_len, key_len, bundle_len;
    snprintf(name, sizeof(name), "%s.chain.pem", leaf);
    char *chain = tl_pki_read(name, &chain_len);
    snprintf(name, sizeof(name), "%s%s", leaf, key_suffix ? key_suffix : ".key");
    char *key = tl_pki_read(name, &key_len);
    int r = hb_config_load_certificate(cfg, chain, chain_len, key, key_len, check_svid);
    ck_assert_msg(r == 0, "%s: %s: %s", leaf, hbone_strerror(r), hbone_config_error_detail(cfg));
    free(chain);
    free(key);
    char *bundle = tl_pki_read("bundle-cluster.local.pem", &bundle_len);
    ck_assert_int_eq(hbone_config_add_trust_bundle(cfg, "cluster.local", 13, bundle, bundle_len),
                     0);
    free(bundle);
    for (size_t i = 0; extra_bundles && extra_bundles[i]; i++) {
        bundle = tl_pki_read(extra_bundles[i] + strlen("td-b.example="), &bundle_len);
        ck_assert_int_eq(hbone_config_add_trust_bundle(cfg, "td-b.example", 12, bundle, bundle_len),
                         0);
        free(bundle);
    }
    if (accept_td)
        ck_assert_int_eq(hbone_config_accept_trust_domain(cfg, accept_td, strlen(accept_td)), 0);
    return cfg;
}

struct handshake_case {
    const char *name;
    const char *client_leaf;
    const char *server_leaf;
    const char *server_key; /* NULL: ".key" (PKCS#8) */
    int client_checked;     /* the client's own cert passes the SVID check */
    int server_checked;
    int lenient;                /* both sides in lenient SVID mode */
    int with_td_b;              /* both sides also trust td-b.example's bundle */
    const char *server_accepts; /* extra trust domain the server accepts */
    const char *expected[3];    /* what the client expects the server to be */
    int client_error;           /* 0: handshake succeeds on the client */
    int server_error;           /* 0: succeeds on the server */
    const char *detail;         /* substring of the failing side's detail */
    const char *client_sees;    /* the identity the server must report */
};

static const char *const td_b_bundle[] = {"td-b.example=bundle-td-b.example.pem", NULL};

/* A case per entry reads better than a field per line. */
/* clang-format off */
static const struct handshake_case cases[] = {
    {"ecdsa chain, pkcs8 keys", "client", "server", NULL, 1, 1, 0, 0, NULL, {ID("server")}, 0, 0,
     NULL, ID("client")},
    {"sec1 server key", "client", "server", ".sec1.key", 1, 1, 0, 0, NULL, {ID("server")}, 0, 0,
     NULL, ID("client")},
    {"rsa root, rsa-pss and pkcs1 intermediates", "rsa-client", "rsa-server", NULL, 1, 1, 0, 0,
     NULL, {ID("rsa-server")}, 0, 0, NULL, ID("rsa-client")},
    {"rsa leaf key", "client", "rsa-leaf", NULL, 1, 1, 0, 0, NULL, {ID("rsa-leaf")}, 0, 0, NULL,
     ID("client")},
    {"one of several expected ids", "client2", "server", NULL, 1, 1, 0, 0, NULL,
     {ID("nobody"), ID("server"), NULL}, 0, 0, NULL, "spiffe://cluster.local/ns/other/sa/client2"},
    {"uri and dns sans", "client", "uri-and-dns", NULL, 1, 1, 0, 0, NULL, {ID("client")}, 0, 0,
     NULL, ID("client")},
    {"lenient mode takes the first valid uri", "client", "bad-uri-first-then-good", NULL, 1, 1, 1,
     0, NULL, {ID("client")}, 0, 0, NULL, ID("client")},
    {"federated client trust domain", "b-client", "server", NULL, 1, 1, 0, 1, "td-b.example",
     {ID("server")}, 0, 0, NULL, B_ID("client")},
    /* identity mismatches */
    {"unexpected server identity", "client", "server", NULL, 1, 1, 0, 0, NULL, {ID("other")},
     HBONE_ERR_ID_MISMATCH, HBONE_ERR_TLS_ALERT,
     "peer presented " ID("server") ", expected " ID("other"), NULL},
    {"client of a trust domain not accepted", "b-client", "server", NULL, 1, 1, 0, 1, NULL,
     {ID("server")}, HBONE_ERR_TLS_ALERT, HBONE_ERR_ID_TRUST_DOMAIN,
     "client " B_ID("client") " is in trust domain td-b.example, not cluster.local", NULL},
    {"server of td-b signed by cluster.local's CA", "client", "foreign-td", NULL, 1, 0, 0, 1, NULL,
     {B_ID("client")}, HBONE_ERR_ID_BUNDLE, HBONE_ERR_TLS_ALERT,
     "chains to the bundle of trust domain cluster.local, not td-b.example", NULL},
    {"client of td-b signed by cluster.local's CA", "foreign-td", "server", NULL, 0, 1, 0, 1,
     "td-b.example", {ID("server")}, HBONE_ERR_TLS_ALERT, HBONE_ERR_ID_BUNDLE,
     "chains to the bundle of trust domain cluster.local, not td-b.example", NULL},
    {"foreign trust domain without its bundle", "client", "foreign-td", NULL, 1, 0, 0, 0, NULL,
     {B_ID("client")}, HBONE_ERR_ID_BUNDLE, HBONE_ERR_TLS_ALERT,
     "trust domain td-b.example, which has no trust bundle", NULL},
    /* chains */
    {"untrusted server", "client", "evil-server", NULL, 1, 1, 0, 0, NULL, {ID("server")},
     HBONE_ERR_TLS_CERT_UNTRUSTED, HBONE_ERR_TLS_ALERT, "does not chain to any trust bundle",
     NULL},
    {"untrusted client", "evil-client", "server", NULL, 1, 1, 0, 0, NULL, {ID("server")},
     HBONE_ERR_TLS_ALERT, HBONE_ERR_TLS_CERT_UNTRUSTED, "does not chain to any trust bundle", NULL},
    {"expired server", "client", "expired", NULL, 1, 1, 0, 0, NULL, {ID("expired")},
     HBONE_ERR_TLS_CERT_EXPIRED, HBONE_ERR_TLS_ALERT, "depth 0 has expired", NULL},
    {"not yet valid server", "client", "not-yet-valid", NULL, 1, 1, 0, 0, NULL,
     {ID("not-yet-valid")}, HBONE_ERR_TLS_CERT_NOT_YET_VALID, HBONE_ERR_TLS_ALERT,
     "is not valid yet", NULL},
    {"expired client", "expired", "server", NULL, 1, 1, 0, 0, NULL, {ID("server")},
     HBONE_ERR_TLS_ALERT, HBONE_ERR_TLS_CERT_EXPIRED, "depth 0 has expired", NULL},
    {"not yet valid client", "not-yet-valid", "server", NULL, 1, 1, 0, 0, NULL, {ID("server")},
     HBONE_ERR_TLS_ALERT, HBONE_ERR_TLS_CERT_NOT_YET_VALID, "is not valid yet", NULL},
    {"expired intermediate", "expired-int-leaf", "server", NULL, 1, 1, 0, 0, NULL, {ID("server")},
     HBONE_ERR_TLS_ALERT, HBONE_ERR_TLS_CERT_EXPIRED, "depth 1 has expired", NULL},
    /* Some wolfSSL builds send no alert for these: the server is left
     * waiting until the transport closes. */
    {"over-long chain", "client", "long-chain", NULL, 1, 1, 0, 0, NULL, {ID("long-chain")},
     HBONE_ERR_TLS_CHAIN_TOO_LONG, ALERT_OR_WAITING, "too long", NULL},
    {"40 KB server certificate", "client", "huge", NULL, 1, 1, 0, 0, NULL, {ID("huge")},
     HBONE_ERR_TLS_MESSAGE_TOO_LARGE, ALERT_OR_WAITING, "too large", NULL},
    {"over-long chain from a client", "long-chain", "server", NULL, 1, 1, 0, 0, NULL,
     {ID("server")}, DONE_OR_ALERT, HBONE_ERR_TLS_CHAIN_TOO_LONG, "too long", NULL},
    {"40 KB client certificate", "huge", "server", NULL, 1, 1, 0, 0, NULL, {ID("server")},
     DONE_OR_ALERT, HBONE_ERR_TLS_MESSAGE_TOO_LARGE, "too large", NULL},
    /* leaves that are not X.509-SVIDs */
    {"server leaf is a CA", "client", "ca-true", NULL, 1, 0, 0, 0, NULL, {ID("ca-true")},
     HBONE_ERR_SVID_CA, HBONE_ERR_TLS_ALERT, "server certificate is a CA", NULL},
    {"client leaf is a CA", "ca-true", "server", NULL, 0, 1, 0, 0, NULL, {ID("server")},
     HBONE_ERR_TLS_ALERT, HBONE_ERR_SVID_CA, "client certificate is a CA", NULL},
    {"keyCertSign", "client", "key-cert-sign", NULL, 1, 0, 0, 0, NULL, {ID("key-cert-sign")},
     HBONE_ERR_SVID_KEY_USAGE, HBONE_ERR_TLS_ALERT, "keyCertSign", NULL},
    {"keyCertSign client", "key-cert-sign", "server", NULL, 0, 1, 0, 0, NULL, {ID("server")},
     HBONE_ERR_TLS_ALERT, HBONE_ERR_SVID_KEY_USAGE, "keyCertSign", NULL},
    {"no key usage", "no-key-usage", "server", NULL, 0, 1, 0, 0, NULL, {ID("server")},
     HBONE_ERR_TLS_ALERT, HBONE_ERR_SVID_KEY_USAGE, "no keyUsage", NULL},
    {"no digitalSignature", "client", "no-digital-signature", NULL, 1, 0, 0, 0, NULL,
     {ID("no-digital-signature")}, HBONE_ERR_SVID_KEY_USAGE, HBONE_ERR_TLS_ALERT,
     "lacks digitalSignature", NULL},
    {"eku serverAuth only", "eku-server-only", "server", NULL, 0, 1, 0, 0, NULL, {ID("server")},
     HBONE_ERR_TLS_ALERT, HBONE_ERR_SVID_EXT_KEY_USAGE, "extendedKeyUsage lacks clientAuth", NULL},
    {"eku clientAuth only", "client", "eku-client-only", NULL, 1, 0, 0, 0, NULL,
     {ID("eku-client-only")}, HBONE_ERR_SVID_EXT_KEY_USAGE, HBONE_ERR_TLS_ALERT,
     "extendedKeyUsage lacks serverAuth", NULL},
    {"eku codeSigning", "client", "eku-code-signing", NULL, 1, 0, 0, 0, NULL,
     {ID("eku-code-signing")}, HBONE_ERR_SVID_EXT_KEY_USAGE, HBONE_ERR_TLS_ALERT,
     "extendedKeyUsage lacks serverAuth", NULL},
    {"no san", "no-san", "server", NULL, 0, 1, 0, 0, NULL, {ID("server")}, HBONE_ERR_TLS_ALERT,
     HBONE_ERR_SVID_NO_URI_SAN, "has no URI SAN", NULL},
    {"spiffe text in a dns san", "client", "dns-spiffe", NULL, 1, 0, 0, 0, NULL, {ID("client")},
     HBONE_ERR_SVID_NO_URI_SAN, HBONE_ERR_TLS_ALERT, "DNS names are never identities", NULL},
    {"two uri sans", "two-uri", "server", NULL, 0, 1, 0, 0, NULL, {ID("server")},
     HBONE_ERR_TLS_ALERT, HBONE_ERR_SVID_MULTIPLE_URI_SANS, "2 URI SANs", NULL},
    {"strict mode refuses a bad first uri", "client", "bad-uri-first-then-good", NULL, 1, 0, 0, 0,
     NULL, {ID("client")}, HBONE_ERR_SVID_MULTIPLE_URI_SANS, HBONE_ERR_TLS_ALERT, NULL, NULL},
    {"uppercase trust domain", "client", "bad-uri-upper", NULL, 1, 0, 0, 0, NULL, {ID("client")},
     HBONE_ERR_SPIFFE_TRUST_DOMAIN_CHAR, HBONE_ERR_TLS_ALERT, "spiffe://Cluster.Local", NULL},
    {"https uri", "bad-uri-scheme", "server", NULL, 0, 1, 0, 0, NULL, {ID("server")},
     HBONE_ERR_TLS_ALERT, HBONE_ERR_SPIFFE_SCHEME, "https://cluster.local", NULL},
};
/* clang-format on */
#define N_CASES (sizeof(cases) / sizeof(cases[0]))

/* The canary after a case: a well-behaved client completes a handshake
 * with @p server_cfg and moves bytes both ways. */
static void canary(hbone_config *server_cfg, unsigned seed)
{
    hbone_config *ccfg = tl_config("client", NULL);
    static const char *const expected[] = {ID("server"), NULL};
    tl_pair p;
    tl_pair_init(&p, ccfg, server_cfg, expected, TL_CHUNK_RANDOM, seed);
    hbone_config_del(ccfg);
    tl_pair_pump(&p);
    ck_assert_msg(p.client.state == 1 && p.server.state == 1, "canary: client %d, server %d",
                  p.client.state, p.server.state);
    uint8_t up[3000], down[3000];
    for (size_t i = 0; i < sizeof(up); i++) {
        up[i] = (uint8_t)(i * 13 + seed);
        down[i] = (uint8_t)(i * 29 + seed);
    }
    tl_pair_write(&p.client, up, sizeof(up));
    tl_pair_write(&p.server, down, sizeof(down));
    tl_pair_pump(&p);
    ck_assert(p.server.plain.len == sizeof(up) && memcmp(p.server.plain.buf, up, sizeof(up)) == 0);
    ck_assert(p.client.plain.len == sizeof(down) &&
              memcmp(p.client.plain.buf, down, sizeof(down)) == 0);
    tl_pair_free(&p);
}

static void run_case(const struct handshake_case *c, int chunking, unsigned seed)
{
    const char *const *extra = c->with_td_b ? td_b_bundle : NULL;
    tl_counting counts;
    hbone_mem *mem = tl_counting_mem(&counts, -1);
    hbone_config *ccfg =
        peer_config(c->client_leaf, NULL, c->client_checked, c->lenient, extra, NULL, mem);
    hbone_config *scfg = peer_config(c->server_leaf, c->server_key, c->server_checked, c->lenient,
                                     extra, c->server_accepts, mem);
    tl_pair p;
    tl_pair_init(&p, ccfg, scfg, c->expected, chunking, seed);
    hbone_config_del(ccfg); /* the sessions hold their own references */
    tl_pair_pump(&p);
    int client_ok = p.client.state == 1, server_ok = p.server.state == 1;
    if (!c->client_error && !c->server_error) {
        ck_assert_msg(client_ok && server_ok, "%s (chunking %d): client %d (%s), server %d (%s)",
                      c->name, chunking, p.client.state, hb_tls_error_detail(p.client.tls),
                      p.server.state, hb_tls_error_detail(p.server.tls));
        const char *server_id = hbone_spiffe_id_str(hb_tls_peer_id(p.client.tls), NULL);
        const char *client_id = hbone_spiffe_id_str(hb_tls_peer_id(p.server.tls), NULL);
        int matched = 0;
        for (int i = 0; i < 3 && c->expected[i]; i++)
            matched |= strcmp(server_id, c->expected[i]) == 0;
        ck_assert_msg(matched, "%s: server identity %s", c->name, server_id);
        ck_assert_str_eq(client_id, c->client_sees);
        ck_assert_str_eq(hb_tls_cipher(p.client.tls), "TLS_AES_128_GCM_SHA256");
        ck_assert_str_eq(hb_tls_cipher(p.server.tls), "TLS_AES_128_GCM_SHA256");
        ck_assert_str_eq(hb_tls_group(p.client.tls), "SECP256R1");
    } else {
        int server_as_expected = c->server_error == ALERT_OR_WAITING
                                     ? p.server.state == 0 || p.server.state == HBONE_ERR_TLS_ALERT
                                     : p.server.state == c->server_error;
        int client_as_expected = c->client_error == DONE_OR_ALERT
                                     ? p.client.state == 1 || p.client.state == HBONE_ERR_TLS_ALERT
                                     : p.client.state == c->client_error;
        ck_assert_msg(client_as_expected && server_as_expected,
                      "%s (chunking %d): client %d want %d (%s); server %d want %d (%s)", c->name,
                      chunking, p.client.state, c->client_error, hb_tls_error_detail(p.client.tls),
                      p.server.state, c->server_error, hb_tls_error_detail(p.server.tls));
        const hb_tls *failing = c->server_error < 0 && c->server_error != HBONE_ERR_TLS_ALERT
                                    ? p.server.tls
                                    : p.client.tls;
        if (c->detail)
            ck_assert_msg(strstr(hb_tls_error_detail(failing), c->detail) != NULL,
                          "%s: detail \"%s\" lacks \"%s\"", c->name, hb_tls_error_detail(failing),
                          c->detail);
        ck_assert_ptr_null(hb_tls_peer_id(failing));
        /* Errors are sticky. */
        size_t consumed;
        ck_assert_int_eq(hb_tls_handshake((hb_tls *)failing, NULL, 0, &consumed),
                         failing == p.server.tls ? c->server_error : c->client_error);
    }
    tl_pair_free(&p);
    /* Other connections carry on: on the case's own server config when it
     * is the standard server (it refused a bad client and serves good ones),
     * else on a fresh one. */
    int standard_server = strcmp(c->server_leaf, "server") == 0 && !c->server_key && !c->lenient &&
                          !c->server_accepts;
    if (standard_server) {
        canary(scfg, seed);
    } else {
        hbone_config *fresh = tl_config("server", NULL);
        canary(fresh, seed);
        hbone_config_del(fresh);
    }
    hbone_config_del(scfg);
    /* Every allocation of the case, failed or not, was given back. */
    ck_assert_int_eq(counts.allocs, counts.frees);
    hbone_mem_del(mem);
}

START_TEST(handshake_case)
{
    const struct handshake_case *c = &cases[_i / N_CHUNKINGS];
    run_case(c, chunkings[_i % N_CHUNKINGS], (unsigned)_i * 7919u + 1u);
}
END_TEST

/* A client and server ("client", "server") with the handshake done. */
static void established_pair(tl_pair *p, int chunking, unsigned seed)
{
    hbone_config *ccfg = tl_config("client", NULL), *scfg = tl_config("server", NULL);
    static const char *const expected[] = {ID("server"), NULL};
    tl_pair_init(p, ccfg, scfg, expected, chunking, seed);
    hbone_config_del(ccfg); /* the sessions hold their own references */
    hbone_config_del(scfg);
    tl_pair_pump(p);
    ck_assert_int_eq(p->client.state, 1);
    ck_assert_int_eq(p->server.state, 1);
}

START_TEST(data_flows_both_ways_and_close_notify_ends_it)
{
    tl_pair p;
    established_pair(&p, TL_CHUNK_RANDOM, 42 + (unsigned)_i);
    /* More than one record each way, with a recognisable pattern. */
    size_t n = 100000;
    uint8_t *up = malloc(n), *down = malloc(n);
    for (size_t i = 0; i < n; i++) {
        up[i] = (uint8_t)(i * 31 + 7);
        down[i] = (uint8_t)(i * 17 + 3);
    }
    tl_pair_write(&p.client, up, n);
    tl_pair_write(&p.server, down, n);
    tl_pair_pump(&p);
    ck_assert_uint_eq(p.server.plain.len, n);
    ck_assert_uint_eq(p.client.plain.len, n);
    ck_assert_int_eq(memcmp(p.server.plain.buf, up, n), 0);
    ck_assert_int_eq(memcmp(p.client.plain.buf, down, n), 0);
    ck_assert_int_eq(hb_tls_close_notify(p.client.tls), 0);
    tl_pair_pump(&p);
    ck_assert_int_eq(p.server.state, 2);
    size_t consumed, nread;
    uint8_t buf[16];
    ck_assert_int_eq(hb_tls_read(p.server.tls, NULL, 0, &consumed, buf, sizeof(buf), &nread),
                     HBONE_ERR_CLOSED);
    free(up);
    free(down);
    tl_pair_free(&p);
}
END_TEST

/* A read says whether plaintext may still wait (0: the buffer filled) or
 * the input is used up (AGAIN), so a caller need not ask again to learn it;
 * after close_notify it says CLOSED together with the last plaintext. */
START_TEST(read_says_whether_more_plaintext_waits)
{
    tl_pair p;
    established_pair(&p, TL_CHUNK_WHOLE, 1);
    uint8_t sent[100];
    for (size_t i = 0; i < sizeof(sent); i++)
        sent[i] = (uint8_t)i;
    ck_assert_int_eq(hb_tls_write(p.client.tls, sent, sizeof(sent)), 0);
    ck_assert_int_eq(hb_tls_close_notify(p.client.tls), 0);
    size_t len;
    const uint8_t *out = hb_tls_output(p.client.tls, &len);
    uint8_t *wire = malloc(len);
    memcpy(wire, out, len);
    hb_tls_output_consume(p.client.tls, len);
    uint8_t got[64];
    size_t consumed, nread;
    /* The data record alone: 64 bytes fill the buffer, 36 wait. */
    size_t data_record = 5 + ((size_t)wire[3] << 8 | wire[4]);
    ck_assert_int_eq(
        hb_tls_read(p.server.tls, wire, data_record, &consumed, got, sizeof(got), &nread), 0);
    ck_assert_uint_eq(nread, sizeof(got));
    ck_assert_mem_eq(got, sent, sizeof(got));
    ck_assert_int_eq(hb_tls_read(p.server.tls, wire + consumed, data_record - consumed, &consumed,
                                 got, sizeof(got), &nread),
                     HBONE_ERR_AGAIN);
    ck_assert_uint_eq(nread, sizeof(sent) - sizeof(got));
    ck_assert_mem_eq(got, sent + sizeof(got), nread);
    /* Then close_notify. */
    ck_assert_int_eq(hb_tls_read(p.server.tls, wire + data_record, len - data_record, &consumed,
                                 got, sizeof(got), &nread),
                     HBONE_ERR_CLOSED);
    ck_assert_uint_eq(nread, 0);
    free(wire);
    tl_pair_free(&p);
}
END_TEST

START_TEST(corrupted_record_is_a_record_error)
{
    tl_pair p;
    established_pair(&p, TL_CHUNK_WHOLE, 1);
    tl_pair_write(&p.client, "hello", 5);
    size_t len;
    const uint8_t *out = hb_tls_output(p.client.tls, &len);
    ck_assert_uint_gt(len, 10);
    uint8_t *copy = malloc(len);
    memcpy(copy, out, len);
    copy[len - 1] ^= 0x01; /* flip a bit of the AEAD tag */
    hb_tls_output_consume(p.client.tls, len);
    size_t consumed, nread;
    uint8_t buf[64];
    int r = hb_tls_read(p.server.tls, copy, len, &consumed, buf, sizeof(buf), &nread);
    ck_assert_int_eq(r, HBONE_ERR_TLS_RECORD);
    ck_assert_uint_eq(nread, 0);
    ck_assert_int_eq(hbone_err_is_fatal(r), 1);
    free(copy);
    tl_pair_free(&p);
}
END_TEST

/* A TLS 1.2-only ClientHello: no supported_versions extension. */
static const uint8_t tls12_client_hello[] = {
    0x16, 0x03, 0x01, 0x00, 0x31,       /* handshake record, 49 bytes */
    0x01, 0x00, 0x00, 0x2d, 0x03, 0x03, /* ClientHello, TLS 1.2 */
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b,
    0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16,
    0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, /* random */
    0x00,                                                       /* no session id */
    0x00, 0x04, 0xc0, 0x2b, 0xc0, 0x2f,                         /* ECDHE-*-AES128-GCM-SHA256 */
    0x01, 0x00,                                                 /* null compression */
    0x00, 0x00,                                                 /* no extensions */
};

/* The server's verdict on @p bytes from a client; then the canary on the
 * same server config, and every allocation given back. */
static int server_verdict_on(const uint8_t *bytes, size_t len)
{
    tl_counting counts;
    hbone_mem *mem = tl_counting_mem(&counts, -1);
    hbone_config *scfg = tl_config_mem("server", NULL, mem);
    hb_tls *server = NULL;
    ck_assert_int_eq(hb_tls_new(&server, scfg, HB_TLS_SERVER), 0);
    size_t consumed;
    int r = hb_tls_handshake(server, bytes, len, &consumed);
    ck_assert_ptr_null(hb_tls_peer_id(server));
    hb_tls_del(server);
    canary(scfg, 5);
    hbone_config_del(scfg);
    ck_assert_int_eq(counts.allocs, counts.frees);
    hbone_mem_del(mem);
    return r;
}

START_TEST(tls12_only_client_is_refused)
{
    ck_assert_int_eq(server_verdict_on(tls12_client_hello, sizeof(tls12_client_hello)),
                     HBONE_ERR_TLS_VERSION);
}
END_TEST

START_TEST(plaintext_http_is_refused)
{
    static const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    int r = server_verdict_on((const uint8_t *)http, sizeof(http) - 1);
    ck_assert_msg(hbone_err_is_fatal(r) && r != HBONE_ERR_INTERNAL, "got %d", r);
}
END_TEST

START_TEST(client_needs_an_expected_identity)
{
    hbone_config *ccfg = tl_config("client", NULL);
    hb_tls *client = NULL;
    ck_assert_int_eq(hb_tls_new(&client, ccfg, HB_TLS_CLIENT), 0);
    size_t consumed;
    ck_assert_int_eq(hb_tls_handshake(client, NULL, 0, &consumed), HBONE_ERR_INVALID_STATE);
    hbone_spiffe_id *id = tl_id(ID("server"));
    ck_assert_int_eq(hb_tls_expect_peer(client, id), 0);
    ck_assert_int_eq(hb_tls_handshake(client, NULL, 0, &consumed), HBONE_ERR_AGAIN);
    size_t out_len;
    ck_assert_ptr_nonnull(hb_tls_output(client, &out_len));
    ck_assert_uint_gt(out_len, 0);
    /* Too late to change what is expected once the ClientHello is out. */
    ck_assert_int_eq(hb_tls_expect_peer(client, id), HBONE_ERR_INVALID_STATE);
    hbone_spiffe_id_del(id);
    hb_tls_del(client);
    hbone_config_del(ccfg);
}
END_TEST

START_TEST(server_session_cannot_expect_peers)
{
    hbone_config *scfg = tl_config("server", NULL);
    hb_tls *server = NULL;
    ck_assert_int_eq(hb_tls_new(&server, scfg, HB_TLS_SERVER), 0);
    hbone_spiffe_id *id = tl_id(ID("client"));
    ck_assert_int_eq(hb_tls_expect_peer(server, id), HBONE_ERR_INVALID_STATE);
    hbone_spiffe_id_del(id);
    hb_tls_del(server);
    hbone_config_del(scfg);
}
END_TEST

/* --- a raw wolfSSL client, to play peers libhbone itself never is ------- */

/* Run the raw client @p rc against a libhbone server, free it, and return
 * the server's verdict. */
static int raw_vs_server(struct raw_client *rc, char *detail, size_t detail_len)
{
    tl_counting counts;
    hbone_mem *mem = tl_counting_mem(&counts, -1);
    hbone_config *scfg = tl_config_mem("server", NULL, mem);
    hb_tls *server;
    ck_assert_int_eq(hb_tls_new(&server, scfg, HB_TLS_SERVER), 0);
    int verdict = HBONE_ERR_AGAIN;
    for (int round = 0; round < 100 && verdict == HBONE_ERR_AGAIN; round++) {
        (void)wolfSSL_negotiate(rc->ssl);
        size_t consumed = 0;
        verdict = hb_tls_handshake(server, rc->to_server.buf, rc->to_server.len, &consumed);
        if (consumed) {
            memmove(rc->to_server.buf, rc->to_server.buf + consumed, rc->to_server.len - consumed);
            rc->to_server.len -= consumed;
        }
        size_t out_len;
        const uint8_t *out = hb_tls_output(server, &out_len);
        if (out_len) {
            raw_tls_push(&rc->from_server, out, out_len);
            hb_tls_output_consume(server, out_len);
        } else if (consumed == 0 && verdict == HBONE_ERR_AGAIN) {
            break; /* nobody has anything to say */
        }
    }
    snprintf(detail, detail_len, "%s", hb_tls_error_detail(server));
    /* Refused, it knows no peer; done, it knows the client's. */
    ck_assert_int_eq(hb_tls_peer_id(server) != NULL, verdict == 0);
    hb_tls_del(server);
    raw_client_free(rc);
    /* The server goes on serving good clients, and gave back all it took. */
    canary(scfg, 6);
    hbone_config_del(scfg);
    ck_assert_int_eq(counts.allocs, counts.frees);
    hbone_mem_del(mem);
    return verdict;
}

static int raw_client_vs_server(int with_cert, const char *alpn, char *detail, size_t detail_len)
{
    struct raw_client rc;
    raw_client_init(&rc, with_cert, alpn);
    return raw_vs_server(&rc, detail, detail_len);
}

START_TEST(client_without_certificate_is_refused)
{
    char detail[400];
    int r = raw_client_vs_server(0, "h2", detail, sizeof(detail));
    ck_assert_msg(r == HBONE_ERR_TLS_NO_PEER_CERT, "got %d: %s", r, detail);
}
END_TEST

START_TEST(client_without_alpn_is_refused)
{
    char detail[400];
    int r = raw_client_vs_server(1, NULL, detail, sizeof(detail));
    ck_assert_msg(r == HBONE_ERR_TLS_ALPN, "got %d: %s", r, detail);
    ck_assert_str_eq(detail, "client did not negotiate ALPN \"h2\"");
}
END_TEST

START_TEST(client_offering_only_http11_is_refused)
{
    char detail[400];
    int r = raw_client_vs_server(1, "http/1.1", detail, sizeof(detail));
    ck_assert_msg(r == HBONE_ERR_TLS_ALPN, "got %d: %s", r, detail);
}
END_TEST

/* --- malformed ClientHellos ------------------------------------------------ */

/* wolfSSL 5.5.4 validates a ClientHello's ALPN list against the wrong bound
 * and then reads past the copy it kept (heap over-read, found by the
 * handshake_server fuzzer): the server checks ClientHellos itself, before
 * wolfSSL has all of one (tls/client_hello.c). Each case edits the raw
 * client's real ClientHello in place, lengths unchanged unless said. */
enum {
    HELLO_ALPN_OVERRUN,
    HELLO_ALPN_EMPTY_NAME,
    HELLO_ALPN_SHORT_LIST,
    HELLO_HUGE_MESSAGE,
    N_HELLO_CASES
};
static const char *const hello_names[N_HELLO_CASES] = {
    "an ALPN name running past the list (wolfSSL's over-read)", "an empty ALPN name",
    "an ALPN list shorter than its extension", "a handshake message claiming 16 MiB"};

/* The ALPN extension of the raw client ("h2" alone): type 16, 5 bytes, a
 * 3-byte list, one 2-byte name. */
static const uint8_t alpn_h2[] = {0, 16, 0, 5, 0, 3, 2, 'h', '2'};

static void break_client_hello(uint8_t *hello, size_t len, int kind)
{
    uint8_t *alpn = NULL;
    for (size_t i = 0; i + sizeof(alpn_h2) <= len && !alpn; i++)
        alpn = memcmp(hello + i, alpn_h2, sizeof(alpn_h2)) == 0 ? hello + i : NULL;
    ck_assert_ptr_nonnull(alpn);
    switch (kind) {
    case HELLO_ALPN_OVERRUN: /* a 1-byte name, then a 2-byte one with 0 bytes left */
        memcpy(alpn + 6, "\x01h\x02", 3);
        break;
    case HELLO_ALPN_EMPTY_NAME:
        memcpy(alpn + 6, "\x00\x01h", 3);
        break;
    case HELLO_ALPN_SHORT_LIST: /* the list says 2 bytes, the extension 5 */
        alpn[5] = 2;
        break;
    case HELLO_HUGE_MESSAGE: /* the handshake header, after the record's */
        hello[6] = 0xff;
        break;
    }
}

START_TEST(malformed_client_hellos_are_refused_before_wolfssl_reads_them)
{
    tl_counting counts;
    hbone_mem *mem = tl_counting_mem(&counts, -1);
    hbone_config *scfg = tl_config_mem("server", NULL, mem);
    hb_tls *server;
    ck_assert_int_eq(hb_tls_new(&server, scfg, HB_TLS_SERVER), 0);
    struct raw_client rc;
    raw_client_init(&rc, 1, "h2");
    (void)wolfSSL_negotiate(rc.ssl); /* its ClientHello */
    ck_assert_uint_gt(rc.to_server.len, 100);
    break_client_hello(rc.to_server.buf, rc.to_server.len, _i);
    /* In 1-byte pieces, as a slow peer sends it: refused at the byte that
     * completes what is wrong, and nothing after it is read. */
    int verdict = HBONE_ERR_AGAIN;
    size_t fed = 0;
    while (verdict == HBONE_ERR_AGAIN && fed < rc.to_server.len) {
        size_t consumed = 0;
        verdict = hb_tls_handshake(server, rc.to_server.buf + fed, 1, &consumed);
        fed += consumed;
    }
    const char *detail = hb_tls_error_detail(server);
    if (_i == HELLO_HUGE_MESSAGE) {
        ck_assert_msg(verdict == HBONE_ERR_TLS_MESSAGE_TOO_LARGE, "%s: %d %s", hello_names[_i],
                      verdict, detail);
        ck_assert_uint_eq(fed,
                          5 + 4 - 1); /* the record header, and the message's up to its length */
    } else {
        ck_assert_msg(verdict == HBONE_ERR_TLS_HANDSHAKE, "%s: %d %s", hello_names[_i], verdict,
                      detail);
        ck_assert_msg(strstr(detail, "malformed ClientHello") != NULL, "%s", detail);
        ck_assert_uint_eq(fed, rc.to_server.len - 1); /* its last byte never reached wolfSSL */
        /* It says why, in the clear: a fatal decode_error alert. */
        size_t out_len;
        const uint8_t *out = hb_tls_output(server, &out_len);
        static const uint8_t alert[] = {21, 3, 3, 0, 2, 2, 50};
        ck_assert_uint_eq(out_len, sizeof(alert));
        ck_assert_int_eq(memcmp(out, alert, sizeof(alert)), 0);
    }
    printf("%s: %s\n", hello_names[_i], detail);
    hb_tls_del(server);
    raw_client_free(&rc);
    canary(scfg, 7);
    hbone_config_del(scfg);
    ck_assert_int_eq(counts.allocs, counts.frees);
    hbone_mem_del(mem);
}
END_TEST

/* --- garbage inside the client's Certificate message ---------------------- */

/* @p der as a PEM CERTIFICATE block, appended to @p pem (NUL-terminated). */
static char *append_pem_block(char *pem, const uint8_t *der, size_t len)
{
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t have = pem ? strlen(pem) : 0;
    pem = realloc(pem, have + 64 + len * 2);
    ck_assert_ptr_nonnull(pem);
    char *at = pem + have;
    at += sprintf(at, "-----BEGIN CERTIFICATE-----\n");
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)der[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)der[i + 1] << 8;
        if (i + 2 < len)
            v |= der[i + 2];
        *at++ = digits[v >> 18];
        *at++ = digits[(v >> 12) & 63];
        *at++ = i + 1 < len ? digits[(v >> 6) & 63] : '=';
        *at++ = i + 2 < len ? digits[v & 63] : '=';
        if ((i / 3) % 16 == 15 || i + 3 >= len)
            *at++ = '\n';
    }
    sprintf(at, "-----END CERTIFICATE-----\n");
    return pem;
}

/* The @p n th certificate (from 0) of the PKI file @p name, as DER. */
static uint8_t *pki_cert(const char *name, int n, size_t *len)
{
    size_t pem_len, pos = 0;
    char *pem = tl_pki_read(name, &pem_len);
    uint8_t *der = NULL;
    for (int i = 0; i <= n; i++) {
        free(der);
        der = NULL;
        ck_assert_int_eq(
            hb_pem_next(hb_mem_default(), pem, pem_len, &pos, "CERTIFICATE", &der, len), 0);
    }
    free(pem);
    return der;
}

enum {
    GARBAGE_RANDOM,
    GARBAGE_TRUNCATED,
    GARBAGE_OVERLONG,
    GARBAGE_TRAILING,
    GARBAGE_FLIPPED,
    N_GARBAGE
};
static const char *const garbage_names[N_GARBAGE] = {
    "700 random bytes", "the intermediate cut in half", "a SEQUENCE longer than its bytes",
    "the intermediate with bytes after its end", "the intermediate with its signature altered"};

/* The client's leaf, then certificate @p kind of garbage where its
 * intermediate goes. wolfSSL's client sends it as it is: the server's
 * parsing of the encrypted Certificate message meets it. */
static char *chain_with_garbage(int kind)
{
    size_t leaf_len, int_len;
    uint8_t *leaf = pki_cert("client.chain.pem", 0, &leaf_len);
    uint8_t *inter = pki_cert("client.chain.pem", 1, &int_len);
    uint8_t bad[1024];
    size_t bad_len = 0;
    switch (kind) {
    case GARBAGE_RANDOM:
        bad_len = 700;
        for (size_t i = 0; i < bad_len; i++)
            bad[i] = (uint8_t)(i * 131 + 17);
        break;
    case GARBAGE_TRUNCATED:
        bad_len = int_len / 2;
        memcpy(bad, inter, bad_len);
        break;
    case GARBAGE_OVERLONG: /* claims 65,535 bytes, has 16 */
        bad_len = 20;
        memcpy(bad, "\x30\x82\xff\xff", 4);
        memset(bad + 4, 0x02, 16);
        break;
    case GARBAGE_TRAILING:
        ck_assert_uint_lt(int_len + 8, sizeof(bad));
        memcpy(bad, inter, int_len);
        memset(bad + int_len, 0xa5, 8);
        bad_len = int_len + 8;
        break;
    case GARBAGE_FLIPPED:
        ck_assert_uint_lt(int_len, sizeof(bad));
        memcpy(bad, inter, int_len);
        bad[int_len - 5] ^= 0x01; /* inside the signature, the last field */
        bad_len = int_len;
        break;
    }
    char *pem = append_pem_block(NULL, leaf, leaf_len);
    pem = append_pem_block(pem, bad, bad_len);
    free(leaf);
    free(inter);
    return pem;
}

/* Each kind of garbage in place of the intermediate: the server refuses
 * the client with an error that names the client's certificate, frees all
 * it took, and serves the next client (raw_vs_server's canary). */
START_TEST(garbage_in_the_certificate_message_is_refused)
{
    char *chain = chain_with_garbage(_i);
    struct raw_client rc;
    raw_client_init_chain(&rc, chain, strlen(chain), "h2");
    free(chain);
    char detail[400];
    int r = raw_vs_server(&rc, detail, sizeof(detail));
    printf("%s: %d (%s): %s\n", garbage_names[_i], r, hbone_strerror(r), detail);
    ck_assert_msg(r == HBONE_ERR_TLS_CERT_INVALID || r == HBONE_ERR_TLS_CERT_UNTRUSTED,
                  "%s: got %d (%s): %s", garbage_names[_i], r, hbone_strerror(r), detail);
    ck_assert_msg(strstr(detail, "client certificate at depth 1") != NULL, "%s: %s",
                  garbage_names[_i], detail);
}
END_TEST

/* The positive control: the same chain, built the same way with the
 * intermediate intact, is accepted. */
START_TEST(a_rebuilt_chain_is_accepted)
{
    size_t leaf_len, int_len;
    uint8_t *leaf = pki_cert("client.chain.pem", 0, &leaf_len);
    uint8_t *inter = pki_cert("client.chain.pem", 1, &int_len);
    char *chain = append_pem_block(append_pem_block(NULL, leaf, leaf_len), inter, int_len);
    free(leaf);
    free(inter);
    struct raw_client rc;
    raw_client_init_chain(&rc, chain, strlen(chain), "h2");
    free(chain);
    char detail[400];
    ck_assert_int_eq(raw_vs_server(&rc, detail, sizeof(detail)), 0);
}
END_TEST

START_TEST(raw_client_with_everything_right_is_accepted)
{
    /* The positive control for the three tests above: the same raw client,
     * certificate and ALPN h2, completes the handshake with the server
     * (which then waits for the client's Finished: AGAIN, not an error). */
    char detail[400];
    hbone_config *scfg = tl_config("server", NULL);
    hb_tls *server;
    ck_assert_int_eq(hb_tls_new(&server, scfg, HB_TLS_SERVER), 0);
    hbone_config_del(scfg);
    struct raw_client rc;
    raw_client_init(&rc, 1, "h2");
    int verdict = HBONE_ERR_AGAIN, client_ok = 0;
    for (int round = 0; round < 100 && verdict == HBONE_ERR_AGAIN; round++) {
        client_ok = wolfSSL_negotiate(rc.ssl) == WOLFSSL_SUCCESS;
        size_t consumed = 0, out_len;
        verdict = hb_tls_handshake(server, rc.to_server.buf, rc.to_server.len, &consumed);
        if (consumed) {
            memmove(rc.to_server.buf, rc.to_server.buf + consumed, rc.to_server.len - consumed);
            rc.to_server.len -= consumed;
        }
        const uint8_t *out = hb_tls_output(server, &out_len);
        raw_tls_push(&rc.from_server, out, out_len);
        hb_tls_output_consume(server, out_len);
    }
    snprintf(detail, sizeof(detail), "%s", hb_tls_error_detail(server));
    ck_assert_msg(verdict == 0 && client_ok, "verdict %d: %s", verdict, detail);
    ck_assert_str_eq(hbone_spiffe_id_str(hb_tls_peer_id(server), NULL),
                     "spiffe://cluster.local/ns/default/sa/client");
    hb_tls_del(server);
    raw_client_free(&rc);
}
END_TEST

/* Feed the raw client's output to a libhbone connection; keep what it does
 * not take. Returns how much it took. */
static size_t raw_to_conn(struct raw_client *rc, hbone_conn *conn)
{
    size_t consumed = 0;
    ck_assert_int_eq(hbone_conn_input(conn, rc->to_server.buf, rc->to_server.len, &consumed, 0), 0);
    memmove(rc->to_server.buf, rc->to_server.buf + consumed, rc->to_server.len - consumed);
    rc->to_server.len -= consumed;
    return consumed;
}

START_TEST(a_peer_that_does_not_read_is_held_back)
{
    /* Each TLS 1.3 KeyUpdate asking for an update makes the server answer
     * with its own, outside any HTTP/2 framing. A peer sending them without
     * reading the answers must find the server stops taking its input,
     * rather than the answers piling up. The client here does see the
     * answers (wolfSSL asks for one update at a time until it gets the
     * reply), but the server's output is never consumed: to the server,
     * the peer does not read. */
    hbone_config *scfg = tl_config("server", NULL);
    hbone_conn *server;
    ck_assert_int_eq(hbone_conn_server_new(&server, scfg, NULL, NULL, 0), 0);
    hbone_config_del(scfg);
    struct raw_client rc;
    raw_client_init(&rc, 1, "h2");
    size_t seen = 0, len;
    const uint8_t *out;
    for (int round = 0; round < 100 && wolfSSL_negotiate(rc.ssl) != WOLFSSL_SUCCESS; round++) {
        raw_to_conn(&rc, server);
        out = hbone_conn_output(server, &len, 0);
        raw_tls_push(&rc.from_server, out, len);
        hbone_conn_output_consume(server, len);
    }
    raw_to_conn(&rc, server); /* the client's Finished */
    ck_assert_ptr_nonnull(hbone_conn_peer_id(server));
    uint8_t sink[256];
    size_t held_back = 0;
    int updates = 0;
    for (; updates < 100000 && !held_back; updates++) {
        ck_assert_int_eq(wolfSSL_update_keys(rc.ssl), WOLFSSL_SUCCESS);
        size_t offered = rc.to_server.len;
        held_back = offered - raw_to_conn(&rc, server);
        out = hbone_conn_output(server, &len, 0);
        raw_tls_push(&rc.from_server, out + seen, len - seen);
        seen = len;
        (void)wolfSSL_read(rc.ssl, sink, sizeof(sink)); /* takes the reply */
    }
    ck_assert_msg(held_back > 0, "the server took %d KeyUpdates, %zu bytes of output waiting",
                  updates, seen);
    /* Held back at the bound: 512 KiB plus at most one reply. */
    ck_assert_uint_ge(seen, 512 * 1024);
    ck_assert_uint_lt(seen, 512 * 1024 + 64);
    /* Once the peer reads, the rest goes in and the connection is healthy. */
    hbone_conn_output_consume(server, seen);
    ck_assert_uint_eq(raw_to_conn(&rc, server), held_back);
    ck_assert_int_eq(hbone_conn_is_closed(server), 0);
    ck_assert_str_eq(hbone_conn_error_detail(server), "");
    hbone_conn_del(server);
    raw_client_free(&rc);
}
END_TEST

/* --- what goes on the wire ------------------------------------------------ */

struct hello_extension {
    unsigned type;
    const uint8_t *data;
    size_t len;
};

/* Split the client's first flight (one record holding the ClientHello) into
 * its extensions. Returns how many were found. */
static size_t client_hello_extensions(const uint8_t *rec, size_t len, struct hello_extension *ext,
                                      size_t max)
{
    ck_assert_uint_ge(len, 5 + 4 + 2 + 32 + 1);
    ck_assert_uint_eq(rec[0], 0x16); /* handshake record */
    ck_assert_uint_eq(rec[5], 0x01); /* ClientHello */
    size_t off = 5 + 4 + 2 + 32;
    off += 1 + rec[off];                               /* legacy session id */
    off += 2 + ((size_t)rec[off] << 8 | rec[off + 1]); /* cipher suites */
    off += 1 + rec[off];                               /* compression methods */
    size_t end = off + 2 + ((size_t)rec[off] << 8 | rec[off + 1]);
    ck_assert_uint_le(end, len);
    off += 2;
    size_t n = 0;
    while (off + 4 <= end && n < max) {
        ext[n].type = (unsigned)rec[off] << 8 | rec[off + 1];
        ext[n].len = (size_t)rec[off + 2] << 8 | rec[off + 3];
        ext[n].data = rec + off + 4;
        ck_assert_uint_le(off + 4 + ext[n].len, end);
        off += 4 + ext[n].len;
        n++;
    }
    ck_assert_uint_eq(off, end);
    return n;
}

static const struct hello_extension *find_extension(const struct hello_extension *ext, size_t n,
                                                    unsigned type)
{
    for (size_t i = 0; i < n; i++) {
        if (ext[i].type == type)
            return &ext[i];
    }
    return NULL;
}

START_TEST(client_hello_offers_exactly_what_hbone_needs)
{
    hbone_config *ccfg = tl_config("client", NULL);
    hb_tls *client;
    ck_assert_int_eq(hb_tls_new(&client, ccfg, HB_TLS_CLIENT), 0);
    hbone_config_del(ccfg);
    hbone_spiffe_id *id = tl_id(ID("server"));
    ck_assert_int_eq(hb_tls_expect_peer(client, id), 0);
    hbone_spiffe_id_del(id);
    size_t consumed, len;
    ck_assert_int_eq(hb_tls_handshake(client, NULL, 0, &consumed), HBONE_ERR_AGAIN);
    const uint8_t *hello = hb_tls_output(client, &len);
    struct hello_extension ext[32];
    size_t n = client_hello_extensions(hello, len, ext, 32);

    /* ALPN: exactly "h2". */
    const struct hello_extension *alpn = find_extension(ext, n, 16);
    ck_assert_ptr_nonnull(alpn);
    static const uint8_t h2_only[] = {0x00, 0x03, 0x02, 'h', '2'};
    ck_assert_uint_eq(alpn->len, sizeof(h2_only));
    ck_assert_int_eq(memcmp(alpn->data, h2_only, sizeof(h2_only)), 0);
    /* supported_versions: TLS 1.3 only. */
    const struct hello_extension *versions = find_extension(ext, n, 43);
    ck_assert_ptr_nonnull(versions);
    ck_assert_uint_eq(versions->len, 3);
    ck_assert_uint_eq(versions->data[1], 0x03);
    ck_assert_uint_eq(versions->data[2], 0x04);
    /* key_share: one share, P-256 (group 23). */
    const struct hello_extension *share = find_extension(ext, n, 51);
    ck_assert_ptr_nonnull(share);
    ck_assert_uint_ge(share->len, 4);
    ck_assert_uint_eq((unsigned)share->data[2] << 8 | share->data[3], 23);
    ck_assert_uint_eq(((size_t)share->data[0] << 8 | share->data[1]),
                      4 + ((size_t)share->data[4] << 8 | share->data[5]));
    /* No SNI, session ticket, early data, PSK or post-handshake auth. */
    static const unsigned absent[] = {0, 35, 41, 42, 45, 49};
    for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++)
        ck_assert_msg(find_extension(ext, n, absent[i]) == NULL, "extension %u offered", absent[i]);
    hb_tls_del(client);
}
END_TEST

START_TEST(server_sends_nothing_after_the_handshake)
{
    /* No NewSessionTicket: HBONE never resumes, so once the server has the
     * client's Finished it has nothing more to say. */
    tl_pair p;
    established_pair(&p, TL_CHUNK_WHOLE, 1);
    ck_assert_uint_eq(p.server.sent_after_handshake, 0);
    ck_assert_uint_eq(p.client.in.len, 0);
    /* The counter works: application data after the handshake is counted. */
    tl_pair_write(&p.server, "x", 1);
    tl_pair_pump(&p);
    ck_assert_uint_gt(p.server.sent_after_handshake, 0);
    tl_pair_free(&p);
}
END_TEST

/* --- allocation failure ---------------------------------------------------- */

/* wolfSSL 5.5.4's own leak: when a server fails to make its key share
 * (TLSX_KeyShare_Establish), the new KeyShareEntry, 64 bytes in this build,
 * is not freed. One such block is wolfSSL's; anything else is ours. */
static int wolfssl_own_leak(const size_t *sizes, size_t n)
{
    return n == 1 && sizes[0] == 64;
}

/* wolfSSL 5.5.4 reports some of its allocation failures while loading PEM
 * as a bad file (WOLFSSL_BAD_FILE): then libhbone can only name the input. */
static int wolfssl_may_say(int r)
{
    return r == HBONE_ERR_NOMEM || r == HBONE_ERR_PEM || r == HBONE_ERR_KEY ||
           r == HBONE_ERR_TLS_CERT_INVALID;
}

/* Build a config through @p mem; returns NULL (cleanly) on any failure. */
static hbone_config *config_through(const hbone_mem *mem, const char *leaf, int in_wolfssl)
{
    hbone_config *cfg = NULL;
    int r = hbone_config_new(&cfg, mem);
    if (r != 0) {
        ck_assert_int_eq(r, HBONE_ERR_NOMEM);
        return NULL;
    }
    char name[64];
    size_t chain_len, key_len, bundle_len;
    snprintf(name, sizeof(name), "%s.chain.pem", leaf);
    char *chain = tl_pki_read(name, &chain_len);
    snprintf(name, sizeof(name), "%s.key", leaf);
    char *key = tl_pki_read(name, &key_len);
    char *bundle = tl_pki_read("bundle-cluster.local.pem", &bundle_len);
    r = hbone_config_set_certificate(cfg, chain, chain_len, key, key_len);
    if (r == 0)
        r = hbone_config_add_trust_bundle(cfg, "cluster.local", 13, bundle, bundle_len);
    if (r == 0)
        r = hbone_config_add_trust_bundle(cfg, "td-b.example", 12, bundle, bundle_len);
    free(chain);
    free(key);
    free(bundle);
    if (r != 0) {
        ck_assert_msg(r == HBONE_ERR_NOMEM || (in_wolfssl && wolfssl_may_say(r)),
                      "config failed with %d (%s), not NOMEM", r, hbone_config_error_detail(cfg));
        hbone_config_del(cfg);
        return NULL;
    }
    return cfg;
}

/* One whole scenario (two configs, a handshake, a message) with the n-th
 * allocation failing: libhbone's own through the hbone_mem hook or, with
 * @p in_wolfssl, wolfSSL's. Returns 1 if it completed. */
static int scenario_with_budget(long budget, int in_wolfssl)
{
    tl_counting counts, wolfssl_counts;
    hbone_mem *mem = tl_counting_mem(&counts, in_wolfssl ? -1 : budget);
    tl_count_wolfssl(&wolfssl_counts, in_wolfssl ? budget : -1);
    hbone_config *ccfg = config_through(mem, "client", in_wolfssl);
    hbone_config *scfg = ccfg ? config_through(mem, "server", in_wolfssl) : NULL;
    hbone_mem_del(mem);
    int completed = 0;
    if (ccfg && scfg) {
        hb_tls *client = NULL, *server = NULL;
        hbone_spiffe_id *id = tl_id(ID("server"));
        int r = hb_tls_new(&client, ccfg, HB_TLS_CLIENT);
        if (r == 0)
            r = hb_tls_new(&server, scfg, HB_TLS_SERVER);
        if (r == 0)
            r = hb_tls_expect_peer(client, id);
        hbone_spiffe_id_del(id);
        if (r == 0) {
            tl_pair p = {.client = {.tls = client}, .server = {.tls = server}};
            tl_pair_pump(&p);
            completed = p.client.state == 1 && p.server.state == 1;
            if (!completed) {
                /* The failure is named, never mistaken for a peer's fault. */
                const tl_side *side = p.client.state < 0 ? &p.client : &p.server;
                int err = side->state;
                const char *detail = hb_tls_error_detail(side->tls);
                ck_assert_msg(err == HBONE_ERR_NOMEM || err == HBONE_ERR_TLS_ALERT ||
                                  err == HBONE_ERR_TLS_HANDSHAKE ||
                                  (in_wolfssl && err == HBONE_ERR_TLS_CERT_INVALID &&
                                   strstr(detail, "public key that could not be loaded")),
                              "budget %ld: handshake failed with %d (%s): %s", budget, err,
                              hbone_strerror(err), detail);
            }
            client = server = NULL; /* owned by the pair now */
            tl_pair_free(&p);
        } else {
            ck_assert_msg(r == HBONE_ERR_NOMEM, "budget %ld: session setup gave %d", budget, r);
        }
        hb_tls_del(client);
        hb_tls_del(server);
    } else {
        ck_assert_int_eq(completed, 0);
    }
    hbone_config_del(ccfg);
    hbone_config_del(scfg);
    size_t leaked[4] = {0};
    size_t n_leaked = tl_count_wolfssl_end(leaked, 4);
    ck_assert_msg(counts.allocs == counts.frees, "budget %ld: %ld allocations, %ld frees", budget,
                  counts.allocs, counts.frees);
    ck_assert_msg(n_leaked == 0 || (in_wolfssl && !completed && wolfssl_own_leak(leaked, n_leaked)),
                  "budget %ld: %zu wolfSSL blocks left (the first of %zu bytes)", budget, n_leaked,
                  leaked[0]);
    return completed;
}

/* Fail the first allocation, then the second, ... until one run no longer
 * hits the failure: _i 0 sweeps libhbone's allocations, 1 wolfSSL's. */
START_TEST(every_allocation_failure_is_clean)
{
    long budget = 0;
    while (!scenario_with_budget(budget, _i)) {
        budget++;
        ck_assert_int_lt(budget, 5000);
    }
    ck_assert_int_gt(budget, 5);
    printf("%s: %ld allocations swept\n", _i ? "wolfSSL" : "libhbone", budget);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("handshake");
    TCase *tc = tcase_create("certificates");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, handshake_case, 0, (int)(N_CASES * N_CHUNKINGS));
    suite_add_tcase(s, tc);
    TCase *data = tcase_create("data");
    tcase_set_timeout(data, 60);
    tcase_add_loop_test(data, data_flows_both_ways_and_close_notify_ends_it, 0, 3);
    tcase_add_test(data, corrupted_record_is_a_record_error);
    tcase_add_test(data, read_says_whether_more_plaintext_waits);
    suite_add_tcase(s, data);
    TCase *hostile = tcase_create("hostile");
    tcase_set_timeout(hostile, 60);
    tcase_add_test(hostile, tls12_only_client_is_refused);
    tcase_add_test(hostile, plaintext_http_is_refused);
    tcase_add_test(hostile, client_needs_an_expected_identity);
    tcase_add_test(hostile, server_session_cannot_expect_peers);
    tcase_add_loop_test(hostile, every_allocation_failure_is_clean, 0, 2);
    tcase_add_test(hostile, client_hello_offers_exactly_what_hbone_needs);
    tcase_add_test(hostile, server_sends_nothing_after_the_handshake);
    tcase_add_test(hostile, client_without_certificate_is_refused);
    tcase_add_test(hostile, client_without_alpn_is_refused);
    tcase_add_test(hostile, client_offering_only_http11_is_refused);
    tcase_add_test(hostile, raw_client_with_everything_right_is_accepted);
    tcase_add_loop_test(hostile, garbage_in_the_certificate_message_is_refused, 0, N_GARBAGE);
    tcase_add_loop_test(hostile, malformed_client_hellos_are_refused_before_wolfssl_reads_them, 0,
                        N_HELLO_CASES);
    tcase_add_test(hostile, a_rebuilt_chain_is_accepted);
    tcase_add_test(hostile, a_peer_that_does_not_read_is_held_back);
    suite_add_tcase(s, hostile);
    return tl_run_suite(s);
}
