/* SPDX-License-Identifier: MIT */
#include "tls/client_hello.h"

#include <string.h>

#include <hbone/error.h>

#include "common/cursor.h"

#define RECORD_HANDSHAKE 22
#define MESSAGE_CLIENT_HELLO 1
#define EXTENSION_ALPN 16

static int take_u16(hb_cursor *c, uint16_t *out)
{
    hb_cursor two;
    if (hb_cursor_take(c, 2, &two) < 0)
        return -1;
    *out = (uint16_t)(two.p[0] << 8 | two.p[1]);
    return 0;
}

/* A vector with a one- or two-byte length (RFC 8446 section 3.4). */
static int take_vector(hb_cursor *c, int length_bytes, hb_cursor *out)
{
    uint8_t n8;
    uint16_t n16 = 0;
    if (length_bytes == 1 ? hb_cursor_u8(c, &n8) : take_u16(c, &n16))
        return -1;
    return hb_cursor_take(c, length_bytes == 1 ? n8 : n16, out);
}

/* ProtocolNameList: a non-empty list of non-empty names, filling the
 * extension exactly (RFC 7301 section 3.1). */
static int alpn_well_formed(hb_cursor ext)
{
    hb_cursor list, name;
    if (take_vector(&ext, 2, &list) < 0 || ext.len || !list.len)
        return 0;
    while (list.len) {
        if (take_vector(&list, 1, &name) < 0 || !name.len)
            return 0;
    }
    return 1;
}

static int refuse(hb_detail *detail, const char *what)
{
    return hb_detail_set(detail, HBONE_ERR_TLS_HANDSHAKE, "client sent a malformed ClientHello: %s",
                         what);
}

/* RFC 8446 section 4.1.2, as far as reaching the extensions takes. */
static int check_client_hello(hb_cursor hello, hb_detail *detail)
{
    hb_cursor field, extensions;
    if (hb_cursor_take(&hello, 2 + 32, &field) < 0 || /* legacy_version, random */
        take_vector(&hello, 1, &field) < 0 ||         /* legacy_session_id */
        take_vector(&hello, 2, &field) < 0 ||         /* cipher_suites */
        take_vector(&hello, 1, &field) < 0)           /* legacy_compression_methods */
        return refuse(detail, "it ends before its extensions");
    if (!hello.len)
        return 0; /* none at all: wolfSSL refuses it as older than TLS 1.3 */
    if (take_vector(&hello, 2, &extensions) < 0 || hello.len)
        return refuse(detail, "its extensions do not fill it exactly");
    while (extensions.len) {
        uint16_t type;
        hb_cursor data;
        if (take_u16(&extensions, &type) < 0 || take_vector(&extensions, 2, &data) < 0)
            return refuse(detail, "an extension overruns the list");
        if (type == EXTENSION_ALPN && !alpn_well_formed(data))
            return refuse(detail, "its ALPN protocol list is malformed");
    }
    return 0;
}

static int append(hb_hello_scan *s, const hb_mem *mem, const uint8_t *data, size_t len)
{
    if (s->msg_cap - s->msg_len < len) {
        size_t cap = s->msg_cap ? s->msg_cap : 512;
        while (cap - s->msg_len < len)
            cap *= 2;
        uint8_t *grown = hb_realloc(mem, s->msg, cap);
        if (!grown)
            return HBONE_ERR_NOMEM;
        s->msg = grown;
        s->msg_cap = cap;
    }
    memcpy(s->msg + s->msg_len, data, len);
    s->msg_len += len;
    return 0;
}

/* Check each complete handshake message and drop it. */
static int check_messages(hb_hello_scan *s, hb_detail *detail)
{
    while (s->msg_len >= 4) {
        size_t len = (size_t)s->msg[1] << 16 | (size_t)s->msg[2] << 8 | s->msg[3];
        if (len > HB_CLIENT_HELLO_MAX)
            return hb_detail_set(detail, HBONE_ERR_TLS_MESSAGE_TOO_LARGE,
                                 "client sent a plaintext handshake message of %zu bytes", len);
        if (s->msg_len - 4 < len)
            return 0; /* more to come */
        if (s->msg[0] == MESSAGE_CLIENT_HELLO) {
            int r = check_client_hello(hb_cursor_of(s->msg + 4, len), detail);
            if (r < 0)
                return r;
        }
        s->msg_len -= 4 + len;
        memmove(s->msg, s->msg + 4 + len, s->msg_len);
    }
    return 0;
}

int hb_hello_scan_feed(hb_hello_scan *s, const hb_mem *mem, const uint8_t *data, size_t len,
                       hb_detail *detail)
{
    int handshake_bytes = 0;
    while (len) {
        if (s->head_len < sizeof(s->head)) {
            s->head[s->head_len++] = *data++;
            len--;
            if (s->head_len == sizeof(s->head))
                s->body_left = (size_t)s->head[3] << 8 | s->head[4];
        } else {
            size_t n = len < s->body_left ? len : s->body_left;
            if (s->head[0] == RECORD_HANDSHAKE) {
                if (append(s, mem, data, n) < 0)
                    return hb_detail_set(detail, HBONE_ERR_NOMEM, "out of memory");
                handshake_bytes = 1;
            }
            data += n;
            len -= n;
            s->body_left -= n;
        }
        if (s->head_len == sizeof(s->head) && !s->body_left)
            s->head_len = 0; /* the next record */
    }
    return handshake_bytes ? check_messages(s, detail) : 0;
}

void hb_hello_scan_free(hb_hello_scan *s, const hb_mem *mem)
{
    hb_free(mem, s->msg);
    memset(s, 0, sizeof(*s));
}
