/* SPDX-License-Identifier: MIT */
/* The config object as the TLS layer sees it. */
#ifndef HB_TLS_CONFIG_H
#define HB_TLS_CONFIG_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include <hbone/config.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/server_load.h"
#include "tls/wolfssl.h"

typedef struct hb_trust_bundle {
    char *trust_domain; /* NUL-terminated */
    size_t trust_domain_len;
    char *pem; /* all CA certificates of this trust domain, concatenated */
    size_t pem_len;
} hb_trust_bundle;

struct hbone_config {
    atomic_int refs;
    atomic_int frozen; /* set when the first session uses the config */
    hb_mem mem;
    int svid_mode;
    uint32_t handshake_timeout_ms;
    uint32_t keepalive_interval_ms;
    uint32_t keepalive_timeout_ms;
    int hostname_authority;
    uint32_t idle_timeout_ms;
    uint32_t stall_timeout_ms; /* see hbone_config_set_stall_timeout */
    /* HTTP/2 settings; 0 means the default for the role. */
    uint32_t h2_stream_window;
    uint32_t h2_connection_window;
    uint32_t h2_max_frame_size;
    uint32_t h2_max_concurrent_streams;
    uint32_t h2_max_header_list_size; /* 0: the role's default */
    uint32_t tunnel_buffer;           /* bytes; see hbone_config_set_buffer_limits */
    uint32_t connection_buffer;
    uint32_t flood_burst; /* see hbone_config_set_flood_limit */
    uint32_t flood_per_second;
    uint32_t max_handshakes; /* see hbone_config_set_server_limits */
    uint32_t max_connections;
    hb_server_load *server_load; /* counted here, shared by rotated configs */
    hb_logger log;
    hb_detail detail;
    hbone_spiffe_id *identity; /* own, from the certificate */
    int has_certificate;
    hb_trust_bundle *bundles;
    size_t n_bundles;
    char **accepted_trust_domains; /* server: besides the own one */
    size_t n_accepted;
    /* Built as setters run; both roles share the material. */
    WOLFSSL_CTX *client_ctx;
    WOLFSSL_CTX *server_ctx;
};

/* Load a certificate chain and key into the TLS contexts. With
 * @p check_svid == 0 the leaf is not required to be an X.509-SVID: only tests
 * use that, to play a peer that presents a bad certificate. */
int hb_config_load_certificate(hbone_config *cfg, const char *chain_pem, size_t chain_len,
                               const char *key_pem, size_t key_len, int check_svid);

/* Mark @p cfg immutable and check it is complete enough to handshake
 * (certificate and at least one bundle). Returns 0 or an HBONE_ERR_*. */
int hb_config_freeze(hbone_config *cfg);

/* The bundle bound to @p td, or NULL. */
const hb_trust_bundle *hb_config_bundle(const hbone_config *cfg, const char *td, size_t len);

/* True if a server with @p cfg accepts clients of trust domain @p td. */
int hb_config_accepts_trust_domain(const hbone_config *cfg, const char *td, size_t len);

#endif /* HB_TLS_CONFIG_H */
