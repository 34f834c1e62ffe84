/* SPDX-License-Identifier: MIT */
/* One mutual-TLS 1.3 session over memory buffers (wolfSSL custom I/O). */
#include <pthread.h>
#include <string.h>

#include <hbone/error.h>

#include "common/log.h"
#include "common/mem.h"
#include "identity/spiffe.h"
#include "identity/svid.h"
#include "identity/x509.h"
#include "tls/client_hello.h"
#include "tls/config.h"
#include "tls/tls.h"

#define ALPN_H2 "h2"
/* Expected peer identities a client may list (ztunnel passes a handful). */
#define MAX_EXPECTED_PEERS 64
/* The longest chain a peer may present (leaf + intermediates). Istio sends
 * 2-3; wolfSSL's own limit differs between builds, so ours is explicit. */
#define MAX_CHAIN_CERTS 8

struct hb_tls {
    hbone_config *cfg;
    int role;
    WOLFSSL *ssl;
    int error;         /* sticky fatal error, 0 if none */
    int pending_error; /* recorded by the verify callback, reported after */
    int done;          /* handshake complete and checked */
    int peer_closed;
    hb_detail detail;
    /* Server, until the handshake is done: the client's ClientHello is
     * checked before wolfSSL reads all of it (tls/client_hello.h). */
    int scanning;
    hb_hello_scan hello;
    /* Ciphertext lent by the current call. */
    const uint8_t *in;
    size_t in_len;
    size_t in_off;
    /* Ciphertext waiting for the caller. */
    uint8_t *out;
    size_t out_len;
    size_t out_off;
    size_t out_cap;
    /* Client: the identities the server may present. */
    hbone_spiffe_id **expected;
    size_t n_expected;
    hbone_spiffe_id *peer_id;
    int64_t peer_not_after; /* the peer leaf's expiry, seconds since the epoch (0: unknown) */
#ifdef HB_TESTING
    /* hb_tls_new_plaintext(): no wolfSSL object, bytes pass unchanged. */
    int plaintext;
    int closed_sent;
#endif
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static int global_status;

static void global_init_once(void)
{
    global_status = wolfSSL_Init() == WOLFSSL_SUCCESS ? 0 : HBONE_ERR_INTERNAL;
}

int hb_tls_global_init(void)
{
    pthread_once(&global_once, global_init_once);
    return global_status;
}

/* --- custom I/O ------------------------------------------------------- */

static int append_output(hb_tls *t, const void *buf, size_t n);

/* A fatal decode_error alert, in the clear: what a server answers to a
 * ClientHello it cannot parse (RFC 8446 section 6). */
static const uint8_t decode_error_alert[] = {21, 3, 3, 0, 2, 2, 50};

static int io_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    hb_tls *t = ctx;
    size_t avail = t->in_len - t->in_off;
    if (avail == 0)
        return WOLFSSL_CBIO_ERR_WANT_READ;
    size_t n = (size_t)sz < avail ? (size_t)sz : avail;
    if (t->scanning && !t->pending_error) {
        int r = hb_hello_scan_feed(&t->hello, &t->cfg->mem, t->in + t->in_off, n, &t->detail);
        if (r < 0) {
            t->pending_error = r;
            if (r == HBONE_ERR_TLS_HANDSHAKE)
                (void)append_output(t, decode_error_alert, sizeof(decode_error_alert));
            return WOLFSSL_CBIO_ERR_GENERAL; /* wolfSSL never sees the rest */
        }
    }
    memcpy(buf, t->in + t->in_off, n);
    t->in_off += n;
    return (int)n;
}

