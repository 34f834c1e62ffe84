/* SPDX-License-Identifier: MIT */
#include "tls/config.h"

#include <limits.h>
#include <string.h>

#include <hbone/error.h>

#include "identity/pem.h"
#include "identity/spiffe.h"
#include "identity/svid.h"
#include "tls/tls.h"

/* The groups libhbone offers: P-256 first (every ztunnel build has it), then
 * X25519 and P-384. */
static int groups[] = {WOLFSSL_ECC_SECP256R1, WOLFSSL_ECC_X25519, WOLFSSL_ECC_SECP384R1};

/* AES-GCM first (hardware accelerated, what ztunnel offers), ChaCha20 last. */
static const char cipher_list[] =
    "TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:TLS13-CHACHA20-POLY1305-SHA256";

static WOLFSSL_CTX *new_ctx(int server)
{
    WOLFSSL_METHOD *method = server ? wolfTLSv1_3_server_method() : wolfTLSv1_3_client_method();
    if (!method)
        return NULL;
    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(method);
    if (!ctx)
        return NULL;
    if (wolfSSL_CTX_set_cipher_list(ctx, cipher_list) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_set_groups(ctx, groups, (int)(sizeof(groups) / sizeof(groups[0]))) !=
            WOLFSSL_SUCCESS) {
        wolfSSL_CTX_free(ctx);
        return NULL;
    }
    /* Identity checks run in the session's verify callback. The server must
     * also demand a certificate: VERIFY_PEER alone lets a client without
     * one through. */
    int mode = WOLFSSL_VERIFY_PEER | (server ? WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0);
    wolfSSL_CTX_set_verify(ctx, mode, hb_tls_verify_callback);
    if (server) {
        /* No tickets: HBONE never resumes (a no-op without ticket support). */
        (void)wolfSSL_CTX_no_ticket_TLSv13(ctx);
    }
#ifndef NO_SESSION_CACHE
    wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_OFF);
#endif
    return ctx;
}

int hbone_config_new(hbone_config **out, const hbone_mem *mem)
{
    if (!out)
        return HBONE_ERR_INVALID_ARGUMENT;
    *out = NULL;
    int r = hb_tls_global_init();
    if (r < 0)
        return r;
    mem = hb_mem_or_default(mem);
    hbone_config *cfg = hb_calloc(mem, 1, sizeof(*cfg));
    if (!cfg)
        return HBONE_ERR_NOMEM;
    atomic_init(&cfg->refs, 1);
    atomic_init(&cfg->frozen, 0);
    cfg->mem = *mem;
    cfg->svid_mode = HBONE_SVID_STRICT;
    cfg->handshake_timeout_ms = 10000;
    cfg->keepalive_interval_ms = 10000; /* ztunnel's values */
    cfg->keepalive_timeout_ms = 20000;
    cfg->stall_timeout_ms = 300000; /* Envoy's stream idle timeout: 5 minutes */
    cfg->tunnel_buffer = 256 * 1024;
    cfg->connection_buffer = 256 * 1024;
    cfg->flood_burst = 1000; /* upstream nghttp2's glitch limiter */
    cfg->flood_per_second = 33;
    cfg->max_handshakes = 128;
    cfg->max_connections = 10000;
    cfg->server_load = hb_server_load_new(mem);
    if (!cfg->server_load) {
        hb_free(mem, cfg);
        return HBONE_ERR_NOMEM;
    }
    cfg->client_ctx = new_ctx(0);
    cfg->server_ctx = new_ctx(1);
    if (!cfg->client_ctx || !cfg->server_ctx) {
        /* Its inputs are constants: what fails there is an allocation. */
        hbone_config_del(cfg);
        return HBONE_ERR_NOMEM;
    }
    *out = cfg;
    return 0;
}

hbone_config *hbone_config_ref(hbone_config *cfg)
{
    if (cfg)
        atomic_fetch_add_explicit(&cfg->refs, 1, memory_order_relaxed);
    return cfg;
}

