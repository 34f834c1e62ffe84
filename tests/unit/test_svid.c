/* SPDX-License-Identifier: MIT */
/* X.509-SVID checks on the generated test PKI and on hand-built DER certificates. */
#include <check.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hbone/hbone.h>

#include "testlib.h"

#include "identity/x509.h"

#define CL "spiffe://cluster.local/ns/default/sa/"
#define TDB "spiffe://td-b.example/ns/default/sa/"

static const char *mode_name(int mode)
{
    return mode == HBONE_SVID_STRICT ? "strict" : "lenient";
}

/*
 * What one check returned, kept without heap memory so that the inputs can be
 * freed before anything is asserted: a failed assertion must not leak.
 */
struct outcome {
    int r;           /* with id_out */
    int r_no_id;     /* with id_out NULL */
    int id_written;  /* *id_out was assigned */
    int id_returned; /* ... and holds an ID */
    char id[HBONE_SPIFFE_ID_MAX + 1];
};

static void keep(struct outcome *o, int r, hbone_spiffe_id *id, const void *sentinel)
{
    o->r = r;
    o->id_written = (const void *)id != sentinel;
    o->id_returned = o->id_written && id != NULL;
    o->id[0] = '\0';
    if (o->id_returned) {
        snprintf(o->id, sizeof(o->id), "%s", hbone_spiffe_id_str(id, NULL));
        hbone_spiffe_id_del(id);
    }
}

static void run_der(struct outcome *o, const uint8_t *der, size_t len, int mode)
{
    hbone_spiffe_id *id = (hbone_spiffe_id *)o; /* must be overwritten */
    int r = hbone_svid_check_der(der, len, mode, &id, NULL);
    keep(o, r, id, o);
    o->r_no_id = hbone_svid_check_der(der, len, mode, NULL, NULL);
}

static void run_pem(struct outcome *o, const char *pem, size_t len, int mode)
{
    hbone_spiffe_id *id = (hbone_spiffe_id *)o;
    int r = hbone_svid_check_pem(pem, len, mode, &id, NULL);
    keep(o, r, id, o);
    o->r_no_id = hbone_svid_check_pem(pem, len, mode, NULL, NULL);
}

/* Assert the code (with and without id_out) and the ID (or none) handed back. */
static void expect_outcome(const char *what, int mode, const struct outcome *o, int want,
                           const char *want_id)
{
    ck_assert_msg(o->r == want, "%s (%s): got %d (%s), want %d (%s)", what, mode_name(mode), o->r,
                  hbone_strerror(o->r), want, hbone_strerror(want));
    ck_assert_msg(o->r_no_id == want, "%s (%s): without id_out got %d (%s)", what, mode_name(mode),
                  o->r_no_id, hbone_strerror(o->r_no_id));
    ck_assert_msg(o->id_written, "%s (%s): *id_out left unassigned", what, mode_name(mode));
    if (want < 0) {
        ck_assert_msg(!o->id_returned, "%s (%s): failed but returned an ID", what, mode_name(mode));
        return;
    }
    ck_assert_msg(o->id_returned, "%s (%s): no ID returned", what, mode_name(mode));
    ck_assert_msg(strcmp(o->id, want_id) == 0, "%s (%s): ID %s, want %s", what, mode_name(mode),
                  o->id, want_id);
}

/* ------------------------------------------------------------------------ */
/* The generated PKI                                                         */

struct pki_case {
    const char *file;
    int strict;
    const char *strict_id;
    int lenient;
    const char *lenient_id;
};

/* clang-format off */
#define BOTH_OK(file, id) {file, 0, id, 0, id}
#define BOTH_FAIL(file, code) {file, code, NULL, code, NULL}
/* clang-format on */

