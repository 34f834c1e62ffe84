/* SPDX-License-Identifier: MIT */
/* CONNECT helpers: strict :authority parsing and formatting, the forwarded
 * and traceparent headers. */
#include <arpa/inet.h>
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hbone/hbone.h>

#include "connect/authority.h"
#include "testlib.h"

#define ANY_HOST HBONE_AUTHORITY_ALLOW_HOSTNAME

struct authority_case {
    const char *text;
    int flags;
    int expect;       /* 0 or HBONE_ERR_AUTHORITY */
    const char *host; /* when valid */
    unsigned port;
    int kind;
    size_t bad_offset; /* when invalid */
};

/* clang-format off */
static const struct authority_case authority_cases[] = {
    /* valid */
    {"10.0.0.2:8080", 0, 0, "10.0.0.2", 8080, HBONE_AUTHORITY_IPV4, 0},
    {"0.0.0.0:1", 0, 0, "0.0.0.0", 1, HBONE_AUTHORITY_IPV4, 0},
    {"255.255.255.255:65535", 0, 0, "255.255.255.255", 65535, HBONE_AUTHORITY_IPV4, 0},
    {"[fd00::2]:8080", 0, 0, "fd00::2", 8080, HBONE_AUTHORITY_IPV6, 0},
    {"[::1]:80", 0, 0, "::1", 80, HBONE_AUTHORITY_IPV6, 0},
    {"[::]:80", 0, 0, "::", 80, HBONE_AUTHORITY_IPV6, 0},
    {"[1:2:3:4:5:6:7:8]:80", 0, 0, "1:2:3:4:5:6:7:8", 80, HBONE_AUTHORITY_IPV6, 0},
    {"[1::8]:80", 0, 0, "1::8", 80, HBONE_AUTHORITY_IPV6, 0},
    {"[FD00:ABCD::]:80", 0, 0, "FD00:ABCD::", 80, HBONE_AUTHORITY_IPV6, 0},
    {"[::ffff:10.0.0.1]:443", 0, 0, "::ffff:10.0.0.1", 443, HBONE_AUTHORITY_IPV6, 0},
    {"[1:2:3:4:5:6:1.2.3.4]:443", 0, 0, "1:2:3:4:5:6:1.2.3.4", 443, HBONE_AUTHORITY_IPV6, 0},
    {"example.com:80", ANY_HOST, 0, "example.com", 80, HBONE_AUTHORITY_HOSTNAME, 0},
    {"reviews.bookinfo.svc.cluster.local:9080", ANY_HOST, 0, "reviews.bookinfo.svc.cluster.local",
     9080, HBONE_AUTHORITY_HOSTNAME, 0},
    {"a-b.c1:1", ANY_HOST, 0, "a-b.c1", 1, HBONE_AUTHORITY_HOSTNAME, 0},
    {"10.0.0.2:8080", ANY_HOST, 0, "10.0.0.2", 8080, HBONE_AUTHORITY_IPV4, 0},
    /* ports */
    {"10.0.0.2", 0, HBONE_ERR_AUTHORITY, NULL, 0, 0, 8},
    {"10.0.0.2:", 0, HBONE_ERR_AUTHORITY, NULL, 0, 0, 9},
    {"10.0.0.2:0", 0, HBONE_ERR_AUTHORITY, NULL, 0, 0, 9},
    {"10.0.0.2:65536", 0, HBONE_ERR_AUTHORITY, NULL, 0, 0, 9},
    {"10.0.0.2:080", 0, HBONE_ERR_AUTHORITY, NULL, 0, 0, 9},
    {"10.0.0.2:+80", 0, HBONE_ERR_AUTHORITY, NULL, 0, 0, 9},
    {"10.0.0.2:80 ", 0, HBONE_ERR_AUTHORITY, NULL, 0, 0, 9},
    {"10.0.0.2:8o", 0, HBONE_ERR_AUTHORITY, NULL, 0, 0, 9},
    {"10.0.0.2:123456", 0, HBONE_ERR_AUTHORITY, NULL, 0, 0, 9},
    {"[::1]", 0, HBONE_ERR_AUTHORITY, NULL, 0, 0, 5},
    {"[::1]80", 0, HBONE_ERR_AUTHORITY, NULL, 0, 0, 5},
    /* IPv4 */
    {"10.0.0:80", 0, HBONE_ERR_AUTHORITY, NULL, 0, 0, 6},
    {"10.0.0.2.1:80", 0, HBONE_ERR_AUTHORITY, NULL, 0, 0, 8},
    {"10.0.0.256:80", 0, HBONE_ERR_AUTHORITY, NULL, 0, 0, 7},
    {"10.0.0.02:80", 0, HBONE_ERR_AUTHORITY, NULL, 0, 0, 7},
    {"10.0.0.0x1:80", 0, HBONE_ERR_AUTHORITY, NULL, 0, 0, 8},
    {"167772162:80", 0, HBONE_ERR_AUTHORITY, NULL, 0, 0, 0},
    {" 10.0.0.2:80", 0, HBONE_ERR_AUTHORITY, NULL, 0, 0, 0},
    {":80", 0, HBONE_ERR_AUTHORITY, NULL, 0, 0, 0},
    /* IPv6 */
    {"fd00::2:80", 0, HBONE_ERR_AUTHORITY, NULL, 0, 0, 0},
    {"[fd00::2%eth0]:80", 0, HBONE_ERR_AUTHORITY, NULL, 0, 0, 8},
    {"[fd00::2%25eth0]:80", 0, HBONE_ERR_AUTHORITY, NULL, 0, 0, 8},
    {"[1::2::3]:80", 0, HBONE_ERR_AUTHORITY, NULL, 0, 0, 6},
    {"[1:2:3:4:5:6:7:8:9]:80", 0, HBONE_ERR_AUTHORITY, NULL, 0, 0, 1},
    {"[1:2:3:4:5:6:7]:80", 0, HBONE_ERR_AUTHORITY, NULL, 0, 0, 1},
    {"[12345::]:80", 0, HBONE_ERR_AUTHORITY, NULL, 0, 0, 1},
    {"[:1]:80", 0, HBONE_ERR_AUTHORITY, NULL, 0, 0, 1},
    {"[1:]:80", 0, HBONE_ERR_AUTHORITY, NULL, 0, 0, 2},
    {"[g::1]:80", 0, HBONE_ERR_AUTHORITY, NULL, 0, 0, 1},
    {"[::1.2.3]:80", 0, HBONE_ERR_AUTHORITY, NULL, 0, 0, 3},
    {"[]:80", 0, HBONE_ERR_AUTHORITY, NULL, 0, 0, 1},
    {"[::1:80", 0, HBONE_ERR_AUTHORITY, NULL, 0, 0, 7},
    {"[10.0.0.2]:80", 0, HBONE_ERR_AUTHORITY, NULL, 0, 0, 1},
    /* hostnames */
    {"example.com:80", 0, HBONE_ERR_AUTHORITY, NULL, 0, 0, 0},
    {"localhost:80", 0, HBONE_ERR_AUTHORITY, NULL, 0, 0, 0},
    {"example.com.:80", ANY_HOST, HBONE_ERR_AUTHORITY, NULL, 0, 0, 12},
    {"exa..mple:80", ANY_HOST, HBONE_ERR_AUTHORITY, NULL, 0, 0, 4},
    {"-example.com:80", ANY_HOST, HBONE_ERR_AUTHORITY, NULL, 0, 0, 0},
    {"example-.com:80", ANY_HOST, HBONE_ERR_AUTHORITY, NULL, 0, 0, 0},
    {"exam_ple.com:80", ANY_HOST, HBONE_ERR_AUTHORITY, NULL, 0, 0, 4},
    {"user@example.com:80", ANY_HOST, HBONE_ERR_AUTHORITY, NULL, 0, 0, 4},
    {"example.com/path:80", ANY_HOST, HBONE_ERR_AUTHORITY, NULL, 0, 0, 11},
    {"ex%41mple.com:80", ANY_HOST, HBONE_ERR_AUTHORITY, NULL, 0, 0, 2},
    {"1.2.3:80", ANY_HOST, HBONE_ERR_AUTHORITY, NULL, 0, 0, 0},
    {"999.1.1.1:80", ANY_HOST, HBONE_ERR_AUTHORITY, NULL, 0, 0, 0},
};
/* clang-format on */
#define N_AUTHORITY_CASES (sizeof(authority_cases) / sizeof(authority_cases[0]))