/* Append @p n bytes to the output buffer. Returns 0 or HBONE_ERR_NOMEM. */
static int append_output(hb_tls *t, const void *buf, size_t n)
{
    size_t waiting = t->out_len - t->out_off;
    if (t->out_cap - t->out_len < n && t->out_off > 0 && t->out_off >= waiting) {
        /* Reuse the space the caller already drained before growing, when
         * that moves no more than it frees: each byte moves about once. */
        memmove(t->out, t->out + t->out_off, t->out_len - t->out_off);
        t->out_len -= t->out_off;
        t->out_off = 0;
    }
    if (t->out_cap - t->out_len < n) {
        size_t cap = t->out_cap ? t->out_cap : 4096;
        while (cap - t->out_len < n)
            cap *= 2;
        uint8_t *grown = hb_realloc(&t->cfg->mem, t->out, cap);
        if (!grown)
            return HBONE_ERR_NOMEM;
        t->out = grown;
        t->out_cap = cap;
    }
    memcpy(t->out + t->out_len, buf, n);
    t->out_len += n;
    return 0;
}

static int io_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    return append_output(ctx, buf, (size_t)sz) == 0 ? sz : WOLFSSL_CBIO_ERR_GENERAL;
}

const uint8_t *hb_tls_output(const hb_tls *t, size_t *len)
{
    size_t n = t->out_len - t->out_off;
    *len = n;
    return n ? t->out + t->out_off : NULL;
}

void hb_tls_output_consume(hb_tls *t, size_t n)
{
    size_t pending = t->out_len - t->out_off;
    t->out_off += n < pending ? n : pending;
    if (t->out_off == t->out_len) {
        /* Drained: an idle session holds no ciphertext memory. */
        t->out_off = t->out_len = 0;
        hb_free(&t->cfg->mem, t->out);
        t->out = NULL;
        t->out_cap = 0;
    }
}

/* --- errors ----------------------------------------------------------- */

static int fail(hb_tls *t, int code)
{
    if (!t->error) {
        t->error = code;
        hb_log(&t->cfg->log, HBONE_LOG_WARN, "TLS %s: %s",
               t->role == HB_TLS_SERVER ? "server" : "client",
               t->detail.text[0] ? t->detail.text : hbone_strerror(code));
    }
    return t->error;
}

static const char *peer_name(const hb_tls *t)
{
    return t->role == HB_TLS_SERVER ? "client" : "server";
}

/* OpenSSL's X509_V_ERR numbers, which wolfSSL's compatibility layer puts in
 * the store; defined here because lean builds do not declare them. */
#define X509_ERR_UNABLE_TO_GET_ISSUER_CERT 2
#define X509_ERR_CERT_NOT_YET_VALID 9
#define X509_ERR_CERT_HAS_EXPIRED 10
#define X509_ERR_IN_CERT_NOT_BEFORE_FIELD 13
#define X509_ERR_IN_CERT_NOT_AFTER_FIELD 14
#define X509_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY 20
#define X509_ERR_CERT_CHAIN_TOO_LONG 22

/* Turn a chain verification error from wolfSSL into ours, with detail.
 * wolfSSL builds with OPENSSL_COMPATIBLE_DEFAULTS (Debian's) report
 * OpenSSL's X509_V_ERR numbers in the store instead of their own codes, so
 * both spellings are mapped. */
static int chain_error(hb_tls *t, int wolf_err, int depth)
{
    int code;
    const char *what;
    switch (wolf_err) {
    case ASN_AFTER_DATE_E:
    case X509_ERR_CERT_HAS_EXPIRED:
    case X509_ERR_IN_CERT_NOT_AFTER_FIELD:
        code = HBONE_ERR_TLS_CERT_EXPIRED;
        what = "has expired";
        break;
    case ASN_BEFORE_DATE_E:
    case X509_ERR_CERT_NOT_YET_VALID:
    case X509_ERR_IN_CERT_NOT_BEFORE_FIELD:
        code = HBONE_ERR_TLS_CERT_NOT_YET_VALID;
        what = "is not valid yet";
        break;
    case ASN_NO_SIGNER_E:
    case X509_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_ERR_UNABLE_TO_GET_ISSUER_CERT:
        code = HBONE_ERR_TLS_CERT_UNTRUSTED;
        what = "does not chain to any trust bundle";
        break;
    case MAX_CHAIN_ERROR:
    case X509_ERR_CERT_CHAIN_TOO_LONG:
        code = HBONE_ERR_TLS_CHAIN_TOO_LONG;
        what = "chain is longer than allowed";
        break;
    case MEMORY_E:
    case MEMORY_ERROR:
        code = HBONE_ERR_NOMEM;
        what = "could not be verified: out of memory";
        break;
    case PEER_KEY_ERROR:
        /* wolfSSL 5.5.4 says this too when it has no memory for the key. */
        code = HBONE_ERR_TLS_CERT_INVALID;
        what = "has a public key that could not be loaded";
        break;
    case EXTKEYUSE_AUTH_E:
        /* wolfSSL checks the role's EKU before we see the leaf. */
        code = HBONE_ERR_SVID_EXT_KEY_USAGE;
        what = t->role == HB_TLS_SERVER ? "extendedKeyUsage lacks clientAuth"
                                        : "extendedKeyUsage lacks serverAuth";
        break;
    default:
        code = HBONE_ERR_TLS_CERT_INVALID;
        what = "failed verification";
        break;
    }
    return hb_detail_set(&t->detail, code, "%s certificate at depth %d %s (wolfSSL %d)",
                         peer_name(t), depth, what, wolf_err);
}

