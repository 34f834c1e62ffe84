/* SPDX-License-Identifier: MIT */
/*
 * What a server checks of a client's ClientHello before wolfSSL reads it.
 *
 * wolfSSL 5.5.4 checks the entries of a ClientHello's ALPN extension
 * against the wrong bound (TLSX_ALPN_ParseAndSet stops two bytes short) and
 * later walks the copy it kept past its end (ALPN_find_match): a heap
 * over-read that any client can cause before it has authenticated. So a
 * server scans the client's stream as wolfSSL reads it, reassembles the
 * plaintext handshake messages (TLS 1.3 sends only ClientHellos in the
 * clear), and refuses a ClientHello that is malformed, its ALPN extension
 * above all, before wolfSSL receives its last byte.
 */
#ifndef HB_TLS_CLIENT_HELLO_H
#define HB_TLS_CLIENT_HELLO_H

#include <stddef.h>
#include <stdint.h>

#include "common/log.h"
#include "common/mem.h"

/* The largest plaintext handshake message taken (a ClientHello is a few
 * hundred bytes, a few KiB with post-quantum key shares). */
#define HB_CLIENT_HELLO_MAX 65536

typedef struct hb_hello_scan {
    uint8_t head[5];  /* the header of the record being read */
    size_t head_len;  /* how much of it has come */
    size_t body_left; /* bytes of the record's body still to come */
    uint8_t *msg;     /* handshake bytes of plaintext records, reassembled */
    size_t msg_len, msg_cap;
} hb_hello_scan;

/* Scan the next @p len bytes the client sent. Returns 0, or sets @p detail
 * and returns HBONE_ERR_TLS_HANDSHAKE (a malformed ClientHello),
 * HBONE_ERR_TLS_MESSAGE_TOO_LARGE or HBONE_ERR_NOMEM. */
int hb_hello_scan_feed(hb_hello_scan *s, const hb_mem *mem, const uint8_t *data, size_t len,
                       hb_detail *detail);

/* Release what the scan holds (it may be fed again afterwards). */
void hb_hello_scan_free(hb_hello_scan *s, const hb_mem *mem);

#endif /* HB_TLS_CLIENT_HELLO_H */
