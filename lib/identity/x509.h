/* SPDX-License-Identifier: MIT */
/*
 * The parts of an X.509 leaf certificate that make it an X.509-SVID: SANs
 * with their type, basicConstraints, keyUsage and extendedKeyUsage. Chain
 * signatures and validity are verified by the TLS layer, not here.
 */
#ifndef HB_IDENTITY_X509_H
#define HB_IDENTITY_X509_H

#include <stddef.h>
#include <stdint.h>

#include "common/cursor.h"

/* keyUsage bits, numbered as in RFC 5280 (bit 0 = digitalSignature). */
#define HB_KU_DIGITAL_SIGNATURE (1u << 0)
#define HB_KU_KEY_ENCIPHERMENT (1u << 2)
#define HB_KU_KEY_CERT_SIGN (1u << 5)
#define HB_KU_CRL_SIGN (1u << 6)

/* How many URI SANs are kept; more are counted, not stored. */
#define HB_X509_URI_SANS_KEPT 4

typedef struct hb_x509_leaf {
    int has_basic_constraints;
    int is_ca;
    int has_key_usage;
    unsigned key_usage; /* HB_KU_* */
    int has_ext_key_usage;
    int eku_server_auth;
    int eku_client_auth;
    size_t uri_san_count;
    hb_cursor uri_sans[HB_X509_URI_SANS_KEPT]; /* point into the DER */
    size_t dns_san_count;
} hb_x509_leaf;

/* Parse @p der (a whole Certificate). Returns 0 or HBONE_ERR_SVID_MALFORMED:
 * bad DER, trailing bytes, a duplicated extension, or a malformed value in
 * one of the extensions above. */
int hb_x509_parse_leaf(const uint8_t *der, size_t len, hb_x509_leaf *out);

#endif /* HB_IDENTITY_X509_H */
