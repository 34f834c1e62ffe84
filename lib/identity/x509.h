/* SPDX-License-Identifier: MIT */
/*
 * The parts of an X.509 leaf certificate that make it an X.509-SVID: SANs
 * with their type, basicConstraints, keyUsage and extendedKeyUsage; and
 * when it expires, so that a connection can stop taking tunnels then. Chain
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

typedef struct hb_x509_leaf {
    int has_basic_constraints;
    int is_ca;
    int has_key_usage;
    unsigned key_usage; /* HB_KU_* */
    int has_ext_key_usage;
    int eku_server_auth;
    int eku_client_auth;
    int64_t not_after; /* validity's notAfter, seconds since the epoch (UTC); 0 unknown */
    size_t uri_san_count;
    size_t dns_san_count;
    /* The GeneralNames of the SAN extension (empty if none), pointing into
     * the DER and already validated: walk them with hb_x509_next_uri(). */
    hb_cursor general_names;
} hb_x509_leaf;

/* Whether @p der is exactly one Certificate's outer structure (its three
 * fields, no byte after them); its contents are not examined. */
int hb_x509_is_whole(const uint8_t *der, size_t len);

/* Parse @p der (a whole Certificate). Returns 0 or HBONE_ERR_SVID_MALFORMED:
 * bad DER, trailing bytes, a duplicated extension, or a malformed value in
 * one of the extensions above. */
int hb_x509_parse_leaf(const uint8_t *der, size_t len, hb_x509_leaf *out);

/* Take the next URI SAN off @p names (a copy of leaf->general_names).
 * Returns 1 with *uri set to its bytes, or 0 when no URI SAN remains. */
int hb_x509_next_uri(hb_cursor *names, hb_cursor *uri);

#endif /* HB_IDENTITY_X509_H */
