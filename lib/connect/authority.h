/* SPDX-License-Identifier: MIT */
/* Address and hostname syntax checks shared by the CONNECT helpers. */
#ifndef HB_CONNECT_AUTHORITY_H
#define HB_CONNECT_AUTHORITY_H

#include <stddef.h>

/* Each returns 0 if @p s (@p len bytes) is valid, else HBONE_ERR_AUTHORITY
 * with *bad (if not NULL) at the offending byte. */
int hb_ipv4_valid(const char *s, size_t len, size_t *bad);     /* dotted decimal, no leading 0s */
int hb_ipv6_valid(const char *s, size_t len, size_t *bad);     /* RFC 4291 text, no zone */
int hb_hostname_valid(const char *s, size_t len, size_t *bad); /* RFC 1123, no trailing dot */

#endif /* HB_CONNECT_AUTHORITY_H */
