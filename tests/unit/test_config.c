/* SPDX-License-Identifier: MIT */
/* The config object: certificate and bundle loading, policy setters,
 * freezing on first use, reference counting and the allocator hook. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "tls/tls.h"

#define TD "cluster.local"
#define TD_LEN 13

static int set_leaf(hbone_config *cfg, const char *chain_file, const char *key_file)
{
    size_t chain_len, key_len;
    char *chain = tl_pki_read(chain_file, &chain_len);
    char *key = tl_pki_read(key_file, &key_len);
    int r = hbone_config_set_certificate(cfg, chain, chain_len, key, key_len);
    free(chain);
    free(key);
    return r;
}

static int add_bundle(hbone_config *cfg, const char *td, const char *file)
{
    size_t len;
    char *pem = tl_pki_read(file, &len);
    int r = hbone_config_add_trust_bundle(cfg, td, strlen(td), pem, len);
    free(pem);
    return r;
}

START_TEST(certificate_sets_the_identity)
{
    hbone_config *cfg;
    ck_assert_int_eq(hbone_config_new(&cfg, NULL), 0);
    ck_assert_ptr_null(hbone_config_identity(cfg));
    ck_assert_int_eq(set_leaf(cfg, "server.chain.pem", "server.key"), 0);
    ck_assert_str_eq(hbone_spiffe_id_str(hbone_config_identity(cfg), NULL),
                     "spiffe://cluster.local/ns/default/sa/server");
    /* SEC1 keys load too, and a second call replaces the first. */
    ck_assert_int_eq(set_leaf(cfg, "client.chain.pem", "client.sec1.key"), 0);
    ck_assert_str_eq(hbone_spiffe_id_str(hbone_config_identity(cfg), NULL),
                     "spiffe://cluster.local/ns/default/sa/client");
    ck_assert_str_eq(hbone_config_error_detail(cfg), "");
    hbone_config_del(cfg);
}
END_TEST

struct bad_certificate {
    const char *name;
    const char *chain;
    const char *key;
    int mode;
    int error;
    const char *detail;
};

static const struct bad_certificate bad_certificates[] = {
#ifndef HB_TEST_WOLFSSL_SYSTEM
    /* Debian's libwolfssl 5.5.4 reports a mismatched EC key as matching; with
     * it the mistake surfaces later, when the peer checks CertificateVerify. */
    {"key of another leaf", "server.chain.pem", "client.key", HBONE_SVID_STRICT, HBONE_ERR_KEY,
     "does not match"},
#endif
    {"key is not a key", "server.chain.pem", "not-pem.txt", HBONE_SVID_STRICT, HBONE_ERR_KEY,
     "could not be loaded"},
    {"chain is not PEM", "not-pem.txt", "server.key", HBONE_SVID_STRICT, HBONE_ERR_PEM,
     "no valid CERTIFICATE"},
    {"chain is garbage", "garbage.pem", "server.key", HBONE_SVID_STRICT, HBONE_ERR_SVID_MALFORMED,
     "not valid DER"},
    {"own leaf is a CA", "ca-true.chain.pem", "ca-true.key", HBONE_SVID_STRICT, HBONE_ERR_SVID_CA,
     "is a CA"},
    {"own leaf has two URIs", "two-uri.chain.pem", "two-uri.key", HBONE_SVID_STRICT,
     HBONE_ERR_SVID_MULTIPLE_URI_SANS, "2 URI SANs"},
    {"own leaf has no SAN", "no-san.chain.pem", "no-san.key", HBONE_SVID_LENIENT,
     HBONE_ERR_SVID_NO_URI_SAN, "no URI SAN"},
};

START_TEST(bad_certificate_is_refused_and_changes_nothing)
{
    const struct bad_certificate *c = &bad_certificates[_i];
    hbone_config *cfg;
    ck_assert_int_eq(hbone_config_new(&cfg, NULL), 0);
    ck_assert_int_eq(hbone_config_set_svid_mode(cfg, c->mode), 0);
    int r = set_leaf(cfg, c->chain, c->key);
    ck_assert_msg(r == c->error, "%s: got %d (%s), want %d", c->name, r,
                  hbone_config_error_detail(cfg), c->error);
    ck_assert_msg(strstr(hbone_config_error_detail(cfg), c->detail) != NULL,
                  "%s: detail \"%s\" lacks \"%s\"", c->name, hbone_config_error_detail(cfg),
                  c->detail);
    ck_assert_ptr_null(hbone_config_identity(cfg));
    hbone_config_del(cfg);
}
END_TEST