START_TEST(authority_table)
{
    const struct authority_case *c = &authority_cases[_i];
    const char *host = NULL;
    size_t host_len = 0, bad = 12345;
    uint16_t port = 0;
    int kind = 0;
    int r = hbone_authority_parse(c->text, strlen(c->text), c->flags, &host, &host_len, &port,
                                  &kind, &bad);
    ck_assert_msg(r == c->expect, "\"%s\": got %d, want %d (bad offset %zu)", c->text, r, c->expect,
                  bad);
    if (r < 0) {
        ck_assert_msg(bad == c->bad_offset, "\"%s\": bad offset %zu, want %zu", c->text, bad,
                      c->bad_offset);
        return;
    }
    ck_assert_msg(host_len == strlen(c->host) && memcmp(host, c->host, host_len) == 0,
                  "\"%s\": host \"%.*s\"", c->text, (int)host_len, host);
    ck_assert_uint_eq(port, c->port);
    ck_assert_int_eq(kind, c->kind);
    /* Formatting what was parsed gives the input back. */
    char out[HBONE_AUTHORITY_MAX];
    size_t out_len = 0;
    ck_assert_int_eq(hbone_authority_format(host, host_len, port, out, sizeof(out), &out_len), 0);
    ck_assert_str_eq(out, c->text);
    ck_assert_uint_eq(out_len, strlen(c->text));
}
END_TEST

