/* SPDX-License-Identifier: MIT */
/* The strict DER element reader and the PEM block reader behind the identity checks. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hbone/hbone.h>

#include "testlib.h"

#include "common/mem.h"
#include "identity/der.h"
#include "identity/pem.h"

/* ------------------------------------------------------------------------ */
/* DER: one element header at a time                                         */

/*
 * An element is a header (tag and length octets, written out in full) plus
 * `avail` content bytes that follow it in the input. On success the element
 * must carry `content_len` of them; what is left stays in the cursor.
 */
struct der_case {
    const char *name;
    uint8_t header[8];
    size_t header_len;
    size_t avail;
    int ok;
    uint8_t tag;
    size_t content_len;
};

static const struct der_case der_cases[] = {
    /* definite short form */
    {"short length", {0x02, 0x01}, 2, 1, 1, 0x02, 1},
    {"short length zero", {0x05, 0x00}, 2, 0, 1, 0x05, 0},
    {"short length 127", {0x04, 0x7f}, 2, 127, 1, 0x04, 127},
    {"short length, more input follows", {0x02, 0x02}, 2, 5, 1, 0x02, 2},
    {"constructed tag", {0x30, 0x03}, 2, 3, 1, 0x30, 3},
    {"context tag", {0xa3, 0x01}, 2, 1, 1, 0xa3, 1},
    /* definite long form, minimal */
    {"long form 1 byte, 128", {0x04, 0x81, 0x80}, 3, 128, 1, 0x04, 128},
    {"long form 1 byte, 255", {0x04, 0x81, 0xff}, 3, 255, 1, 0x04, 255},
    {"long form 2 bytes, 256", {0x04, 0x82, 0x01, 0x00}, 4, 256, 1, 0x04, 256},
    {"long form 2 bytes, 40000", {0x04, 0x82, 0x9c, 0x40}, 4, 40000, 1, 0x04, 40000},
    {"long form 3 bytes, 65536", {0x04, 0x83, 0x01, 0x00, 0x00}, 5, 65536, 1, 0x04, 65536},
    /* not DER */
    {"long form for 5 (0x81 0x05)", {0x04, 0x81, 0x05}, 3, 5, 0, 0, 0},
    {"long form for 127", {0x04, 0x81, 0x7f}, 3, 127, 0, 0, 0},
    {"long form for 0", {0x04, 0x81, 0x00}, 3, 0, 0, 0, 0},
    {"leading zero length byte", {0x04, 0x82, 0x00, 0x80}, 4, 128, 0, 0, 0},
    {"leading zero, 3 bytes", {0x04, 0x83, 0x00, 0x01, 0x00}, 5, 256, 0, 0, 0},
    {"indefinite length 0x80", {0x30, 0x80}, 2, 4, 0, 0, 0},
    {"4-byte length", {0x04, 0x84, 0x01, 0x00, 0x00, 0x00}, 6, 0x01000000, 0, 0, 0},
    {"127-byte length field", {0x04, 0xff}, 2, 8, 0, 0, 0},
    {"high tag number form 0x1f", {0x1f, 0x05, 0x01}, 3, 1, 0, 0, 0},
    {"high tag number, context constructed", {0xbf, 0x20, 0x00}, 3, 0, 0, 0, 0},
    {"high tag number, application", {0x5f, 0x01, 0x00}, 3, 0, 0, 0, 0},
    /* the input ends too soon */
    {"empty input", {0}, 0, 0, 0, 0, 0},
    {"tag only", {0x30}, 1, 0, 0, 0, 0},
    {"long form, length byte missing", {0x04, 0x81}, 2, 0, 0, 0, 0},
    {"long form, second length byte missing", {0x04, 0x82, 0x01}, 3, 0, 0, 0, 0},
    {"short length beyond input", {0x04, 0x05}, 2, 4, 0, 0, 0},
    {"long length beyond input", {0x04, 0x82, 0x01, 0x00}, 4, 255, 0, 0, 0},
    {"3-byte length beyond input", {0x04, 0x83, 0x01, 0x00, 0x00}, 5, 65535, 0, 0, 0},
};
#define N_DER_CASES (sizeof(der_cases) / sizeof(der_cases[0]))