START_TEST(lenient_mode_accepts_two_uris_for_the_own_leaf)
{
    hbone_config *cfg;
    ck_assert_int_eq(hbone_config_new(&cfg, NULL), 0);
    ck_assert_int_eq(hbone_config_set_svid_mode(cfg, HBONE_SVID_LENIENT), 0);
    ck_assert_int_eq(set_leaf(cfg, "two-uri.chain.pem", "two-uri.key"), 0);
    ck_assert_str_eq(hbone_spiffe_id_str(hbone_config_identity(cfg), NULL),
                     "spiffe://cluster.local/ns/default/sa/client");
    ck_assert_int_eq(hbone_config_set_svid_mode(cfg, 7), HBONE_ERR_INVALID_ARGUMENT);
    hbone_config_del(cfg);
}
END_TEST

START_TEST(bundles_are_validated)
{
    hbone_config *cfg;
    ck_assert_int_eq(hbone_config_new(&cfg, NULL), 0);
    ck_assert_int_eq(add_bundle(cfg, TD, "bundle-cluster.local.pem"), 0);
    ck_assert_int_eq(add_bundle(cfg, TD, "root-b.pem"), 0); /* extends it */
    ck_assert_int_eq(add_bundle(cfg, "Cluster.Local", "root-a.pem"),
                     HBONE_ERR_SPIFFE_TRUST_DOMAIN_CHAR);
    ck_assert_ptr_nonnull(strstr(hbone_config_error_detail(cfg), "Cluster.Local"));
    ck_assert_int_eq(add_bundle(cfg, "", "root-a.pem"), HBONE_ERR_SPIFFE_TRUST_DOMAIN_EMPTY);
    ck_assert_int_eq(add_bundle(cfg, "td-b.example", "not-pem.txt"), HBONE_ERR_TLS_CERT_INVALID);
    ck_assert_ptr_nonnull(strstr(hbone_config_error_detail(cfg), "td-b.example"));
    ck_assert_int_eq(add_bundle(cfg, "td-b.example", "garbage.pem"), HBONE_ERR_TLS_CERT_INVALID);
    ck_assert_int_eq(hbone_config_add_trust_bundle(cfg, TD, TD_LEN, NULL, 0),
                     HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_config_accept_trust_domain(cfg, "td-b.example", 12), 0);
    ck_assert_int_eq(hbone_config_accept_trust_domain(cfg, "td-b.example", 12), 0);
    ck_assert_int_eq(hbone_config_accept_trust_domain(cfg, "td b", 4),
                     HBONE_ERR_SPIFFE_TRUST_DOMAIN_CHAR);
    hbone_config_del(cfg);
}
END_TEST

START_TEST(sessions_need_a_complete_config)
{
    hbone_config *cfg;
    hb_tls *tls = NULL;
    ck_assert_int_eq(hbone_config_new(&cfg, NULL), 0);
    ck_assert_int_eq(hb_tls_new(&tls, cfg, HB_TLS_SERVER), HBONE_ERR_NO_CERTIFICATE);
    ck_assert_int_eq(set_leaf(cfg, "server.chain.pem", "server.key"), 0);
    ck_assert_int_eq(hb_tls_new(&tls, cfg, HB_TLS_SERVER), HBONE_ERR_NO_TRUST_BUNDLE);
    ck_assert_ptr_null(tls);
    /* Failed attempts do not freeze it. */
    ck_assert_int_eq(add_bundle(cfg, TD, "bundle-cluster.local.pem"), 0);
    ck_assert_int_eq(hb_tls_new(&tls, cfg, 5), HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hb_tls_new(&tls, cfg, HB_TLS_SERVER), 0);
    hb_tls_del(tls);
    hbone_config_del(cfg);
}
END_TEST