/* Map a failed wolfSSL call to an error code unless the verify callback
 * already recorded a more precise one. */
static int wolf_error(hb_tls *t, int ret)
{
    if (t->error)
        return t->error;
    if (t->pending_error)
        return fail(t, t->pending_error);
    int err = wolfSSL_get_error(t->ssl, ret);
    char text[WOLFSSL_MAX_ERROR_SZ];
    wolfSSL_ERR_error_string_n((unsigned long)err, text, sizeof(text));
    WOLFSSL_ALERT_HISTORY alerts;
    int code;
    if (wolfSSL_get_alert_history(t->ssl, &alerts) == WOLFSSL_SUCCESS &&
        alerts.last_rx.level == alert_fatal) {
        code = HBONE_ERR_TLS_ALERT;
        hb_detail_set(&t->detail, code, "%s sent fatal alert %d", peer_name(t),
                      alerts.last_rx.code);
        return fail(t, code);
    }
    switch (err) {
    case VERSION_ERROR:
        code = HBONE_ERR_TLS_VERSION;
        break;
    case NO_PEER_CERT:
        code = HBONE_ERR_TLS_NO_PEER_CERT;
        break;
    case UNKNOWN_ALPN_PROTOCOL_NAME_E:
        code = HBONE_ERR_TLS_ALPN;
        break;
    case MAX_CHAIN_ERROR:
        code = HBONE_ERR_TLS_CHAIN_TOO_LONG;
        break;
    case HANDSHAKE_SIZE_ERROR:
        code = HBONE_ERR_TLS_MESSAGE_TOO_LARGE;
        break;
    case VERIFY_MAC_ERROR:
    case AES_GCM_AUTH_E:
    case DECRYPT_ERROR:
    case UNKNOWN_RECORD_TYPE:
    case PARSE_ERROR:
        code = HBONE_ERR_TLS_RECORD;
        break;
    case MEMORY_E:
    case MEMORY_ERROR:
        code = HBONE_ERR_NOMEM;
        break;
    default:
        code = HBONE_ERR_TLS_HANDSHAKE;
        break;
    }
    hb_detail_set(&t->detail, code, "%s (wolfSSL %d: %s)", hbone_strerror(code), err, text);
    return fail(t, code);
}

/* --- peer verification ------------------------------------------------ */

/* Verify the presented chain again, against the anchors of @p bundle only.
 * wolfSSL verified it against the union of all bundles; this proves the
 * path ends in the bundle of the leaf's own trust domain (wolfSSL 5.5.4 does
 * not enforce URI name constraints, so a CA of one trust domain could
 * otherwise vouch for another's identities). Intermediates are added to a
 * scratch store only once they verify themselves, so an unrelated
 * certificate appended to the chain cannot lend its anchor to the leaf.
 * Returns 1 if the leaf verifies, 0 if not, negative on allocation failure. */