/* The case's input: header then `avail` bytes of a counting pattern. */
static uint8_t *der_case_input(const struct der_case *c, size_t *len)
{
    *len = c->header_len + c->avail;
    uint8_t *in = malloc(*len ? *len : 1);
    ck_assert_ptr_nonnull(in);
    memcpy(in, c->header, c->header_len);
    for (size_t i = 0; i < c->avail; i++)
        in[c->header_len + i] = (uint8_t)(i * 7 + 1);
    return in;
}

START_TEST(der_read_any_table)
{
    const struct der_case *c = &der_cases[_i];
    size_t len;
    uint8_t *in = der_case_input(c, &len);
    hb_cursor cur = hb_cursor_of(in, len), contents = {NULL, 0};
    uint8_t tag = 0xee;
    int r = hb_der_read_any(&cur, &tag, &contents);
    /* Positions relative to the input, taken before it is freed. */
    size_t cur_off = (size_t)(cur.p - in),
           contents_off = contents.p ? (size_t)(contents.p - in) : 0;
    free(in);
    if (c->ok) {
        ck_assert_msg(r == 0, "%s: read failed (%d)", c->name, r);
        ck_assert_msg(tag == c->tag, "%s: tag 0x%02x, want 0x%02x", c->name, tag, c->tag);
        ck_assert_msg(contents_off == c->header_len, "%s: contents start at +%zu, want +%zu",
                      c->name, contents_off, c->header_len);
        ck_assert_msg(contents.len == c->content_len, "%s: %zu content bytes, want %zu", c->name,
                      contents.len, c->content_len);
        size_t used = c->header_len + c->content_len;
        ck_assert_msg(cur_off == used && cur.len == len - used,
                      "%s: cursor at +%zu (%zu left), want +%zu", c->name, cur_off, cur.len, used);
    } else {
        ck_assert_msg(r == -1, "%s: accepted (%d), must be rejected", c->name, r);
        ck_assert_msg(cur_off == 0 && cur.len == len, "%s: cursor moved by a failed read", c->name);
        ck_assert_msg(tag == 0xee, "%s: tag written by a failed read", c->name);
    }
}
END_TEST

START_TEST(der_read_wants_the_tag)
{
    /* SEQUENCE { INTEGER 5, OCTET STRING "ab" } then BOOLEAN TRUE */
    static const uint8_t in[] = {0x30, 0x07, 0x02, 0x01, 0x05, 0x04,
                                 0x02, 'a',  'b',  0x01, 0x01, 0xff};
    hb_cursor cur = hb_cursor_of(in, sizeof(in)), seq, field;

    ck_assert_int_eq(hb_der_read(&cur, HB_DER_INTEGER, &field), -1);
    ck_assert_ptr_eq(cur.p, in);
    ck_assert_uint_eq(cur.len, sizeof(in));

    ck_assert_int_eq(hb_der_read(&cur, HB_DER_SEQUENCE, &seq), 0);
    ck_assert_ptr_eq(seq.p, in + 2);
    ck_assert_uint_eq(seq.len, 7);
    ck_assert_ptr_eq(cur.p, in + 9);
    ck_assert_uint_eq(cur.len, 3);

    ck_assert_int_eq(hb_der_read(&seq, HB_DER_INTEGER, &field), 0);
    ck_assert_uint_eq(field.len, 1);
    ck_assert_uint_eq(field.p[0], 5);
    ck_assert_int_eq(hb_der_read(&seq, HB_DER_OCTET_STRING, &field), 0);
    ck_assert_uint_eq(field.len, 2);
    ck_assert_int_eq(memcmp(field.p, "ab", 2), 0);
    ck_assert_uint_eq(seq.len, 0);
    ck_assert_int_eq(hb_der_read(&seq, HB_DER_INTEGER, &field), -1);

    ck_assert_int_eq(hb_der_read(&cur, HB_DER_BOOLEAN, &field), 0);
    ck_assert_uint_eq(field.len, 1);
    ck_assert_uint_eq(field.p[0], 0xff);
    ck_assert_uint_eq(cur.len, 0);
}
END_TEST

START_TEST(der_read_rejects_malformed_element_with_the_right_tag)
{
    static const uint8_t in[] = {0x02, 0x81, 0x01, 0x07};
    hb_cursor cur = hb_cursor_of(in, sizeof(in)), field;
    ck_assert_int_eq(hb_der_read(&cur, HB_DER_INTEGER, &field), -1);
    ck_assert_ptr_eq(cur.p, in);
    ck_assert_uint_eq(cur.len, sizeof(in));
}
END_TEST