START_TEST(address_checks_agree_with_inet_pton)
{
    /* An independent oracle for the address grammar: the C library. */
    static const char *const inputs[] = {
        "1.2.3.4",
        "01.2.3.4",
        "1.2.3",
        "256.1.1.1",
        "::",
        "::1",
        "1::",
        "1:2:3:4:5:6:7:8",
        "1:2:3:4:5:6:7::",
        "::ffff:1.2.3.4",
        "1::2::3",
        ":1",
        "1:",
        "12345::",
        "fe80::1%1",
        "::1.2.3.4",
        "1.2.3.4::",
        "a:b:c:d:e:f:1.2.3.4",
        "0:0:0:0:0:0:0:0:0",
        "",
    };
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        const char *s = inputs[i];
        unsigned char addr[16];
        int v4 = inet_pton(AF_INET, s, addr) == 1, v6 = inet_pton(AF_INET6, s, addr) == 1;
        ck_assert_msg((hb_ipv4_valid(s, strlen(s), NULL) == 0) == v4, "ipv4 \"%s\"", s);
        ck_assert_msg((hb_ipv6_valid(s, strlen(s), NULL) == 0) == v6, "ipv6 \"%s\"", s);
    }
}
END_TEST

START_TEST(hostname_limits)
{
    char name[300];
    memset(name, 'a', sizeof(name));
    /* 63-byte labels are fine, 64 are not; 253 bytes in all, not 254. */
    ck_assert_int_eq(hb_hostname_valid(name, 63, NULL), 0);
    ck_assert_int_eq(hb_hostname_valid(name, 64, NULL), HBONE_ERR_AUTHORITY);
    for (size_t i = 63; i < sizeof(name); i += 64)
        name[i] = '.';
    ck_assert_int_eq(hb_hostname_valid(name, 253, NULL), 0);
    size_t bad = 0;
    ck_assert_int_eq(hb_hostname_valid(name, 254, &bad), HBONE_ERR_AUTHORITY);
    ck_assert_uint_eq(bad, 253);
    ck_assert_int_eq(hb_hostname_valid(name, 0, NULL), HBONE_ERR_AUTHORITY);
}
END_TEST

