/* SPDX-License-Identifier: MIT */
/* Error codes, strerror, the fatal threshold, version and logging basics. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <hbone/hbone.h>

#include "testlib.h"

#include "common/log.h"

static const int all_codes[] = {
    HBONE_ERR_INVALID_ARGUMENT,
    HBONE_ERR_AGAIN,
    HBONE_ERR_BUFFER_TOO_SMALL,
    HBONE_ERR_INVALID_STATE,
    HBONE_ERR_CONFIG_FROZEN,
    HBONE_ERR_NOT_FOUND,
    HBONE_ERR_LIMIT,
    HBONE_ERR_PROTOCOL,
    HBONE_ERR_CLOSED,
    HBONE_ERR_AUTHORITY,
    HBONE_ERR_TLS_HANDSHAKE,
    HBONE_ERR_TLS_VERSION,
    HBONE_ERR_TLS_ALPN,
    HBONE_ERR_TLS_NO_PEER_CERT,
    HBONE_ERR_TLS_CERT_UNTRUSTED,
    HBONE_ERR_TLS_CERT_EXPIRED,
    HBONE_ERR_TLS_CERT_NOT_YET_VALID,
    HBONE_ERR_TLS_CERT_INVALID,
    HBONE_ERR_TLS_ALERT,
    HBONE_ERR_TLS_RECORD,
    HBONE_ERR_TLS_CHAIN_TOO_LONG,
    HBONE_ERR_TLS_MESSAGE_TOO_LARGE,
    HBONE_ERR_SPIFFE_SCHEME,
    HBONE_ERR_SPIFFE_TRUST_DOMAIN_EMPTY,
    HBONE_ERR_SPIFFE_TRUST_DOMAIN_CHAR,
    HBONE_ERR_SPIFFE_TRUST_DOMAIN_TOO_LONG,
    HBONE_ERR_SPIFFE_PATH_CHAR,
    HBONE_ERR_SPIFFE_PATH_EMPTY_SEGMENT,
    HBONE_ERR_SPIFFE_PATH_DOT_SEGMENT,
    HBONE_ERR_SPIFFE_PATH_TRAILING_SLASH,
    HBONE_ERR_SPIFFE_TOO_LONG,
    HBONE_ERR_SPIFFE_NOT_ISTIO,
    HBONE_ERR_SVID_MALFORMED,
    HBONE_ERR_SVID_NO_URI_SAN,
    HBONE_ERR_SVID_MULTIPLE_URI_SANS,
    HBONE_ERR_SVID_URI_INVALID,
    HBONE_ERR_SVID_CA,
    HBONE_ERR_SVID_KEY_USAGE,
    HBONE_ERR_SVID_EXT_KEY_USAGE,
    HBONE_ERR_ID_MISMATCH,
    HBONE_ERR_ID_TRUST_DOMAIN,
    HBONE_ERR_ID_BUNDLE,
    HBONE_ERR_PEM,
    HBONE_ERR_KEY,
    HBONE_ERR_NO_CERTIFICATE,
    HBONE_ERR_NO_TRUST_BUNDLE,
    HBONE_ERR_TIMEOUT,
    HBONE_ERR_IO,
    HBONE_ERR_NOMEM,
    HBONE_ERR_INTERNAL,
};
#define N_CODES (sizeof(all_codes) / sizeof(all_codes[0]))

START_TEST(every_code_has_its_own_text)
{
    const char *unknown = hbone_strerror(-12345);
    ck_assert_str_eq(unknown, "unknown error");
    for (size_t i = 0; i < N_CODES; i++) {
        const char *text = hbone_strerror(all_codes[i]);
        ck_assert_msg(strcmp(text, unknown) != 0, "code %d has no text", all_codes[i]);
        for (size_t j = 0; j < i; j++) {
            ck_assert_msg(all_codes[i] != all_codes[j], "code %d listed twice", all_codes[i]);
            ck_assert_msg(strcmp(text, hbone_strerror(all_codes[j])) != 0,
                          "codes %d and %d share a text", all_codes[i], all_codes[j]);
        }
    }
    ck_assert_str_eq(hbone_strerror(HBONE_OK), "success");
}
END_TEST

START_TEST(fatal_threshold_splits_usage_from_the_rest)
{
    ck_assert_int_eq(hbone_err_is_fatal(HBONE_OK), 0);
    ck_assert_int_eq(hbone_err_is_fatal(HBONE_ERR_AGAIN), 0);
    ck_assert_int_eq(hbone_err_is_fatal(HBONE_ERR_INVALID_ARGUMENT), 0);
    ck_assert_int_eq(hbone_err_is_fatal(HBONE_ERR_CONFIG_FROZEN), 0);
    ck_assert_int_eq(hbone_err_is_fatal(HBONE_ERR_TLS_HANDSHAKE), 1);
    ck_assert_int_eq(hbone_err_is_fatal(HBONE_ERR_ID_MISMATCH), 1);
    ck_assert_int_eq(hbone_err_is_fatal(HBONE_ERR_NOMEM), 1);
    /* Codes are grouped by hundreds and every usage code is above the line. */
    for (size_t i = 0; i < N_CODES; i++) {
        int fatal = hbone_err_is_fatal(all_codes[i]);
        ck_assert_int_eq(fatal, all_codes[i] <= -200);
    }
}
END_TEST