START_TEST(der_read_optional_absent)
{
    /* an empty cursor: nothing to read */
    hb_cursor empty = hb_cursor_of("", 0), field;
    ck_assert_int_eq(hb_der_read_optional(&empty, HB_DER_CONTEXT_CONSTRUCTED(0), &field), 0);
    ck_assert_uint_eq(empty.len, 0);

    /* the next element has another tag: left alone for the next read */
    static const uint8_t in[] = {0x02, 0x01, 0x01};
    hb_cursor cur = hb_cursor_of(in, sizeof(in));
    ck_assert_int_eq(hb_der_read_optional(&cur, HB_DER_CONTEXT_CONSTRUCTED(0), &field), 0);
    ck_assert_ptr_eq(cur.p, in);
    ck_assert_uint_eq(cur.len, sizeof(in));
    ck_assert_int_eq(hb_der_read(&cur, HB_DER_INTEGER, &field), 0);
    ck_assert_uint_eq(field.p[0], 1);
}
END_TEST

START_TEST(der_read_optional_present)
{
    /* [0] { INTEGER 2 } INTEGER 9, as a certificate's version and serial */
    static const uint8_t in[] = {0xa0, 0x03, 0x02, 0x01, 0x02, 0x02, 0x01, 0x09};
    hb_cursor cur = hb_cursor_of(in, sizeof(in)), field, version;
    ck_assert_int_eq(hb_der_read_optional(&cur, HB_DER_CONTEXT_CONSTRUCTED(0), &field), 1);
    ck_assert_ptr_eq(field.p, in + 2);
    ck_assert_uint_eq(field.len, 3);
    ck_assert_ptr_eq(cur.p, in + 5);
    ck_assert_int_eq(hb_der_read(&field, HB_DER_INTEGER, &version), 0);
    ck_assert_uint_eq(version.p[0], 2);
    ck_assert_int_eq(hb_der_read_optional(&cur, HB_DER_CONTEXT_CONSTRUCTED(0), &field), 0);
    ck_assert_int_eq(hb_der_read(&cur, HB_DER_INTEGER, &field), 0);
    ck_assert_uint_eq(field.p[0], 9);
    ck_assert_uint_eq(cur.len, 0);
}
END_TEST

START_TEST(der_read_optional_malformed)
{
    static const struct {
        const char *name;
        uint8_t in[6];
        size_t len;
    } cases[] = {
        {"length beyond input", {0xa3, 0x05, 0x00}, 3},
        {"indefinite length", {0xa3, 0x80, 0x00, 0x00}, 4},
        {"non-minimal length", {0xa3, 0x81, 0x01, 0x00}, 4},
        {"header cut short", {0xa3}, 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hb_cursor cur = hb_cursor_of(cases[i].in, cases[i].len), field;
        int r = hb_der_read_optional(&cur, HB_DER_CONTEXT_CONSTRUCTED(3), &field);
        ck_assert_msg(r == -1, "%s: got %d, want -1", cases[i].name, r);
        ck_assert_msg(cur.p == cases[i].in && cur.len == cases[i].len,
                      "%s: cursor moved by a failed read", cases[i].name);
    }
}
END_TEST

/* ------------------------------------------------------------------------ */
/* PEM                                                                       */

#define BEGIN_CERT "-----BEGIN CERTIFICATE-----"
#define END_CERT "-----END CERTIFICATE-----"

/* A base64 encoder of our own, to produce bodies for the decoder. */
static char *b64_encode(const uint8_t *in, size_t len, size_t line, const char *eol)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t eol_len = strlen(eol), chars = (len + 2) / 3 * 4;
    char *out = malloc(chars + (chars / line + 1) * eol_len + 1);
    ck_assert_ptr_nonnull(out);
    size_t o = 0, col = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        char quad[4] = {abc[(v >> 18) & 63], abc[(v >> 12) & 63],
                        i + 1 < len ? abc[(v >> 6) & 63] : '=', i + 2 < len ? abc[v & 63] : '='};
        for (int k = 0; k < 4; k++) {
            out[o++] = quad[k];
            if (++col == line) {
                memcpy(out + o, eol, eol_len);
                o += eol_len;
                col = 0;
            }
        }
    }
    out[o] = '\0';
    return out;
}

