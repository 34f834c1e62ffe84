/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: X.509-SVID identity checks on DER (lib/identity/x509.c,
 * der.c, svid.c). The input is one certificate as a TLS peer would send it.
 *
 * Invariants, besides "no crash, no leak":
 *  - hb_x509_parse_leaf counts as many URI SANs as hb_x509_next_uri walks,
 *    each pointing inside the input, and its flags are self-consistent;
 *  - a certificate the leaf parser rejects is rejected as SVID_MALFORMED;
 *  - strict success implies lenient success with the same ID;
 *  - a returned ID is a valid SPIFFE ID taken verbatim from a URI SAN;
 *  - every SVID error names a rule the parsed leaf really breaks, and every
 *    success means all rules hold;
 *  - asking for the ID or not, or for a detail text or not, never changes
 *    the verdict, and a failure always leaves a terminated detail text.
 */
#include <stdlib.h>
#include <string.h>

#include <hbone/error.h>
#include <hbone/identity.h>

#include "common/log.h"
#include "fuzz_common.h"
#include "identity/spiffe.h" /* struct hbone_spiffe_id, for the poison value */
#include "identity/svid.h"
#include "identity/x509.h"

/* Stored into out-parameters before a call, to see that failures reset them. */
static hbone_spiffe_id poison;

static int within(const hb_cursor *c, const uint8_t *data, size_t size)
{
    uintptr_t lo = (uintptr_t)data, p = (uintptr_t)c->p;
    return p >= lo && c->len <= size && p - lo <= size - c->len;
}

static int uri_printable(const hb_cursor *uri)
{
    for (size_t i = 0; i < uri->len; i++) {
        if (uri->p[i] < 0x21 || uri->p[i] > 0x7e)
            return 0;
    }
    return 1;
}

static int uri_is_identity(const hb_cursor *uri)
{
    return uri_printable(uri) &&
           hbone_spiffe_id_validate((const char *)uri->p, uri->len, NULL) == 0;
}

static int id_equals_uri(const hbone_spiffe_id *id, const hb_cursor *uri)
{
    size_t len = 0;
    const char *s = hbone_spiffe_id_str(id, &len);
    return s && len == uri->len && memcmp(s, uri->p, len) == 0;
}

static void check_leaf(const hb_x509_leaf *leaf, const uint8_t *data, size_t size)
{
    hb_cursor names = leaf->general_names, uri;
    size_t walked = 0;
    while (hb_x509_next_uri(&names, &uri)) {
        FUZZ_CHECK(within(&uri, data, size));
        walked++;
    }
    FUZZ_CHECK(walked == leaf->uri_san_count);
    /* Flags can only be set by the extension that carries them. */
    FUZZ_CHECK(!leaf->is_ca || leaf->has_basic_constraints);
    FUZZ_CHECK(leaf->has_key_usage || leaf->key_usage == 0);
    FUZZ_CHECK(leaf->key_usage <= 0xffffu); /* at most two bytes of bits */
    FUZZ_CHECK(leaf->has_ext_key_usage || (!leaf->eku_server_auth && !leaf->eku_client_auth));
    /* Each SAN takes at least two bytes of DER. */
    FUZZ_CHECK(leaf->uri_san_count + leaf->dns_san_count <= size / 2);
}

static int key_usage_ok(const hb_x509_leaf *leaf)
{
    return leaf->has_key_usage && (leaf->key_usage & HB_KU_DIGITAL_SIGNATURE) &&
           !(leaf->key_usage & (HB_KU_KEY_CERT_SIGN | HB_KU_CRL_SIGN));
}

static int eku_ok(const hb_x509_leaf *leaf)
{
    return !leaf->has_ext_key_usage || (leaf->eku_server_auth && leaf->eku_client_auth);
}

/* The first URI SAN of the leaf (the leaf has at least one). */
static hb_cursor first_uri(const hb_x509_leaf *leaf)
{
    hb_cursor names = leaf->general_names, uri = {NULL, 0};
    FUZZ_CHECK(hb_x509_next_uri(&names, &uri) == 1);
    return uri;
}

/* The URI SAN @p mode must pick into *uri; 0 if there is none. */
static int expected_uri(const hb_x509_leaf *leaf, int mode, hb_cursor *uri)
{
    if (mode == HBONE_SVID_STRICT) {
        if (leaf->uri_san_count != 1)
            return 0;
        *uri = first_uri(leaf);
        return uri_is_identity(uri);
    }
    hb_cursor names = leaf->general_names;
    while (hb_x509_next_uri(&names, uri)) {
        if (uri_is_identity(uri))
            return 1;
    }
    return 0;
}

/*
 * Order-independent oracle: whatever order svid.c checks the rules in, an
 * error must point at a rule that is broken, and success at none.
 */
