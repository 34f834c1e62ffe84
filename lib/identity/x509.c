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
#define DER_UTC_TIME 0x17
#define DER_GENERALIZED_TIME 0x18

/* @p n decimal digits; -1 if any is not one. */
static int digits(const uint8_t *p, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

/* Days from 1970-01-01 to @p y-@p m-@p d (proleptic Gregorian). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* A Time as RFC 5280 section 4.1.2.5 has it: UTCTime YYMMDDHHMMSSZ (years
 * 1950-2049) or GeneralizedTime YYYYMMDDHHMMSSZ, in seconds since the
 * epoch. Returns 0 or -1. */
static int parse_time(hb_cursor *in, int64_t *out)
{
    uint8_t tag;
    hb_cursor t;
    if (hb_der_read_any(in, &tag, &t) < 0)
        return -1;
    int year_digits = tag == DER_UTC_TIME ? 2 : tag == DER_GENERALIZED_TIME ? 4 : 0;
    if (!year_digits || t.len != (size_t)year_digits + 11 || t.p[t.len - 1] != 'Z')
        return -1;
    int year = digits(t.p, year_digits);
    const uint8_t *rest = t.p + year_digits;
    int month = digits(rest, 2), day = digits(rest + 2, 2), hour = digits(rest + 4, 2);
    int minute = digits(rest + 6, 2), second = digits(rest + 8, 2);
    if (year < 0 || month < 1 || month > 12 || day < 1 || day > 31 || hour < 0 || hour > 23 ||
        minute < 0 || minute > 59 || second < 0 || second > 59)
        return -1;
    if (year_digits == 2)
        year += year >= 50 ? 1900 : 2000;
    *out = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
    return 0;
}

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

/* Certificate: tbsCertificate, signatureAlgorithm, signatureValue, and
 * not a byte more. */
static int split_certificate(const uint8_t *der, size_t len, hb_cursor *tbs)
{
    hb_cursor in = hb_cursor_of(der, len), cert, field;
    if (!der || hb_der_read(&in, HB_DER_SEQUENCE, &cert) < 0 || in.len != 0 ||
        hb_der_read(&cert, HB_DER_SEQUENCE, tbs) < 0 ||
        hb_der_read(&cert, HB_DER_SEQUENCE, &field) < 0 ||
        hb_der_read(&cert, HB_DER_BIT_STRING, &field) < 0 || cert.len != 0)
        return MALFORMED;
    return 0;
}

int hb_x509_is_whole(const uint8_t *der, size_t len)
{
    hb_cursor tbs;
    return split_certificate(der, len, &tbs) == 0;
}

int hb_x509_parse_leaf(const uint8_t *der, size_t len, hb_x509_leaf *out)
{
    memset(out, 0, sizeof(*out));
    hb_cursor tbs, field;
    if (split_certificate(der, len, &tbs) < 0)
        return MALFORMED;
    /* TBSCertificate: [0] version, serial, signature, issuer, validity,
     * subject, subjectPublicKeyInfo, [1] [2] unique IDs, [3] extensions. */
    if (hb_der_read_optional(&tbs, HB_DER_CONTEXT_CONSTRUCTED(0), &field) < 0 ||
        hb_der_read(&tbs, HB_DER_INTEGER, &field) < 0)
        return MALFORMED;
    for (int i = 0; i < 5; i++) {
        if (hb_der_read(&tbs, HB_DER_SEQUENCE, &field) < 0)
            return MALFORMED;
        /* validity: notBefore, notAfter. The TLS layer judges validity;
         * this reads the expiry only, 0 when it is not in RFC 5280's form. */
        int64_t not_before;
        if (i == 2 && (parse_time(&field, &not_before) < 0 ||
                       parse_time(&field, &out->not_after) < 0 || field.len != 0))
            out->not_after = 0;
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
