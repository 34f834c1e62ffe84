/* SPDX-License-Identifier: MIT */
#include "identity/x509.h"

#include <string.h>

#include <hbone/error.h>

#include "identity/der.h"

/* Extension OIDs (2.5.29.x) and EKU purposes (1.3.6.1.5.5.7.3.x), DER contents. */
static const uint8_t oid_san[] = {0x55, 0x1d, 0x11};
static const uint8_t oid_basic_constraints[] = {0x55, 0x1d, 0x13};
static const uint8_t oid_key_usage[] = {0x55, 0x1d, 0x0f};
static const uint8_t oid_ext_key_usage[] = {0x55, 0x1d, 0x25};
static const uint8_t oid_server_auth[] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01};
static const uint8_t oid_client_auth[] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02};

#define GENERAL_NAME_DNS HB_DER_CONTEXT(2)
#define GENERAL_NAME_URI HB_DER_CONTEXT(6)

#define MALFORMED HBONE_ERR_SVID_MALFORMED

static int parse_san(hb_cursor value, hb_x509_leaf *out)
{
    hb_cursor names;
    if (hb_der_read(&value, HB_DER_SEQUENCE, &names) < 0 || value.len != 0 || names.len == 0)
        return MALFORMED;
    out->general_names = names;
    while (names.len > 0) {
        uint8_t tag;
        hb_cursor name;
        if (hb_der_read_any(&names, &tag, &name) < 0)
            return MALFORMED;
        out->uri_san_count += tag == GENERAL_NAME_URI;
        out->dns_san_count += tag == GENERAL_NAME_DNS;
    }
    return 0;
}

int hb_x509_next_uri(hb_cursor *names, hb_cursor *uri)
{
    while (names->len > 0) {
        uint8_t tag;
        if (hb_der_read_any(names, &tag, uri) < 0)
            return 0; /* cannot happen on validated names; stop rather than loop */
        if (tag == GENERAL_NAME_URI)
            return 1;
    }
    return 0;
}

static int parse_basic_constraints(hb_cursor value, hb_x509_leaf *out)
{
    hb_cursor seq, flag, path_len;
    if (hb_der_read(&value, HB_DER_SEQUENCE, &seq) < 0 || value.len != 0)
        return MALFORMED;
    int r = hb_der_read_optional(&seq, HB_DER_BOOLEAN, &flag);
    if (r < 0)
        return MALFORMED;
    if (r == 1) {
        /* DER encodes TRUE as 0xff; FALSE is the default and must be omitted. */
        if (flag.len != 1 || flag.p[0] != 0xff)
            return MALFORMED;
        out->is_ca = 1;
    }
    r = hb_der_read_optional(&seq, HB_DER_INTEGER, &path_len);
    if (r < 0 || seq.len != 0)
        return MALFORMED;
    out->has_basic_constraints = 1;
    return 0;
}

static int parse_key_usage(hb_cursor value, hb_x509_leaf *out)
{
    hb_cursor bits;
    uint8_t unused;
    if (hb_der_read(&value, HB_DER_BIT_STRING, &bits) < 0 || value.len != 0 ||
        hb_cursor_u8(&bits, &unused) < 0 || unused > 7 || bits.len == 0 || bits.len > 2)
        return MALFORMED;
    /* DER: the unused trailing bits are zero. */
    if (bits.p[bits.len - 1] & ((1u << unused) - 1))
        return MALFORMED;
    unsigned usage = 0;
    for (size_t byte = 0; byte < bits.len; byte++) {
        for (unsigned bit = 0; bit < 8; bit++) {
            if (bits.p[byte] & (0x80u >> bit))
                usage |= 1u << (byte * 8 + bit);
        }
    }
    out->has_key_usage = 1;
    out->key_usage = usage;
    return 0;
}

static int parse_ext_key_usage(hb_cursor value, hb_x509_leaf *out)
{
    hb_cursor purposes;
    if (hb_der_read(&value, HB_DER_SEQUENCE, &purposes) < 0 || value.len != 0 || purposes.len == 0)
        return MALFORMED;
    while (purposes.len > 0) {
        hb_cursor oid;
        if (hb_der_read(&purposes, HB_DER_OID, &oid) < 0)
            return MALFORMED;
        if (hb_cursor_equals(&oid, oid_server_auth, sizeof(oid_server_auth)))
            out->eku_server_auth = 1;
        else if (hb_cursor_equals(&oid, oid_client_auth, sizeof(oid_client_auth)))
            out->eku_client_auth = 1;
    }
    out->has_ext_key_usage = 1;
    return 0;
}