static const struct pki_case pki_cases[] = {
    /* good leaves: identity only, so dates and issuers do not matter here */
    BOTH_OK("server.pem", CL "server"),
    BOTH_OK("client.pem", CL "client"),
    BOTH_OK("client2.pem", "spiffe://cluster.local/ns/other/sa/client2"),
    BOTH_OK("rsa-leaf.pem", CL "rsa-leaf"),
    BOTH_OK("rsa-client.pem", CL "rsa-client"),
    BOTH_OK("rsa-server.pem", CL "rsa-server"),
    BOTH_OK("uri-and-dns.pem", CL "client"),
    BOTH_OK("huge.pem", CL "huge"),
    BOTH_OK("b-client.pem", TDB "client"),
    BOTH_OK("b-server.pem", TDB "server"),
    BOTH_OK("foreign-td.pem", TDB "client"),
    BOTH_OK("evil-client.pem", CL "client"),
    BOTH_OK("evil-server.pem", CL "server"),
    BOTH_OK("expired.pem", CL "expired"),
    BOTH_OK("not-yet-valid.pem", CL "not-yet-valid"),
    BOTH_OK("expired-int-leaf.pem", CL "expired-int"),
    BOTH_OK("long-chain.pem", CL "long-chain"),
    /* basicConstraints and keyUsage */
    BOTH_FAIL("ca-true.pem", HBONE_ERR_SVID_CA),
    BOTH_FAIL("key-cert-sign.pem", HBONE_ERR_SVID_KEY_USAGE),
    BOTH_FAIL("no-key-usage.pem", HBONE_ERR_SVID_KEY_USAGE),
    BOTH_FAIL("no-digital-signature.pem", HBONE_ERR_SVID_KEY_USAGE),
    /* extendedKeyUsage */
    BOTH_FAIL("eku-server-only.pem", HBONE_ERR_SVID_EXT_KEY_USAGE),
    BOTH_FAIL("eku-client-only.pem", HBONE_ERR_SVID_EXT_KEY_USAGE),
    BOTH_FAIL("eku-code-signing.pem", HBONE_ERR_SVID_EXT_KEY_USAGE),
    /* subject alternative names */
    BOTH_FAIL("no-san.pem", HBONE_ERR_SVID_NO_URI_SAN),
    BOTH_FAIL("dns-spiffe.pem", HBONE_ERR_SVID_NO_URI_SAN),
    {"two-uri.pem", HBONE_ERR_SVID_MULTIPLE_URI_SANS, NULL, 0, CL "client"},
    {"bad-uri-first-then-good.pem", HBONE_ERR_SVID_MULTIPLE_URI_SANS, NULL, 0, CL "client"},
    /* A single URI SAN that is no SPIFFE ID: strict names the syntax rule,
     * lenient finds no URI SAN that parses. */
    {"bad-uri-upper.pem", HBONE_ERR_SPIFFE_TRUST_DOMAIN_CHAR, NULL, HBONE_ERR_SVID_NO_URI_SAN,
     NULL},
    {"bad-uri-scheme.pem", HBONE_ERR_SPIFFE_SCHEME, NULL, HBONE_ERR_SVID_NO_URI_SAN, NULL},
    /* CA certificates carry no URI SAN */
    BOTH_FAIL("root-a.pem", HBONE_ERR_SVID_NO_URI_SAN),
    BOTH_FAIL("root-b.pem", HBONE_ERR_SVID_NO_URI_SAN),
    BOTH_FAIL("root-rsa.pem", HBONE_ERR_SVID_NO_URI_SAN),
    BOTH_FAIL("root-evil.pem", HBONE_ERR_SVID_NO_URI_SAN),
    BOTH_FAIL("int-a.pem", HBONE_ERR_SVID_NO_URI_SAN),
    BOTH_FAIL("int-b.pem", HBONE_ERR_SVID_NO_URI_SAN),
    BOTH_FAIL("int-rsa.pem", HBONE_ERR_SVID_NO_URI_SAN),
    BOTH_FAIL("int-rsa-pss.pem", HBONE_ERR_SVID_NO_URI_SAN),
    BOTH_FAIL("int-evil.pem", HBONE_ERR_SVID_NO_URI_SAN),
    BOTH_FAIL("int-expired.pem", HBONE_ERR_SVID_NO_URI_SAN),
    /* valid base64, random bytes */
    BOTH_FAIL("garbage.pem", HBONE_ERR_SVID_MALFORMED),
};
#define N_PKI_CASES (sizeof(pki_cases) / sizeof(pki_cases[0]))

START_TEST(pki_der_table)
{
    const struct pki_case *c = &pki_cases[_i];
    size_t len = 0;
    uint8_t *der = tl_pki_der(c->file, &len);
    struct outcome strict, lenient;
    run_der(&strict, der, len, HBONE_SVID_STRICT);
    run_der(&lenient, der, len, HBONE_SVID_LENIENT);
    free(der);
    expect_outcome(c->file, HBONE_SVID_STRICT, &strict, c->strict, c->strict_id);
    expect_outcome(c->file, HBONE_SVID_LENIENT, &lenient, c->lenient, c->lenient_id);
}
END_TEST

START_TEST(pki_pem_table)
{
    const struct pki_case *c = &pki_cases[_i];
    size_t len = 0;
    char *pem = tl_pki_read(c->file, &len);
    struct outcome strict, lenient;
    run_pem(&strict, pem, len, HBONE_SVID_STRICT);
    run_pem(&lenient, pem, len, HBONE_SVID_LENIENT);
    free(pem);
    expect_outcome(c->file, HBONE_SVID_STRICT, &strict, c->strict, c->strict_id);
    expect_outcome(c->file, HBONE_SVID_LENIENT, &lenient, c->lenient, c->lenient_id);
}
END_TEST

