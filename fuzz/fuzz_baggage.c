/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the baggage header value (lib/connect/baggage.c),
 * hbone_baggage_get and hbone_baggage_format, checked against the contract
 * in include/hbone/connect.h. Neither function allocates, so there is no
 * allocation balance to check.
 *
 * Input: byte 0 sets the output capacity for format (0-254, or 4096 for
 * 255). The rest, up to the first NUL byte, is a key; everything after that
 * NUL is a baggage value for get. For format, the rest is split at every
 * NUL byte into fields taken as key, value, key, value... (at most 16
 * pairs; a missing last value is empty).
 *
 * Invariants, besides "no crash":
 *  - get finds a value exactly when an independent reading of the rule
 *    ("pairs split on ',' then on '='; an empty value counts as absent")
 *    finds one, at the same place: the first pair whose name is the key and
 *    whose value (up to the next ',' or '=') is not empty;
 *  - a found value points into the baggage, is not empty, holds no ',' or
 *    '=', starts right after "<key>=" at the start of the value or after a
 *    ',', and ends at the end, a ',' or a '=';
 *  - asking for the value, its length, both or neither never changes the
 *    verdict;
 *  - format refuses (INVALID_ARGUMENT) exactly when a key is empty or not an
 *    HTTP token, or a non-empty value holds a byte that is not a W3C
 *    baggage octet, so that no input can inject a pair;
 *  - an accepted list formats to exactly "k1=v1,k2=v2" over the pairs with
 *    a non-empty value, NUL-terminated, with *out_len its length, when that
 *    fits in the capacity with its NUL, and is BUFFER_TOO_SMALL otherwise;
 *    nothing is ever written past the capacity;
 *  - round trip: get on the formatted value returns, for each key, the
 *    value of its first pair whose value does not start with '=', cut at
 *    its first '=' (values may hold '=', which get reads as the end).
 */
#include <stdlib.h>
#include <string.h>

#include <hbone/connect.h>
#include <hbone/error.h>

#include "fuzz_common.h"

#define MAX_PAIRS 16
#define GUARD 16
#define GUARD_BYTE 0xa5

/* RFC 9110 5.6.2 token characters, spelled out as a set. */
static int token_char(unsigned char c)
{
    static const char tchars[] = "!#$%&'*+-.^_`|~0123456789"
                                 "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    return c != 0 && memchr(tchars, c, sizeof(tchars) - 1) != NULL;
}

/* W3C baggage-octet: %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E. */
static int baggage_octet(unsigned char c)
{
    return c == 0x21 || (c >= 0x23 && c <= 0x2b) || (c >= 0x2d && c <= 0x3a) ||
           (c >= 0x3c && c <= 0x5b) || (c >= 0x5d && c <= 0x7e);
}

/* --- get -------------------------------------------------------------- */

/*
 * The reading connect.h describes: cut the value into pairs at every ',',
 * cut each pair at every '=' and take the first two parts as name and
 * value. Returns the offset of the value found, or -1.
 */
static long oracle_get(const char *b, size_t len, const char *key, size_t key_len,
                       size_t *value_len)
{
    if (len == 0)
        return -1;
    size_t pair_start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && b[i] != ',')
            continue;
        /* The pair is b[pair_start, i). */
        const char *pair = b + pair_start;
        size_t pair_len = i - pair_start;
        const char *eq = memchr(pair, '=', pair_len);
        if (eq && (size_t)(eq - pair) == key_len && memcmp(pair, key, key_len) == 0) {
            const char *v = eq + 1;
            size_t rest = pair_len - key_len - 1;
            const char *eq2 = memchr(v, '=', rest);
            size_t v_len = eq2 ? (size_t)(eq2 - v) : rest;
            if (v_len > 0) {
                *value_len = v_len;
                return (long)(v - b);
            }
        }
        pair_start = i + 1;
    }
    return -1;
}

