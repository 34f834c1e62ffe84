/* SPDX-License-Identifier: MIT */
/* SPIFFE ID validation and parsing, Istio identities, copies and allocators. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <hbone/hbone.h>

#include "testlib.h"

/* A value no real offset takes, to see whether bad_offset was written. */
#define UNSET ((size_t)-1)

/* Check @p id's accessors against the expected whole string, trust domain and path. */
static void check_accessors(const char *name, const hbone_spiffe_id *id, const char *str,
                            size_t len, const char *td, size_t td_len, const char *path,
                            size_t path_len)
{
    size_t got_len = UNSET;
    const char *s = hbone_spiffe_id_str(id, &got_len);
    ck_assert_msg(s != NULL, "%s: no string", name);
    ck_assert_msg(got_len == len, "%s: length %zu, want %zu", name, got_len, len);
    ck_assert_msg(memcmp(s, str, len) == 0, "%s: string differs", name);
    ck_assert_msg(s[len] == '\0', "%s: string not NUL-terminated", name);
    ck_assert_msg(s != str, "%s: the ID points into the caller's buffer", name);
    ck_assert_msg(hbone_spiffe_id_str(id, NULL) == s, "%s: str(NULL len) differs", name);

    got_len = UNSET;
    const char *t = hbone_spiffe_id_trust_domain(id, &got_len);
    ck_assert_msg(got_len == td_len, "%s: trust domain length %zu, want %zu", name, got_len,
                  td_len);
    ck_assert_msg(memcmp(t, td, td_len) == 0, "%s: trust domain differs", name);
    ck_assert_msg(t == s + strlen("spiffe://"), "%s: trust domain not inside the ID", name);

    got_len = UNSET;
    const char *p = hbone_spiffe_id_path(id, &got_len);
    ck_assert_msg(got_len == path_len, "%s: path length %zu, want %zu", name, got_len, path_len);
    ck_assert_msg(memcmp(p, path, path_len) == 0, "%s: path differs", name);
    ck_assert_msg(p == t + td_len, "%s: path does not follow the trust domain", name);
}

/*
 * Validate and parse one input; expect either success (with the given trust
 * domain and path) or the given error at the given offset.
 */
static void check_one(const char *name, const char *str, size_t len, int expect, size_t bad,
                      const char *td, size_t td_len, const char *path, size_t path_len)
{
    size_t off = UNSET;
    int r = hbone_spiffe_id_validate(str, len, &off);
    ck_assert_msg(r == expect, "%s: validate gave %d (%s), want %d (%s)", name, r,
                  hbone_strerror(r), expect, hbone_strerror(expect));
    if (expect < 0)
        ck_assert_msg(off == bad, "%s: bad_offset %zu, want %zu", name, off, bad);

    r = hbone_spiffe_id_validate(str, len, NULL);
    ck_assert_msg(r == expect, "%s: validate without bad_offset gave %d", name, r);

    hbone_spiffe_id *id = (hbone_spiffe_id *)&off; /* must be overwritten */
    r = hbone_spiffe_id_parse(&id, str, len, NULL);
    ck_assert_msg(r == expect, "%s: parse gave %d (%s), want %d (%s)", name, r, hbone_strerror(r),
                  expect, hbone_strerror(expect));
    if (expect < 0) {
        ck_assert_msg(id == NULL, "%s: parse failed but left an ID", name);
        return;
    }
    check_accessors(name, id, str, len, td, td_len, path, path_len);
    hbone_spiffe_id_del(id);
}

/* ------------------------------------------------------------------------ */
/* Literal inputs                                                            */

struct id_case {
    const char *name;
    const char *str;
    size_t len; /* 0: strlen(str) */
    int expect;
    size_t bad_offset; /* when expect < 0 */
    const char *td;    /* when expect == 0 */
    const char *path;
};

