/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: SPIFFE ID syntax (lib/identity/spiffe.c).
 *
 * The input is taken as a candidate SPIFFE ID, as a bare trust domain and as
 * each part of an Istio identity. Beyond "no crash, no leak" it checks:
 *  - validate and parse agree (same code; parse returns an ID only on 0);
 *  - accept/reject matches a naive re-reading of the rules in identity.h;
 *  - every error code names a rule the input really breaks, at the reported
 *    offset;
 *  - the accessors of a parsed ID reassemble the input exactly, and the Istio
 *    split round-trips through hbone_spiffe_id_new_istio().
 */
#include <stdlib.h>
#include <string.h>

#include <hbone/error.h>
#include <hbone/identity.h>

#include "fuzz_common.h"
#include "identity/spiffe.h"

static const char scheme[] = "spiffe://";
#define SCHEME_LEN (sizeof(scheme) - 1)

/* Stored into out-parameters before a call, to see that failures reset them
 * to NULL rather than leaving a caller's stale pointer behind. */
static hbone_spiffe_id poison;

/* ------------------------------------------------------------------------ */
/* The rules, restated independently of spiffe.c. Kept deliberately naive:
 * the point is a second opinion, not speed. */

static int ref_td_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

static int ref_path_char(unsigned char c)
{
    return ref_td_char(c) || (c >= 'A' && c <= 'Z');
}

static int ref_trust_domain_ok(const uint8_t *p, size_t n)
{
    if (n == 0 || n > HBONE_SPIFFE_TRUST_DOMAIN_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (!ref_td_char(p[i]))
            return 0;
    }
    return 1;
}

static int ref_segment_ok(const uint8_t *p, size_t n)
{
    if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (!ref_path_char(p[i]))
            return 0;
    }
    return 1;
}

static int ref_id_ok(const uint8_t *p, size_t n)
{
    if (n > HBONE_SPIFFE_ID_MAX || n < SCHEME_LEN || memcmp(p, scheme, SCHEME_LEN) != 0)
        return 0;
    size_t i = SCHEME_LEN;
    while (i < n && p[i] != '/')
        i++;
    if (!ref_trust_domain_ok(p + SCHEME_LEN, i - SCHEME_LEN))
        return 0;
    while (i < n) { /* p[i] == '/' starts the next segment */
        size_t start = i + 1, end = start;
        while (end < n && p[end] != '/')
            end++;
        if (!ref_segment_ok(p + start, end - start))
            return 0;
        i = end;
    }
    return 1;
}

/* True if @p p (@p n bytes) is exactly "/ns/<x>/sa/<y>" with x and y free
 * of '/'. Validity of x and y is the parser's business, not this one's. */
static int ref_is_istio_path(const uint8_t *p, size_t n)
{
    if (n < 4 || memcmp(p, "/ns/", 4) != 0)
        return 0;
    const uint8_t *ns_end = memchr(p + 4, '/', n - 4);
    if (!ns_end)
        return 0;
    size_t rest = n - (size_t)(ns_end - p);
    if (rest < 4 || memcmp(ns_end, "/sa/", 4) != 0)
        return 0;
    return memchr(ns_end + 4, '/', rest - 4) == NULL;
}

/* ------------------------------------------------------------------------ */

/* An error must name a rule the input breaks, at the offset it reports:
 * otherwise the "at byte N" in diagnostics would send users astray. */
static void check_error_site(int code, const uint8_t *p, size_t n, size_t bad)
{
    FUZZ_CHECK(bad <= n);
    size_t td_end = SCHEME_LEN;
    while (td_end < n && p[td_end] != '/')
        td_end++;
    switch (code) {
    case HBONE_ERR_SPIFFE_SCHEME:
        FUZZ_CHECK(bad == 0);
        FUZZ_CHECK(n < SCHEME_LEN || memcmp(p, scheme, SCHEME_LEN) != 0);
        break;
    case HBONE_ERR_SPIFFE_TRUST_DOMAIN_EMPTY:
        FUZZ_CHECK(bad == SCHEME_LEN && td_end == SCHEME_LEN);
        break;
    case HBONE_ERR_SPIFFE_TRUST_DOMAIN_CHAR:
        FUZZ_CHECK(bad >= SCHEME_LEN && bad < td_end && !ref_td_char(p[bad]));
        break;
    case HBONE_ERR_SPIFFE_TRUST_DOMAIN_TOO_LONG:
        FUZZ_CHECK(td_end - SCHEME_LEN > HBONE_SPIFFE_TRUST_DOMAIN_MAX);
        FUZZ_CHECK(bad == SCHEME_LEN + HBONE_SPIFFE_TRUST_DOMAIN_MAX);
        break;
    case HBONE_ERR_SPIFFE_PATH_CHAR:
        FUZZ_CHECK(bad > td_end && bad < n && p[bad] != '/' && !ref_path_char(p[bad]));
        break;
    case HBONE_ERR_SPIFFE_PATH_EMPTY_SEGMENT:
        FUZZ_CHECK(bad >= td_end && bad + 1 < n && p[bad] == '/' && p[bad + 1] == '/');
        break;
    case HBONE_ERR_SPIFFE_PATH_DOT_SEGMENT: {
        FUZZ_CHECK(bad > td_end && bad < n && p[bad - 1] == '/' && p[bad] == '.');
        size_t seg_end = bad;
        while (seg_end < n && p[seg_end] != '/')
            seg_end++;
        FUZZ_CHECK(seg_end - bad == 1 || (seg_end - bad == 2 && p[bad + 1] == '.'));
        break;
    }
    case HBONE_ERR_SPIFFE_PATH_TRAILING_SLASH:
        FUZZ_CHECK(n > td_end && bad == n - 1 && p[bad] == '/');
        break;
    case HBONE_ERR_SPIFFE_TOO_LONG:
        FUZZ_CHECK(n > HBONE_SPIFFE_ID_MAX && bad == HBONE_SPIFFE_ID_MAX);
        break;
    default:
        /* Validation of a non-NULL string has no other way to fail. */
        fuzz_fail(__FILE__, __LINE__, "hbone_spiffe_id_validate returned an unexpected code");
    }
}