void hbone_config_del(hbone_config *cfg)
{
    if (!cfg || atomic_fetch_sub_explicit(&cfg->refs, 1, memory_order_acq_rel) != 1)
        return;
    const hb_mem *mem = &cfg->mem;
    wolfSSL_CTX_free(cfg->client_ctx);
    wolfSSL_CTX_free(cfg->server_ctx);
    hbone_spiffe_id_del(cfg->identity);
    for (size_t i = 0; i < cfg->n_bundles; i++) {
        hb_free(mem, cfg->bundles[i].trust_domain);
        hb_free(mem, cfg->bundles[i].pem);
    }
    hb_free(mem, cfg->bundles);
    for (size_t i = 0; i < cfg->n_accepted; i++)
        hb_free(mem, cfg->accepted_trust_domains[i]);
    hb_free(mem, cfg->accepted_trust_domains);
    hb_server_load_del(cfg->server_load);
    hb_mem copy = cfg->mem;
    hb_free(&copy, cfg);
}

/* Common guard of every setter. */
static int setter_begin(hbone_config *cfg)
{
    if (!cfg)
        return HBONE_ERR_INVALID_ARGUMENT;
    if (atomic_load(&cfg->frozen))
        return hb_detail_set(&cfg->detail, HBONE_ERR_CONFIG_FROZEN,
                             "config is in use by a connection; build a new config to change it");
    hb_detail_clear(&cfg->detail);
    return 0;
}

/* wolfSSL ran out of memory while loading: say so, rather than blame the
 * input. */
static int out_of_memory_in(hbone_config *cfg, const char *what)
{
    return hb_detail_set(&cfg->detail, HBONE_ERR_NOMEM, "out of memory in wolfSSL loading %s",
                         what);
}

static int load_into_both(hbone_config *cfg, const char *chain, size_t chain_len, const char *key,
                          size_t key_len)
{
    WOLFSSL_CTX *ctxs[2] = {cfg->client_ctx, cfg->server_ctx};
    for (int i = 0; i < 2; i++) {
        int r = wolfSSL_CTX_use_certificate_chain_buffer_format(
            ctxs[i], (const unsigned char *)chain, (long)chain_len, WOLFSSL_FILETYPE_PEM);
        if (hb_wolfssl_out_of_memory(r))
            return out_of_memory_in(cfg, "the certificate chain");
        if (r != WOLFSSL_SUCCESS)
            return hb_detail_set(&cfg->detail, HBONE_ERR_PEM,
                                 "certificate chain PEM could not be loaded");
        r = wolfSSL_CTX_use_PrivateKey_buffer(ctxs[i], (const unsigned char *)key, (long)key_len,
                                              WOLFSSL_FILETYPE_PEM);
        if (hb_wolfssl_out_of_memory(r))
            return out_of_memory_in(cfg, "the private key");
        if (r != WOLFSSL_SUCCESS)
            return hb_detail_set(&cfg->detail, HBONE_ERR_KEY,
                                 "private key could not be loaded (PKCS#8 or SEC1 PEM expected)");
        if (wolfSSL_CTX_check_private_key(ctxs[i]) != WOLFSSL_SUCCESS)
            return hb_detail_set(&cfg->detail, HBONE_ERR_KEY,
                                 "private key does not match the leaf certificate");
    }
    return 0;
}

int hbone_config_set_certificate(hbone_config *cfg, const char *chain_pem, size_t chain_len,
                                 const char *key_pem, size_t key_len)
{
    return hb_config_load_certificate(cfg, chain_pem, chain_len, key_pem, key_len, 1);
}

int hb_config_load_certificate(hbone_config *cfg, const char *chain_pem, size_t chain_len,
                               const char *key_pem, size_t key_len, int check_svid)
{
    int r = setter_begin(cfg);
    if (r < 0)
        return r;
    if (!chain_pem || !key_pem || chain_len > LONG_MAX || key_len > LONG_MAX)
        return HBONE_ERR_INVALID_ARGUMENT;
    uint8_t *leaf = NULL;
    size_t leaf_len = 0, pos = 0;
    r = hb_pem_next(&cfg->mem, chain_pem, chain_len, &pos, "CERTIFICATE", &leaf, &leaf_len);
    if (r < 0) {
        return hb_detail_set(&cfg->detail, r == HBONE_ERR_NOMEM ? r : HBONE_ERR_PEM,
                             "certificate chain has no valid CERTIFICATE PEM block");
    }
    hbone_spiffe_id *id = NULL;
    r = hb_svid_check(leaf, leaf_len, cfg->svid_mode, &id, &cfg->mem, &cfg->detail);
    hb_free(&cfg->mem, leaf);
    if (r < 0 && (check_svid || r == HBONE_ERR_NOMEM))
        return r;
    r = load_into_both(cfg, chain_pem, chain_len, key_pem, key_len);
    if (r < 0) {
        hbone_spiffe_id_del(id);
        return r;
    }
    hbone_spiffe_id_del(cfg->identity);
    cfg->identity = id;
    cfg->has_certificate = 1;
    hb_log(&cfg->log, HBONE_LOG_INFO, "certificate set: %s",
           id ? hbone_spiffe_id_str(id, NULL) : "(not an SVID)");
    return 0;
}