static void check_get(const char *key, size_t key_len, const char *b, size_t len)
{
    const char *value = NULL;
    size_t value_len = 0;
    int r = hbone_baggage_get(b, len, key, key_len, &value, &value_len);
    FUZZ_CHECK(r == 0 || r == HBONE_ERR_NOT_FOUND);

    /* The same verdict whichever outputs are asked for. */
    const char *v2 = NULL;
    size_t l2 = 0;
    FUZZ_CHECK(hbone_baggage_get(b, len, key, key_len, NULL, NULL) == r);
    FUZZ_CHECK(hbone_baggage_get(b, len, key, key_len, &v2, NULL) == r);
    FUZZ_CHECK(hbone_baggage_get(b, len, key, key_len, NULL, &l2) == r);
    if (r == 0)
        FUZZ_CHECK(v2 == value && l2 == value_len);

    size_t want_len = 0;
    long want = oracle_get(b, len, key, key_len, &want_len);
    FUZZ_CHECK((r == 0) == (want >= 0));
    if (r != 0)
        return;
    FUZZ_CHECK(value == b + want && value_len == want_len);

    /* Where the value sits, stated on its own. */
    size_t off = (size_t)(value - b);
    FUZZ_CHECK(value_len > 0 && off <= len && value_len <= len - off);
    FUZZ_CHECK(memchr(value, ',', value_len) == NULL && memchr(value, '=', value_len) == NULL);
    FUZZ_CHECK(off >= key_len + 1 && b[off - 1] == '=');
    size_t name = off - key_len - 1;
    FUZZ_CHECK(memcmp(b + name, key, key_len) == 0);
    FUZZ_CHECK(name == 0 || b[name - 1] == ',');
    size_t end = off + value_len;
    FUZZ_CHECK(end == len || b[end] == ',' || b[end] == '=');
}

/* --- format ----------------------------------------------------------- */

typedef struct {
    const char *keys[MAX_PAIRS], *values[MAX_PAIRS];
    size_t key_lens[MAX_PAIRS], value_lens[MAX_PAIRS];
    size_t n;
} pairs;

static void split_pairs(const char *p, size_t len, pairs *ps)
{
    static const char empty[1];
    ps->n = 0;
    size_t field = 0, start = 0;
    for (size_t i = 0; i <= len && ps->n < MAX_PAIRS; i++) {
        if (i < len && p[i] != '\0')
            continue;
        if (field % 2 == 0) {
            ps->keys[ps->n] = p + start;
            ps->key_lens[ps->n] = i - start;
            ps->values[ps->n] = empty;
            ps->value_lens[ps->n] = 0;
            ps->n++;
        } else {
            ps->values[ps->n - 1] = p + start;
            ps->value_lens[ps->n - 1] = i - start;
        }
        field++;
        start = i + 1;
    }
}

static int pairs_valid(const pairs *ps)
{
    for (size_t i = 0; i < ps->n; i++) {
        if (ps->key_lens[i] == 0)
            return 0;
        for (size_t k = 0; k < ps->key_lens[i]; k++) {
            if (!token_char((unsigned char)ps->keys[i][k]))
                return 0;
        }
        for (size_t k = 0; k < ps->value_lens[i]; k++) {
            if (!baggage_octet((unsigned char)ps->values[i][k]))
                return 0;
        }
    }
    return 1;
}

/* "k=v" joined by ',' over the pairs with a value; malloc'd, *len set. */
static char *expected_format(const pairs *ps, size_t *len)
{
    size_t total = 1;
    for (size_t i = 0; i < ps->n; i++)
        total += ps->key_lens[i] + 1 + ps->value_lens[i] + 1;
    char *s = malloc(total);
    FUZZ_CHECK(s != NULL);
    size_t n = 0;
    for (size_t i = 0; i < ps->n; i++) {
        if (ps->value_lens[i] == 0)
            continue;
        if (n > 0)
            s[n++] = ',';
        memcpy(s + n, ps->keys[i], ps->key_lens[i]);
        n += ps->key_lens[i];
        s[n++] = '=';
        memcpy(s + n, ps->values[i], ps->value_lens[i]);
        n += ps->value_lens[i];
    }
    s[n] = '\0';
    *len = n;
    return s;
}