START_TEST(authority_arguments)
{
    uint16_t port;
    ck_assert_int_eq(hbone_authority_parse(NULL, 0, 0, NULL, NULL, &port, NULL, NULL),
                     HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_authority_parse("1.2.3.4:5", 9, 0x8, NULL, NULL, &port, NULL, NULL),
                     HBONE_ERR_INVALID_ARGUMENT);
    /* Every output is optional. */
    ck_assert_int_eq(hbone_authority_parse("1.2.3.4:5", 9, 0, NULL, NULL, NULL, NULL, NULL), 0);
    /* The length is the caller's: a prefix of a valid authority is parsed alone. */
    ck_assert_int_eq(hbone_authority_parse("1.2.3.4:56", 9, 0, NULL, NULL, &port, NULL, NULL), 0);
    ck_assert_uint_eq(port, 5);
    char out[HBONE_AUTHORITY_MAX];
    ck_assert_int_eq(hbone_authority_format("1.2.3.4", 7, 0, out, sizeof(out), NULL),
                     HBONE_ERR_AUTHORITY);
    ck_assert_str_eq(out, "");
    ck_assert_int_eq(hbone_authority_format("1.2.3.4 ", 8, 80, out, sizeof(out), NULL),
                     HBONE_ERR_AUTHORITY);
    ck_assert_int_eq(hbone_authority_format("1.2.3.4", 7, 80, out, 10, NULL),
                     HBONE_ERR_BUFFER_TOO_SMALL);
    ck_assert_int_eq(hbone_authority_format("1.2.3.4", 7, 80, out, 11, NULL), 0);
    ck_assert_str_eq(out, "1.2.3.4:80");
    ck_assert_int_eq(hbone_authority_format("1.2.3.4", 7, 80, NULL, 11, NULL),
                     HBONE_ERR_INVALID_ARGUMENT);
}
END_TEST

struct forwarded_case {
    const char *ip;
    unsigned port;
    const char *host;
    int expect;
    const char *text;
};

/* clang-format off */
static const struct forwarded_case forwarded_cases[] = {
    {"127.0.0.1", 80, NULL, 0, "for=\"127.0.0.1:80\""},
    {"::1", 80, NULL, 0, "for=\"[::1]:80\""},
    {"127.0.0.1", 80, "example.com", 0, "for=\"127.0.0.1:80\";host=example.com"},
    {"fd00::2", 54321, "reviews.bookinfo.svc.cluster.local", 0,
     "for=\"[fd00::2]:54321\";host=reviews.bookinfo.svc.cluster.local"},
    {"example.com", 80, NULL, HBONE_ERR_AUTHORITY, ""},
    {"127.0.0.1", 0, NULL, HBONE_ERR_AUTHORITY, ""},
    {"127.0.0.1", 80, "bad host", HBONE_ERR_AUTHORITY, ""},
    {"127.0.0.1", 80, "a\";for=\"6.6.6.6", HBONE_ERR_AUTHORITY, ""},
    {"fe80::1%eth0", 80, NULL, HBONE_ERR_AUTHORITY, ""},
};
/* clang-format on */
#define N_FORWARDED_CASES (sizeof(forwarded_cases) / sizeof(forwarded_cases[0]))

START_TEST(forwarded_table)
{
    const struct forwarded_case *c = &forwarded_cases[_i];
    char out[200];
    size_t len = 999;
    int r = hbone_forwarded_format(c->ip, strlen(c->ip), (uint16_t)c->port, c->host,
                                   c->host ? strlen(c->host) : 0, out, sizeof(out), &len);
    ck_assert_msg(r == c->expect, "%s: got %d, want %d", c->ip, r, c->expect);
    ck_assert_str_eq(out, c->text);
    if (r == 0)
        ck_assert_uint_eq(len, strlen(c->text));
}
END_TEST

START_TEST(forwarded_needs_room)
{
    static const char want[] = "for=\"[::1]:80\";host=a";
    char out[sizeof(want)];
    for (size_t cap = 1; cap < sizeof(want); cap++) {
        ck_assert_int_eq(hbone_forwarded_format("::1", 3, 80, "a", 1, out, cap, NULL),
                         HBONE_ERR_BUFFER_TOO_SMALL);
        ck_assert_str_eq(out, "");
    }
    ck_assert_int_eq(hbone_forwarded_format("::1", 3, 80, "a", 1, out, sizeof(out), NULL), 0);
    ck_assert_str_eq(out, want);
    ck_assert_int_eq(hbone_forwarded_format(NULL, 0, 80, NULL, 0, out, sizeof(out), NULL),
                     HBONE_ERR_INVALID_ARGUMENT);
}
END_TEST