static int chain_leads_to(const hb_trust_bundle *bundle, const WOLFSSL_BUFFER_INFO *certs, int n)
{
    WOLFSSL_CERT_MANAGER *cm = wolfSSL_CertManagerNew();
    if (!cm)
        return HBONE_ERR_NOMEM;
    int ok = 0, r = wolfSSL_CertManagerLoadCABuffer(cm, (const unsigned char *)bundle->pem,
                                                    (long)bundle->pem_len, WOLFSSL_FILETYPE_PEM);
    /* Peers send the leaf first, then each issuer, but TLS 1.3 allows any
     * order: repeat passes from the top until no intermediate is added. */
    int added[MAX_CHAIN_CERTS] = {0};
    if (r != WOLFSSL_SUCCESS || n > MAX_CHAIN_CERTS)
        goto out;
    for (int progress = 1; progress;) {
        progress = 0;
        for (int i = n - 1; i >= 1; i--) {
            if (added[i])
                continue;
            r = wolfSSL_CertManagerVerifyBuffer(cm, certs[i].buffer, (long)certs[i].length,
                                                WOLFSSL_FILETYPE_ASN1);
            if (r == WOLFSSL_SUCCESS)
                r = wolfSSL_CertManagerLoadCABuffer(cm, certs[i].buffer, (long)certs[i].length,
                                                    WOLFSSL_FILETYPE_ASN1);
            if (hb_wolfssl_out_of_memory(r))
                goto out;
            if (r == WOLFSSL_SUCCESS)
                added[i] = progress = 1;
        }
    }
    r = wolfSSL_CertManagerVerifyBuffer(cm, certs[0].buffer, (long)certs[0].length,
                                        WOLFSSL_FILETYPE_ASN1);
    ok = r == WOLFSSL_SUCCESS;
out:
    wolfSSL_CertManagerFree(cm);
    /* Short of memory, nothing is proved either way. */
    return hb_wolfssl_out_of_memory(r) ? HBONE_ERR_NOMEM : ok;
}

static int check_bundle_binding(hb_tls *t, const WOLFSSL_BUFFER_INFO *certs, int n)
{
    const hbone_config *cfg = t->cfg;
    size_t td_len;
    const char *td = hbone_spiffe_id_trust_domain(t->peer_id, &td_len);
    const hb_trust_bundle *own = hb_config_bundle(cfg, td, td_len);
    if (!own)
        return hb_detail_set(&t->detail, HBONE_ERR_ID_BUNDLE,
                             "%s certificate is for trust domain %.*s, which has no trust bundle",
                             peer_name(t), (int)td_len, td);
    /* With a single bundle, wolfSSL's verification already proved it. */
    if (cfg->n_bundles == 1)
        return 0;
    int r = chain_leads_to(own, certs, n);
    if (r < 0)
        return r;
    if (r == 1)
        return 0;
    for (size_t i = 0; i < cfg->n_bundles; i++) {
        const hb_trust_bundle *other = &cfg->bundles[i];
        if (other == own || (r = chain_leads_to(other, certs, n)) == 0)
            continue;
        if (r < 0)
            return r;
        return hb_detail_set(&t->detail, HBONE_ERR_ID_BUNDLE,
                             "%s certificate chains to the bundle of trust domain %s, not %.*s",
                             peer_name(t), other->trust_domain, (int)td_len, td);
    }
    return hb_detail_set(&t->detail, HBONE_ERR_ID_BUNDLE,
                         "%s certificate does not chain to the bundle of trust domain %.*s",
                         peer_name(t), (int)td_len, td);
}

static int check_expected_peer(hb_tls *t)
{
    for (size_t i = 0; i < t->n_expected; i++) {
        if (hbone_spiffe_id_equal(t->peer_id, t->expected[i]))
            return 0;
    }
    const char *first = hbone_spiffe_id_str(t->expected[0], NULL);
    if (t->n_expected == 1)
        return hb_detail_set(&t->detail, HBONE_ERR_ID_MISMATCH, "peer presented %s, expected %s",
                             hbone_spiffe_id_str(t->peer_id, NULL), first);
    return hb_detail_set(&t->detail, HBONE_ERR_ID_MISMATCH,
                         "peer presented %s, expected one of %zu identities (first %s)",
                         hbone_spiffe_id_str(t->peer_id, NULL), t->n_expected, first);
}

