/* SPDX-License-Identifier: MIT */
/*
 * libhbone identity: SPIFFE IDs and X.509-SVID checks.
 *
 * SPIFFE IDs are parsed strictly by the SPIFFE-ID specification:
 *   spiffe://<trust domain>[/<segment>]*
 * trust domain: 1-255 bytes of [a-z0-9._-]; segments: [a-zA-Z0-9._-], never
 * empty, "." or ".."; no trailing slash; at most 2048 bytes in all. Nothing
 * else is accepted: no percent-encoding, userinfo, port, query or fragment.
 * Istio workload identities have the path /ns/<namespace>/sa/<service account>.
 */
#ifndef HBONE_IDENTITY_H
#define HBONE_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#include <hbone/export.h>
#include <hbone/mem.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HBONE_SPIFFE_ID_MAX 2048
#define HBONE_SPIFFE_TRUST_DOMAIN_MAX 255

/** A parsed, valid SPIFFE ID; opaque and immutable. */
typedef struct hbone_spiffe_id hbone_spiffe_id;

/**
 * Check that @p str (@p len bytes, no NUL needed) is a valid SPIFFE ID
 * without allocating. On failure, *@p bad_offset (if not NULL) receives the
 * byte offset of the first offending character.
 *
 * Returns 0 or one of HBONE_ERR_SPIFFE_* naming the violated rule.
 */
HBONE_API int hbone_spiffe_id_validate(const char *str, size_t len, size_t *bad_offset);

/**
 * Parse @p str into a new SPIFFE ID. @p mem may be NULL for the C library
 * allocator. Free the result with hbone_spiffe_id_del().
 *
 * Returns 0, HBONE_ERR_SPIFFE_*, HBONE_ERR_INVALID_ARGUMENT or HBONE_ERR_NOMEM.
 */
HBONE_API int hbone_spiffe_id_parse(hbone_spiffe_id **out, const char *str, size_t len,
                                    const hbone_mem *mem);

/**
 * Format and parse the Istio workload identity
 * spiffe://<trust_domain>/ns/<ns>/sa/<sa>. Every part must be valid for its
 * position (a segment cannot contain '/').
 *
 * Returns 0, HBONE_ERR_SPIFFE_*, HBONE_ERR_INVALID_ARGUMENT or HBONE_ERR_NOMEM.
 */
HBONE_API int hbone_spiffe_id_new_istio(hbone_spiffe_id **out, const char *trust_domain,
                                        size_t trust_domain_len, const char *ns, size_t ns_len,
                                        const char *sa, size_t sa_len, const hbone_mem *mem);

/** Return a new copy of @p id (0, HBONE_ERR_INVALID_ARGUMENT or HBONE_ERR_NOMEM). */
HBONE_API int hbone_spiffe_id_dup(hbone_spiffe_id **out, const hbone_spiffe_id *id);

/** Free a SPIFFE ID (NULL is a no-op). */
HBONE_API void hbone_spiffe_id_del(hbone_spiffe_id *id);

/**
 * The whole ID as a NUL-terminated string; *@p len (if not NULL) receives
 * its length. Valid as long as @p id.
 */
HBONE_API const char *hbone_spiffe_id_str(const hbone_spiffe_id *id, size_t *len);

/** The trust domain (not NUL-terminated), @p len bytes. Valid as long as @p id. */
HBONE_API const char *hbone_spiffe_id_trust_domain(const hbone_spiffe_id *id, size_t *len);

/** The path, starting with '/' or empty (not NUL-terminated). Valid as long as @p id. */
HBONE_API const char *hbone_spiffe_id_path(const hbone_spiffe_id *id, size_t *len);

/**
 * Split an Istio workload identity into namespace and service account
 * (pointers into @p id, not NUL-terminated). Any output may be NULL.
 *
 * Returns 0, HBONE_ERR_SPIFFE_NOT_ISTIO or HBONE_ERR_INVALID_ARGUMENT.
 */
HBONE_API int hbone_spiffe_id_istio(const hbone_spiffe_id *id, const char **ns, size_t *ns_len,
                                    const char **sa, size_t *sa_len);

/** Return 1 if both IDs are byte-for-byte equal, 0 otherwise (NULL equals nothing). */
HBONE_API int hbone_spiffe_id_equal(const hbone_spiffe_id *a, const hbone_spiffe_id *b);

/* ------------------------------------------------------------------------ */
/* X.509-SVID checks                                                         */

/** Strict (default): the leaf has exactly one URI SAN, a valid SPIFFE ID. */
#define HBONE_SVID_STRICT 0
/**
 * Lenient, as ztunnel: the first URI SAN that parses as a SPIFFE ID wins;
 * other URI SANs are ignored. All other SVID rules still apply.
 */
#define HBONE_SVID_LENIENT 1

/**
 * Check that a DER-encoded leaf certificate is a valid X.509-SVID and return
 * its SPIFFE ID. Rules: the SPIFFE URI SAN rule of @p mode (URI SANs are read
 * with their type: a DNS SAN that reads "spiffe://..." is no identity), no NUL
 * or non-printable byte in a URI SAN, basicConstraints cA=false, keyUsage
 * present with digitalSignature and without keyCertSign/cRLSign, and, if
 * extendedKeyUsage is present, both serverAuth and clientAuth.
 * This checks the identity only; signatures and validity dates are the TLS
 * layer's job. @p id_out may be NULL; @p mem may be NULL.
 *
 * Returns 0, HBONE_ERR_SVID_*, HBONE_ERR_SPIFFE_* (the URI SAN is not a
 * valid SPIFFE ID), HBONE_ERR_INVALID_ARGUMENT or HBONE_ERR_NOMEM.
 */
HBONE_API int hbone_svid_check_der(const uint8_t *der, size_t len, int mode,
                                   hbone_spiffe_id **id_out, const hbone_mem *mem);

/**
 * As hbone_svid_check_der() for the first CERTIFICATE block of a PEM text
 * (the leaf of a chain file). Returns HBONE_ERR_PEM if there is none.
 */
HBONE_API int hbone_svid_check_pem(const char *pem, size_t len, int mode, hbone_spiffe_id **id_out,
                                   const hbone_mem *mem);

#ifdef __cplusplus
}
#endif

#endif /* HBONE_IDENTITY_H */
