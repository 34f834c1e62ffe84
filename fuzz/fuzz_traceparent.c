/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: hbone_traceparent_format (lib/connect/traceparent.c),
 * checked against the contract in include/hbone/connect.h. The API has no
 * traceparent parser, so the target parses the output itself. Nothing here
 * allocates, so there is no allocation balance to check.
 *
 * Input: byte 0 is the output capacity (0-255); byte 1 picks the call:
 * 0 given ids, 1 random ids (both NULL), 2 only the trace id NULL, 3 only
 * the parent id NULL, 4 a NULL output buffer; bytes 2-17 are the trace id
 * and 18-25 the parent id (zero where the input is shorter).
 *
 * Invariants, besides "no crash":
 *  - exactly one of the two ids NULL, or a NULL output, is
 *    INVALID_ARGUMENT;
 *  - an all-zero trace id or parent id is refused (INVALID_ARGUMENT; with a
 *    capacity below HBONE_TRACEPARENT_LEN + 1, BUFFER_TOO_SMALL also fits
 *    the contract);
 *  - otherwise a capacity below HBONE_TRACEPARENT_LEN + 1 is
 *    BUFFER_TOO_SMALL, and anything from there up succeeds (random ids may
 *    also fail with INTERNAL);
 *  - a success is "00-" 32 lowercase hex "-" 16 lowercase hex "-00" and a
 *    NUL, HBONE_TRACEPARENT_LEN characters, whose hex decodes to the given
 *    ids; random ids are not all zero;
 *  - nothing is ever written past the capacity.
 */
#include <stdlib.h>
#include <string.h>

#include <hbone/connect.h>
#include <hbone/error.h>

#include "fuzz_common.h"

#define GUARD 16
#define GUARD_BYTE 0xa5

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1; /* uppercase is not what W3C trace context writes */
}

/* Decode @p n bytes of lowercase hex at @p s; 0 on success. */
static int unhex(const char *s, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

static int is_zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (b[i])
            return 0;
    }
    return 1;
}

/* W3C trace context, version 00, as an independent parser of the output. */
static void check_well_formed(const char *out, uint8_t trace[16], uint8_t parent[8])
{
    FUZZ_CHECK(strlen(out) == HBONE_TRACEPARENT_LEN);
    FUZZ_CHECK(memcmp(out, "00-", 3) == 0);
    FUZZ_CHECK(unhex(out + 3, trace, 16) == 0);
    FUZZ_CHECK(out[35] == '-');
    FUZZ_CHECK(unhex(out + 36, parent, 8) == 0);
    FUZZ_CHECK(strcmp(out + 52, "-00") == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t in[26] = {0};
    if (size)
        memcpy(in, data, size < sizeof(in) ? size : sizeof(in));
    size_t cap = in[0];
    int mode = in[1] % 5;
    const uint8_t *trace_id = in + 2, *parent_id = in + 18;

    char *buf = malloc(cap + GUARD);
    FUZZ_CHECK(buf != NULL);
    memset(buf, GUARD_BYTE, cap + GUARD);
    int r;
    switch (mode) {
    case 1:
        r = hbone_traceparent_format(NULL, NULL, buf, cap);
        break;
    case 2:
        r = hbone_traceparent_format(NULL, parent_id, buf, cap);
        break;
    case 3:
        r = hbone_traceparent_format(trace_id, NULL, buf, cap);
        break;
    case 4:
        r = hbone_traceparent_format(trace_id, parent_id, NULL, cap);
        break;
    default:
        r = hbone_traceparent_format(trace_id, parent_id, buf, cap);
        break;
    }
    for (size_t i = cap; i < cap + GUARD; i++)
        FUZZ_CHECK((unsigned char)buf[i] == GUARD_BYTE);

    int fits = cap >= HBONE_TRACEPARENT_LEN + 1;
    uint8_t trace[16], parent[8];
    if (mode == 2 || mode == 3 || mode == 4) {
        FUZZ_CHECK(r == HBONE_ERR_INVALID_ARGUMENT);
    } else if (mode == 1) {
        if (!fits) {
            FUZZ_CHECK(r == HBONE_ERR_BUFFER_TOO_SMALL);
        } else {
            FUZZ_CHECK(r == 0 || r == HBONE_ERR_INTERNAL);
            if (r == 0) {
                check_well_formed(buf, trace, parent);
                FUZZ_CHECK(!is_zero(trace, 16) && !is_zero(parent, 8));
            }
        }
    } else if (is_zero(trace_id, 16) || is_zero(parent_id, 8)) {
        FUZZ_CHECK(r == HBONE_ERR_INVALID_ARGUMENT || (!fits && r == HBONE_ERR_BUFFER_TOO_SMALL));
    } else if (!fits) {
        FUZZ_CHECK(r == HBONE_ERR_BUFFER_TOO_SMALL);
    } else {
        FUZZ_CHECK(r == 0);
        check_well_formed(buf, trace, parent);
        FUZZ_CHECK(memcmp(trace, trace_id, 16) == 0 && memcmp(parent, parent_id, 8) == 0);
    }
    free(buf);
    return 0;
}