START_TEST(traceparent_from_given_ids)
{
    static const uint8_t trace[16] = {0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6,
                                      0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36};
    static const uint8_t parent[8] = {0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7};
    char out[HBONE_TRACEPARENT_LEN + 1];
    ck_assert_int_eq(hbone_traceparent_format(trace, parent, out, sizeof(out)), 0);
    ck_assert_str_eq(out, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
    ck_assert_int_eq(hbone_traceparent_format(trace, parent, out, sizeof(out) - 1),
                     HBONE_ERR_BUFFER_TOO_SMALL);
    static const uint8_t zero[16] = {0};
    ck_assert_int_eq(hbone_traceparent_format(zero, parent, out, sizeof(out)),
                     HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_traceparent_format(trace, zero, out, sizeof(out)),
                     HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_traceparent_format(trace, NULL, out, sizeof(out)),
                     HBONE_ERR_INVALID_ARGUMENT);
}
END_TEST

static void check_traceparent_shape(const char *s)
{
    ck_assert_uint_eq(strlen(s), HBONE_TRACEPARENT_LEN);
    ck_assert_int_eq(strncmp(s, "00-", 3), 0);
    ck_assert_int_eq(s[35], '-');
    ck_assert_int_eq(strcmp(s + 52, "-00"), 0);
    for (size_t i = 3; i < 52; i++) {
        if (i == 35)
            continue;
        ck_assert_msg(strchr("0123456789abcdef", s[i]) != NULL, "byte %zu of %s", i, s);
    }
}

START_TEST(traceparent_random_ids_differ)
{
    char a[HBONE_TRACEPARENT_LEN + 1], b[HBONE_TRACEPARENT_LEN + 1];
    ck_assert_int_eq(hbone_traceparent_format(NULL, NULL, a, sizeof(a)), 0);
    ck_assert_int_eq(hbone_traceparent_format(NULL, NULL, b, sizeof(b)), 0);
    check_traceparent_shape(a);
    check_traceparent_shape(b);
    /* 192 random bits: equal values mean the randomness is broken. */
    ck_assert_str_ne(a, b);
}
END_TEST

START_TEST(baggage_as_ztunnel_writes_it)
{
    static const char *const keys[] = {HBONE_BAGGAGE_CLUSTER,    HBONE_BAGGAGE_NAMESPACE,
                                       HBONE_BAGGAGE_DEPLOYMENT, HBONE_BAGGAGE_SERVICE,
                                       HBONE_BAGGAGE_VERSION,    HBONE_BAGGAGE_REGION};
    static const char *const values[] = {"Kubernetes",  "default", "productpage-v1",
                                         "productpage", "v1",      ""};
    size_t key_lens[6], value_lens[6];
    for (int i = 0; i < 6; i++) {
        key_lens[i] = strlen(keys[i]);
        value_lens[i] = strlen(values[i]);
    }
    char out[256];
    size_t len = 0;
    ck_assert_int_eq(
        hbone_baggage_format(keys, key_lens, values, value_lens, 6, out, sizeof(out), &len), 0);
    /* Empty values are left out; order is kept; no encoding. */
    ck_assert_str_eq(out, "k8s.cluster.name=Kubernetes,k8s.namespace.name=default,"
                          "k8s.deployment.name=productpage-v1,service.name=productpage,"
                          "service.version=v1");
    ck_assert_uint_eq(len, strlen(out));
    /* Reading it back, as a server does for telemetry. */
    const char *v;
    size_t v_len;
    ck_assert_int_eq(hbone_baggage_get(out, len, "service.name", 12, &v, &v_len), 0);
    ck_assert_int_eq(v_len, 11);
    ck_assert_int_eq(memcmp(v, "productpage", 11), 0);
    ck_assert_int_eq(hbone_baggage_get(out, len, "cloud.region", 12, &v, &v_len),
                     HBONE_ERR_NOT_FOUND);
    ck_assert_int_eq(hbone_baggage_get(out, len, "service", 7, &v, &v_len), HBONE_ERR_NOT_FOUND);
    /* Nothing at all is a valid (empty) value. */
    ck_assert_int_eq(hbone_baggage_format(NULL, NULL, NULL, NULL, 0, out, sizeof(out), &len), 0);
    ck_assert_str_eq(out, "");
    ck_assert_uint_eq(len, 0);
}
END_TEST

START_TEST(baggage_refuses_injection_and_small_buffers)
{
    static const char *const bad_values[] = {"a,b=c", "a b", "a;b", "a\"b", "a\\b", "\x01"};
    const char *key = "service.name";
    size_t key_len = strlen(key);
    char out[64];
    for (size_t i = 0; i < sizeof(bad_values) / sizeof(bad_values[0]); i++) {
        size_t value_len = strlen(bad_values[i]);
        ck_assert_msg(hbone_baggage_format(&key, &key_len, &bad_values[i], &value_len, 1, out,
                                           sizeof(out), NULL) == HBONE_ERR_INVALID_ARGUMENT,
                      "value %zu accepted", i);
        ck_assert_str_eq(out, "");
    }
    const char *bad_key = "service name", *value = "x";
    size_t bad_key_len = strlen(bad_key), value_len = 1;
    ck_assert_int_eq(
        hbone_baggage_format(&bad_key, &bad_key_len, &value, &value_len, 1, out, sizeof(out), NULL),
        HBONE_ERR_INVALID_ARGUMENT);
    /* "service.name=x" needs 15 bytes with its NUL. */
    ck_assert_int_eq(hbone_baggage_format(&key, &key_len, &value, &value_len, 1, out, 14, NULL),
                     HBONE_ERR_BUFFER_TOO_SMALL);
    ck_assert_int_eq(hbone_baggage_format(&key, &key_len, &value, &value_len, 1, out, 15, NULL), 0);
    ck_assert_str_eq(out, "service.name=x");
}
END_TEST

START_TEST(baggage_is_read_like_ztunnel)
{
    static const char b[] = "a=1,b=,c=3=4,,d,k8s.pod.name=p1";
    const char *v;
    size_t n;
    ck_assert_int_eq(hbone_baggage_get(b, sizeof(b) - 1, "a", 1, &v, &n), 0);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(hbone_baggage_get(b, sizeof(b) - 1, "b", 1, &v, &n), HBONE_ERR_NOT_FOUND);
    ck_assert_int_eq(hbone_baggage_get(b, sizeof(b) - 1, "c", 1, &v, &n), 0);
    ck_assert_int_eq(n, 1); /* after a second '=' nothing counts */
    ck_assert_int_eq(v[0], '3');
    ck_assert_int_eq(hbone_baggage_get(b, sizeof(b) - 1, "d", 1, &v, &n), HBONE_ERR_NOT_FOUND);
    ck_assert_int_eq(hbone_baggage_get(b, sizeof(b) - 1, "k8s.pod.name", 12, &v, &n), 0);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(hbone_baggage_get("", 0, "a", 1, &v, &n), HBONE_ERR_NOT_FOUND);
    ck_assert_int_eq(hbone_baggage_get(NULL, 3, "a", 1, &v, &n), HBONE_ERR_INVALID_ARGUMENT);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("connect");
    TCase *authority = tcase_create("authority");
    tcase_add_loop_test(authority, authority_table, 0, (int)N_AUTHORITY_CASES);
    tcase_add_test(authority, address_checks_agree_with_inet_pton);
    tcase_add_test(authority, hostname_limits);
    tcase_add_test(authority, authority_arguments);
    suite_add_tcase(s, authority);
    TCase *headers = tcase_create("headers");
    tcase_add_loop_test(headers, forwarded_table, 0, (int)N_FORWARDED_CASES);
    tcase_add_test(headers, forwarded_needs_room);
    tcase_add_test(headers, traceparent_from_given_ids);
    tcase_add_test(headers, traceparent_random_ids_differ);
    tcase_add_test(headers, baggage_as_ztunnel_writes_it);
    tcase_add_test(headers, baggage_refuses_injection_and_small_buffers);
    tcase_add_test(headers, baggage_is_read_like_ztunnel);
    suite_add_tcase(s, headers);
    return tl_run_suite(s);
}