static void ignore_log(int level, const char *message, size_t len, void *user_data)
{
    (void)level;
    (void)message;
    (void)len;
    (void)user_data;
}

START_TEST(config_is_frozen_once_used)
{
    hbone_config *cfg = tl_config("server", NULL);
    hb_tls *tls;
    ck_assert_int_eq(hb_tls_new(&tls, cfg, HB_TLS_SERVER), 0);
    ck_assert_int_eq(set_leaf(cfg, "client.chain.pem", "client.key"), HBONE_ERR_CONFIG_FROZEN);
    ck_assert_ptr_nonnull(strstr(hbone_config_error_detail(cfg), "build a new config"));
    ck_assert_int_eq(add_bundle(cfg, "td-b.example", "root-b.pem"), HBONE_ERR_CONFIG_FROZEN);
    ck_assert_int_eq(hbone_config_accept_trust_domain(cfg, "td-b.example", 12),
                     HBONE_ERR_CONFIG_FROZEN);
    ck_assert_int_eq(hbone_config_set_svid_mode(cfg, HBONE_SVID_LENIENT), HBONE_ERR_CONFIG_FROZEN);
    ck_assert_int_eq(hbone_config_set_handshake_timeout(cfg, 5), HBONE_ERR_CONFIG_FROZEN);
    ck_assert_int_eq(hbone_config_set_keepalive(cfg, 5, 5), HBONE_ERR_CONFIG_FROZEN);
    ck_assert_int_eq(hbone_config_set_http2(cfg, 65536, 65536, 16384, 1), HBONE_ERR_CONFIG_FROZEN);
    ck_assert_int_eq(hbone_config_set_max_header_list_size(cfg, 4096), HBONE_ERR_CONFIG_FROZEN);
    ck_assert_int_eq(hbone_config_set_hostname_authority(cfg, 1), HBONE_ERR_CONFIG_FROZEN);
    ck_assert_int_eq(hbone_config_set_idle_timeout(cfg, 1), HBONE_ERR_CONFIG_FROZEN);
    ck_assert_int_eq(hbone_config_set_stall_timeout(cfg, 1), HBONE_ERR_CONFIG_FROZEN);
    ck_assert_int_eq(hbone_config_set_buffer_limits(cfg, 65536, 65536), HBONE_ERR_CONFIG_FROZEN);
    ck_assert_int_eq(hbone_config_set_flood_limit(cfg, 1, 1), HBONE_ERR_CONFIG_FROZEN);
    ck_assert_int_eq(hbone_config_set_log(cfg, ignore_log, HBONE_LOG_DEBUG, NULL),
                     HBONE_ERR_CONFIG_FROZEN);
    /* The identity is unchanged by the refused call. */
    ck_assert_str_eq(hbone_spiffe_id_str(hbone_config_identity(cfg), NULL),
                     "spiffe://cluster.local/ns/default/sa/server");
    hb_tls_del(tls);
    hbone_config_del(cfg);
}
END_TEST

START_TEST(sessions_keep_their_config_alive)
{
    tl_counting counts;
    hbone_mem *mem = tl_counting_mem(&counts, -1);
    hbone_config *cfg;
    ck_assert_int_eq(hbone_config_new(&cfg, mem), 0);
    hbone_mem_del(mem); /* the config copied it */
    ck_assert_int_eq(set_leaf(cfg, "server.chain.pem", "server.key"), 0);
    ck_assert_int_eq(add_bundle(cfg, TD, "bundle-cluster.local.pem"), 0);
    hb_tls *tls;
    ck_assert_int_eq(hb_tls_new(&tls, cfg, HB_TLS_SERVER), 0);
    ck_assert_ptr_eq(hbone_config_ref(cfg), cfg);
    hbone_config_del(cfg);
    hbone_config_del(cfg); /* the caller's references are gone ... */
    ck_assert_int_gt(counts.allocs, counts.frees);
    /* ... but the session still uses it. */
    ck_assert_str_eq(hb_tls_error_detail(tls), "");
    hb_tls_del(tls);
    ck_assert_int_eq(counts.allocs, counts.frees);
    ck_assert_int_gt(counts.allocs, 3);
    hbone_config_del(NULL);
    ck_assert_ptr_null(hbone_config_ref(NULL));
}
END_TEST

