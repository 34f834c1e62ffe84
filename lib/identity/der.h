/* SPDX-License-Identifier: MIT */
/* A strict DER reader: definite, minimal lengths; single-byte tags. */
#ifndef HB_IDENTITY_DER_H
#define HB_IDENTITY_DER_H

#include "common/cursor.h"

#define HB_DER_BOOLEAN 0x01
#define HB_DER_INTEGER 0x02
#define HB_DER_BIT_STRING 0x03
#define HB_DER_OCTET_STRING 0x04
#define HB_DER_OID 0x06
#define HB_DER_SEQUENCE 0x30
#define HB_DER_CONTEXT(n) (0x80 | (n))             /* [n] IMPLICIT, primitive */
#define HB_DER_CONTEXT_CONSTRUCTED(n) (0xa0 | (n)) /* [n] EXPLICIT or constructed */

/* Read the next element, whatever its tag. Returns 0 or -1 (malformed). */
int hb_der_read_any(hb_cursor *c, uint8_t *tag, hb_cursor *contents);

/* Read the next element, which must have @p tag. Returns 0 or -1. */
int hb_der_read(hb_cursor *c, uint8_t tag, hb_cursor *contents);

/* If the next element has @p tag, read it and return 1; return 0 when it
 * does not (or the cursor is empty), -1 when it is malformed. */
int hb_der_read_optional(hb_cursor *c, uint8_t tag, hb_cursor *contents);

#endif /* HB_IDENTITY_DER_H */