/* hb_pem_next on a NUL-terminated text from position 0. */
static int pem_first(const char *text, const char *label, uint8_t **der, size_t *der_len)
{
    size_t pos = 0;
    *der = NULL;
    *der_len = 0;
    return hb_pem_next(hb_mem_default(), text, strlen(text), &pos, label, der, der_len);
}

struct pem_case {
    const char *name;
    const char *text;
    size_t text_len; /* 0: strlen(text) */
    int expect;
    const char *bytes; /* decoded, when expect == 0 */
    size_t bytes_len;
};

#define PEM(body) BEGIN_CERT "\n" body "\n" END_CERT "\n"
/* clang-format off */
#define BAD(name, body) {name, PEM(body), 0, HBONE_ERR_PEM, NULL, 0}
/* clang-format on */

static const struct pem_case pem_cases[] = {
    {"three bytes, no padding", PEM("QUJD"), 0, 0, "ABC", 3},
    {"two bytes, one '='", PEM("QUI="), 0, 0, "AB", 2},
    {"one byte, two '='", PEM("QQ=="), 0, 0, "A", 1},
    {"a zero byte", PEM("AA=="), 0, 0, "\0", 1},
    {"all 64 alphabet characters",
     PEM("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"), 0, 0,
     "\x00\x10\x83\x10\x51\x87\x20\x92\x8b\x30\xd3\x8f\x41\x14\x93\x51\x55\x97\x61\x96\x9b\x71"
     "\xd7\x9f\x82\x18\xa3\x92\x59\xa7\xa2\x9a\xab\xb2\xdb\xaf\xc3\x1c\xb3\xd3\x5d\xb7\xe3\x9e"
     "\xbb\xf3\xdf\xbf",
     48},
    {"CRLF line endings", BEGIN_CERT "\r\nQUJD\r\nREVG\r\n" END_CERT "\r\n", 0, 0, "ABCDEF", 6},
    {"blanks and tabs inside the body", BEGIN_CERT "\n QU JD\t\n  REVG \n" END_CERT, 0, 0, "ABCDEF",
     6},
    {"text before the block", "subject=whatever\nissuer=x\n" PEM("QUJD"), 0, 0, "ABC", 3},
    {"no line breaks around the body", BEGIN_CERT "QUJD" END_CERT, 0, 0, "ABC", 3},
    {"other label before it is skipped",
     "-----BEGIN PRIVATE KEY-----\nWFla\n-----END PRIVATE KEY-----\n" PEM("QUJD"), 0, 0, "ABC", 3},
    {"only another label", "-----BEGIN PRIVATE KEY-----\nQUJD\n-----END PRIVATE KEY-----\n", 0,
     HBONE_ERR_NOT_FOUND, NULL, 0},
    {"label that merely contains CERTIFICATE",
     "-----BEGIN TRUSTED CERTIFICATE-----\nQUJD\n-----END TRUSTED CERTIFICATE-----\n", 0,
     HBONE_ERR_NOT_FOUND, NULL, 0},
    {"no block at all", "This is not a PEM file.\n", 0, HBONE_ERR_NOT_FOUND, NULL, 0},
    {"empty text", "", 0, HBONE_ERR_NOT_FOUND, NULL, 0},
    {"missing END", BEGIN_CERT "\nQUJD\n", 0, HBONE_ERR_PEM, NULL, 0},
    {"END of another label", BEGIN_CERT "\nQUJD\n-----END PRIVATE KEY-----\n", 0, HBONE_ERR_PEM,
     NULL, 0},
    BAD("bad base64 character '!'", "QU!D"),
    BAD("bad base64 character '-' (base64url)", "QU-D"),
    BAD("bad base64 character '_' (base64url)", "QU_D"),
    BAD("bad base64 character '.'", "QU.D"),
    BAD("non-ASCII byte", "QU\xc3\xa9JD"),
    {"NUL byte in the body", PEM("QU\0JD"), sizeof(PEM("QU\0JD")) - 1, HBONE_ERR_PEM, NULL, 0},
    BAD("data after padding", "QQ==QUJD"),
    BAD("data between two '='", "QQ=A="),
    BAD("one '=' where two are due", "QQ="),
    BAD("two '=' where one is due", "QUI=="),
    BAD("padding after a full group", "QUJD="),
    BAD("padding after a full group, twice", "QUJD=="),
    BAD("three '='", "QQ==="),
    BAD("padding missing, one byte", "QQ"),
    BAD("padding missing, two bytes", "QUI"),
    BAD("a lone character holding non-zero bits", "QUJDR"),
    BAD("a lone character holding zero bits", "QUJDA"),
    BAD("a lone zero character with padding", "QUJDA=="),
    BAD("non-zero trailing bits with '=='", "QR=="),
    BAD("non-zero trailing bits with '='", "QUJ="),
    BAD("empty body", ""),
    BAD("whitespace-only body", " \r\n\t"),
    BAD("padding-only body", "=="),
};
#define N_PEM_CASES (sizeof(pem_cases) / sizeof(pem_cases[0]))

