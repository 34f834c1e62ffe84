/* SPDX-License-Identifier: MIT */
#include "identity/pem.h"

#include <stdio.h>
#include <string.h>

#include <hbone/error.h>

static const char *find(const char *hay, size_t hay_len, const char *needle, size_t needle_len)
{
    if (needle_len == 0 || hay_len < needle_len)
        return NULL;
    for (size_t i = 0; i + needle_len <= hay_len; i++) {
        if (hay[i] == needle[0] && memcmp(hay + i, needle, needle_len) == 0)
            return hay + i;
    }
    return NULL;
}

static int base64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Decode base64 with whitespace allowed between characters and '=' padding
 * only at the end. @p out has room for len * 3 / 4 bytes. */
static int base64_decode(const char *in, size_t len, uint8_t *out, size_t *out_len)
{
    uint32_t acc = 0;
    size_t bits = 0, n = 0, pad = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
            continue;
        if (c == '=') {
            pad++;
            continue;
        }
        int v = base64_value(c);
        if (v < 0 || pad > 0) /* data after padding */
            return HBONE_ERR_PEM;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    /* Leftover bits must be fewer than a byte, zero, and match the padding:
     * 2 characters carry one byte (4 spare bits, "=="), 3 carry two bytes (2
     * spare bits, "="). A lone character (6 bits) is never valid. */
    if (pad > 2 || bits == 6 || (bits == 0 && pad != 0) || (bits == 4 && pad != 2) ||
        (bits == 2 && pad != 1) || (acc & ((1u << bits) - 1)) != 0 || n == 0)
        return HBONE_ERR_PEM;
    *out_len = n;
    return 0;
}

int hb_pem_next(const hb_mem *mem, const char *text, size_t len, size_t *pos, const char *label,
                uint8_t **der, size_t *der_len)
{
    char begin[80], end[80];
    size_t label_len = strlen(label);
    if (label_len > 40)
        return HBONE_ERR_INVALID_ARGUMENT;
    int begin_len = snprintf(begin, sizeof(begin), "-----BEGIN %s-----", label);
    int end_len = snprintf(end, sizeof(end), "-----END %s-----", label);
    if (*pos > len)
        return HBONE_ERR_NOT_FOUND;
    const char *rest = text + *pos;
    size_t rest_len = len - *pos;
    const char *b = find(rest, rest_len, begin, (size_t)begin_len);
    if (!b)
        return HBONE_ERR_NOT_FOUND;
    const char *body = b + begin_len;
    size_t body_max = rest_len - (size_t)(body - rest);
    const char *e = find(body, body_max, end, (size_t)end_len);
    if (!e)
        return HBONE_ERR_PEM;
    size_t body_len = (size_t)(e - body);
    uint8_t *buf = hb_malloc(mem, body_len / 4 * 3 + 3);
    if (!buf)
        return HBONE_ERR_NOMEM;
    size_t n = 0;
    int r = base64_decode(body, body_len, buf, &n);
    if (r < 0) {
        hb_free(mem, buf);
        return r;
    }
    *der = buf;
    *der_len = n;
    *pos = (size_t)(e - text) + (size_t)end_len;
    return 0;
}
