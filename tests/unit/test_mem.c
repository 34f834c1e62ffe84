/* SPDX-License-Identifier: MIT */
/*
 * Memory an idle connection does not use is not held: the pages of large
 * fresh buffers go back to the kernel until written (nghttp2's per-session
 * frame buffer above all), and the bytes around them are left alone.
 */
#define _DEFAULT_SOURCE /* mincore */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/mem.h"
#include "h2/h2.h"
#include "testlib.h"

#define DIRT 0xAA

static size_t page_size(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

/* How many of the whole pages inside [p, p + len) are resident; *pages
 * receives how many whole pages there are. */
static size_t resident_pages(const void *p, size_t len, size_t *pages)
{
    size_t page = page_size();
    uintptr_t start = ((uintptr_t)p + page - 1) & ~(uintptr_t)(page - 1);
    uintptr_t end = ((uintptr_t)p + len) & ~(uintptr_t)(page - 1);
    *pages = end > start ? (end - start) / page : 0;
    if (!*pages)
        return 0;
    unsigned char vec[64];
    ck_assert_uint_le(*pages, sizeof(vec));
    ck_assert_int_eq(mincore((void *)start, end - start, vec), 0);
    size_t n = 0;
    for (size_t i = 0; i < *pages; i++)
        n += vec[i] & 1;
    return n;
}

START_TEST(discarded_pages_read_as_zero_and_cost_nothing)
{
    size_t page = page_size();
    size_t len = 16 * page;
    uint8_t *buf = malloc(len);
    ck_assert_ptr_nonnull(buf);
    memset(buf, DIRT, len);
    /* A range that starts and ends inside pages. */
    uint8_t *from = buf + page / 2 + 3;
    size_t n = 10 * page + 100;
    size_t pages;
    ck_assert_uint_gt(resident_pages(from, n, &pages), 0);
    hb_mem_discard_pages(from, n);
    ck_assert_uint_eq(resident_pages(from, n, &pages), 0);
    ck_assert_uint_ge(pages, 9);
    uintptr_t first = ((uintptr_t)from + page - 1) & ~(uintptr_t)(page - 1);
    uintptr_t last = ((uintptr_t)from + n) & ~(uintptr_t)(page - 1);
    for (size_t i = 0; i < len; i++) {
        uintptr_t at = (uintptr_t)(buf + i);
        /* Whole pages read as zero; every other byte is as it was. */
        ck_assert_uint_eq(buf[i], at >= first && at < last ? 0 : DIRT);
    }
    /* Written again, a page holds what was written. */
    memset(from, 0x55, n);
    ck_assert_uint_eq(from[n / 2], 0x55);
    free(buf);
}
END_TEST

START_TEST(ranges_without_a_whole_page_are_left_alone)
{
    size_t page = page_size();
    uint8_t *buf = malloc(4 * page);
    ck_assert_ptr_nonnull(buf);
    memset(buf, DIRT, 4 * page);
    uintptr_t boundary = ((uintptr_t)buf + page) & ~(uintptr_t)(page - 1);
    /* Straddling a boundary, but no whole page inside. */
    hb_mem_discard_pages((uint8_t *)boundary - 10, page - 1 + 10);
    hb_mem_discard_pages(buf, 0);
    for (size_t i = 0; i < 4 * page; i++)
        ck_assert_uint_eq(buf[i], DIRT);
    free(buf);
}
END_TEST

/* An allocator that hands out memory already written to, as memory the
 * process used before is, and remembers its largest allocation. */
static struct {
    void *largest;
    size_t largest_size;
    long live;
} dirty;

static void note(void *p, size_t size)
{
    if (p && size > dirty.largest_size) {
        dirty.largest = p;
        dirty.largest_size = size;
    }
}

static void *dirty_malloc(size_t size, void *user)
{
    (void)user;
    void *p = malloc(size);
    if (p) {
        memset(p, DIRT, size);
        dirty.live++;
    }
    note(p, size);
    return p;
}

static void dirty_free(void *p, void *user)
{
    (void)user;
    if (p)
        dirty.live--;
    free(p);
}

static void *dirty_calloc(size_t nmemb, size_t size, void *user)
{
    (void)user;
    void *p = calloc(nmemb, size);
    if (p)
        dirty.live++;
    return p;
}

static void *dirty_realloc(void *p, size_t size, void *user)
{
    (void)user;
    void *q = realloc(p, size);
    if (q && !p) {
        memset(q, DIRT, size);
        dirty.live++;
        note(q, size);
    }
    return q;
}

START_TEST(a_new_session_holds_no_frame_buffer_pages)
{
    memset(&dirty, 0, sizeof(dirty));
    hbone_mem *mem = NULL;
    ck_assert_int_eq(
        hbone_mem_new(&mem, dirty_malloc, dirty_free, dirty_calloc, dirty_realloc, NULL), 0);
    static const hb_h2_events no_events;
    hb_h2_settings settings;
    hb_h2 *h2 = NULL;
    int server = _i;
    hb_h2_default_settings(&settings, server);
    ck_assert_int_eq(hb_h2_new(&h2, server, &settings, mem, &no_events, NULL), 0);
    /* nghttp2's frame buffer: 16 KiB and more, every byte dirty when
     * handed out, yet none of its whole pages is resident. */
    ck_assert_uint_ge(dirty.largest_size, 16 * 1024);
    size_t pages;
    ck_assert_uint_eq(resident_pages(dirty.largest, dirty.largest_size, &pages), 0);
    ck_assert_uint_ge(pages, 3);
    hb_h2_del(h2);
    ck_assert_int_eq(dirty.live, 0);
    hbone_mem_del(mem);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("mem");
    TCase *tc = tcase_create("pages");
    tcase_add_test(tc, discarded_pages_read_as_zero_and_cost_nothing);
    tcase_add_test(tc, ranges_without_a_whole_page_are_left_alone);
    tcase_add_loop_test(tc, a_new_session_holds_no_frame_buffer_pages, 0, 2);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
