/* SPDX-License-Identifier: MIT */
/* Internal SPIFFE ID helpers shared by the identity and TLS layers. */
#ifndef HB_IDENTITY_SPIFFE_H
#define HB_IDENTITY_SPIFFE_H

#include <stddef.h>

#include <hbone/identity.h>

#include "common/mem.h"

#define HB_SPIFFE_SCHEME "spiffe://"
#define HB_SPIFFE_SCHEME_LEN 9

struct hbone_spiffe_id {
    hb_mem mem;
    size_t len;
    size_t trust_domain_len; /* the trust domain starts at str + HB_SPIFFE_SCHEME_LEN */
    char str[];              /* NUL-terminated */
};

/* Validate a bare trust domain name (as used for bundles). Returns 0 or
 * HBONE_ERR_SPIFFE_TRUST_DOMAIN_*; *bad_offset as in hbone_spiffe_id_validate. */
int hb_spiffe_validate_trust_domain(const char *td, size_t len, size_t *bad_offset);

/* True if @p id's trust domain is exactly @p td (@p len bytes). */
int hb_spiffe_id_in_trust_domain(const hbone_spiffe_id *id, const char *td, size_t len);

#endif /* HB_IDENTITY_SPIFFE_H */
