/* SPDX-License-Identifier: MIT */
#define _DEFAULT_SOURCE /* MADV_DONTNEED: POSIX_MADV_DONTNEED does nothing on Linux */
#include "common/mem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <hbone/error.h>

static void *libc_malloc(size_t size, void *user_data)
{
    (void)user_data;
    return malloc(size);
}

static void libc_free(void *ptr, void *user_data)
{
    (void)user_data;
    free(ptr);
}

static void *libc_calloc(size_t nmemb, size_t size, void *user_data)
{
    (void)user_data;
    return calloc(nmemb, size);
}

static void *libc_realloc(void *ptr, size_t size, void *user_data)
{
    (void)user_data;
    return realloc(ptr, size);
}

static const hb_mem libc_mem = {NULL, libc_malloc, libc_free, libc_calloc, libc_realloc};

const hb_mem *hb_mem_default(void)
{
    return &libc_mem;
}

int hbone_mem_new(hbone_mem **out, hbone_malloc_cb malloc_cb, hbone_free_cb free_cb,
                  hbone_calloc_cb calloc_cb, hbone_realloc_cb realloc_cb, void *user_data)
{
    if (!out || !malloc_cb || !free_cb || !calloc_cb || !realloc_cb)
        return HBONE_ERR_INVALID_ARGUMENT;
    *out = NULL;
    /* The description itself lives in libc memory: it is tiny, and using the
     * hook to allocate its own description would be circular. */
    hbone_mem *mem = malloc(sizeof(*mem));
    if (!mem)
        return HBONE_ERR_NOMEM;
    *mem = (hbone_mem){user_data, malloc_cb, free_cb, calloc_cb, realloc_cb};
    *out = mem;
    return 0;
}

void hbone_mem_del(hbone_mem *mem)
{
    free(mem);
}

char *hb_strndup(const hb_mem *mem, const char *s, size_t len)
{
    char *copy = hb_malloc(mem, len + 1);
    if (!copy)
        return NULL;
    if (len)
        memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

void hb_mem_discard_pages(void *ptr, size_t len)
{
    static uintptr_t page;
    if (!page)
        page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t start = ((uintptr_t)ptr + page - 1) & ~(page - 1);
    uintptr_t end = ((uintptr_t)ptr + len) & ~(page - 1);
    /* Advice only: memory that cannot be discarded (locked, huge pages)
     * simply stays, with the same unspecified contents. */
    if (end > start)
        (void)madvise((void *)start, end - start, MADV_DONTNEED);
}
