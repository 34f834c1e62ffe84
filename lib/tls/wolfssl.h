/* SPDX-License-Identifier: MIT */
/* The only place libhbone includes wolfSSL: options.h must come first so the
 * struct layouts match the library that is linked. */
#ifndef HB_TLS_WOLFSSL_H
#define HB_TLS_WOLFSSL_H

#include <wolfssl/options.h>

#include <wolfssl/ssl.h>
#include <wolfssl/error-ssl.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#ifndef WOLFSSL_ALWAYS_VERIFY_CB
#error                                                                                             \
    "libhbone reads the peer leaf in the verify callback: build wolfSSL with -DWOLFSSL_ALWAYS_VERIFY_CB"
#endif

/* wolfSSL names an allocation failure with one of two codes: wolfCrypt's
 * MEMORY_E and the TLS layer's MEMORY_ERROR. */
static inline int hb_wolfssl_out_of_memory(int err)
{
    return err == MEMORY_E || err == MEMORY_ERROR;
}

#endif /* HB_TLS_WOLFSSL_H */
