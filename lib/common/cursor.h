/* SPDX-License-Identifier: MIT */
/*
 * Bounds-checked reading of untrusted bytes. Every parser in libhbone walks
 * its input through an hb_cursor; no raw pointer arithmetic on peer data.
 */
#ifndef HB_COMMON_CURSOR_H
#define HB_COMMON_CURSOR_H

#include <stddef.h>
#include <stdint.h>

typedef struct hb_cursor {
    const uint8_t *p;
    size_t len;
} hb_cursor;

static inline hb_cursor hb_cursor_of(const void *p, size_t len)
{
    hb_cursor c = {(const uint8_t *)p, len};
    return c;
}

/* Split the next @p n bytes off @p c into @p out. Returns 0, or -1 (and
 * leaves both untouched) if fewer remain. */
static inline int hb_cursor_take(hb_cursor *c, size_t n, hb_cursor *out)
{
    if (n > c->len)
        return -1;
    out->p = c->p;
    out->len = n;
    c->p += n;
    c->len -= n;
    return 0;
}

static inline int hb_cursor_u8(hb_cursor *c, uint8_t *out)
{
    if (c->len < 1)
        return -1;
    *out = c->p[0];
    c->p++;
    c->len--;
    return 0;
}

static inline int hb_cursor_peek_u8(const hb_cursor *c, uint8_t *out)
{
    if (c->len < 1)
        return -1;
    *out = c->p[0];
    return 0;
}

/* True if the cursor holds exactly the bytes @p s (@p n long). */
static inline int hb_cursor_equals(const hb_cursor *c, const void *s, size_t n)
{
    if (c->len != n)
        return 0;
    const uint8_t *b = s;
    for (size_t i = 0; i < n; i++) {
        if (c->p[i] != b[i])
            return 0;
    }
    return 1;
}

#endif /* HB_COMMON_CURSOR_H */
