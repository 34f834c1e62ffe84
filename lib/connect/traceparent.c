/* SPDX-License-Identifier: MIT */
/* W3C trace context "traceparent" values, as ztunnel sends with CONNECT. */
#include <string.h>
#include <sys/random.h>

#include <hbone/connect.h>
#include <hbone/error.h>

#define TRACE_ID_LEN 16
#define PARENT_ID_LEN 8

static int all_zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (b[i])
            return 0;
    }
    return 1;
}

static char *put_hex(char *out, const uint8_t *b, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        *out++ = digits[b[i] >> 4];
        *out++ = digits[b[i] & 0xf];
    }
    return out;
}

/* Fill @p b with random bytes that are not all zero. */
static int random_id(uint8_t *b, size_t n)
{
    do {
        if (getrandom(b, n, 0) != (ssize_t)n)
            return HBONE_ERR_INTERNAL;
    } while (all_zero(b, n));
    return 0;
}

int hbone_traceparent_format(const uint8_t *trace_id, const uint8_t *parent_id, char *out,
                             size_t cap)
{
    if (!out || (trace_id == NULL) != (parent_id == NULL))
        return HBONE_ERR_INVALID_ARGUMENT;
    if (cap < HBONE_TRACEPARENT_LEN + 1)
        return HBONE_ERR_BUFFER_TOO_SMALL;
    uint8_t trace[TRACE_ID_LEN], parent[PARENT_ID_LEN];
    if (trace_id) {
        if (all_zero(trace_id, TRACE_ID_LEN) || all_zero(parent_id, PARENT_ID_LEN))
            return HBONE_ERR_INVALID_ARGUMENT;
        memcpy(trace, trace_id, TRACE_ID_LEN);
        memcpy(parent, parent_id, PARENT_ID_LEN);
    } else {
        int r = random_id(trace, TRACE_ID_LEN);
        if (r == 0)
            r = random_id(parent, PARENT_ID_LEN);
        if (r < 0)
            return r;
    }
    /* version 00, flags 00 (not sampled), as ztunnel. */
    char *p = out;
    memcpy(p, "00-", 3);
    p = put_hex(p + 3, trace, TRACE_ID_LEN);
    *p++ = '-';
    p = put_hex(p, parent, PARENT_ID_LEN);
    memcpy(p, "-00", 4); /* with the NUL */
    return 0;
}