START_TEST(pem_table)
{
    const struct pem_case *c = &pem_cases[_i];
    size_t len = c->text_len ? c->text_len : strlen(c->text);
    size_t pos = 0, der_len = 0;
    uint8_t *der = NULL;
    int r = hb_pem_next(hb_mem_default(), c->text, len, &pos, "CERTIFICATE", &der, &der_len);
    /* Compare, then free, then assert: a failed assertion must not leak. */
    int bytes_match =
        r == 0 && der_len == c->bytes_len && c->bytes && memcmp(der, c->bytes, der_len) == 0;
    int der_set = der != NULL;
    if (r == 0)
        hb_free(hb_mem_default(), der);
    ck_assert_msg(r == c->expect, "%s: got %d (%s), want %d (%s)", c->name, r, hbone_strerror(r),
                  c->expect, hbone_strerror(c->expect));
    if (c->expect == 0) {
        ck_assert_msg(bytes_match, "%s: decoded %zu bytes, want %zu other bytes", c->name, der_len,
                      c->bytes_len);
        const char *end = strstr(c->text, END_CERT);
        ck_assert_msg(pos == (size_t)(end - c->text) + strlen(END_CERT),
                      "%s: pos %zu is not just past the END line", c->name, pos);
    } else {
        ck_assert_msg(!der_set, "%s: output set on failure", c->name);
        ck_assert_msg(pos == 0, "%s: pos moved on failure", c->name);
    }
}
END_TEST

START_TEST(pem_blocks_in_order_then_not_found)
{
    const char text[] = "Bag Attributes: ignored\n" BEGIN_CERT "\nQUJD\n" END_CERT "\n"
                        "text between blocks, even ----- dashes\n"
                        "-----BEGIN PRIVATE KEY-----\nWFla\n-----END PRIVATE KEY-----\n" BEGIN_CERT
                        "\nREVGRw==\n" END_CERT "\ntrailing text\n";
    size_t len = sizeof(text) - 1, pos = 0, der_len = 0;
    uint8_t *der = NULL;
    const hb_mem *mem = hb_mem_default();

    ck_assert_int_eq(hb_pem_next(mem, text, len, &pos, "CERTIFICATE", &der, &der_len), 0);
    ck_assert_uint_eq(der_len, 3);
    ck_assert_int_eq(memcmp(der, "ABC", 3), 0);
    hb_free(mem, der);
    size_t first_end = (size_t)(strstr(text, END_CERT) - text) + strlen(END_CERT);
    ck_assert_uint_eq(pos, first_end);

    ck_assert_int_eq(hb_pem_next(mem, text, len, &pos, "CERTIFICATE", &der, &der_len), 0);
    ck_assert_uint_eq(der_len, 4);
    ck_assert_int_eq(memcmp(der, "DEFG", 4), 0);
    hb_free(mem, der);
    ck_assert_uint_gt(pos, first_end);

    size_t last = pos;
    der = NULL;
    ck_assert_int_eq(hb_pem_next(mem, text, len, &pos, "CERTIFICATE", &der, &der_len),
                     HBONE_ERR_NOT_FOUND);
    ck_assert_ptr_null(der);
    ck_assert_uint_eq(pos, last);

    /* The key in between is found by its own label, from the start. */
    pos = 0;
    ck_assert_int_eq(hb_pem_next(mem, text, len, &pos, "PRIVATE KEY", &der, &der_len), 0);
    ck_assert_uint_eq(der_len, 3);
    ck_assert_int_eq(memcmp(der, "XYZ", 3), 0);
    hb_free(mem, der);

    /* A position past the end finds nothing. */
    pos = len + 1;
    ck_assert_int_eq(hb_pem_next(mem, text, len, &pos, "CERTIFICATE", &der, &der_len),
                     HBONE_ERR_NOT_FOUND);
}
END_TEST

