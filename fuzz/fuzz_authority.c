/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: CONNECT authorities and the forwarded header
 * (lib/connect/authority.c). The input is an :authority as a peer sends it.
 *
 * Invariants, besides "no crash":
 *  - allowing hostnames only ever accepts more, and never changes the
 *    reading of an IP authority;
 *  - what is accepted formats back to exactly the input;
 *  - an IPv4 or IPv6 host is one the C library's inet_pton accepts too
 *    (an independent oracle for the address grammar), and a hostname is not
 *    an address;
 *  - hbone_forwarded_format accepts the input as a source address exactly
 *    when inet_pton does.
 */
#include <arpa/inet.h>
#include <string.h>

#include <hbone/connect.h>
#include <hbone/error.h>

#include "fuzz_common.h"

/* inet_pton on a bounded, NUL-terminated copy; -1 if it cannot be asked. */
static int pton(int family, const char *s, size_t len)
{
    char text[64];
    unsigned char addr[16];
    if (len >= sizeof(text) || memchr(s, '\0', len))
        return -1;
    memcpy(text, s, len);
    text[len] = '\0';
    return inet_pton(family, text, addr) == 1;
}

static void check_parse(const char *in, size_t size)
{
    const char *host = NULL, *host2 = NULL;
    size_t host_len = 0, host_len2 = 0, bad = 0;
    uint16_t port = 0, port2 = 0;
    int kind = 0, kind2 = 0;
    int strict = hbone_authority_parse(in, size, 0, &host, &host_len, &port, &kind, &bad);
    int lax = hbone_authority_parse(in, size, HBONE_AUTHORITY_ALLOW_HOSTNAME, &host2, &host_len2,
                                    &port2, &kind2, NULL);
    FUZZ_CHECK(strict == 0 || strict == HBONE_ERR_AUTHORITY);
    FUZZ_CHECK(lax == 0 || lax == HBONE_ERR_AUTHORITY);
    if (strict != 0) {
        FUZZ_CHECK(bad <= size);
        if (lax == 0)
            FUZZ_CHECK(kind2 == HBONE_AUTHORITY_HOSTNAME);
        return;
    }
    FUZZ_CHECK(lax == 0 && kind2 == kind && port2 == port && host2 == host &&
               host_len2 == host_len);
    FUZZ_CHECK(kind == HBONE_AUTHORITY_IPV4 || kind == HBONE_AUTHORITY_IPV6);
    FUZZ_CHECK(port != 0);
    FUZZ_CHECK(host >= in && host_len <= size && (size_t)(host - in) <= size - host_len);
    FUZZ_CHECK(pton(kind == HBONE_AUTHORITY_IPV4 ? AF_INET : AF_INET6, host, host_len) == 1);
}

static void check_hostname_round_trip(const char *in, size_t size)
{
    const char *host = NULL;
    size_t host_len = 0;
    uint16_t port = 0;
    int kind = 0;
    if (hbone_authority_parse(in, size, HBONE_AUTHORITY_ALLOW_HOSTNAME, &host, &host_len, &port,
                              &kind, NULL) != 0)
        return;
    if (kind == HBONE_AUTHORITY_HOSTNAME) {
        FUZZ_CHECK(pton(AF_INET, host, host_len) != 1);
        FUZZ_CHECK(pton(AF_INET6, host, host_len) != 1);
    }
    char out[HBONE_AUTHORITY_MAX];
    size_t out_len = 0;
    FUZZ_CHECK(hbone_authority_format(host, host_len, port, out, sizeof(out), &out_len) == 0);
    FUZZ_CHECK(out_len == size && memcmp(out, in, size) == 0);
}

static void check_forwarded(const char *in, size_t size)
{
    char out[128];
    int r = hbone_forwarded_format(in, size, 80, NULL, 0, out, sizeof(out), NULL);
    int v4 = pton(AF_INET, in, size), v6 = pton(AF_INET6, in, size);
    if (v4 < 0 || v6 < 0)
        return; /* too long or holding a NUL for the oracle */
    FUZZ_CHECK((r == 0) == (v4 == 1 || v6 == 1));
    FUZZ_CHECK(r == 0 || r == HBONE_ERR_AUTHORITY);
    if (r == 0)
        FUZZ_CHECK(strncmp(out, "for=\"", 5) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char empty[1];
    const char *in = data ? (const char *)data : empty;
    check_parse(in, size);
    check_hostname_round_trip(in, size);
    check_forwarded(in, size);
    return 0;
}