START_TEST(version_matches_the_header)
{
    ck_assert_str_eq(hbone_version_string(), HBONE_VERSION);
    ck_assert_uint_eq(hbone_version_number(), HBONE_VERSION_NUM);
    ck_assert_uint_eq(HBONE_VERSION_NUM >> 16, HBONE_VERSION_MAJOR);
}
END_TEST

struct log_capture {
    int calls;
    int level;
    char text[600];
    size_t len;
};

static void capture(int level, const char *message, size_t len, void *user_data)
{
    struct log_capture *c = user_data;
    c->calls++;
    c->level = level;
    c->len = len;
    ck_assert_uint_eq(strlen(message), len);
    memcpy(c->text, message, len + 1);
}

START_TEST(log_filters_by_level_and_truncates)
{
    struct log_capture c = {0};
    hb_logger log = {capture, HBONE_LOG_INFO, &c};
    hb_log(&log, HBONE_LOG_DEBUG, "hidden %d", 1);
    ck_assert_int_eq(c.calls, 0);
    hb_log(&log, HBONE_LOG_WARN, "shown %d", 2);
    ck_assert_int_eq(c.calls, 1);
    ck_assert_int_eq(c.level, HBONE_LOG_WARN);
    ck_assert_str_eq(c.text, "shown 2");
    char big[2000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    hb_log(&log, HBONE_LOG_ERROR, "%s", big);
    ck_assert_int_eq(c.calls, 2);
    ck_assert_uint_lt(c.len, sizeof(big) - 1);
    ck_assert_uint_gt(c.len, 100);
    hb_logger silent = {NULL, HBONE_LOG_DEBUG, NULL};
    hb_log(&silent, HBONE_LOG_ERROR, "nobody listens");
    ck_assert_str_eq(hbone_log_level_name(HBONE_LOG_WARN), "warn");
    ck_assert_str_eq(hbone_log_level_name(42), "?");
}
END_TEST

START_TEST(detail_returns_its_code)
{
    hb_detail d;
    ck_assert_int_eq(hb_detail_set(&d, HBONE_ERR_ID_MISMATCH, "peer %s", "x"),
                     HBONE_ERR_ID_MISMATCH);
    ck_assert_str_eq(d.text, "peer x");
    hb_detail_clear(&d);
    ck_assert_str_eq(d.text, "");
}
END_TEST

START_TEST(mem_new_rejects_missing_functions)
{
    hbone_mem *mem = NULL;
    ck_assert_int_eq(hbone_mem_new(&mem, NULL, NULL, NULL, NULL, NULL), HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(mem);
    hbone_mem_del(NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("errors");
    TCase *tc = tcase_create("basics");
    tcase_add_test(tc, every_code_has_its_own_text);
    tcase_add_test(tc, fatal_threshold_splits_usage_from_the_rest);
    tcase_add_test(tc, version_matches_the_header);
    tcase_add_test(tc, log_filters_by_level_and_truncates);
    tcase_add_test(tc, detail_returns_its_code);
    tcase_add_test(tc, mem_new_rejects_missing_functions);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