/* clang-format off */
#define VALID(name, td, path) {name, "spiffe://" td path, 0, 0, 0, td, path}
#define INVALID(name, str, code, off) {name, str, 0, HBONE_ERR_SPIFFE_##code, off, NULL, NULL}
/* For inputs with a NUL inside: the length comes from the literal. */
#define INVALID_N(name, str, code, off) \
    {name, str, sizeof(str) - 1, HBONE_ERR_SPIFFE_##code, off, NULL, NULL}
/* clang-format on */

static const struct id_case id_cases[] = {
    VALID("trust domain only", "td", ""),
    VALID("one-character trust domain", "a", ""),
    VALID("Istio workload", "cluster.local", "/ns/default/sa/client"),
    VALID("every trust domain character", "abcdefghijklmnopqrstuvwxyz0123456789._-", ""),
    VALID("trust domain of punctuation only", "._-", ""),
    VALID("IPv4-looking trust domain", "10.0.0.1", "/x"),
    VALID("every path character", "td",
          "/abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"),
    VALID("uppercase in the path", "td", "/NS/Default"),
    VALID("segment starting with a dot", "td", "/.a"),
    VALID("segment of three dots", "td", "/..."),
    VALID("segment ending with a dot", "td", "/a."),
    VALID("segment starting with two dots", "td", "/..a"),
    VALID("dotted segments inside a path", "td", "/a/.b/c../d"),
    VALID("one-character segments", "td", "/a/b/c/-/_"),

    INVALID("uppercase scheme", "SPIFFE://td/a", SCHEME, 0),
    INVALID("mixed-case scheme", "Spiffe://td", SCHEME, 0),
    INVALID("https scheme", "https://td/a", SCHEME, 0),
    INVALID("one slash after the scheme", "spiffe:/td/a", SCHEME, 0),
    INVALID("scheme with one slash only", "spiffe:/", SCHEME, 0),
    INVALID("scheme without slashes", "spiffe:", SCHEME, 0),
    INVALID("no scheme separator", "spiffe", SCHEME, 0),
    INVALID("empty string", "", SCHEME, 0),
    INVALID("leading space", " spiffe://td", SCHEME, 0),
    INVALID("no scheme at all", "td/ns/a", SCHEME, 0),
    INVALID_N("NUL inside the scheme", "spiffe:\0//td", SCHEME, 0),

    INVALID("empty trust domain", "spiffe://", TRUST_DOMAIN_EMPTY, 9),
    INVALID("empty trust domain before a path", "spiffe:///ns/a", TRUST_DOMAIN_EMPTY, 9),

    INVALID("uppercase trust domain", "spiffe://Example.org", TRUST_DOMAIN_CHAR, 9),
    INVALID("uppercase later in the trust domain", "spiffe://example.Org/a", TRUST_DOMAIN_CHAR, 17),
    INVALID("port", "spiffe://td:443/a", TRUST_DOMAIN_CHAR, 11),
    INVALID("port, no path", "spiffe://td:443", TRUST_DOMAIN_CHAR, 11),
    INVALID("userinfo", "spiffe://user@td/a", TRUST_DOMAIN_CHAR, 13),
    INVALID("userinfo with password", "spiffe://user:pw@td", TRUST_DOMAIN_CHAR, 13),
    INVALID("percent-encoding in the trust domain", "spiffe://t%41d/a", TRUST_DOMAIN_CHAR, 10),
    INVALID("query after the trust domain", "spiffe://td?x", TRUST_DOMAIN_CHAR, 11),
    INVALID("fragment after the trust domain", "spiffe://td#x", TRUST_DOMAIN_CHAR, 11),
    INVALID("space in the trust domain", "spiffe://t d", TRUST_DOMAIN_CHAR, 10),
    INVALID("trailing space after the trust domain", "spiffe://td ", TRUST_DOMAIN_CHAR, 11),
    INVALID("non-ASCII in the trust domain", "spiffe://caf\xc3\xa9.org/a", TRUST_DOMAIN_CHAR, 12),
    INVALID_N("NUL inside the trust domain", "spiffe://td\0evil/a", TRUST_DOMAIN_CHAR, 11),
    INVALID("backslash in the trust domain", "spiffe://td\\a", TRUST_DOMAIN_CHAR, 11),
    INVALID("IPv6 literal", "spiffe://[::1]/a", TRUST_DOMAIN_CHAR, 9),

    INVALID("percent-encoding in the path", "spiffe://td/a%41b", PATH_CHAR, 13),
    INVALID("query in the path", "spiffe://td/a?x", PATH_CHAR, 13),
    INVALID("fragment in the path", "spiffe://td/a#x", PATH_CHAR, 13),
    INVALID("query right after the slash", "spiffe://td/?x", PATH_CHAR, 12),
    INVALID("space in the path", "spiffe://td/a b", PATH_CHAR, 13),
    INVALID("newline ending the path", "spiffe://td/a\n", PATH_CHAR, 13),
    INVALID("non-ASCII in the path", "spiffe://td/caf\xc3\xa9", PATH_CHAR, 15),
    INVALID_N("NUL inside the path", "spiffe://td/a\0b", PATH_CHAR, 13),
    INVALID_N("NUL ending the path", "spiffe://td/a\0", PATH_CHAR, 13),
    INVALID("tilde in the path", "spiffe://td/~x", PATH_CHAR, 12),
    INVALID("plus in the path", "spiffe://td/a+b", PATH_CHAR, 13),
    INVALID("colon in the path", "spiffe://td/a:b", PATH_CHAR, 13),
    INVALID("at sign in the path", "spiffe://td/a@b", PATH_CHAR, 13),
    INVALID("semicolon in the path", "spiffe://td/a;b", PATH_CHAR, 13),

    INVALID("empty segment", "spiffe://td/a//b", PATH_EMPTY_SEGMENT, 13),
    INVALID("empty first segment", "spiffe://td//a", PATH_EMPTY_SEGMENT, 11),
    INVALID("empty segment before the end", "spiffe://td/a//", PATH_EMPTY_SEGMENT, 13),

    INVALID("dot segment", "spiffe://td/a/./b", PATH_DOT_SEGMENT, 14),
    INVALID("dot-dot segment", "spiffe://td/a/../b", PATH_DOT_SEGMENT, 14),
    INVALID("path of one dot", "spiffe://td/.", PATH_DOT_SEGMENT, 12),
    INVALID("path of two dots", "spiffe://td/..", PATH_DOT_SEGMENT, 12),
    INVALID("dot-dot as the last segment", "spiffe://td/ns/..", PATH_DOT_SEGMENT, 15),

    INVALID("trailing slash", "spiffe://td/a/", PATH_TRAILING_SLASH, 13),
    INVALID("trailing slash after the trust domain", "spiffe://td/", PATH_TRAILING_SLASH, 11),
    INVALID("trailing slash after an Istio path", "spiffe://td/ns/a/sa/b/", PATH_TRAILING_SLASH,
            21),
};
#define N_ID_CASES (sizeof(id_cases) / sizeof(id_cases[0]))

START_TEST(validate_and_parse_table)
{
    const struct id_case *c = &id_cases[_i];
    size_t len = c->len ? c->len : strlen(c->str);
    if (c->expect < 0) {
        ck_assert_msg(c->bad_offset <= len, "%s: offset outside the input", c->name);
        check_one(c->name, c->str, len, c->expect, c->bad_offset, NULL, 0, NULL, 0);
    } else {
        check_one(c->name, c->str, len, 0, 0, c->td, strlen(c->td), c->path, strlen(c->path));
    }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Inputs at the length limits                                               */

/* "spiffe://" + td_fill repeated to td_len + "/" + path_fill repeated to path_len - 1. */
struct long_case {
    const char *name;
    const char *td_fill;
    size_t td_len;
    const char *path_fill;
    size_t path_len; /* 0: no path */
    int expect;
    size_t bad_offset;
};

static const struct long_case long_cases[] = {
    {"255-byte trust domain", "a", 255, "", 0, 0, 0},
    {"255-byte trust domain of every allowed character", "abcdefghijklmnopqrstuvwxyz0123456789._-",
     255, "", 0, 0, 0},
    {"256-byte trust domain", "a", 256, "", 0, HBONE_ERR_SPIFFE_TRUST_DOMAIN_TOO_LONG, 264},
    {"256-byte trust domain with a path", "a", 256, "p", 2, HBONE_ERR_SPIFFE_TRUST_DOMAIN_TOO_LONG,
     264},
    {"1000-byte trust domain", "b", 1000, "", 0, HBONE_ERR_SPIFFE_TRUST_DOMAIN_TOO_LONG, 264},
    {"2048-byte ID, one long segment", "td", 2, "x", 2048 - 11, 0, 0},
    {"2048-byte ID of short segments", "td", 2, "ab/", 2048 - 11, 0, 0},
    {"2048-byte ID with a 255-byte trust domain", "c", 255, "p", 2048 - 9 - 255, 0, 0},
    {"2049-byte ID, one long segment", "td", 2, "x", 2049 - 11, HBONE_ERR_SPIFFE_TOO_LONG, 2048},
    {"2049-byte ID of short segments", "td", 2, "abcd/", 2049 - 11, HBONE_ERR_SPIFFE_TOO_LONG,
     2048},
    {"2049-byte ID with a 255-byte trust domain", "c", 255, "p", 2049 - 9 - 255,
     HBONE_ERR_SPIFFE_TOO_LONG, 2048},
    {"64 KiB ID", "td", 2, "y", 65536 - 11, HBONE_ERR_SPIFFE_TOO_LONG, 2048},
};
#define N_LONG_CASES (sizeof(long_cases) / sizeof(long_cases[0]))

START_TEST(length_limits_table)
{
    const struct long_case *c = &long_cases[_i];
    size_t len = 9 + c->td_len + c->path_len;
    char *s = malloc(len);
    ck_assert_ptr_nonnull(s);
    memcpy(s, "spiffe://", 9);
    for (size_t i = 0; i < c->td_len; i++)
        s[9 + i] = c->td_fill[i % strlen(c->td_fill)];
    char *path = s + 9 + c->td_len;
    if (c->path_len > 0) {
        path[0] = '/';
        for (size_t i = 1; i < c->path_len; i++)
            path[i] = c->path_fill[(i - 1) % strlen(c->path_fill)];
    }
    ck_assert_msg(s[len - 1] != '/', "%s: the test input ends with a slash", c->name);
    if (c->expect == 0)
        check_one(c->name, s, len, 0, 0, s + 9, c->td_len, path, c->path_len);
    else
        check_one(c->name, s, len, c->expect, c->bad_offset, NULL, 0, NULL, 0);
    free(s);
}
END_TEST

START_TEST(length_is_the_callers_not_strlen)
{
    const char buf[] = "spiffe://td/a/b";
    /* A prefix that is itself a valid ID. */
    check_one("prefix spiffe://td", buf, 11, 0, 0, "td", 2, "", 0);
    check_one("prefix spiffe://td/a", buf, 13, 0, 0, "td", 2, "/a", 2);
    /* Prefixes that are not. */
    check_one("prefix ending in a slash", buf, 12, HBONE_ERR_SPIFFE_PATH_TRAILING_SLASH, 11, NULL,
              0, NULL, 0);
    check_one("prefix shorter than the scheme", buf, 8, HBONE_ERR_SPIFFE_SCHEME, 0, NULL, 0, NULL,
              0);
    check_one("prefix of the bare scheme", buf, 9, HBONE_ERR_SPIFFE_TRUST_DOMAIN_EMPTY, 9, NULL, 0,
              NULL, 0);
}
END_TEST

START_TEST(parse_copies_and_terminates)
{
    /* Not NUL-terminated where the ID ends, and changed after parsing. */
    char buf[64];
    memset(buf, 'Z', sizeof(buf));
    const char src[] = "spiffe://example.org/ns/default/sa/client";
    size_t len = sizeof(src) - 1;
    memcpy(buf, src, len);
    hbone_spiffe_id *id = NULL;
    ck_assert_int_eq(hbone_spiffe_id_parse(&id, buf, len, NULL), 0);
    memset(buf, 'Q', sizeof(buf));
    check_accessors("copy", id, src, len, "example.org", 11, "/ns/default/sa/client", 21);
    ck_assert_str_eq(hbone_spiffe_id_str(id, NULL), src);
    hbone_spiffe_id_del(id);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Istio identities                                                          */

struct istio_new_case {
    const char *name;
    const char *td, *ns, *sa;
    int expect;
    const char *want; /* the ID when expect == 0 */
};

static const struct istio_new_case istio_new_cases[] = {
    {"workload", "cluster.local", "default", "client", 0,
     "spiffe://cluster.local/ns/default/sa/client"},
    {"dots and dashes", "td-b.example", "kube-system", "a.b_c", 0,
     "spiffe://td-b.example/ns/kube-system/sa/a.b_c"},
    {"slash inside the namespace", "cluster.local", "default/sa/admin", "x",
     HBONE_ERR_SPIFFE_PATH_CHAR, NULL},
    {"slash inside the service account", "cluster.local", "default", "client/extra",
     HBONE_ERR_SPIFFE_PATH_CHAR, NULL},
    {"service account of one slash", "cluster.local", "default", "/", HBONE_ERR_SPIFFE_PATH_CHAR,
     NULL},
    {"slash inside the trust domain", "cluster.local/ns/x", "default", "client",
     HBONE_ERR_SPIFFE_TRUST_DOMAIN_CHAR, NULL},
    {"uppercase trust domain", "Cluster.Local", "default", "client",
     HBONE_ERR_SPIFFE_TRUST_DOMAIN_CHAR, NULL},
    {"trust domain with a port", "cluster.local:15008", "default", "client",
     HBONE_ERR_SPIFFE_TRUST_DOMAIN_CHAR, NULL},
    {"empty trust domain", "", "default", "client", HBONE_ERR_SPIFFE_TRUST_DOMAIN_EMPTY, NULL},
    {"empty namespace", "cluster.local", "", "client", HBONE_ERR_SPIFFE_PATH_EMPTY_SEGMENT, NULL},
    {"empty service account", "cluster.local", "default", "", HBONE_ERR_SPIFFE_PATH_TRAILING_SLASH,
     NULL},
    {"dot-dot namespace", "cluster.local", "..", "client", HBONE_ERR_SPIFFE_PATH_DOT_SEGMENT, NULL},
    {"query in the service account", "cluster.local", "default", "a?b", HBONE_ERR_SPIFFE_PATH_CHAR,
     NULL},
    {"percent in the namespace", "cluster.local", "de%66ault", "a", HBONE_ERR_SPIFFE_PATH_CHAR,
     NULL},
};
#define N_ISTIO_NEW_CASES (sizeof(istio_new_cases) / sizeof(istio_new_cases[0]))

START_TEST(new_istio_table)
{
    const struct istio_new_case *c = &istio_new_cases[_i];
    hbone_spiffe_id *id = (hbone_spiffe_id *)c; /* must be overwritten */
    int r = hbone_spiffe_id_new_istio(&id, c->td, strlen(c->td), c->ns, strlen(c->ns), c->sa,
                                      strlen(c->sa), NULL);
    ck_assert_msg(r == c->expect, "%s: got %d (%s), want %d (%s)", c->name, r, hbone_strerror(r),
                  c->expect, hbone_strerror(c->expect));
    if (c->expect < 0) {
        ck_assert_msg(id == NULL, "%s: failed but left an ID", c->name);
        return;
    }
    ck_assert_str_eq(hbone_spiffe_id_str(id, NULL), c->want);
    const char *ns = NULL, *sa = NULL;
    size_t ns_len = 0, sa_len = 0;
    ck_assert_int_eq(hbone_spiffe_id_istio(id, &ns, &ns_len, &sa, &sa_len), 0);
    ck_assert_uint_eq(ns_len, strlen(c->ns));
    ck_assert_int_eq(memcmp(ns, c->ns, ns_len), 0);
    ck_assert_uint_eq(sa_len, strlen(c->sa));
    ck_assert_int_eq(memcmp(sa, c->sa, sa_len), 0);
    hbone_spiffe_id_del(id);
}
END_TEST

START_TEST(new_istio_uses_the_given_lengths)
{
    hbone_spiffe_id *id = NULL;
    /* Every part is followed by bytes that must not be read. */
    ck_assert_int_eq(hbone_spiffe_id_new_istio(&id, "cluster.local/evil", 13, "default?x", 7,
                                               "web/../x", 3, NULL),
                     0);
    ck_assert_str_eq(hbone_spiffe_id_str(id, NULL), "spiffe://cluster.local/ns/default/sa/web");
    hbone_spiffe_id_del(id);
}
END_TEST

START_TEST(new_istio_long_trust_domain)
{
    char td[300];
    memset(td, 'a', sizeof(td));
    hbone_spiffe_id *id = NULL;
    ck_assert_int_eq(hbone_spiffe_id_new_istio(&id, td, 255, "ns", 2, "sa", 2, NULL), 0);
    size_t len;
    hbone_spiffe_id_trust_domain(id, &len);
    ck_assert_uint_eq(len, 255);
    hbone_spiffe_id_del(id);
    id = NULL;
    ck_assert_int_eq(hbone_spiffe_id_new_istio(&id, td, 256, "ns", 2, "sa", 2, NULL),
                     HBONE_ERR_SPIFFE_TRUST_DOMAIN_TOO_LONG);
    ck_assert_ptr_null(id);
}
END_TEST

START_TEST(new_istio_long_parts)
{
    /* Parts that fit alone but not together exceed the ID limit. */
    size_t part = 1100;
    char *s = malloc(part);
    ck_assert_ptr_nonnull(s);
    memset(s, 'n', part);
    hbone_spiffe_id *id = NULL;
    ck_assert_int_eq(hbone_spiffe_id_new_istio(&id, "td", 2, s, part, s, part, NULL),
                     HBONE_ERR_SPIFFE_TOO_LONG);
    ck_assert_ptr_null(id);
    /* 9 + 2 + 4 + n + 4 + 1 = 2048 */
    size_t ns_len = 2048 - 20;
    char *ns = malloc(ns_len);
    ck_assert_ptr_nonnull(ns);
    memset(ns, 'n', ns_len);
    ck_assert_int_eq(hbone_spiffe_id_new_istio(&id, "td", 2, ns, ns_len, "s", 1, NULL), 0);
    size_t len;
    hbone_spiffe_id_str(id, &len);
    ck_assert_uint_eq(len, HBONE_SPIFFE_ID_MAX);
    hbone_spiffe_id_del(id);
    id = NULL;
    ck_assert_int_eq(hbone_spiffe_id_new_istio(&id, "td", 2, ns, ns_len, "s2", 2, NULL),
                     HBONE_ERR_SPIFFE_TOO_LONG);
    ck_assert_ptr_null(id);
    free(ns);
    free(s);
}
END_TEST

struct istio_split_case {
    const char *name;
    const char *id;
    int expect;
    const char *ns, *sa; /* when expect == 0 */
};

static const struct istio_split_case istio_split_cases[] = {
    {"workload", "spiffe://cluster.local/ns/default/sa/client", 0, "default", "client"},
    {"names that look like keywords", "spiffe://td/ns/sa/sa/ns", 0, "sa", "ns"},
    {"one-character names", "spiffe://td/ns/a/sa/b", 0, "a", "b"},
    {"service account missing", "spiffe://td/ns/a/sa", HBONE_ERR_SPIFFE_NOT_ISTIO, NULL, NULL},
    {"extra segments", "spiffe://td/ns/a/sa/b/c", HBONE_ERR_SPIFFE_NOT_ISTIO, NULL, NULL},
    {"wrong first keyword", "spiffe://td/xx/a/sa/b", HBONE_ERR_SPIFFE_NOT_ISTIO, NULL, NULL},
    {"wrong second keyword", "spiffe://td/ns/a/xx/b", HBONE_ERR_SPIFFE_NOT_ISTIO, NULL, NULL},
    {"keywords swapped", "spiffe://td/sa/a/ns/b", HBONE_ERR_SPIFFE_NOT_ISTIO, NULL, NULL},
    {"uppercase keyword", "spiffe://td/NS/a/sa/b", HBONE_ERR_SPIFFE_NOT_ISTIO, NULL, NULL},
    {"keyword with a suffix", "spiffe://td/nsx/a/sa/b", HBONE_ERR_SPIFFE_NOT_ISTIO, NULL, NULL},
    {"keyword cut short", "spiffe://td/n/a/sa/b", HBONE_ERR_SPIFFE_NOT_ISTIO, NULL, NULL},
    {"namespace only", "spiffe://td/ns/a", HBONE_ERR_SPIFFE_NOT_ISTIO, NULL, NULL},
    {"one segment", "spiffe://td/ns", HBONE_ERR_SPIFFE_NOT_ISTIO, NULL, NULL},
    {"no path", "spiffe://td", HBONE_ERR_SPIFFE_NOT_ISTIO, NULL, NULL},
};
#define N_ISTIO_SPLIT_CASES (sizeof(istio_split_cases) / sizeof(istio_split_cases[0]))

START_TEST(istio_split_table)
{
    const struct istio_split_case *c = &istio_split_cases[_i];
    hbone_spiffe_id *id = tl_id(c->id);
    const char *ns = NULL, *sa = NULL;
    size_t ns_len = UNSET, sa_len = UNSET;
    int r = hbone_spiffe_id_istio(id, &ns, &ns_len, &sa, &sa_len);
    ck_assert_msg(r == c->expect, "%s: got %d (%s), want %d (%s)", c->name, r, hbone_strerror(r),
                  c->expect, hbone_strerror(c->expect));
    if (c->expect == 0) {
        const char *s = hbone_spiffe_id_str(id, NULL);
        size_t len = strlen(s);
        ck_assert_msg(ns_len == strlen(c->ns) && memcmp(ns, c->ns, ns_len) == 0,
                      "%s: namespace '%.*s'", c->name, (int)ns_len, ns);
        ck_assert_msg(sa_len == strlen(c->sa) && memcmp(sa, c->sa, sa_len) == 0,
                      "%s: service account '%.*s'", c->name, (int)sa_len, sa);
        ck_assert_msg(ns > s && ns + ns_len <= s + len && sa > s && sa + sa_len == s + len,
                      "%s: results do not point into the ID", c->name);
        /* Every output is optional. */
        ck_assert_int_eq(hbone_spiffe_id_istio(id, NULL, NULL, NULL, NULL), 0);
        sa = NULL;
        ck_assert_int_eq(hbone_spiffe_id_istio(id, NULL, NULL, &sa, NULL), 0);
        ck_assert_msg(sa != NULL && memcmp(sa, c->sa, strlen(c->sa)) == 0, "%s: sa alone", c->name);
    } else {
        ck_assert_int_eq(hbone_spiffe_id_istio(id, NULL, NULL, NULL, NULL), c->expect);
    }
    hbone_spiffe_id_del(id);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Comparison, copies, arguments                                             */

START_TEST(equal_compares_bytes)
{
    hbone_spiffe_id *a = tl_id("spiffe://td/ns/a/sa/b");
    hbone_spiffe_id *a2 = tl_id("spiffe://td/ns/a/sa/b");
    hbone_spiffe_id *longer = tl_id("spiffe://td/ns/a/sa/bc");
    hbone_spiffe_id *case_diff = tl_id("spiffe://td/ns/a/sa/B");
    hbone_spiffe_id *other_td = tl_id("spiffe://tc/ns/a/sa/b");
    ck_assert_int_eq(hbone_spiffe_id_equal(a, a), 1);
    ck_assert_int_eq(hbone_spiffe_id_equal(a, a2), 1);
    ck_assert_int_eq(hbone_spiffe_id_equal(a2, a), 1);
    ck_assert_int_eq(hbone_spiffe_id_equal(a, longer), 0);
    ck_assert_int_eq(hbone_spiffe_id_equal(longer, a), 0);
    ck_assert_int_eq(hbone_spiffe_id_equal(a, case_diff), 0);
    ck_assert_int_eq(hbone_spiffe_id_equal(a, other_td), 0);
    ck_assert_int_eq(hbone_spiffe_id_equal(a, NULL), 0);
    ck_assert_int_eq(hbone_spiffe_id_equal(NULL, a), 0);
    ck_assert_int_eq(hbone_spiffe_id_equal(NULL, NULL), 0);
    hbone_spiffe_id_del(a);
    hbone_spiffe_id_del(a2);
    hbone_spiffe_id_del(longer);
    hbone_spiffe_id_del(case_diff);
    hbone_spiffe_id_del(other_td);
}
END_TEST

START_TEST(dup_is_an_independent_copy)
{
    hbone_spiffe_id *orig = tl_id("spiffe://cluster.local/ns/default/sa/server");
    hbone_spiffe_id *copy = NULL;
    ck_assert_int_eq(hbone_spiffe_id_dup(&copy, orig), 0);
    ck_assert_ptr_nonnull(copy);
    ck_assert_ptr_ne(copy, orig);
    ck_assert_ptr_ne(hbone_spiffe_id_str(copy, NULL), hbone_spiffe_id_str(orig, NULL));
    ck_assert_int_eq(hbone_spiffe_id_equal(copy, orig), 1);
    hbone_spiffe_id_del(orig);
    /* The copy outlives the original. */
    check_accessors("dup", copy, "spiffe://cluster.local/ns/default/sa/server", 43, "cluster.local",
                    13, "/ns/default/sa/server", 21);
    hbone_spiffe_id_del(copy);
}
END_TEST

START_TEST(del_null_is_a_no_op)
{
    hbone_spiffe_id_del(NULL);
}
END_TEST

START_TEST(null_arguments)
{
    hbone_spiffe_id *id = (hbone_spiffe_id *)&id;
    size_t off = UNSET;
    ck_assert_int_eq(hbone_spiffe_id_validate(NULL, 11, &off), HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_spiffe_id_validate(NULL, 0, NULL), HBONE_ERR_INVALID_ARGUMENT);

    ck_assert_int_eq(hbone_spiffe_id_parse(NULL, "spiffe://td", 11, NULL),
                     HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_spiffe_id_parse(&id, NULL, 11, NULL), HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(id);

    ck_assert_int_eq(hbone_spiffe_id_new_istio(NULL, "td", 2, "a", 1, "b", 1, NULL),
                     HBONE_ERR_INVALID_ARGUMENT);
    id = (hbone_spiffe_id *)&id;
    ck_assert_int_eq(hbone_spiffe_id_new_istio(&id, NULL, 2, "a", 1, "b", 1, NULL),
                     HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(id);
    ck_assert_int_eq(hbone_spiffe_id_new_istio(&id, "td", 2, NULL, 1, "b", 1, NULL),
                     HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_spiffe_id_new_istio(&id, "td", 2, "a", 1, NULL, 1, NULL),
                     HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(id);

    hbone_spiffe_id *real = tl_id("spiffe://td/ns/a/sa/b");
    ck_assert_int_eq(hbone_spiffe_id_dup(NULL, real), HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_spiffe_id_dup(&id, NULL), HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_int_eq(hbone_spiffe_id_istio(NULL, NULL, NULL, NULL, NULL),
                     HBONE_ERR_INVALID_ARGUMENT);
    hbone_spiffe_id_del(real);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Allocators                                                                */

START_TEST(custom_allocator_balanced)
{
    tl_counting c;
    hbone_mem *mem = tl_counting_mem(&c, -1);
    const char s[] = "spiffe://cluster.local/ns/default/sa/client";
    hbone_spiffe_id *id = NULL, *copy = NULL, *istio = NULL;
    ck_assert_int_eq(hbone_spiffe_id_parse(&id, s, sizeof(s) - 1, mem), 0);
    /* The ID keeps its own copy of the allocator description. */
    hbone_mem_del(mem);
    ck_assert_int_ge(c.allocs, 1);
    long after_parse = c.allocs;
    ck_assert_int_eq(hbone_spiffe_id_dup(&copy, id), 0);
    ck_assert_int_gt(c.allocs, after_parse);
    ck_assert_int_eq(c.frees, 0);
    hbone_spiffe_id_del(id);
    ck_assert_str_eq(hbone_spiffe_id_str(copy, NULL), s);
    hbone_spiffe_id_del(copy);
    ck_assert_int_eq(c.allocs, c.frees);

    mem = tl_counting_mem(&c, -1);
    ck_assert_int_eq(
        hbone_spiffe_id_new_istio(&istio, "cluster.local", 13, "default", 7, "client", 6, mem), 0);
    hbone_mem_del(mem);
    ck_assert_int_ge(c.allocs, 1);
    ck_assert_str_eq(hbone_spiffe_id_str(istio, NULL), s);
    hbone_spiffe_id_del(istio);
    ck_assert_int_eq(c.allocs, c.frees);

    /* A rejected input allocates nothing at all. */
    mem = tl_counting_mem(&c, -1);
    ck_assert_int_eq(hbone_spiffe_id_parse(&id, "spiffe://TD", 11, mem),
                     HBONE_ERR_SPIFFE_TRUST_DOMAIN_CHAR);
    ck_assert_int_eq(c.attempts, 0);
    hbone_mem_del(mem);
}
END_TEST

START_TEST(custom_allocator_failing)
{
    tl_counting c;
    hbone_mem *mem = tl_counting_mem(&c, 0);
    hbone_spiffe_id *id = (hbone_spiffe_id *)&c;
    ck_assert_int_eq(hbone_spiffe_id_parse(&id, "spiffe://td/a", 13, mem), HBONE_ERR_NOMEM);
    ck_assert_ptr_null(id);
    ck_assert_int_ge(c.attempts, 1);
    ck_assert_int_eq(c.allocs, 0);
    ck_assert_int_eq(c.frees, 0);

    id = (hbone_spiffe_id *)&c;
    ck_assert_int_eq(hbone_spiffe_id_new_istio(&id, "td", 2, "a", 1, "b", 1, mem), HBONE_ERR_NOMEM);
    ck_assert_ptr_null(id);
    ck_assert_int_eq(c.allocs, 0);
    hbone_mem_del(mem);

    /* Fail each allocation of new_istio in turn: never a leak. */
    for (long budget = 0;; budget++) {
        mem = tl_counting_mem(&c, budget);
        id = NULL;
        int r = hbone_spiffe_id_new_istio(&id, "td", 2, "a", 1, "b", 1, mem);
        hbone_mem_del(mem);
        if (r == 0) {
            ck_assert_str_eq(hbone_spiffe_id_str(id, NULL), "spiffe://td/ns/a/sa/b");
            hbone_spiffe_id_del(id);
            ck_assert_int_eq(c.allocs, c.frees);
            ck_assert_int_ge(budget, 1);
            break;
        }
        ck_assert_msg(r == HBONE_ERR_NOMEM, "budget %ld: %s", budget, hbone_strerror(r));
        ck_assert_ptr_null(id);
        ck_assert_msg(c.allocs == c.frees, "budget %ld: %ld allocations, %ld frees", budget,
                      c.allocs, c.frees);
        ck_assert_int_lt(budget, 16);
    }

    /* dup allocates with the original's allocator, which may fail. */
    hbone_spiffe_id *orig = NULL, *copy = (hbone_spiffe_id *)&c;
    mem = tl_counting_mem(&c, 1);
    ck_assert_int_eq(hbone_spiffe_id_parse(&orig, "spiffe://td/a", 13, mem), 0);
    hbone_mem_del(mem);
    ck_assert_int_eq(hbone_spiffe_id_dup(&copy, orig), HBONE_ERR_NOMEM);
    ck_assert_ptr_null(copy);
    hbone_spiffe_id_del(orig);
    ck_assert_int_eq(c.allocs, c.frees);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("spiffe");

    TCase *syntax = tcase_create("syntax");
    tcase_add_loop_test(syntax, validate_and_parse_table, 0, (int)N_ID_CASES);
    tcase_add_loop_test(syntax, length_limits_table, 0, (int)N_LONG_CASES);
    tcase_add_test(syntax, length_is_the_callers_not_strlen);
    tcase_add_test(syntax, parse_copies_and_terminates);
    suite_add_tcase(s, syntax);

    TCase *istio = tcase_create("istio");
    tcase_add_loop_test(istio, new_istio_table, 0, (int)N_ISTIO_NEW_CASES);
    tcase_add_test(istio, new_istio_uses_the_given_lengths);
    tcase_add_test(istio, new_istio_long_trust_domain);
    tcase_add_test(istio, new_istio_long_parts);
    tcase_add_loop_test(istio, istio_split_table, 0, (int)N_ISTIO_SPLIT_CASES);
    suite_add_tcase(s, istio);

    TCase *obj = tcase_create("object");
    tcase_add_test(obj, equal_compares_bytes);
    tcase_add_test(obj, dup_is_an_independent_copy);
    tcase_add_test(obj, del_null_is_a_no_op);
    tcase_add_test(obj, null_arguments);
    tcase_add_test(obj, custom_allocator_balanced);
    tcase_add_test(obj, custom_allocator_failing);
    suite_add_tcase(s, obj);

    return tl_run_suite(s);
}