static int check_trust_domain(hbone_config *cfg, const char *td, size_t len)
{
    if (!td)
        return HBONE_ERR_INVALID_ARGUMENT;
    size_t bad = 0;
    int r = hb_spiffe_validate_trust_domain(td, len, &bad);
    if (r < 0)
        return hb_detail_set(&cfg->detail, r, "trust domain \"%.*s\": %s (at byte %zu)",
                             len > 255 ? 255 : (int)len, td, hbone_strerror(r), bad);
    return 0;
}

/* Append @p pem to @p b's text (a bundle may be extended during CA rotation). */
static int append_pem(const hb_mem *mem, hb_trust_bundle *b, const char *pem, size_t len)
{
    char *grown = hb_realloc(mem, b->pem, b->pem_len + len + 2);
    if (!grown)
        return HBONE_ERR_NOMEM;
    b->pem = grown;
    memcpy(b->pem + b->pem_len, pem, len);
    b->pem_len += len;
    b->pem[b->pem_len++] = '\n'; /* keeps "-----END" and "-----BEGIN" apart */
    b->pem[b->pem_len] = '\0';
    return 0;
}

int hbone_config_add_trust_bundle(hbone_config *cfg, const char *trust_domain,
                                  size_t trust_domain_len, const char *bundle_pem,
                                  size_t bundle_len)
{
    int r = setter_begin(cfg);
    if (r < 0)
        return r;
    if (!bundle_pem || bundle_len > LONG_MAX / 2)
        return HBONE_ERR_INVALID_ARGUMENT;
    r = check_trust_domain(cfg, trust_domain, trust_domain_len);
    if (r < 0)
        return r;
    /* Validate the PEM alone first so a bad bundle changes nothing. */
    WOLFSSL_CERT_MANAGER *probe = wolfSSL_CertManagerNew();
    if (!probe)
        return HBONE_ERR_NOMEM;
    r = wolfSSL_CertManagerLoadCABuffer(probe, (const unsigned char *)bundle_pem, (long)bundle_len,
                                        WOLFSSL_FILETYPE_PEM);
    wolfSSL_CertManagerFree(probe);
    if (hb_wolfssl_out_of_memory(r))
        return out_of_memory_in(cfg, "a trust bundle");
    if (r != WOLFSSL_SUCCESS)
        return hb_detail_set(&cfg->detail, HBONE_ERR_TLS_CERT_INVALID,
                             "trust bundle of %.*s: no loadable CA certificate (wolfSSL error %d)",
                             (int)trust_domain_len, trust_domain, r);
    hb_trust_bundle *b = (hb_trust_bundle *)hb_config_bundle(cfg, trust_domain, trust_domain_len);
    int is_new = b == NULL;
    if (is_new) {
        hb_trust_bundle *grown =
            hb_realloc(&cfg->mem, cfg->bundles, (cfg->n_bundles + 1) * sizeof(*grown));
        if (!grown)
            return HBONE_ERR_NOMEM;
        cfg->bundles = grown;
        b = &cfg->bundles[cfg->n_bundles];
        memset(b, 0, sizeof(*b));
        b->trust_domain = hb_strndup(&cfg->mem, trust_domain, trust_domain_len);
        if (!b->trust_domain)
            return HBONE_ERR_NOMEM;
        b->trust_domain_len = trust_domain_len;
    }
    r = append_pem(&cfg->mem, b, bundle_pem, bundle_len);
    if (r < 0) {
        if (is_new) /* not counted yet: leave no half-made bundle behind */
            hb_free(&cfg->mem, b->trust_domain);
        return r;
    }
    cfg->n_bundles += is_new;
    WOLFSSL_CTX *ctxs[2] = {cfg->client_ctx, cfg->server_ctx};
    for (int i = 0; i < 2; i++) {
        r = wolfSSL_CTX_load_verify_buffer(ctxs[i], (const unsigned char *)bundle_pem,
                                           (long)bundle_len, WOLFSSL_FILETYPE_PEM);
        if (hb_wolfssl_out_of_memory(r))
            return out_of_memory_in(cfg, "a trust bundle");
        if (r != WOLFSSL_SUCCESS)
            return hb_detail_set(&cfg->detail, HBONE_ERR_INTERNAL,
                                 "trust bundle loaded alone but not into the TLS context");
    }
    return 0;
}

