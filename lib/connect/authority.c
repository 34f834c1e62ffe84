/* SPDX-License-Identifier: MIT */
/* CONNECT :authority parsing and formatting, strict by design: anything a
 * server would have to guess about is refused. */
#include <string.h>

#include <hbone/connect.h>
#include <hbone/error.h>

#include "connect/authority.h"

#define HOSTNAME_MAX 253
#define LABEL_MAX 63
#define IPV6_TEXT_MAX 45 /* "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255" */

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int is_alnum(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int fail_at(size_t *bad_offset, size_t offset)
{
    if (bad_offset)
        *bad_offset = offset;
    return HBONE_ERR_AUTHORITY;
}

/* A decimal number of 1-@max_digits digits without leading zeros, at most
 * @p max. Returns the number of bytes used, 0 if none fit. */
static size_t parse_decimal(const char *s, size_t len, unsigned max_digits, unsigned long max,
                            unsigned long *value)
{
    size_t n = 0;
    unsigned long v = 0;
    while (n < len && n < max_digits && is_digit(s[n])) {
        v = v * 10 + (unsigned long)(s[n] - '0');
        n++;
    }
    if (n == 0 || (n > 1 && s[0] == '0') || v > max || (n < len && is_digit(s[n])))
        return 0;
    *value = v;
    return n;
}

int hb_ipv4_valid(const char *s, size_t len, size_t *bad)
{
    size_t off = 0;
    for (int octet = 0; octet < 4; octet++) {
        if (octet > 0) {
            if (off >= len || s[off] != '.')
                return fail_at(bad, off);
            off++;
        }
        unsigned long v;
        size_t n = parse_decimal(s + off, len - off, 3, 255, &v);
        if (n == 0)
            return fail_at(bad, off);
        off += n;
    }
    return off == len ? 0 : fail_at(bad, off);
}

/* RFC 4291 section 2.2 text forms: up to 8 groups of 1-4 hex digits, one
 * "::", and an embedded IPv4 address in the last 32 bits. No zone. */
int hb_ipv6_valid(const char *s, size_t len, size_t *bad)
{
    if (len < 2 || len > IPV6_TEXT_MAX)
        return fail_at(bad, 0);
    size_t off = 0;
    int groups = 0, compressed = 0;
    if (s[0] == ':') {
        if (s[1] != ':')
            return fail_at(bad, 0);
        compressed = 1;
        off = 2;
    }
    while (off < len) {
        size_t start = off;
        while (off < len && off - start < 5 && is_hex(s[off]))
            off++;
        size_t digits = off - start;
        if (off < len && s[off] == '.') {
            /* The last 32 bits written as IPv4. */
            if (hb_ipv4_valid(s + start, len - start, NULL) != 0 || groups > 6)
                return fail_at(bad, start);
            groups += 2;
            off = len;
            break;
        }
        if (digits == 0 || digits > 4)
            return fail_at(bad, start);
        groups++;
        if (off == len)
            break;
        if (s[off] != ':')
            return fail_at(bad, off);
        off++;
        if (off < len && s[off] == ':') {
            if (compressed)
                return fail_at(bad, off);
            compressed = 1;
            off++;
        } else if (off == len) {
            return fail_at(bad, off - 1); /* a lone trailing ':' */
        }
    }
    if ((compressed && groups > 7) || (!compressed && groups != 8))
        return fail_at(bad, 0);
    return 0;
}

int hb_hostname_valid(const char *s, size_t len, size_t *bad)
{
    if (len == 0 || len > HOSTNAME_MAX)
        return fail_at(bad, len > HOSTNAME_MAX ? HOSTNAME_MAX : 0);
    size_t label_start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '.') {
            if (!is_alnum(s[i]) && s[i] != '-')
                return fail_at(bad, i);
            continue;
        }
        size_t label_len = i - label_start;
        /* Empty labels (".." or a trailing dot), over-long ones, and hyphens
         * at either end are all refused. */
        if (label_len == 0 || label_len > LABEL_MAX || s[label_start] == '-' || s[i - 1] == '-')
            return fail_at(bad, label_start);
        label_start = i + 1;
    }
    /* An all-numeric name would read as a (malformed) IPv4 address. */
    for (size_t i = 0; i < len; i++) {
        if (!is_digit(s[i]) && s[i] != '.')
            return 0;
    }
    return fail_at(bad, 0);
}