static int check_trust_domain_accepted(hb_tls *t)
{
    size_t td_len;
    const char *td = hbone_spiffe_id_trust_domain(t->peer_id, &td_len);
    if (hb_config_accepts_trust_domain(t->cfg, td, td_len))
        return 0;
    size_t own_len = 0;
    const char *own =
        t->cfg->identity ? hbone_spiffe_id_trust_domain(t->cfg->identity, &own_len) : "";
    return hb_detail_set(&t->detail, HBONE_ERR_ID_TRUST_DOMAIN,
                         "client %s is in trust domain %.*s, not %.*s",
                         hbone_spiffe_id_str(t->peer_id, NULL), (int)td_len, td, (int)own_len, own);
}

static int check_alpn(hb_tls *t)
{
    char *proto = NULL;
    unsigned short len = 0;
    if (wolfSSL_ALPN_GetProtocol(t->ssl, &proto, &len) != WOLFSSL_SUCCESS || len != 2 ||
        memcmp(proto, ALPN_H2, 2) != 0)
        return hb_detail_set(&t->detail, HBONE_ERR_TLS_ALPN, "%s did not negotiate ALPN \"h2\"",
                             peer_name(t));
    return 0;
}

/* wolfSSL reads a certificate of the chain and ignores what follows it in
 * its entry: an entry must be one certificate, and nothing else. */
static int check_entries_whole(hb_tls *t, const WOLFSSL_BUFFER_INFO *certs, int n)
{
    for (int i = 1; i < n; i++) {
        if (!hb_x509_is_whole(certs[i].buffer, certs[i].length))
            return hb_detail_set(&t->detail, HBONE_ERR_TLS_CERT_INVALID,
                                 "%s certificate at depth %d is not one whole DER certificate",
                                 peer_name(t), i);
    }
    return 0;
}

/* All identity checks of the peer leaf; sets t->peer_id on success. */
static int check_peer(hb_tls *t, const WOLFSSL_BUFFER_INFO *certs, int n)
{
    int r = check_alpn(t);
    if (r == 0)
        r = check_entries_whole(t, certs, n);
    if (r < 0)
        return r;
    hbone_spiffe_id_del(t->peer_id);
    t->peer_id = NULL;
    hb_detail svid_detail;
    hb_detail_clear(&svid_detail);
    r = hb_svid_check(certs[0].buffer, certs[0].length, t->cfg->svid_mode, &t->peer_id,
                      &t->cfg->mem, &svid_detail);
    if (r < 0)
        return hb_detail_set(&t->detail, r, "%s %s", peer_name(t), svid_detail.text);
    r = t->role == HB_TLS_CLIENT ? check_expected_peer(t) : check_trust_domain_accepted(t);
    if (r == 0)
        r = check_bundle_binding(t, certs, n);
    hb_x509_leaf leaf; /* parsed already: it is a valid SVID */
    if (r == 0 && hb_x509_parse_leaf(certs[0].buffer, certs[0].length, &leaf) == 0)
        t->peer_not_after = leaf.not_after;
    if (r < 0) {
        hbone_spiffe_id_del(t->peer_id);
        t->peer_id = NULL;
    }
    return r;
}