static void check_parsed(const hbone_spiffe_id *id, const uint8_t *p, size_t n)
{
    size_t len = 0, td_len = 0, path_len = 0;
    const char *str = hbone_spiffe_id_str(id, &len);
    FUZZ_CHECK(str && len == n && memcmp(str, p, n) == 0 && str[len] == '\0');

    /* scheme + trust domain + path must be the whole ID, in place. */
    const char *td = hbone_spiffe_id_trust_domain(id, &td_len);
    const char *path = hbone_spiffe_id_path(id, &path_len);
    FUZZ_CHECK(td == str + SCHEME_LEN && path == td + td_len);
    FUZZ_CHECK(SCHEME_LEN + td_len + path_len == n);
    FUZZ_CHECK(memcmp(str, scheme, SCHEME_LEN) == 0);
    FUZZ_CHECK(memchr(td, '/', td_len) == NULL);
    FUZZ_CHECK(path_len == 0 || path[0] == '/');
    FUZZ_CHECK(hb_spiffe_validate_trust_domain(td, td_len, NULL) == 0);
    FUZZ_CHECK(hb_spiffe_id_in_trust_domain(id, td, td_len));
    FUZZ_CHECK(!hb_spiffe_id_in_trust_domain(id, td, td_len - 1));

    hbone_spiffe_id *copy = NULL;
    FUZZ_CHECK(hbone_spiffe_id_dup(&copy, id) == 0);
    FUZZ_CHECK(hbone_spiffe_id_equal(copy, id) && hbone_spiffe_id_equal(id, copy));
    FUZZ_CHECK(!hbone_spiffe_id_equal(id, NULL) && !hbone_spiffe_id_equal(NULL, id));
    hbone_spiffe_id_del(copy);

    const char *ns = NULL, *sa = NULL;
    size_t ns_len = 0, sa_len = 0;
    int r = hbone_spiffe_id_istio(id, &ns, &ns_len, &sa, &sa_len);
    FUZZ_CHECK(r == 0 || r == HBONE_ERR_SPIFFE_NOT_ISTIO);
    FUZZ_CHECK((r == 0) == ref_is_istio_path((const uint8_t *)path, path_len));
    /* NULL outputs are allowed and must not change the answer. */
    FUZZ_CHECK(hbone_spiffe_id_istio(id, NULL, NULL, NULL, NULL) == r);
    if (r == 0) {
        FUZZ_CHECK(ns == path + 4 && sa == ns + ns_len + 4);
        FUZZ_CHECK(path_len == 4 + ns_len + 4 + sa_len);
        /* Rebuilding from the parts must give the very same ID. */
        hbone_spiffe_id *again = NULL;
        int r2 = hbone_spiffe_id_new_istio(&again, td, td_len, ns, ns_len, sa, sa_len, fuzz_mem());
        FUZZ_CHECK(r2 == 0);
        FUZZ_CHECK(hbone_spiffe_id_equal(again, id));
        hbone_spiffe_id_del(again);
    }
}

/* hbone_spiffe_id_new_istio() on arbitrary parts: it must succeed exactly
 * when each part is valid in its position and the result fits, and then
 * split back into the same parts. */