struct log_lines {
    int count;
    char last[512];
};

static void collect_log(int level, const char *message, size_t len, void *user_data)
{
    struct log_lines *l = user_data;
    (void)level;
    l->count++;
    snprintf(l->last, sizeof(l->last), "%.*s", (int)len, message);
}

START_TEST(log_callback_hears_the_config)
{
    struct log_lines lines = {0, ""};
    hbone_config *cfg;
    ck_assert_int_eq(hbone_config_new(&cfg, NULL), 0);
    ck_assert_int_eq(hbone_config_set_log(cfg, collect_log, HBONE_LOG_INFO, &lines), 0);
    ck_assert_int_eq(hbone_config_set_log(cfg, collect_log, 9, &lines), HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(set_leaf(cfg, "server.chain.pem", "server.key"), 0);
    ck_assert_int_eq(lines.count, 1);
    ck_assert_str_eq(lines.last, "certificate set: spiffe://cluster.local/ns/default/sa/server");
    ck_assert_int_eq(hbone_config_set_log(cfg, collect_log, HBONE_LOG_WARN, &lines), 0);
    ck_assert_int_eq(set_leaf(cfg, "server.chain.pem", "server.key"), 0);
    ck_assert_int_eq(lines.count, 1); /* info is filtered out now */
    hbone_config_del(cfg);
}
END_TEST

START_TEST(timer_settings_are_checked)
{
    hbone_config *cfg;
    ck_assert_int_eq(hbone_config_new(&cfg, NULL), 0);
    ck_assert_int_eq(hbone_config_set_keepalive(cfg, 1000, 0), HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_config_set_keepalive(cfg, 0, 0), 0); /* keepalive off */
    ck_assert_int_eq(hbone_config_set_keepalive(cfg, 1000, 3000), 0);
    ck_assert_int_eq(hbone_config_set_handshake_timeout(cfg, 0), 0);
    ck_assert_int_eq(hbone_config_set_handshake_timeout(NULL, 0), HBONE_ERR_INVALID_ARGUMENT);
    hbone_config_del(cfg);
}
END_TEST

START_TEST(http2_settings_are_checked)
{
    hbone_config *cfg;
    ck_assert_int_eq(hbone_config_new(&cfg, NULL), 0);
    const uint32_t KiB = 1024, MiB = 1024 * 1024;
    ck_assert_int_eq(hbone_config_set_http2(cfg, 0, 16 * MiB, MiB, 200),
                     HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_config_set_http2(cfg, 4 * MiB, 2 * MiB, MiB, 200),
                     HBONE_ERR_INVALID_ARGUMENT); /* connection window below stream window */
    ck_assert_int_eq(hbone_config_set_http2(cfg, 4 * MiB, 0x80000000u, MiB, 200),
                     HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_config_set_http2(cfg, 4 * MiB, 16 * MiB, 16 * KiB - 1, 200),
                     HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_config_set_http2(cfg, 4 * MiB, 16 * MiB, 16 * MiB, 200),
                     HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_config_set_http2(cfg, 4 * MiB, 16 * MiB, MiB, 0),
                     HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_config_set_http2(cfg, 64 * KiB, 64 * KiB, 16 * KiB, 1), 0);
    ck_assert_int_eq(hbone_config_set_max_header_list_size(cfg, 0), HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_config_set_max_header_list_size(cfg, KiB - 1),
                     HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_config_set_max_header_list_size(cfg, 16 * MiB + 1),
                     HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_config_set_max_header_list_size(NULL, KiB), HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_config_set_max_header_list_size(cfg, KiB), 0);
    ck_assert_int_eq(hbone_config_set_max_header_list_size(cfg, 16 * MiB), 0);
    ck_assert_int_eq(hbone_config_set_hostname_authority(cfg, 2), HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_config_set_hostname_authority(cfg, 1), 0);
    hbone_config_del(cfg);
}
END_TEST

START_TEST(limits_are_checked)
{
    hbone_config *cfg;
    ck_assert_int_eq(hbone_config_new(&cfg, NULL), 0);
    const uint32_t KiB = 1024, MiB = 1024 * 1024;
    /* Buffers: a tunnel's from 16 KiB, the connection's from 64 KiB, both to 64 MiB. */
    ck_assert_int_eq(hbone_config_set_buffer_limits(cfg, 16 * KiB - 1, 256 * KiB),
                     HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_config_set_buffer_limits(cfg, 64 * MiB + 1, 256 * KiB),
                     HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_config_set_buffer_limits(cfg, 256 * KiB, 64 * KiB - 1),
                     HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_config_set_buffer_limits(cfg, 256 * KiB, 64 * MiB + 1),
                     HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_config_set_buffer_limits(NULL, 256 * KiB, 256 * KiB),
                     HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_config_set_buffer_limits(cfg, 16 * KiB, 64 * KiB), 0);
    ck_assert_int_eq(hbone_config_set_buffer_limits(cfg, 64 * MiB, 64 * MiB), 0);
    /* The flood budget: each from 1 to a million. */
    ck_assert_int_eq(hbone_config_set_flood_limit(cfg, 0, 33), HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_config_set_flood_limit(cfg, 1000, 0), HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_config_set_flood_limit(cfg, 1000001, 33), HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_config_set_flood_limit(cfg, 1000, 1000001), HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_config_set_flood_limit(NULL, 1000, 33), HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_config_set_flood_limit(cfg, 1, 1), 0);
    ck_assert_int_eq(hbone_config_set_flood_limit(cfg, 1000000, 1000000), 0);
    hbone_config_del(cfg);
}
END_TEST

START_TEST(null_arguments_are_refused)
{
    ck_assert_int_eq(hbone_config_new(NULL, NULL), HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_config_set_certificate(NULL, "", 0, "", 0), HBONE_ERR_INVALID_ARGUMENT);
    hbone_config *cfg;
    ck_assert_int_eq(hbone_config_new(&cfg, NULL), 0);
    ck_assert_int_eq(hbone_config_set_certificate(cfg, NULL, 0, "", 0), HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_config_accept_trust_domain(cfg, NULL, 3), HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(hbone_config_identity(NULL));
    ck_assert_str_eq(hbone_config_error_detail(NULL), "");
    hbone_config_del(cfg);
}
END_TEST

START_TEST(tls_library_reports_its_acceleration)
{
    const char *lib = hbone_tls_library();
    ck_assert_ptr_nonnull(strstr(lib, "wolfSSL"));
    int hw = hbone_tls_aes_hw_accelerated();
    ck_assert(hw == 0 || hw == 1);
    /* Hardware AES needs both the assembly build and a CPU with AES-NI. */
    FILE *f = fopen("/proc/cpuinfo", "r");
    int cpu_aes = 0;
    char line[4096];
    while (f && fgets(line, sizeof(line), f)) {
        if (strncmp(line, "flags", 5) == 0 && strstr(line, " aes "))
            cpu_aes = 1;
    }
    if (f)
        fclose(f);
    int asm_build = strstr(lib, "AES-NI") != NULL;
    ck_assert_int_eq(hw, asm_build && cpu_aes);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, certificate_sets_the_identity);
    tcase_add_loop_test(tc, bad_certificate_is_refused_and_changes_nothing, 0,
                        (int)(sizeof(bad_certificates) / sizeof(bad_certificates[0])));
    tcase_add_test(tc, lenient_mode_accepts_two_uris_for_the_own_leaf);
    tcase_add_test(tc, bundles_are_validated);
    tcase_add_test(tc, sessions_need_a_complete_config);
    tcase_add_test(tc, config_is_frozen_once_used);
    tcase_add_test(tc, sessions_keep_their_config_alive);
    tcase_add_test(tc, log_callback_hears_the_config);
    tcase_add_test(tc, null_arguments_are_refused);
    tcase_add_test(tc, timer_settings_are_checked);
    tcase_add_test(tc, http2_settings_are_checked);
    tcase_add_test(tc, limits_are_checked);
    tcase_add_test(tc, tls_library_reports_its_acceleration);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