START_TEST(pem_chain_files_check_the_first_certificate)
{
    static const struct {
        const char *file;
        int want;
        const char *id;
    } cases[] = {
        {"server.chain.pem", 0, CL "server"},
        {"rsa-client.chain.pem", 0, CL "rsa-client"},
        {"long-chain.chain.pem", 0, CL "long-chain"},
        {"ca-true.chain.pem", HBONE_ERR_SVID_CA, NULL},
        {"no-san.chain.pem", HBONE_ERR_SVID_NO_URI_SAN, NULL},
        /* a bundle starts with a root */
        {"bundle-cluster.local.pem", HBONE_ERR_SVID_NO_URI_SAN, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len;
        char *pem = tl_pki_read(cases[i].file, &len);
        struct outcome o;
        run_pem(&o, pem, len, HBONE_SVID_STRICT);
        free(pem);
        expect_outcome(cases[i].file, HBONE_SVID_STRICT, &o, cases[i].want, cases[i].id);
    }
}
END_TEST

START_TEST(pem_without_a_certificate)
{
    static const char *const files[] = {"not-pem.txt", "server.key", "server.sec1.key"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        size_t len;
        char *text = tl_pki_read(files[i], &len);
        struct outcome strict, lenient;
        run_pem(&strict, text, len, HBONE_SVID_STRICT);
        run_pem(&lenient, text, len, HBONE_SVID_LENIENT);
        free(text);
        expect_outcome(files[i], HBONE_SVID_STRICT, &strict, HBONE_ERR_PEM, NULL);
        expect_outcome(files[i], HBONE_SVID_LENIENT, &lenient, HBONE_ERR_PEM, NULL);
    }
    hbone_spiffe_id *id = NULL;
    ck_assert_int_eq(hbone_svid_check_pem("", 0, HBONE_SVID_STRICT, &id, NULL), HBONE_ERR_PEM);
    const char bad[] = "-----BEGIN CERTIFICATE-----\nMII!\n-----END CERTIFICATE-----\n";
    ck_assert_int_eq(hbone_svid_check_pem(bad, sizeof(bad) - 1, HBONE_SVID_STRICT, &id, NULL),
                     HBONE_ERR_PEM);
    const char open_only[] = "-----BEGIN CERTIFICATE-----\nMIIB\n";
    ck_assert_int_eq(
        hbone_svid_check_pem(open_only, sizeof(open_only) - 1, HBONE_SVID_STRICT, &id, NULL),
        HBONE_ERR_PEM);
    ck_assert_ptr_null(id);
}
END_TEST

START_TEST(pem_key_before_the_certificate)
{
    size_t key_len, cert_len;
    char *key = tl_pki_read("client.key", &key_len);
    char *cert = tl_pki_read("client.pem", &cert_len);
    char *both = malloc(key_len + cert_len);
    ck_assert_ptr_nonnull(both);
    memcpy(both, key, key_len);
    memcpy(both + key_len, cert, cert_len);
    struct outcome o;
    run_pem(&o, both, key_len + cert_len, HBONE_SVID_STRICT);
    free(both);
    free(cert);
    free(key);
    expect_outcome("key then certificate", HBONE_SVID_STRICT, &o, 0, CL "client");
}
END_TEST

START_TEST(invalid_arguments)
{
    size_t len, der_len;
    char *pem = tl_pki_read("server.pem", &len);
    uint8_t *der = tl_pki_der("server.pem", &der_len);
    static const int bad_modes[] = {-1, 2, 100};
    for (size_t i = 0; i < sizeof(bad_modes) / sizeof(bad_modes[0]); i++) {
        hbone_spiffe_id *id = (hbone_spiffe_id *)&id;
        ck_assert_int_eq(hbone_svid_check_der(der, der_len, bad_modes[i], &id, NULL),
                         HBONE_ERR_INVALID_ARGUMENT);
        ck_assert_ptr_null(id);
        id = (hbone_spiffe_id *)&id;
        ck_assert_int_eq(hbone_svid_check_pem(pem, len, bad_modes[i], &id, NULL),
                         HBONE_ERR_INVALID_ARGUMENT);
        ck_assert_ptr_null(id);
    }
    hbone_spiffe_id *id = (hbone_spiffe_id *)&id;
    ck_assert_int_eq(hbone_svid_check_der(NULL, 10, HBONE_SVID_STRICT, &id, NULL),
                     HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(id);
    id = (hbone_spiffe_id *)&id;
    ck_assert_int_eq(hbone_svid_check_pem(NULL, 10, HBONE_SVID_STRICT, &id, NULL),
                     HBONE_ERR_INVALID_ARGUMENT);
    ck_assert_ptr_null(id);
    /* An empty certificate is malformed, not a usage error. */
    ck_assert_int_eq(hbone_svid_check_der(der, 0, HBONE_SVID_STRICT, NULL, NULL),
                     HBONE_ERR_SVID_MALFORMED);
    /* Any prefix of a good certificate is malformed. */
    for (size_t cut = 1; cut < der_len; cut += 37) {
        ck_assert_msg(hbone_svid_check_der(der, cut, HBONE_SVID_STRICT, NULL, NULL) ==
                          HBONE_ERR_SVID_MALFORMED,
                      "prefix of %zu bytes accepted", cut);
    }
    free(pem);
    free(der);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Hand-built certificates                                                   */

/* A byte string under construction; every builder below consumes its blob arguments. */
typedef struct blob {
    uint8_t *p;
    size_t len;
} blob;

static blob bytes(const void *p, size_t n)
{
    blob b = {malloc(n ? n : 1), n};
    ck_assert_ptr_nonnull(b.p);
    if (n)
        memcpy(b.p, p, n);
    return b;
}

#define BYTES(...) bytes((const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__}))
#define NOTHING bytes(NULL, 0)

/* Concatenate @p n blobs. */
static blob cat(int n, ...)
{
    va_list ap;
    va_start(ap, n);
    blob out = NOTHING;
    for (int i = 0; i < n; i++) {
        blob b = va_arg(ap, blob);
        uint8_t *p = realloc(out.p, out.len + b.len + 1);
        ck_assert_ptr_nonnull(p);
        out.p = p;
        if (b.len)
            memcpy(out.p + out.len, b.p, b.len);
        out.len += b.len;
        free(b.p);
    }
    va_end(ap);
    return out;
}

/* tag, minimal DER length, contents */
static blob tlv(uint8_t tag, blob contents)
{
    uint8_t head[6];
    size_t h = 0, n = contents.len;
    head[h++] = tag;
    if (n < 0x80) {
        head[h++] = (uint8_t)n;
    } else {
        size_t k = 0;
        for (size_t m = n; m; m >>= 8)
            k++;
        head[h++] = (uint8_t)(0x80 | k);
        while (k--)
            head[h++] = (uint8_t)(n >> (8 * k));
    }
    return cat(2, bytes(head, h), contents);
}

#define SEQ(n, ...) tlv(0x30, cat(n, __VA_ARGS__))

static blob oid_san(void)
{
    return BYTES(0x06, 0x03, 0x55, 0x1d, 0x11);
}
static blob oid_bc(void)
{
    return BYTES(0x06, 0x03, 0x55, 0x1d, 0x13);
}
static blob oid_ku(void)
{
    return BYTES(0x06, 0x03, 0x55, 0x1d, 0x0f);
}
static blob oid_eku(void)
{
    return BYTES(0x06, 0x03, 0x55, 0x1d, 0x25);
}
static blob oid_server_auth(void)
{
    return BYTES(0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01);
}
static blob oid_client_auth(void)
{
    return BYTES(0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02);
}
static blob critical(void)
{
    return BYTES(0x01, 0x01, 0xff);
}

/* Extension { extnID, critical TRUE, extnValue OCTET STRING { value } } */
static blob ext(blob oid, blob value)
{
    return SEQ(3, oid, critical(), tlv(0x04, value));
}

static blob uri_n(const char *s, size_t n)
{
    return tlv(0x86, bytes(s, n));
}
static blob uri(const char *s)
{
    return uri_n(s, strlen(s));
}
static blob dns(const char *s)
{
    return tlv(0x82, bytes(s, strlen(s)));
}

static blob san_ext(blob names)
{
    return ext(oid_san(), tlv(0x30, names));
}
static blob bc_leaf(void)
{
    return ext(oid_bc(), tlv(0x30, NOTHING));
}
/* keyUsage with digitalSignature and keyEncipherment, as Istio issues it */
static blob ku_leaf(void)
{
    return ext(oid_ku(), BYTES(0x03, 0x02, 0x05, 0xa0));
}
static blob eku_both(void)
{
    return ext(oid_eku(), SEQ(2, oid_server_auth(), oid_client_auth()));
}

#define GOOD_ID "spiffe://example.org/ns/a/sa/b"

/*
 * A certificate with just what hb_x509_parse_leaf walks: the signature
 * algorithm is ecdsa-with-SHA256, issuer, validity, subject and key are empty
 * SEQUENCEs, and the signature is three meaningless bytes.
 */
static blob alg(void)
{
    return SEQ(1, BYTES(0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02));
}

static blob cert_of(blob tbs_fields)
{
    return SEQ(3, tlv(0x30, tbs_fields), alg(), BYTES(0x03, 0x03, 0x00, 0x5a, 0xa5));
}

/* The fields before the extensions, with the given validity. */
static blob tbs_with_validity(blob validity)
{
    return cat(7, tlv(0xa0, BYTES(0x02, 0x01, 0x02)), BYTES(0x02, 0x01, 0x01), alg(),
               tlv(0x30, NOTHING), validity, tlv(0x30, NOTHING), tlv(0x30, NOTHING));
}

static blob tbs_head(void)
{
    return tbs_with_validity(tlv(0x30, NOTHING));
}

/* A v3 certificate with the given extensions (the contents of Extensions). */
static blob cert(blob exts)
{
    return cert_of(cat(2, tbs_head(), tlv(0xa3, tlv(0x30, exts))));
}

/* The usual leaf extensions around a given SAN extension. */
static blob leaf(blob san)
{
    return cert(cat(4, bc_leaf(), ku_leaf(), eku_both(), san));
}

static blob good_san(void)
{
    return san_ext(uri(GOOD_ID));
}

/* The builders of the table. */
static blob h_good(void)
{
    return leaf(good_san());
}
static blob h_san_first(void)
{
    return cert(cat(4, good_san(), eku_both(), ku_leaf(), bc_leaf()));
}
static blob h_no_bc(void)
{
    return cert(cat(3, ku_leaf(), eku_both(), good_san()));
}
static blob h_no_eku(void)
{
    return cert(cat(3, bc_leaf(), ku_leaf(), good_san()));
}
static blob h_unknown_ext(void)
{
    /* a private, critical extension nobody here understands */
    blob priv = ext(BYTES(0x06, 0x05, 0x2b, 0x06, 0x01, 0x04, 0x01), BYTES(0x05, 0x00));
    return cert(cat(5, bc_leaf(), ku_leaf(), eku_both(), priv, good_san()));
}
static blob h_uri_nul(void)
{
    static const char s[] = GOOD_ID "\0.evil";
    return leaf(san_ext(uri_n(s, sizeof(s) - 1)));
}
static blob h_uri_del(void)
{
    return leaf(san_ext(uri("spiffe://example.org/ns/a/sa/b\x7f")));
}
static blob h_uri_space(void)
{
    return leaf(san_ext(uri("spiffe://example.org/ns/a b/sa/b")));
}
static blob h_uri_tab(void)
{
    return leaf(san_ext(uri("spiffe://example.org/ns/a/sa/b\t")));
}
static blob h_uri_high(void)
{
    return leaf(san_ext(uri("spiffe://example.org/ns/caf\xc3\xa9")));
}
static blob h_uri_empty(void)
{
    return leaf(san_ext(uri("")));
}
static blob h_uri_dot(void)
{
    return leaf(san_ext(uri("spiffe://example.org/ns/../sa/b")));
}
static blob h_uri_nul_then_good(void)
{
    static const char s[] = GOOD_ID "\0x";
    return leaf(san_ext(cat(2, uri_n(s, sizeof(s) - 1), uri(GOOD_ID "2"))));
}
static blob h_dns_only(void)
{
    return leaf(san_ext(dns(GOOD_ID)));
}
static blob h_dns_then_uri(void)
{
    return leaf(san_ext(cat(2, dns(GOOD_ID "x"), uri(GOOD_ID))));
}

/* A URI of exactly @p n bytes: GOOD_ID then "/xxxx...". */
static blob long_uri(size_t n)
{
    char *s = malloc(n);
    ck_assert_ptr_nonnull(s);
    size_t k = strlen(GOOD_ID);
    memcpy(s, GOOD_ID, k);
    s[k] = '/';
    memset(s + k + 1, 'x', n - k - 1);
    blob b = uri_n(s, n);
    free(s);
    return b;
}
static blob h_uri_2048(void)
{
    return leaf(san_ext(long_uri(2048)));
}
static blob h_uri_2049(void)
{
    return leaf(san_ext(long_uri(2049)));
}

static blob h_three_uris_last_good(void)
{
    return leaf(san_ext(cat(3, uri("https://example.org/"), uri("urn:x"), uri(GOOD_ID))));
}
static blob h_five_uris_last_good(void)
{
    return leaf(
        san_ext(cat(5, uri("https://example.org/1"), uri("https://example.org/2"),
                    uri("https://example.org/3"), uri("https://example.org/4"), uri(GOOD_ID))));
}
static blob h_two_san_exts(void)
{
    return cert(cat(5, bc_leaf(), ku_leaf(), eku_both(), good_san(),
                    san_ext(uri("spiffe://example.org/ns/a/sa/admin"))));
}
static blob h_san_empty(void)
{
    return leaf(san_ext(NOTHING));
}
static blob h_san_trailing(void)
{
    /* extnValue holds the GeneralNames and then one more byte */
    return leaf(ext(oid_san(), cat(2, tlv(0x30, uri(GOOD_ID)), BYTES(0x00))));
}
static blob h_two_ku(void)
{
    return cert(cat(5, bc_leaf(), ku_leaf(), ku_leaf(), eku_both(), good_san()));
}
static blob h_bc_false_explicit(void)
{
    blob bc = ext(oid_bc(), SEQ(1, BYTES(0x01, 0x01, 0x00)));
    return cert(cat(4, bc, ku_leaf(), eku_both(), good_san()));
}
static blob h_bc_true(void)
{
    blob bc = ext(oid_bc(), SEQ(1, BYTES(0x01, 0x01, 0xff)));
    return cert(cat(4, bc, ku_leaf(), eku_both(), good_san()));
}
static blob h_bc_true_not_der(void)
{
    blob bc = ext(oid_bc(), SEQ(1, BYTES(0x01, 0x01, 0x01)));
    return cert(cat(4, bc, ku_leaf(), eku_both(), good_san()));
}
static blob h_bc_pathlen_only(void)
{
    blob bc = ext(oid_bc(), SEQ(1, BYTES(0x02, 0x01, 0x00)));
    return cert(cat(4, bc, ku_leaf(), eku_both(), good_san()));
}
static blob with_ku(blob ku_value)
{
    return cert(cat(4, bc_leaf(), ext(oid_ku(), ku_value), eku_both(), good_san()));
}
static blob h_ku_no_bytes(void)
{
    return with_ku(BYTES(0x03, 0x00));
}
static blob h_ku_unused_count_only(void)
{
    return with_ku(BYTES(0x03, 0x01, 0x00));
}
static blob h_ku_empty_value(void)
{
    return with_ku(NOTHING);
}
static blob h_ku_unused_8(void)
{
    return with_ku(BYTES(0x03, 0x02, 0x08, 0x80));
}
static blob h_ku_three_bytes(void)
{
    return with_ku(BYTES(0x03, 0x04, 0x00, 0x80, 0x00, 0x00));
}
static blob h_ku_two_bytes(void)
{
    return with_ku(BYTES(0x03, 0x03, 0x07, 0x80, 0x80));
}
static blob h_ku_crl_sign(void)
{
    return with_ku(BYTES(0x03, 0x02, 0x01, 0x82));
}
static blob h_ku_no_ds(void)
{
    return with_ku(BYTES(0x03, 0x02, 0x05, 0x20));
}
static blob with_eku(blob eku_value)
{
    return cert(cat(4, bc_leaf(), ku_leaf(), ext(oid_eku(), eku_value), good_san()));
}
static blob h_eku_empty(void)
{
    return with_eku(tlv(0x30, NOTHING));
}
static blob h_eku_not_oid(void)
{
    return with_eku(SEQ(1, BYTES(0x02, 0x01, 0x01)));
}
static blob h_eku_any(void)
{
    return with_eku(SEQ(1, BYTES(0x06, 0x04, 0x55, 0x1d, 0x25, 0x00)));
}
static blob h_eku_reversed(void)
{
    return with_eku(SEQ(2, oid_client_auth(), oid_server_auth()));
}
static blob h_trailing_garbage(void)
{
    return cat(2, h_good(), BYTES(0x00));
}
static blob h_trailing_element(void)
{
    return cat(2, h_good(), BYTES(0x05, 0x00));
}
static blob h_v1(void)
{
    return cert_of(cat(6, BYTES(0x02, 0x01, 0x01), alg(), tlv(0x30, NOTHING), tlv(0x30, NOTHING),
                       tlv(0x30, NOTHING), tlv(0x30, NOTHING)));
}
static blob h_exts_wrapper_trailing(void)
{
    blob exts = cat(4, bc_leaf(), ku_leaf(), eku_both(), good_san());
    return cert_of(cat(2, tbs_head(), tlv(0xa3, cat(2, tlv(0x30, exts), BYTES(0x05, 0x00)))));
}
static blob h_ext_not_sequence(void)
{
    return cert(cat(4, bc_leaf(), ku_leaf(), eku_both(), BYTES(0x04, 0x00)));
}

struct hand_case {
    const char *name;
    blob (*build)(void);
    int strict;
    const char *strict_id;
    int lenient;
    const char *lenient_id;
};

/* clang-format off */
#define HAND_OK(name, fn, id) {name, fn, 0, id, 0, id}
#define HAND_FAIL(name, fn, code) {name, fn, code, NULL, code, NULL}
/* clang-format on */

static const struct hand_case hand_cases[] = {
    /* positive controls: the builder makes certificates the checker accepts */
    HAND_OK("good leaf", h_good, GOOD_ID),
    HAND_OK("extensions in another order", h_san_first, GOOD_ID),
    HAND_OK("no basicConstraints", h_no_bc, GOOD_ID),
    HAND_OK("no extendedKeyUsage", h_no_eku, GOOD_ID),
    HAND_OK("unknown extension ignored", h_unknown_ext, GOOD_ID),
    HAND_OK("basicConstraints with pathLen only", h_bc_pathlen_only, GOOD_ID),
    HAND_OK("two-byte keyUsage", h_ku_two_bytes, GOOD_ID),
    HAND_OK("EKU clientAuth before serverAuth", h_eku_reversed, GOOD_ID),
    HAND_OK("DNS SAN before the URI SAN", h_dns_then_uri, GOOD_ID),
    HAND_OK("2048-byte URI SAN", h_uri_2048, NULL), /* ID checked in the test */

    /* URI SAN bytes */
    {"URI SAN with a NUL", h_uri_nul, HBONE_ERR_SVID_URI_INVALID, NULL, HBONE_ERR_SVID_NO_URI_SAN,
     NULL},
    {"URI SAN with 0x7f", h_uri_del, HBONE_ERR_SVID_URI_INVALID, NULL, HBONE_ERR_SVID_NO_URI_SAN,
     NULL},
    {"URI SAN with a space", h_uri_space, HBONE_ERR_SVID_URI_INVALID, NULL,
     HBONE_ERR_SVID_NO_URI_SAN, NULL},
    {"URI SAN with a tab", h_uri_tab, HBONE_ERR_SVID_URI_INVALID, NULL, HBONE_ERR_SVID_NO_URI_SAN,
     NULL},
    {"URI SAN with non-ASCII bytes", h_uri_high, HBONE_ERR_SVID_URI_INVALID, NULL,
     HBONE_ERR_SVID_NO_URI_SAN, NULL},
    {"bad URI SAN, then a good one", h_uri_nul_then_good, HBONE_ERR_SVID_MULTIPLE_URI_SANS, NULL, 0,
     GOOD_ID "2"},
    /* URI SAN syntax */
    {"empty URI SAN", h_uri_empty, HBONE_ERR_SPIFFE_SCHEME, NULL, HBONE_ERR_SVID_NO_URI_SAN, NULL},
    {"URI SAN with a dot segment", h_uri_dot, HBONE_ERR_SPIFFE_PATH_DOT_SEGMENT, NULL,
     HBONE_ERR_SVID_NO_URI_SAN, NULL},
    {"2049-byte URI SAN", h_uri_2049, HBONE_ERR_SPIFFE_TOO_LONG, NULL, HBONE_ERR_SVID_NO_URI_SAN,
     NULL},
    HAND_FAIL("DNS SAN holding a SPIFFE ID", h_dns_only, HBONE_ERR_SVID_NO_URI_SAN),
    /* URI SAN count */
    {"three URI SANs, the last one SPIFFE", h_three_uris_last_good,
     HBONE_ERR_SVID_MULTIPLE_URI_SANS, NULL, 0, GOOD_ID},
    {"five URI SANs, the last one SPIFFE", h_five_uris_last_good, HBONE_ERR_SVID_MULTIPLE_URI_SANS,
     NULL, 0, GOOD_ID},
    /* structure */
    HAND_FAIL("two SAN extensions", h_two_san_exts, HBONE_ERR_SVID_MALFORMED),
    HAND_FAIL("empty GeneralNames", h_san_empty, HBONE_ERR_SVID_MALFORMED),
    HAND_FAIL("bytes after GeneralNames", h_san_trailing, HBONE_ERR_SVID_MALFORMED),
    HAND_FAIL("two keyUsage extensions", h_two_ku, HBONE_ERR_SVID_MALFORMED),
    HAND_FAIL("extension that is no SEQUENCE", h_ext_not_sequence, HBONE_ERR_SVID_MALFORMED),
    HAND_FAIL("trailing zero byte after the certificate", h_trailing_garbage,
              HBONE_ERR_SVID_MALFORMED),
    HAND_FAIL("trailing element after the certificate", h_trailing_element,
              HBONE_ERR_SVID_MALFORMED),
    HAND_FAIL("bytes after the Extensions", h_exts_wrapper_trailing, HBONE_ERR_SVID_MALFORMED),
    HAND_FAIL("v1 certificate without extensions", h_v1, HBONE_ERR_SVID_NO_URI_SAN),
    /* basicConstraints */
    HAND_FAIL("cA FALSE encoded explicitly", h_bc_false_explicit, HBONE_ERR_SVID_MALFORMED),
    HAND_FAIL("cA TRUE", h_bc_true, HBONE_ERR_SVID_CA),
    HAND_FAIL("cA TRUE as 0x01 (BER, not DER)", h_bc_true_not_der, HBONE_ERR_SVID_MALFORMED),
    /* keyUsage */
    HAND_FAIL("keyUsage BIT STRING of 0 bytes", h_ku_no_bytes, HBONE_ERR_SVID_MALFORMED),
    HAND_FAIL("keyUsage with no bit bytes", h_ku_unused_count_only, HBONE_ERR_SVID_MALFORMED),
    HAND_FAIL("keyUsage extnValue empty", h_ku_empty_value, HBONE_ERR_SVID_MALFORMED),
    HAND_FAIL("keyUsage with 8 unused bits", h_ku_unused_8, HBONE_ERR_SVID_MALFORMED),
    HAND_FAIL("keyUsage of three bytes", h_ku_three_bytes, HBONE_ERR_SVID_MALFORMED),
    HAND_FAIL("keyUsage with cRLSign", h_ku_crl_sign, HBONE_ERR_SVID_KEY_USAGE),
    HAND_FAIL("keyUsage without digitalSignature", h_ku_no_ds, HBONE_ERR_SVID_KEY_USAGE),
    /* extendedKeyUsage */
    HAND_FAIL("EKU an empty SEQUENCE", h_eku_empty, HBONE_ERR_SVID_MALFORMED),
    HAND_FAIL("EKU holding an INTEGER", h_eku_not_oid, HBONE_ERR_SVID_MALFORMED),
    HAND_FAIL("EKU anyExtendedKeyUsage only", h_eku_any, HBONE_ERR_SVID_EXT_KEY_USAGE),
};
#define N_HAND_CASES (sizeof(hand_cases) / sizeof(hand_cases[0]))

START_TEST(hand_built_table)
{
    const struct hand_case *c = &hand_cases[_i];
    blob der = c->build();
    const char *strict_id = c->strict_id, *lenient_id = c->lenient_id;
    char long_id[HBONE_SPIFFE_ID_MAX + 1];
    if (c->build == h_uri_2048) {
        /* the expected ID: GOOD_ID, '/', then 'x' up to 2048 bytes */
        size_t k = strlen(GOOD_ID);
        memcpy(long_id, GOOD_ID, k);
        long_id[k] = '/';
        memset(long_id + k + 1, 'x', HBONE_SPIFFE_ID_MAX - k - 1);
        long_id[HBONE_SPIFFE_ID_MAX] = '\0';
        strict_id = lenient_id = long_id;
    }
    struct outcome strict, lenient;
    run_der(&strict, der.p, der.len, HBONE_SVID_STRICT);
    run_der(&lenient, der.p, der.len, HBONE_SVID_LENIENT);
    free(der.p);
    expect_outcome(c->name, HBONE_SVID_STRICT, &strict, c->strict, strict_id);
    expect_outcome(c->name, HBONE_SVID_LENIENT, &lenient, c->lenient, lenient_id);
}
END_TEST

START_TEST(hand_built_builder_sanity)
{
    /* The builder's DER lengths: short, one-byte and two-byte long forms. */
    blob a = tlv(0x04, bytes("abc", 3));
    ck_assert_uint_eq(a.len, 5);
    ck_assert_int_eq(memcmp(a.p,
                            "\x04\x03"
                            "abc",
                            5),
                     0);
    free(a.p);
    uint8_t big[300] = {0};
    blob b = tlv(0x04, bytes(big, 200));
    ck_assert_uint_eq(b.len, 203);
    ck_assert_int_eq(memcmp(b.p, "\x04\x81\xc8", 3), 0);
    free(b.p);
    blob c = tlv(0x04, bytes(big, 300));
    ck_assert_uint_eq(c.len, 304);
    ck_assert_int_eq(memcmp(c.p, "\x04\x82\x01\x2c", 4), 0);
    free(c.p);
}
END_TEST

/* ------------------------------------------------------------------------ */
/* Allocators                                                                */

/* A time of tag @p tag written as @p text. */
static blob time_of(uint8_t tag, const char *text)
{
    return tlv(tag, bytes(text, strlen(text)));
}

/* notAfter as the leaf parser reads it (seconds since the epoch, 0 when
 * the validity is not in RFC 5280's form: the TLS layer judges validity). */
static const struct {
    const char *what;
    uint8_t not_after_tag;
    const char *not_after;
    int64_t want;
} not_after_cases[] = {
    {"UTCTime, last year it covers", 0x17, "491231235959Z", 2524607999},
    {"UTCTime, first year it covers", 0x17, "500101000000Z", -631152000},
    {"GeneralizedTime", 0x18, "20500101000000Z", 2524608000},
    {"a leap day", 0x18, "20240229120000Z", 1709208000},
    {"after a century's leap day", 0x18, "20000301000000Z", 951868800},
    {"no Z", 0x18, "20500101000000", 0},
    {"a local offset", 0x18, "20500101000000+0100", 0},
    {"fractional seconds", 0x18, "20500101000000.5Z", 0},
    {"month 13", 0x18, "20501301000000Z", 0},
    {"hour 24", 0x17, "500101240000Z", 0},
    {"a letter among the digits", 0x17, "5001O1000000Z", 0},
    {"an OCTET STRING", 0x04, "20500101000000Z", 0},
};

START_TEST(not_after_is_read_from_the_validity)
{
    blob validity = SEQ(2, time_of(0x17, "240101000000Z"),
                        time_of(not_after_cases[_i].not_after_tag, not_after_cases[_i].not_after));
    blob der =
        cert_of(cat(2, tbs_with_validity(validity),
                    tlv(0xa3, tlv(0x30, cat(4, bc_leaf(), ku_leaf(), eku_both(), good_san())))));
    hb_x509_leaf leaf;
    ck_assert_int_eq(hb_x509_parse_leaf(der.p, der.len, &leaf), 0);
    ck_assert_msg(leaf.not_after == not_after_cases[_i].want, "%s: %lld, want %lld",
                  not_after_cases[_i].what, (long long)leaf.not_after,
                  (long long)not_after_cases[_i].want);
    free(der.p);
}
END_TEST

START_TEST(allocator_is_used_and_balanced)
{
    size_t der_len, pem_len;
    uint8_t *der = tl_pki_der("server.pem", &der_len);
    char *pem = tl_pki_read("server.chain.pem", &pem_len);
    tl_counting c;

    hbone_mem *mem = tl_counting_mem(&c, -1);
    hbone_spiffe_id *id = NULL;
    ck_assert_int_eq(hbone_svid_check_der(der, der_len, HBONE_SVID_STRICT, &id, mem), 0);
    hbone_mem_del(mem);
    ck_assert_int_ge(c.allocs, 1);
    ck_assert_str_eq(hbone_spiffe_id_str(id, NULL), CL "server");
    hbone_spiffe_id_del(id);
    ck_assert_int_eq(c.allocs, c.frees);

    /* No ID wanted: nothing to allocate. */
    mem = tl_counting_mem(&c, -1);
    ck_assert_int_eq(hbone_svid_check_der(der, der_len, HBONE_SVID_STRICT, NULL, mem), 0);
    ck_assert_int_eq(c.attempts, 0);
    hbone_mem_del(mem);

    /* PEM: the decoded DER goes through the allocator too. */
    mem = tl_counting_mem(&c, -1);
    id = NULL;
    ck_assert_int_eq(hbone_svid_check_pem(pem, pem_len, HBONE_SVID_LENIENT, &id, mem), 0);
    hbone_mem_del(mem);
    ck_assert_int_ge(c.allocs, 2);
    ck_assert_int_eq(c.frees, c.allocs - 1);
    hbone_spiffe_id_del(id);
    ck_assert_int_eq(c.allocs, c.frees);

    /* A rejected certificate leaves nothing behind. */
    size_t bad_len;
    char *bad = tl_pki_read("ca-true.pem", &bad_len);
    mem = tl_counting_mem(&c, -1);
    id = NULL;
    ck_assert_int_eq(hbone_svid_check_pem(bad, bad_len, HBONE_SVID_STRICT, &id, mem),
                     HBONE_ERR_SVID_CA);
    ck_assert_ptr_null(id);
    ck_assert_int_eq(c.allocs, c.frees);
    hbone_mem_del(mem);
    free(bad);

    free(pem);
    free(der);
}
END_TEST

START_TEST(allocator_failure)
{
    size_t der_len, pem_len;
    uint8_t *der = tl_pki_der("client.pem", &der_len);
    char *pem = tl_pki_read("client.pem", &pem_len);
    tl_counting c;

    hbone_mem *mem = tl_counting_mem(&c, 0);
    hbone_spiffe_id *id = (hbone_spiffe_id *)&id;
    ck_assert_int_eq(hbone_svid_check_der(der, der_len, HBONE_SVID_STRICT, &id, mem),
                     HBONE_ERR_NOMEM);
    ck_assert_ptr_null(id);
    ck_assert_int_ge(c.attempts, 1);
    ck_assert_int_eq(c.allocs, 0);
    hbone_mem_del(mem);

    /* Fail each allocation of check_pem in turn. */
    for (long budget = 0;; budget++) {
        mem = tl_counting_mem(&c, budget);
        id = NULL;
        int r = hbone_svid_check_pem(pem, pem_len, HBONE_SVID_STRICT, &id, mem);
        hbone_mem_del(mem);
        if (r == 0) {
            ck_assert_str_eq(hbone_spiffe_id_str(id, NULL), CL "client");
            hbone_spiffe_id_del(id);
            ck_assert_int_eq(c.allocs, c.frees);
            ck_assert_int_ge(budget, 2);
            break;
        }
        ck_assert_msg(r == HBONE_ERR_NOMEM, "budget %ld: %s", budget, hbone_strerror(r));
        ck_assert_ptr_null(id);
        ck_assert_msg(c.allocs == c.frees, "budget %ld: %ld allocations, %ld frees", budget,
                      c.allocs, c.frees);
        ck_assert_int_lt(budget, 16);
    }
    free(pem);
    free(der);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("svid");

    TCase *pki = tcase_create("pki");
    tcase_set_timeout(pki, 30);
    tcase_add_loop_test(pki, pki_der_table, 0, (int)N_PKI_CASES);
    tcase_add_loop_test(pki, pki_pem_table, 0, (int)N_PKI_CASES);
    tcase_add_test(pki, pem_chain_files_check_the_first_certificate);
    tcase_add_test(pki, pem_without_a_certificate);
    tcase_add_test(pki, pem_key_before_the_certificate);
    tcase_add_test(pki, invalid_arguments);
    suite_add_tcase(s, pki);

    TCase *hand = tcase_create("hand-built");
    tcase_add_test(hand, hand_built_builder_sanity);
    tcase_add_loop_test(hand, hand_built_table, 0, (int)N_HAND_CASES);
    tcase_add_loop_test(hand, not_after_is_read_from_the_validity, 0,
                        (int)(sizeof(not_after_cases) / sizeof(not_after_cases[0])));
    suite_add_tcase(s, hand);

    TCase *mem = tcase_create("allocator");
    tcase_add_test(mem, allocator_is_used_and_balanced);
    tcase_add_test(mem, allocator_failure);
    suite_add_tcase(s, mem);

    return tl_run_suite(s);
}
