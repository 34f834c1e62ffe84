/* SPDX-License-Identifier: MIT */
/* The baggage header's value, in ztunnel's dialect of W3C baggage. */
#include <string.h>

#include <hbone/connect.h>
#include <hbone/error.h>

/* RFC 9110 token characters. */
static int is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* W3C baggage-octet: printable ASCII except space, '"', ',', ';', '\\'. */
static int is_baggage_octet(unsigned char c)
{
    return c >= 0x21 && c <= 0x7e && c != '"' && c != ',' && c != ';' && c != '\\';
}

static int all(const char *s, size_t len, int (*ok)(unsigned char))
{
    for (size_t i = 0; i < len; i++) {
        if (!ok((unsigned char)s[i]))
            return 0;
    }
    return 1;
}

int hbone_baggage_format(const char *const *keys, const size_t *key_lens, const char *const *values,
                         const size_t *value_lens, size_t n, char *out, size_t cap, size_t *out_len)
{
    if (!out || cap == 0 || (n && (!keys || !key_lens || !values || !value_lens)))
        return HBONE_ERR_INVALID_ARGUMENT;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (!keys[i] || key_lens[i] == 0 || !all(keys[i], key_lens[i], is_tchar) ||
            (value_lens[i] && (!values[i] || !all(values[i], value_lens[i], is_baggage_octet))))
            return HBONE_ERR_INVALID_ARGUMENT;
    }
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        if (value_lens[i] == 0)
            continue;
        size_t need = (used ? 1 : 0) + key_lens[i] + 1 + value_lens[i];
        if (cap - used <= need) {
            out[0] = '\0';
            return HBONE_ERR_BUFFER_TOO_SMALL;
        }
        if (used)
            out[used++] = ',';
        memcpy(out + used, keys[i], key_lens[i]);
        used += key_lens[i];
        out[used++] = '=';
        memcpy(out + used, values[i], value_lens[i]);
        used += value_lens[i];
    }
    out[used] = '\0';
    if (out_len)
        *out_len = used;
    return 0;
}

int hbone_baggage_get(const char *baggage, size_t len, const char *key, size_t key_len,
                      const char **value, size_t *value_len)
{
    if (!key || (!baggage && len))
        return HBONE_ERR_INVALID_ARGUMENT;
    size_t pos = 0;
    while (pos <= len && len > 0) {
        const char *item = baggage + pos;
        const char *comma = memchr(item, ',', len - pos);
        size_t item_len = comma ? (size_t)(comma - item) : len - pos;
        const char *eq = memchr(item, '=', item_len);
        if (eq && (size_t)(eq - item) == key_len && memcmp(item, key, key_len) == 0) {
            /* ztunnel ignores anything after a second '='. */
            const char *v = eq + 1;
            size_t v_len = item_len - key_len - 1;
            const char *eq2 = memchr(v, '=', v_len);
            if (eq2)
                v_len = (size_t)(eq2 - v);
            if (v_len > 0) {
                if (value)
                    *value = v;
                if (value_len)
                    *value_len = v_len;
                return 0;
            }
        }
        if (!comma)
            break;
        pos += item_len + 1;
    }
    return HBONE_ERR_NOT_FOUND;
}