int hbone_config_accept_trust_domain(hbone_config *cfg, const char *trust_domain,
                                     size_t trust_domain_len)
{
    int r = setter_begin(cfg);
    if (r < 0)
        return r;
    r = check_trust_domain(cfg, trust_domain, trust_domain_len);
    if (r < 0)
        return r;
    for (size_t i = 0; i < cfg->n_accepted; i++) {
        if (strlen(cfg->accepted_trust_domains[i]) == trust_domain_len &&
            memcmp(cfg->accepted_trust_domains[i], trust_domain, trust_domain_len) == 0)
            return 0;
    }
    char **grown =
        hb_realloc(&cfg->mem, cfg->accepted_trust_domains, (cfg->n_accepted + 1) * sizeof(*grown));
    if (!grown)
        return HBONE_ERR_NOMEM;
    cfg->accepted_trust_domains = grown;
    grown[cfg->n_accepted] = hb_strndup(&cfg->mem, trust_domain, trust_domain_len);
    if (!grown[cfg->n_accepted])
        return HBONE_ERR_NOMEM;
    cfg->n_accepted++;
    return 0;
}

int hbone_config_set_svid_mode(hbone_config *cfg, int mode)
{
    int r = setter_begin(cfg);
    if (r < 0)
        return r;
    if (mode != HBONE_SVID_STRICT && mode != HBONE_SVID_LENIENT)
        return HBONE_ERR_INVALID_ARGUMENT;
    cfg->svid_mode = mode;
    return 0;
}

int hbone_config_set_log(hbone_config *cfg, hbone_log_cb cb, int max_level, void *user_data)
{
    int r = setter_begin(cfg);
    if (r < 0)
        return r;
    if (max_level < HBONE_LOG_NONE || max_level > HBONE_LOG_DEBUG)
        return HBONE_ERR_INVALID_ARGUMENT;
    cfg->log = (hb_logger){cb, max_level, user_data};
    return 0;
}

int hbone_config_set_handshake_timeout(hbone_config *cfg, uint32_t ms)
{
    int r = setter_begin(cfg);
    if (r < 0)
        return r;
    cfg->handshake_timeout_ms = ms;
    return 0;
}

int hbone_config_set_keepalive(hbone_config *cfg, uint32_t interval_ms, uint32_t timeout_ms)
{
    int r = setter_begin(cfg);
    if (r < 0)
        return r;
    if (interval_ms && !timeout_ms)
        return HBONE_ERR_INVALID_ARGUMENT;
    cfg->keepalive_interval_ms = interval_ms;
    cfg->keepalive_timeout_ms = timeout_ms;
    return 0;
}

int hbone_config_set_idle_timeout(hbone_config *cfg, uint32_t ms)
{
    int r = setter_begin(cfg);
    if (r < 0)
        return r;
    cfg->idle_timeout_ms = ms;
    return 0;
}

int hbone_config_set_stall_timeout(hbone_config *cfg, uint32_t ms)
{
    int r = setter_begin(cfg);
    if (r < 0)
        return r;
    cfg->stall_timeout_ms = ms;
    return 0;
}

int hbone_config_set_server_limits(hbone_config *cfg, uint32_t max_handshakes,
                                   uint32_t max_connections)
{
    int r = setter_begin(cfg);
    if (r < 0)
        return r;
    cfg->max_handshakes = max_handshakes;
    cfg->max_connections = max_connections;
    return 0;
}

int hbone_config_share_server_limits(hbone_config *cfg, const hbone_config *from)
{
    if (!from)
        return HBONE_ERR_INVALID_ARGUMENT;
    int r = setter_begin(cfg);
    if (r < 0)
        return r;
    hb_server_load_del(cfg->server_load);
    cfg->server_load = hb_server_load_ref(from->server_load);
    cfg->max_handshakes = from->max_handshakes;
    cfg->max_connections = from->max_connections;
    return 0;
}

int hbone_config_server_load(const hbone_config *cfg, uint32_t *handshakes, uint32_t *connections)
{
    if (!cfg)
        return HBONE_ERR_INVALID_ARGUMENT;
    hb_server_load_read(cfg->server_load, handshakes, connections);
    return 0;
}