int hb_tls_verify_callback(int preverify, WOLFSSL_X509_STORE_CTX *store)
{
    hb_tls *t = store ? store->userCtx : NULL;
    if (!t)
        return 0;
    if (t->pending_error) /* the first failure is the one to report */
        return 0;
    if (store->totalCerts > MAX_CHAIN_CERTS) {
        t->pending_error =
            hb_detail_set(&t->detail, HBONE_ERR_TLS_CHAIN_TOO_LONG,
                          "%s chain too long: %d certificates, at most %d are accepted",
                          peer_name(t), store->totalCerts, MAX_CHAIN_CERTS);
        return 0;
    }
    /* Never return nonzero for a failed check: that would override it. */
    if (!preverify) {
        t->pending_error = chain_error(t, store->error, store->error_depth);
        return 0;
    }
    if (store->error_depth != 0) /* intermediates: wolfSSL's verdict stands */
        return 1;
    if (!store->certs || store->totalCerts < 1) {
        t->pending_error = hb_detail_set(&t->detail, HBONE_ERR_TLS_NO_PEER_CERT,
                                         "%s presented no certificate", peer_name(t));
        return 0;
    }
    int r = check_peer(t, store->certs, store->totalCerts);
    if (r < 0) {
        t->pending_error = r;
        return 0;
    }
    return 1;
}

/* --- lifecycle -------------------------------------------------------- */

int hb_tls_new(hb_tls **out, hbone_config *cfg, int role)
{
    if (!out || !cfg || (role != HB_TLS_CLIENT && role != HB_TLS_SERVER))
        return HBONE_ERR_INVALID_ARGUMENT;
    *out = NULL;
    int r = hb_config_freeze(cfg);
    if (r < 0)
        return r;
    hb_tls *t = hb_calloc(&cfg->mem, 1, sizeof(*t));
    if (!t)
        return HBONE_ERR_NOMEM;
    t->cfg = hbone_config_ref(cfg);
    t->role = role;
    t->scanning = role == HB_TLS_SERVER;
    t->ssl = wolfSSL_new(role == HB_TLS_SERVER ? cfg->server_ctx : cfg->client_ctx);
    if (!t->ssl) {
        hb_tls_del(t);
        return HBONE_ERR_NOMEM;
    }
    wolfSSL_SSLSetIORecv(t->ssl, io_recv);
    wolfSSL_SSLSetIOSend(t->ssl, io_send);
    wolfSSL_SetIOReadCtx(t->ssl, t);
    wolfSSL_SetIOWriteCtx(t->ssl, t);
    wolfSSL_SetCertCbCtx(t->ssl, t);
    /* ALPN is exactly "h2"; a peer offering something else fails here, a
     * peer offering nothing fails check_alpn(). */
    char alpn[] = ALPN_H2;
    r = wolfSSL_UseALPN(t->ssl, alpn, sizeof(alpn) - 1, WOLFSSL_ALPN_FAILED_ON_MISMATCH);
    /* Lead with a P-256 key share: the one group every ztunnel build accepts,
     * so no HelloRetryRequest round trip. */
    if (r == WOLFSSL_SUCCESS && role == HB_TLS_CLIENT)
        r = wolfSSL_UseKeyShare(t->ssl, WOLFSSL_ECC_SECP256R1);
    if (r != WOLFSSL_SUCCESS) {
        /* The arguments are constants: any failure but memory is a bug. */
        hb_tls_del(t);
        return hb_wolfssl_out_of_memory(r) ? HBONE_ERR_NOMEM : HBONE_ERR_INTERNAL;
    }
    *out = t;
    return 0;
}

#ifdef HB_TESTING
int hb_tls_new_plaintext(hb_tls **out, hbone_config *cfg, int role)
{
    if (!out || !cfg || (role != HB_TLS_CLIENT && role != HB_TLS_SERVER))
        return HBONE_ERR_INVALID_ARGUMENT;
    *out = NULL;
    hb_tls *t = hb_calloc(&cfg->mem, 1, sizeof(*t));
    if (!t)
        return HBONE_ERR_NOMEM;
    /* No certificate is needed, so not hb_config_freeze(); the config is
     * still in use and must stop changing like any other. */
    atomic_store(&cfg->frozen, 1);
    t->cfg = hbone_config_ref(cfg);
    t->role = role;
    t->plaintext = 1;
    t->done = 1; /* nothing to negotiate; peer_id stays NULL */
    *out = t;
    return 0;
}

