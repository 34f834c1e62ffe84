/* SPDX-License-Identifier: MIT */
/* What the linked wolfSSL can do. */
#include <hbone/config.h>

#include "tls/wolfssl.h"

#include <wolfssl/version.h>
#if defined(WOLFSSL_AESNI)
#include <wolfssl/wolfcrypt/cpuid.h>
#endif

const char *hbone_tls_library(void)
{
#if defined(WOLFSSL_AESNI)
    return "wolfSSL " LIBWOLFSSL_VERSION_STRING " (AES-NI/AVX assembly)";
#else
    return "wolfSSL " LIBWOLFSSL_VERSION_STRING " (no assembly)";
#endif
}

int hbone_tls_aes_hw_accelerated(void)
{
#if defined(WOLFSSL_AESNI)
    /* The same run-time test wolfSSL's AES code uses to pick AES-NI. */
    return IS_INTEL_AESNI(cpuid_get_flags()) ? 1 : 0;
#else
    return 0;
#endif
}
