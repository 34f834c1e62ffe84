/* SPDX-License-Identifier: MIT */
#include "raw_tls.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

void raw_tls_push(tl_queue *q, const void *data, size_t n)
{
    if (n == 0)
        return;
    if (q->cap - q->len < n) {
        q->cap = (q->len + n) * 2;
        q->buf = realloc(q->buf, q->cap);
        ck_assert_ptr_nonnull(q->buf);
    }
    memcpy(q->buf + q->len, data, n);
    q->len += n;
}

static int raw_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    tl_queue *q = &((struct raw_client *)ctx)->from_server;
    if (q->len == 0)
        return WOLFSSL_CBIO_ERR_WANT_READ;
    size_t n = (size_t)sz < q->len ? (size_t)sz : q->len;
    memcpy(buf, q->buf, n);
    memmove(q->buf, q->buf + n, q->len - n);
    q->len -= n;
    return (int)n;
}

static int raw_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    raw_tls_push(&((struct raw_client *)ctx)->to_server, buf, (size_t)sz);
    return sz;
}

void raw_client_init(struct raw_client *rc, int with_cert, const char *alpn)
{
    size_t chain_len = 0;
    char *chain = with_cert ? tl_pki_read("client.chain.pem", &chain_len) : NULL;
    raw_client_init_chain(rc, chain, chain_len, alpn);
    free(chain);
}

void raw_client_init_chain(struct raw_client *rc, const char *chain, size_t chain_len,
                           const char *alpn)
{
    memset(rc, 0, sizeof(*rc));
    rc->ctx = wolfSSL_CTX_new(wolfTLSv1_3_client_method());
    ck_assert_ptr_nonnull(rc->ctx);
    wolfSSL_CTX_set_verify(rc->ctx, WOLFSSL_VERIFY_NONE, NULL);
    if (chain) {
        size_t key_len;
        char *key = tl_pki_read("client.key", &key_len);
        ck_assert_int_eq(
            wolfSSL_CTX_use_certificate_chain_buffer_format(rc->ctx, (const unsigned char *)chain,
                                                            (long)chain_len, WOLFSSL_FILETYPE_PEM),
            WOLFSSL_SUCCESS);
        ck_assert_int_eq(wolfSSL_CTX_use_PrivateKey_buffer(rc->ctx, (unsigned char *)key,
                                                           (long)key_len, WOLFSSL_FILETYPE_PEM),
                         WOLFSSL_SUCCESS);
        free(key);
    }
    rc->ssl = wolfSSL_new(rc->ctx);
    ck_assert_ptr_nonnull(rc->ssl);
    wolfSSL_SSLSetIORecv(rc->ssl, raw_recv);
    wolfSSL_SSLSetIOSend(rc->ssl, raw_send);
    wolfSSL_SetIOReadCtx(rc->ssl, rc);
    wolfSSL_SetIOWriteCtx(rc->ssl, rc);
    if (alpn) {
        char list[64];
        snprintf(list, sizeof(list), "%s", alpn);
        ck_assert_int_eq(wolfSSL_UseALPN(rc->ssl, list, (unsigned)strlen(list),
                                         WOLFSSL_ALPN_CONTINUE_ON_MISMATCH),
                         WOLFSSL_SUCCESS);
    }
}

void raw_client_free(struct raw_client *rc)
{
    wolfSSL_free(rc->ssl);
    wolfSSL_CTX_free(rc->ctx);
    free(rc->to_server.buf);
    free(rc->from_server.buf);
}