struct extension_parser {
    const uint8_t *oid;
    size_t oid_len;
    int (*parse)(hb_cursor value, hb_x509_leaf *out);
};

static const struct extension_parser extension_parsers[] = {
    {oid_san, sizeof(oid_san), parse_san},
    {oid_basic_constraints, sizeof(oid_basic_constraints), parse_basic_constraints},
    {oid_key_usage, sizeof(oid_key_usage), parse_key_usage},
    {oid_ext_key_usage, sizeof(oid_ext_key_usage), parse_ext_key_usage},
};
#define EXTENSION_PARSERS (sizeof(extension_parsers) / sizeof(extension_parsers[0]))

static int parse_extensions(hb_cursor exts, hb_x509_leaf *out)
{
    int seen[EXTENSION_PARSERS] = {0};
    while (exts.len > 0) {
        hb_cursor ext, oid, critical, value;
        if (hb_der_read(&exts, HB_DER_SEQUENCE, &ext) < 0 ||
            hb_der_read(&ext, HB_DER_OID, &oid) < 0 ||
            hb_der_read_optional(&ext, HB_DER_BOOLEAN, &critical) < 0 ||
            hb_der_read(&ext, HB_DER_OCTET_STRING, &value) < 0 || ext.len != 0)
            return MALFORMED;
        for (size_t i = 0; i < EXTENSION_PARSERS; i++) {
            const struct extension_parser *p = &extension_parsers[i];
            if (!hb_cursor_equals(&oid, p->oid, p->oid_len))
                continue;
            /* RFC 5280 4.2: an extension appears at most once. Two SAN
             * extensions would let a certificate carry a second identity. */
            if (seen[i]++)
                return MALFORMED;
            int r = p->parse(value, out);
            if (r < 0)
                return r;
        }
    }
    return 0;
}

int hb_x509_parse_leaf(const uint8_t *der, size_t len, hb_x509_leaf *out)
{
    memset(out, 0, sizeof(*out));
    hb_cursor in = hb_cursor_of(der, len), cert, tbs, field;
    if (!der || hb_der_read(&in, HB_DER_SEQUENCE, &cert) < 0 || in.len != 0 ||
        hb_der_read(&cert, HB_DER_SEQUENCE, &tbs) < 0 ||
        hb_der_read(&cert, HB_DER_SEQUENCE, &field) < 0 ||
        hb_der_read(&cert, HB_DER_BIT_STRING, &field) < 0 || cert.len != 0)
        return MALFORMED;
    /* TBSCertificate: [0] version, serial, signature, issuer, validity,
     * subject, subjectPublicKeyInfo, [1] [2] unique IDs, [3] extensions. */
    if (hb_der_read_optional(&tbs, HB_DER_CONTEXT_CONSTRUCTED(0), &field) < 0 ||
        hb_der_read(&tbs, HB_DER_INTEGER, &field) < 0)
        return MALFORMED;
    for (int i = 0; i < 5; i++) {
        if (hb_der_read(&tbs, HB_DER_SEQUENCE, &field) < 0)
            return MALFORMED;
    }
    if (hb_der_read_optional(&tbs, HB_DER_CONTEXT(1), &field) < 0 ||
        hb_der_read_optional(&tbs, HB_DER_CONTEXT(2), &field) < 0)
        return MALFORMED;
    hb_cursor exts_wrapper, exts;
    int r = hb_der_read_optional(&tbs, HB_DER_CONTEXT_CONSTRUCTED(3), &exts_wrapper);
    if (r < 0 || tbs.len != 0)
        return MALFORMED;
    if (r == 0) /* a v1 certificate: no extensions, hence no identity */
        return 0;
    if (hb_der_read(&exts_wrapper, HB_DER_SEQUENCE, &exts) < 0 || exts_wrapper.len != 0)
        return MALFORMED;
    return parse_extensions(exts, out);
}