static void check_new_istio(const uint8_t *td, size_t td_len, const uint8_t *ns, size_t ns_len,
                            const uint8_t *sa, size_t sa_len)
{
    size_t total = SCHEME_LEN + td_len + 4 + ns_len + 4 + sa_len;
    int expect_ok = ref_trust_domain_ok(td, td_len) && ref_segment_ok(ns, ns_len) &&
                    ref_segment_ok(sa, sa_len) && total <= HBONE_SPIFFE_ID_MAX;
    hbone_spiffe_id *id = &poison; /* must be reset to NULL on failure */
    int r = hbone_spiffe_id_new_istio(&id, (const char *)td, td_len, (const char *)ns, ns_len,
                                      (const char *)sa, sa_len, fuzz_mem());
    FUZZ_CHECK((r == 0) == expect_ok);
    if (r != 0) {
        FUZZ_CHECK(id == NULL);
        FUZZ_CHECK(r <= HBONE_ERR_SPIFFE_SCHEME && r >= HBONE_ERR_SPIFFE_TOO_LONG);
        return;
    }
    const char *got_ns, *got_sa;
    size_t got_ns_len, got_sa_len, got_td_len;
    const char *got_td = hbone_spiffe_id_trust_domain(id, &got_td_len);
    FUZZ_CHECK(hbone_spiffe_id_istio(id, &got_ns, &got_ns_len, &got_sa, &got_sa_len) == 0);
    FUZZ_CHECK(got_td_len == td_len && memcmp(got_td, td, td_len) == 0);
    FUZZ_CHECK(got_ns_len == ns_len && memcmp(got_ns, ns, ns_len) == 0);
    FUZZ_CHECK(got_sa_len == sa_len && memcmp(got_sa, sa, sa_len) == 0);
    hbone_spiffe_id_del(id);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t empty[1];
    /* A zero-length input may come with a NULL pointer from some drivers;
     * NULL is a usage error for the API, not what we want to test here. */
    if (!data)
        data = empty;
    const char *s = (const char *)data;
    fuzz_mem_begin();

    /* As a whole SPIFFE ID. */
    size_t bad = (size_t)-1;
    int v = hbone_spiffe_id_validate(s, size, &bad);
    FUZZ_CHECK(v <= 0);
    FUZZ_CHECK((v == 0) == ref_id_ok(data, size));
    if (v < 0)
        check_error_site(v, data, size, bad);
    else
        FUZZ_CHECK(hbone_spiffe_id_validate(s, size, NULL) == 0);

    hbone_spiffe_id *id = &poison; /* parse must overwrite it */
    int p = hbone_spiffe_id_parse(&id, s, size, fuzz_mem());
    FUZZ_CHECK(p == v);
    if (p == 0) {
        check_parsed(id, data, size);
        hbone_spiffe_id_del(id);
    } else {
        FUZZ_CHECK(id == NULL);
    }

    /* As a bare trust domain, the form trust bundles are keyed by. */
    bad = (size_t)-1;
    int t = hb_spiffe_validate_trust_domain(s, size, &bad);
    FUZZ_CHECK((t == 0) == ref_trust_domain_ok(data, size));
    if (t < 0) {
        FUZZ_CHECK(t == HBONE_ERR_SPIFFE_TRUST_DOMAIN_EMPTY ||
                   t == HBONE_ERR_SPIFFE_TRUST_DOMAIN_CHAR ||
                   t == HBONE_ERR_SPIFFE_TRUST_DOMAIN_TOO_LONG);
        if (t == HBONE_ERR_SPIFFE_TRUST_DOMAIN_CHAR)
            FUZZ_CHECK(bad < size && !ref_td_char(data[bad]));
        else
            FUZZ_CHECK(bad <= size);
    }

    /* As each part of an Istio identity, the others fixed and valid... */
    static const uint8_t td_ok[] = "cluster.local", ns_ok[] = "default", sa_ok[] = "client";
    check_new_istio(data, size, ns_ok, sizeof(ns_ok) - 1, sa_ok, sizeof(sa_ok) - 1);
    check_new_istio(td_ok, sizeof(td_ok) - 1, data, size, sa_ok, sizeof(sa_ok) - 1);
    check_new_istio(td_ok, sizeof(td_ok) - 1, ns_ok, sizeof(ns_ok) - 1, data, size);

    /* ...and, when the input holds two NUL separators, as all three parts at
     * once, so the fuzzer can vary them together. */
    const uint8_t *nul1 = memchr(data, '\0', size);
    if (nul1) {
        size_t after1 = size - (size_t)(nul1 + 1 - data);
        const uint8_t *nul2 = memchr(nul1 + 1, '\0', after1);
        if (nul2) {
            size_t after2 = size - (size_t)(nul2 + 1 - data);
            check_new_istio(data, (size_t)(nul1 - data), nul1 + 1, (size_t)(nul2 - nul1 - 1),
                            nul2 + 1, after2);
        }
    }

    fuzz_mem_end();
    return 0;
}