int hbone_config_set_hostname_authority(hbone_config *cfg, int allow)
{
    int r = setter_begin(cfg);
    if (r < 0)
        return r;
    if (allow != 0 && allow != 1)
        return HBONE_ERR_INVALID_ARGUMENT;
    cfg->hostname_authority = allow;
    return 0;
}

int hbone_config_set_http2(hbone_config *cfg, uint32_t stream_window, uint32_t connection_window,
                           uint32_t max_frame_size, uint32_t max_concurrent_streams)
{
    int r = setter_begin(cfg);
    if (r < 0)
        return r;
    /* RFC 9113 6.5.2 and 6.9.1 ranges. */
    const uint32_t window_max = 0x7fffffff;
    if (stream_window == 0 || stream_window > window_max || connection_window < stream_window ||
        connection_window > window_max || max_frame_size < 16384 || max_frame_size > 0xffffff ||
        max_concurrent_streams == 0)
        return HBONE_ERR_INVALID_ARGUMENT;
    cfg->h2_stream_window = stream_window;
    cfg->h2_connection_window = connection_window;
    cfg->h2_max_frame_size = max_frame_size;
    cfg->h2_max_concurrent_streams = max_concurrent_streams;
    return 0;
}

int hbone_config_set_max_header_list_size(hbone_config *cfg, uint32_t bytes)
{
    int r = setter_begin(cfg);
    if (r < 0)
        return r;
    /* Room for a CONNECT with ztunnel's headers; far above any real one. */
    if (bytes < 1024 || bytes > 16 * 1024 * 1024)
        return HBONE_ERR_INVALID_ARGUMENT;
    cfg->h2_max_header_list_size = bytes;
    return 0;
}

int hbone_config_set_buffer_limits(hbone_config *cfg, uint32_t tunnel_bytes,
                                   uint32_t connection_bytes)
{
    int r = setter_begin(cfg);
    if (r < 0)
        return r;
    /* Below these, a full record (16 KiB) or a few no longer fit. */
    if (tunnel_bytes < 16 * 1024 || tunnel_bytes > 64 * 1024 * 1024 ||
        connection_bytes < 64 * 1024 || connection_bytes > 64 * 1024 * 1024)
        return HBONE_ERR_INVALID_ARGUMENT;
    cfg->tunnel_buffer = tunnel_bytes;
    cfg->connection_buffer = connection_bytes;
    return 0;
}

int hbone_config_set_flood_limit(hbone_config *cfg, uint32_t burst, uint32_t per_second)
{
    int r = setter_begin(cfg);
    if (r < 0)
        return r;
    if (burst < 1 || burst > 1000000 || per_second < 1 || per_second > 1000000)
        return HBONE_ERR_INVALID_ARGUMENT;
    cfg->flood_burst = burst;
    cfg->flood_per_second = per_second;
    return 0;
}

const hbone_spiffe_id *hbone_config_identity(const hbone_config *cfg)
{
    return cfg ? cfg->identity : NULL;
}

const char *hbone_config_error_detail(const hbone_config *cfg)
{
    return cfg ? cfg->detail.text : "";
}

int hb_config_freeze(hbone_config *cfg)
{
    if (!cfg->has_certificate)
        return HBONE_ERR_NO_CERTIFICATE;
    if (cfg->n_bundles == 0)
        return HBONE_ERR_NO_TRUST_BUNDLE;
    atomic_store(&cfg->frozen, 1);
    return 0;
}

const hb_trust_bundle *hb_config_bundle(const hbone_config *cfg, const char *td, size_t len)
{
    for (size_t i = 0; i < cfg->n_bundles; i++) {
        const hb_trust_bundle *b = &cfg->bundles[i];
        if (b->trust_domain_len == len && memcmp(b->trust_domain, td, len) == 0)
            return b;
    }
    return NULL;
}

int hb_config_accepts_trust_domain(const hbone_config *cfg, const char *td, size_t len)
{
    if (hb_spiffe_id_in_trust_domain(cfg->identity, td, len))
        return 1;
    for (size_t i = 0; i < cfg->n_accepted; i++) {
        if (strlen(cfg->accepted_trust_domains[i]) == len &&
            memcmp(cfg->accepted_trust_domains[i], td, len) == 0)
            return 1;
    }
    return 0;
}