/* hb_tls_read() without TLS: the same contract over the input as it is. */
static int plaintext_read(hb_tls *t, const uint8_t *in, size_t in_len, size_t *consumed,
                          uint8_t *out, size_t cap, size_t *nread)
{
    (void)t;
    size_t n = in_len < cap ? in_len : cap;
    if (n)
        memcpy(out, in, n);
    *consumed = *nread = n;
    return n == cap ? 0 : HBONE_ERR_AGAIN;
}
#endif

void hb_tls_del(hb_tls *t)
{
    if (!t)
        return;
    hbone_config *cfg = t->cfg;
    if (t->ssl)
        wolfSSL_free(t->ssl);
    for (size_t i = 0; i < t->n_expected; i++)
        hbone_spiffe_id_del(t->expected[i]);
    hb_free(&cfg->mem, t->expected);
    hbone_spiffe_id_del(t->peer_id);
    hb_free(&cfg->mem, t->out);
    hb_hello_scan_free(&t->hello, &cfg->mem);
    hb_free(&cfg->mem, t);
    hbone_config_del(cfg);
}

int hb_tls_expect_peer(hb_tls *t, const hbone_spiffe_id *id)
{
    if (!t || !id)
        return HBONE_ERR_INVALID_ARGUMENT;
    if (t->role != HB_TLS_CLIENT || t->done || wolfSSL_is_init_finished(t->ssl) || t->out_len > 0 ||
        t->n_expected >= MAX_EXPECTED_PEERS)
        return HBONE_ERR_INVALID_STATE;
    hbone_spiffe_id **grown =
        hb_realloc(&t->cfg->mem, t->expected, (t->n_expected + 1) * sizeof(*grown));
    if (!grown)
        return HBONE_ERR_NOMEM;
    t->expected = grown;
    int r = hbone_spiffe_id_dup(&grown[t->n_expected], id);
    if (r < 0)
        return r;
    t->n_expected++;
    return 0;
}

/* --- data path -------------------------------------------------------- */

static void lend_input(hb_tls *t, const uint8_t *in, size_t in_len)
{
    t->in = in;
    t->in_len = in ? in_len : 0;
    t->in_off = 0;
}

static size_t return_input(hb_tls *t)
{
    size_t used = t->in_off;
    t->in = NULL;
    t->in_len = t->in_off = 0;
    return used;
}

int hb_tls_handshake(hb_tls *t, const uint8_t *in, size_t in_len, size_t *consumed)
{
    *consumed = 0;
    if (t->error)
        return t->error;
    if (t->done)
        return 0;
    if (t->role == HB_TLS_CLIENT && t->n_expected == 0)
        return HBONE_ERR_INVALID_STATE;
    lend_input(t, in, in_len);
    int ret = wolfSSL_negotiate(t->ssl);
    *consumed = return_input(t);
    if (ret != WOLFSSL_SUCCESS) {
        int err = wolfSSL_get_error(t->ssl, ret);
        if (err == WOLFSSL_ERROR_WANT_READ || err == WOLFSSL_ERROR_WANT_WRITE)
            return HBONE_ERR_AGAIN;
        return wolf_error(t, ret);
    }
    /* The verify callback must have vetted the peer; if wolfSSL completed
     * without running it, refuse rather than trust an unchecked peer. */
    if (!t->peer_id)
        return fail(t, hb_detail_set(&t->detail, HBONE_ERR_TLS_NO_PEER_CERT,
                                     "%s identity was not verified", peer_name(t)));
    int r = check_alpn(t);
    if (r < 0)
        return fail(t, r);
    t->done = 1;
    t->scanning = 0;
    hb_hello_scan_free(&t->hello, &t->cfg->mem);
    hb_log(&t->cfg->log, HBONE_LOG_DEBUG, "TLS handshake done: peer %s, %s",
           hbone_spiffe_id_str(t->peer_id, NULL), hb_tls_cipher(t));
    return 0;
}

