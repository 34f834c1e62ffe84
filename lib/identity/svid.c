/* SPDX-License-Identifier: MIT */
/* X.509-SVID rules (SPIFFE X509-SVID specification, section 4). */
#include "identity/svid.h"

#include <hbone/error.h>

#include "identity/pem.h"
#include "identity/spiffe.h"
#include "identity/x509.h"

static int fail(hb_detail *detail, int code, const char *what)
{
    if (!detail)
        return code;
    return hb_detail_set(detail, code, "certificate %s", what);
}

/* A URI SAN is raw bytes from the peer: refuse NUL and anything that is not
 * printable ASCII before treating it as text. */
static int uri_is_printable(const hb_cursor *uri)
{
    for (size_t i = 0; i < uri->len; i++) {
        if (uri->p[i] < 0x21 || uri->p[i] > 0x7e)
            return 0;
    }
    return 1;
}

static int check_uri(const hb_cursor *uri, hb_detail *detail)
{
    if (!uri_is_printable(uri))
        return fail(detail, HBONE_ERR_SVID_URI_INVALID,
                    "URI SAN contains a NUL or non-printable byte");
    size_t bad = 0;
    int r = hbone_spiffe_id_validate((const char *)uri->p, uri->len, &bad);
    if (r < 0 && detail) {
        int shown = uri->len > 256 ? 256 : (int)uri->len;
        hb_detail_set(detail, r,
                      "certificate URI SAN %.*s is not a valid SPIFFE ID: %s (at byte %zu)", shown,
                      (const char *)uri->p, hbone_strerror(r), bad);
    }
    return r;
}

/* Pick the identity URI by @p mode into *chosen, or return an error. */
static int choose_uri(const hb_x509_leaf *leaf, int mode, hb_cursor *chosen, hb_detail *detail)
{
    if (leaf->uri_san_count == 0) {
        return fail(detail, HBONE_ERR_SVID_NO_URI_SAN,
                    leaf->dns_san_count
                        ? "has DNS SANs but no URI SAN (DNS names are never identities)"
                        : "has no URI SAN");
    }
    hb_cursor names = leaf->general_names;
    if (mode == HBONE_SVID_STRICT) {
        if (leaf->uri_san_count != 1) {
            if (detail)
                hb_detail_set(detail, HBONE_ERR_SVID_MULTIPLE_URI_SANS,
                              "certificate has %zu URI SANs, an X.509-SVID has exactly one",
                              leaf->uri_san_count);
            return HBONE_ERR_SVID_MULTIPLE_URI_SANS;
        }
        (void)hb_x509_next_uri(&names, chosen);
        return check_uri(chosen, detail);
    }
    /* Lenient (ztunnel): the first URI SAN that is a valid SPIFFE ID. */
    while (hb_x509_next_uri(&names, chosen)) {
        if (uri_is_printable(chosen) &&
            hbone_spiffe_id_validate((const char *)chosen->p, chosen->len, NULL) == 0)
            return 0;
    }
    return fail(detail, HBONE_ERR_SVID_NO_URI_SAN, "has no URI SAN that is a valid SPIFFE ID");
}

int hb_svid_check(const uint8_t *der, size_t len, int mode, hbone_spiffe_id **id_out,
                  const hb_mem *mem, hb_detail *detail)
{
    if (id_out)
        *id_out = NULL;
    if (!der || (mode != HBONE_SVID_STRICT && mode != HBONE_SVID_LENIENT))
        return HBONE_ERR_INVALID_ARGUMENT;
    hb_x509_leaf leaf;
    if (hb_x509_parse_leaf(der, len, &leaf) < 0)
        return fail(detail, HBONE_ERR_SVID_MALFORMED, "is not valid DER X.509");
    hb_cursor uri;
    int r = choose_uri(&leaf, mode, &uri, detail);
    if (r < 0)
        return r;
    if (leaf.is_ca)
        return fail(detail, HBONE_ERR_SVID_CA, "is a CA (basicConstraints cA=true), not a leaf");
    if (!leaf.has_key_usage)
        return fail(detail, HBONE_ERR_SVID_KEY_USAGE, "has no keyUsage extension");
    if (!(leaf.key_usage & HB_KU_DIGITAL_SIGNATURE))
        return fail(detail, HBONE_ERR_SVID_KEY_USAGE, "keyUsage lacks digitalSignature");
    if (leaf.key_usage & (HB_KU_KEY_CERT_SIGN | HB_KU_CRL_SIGN))
        return fail(detail, HBONE_ERR_SVID_KEY_USAGE, "keyUsage has keyCertSign or cRLSign");
    if (leaf.has_ext_key_usage && !(leaf.eku_server_auth && leaf.eku_client_auth)) {
        return fail(detail, HBONE_ERR_SVID_EXT_KEY_USAGE,
                    leaf.eku_server_auth   ? "extendedKeyUsage lacks clientAuth"
                    : leaf.eku_client_auth ? "extendedKeyUsage lacks serverAuth"
                                           : "extendedKeyUsage lacks serverAuth and clientAuth");
    }
    if (id_out) {
        r = hbone_spiffe_id_parse(id_out, (const char *)uri.p, uri.len, mem);
        if (r < 0)
            return r;
    }
    return 0;
}

int hbone_svid_check_der(const uint8_t *der, size_t len, int mode, hbone_spiffe_id **id_out,
                         const hbone_mem *mem)
{
    return hb_svid_check(der, len, mode, id_out, hb_mem_or_default(mem), NULL);
}

int hbone_svid_check_pem(const char *pem, size_t len, int mode, hbone_spiffe_id **id_out,
                         const hbone_mem *mem)
{
    if (id_out)
        *id_out = NULL;
    if (!pem)
        return HBONE_ERR_INVALID_ARGUMENT;
    const hb_mem *m = hb_mem_or_default(mem);
    uint8_t *der = NULL;
    size_t der_len = 0, pos = 0;
    int r = hb_pem_next(m, pem, len, &pos, "CERTIFICATE", &der, &der_len);
    if (r == HBONE_ERR_NOT_FOUND)
        return HBONE_ERR_PEM;
    if (r < 0)
        return r;
    r = hb_svid_check(der, der_len, mode, id_out, m, NULL);
    hb_free(m, der);
    return r;
}