int hbone_authority_parse(const char *authority, size_t len, int flags, const char **host,
                          size_t *host_len, uint16_t *port, int *kind, size_t *bad_offset)
{
    if (!authority || (flags & ~HBONE_AUTHORITY_ALLOW_HOSTNAME))
        return HBONE_ERR_INVALID_ARGUMENT;
    const char *colon = NULL;
    size_t h_start = 0, h_len = 0, bad = 0;
    int k;
    if (len > 0 && authority[0] == '[') {
        const char *close = memchr(authority, ']', len);
        if (!close)
            return fail_at(bad_offset, len);
        h_start = 1;
        h_len = (size_t)(close - authority) - 1;
        if (hb_ipv6_valid(authority + 1, h_len, &bad) != 0)
            return fail_at(bad_offset, 1 + bad);
        colon = close + 1;
        if ((size_t)(colon - authority) >= len || *colon != ':')
            return fail_at(bad_offset, (size_t)(colon - authority));
        k = HBONE_AUTHORITY_IPV6;
    } else {
        /* The port follows the last ':'; an unbracketed IPv6 address has
         * more than one and fails as a host below. */
        for (size_t i = len; i > 0; i--) {
            if (authority[i - 1] == ':') {
                colon = authority + i - 1;
                break;
            }
        }
        if (!colon)
            return fail_at(bad_offset, len);
        h_len = (size_t)(colon - authority);
        if (hb_ipv4_valid(authority, h_len, &bad) == 0) {
            k = HBONE_AUTHORITY_IPV4;
        } else if ((flags & HBONE_AUTHORITY_ALLOW_HOSTNAME) &&
                   hb_hostname_valid(authority, h_len, &bad) == 0) {
            k = HBONE_AUTHORITY_HOSTNAME;
        } else {
            return fail_at(bad_offset, bad);
        }
    }
    size_t port_off = (size_t)(colon - authority) + 1;
    unsigned long p = 0;
    size_t port_len = len - port_off;
    if (port_len == 0 || parse_decimal(authority + port_off, port_len, 5, 65535, &p) != port_len ||
        p == 0)
        return fail_at(bad_offset, port_off);
    if (host)
        *host = authority + h_start;
    if (host_len)
        *host_len = h_len;
    if (port)
        *port = (uint16_t)p;
    if (kind)
        *kind = k;
    return 0;
}

/* Append @p n bytes to out[*used], keeping room for the NUL. */
static int append(char *out, size_t cap, size_t *used, const char *s, size_t n)
{
    if (cap - *used <= n)
        return HBONE_ERR_BUFFER_TOO_SMALL;
    memcpy(out + *used, s, n);
    *used += n;
    out[*used] = '\0';
    return 0;
}

static int append_port(char *out, size_t cap, size_t *used, uint16_t port)
{
    char digits[6];
    size_t n = sizeof(digits);
    do {
        digits[--n] = (char)('0' + port % 10);
        port /= 10;
    } while (port);
    return append(out, cap, used, digits + n, sizeof(digits) - n);
}

/* "<host>:<port>", IPv6 bracketed. Returns the kind of host or an error. */
static int append_host_port(char *out, size_t cap, size_t *used, const char *host, size_t host_len,
                            uint16_t port)
{
    int ipv6 = hb_ipv6_valid(host, host_len, NULL) == 0;
    if (!ipv6 && hb_ipv4_valid(host, host_len, NULL) != 0 &&
        hb_hostname_valid(host, host_len, NULL) != 0)
        return HBONE_ERR_AUTHORITY;
    if (port == 0)
        return HBONE_ERR_AUTHORITY;
    int r = 0;
    if (ipv6)
        r = append(out, cap, used, "[", 1);
    if (r == 0)
        r = append(out, cap, used, host, host_len);
    if (r == 0 && ipv6)
        r = append(out, cap, used, "]", 1);
    if (r == 0)
        r = append(out, cap, used, ":", 1);
    if (r == 0)
        r = append_port(out, cap, used, port);
    return r;
}

int hbone_authority_format(const char *host, size_t host_len, uint16_t port, char *out, size_t cap,
                           size_t *out_len)
{
    if (!host || !out || cap == 0)
        return HBONE_ERR_INVALID_ARGUMENT;
    size_t used = 0;
    out[0] = '\0';
    int r = append_host_port(out, cap, &used, host, host_len, port);
    if (r < 0) {
        out[0] = '\0';
        return r;
    }
    if (out_len)
        *out_len = used;
    return 0;
}

int hbone_forwarded_format(const char *ip, size_t ip_len, uint16_t port, const char *service_host,
                           size_t service_host_len, char *out, size_t cap, size_t *out_len)
{
    if (!ip || !out || cap == 0)
        return HBONE_ERR_INVALID_ARGUMENT;
    out[0] = '\0';
    /* for= names an address, never a hostname. */
    if (hb_ipv4_valid(ip, ip_len, NULL) != 0 && hb_ipv6_valid(ip, ip_len, NULL) != 0)
        return HBONE_ERR_AUTHORITY;
    if (service_host && hb_hostname_valid(service_host, service_host_len, NULL) != 0)
        return HBONE_ERR_AUTHORITY;
    size_t used = 0;
    int r = append(out, cap, &used, "for=\"", 5);
    if (r == 0)
        r = append_host_port(out, cap, &used, ip, ip_len, port);
    if (r == 0)
        r = append(out, cap, &used, "\"", 1);
    if (r == 0 && service_host) {
        r = append(out, cap, &used, ";host=", 6);
        if (r == 0)
            r = append(out, cap, &used, service_host, service_host_len);
    }
    if (r < 0) {
        out[0] = '\0';
        return r;
    }
    if (out_len)
        *out_len = used;
    return 0;
}
