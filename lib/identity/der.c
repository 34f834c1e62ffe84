/* SPDX-License-Identifier: MIT */
#include "identity/der.h"

/* Certificates are far smaller than 16 MiB; longer lengths are hostile. */
#define DER_MAX_LENGTH_BYTES 3

int hb_der_read_any(hb_cursor *c, uint8_t *tag, hb_cursor *contents)
{
    hb_cursor in = *c;
    uint8_t t, first;
    if (hb_cursor_u8(&in, &t) < 0 || hb_cursor_u8(&in, &first) < 0)
        return -1;
    if ((t & 0x1f) == 0x1f) /* high tag numbers never occur where we look */
        return -1;
    size_t len = first;
    if (first & 0x80) {
        size_t nbytes = first & 0x7f;
        /* 0x80 is BER's indefinite length: not DER. */
        if (nbytes == 0 || nbytes > DER_MAX_LENGTH_BYTES)
            return -1;
        len = 0;
        for (size_t i = 0; i < nbytes; i++) {
            uint8_t b;
            if (hb_cursor_u8(&in, &b) < 0)
                return -1;
            if (i == 0 && b == 0) /* leading zero: not minimal */
                return -1;
            len = (len << 8) | b;
        }
        if (len < 0x80) /* long form for a short length: not minimal */
            return -1;
    }
    if (hb_cursor_take(&in, len, contents) < 0)
        return -1;
    *tag = t;
    *c = in;
    return 0;
}

int hb_der_read(hb_cursor *c, uint8_t tag, hb_cursor *contents)
{
    hb_cursor in = *c;
    uint8_t t;
    if (hb_der_read_any(&in, &t, contents) < 0 || t != tag)
        return -1;
    *c = in;
    return 0;
}

int hb_der_read_optional(hb_cursor *c, uint8_t tag, hb_cursor *contents)
{
    uint8_t t;
    if (hb_cursor_peek_u8(c, &t) < 0 || t != tag)
        return 0;
    return hb_der_read(c, tag, contents) < 0 ? -1 : 1;
}