START_TEST(pem_length_bounds_the_text)
{
    /* The END line lies beyond len: the block is unterminated. */
    const char text[] = BEGIN_CERT "\nQUJD\n" END_CERT "\n";
    size_t pos = 0, der_len = 0;
    uint8_t *der = NULL;
    size_t cut = (size_t)(strstr(text, END_CERT) - text) + 5;
    ck_assert_int_eq(hb_pem_next(hb_mem_default(), text, cut, &pos, "CERTIFICATE", &der, &der_len),
                     HBONE_ERR_PEM);
    ck_assert_ptr_null(der);
}
END_TEST

START_TEST(pem_decodes_what_we_encode)
{
    /* Every length modulo 3, short and long, LF and CRLF, 64-column lines. */
    uint8_t data[600];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 131 + 17);
    static const size_t lens[] = {1, 2, 3, 4, 5, 6, 47, 48, 49, 100, 599, 600};
    static const char *const eols[] = {"\n", "\r\n"};
    for (size_t e = 0; e < 2; e++) {
        for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
            char *body = b64_encode(data, lens[k], 64, eols[e]);
            size_t text_len = strlen(body) + 80;
            char *text = malloc(text_len);
            ck_assert_ptr_nonnull(text);
            snprintf(text, text_len, "%s%s%s%s%s", BEGIN_CERT, eols[e], body, eols[e], END_CERT);
            uint8_t *der = NULL;
            size_t der_len = 0;
            int r = pem_first(text, "CERTIFICATE", &der, &der_len);
            ck_assert_msg(r == 0, "%zu bytes, eol %zu: %s", lens[k], e, hbone_strerror(r));
            ck_assert_msg(der_len == lens[k], "%zu bytes decoded to %zu", lens[k], der_len);
            ck_assert_msg(memcmp(der, data, der_len) == 0, "%zu bytes: content differs", lens[k]);
            hb_free(hb_mem_default(), der);
            free(text);
            free(body);
        }
    }
}
END_TEST

START_TEST(pem_label_too_long)
{
    char label[64];
    memset(label, 'A', sizeof(label) - 1);
    label[sizeof(label) - 1] = '\0';
    uint8_t *der = NULL;
    size_t der_len = 0;
    ck_assert_int_eq(pem_first("anything", label, &der, &der_len), HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(der);
}
END_TEST

START_TEST(pem_allocation_failure)
{
    tl_counting c;
    hbone_mem *mem = tl_counting_mem(&c, 0); /* every allocation fails */
    const char text[] = BEGIN_CERT "\nQUJD\n" END_CERT "\n";
    size_t pos = 0, der_len = 0;
    uint8_t *der = NULL;
    ck_assert_int_eq(hb_pem_next(mem, text, sizeof(text) - 1, &pos, "CERTIFICATE", &der, &der_len),
                     HBONE_ERR_NOMEM);
    ck_assert_int_ge(c.attempts, 1);
    ck_assert_int_eq(c.allocs, 0);
    ck_assert_ptr_null(der);
    ck_assert_uint_eq(pos, 0);
    hbone_mem_del(mem);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("der");

    TCase *der = tcase_create("der");
    tcase_add_loop_test(der, der_read_any_table, 0, (int)N_DER_CASES);
    tcase_add_test(der, der_read_wants_the_tag);
    tcase_add_test(der, der_read_rejects_malformed_element_with_the_right_tag);
    tcase_add_test(der, der_read_optional_absent);
    tcase_add_test(der, der_read_optional_present);
    tcase_add_test(der, der_read_optional_malformed);
    suite_add_tcase(s, der);

    TCase *pem = tcase_create("pem");
    tcase_add_loop_test(pem, pem_table, 0, (int)N_PEM_CASES);
    tcase_add_test(pem, pem_blocks_in_order_then_not_found);
    tcase_add_test(pem, pem_length_bounds_the_text);
    tcase_add_test(pem, pem_decodes_what_we_encode);
    tcase_add_test(pem, pem_label_too_long);
    tcase_add_test(pem, pem_allocation_failure);
    suite_add_tcase(s, pem);

    return tl_run_suite(s);
}
