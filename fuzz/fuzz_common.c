/* SPDX-License-Identifier: MIT */
#include "fuzz_common.h"

#include <stdio.h>
#include <stdlib.h>

#include <hbone/error.h>

/* Live allocations made through fuzz_mem(). Fuzzing is single-threaded, so
 * a plain counter is enough. */
static size_t live_blocks;
/* Allocation attempts until the injected failure (0: none armed), and
 * whether it happened. */
static uint64_t fail_countdown;
static int failed_once;

/* Whether this allocation attempt is the one to fail. */
static int inject_failure(void)
{
    if (fail_countdown == 0 || --fail_countdown != 0)
        return 0;
    failed_once = 1;
    return 1;
}

void fuzz_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "%s:%d: fuzz invariant violated: %s\n", file, line, what);
    fflush(stderr);
    abort();
}

static void *count_malloc(size_t size, void *user_data)
{
    (void)user_data;
    if (inject_failure())
        return NULL;
    void *p = malloc(size);
    if (p)
        live_blocks++;
    return p;
}

static void count_free(void *ptr, void *user_data)
{
    (void)user_data;
    if (!ptr)
        return;
    /* A free without a matching allocation is a double free or a foreign
     * pointer: ASan would catch it too, but only in sanitizer builds. */
    FUZZ_CHECK(live_blocks > 0);
    live_blocks--;
    free(ptr);
}

static void *count_calloc(size_t nmemb, size_t size, void *user_data)
{
    (void)user_data;
    if (inject_failure())
        return NULL;
    void *p = calloc(nmemb, size);
    if (p)
        live_blocks++;
    return p;
}

static void *count_realloc(void *ptr, size_t size, void *user_data)
{
    (void)user_data;
    if (!ptr)
        return count_malloc(size, user_data);
    if (size == 0) {
        /* realloc(p, 0) frees in glibc; do it explicitly so the count cannot
         * depend on the C library's choice. */
        count_free(ptr, user_data);
        return NULL;
    }
    /* Moving a block neither adds nor removes one; on failure the old block
     * stays live, as it should. */
    if (inject_failure())
        return NULL;
    return realloc(ptr, size);
}

const hbone_mem *fuzz_mem(void)
{
    static hbone_mem *mem;
    if (!mem) {
        if (hbone_mem_new(&mem, count_malloc, count_free, count_calloc, count_realloc, NULL) !=
            HBONE_OK) {
            fprintf(stderr, "fuzz: hbone_mem_new failed\n");
            abort();
        }
    }
    return mem;
}

void fuzz_mem_fail_nth(uint64_t n)
{
    fail_countdown = n;
    failed_once = 0;
}

int fuzz_mem_failed(void)
{
    return failed_once;
}

void fuzz_mem_begin(void)
{
    FUZZ_CHECK(live_blocks == 0);
    fuzz_mem_fail_nth(0);
    (void)fuzz_mem();
}

void fuzz_mem_end(void)
{
    if (live_blocks != 0) {
        fprintf(stderr, "fuzz: %zu allocation(s) leaked by this input\n", live_blocks);
        fuzz_fail(__FILE__, __LINE__, "allocations and frees balance");
    }
}