int hb_tls_read(hb_tls *t, const uint8_t *in, size_t in_len, size_t *consumed, uint8_t *out,
                size_t cap, size_t *nread)
{
    *consumed = 0;
    *nread = 0;
    if (t->error)
        return t->error;
    if (!t->done)
        return HBONE_ERR_INVALID_STATE;
    if (t->peer_closed)
        return HBONE_ERR_CLOSED;
#ifdef HB_TESTING
    if (t->plaintext)
        return plaintext_read(t, in, in ? in_len : 0, consumed, out, cap, nread);
#endif
    lend_input(t, in, in_len);
    int result = 0, want_input = 0;
    while (*nread < cap) {
        size_t want = cap - *nread;
        int ret = wolfSSL_read(t->ssl, out + *nread, want > INT32_MAX ? INT32_MAX : (int)want);
        if (ret > 0) {
            *nread += (size_t)ret;
            continue;
        }
        int err = wolfSSL_get_error(t->ssl, ret);
        if (err == WOLFSSL_ERROR_WANT_READ || err == WOLFSSL_ERROR_WANT_WRITE) {
            want_input = 1;
            break;
        }
        if (err == WOLFSSL_ERROR_ZERO_RETURN) {
            t->peer_closed = 1;
            break;
        }
        result = wolf_error(t, ret);
        break;
    }
    *consumed = return_input(t);
    if (result < 0)
        return result;
    if (t->peer_closed)
        return HBONE_ERR_CLOSED;
    return want_input ? HBONE_ERR_AGAIN : 0;
}

int hb_tls_write(hb_tls *t, const uint8_t *data, size_t len)
{
    if (t->error)
        return t->error;
    if (!t->done)
        return HBONE_ERR_INVALID_STATE;
#ifdef HB_TESTING
    if (t->plaintext) {
        if (t->closed_sent) /* as wolfSSL refuses to write after close_notify */
            return HBONE_ERR_INVALID_STATE;
        int r = len ? append_output(t, data, len) : 0;
        return r < 0 ? fail(t, r) : 0;
    }
#endif
    while (len > 0) {
        int chunk = len > (size_t)INT32_MAX ? INT32_MAX : (int)len;
        int ret = wolfSSL_write(t->ssl, data, chunk);
        if (ret <= 0)
            return wolf_error(t, ret);
        data += ret;
        len -= (size_t)ret;
    }
    return 0;
}

int hb_tls_close_notify(hb_tls *t)
{
    if (t->error)
        return t->error;
#ifdef HB_TESTING
    if (t->plaintext) {
        /* Nothing in-band marks the end of a plaintext stream (it would not
         * be raw HTTP/2 any more): the peer learns it from the transport. */
        t->closed_sent = 1;
        return 0;
    }
#endif
    int ret = wolfSSL_shutdown(t->ssl);
    if (ret == WOLFSSL_SUCCESS || ret == WOLFSSL_SHUTDOWN_NOT_DONE)
        return 0;
    return wolf_error(t, ret);
}

/* --- accessors -------------------------------------------------------- */

int hb_tls_handshake_done(const hb_tls *t)
{
    return t->done;
}

const hbone_spiffe_id *hb_tls_peer_id(const hb_tls *t)
{
    return t->done ? t->peer_id : NULL;
}

int64_t hb_tls_peer_not_after(const hb_tls *t)
{
    return t->done ? t->peer_not_after : 0;
}

const char *hb_tls_cipher(const hb_tls *t)
{
#ifdef HB_TESTING
    if (t->plaintext)
        return "none (plaintext, test builds only)";
#endif
    /* By suite number: wolfSSL's own names differ between builds. */
    switch (wolfSSL_get_current_cipher_suite(t->ssl)) {
    case 0x1301:
        return "TLS_AES_128_GCM_SHA256";
    case 0x1302:
        return "TLS_AES_256_GCM_SHA384";
    case 0x1303:
        return "TLS_CHACHA20_POLY1305_SHA256";
    default:
        return "none";
    }
}

const char *hb_tls_group(const hb_tls *t)
{
#ifdef HB_TESTING
    if (t->plaintext)
        return "none";
#endif
    const char *name = wolfSSL_get_curve_name(t->ssl);
    return name ? name : "none";
}

const char *hb_tls_error_detail(const hb_tls *t)
{
    return t->detail.text;
}