static void check_verdict(const hb_x509_leaf *leaf, int mode, int r, const hbone_spiffe_id *id)
{
    hb_cursor uri;
    int has_uri = expected_uri(leaf, mode, &uri);
    switch (r) {
    case 0:
        FUZZ_CHECK(has_uri && !leaf->is_ca && key_usage_ok(leaf) && eku_ok(leaf));
        FUZZ_CHECK(id && id_equals_uri(id, &uri));
        break;
    case HBONE_ERR_SVID_NO_URI_SAN:
        FUZZ_CHECK(leaf->uri_san_count == 0 || (mode == HBONE_SVID_LENIENT && !has_uri));
        break;
    case HBONE_ERR_SVID_MULTIPLE_URI_SANS:
        FUZZ_CHECK(mode == HBONE_SVID_STRICT && leaf->uri_san_count > 1);
        break;
    case HBONE_ERR_SVID_URI_INVALID:
        FUZZ_CHECK(mode == HBONE_SVID_STRICT && leaf->uri_san_count == 1);
        uri = first_uri(leaf);
        FUZZ_CHECK(!uri_printable(&uri));
        break;
    case HBONE_ERR_SVID_CA:
        FUZZ_CHECK(leaf->is_ca);
        break;
    case HBONE_ERR_SVID_KEY_USAGE:
        FUZZ_CHECK(!key_usage_ok(leaf));
        break;
    case HBONE_ERR_SVID_EXT_KEY_USAGE:
        FUZZ_CHECK(!eku_ok(leaf));
        break;
    default:
        /* Only strict mode reports why its single URI SAN is not an ID. */
        FUZZ_CHECK(r <= HBONE_ERR_SPIFFE_SCHEME && r >= HBONE_ERR_SPIFFE_TOO_LONG);
        FUZZ_CHECK(mode == HBONE_SVID_STRICT && leaf->uri_san_count == 1);
        uri = first_uri(leaf);
        FUZZ_CHECK(uri_printable(&uri));
        FUZZ_CHECK(hbone_spiffe_id_validate((const char *)uri.p, uri.len, NULL) == r);
    }
    if (r != 0)
        FUZZ_CHECK(id == NULL);
}

/* Run one mode every way the API allows and check the answers agree. */
static int check_mode(const uint8_t *data, size_t size, int mode, int parsed,
                      const hb_x509_leaf *leaf, hbone_spiffe_id **id_out)
{
    hbone_spiffe_id *id = &poison;
    int r = hbone_svid_check_der(data, size, mode, &id, fuzz_mem());
    FUZZ_CHECK(r <= 0);
    if (!parsed) {
        FUZZ_CHECK(r == HBONE_ERR_SVID_MALFORMED && id == NULL);
    } else {
        check_verdict(leaf, mode, r, id);
    }

    /* Without an ID output nothing is allocated, and the verdict is the same. */
    FUZZ_CHECK(hbone_svid_check_der(data, size, mode, NULL, fuzz_mem()) == r);

    /* The internal entry point used by the TLS layer, with a detail text. */
    hb_detail detail;
    memset(detail.text, 'Z', sizeof(detail.text)); /* no NUL until written */
    hbone_spiffe_id *id2 = &poison;
    int r2 = hb_svid_check(data, size, mode, &id2, fuzz_mem(), &detail);
    FUZZ_CHECK(r2 == r);
    if (r2 == 0) {
        FUZZ_CHECK(hbone_spiffe_id_equal(id, id2));
    } else {
        FUZZ_CHECK(id2 == NULL);
        FUZZ_CHECK(memchr(detail.text, '\0', sizeof(detail.text)) != NULL);
        FUZZ_CHECK(detail.text[0] != '\0');
    }
    hbone_spiffe_id_del(id2);

    *id_out = id;
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t empty[1];
    if (!data)
        data = empty;
    fuzz_mem_begin();

    hb_x509_leaf leaf;
    int parsed = hb_x509_parse_leaf(data, size, &leaf);
    FUZZ_CHECK(parsed == 0 || parsed == HBONE_ERR_SVID_MALFORMED);
    if (parsed == 0)
        check_leaf(&leaf, data, size);

    hbone_spiffe_id *strict_id = NULL, *lenient_id = NULL;
    int strict = check_mode(data, size, HBONE_SVID_STRICT, parsed == 0, &leaf, &strict_id);
    int lenient = check_mode(data, size, HBONE_SVID_LENIENT, parsed == 0, &leaf, &lenient_id);

    /* Lenient only ever accepts more: same ID when both accept. */
    if (strict == 0) {
        FUZZ_CHECK(lenient == 0);
        FUZZ_CHECK(hbone_spiffe_id_equal(strict_id, lenient_id));
    }
    for (int i = 0; i < 2; i++) {
        const hbone_spiffe_id *id = i ? lenient_id : strict_id;
        if (!id)
            continue;
        size_t len = 0;
        const char *s = hbone_spiffe_id_str(id, &len);
        FUZZ_CHECK(hbone_spiffe_id_validate(s, len, NULL) == 0);
    }
    hbone_spiffe_id_del(strict_id);
    hbone_spiffe_id_del(lenient_id);

    /* An unknown mode is a usage error, never a verdict on the certificate. */
    hbone_spiffe_id *id = &poison;
    int bad_mode = hbone_svid_check_der(data, size, 2, &id, fuzz_mem());
    FUZZ_CHECK(bad_mode == HBONE_ERR_INVALID_ARGUMENT && id == NULL);

    fuzz_mem_end();
    return 0;
}
