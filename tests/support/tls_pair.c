/* SPDX-License-Identifier: MIT */
#include "tls_pair.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

static void q_push(tl_queue *q, const uint8_t *data, size_t n)
{
    if (n == 0)
        return;
    if (q->cap - q->len < n) {
        size_t cap = q->cap ? q->cap : 4096;
        while (cap - q->len < n)
            cap *= 2;
        q->buf = realloc(q->buf, cap);
        ck_assert_ptr_nonnull(q->buf);
        q->cap = cap;
    }
    memcpy(q->buf + q->len, data, n);
    q->len += n;
}

static void q_pop(tl_queue *q, size_t n)
{
    ck_assert_uint_le(n, q->len);
    if (n == 0)
        return;
    memmove(q->buf, q->buf + n, q->len - n);
    q->len -= n;
}

void tl_pair_init(tl_pair *p, hbone_config *client_cfg, hbone_config *server_cfg,
                  const char *const *expected, int chunking, unsigned seed)
{
    memset(p, 0, sizeof(*p));
    p->chunking = chunking;
    p->seed = seed;
    ck_assert_int_eq(hb_tls_new(&p->client.tls, client_cfg, HB_TLS_CLIENT), 0);
    ck_assert_int_eq(hb_tls_new(&p->server.tls, server_cfg, HB_TLS_SERVER), 0);
    for (size_t i = 0; expected && expected[i]; i++) {
        hbone_spiffe_id *id = tl_id(expected[i]);
        ck_assert_int_eq(hb_tls_expect_peer(p->client.tls, id), 0);
        hbone_spiffe_id_del(id);
    }
}

void tl_pair_free(tl_pair *p)
{
    tl_side *sides[2] = {&p->client, &p->server};
    for (int i = 0; i < 2; i++) {
        hb_tls_del(sides[i]->tls);
        free(sides[i]->in.buf);
        free(sides[i]->plain.buf);
    }
}

static size_t chunk_size(tl_pair *p, size_t avail)
{
    size_t n = avail;
    if (p->chunking == TL_CHUNK_ONE_BYTE)
        n = 1;
    else if (p->chunking == TL_CHUNK_RANDOM)
        n = (size_t)rand_r(&p->seed) % 700 + 1;
    return n < avail ? n : avail;
}

/* One step of one side: feed a chunk, collect output. Returns 1 on progress. */
static int step(tl_pair *p, tl_side *self, tl_side *peer)
{
    int progress = 0;
    if (self->state >= 0 && self->state != 2) {
        size_t n = chunk_size(p, self->in.len), consumed = 0;
        int before = self->state;
        if (self->state == 0) {
            int r = hb_tls_handshake(self->tls, self->in.buf, n, &consumed);
            if (r == 0)
                self->state = 1;
            else if (r != HBONE_ERR_AGAIN)
                self->state = r;
        } else {
            uint8_t buf[4096];
            size_t nread = 0;
            int r = hb_tls_read(self->tls, self->in.buf, n, &consumed, buf, sizeof(buf), &nread);
            q_push(&self->plain, buf, nread);
            progress |= nread > 0;
            if (r == HBONE_ERR_CLOSED)
                self->state = 2;
            else if (r < 0 && r != HBONE_ERR_AGAIN)
                self->state = r;
        }
        q_pop(&self->in, consumed);
        progress |= consumed > 0 || before != self->state;
    }
    size_t out_len;
    const uint8_t *out = hb_tls_output(self->tls, &out_len);
    if (out_len) {
        if (self->state == 1)
            self->sent_after_handshake += out_len;
        q_push(&peer->in, out, out_len);
        hb_tls_output_consume(self->tls, out_len);
        progress = 1;
    }
    return progress;
}

void tl_pair_pump(tl_pair *p)
{
    /* A bounded loop: a stuck exchange fails the test instead of hanging. */
    for (int rounds = 0; rounds < 1000000; rounds++) {
        int progress = step(p, &p->client, &p->server);
        progress |= step(p, &p->server, &p->client);
        if (!progress)
            return;
    }
    ck_abort_msg("TLS pair did not settle");
}

void tl_pair_write(tl_side *side, const void *data, size_t len)
{
    int r = hb_tls_write(side->tls, data, len);
    ck_assert_msg(r == 0, "write: %s", hbone_strerror(r));
}