/* Every key comes back through get as the round-trip rule in the header
 * comment says. */
static void check_round_trip(const pairs *ps, const char *out, size_t out_len)
{
    for (size_t i = 0; i < ps->n; i++) {
        const char *want = NULL;
        size_t want_len = 0;
        for (size_t j = 0; j < ps->n && !want; j++) {
            if (ps->key_lens[j] != ps->key_lens[i] ||
                memcmp(ps->keys[j], ps->keys[i], ps->key_lens[i]) != 0)
                continue;
            const char *eq = memchr(ps->values[j], '=', ps->value_lens[j]);
            size_t cut = eq ? (size_t)(eq - ps->values[j]) : ps->value_lens[j];
            if (cut > 0) {
                want = ps->values[j];
                want_len = cut;
            }
        }
        const char *got = NULL;
        size_t got_len = 0;
        int r = hbone_baggage_get(out, out_len, ps->keys[i], ps->key_lens[i], &got, &got_len);
        if (!want) {
            FUZZ_CHECK(r == HBONE_ERR_NOT_FOUND);
            continue;
        }
        FUZZ_CHECK(r == 0 && got_len == want_len && memcmp(got, want, want_len) == 0);
        FUZZ_CHECK(got >= out && got + got_len <= out + out_len);
    }
}

static void check_format(const pairs *ps, size_t cap)
{
    char *out = malloc(cap + GUARD);
    FUZZ_CHECK(out != NULL);
    memset(out, GUARD_BYTE, cap + GUARD);
    size_t out_len = (size_t)-1;
    int r = hbone_baggage_format(ps->keys, ps->key_lens, ps->values, ps->value_lens, ps->n, out,
                                 cap, &out_len);
    for (size_t i = cap; i < cap + GUARD; i++)
        FUZZ_CHECK((unsigned char)out[i] == GUARD_BYTE);

    if (cap == 0) {
        /* No room even for the NUL: refused one way or the other. */
        FUZZ_CHECK(r == HBONE_ERR_INVALID_ARGUMENT || r == HBONE_ERR_BUFFER_TOO_SMALL);
    } else if (!pairs_valid(ps)) {
        FUZZ_CHECK(r == HBONE_ERR_INVALID_ARGUMENT);
    } else {
        size_t want_len;
        char *want = expected_format(ps, &want_len);
        if (want_len + 1 > cap) {
            FUZZ_CHECK(r == HBONE_ERR_BUFFER_TOO_SMALL);
        } else {
            FUZZ_CHECK(r == 0);
            FUZZ_CHECK(out_len == want_len && memcmp(out, want, want_len + 1) == 0);
            /* The same without asking for the length. */
            FUZZ_CHECK(hbone_baggage_format(ps->keys, ps->key_lens, ps->values, ps->value_lens,
                                            ps->n, out, cap, NULL) == 0);
            FUZZ_CHECK(memcmp(out, want, want_len + 1) == 0);
            check_round_trip(ps, out, out_len);
        }
        free(want);
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t cap = data[0] == 0xff ? 4096 : data[0];
    const char *rest = (const char *)data + 1;
    size_t rest_len = size - 1;

    const char *nul = memchr(rest, '\0', rest_len);
    size_t key_len = nul ? (size_t)(nul - rest) : rest_len;
    const char *b = nul ? nul + 1 : rest + rest_len;
    check_get(rest, key_len, b, rest_len - (size_t)(b - rest));

    pairs ps;
    split_pairs(rest, rest_len, &ps);
    check_format(&ps, cap);
    return 0;
}
