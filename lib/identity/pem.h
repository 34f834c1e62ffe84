/* SPDX-License-Identifier: MIT */
/* PEM (RFC 7468) block iteration and base64 decoding. */
#ifndef HB_IDENTITY_PEM_H
#define HB_IDENTITY_PEM_H

#include <stddef.h>
#include <stdint.h>

#include "common/cursor.h"
#include "common/mem.h"

/*
 * Find the next "-----BEGIN <label>-----" ... "-----END <label>-----" block
 * in @p text, starting at *@p pos, and decode it into a new allocation
 * (*der, *der_len; free with hb_free). Text between blocks is ignored.
 * Returns 0 (and advances *pos past the block), HBONE_ERR_NOT_FOUND when no
 * block with @p label remains, HBONE_ERR_PEM for a malformed block, or
 * HBONE_ERR_NOMEM.
 */
int hb_pem_next(const hb_mem *mem, const char *text, size_t len, size_t *pos, const char *label,
                uint8_t **der, size_t *der_len);

#endif /* HB_IDENTITY_PEM_H */
