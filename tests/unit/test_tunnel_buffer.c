/* SPDX-License-Identifier: MIT */
/*
 * A tunnel's outgoing buffer is a ring: bytes come out in the order they
 * went in across wraps and growth, and a drained large buffer is released.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "conn/tunnel.h"
#include "testlib.h"

/* What the random interleavings below queue, and where they collect it. */
static uint8_t in[1 << 20], out[1 << 20];

static void fill_in(void)
{
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)(i * 131 + (i >> 8));
}

/* Queue the next @p n bytes of in (fewer at its end); returns the new total. */
static size_t queue_next(const hb_mem *mem, hb_tunnel *t, size_t queued, size_t n)
{
    if (n > sizeof(in) - queued)
        n = sizeof(in) - queued;
    ck_assert_int_eq(hb_tunnel_queue(mem, t, in + queued, n), 0);
    return queued + n;
}

START_TEST(bytes_leave_in_order_across_wraps_and_growth)
{
    const hb_mem *mem = hb_mem_default();
    hb_tunnel t;
    memset(&t, 0, sizeof(t));
    fill_in();
    size_t queued = 0, taken = 0, peak = 0;
    unsigned seed = 42;
    /* Random interleavings keep the ring partly full, so writes wrap. */
    while (taken < sizeof(in)) {
        size_t n = (size_t)(rand_r(&seed) % 9000);
        if (queued < sizeof(in) && rand_r(&seed) % 2) {
            queued = queue_next(mem, &t, queued, n);
        } else {
            size_t got = hb_tunnel_take(mem, &t, out + taken, n);
            ck_assert_uint_le(got, n);
            ck_assert_uint_eq(got, n < queued - taken ? n : queued - taken);
            taken += got;
        }
        ck_assert_uint_eq(hb_tunnel_pending(&t), queued - taken);
        if (queued - taken > peak)
            peak = queued - taken;
        ck_assert_uint_le(t.out_cap, 2 * peak > 4096 ? 2 * peak : 4096); /* grows by doubling */
    }
    ck_assert_mem_eq(in, out, sizeof(in));
    ck_assert_uint_gt(peak, 16384); /* it did grow, and wrap, on the way */
    ck_assert_ptr_null(t.out);
}
END_TEST

/* What hb_tunnel_peek calls free room before the front may be written (a
 * frame header goes there): scribbling over all of it at every step never
 * touches a queued byte, and the bytes it shows are the front in order. */
START_TEST(room_before_the_front_is_free)
{
    const hb_mem *mem = hb_mem_default();
    hb_tunnel t;
    memset(&t, 0, sizeof(t));
    fill_in();
    size_t queued = 0, taken = 0, wrapped_peeks = 0;
    unsigned seed = 7;
    while (taken < sizeof(in)) {
        size_t n = (size_t)(rand_r(&seed) % 20000);
        if (queued < sizeof(in) && rand_r(&seed) % 2) {
            queued = queue_next(mem, &t, queued, n);
            continue;
        }
        size_t len, room;
        uint8_t *front = hb_tunnel_peek(&t, &len, &room);
        if (queued == taken) {
            ck_assert_ptr_null(front);
            continue;
        }
        ck_assert_uint_gt(len, 0);
        ck_assert_uint_le(len, queued - taken);
        wrapped_peeks += len < queued - taken;
        memset(front - room, 0xEE, room);
        if (n > len)
            n = len;
        memcpy(out + taken, front, n);
        hb_tunnel_skip(mem, &t, n);
        taken += n;
    }
    ck_assert_mem_eq(in, out, sizeof(in));
    ck_assert_uint_gt(wrapped_peeks, 0);
    ck_assert_ptr_null(t.out);
}
END_TEST

/* An unwrapped ring always has room for a frame header before its front,
 * even when the front is the first byte of the buffer. */
START_TEST(an_unwrapped_front_has_room_for_a_frame_header)
{
    const hb_mem *mem = hb_mem_default();
    hb_tunnel t;
    memset(&t, 0, sizeof(t));
    uint8_t data[100] = {1, 2, 3};
    ck_assert_int_eq(hb_tunnel_queue(mem, &t, data, sizeof(data)), 0);
    size_t len, room;
    ck_assert_ptr_eq(hb_tunnel_peek(&t, &len, &room), t.out);
    ck_assert_uint_eq(len, sizeof(data));
    ck_assert_uint_ge(room, 9);
    hb_tunnel_skip(mem, &t, 40);
    ck_assert_ptr_eq(hb_tunnel_peek(&t, &len, &room), t.out + 40);
    ck_assert_uint_eq(len, 60);
    ck_assert_uint_eq(room, HB_TUNNEL_HEADROOM + 40);
    hb_tunnel_discard(mem, &t);
    ck_assert_ptr_null(hb_tunnel_peek(&t, &len, &room));
    ck_assert_uint_eq(len, 0);
}
END_TEST

START_TEST(nothing_queued_on_an_empty_ring)
{
    /* A zero-length write on a tunnel that has no buffer yet. */
    const hb_mem *mem = hb_mem_default();
    hb_tunnel t;
    memset(&t, 0, sizeof(t));
    ck_assert_int_eq(hb_tunnel_queue(mem, &t, (const uint8_t *)"", 0), 0);
    ck_assert_uint_eq(hb_tunnel_pending(&t), 0);
    ck_assert_ptr_null(t.out);
    uint8_t sink[4];
    ck_assert_uint_eq(hb_tunnel_take(mem, &t, sink, sizeof(sink)), 0);
}
END_TEST

START_TEST(a_drained_buffer_is_released)
{
    const hb_mem *mem = hb_mem_default();
    hb_tunnel t;
    memset(&t, 0, sizeof(t));
    static uint8_t data[100000], sink[100000];
    ck_assert_int_eq(hb_tunnel_queue(mem, &t, data, sizeof(data)), 0);
    ck_assert_ptr_nonnull(t.out);
    ck_assert_uint_eq(hb_tunnel_take(mem, &t, sink, sizeof(sink)), sizeof(data));
    ck_assert_ptr_null(t.out); /* idle tunnels hold no buffer */
    /* Small ones too. */
    ck_assert_int_eq(hb_tunnel_queue(mem, &t, data, 100), 0);
    ck_assert_uint_eq(hb_tunnel_take(mem, &t, sink, 40), 40);
    ck_assert_ptr_nonnull(t.out); /* not drained yet */
    ck_assert_uint_eq(hb_tunnel_take(mem, &t, sink, 100), 60);
    ck_assert_ptr_null(t.out);
    hb_tunnel_queue(mem, &t, data, 10);
    hb_tunnel_discard(mem, &t);
    ck_assert_uint_eq(hb_tunnel_pending(&t), 0);
    ck_assert_ptr_null(t.out);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tunnel-buffer");
    TCase *tc = tcase_create("ring");
    tcase_add_test(tc, bytes_leave_in_order_across_wraps_and_growth);
    tcase_add_test(tc, a_drained_buffer_is_released);
    tcase_add_test(tc, nothing_queued_on_an_empty_ring);
    tcase_add_test(tc, room_before_the_front_is_free);
    tcase_add_test(tc, an_unwrapped_front_has_room_for_a_frame_header);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
