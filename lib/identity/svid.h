/* SPDX-License-Identifier: MIT */
/* X.509-SVID checks shared by the public API and the TLS layer. */
#ifndef HB_IDENTITY_SVID_H
#define HB_IDENTITY_SVID_H

#include <stddef.h>
#include <stdint.h>

#include <hbone/identity.h>

#include "common/log.h"
#include "common/mem.h"

/* As hbone_svid_check_der(), with a sentence naming the cause in @p detail
 * (may be NULL) on failure. */
int hb_svid_check(const uint8_t *der, size_t len, int mode, hbone_spiffe_id **id_out,
                  const hb_mem *mem, hb_detail *detail);

#endif /* HB_IDENTITY_SVID_H */
