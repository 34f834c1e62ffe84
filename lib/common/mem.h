/* SPDX-License-Identifier: MIT */
/* Internal allocator plumbing: every allocation goes through an hb_mem. */
#ifndef HB_COMMON_MEM_H
#define HB_COMMON_MEM_H

#include <stddef.h>

#include <hbone/mem.h>

/* Public hbone_mem is this struct. */
struct hbone_mem {
    void *user_data;
    hbone_malloc_cb malloc_cb;
    hbone_free_cb free_cb;
    hbone_calloc_cb calloc_cb;
    hbone_realloc_cb realloc_cb;
};

typedef struct hbone_mem hb_mem;

/* The C library allocator; what NULL means wherever an hbone_mem is taken. */
const hb_mem *hb_mem_default(void);

/* @p mem if not NULL, else the default. */
static inline const hb_mem *hb_mem_or_default(const hb_mem *mem)
{
    return mem ? mem : hb_mem_default();
}

static inline void *hb_malloc(const hb_mem *mem, size_t size)
{
    return mem->malloc_cb(size, mem->user_data);
}

static inline void *hb_calloc(const hb_mem *mem, size_t nmemb, size_t size)
{
    return mem->calloc_cb(nmemb, size, mem->user_data);
}

static inline void *hb_realloc(const hb_mem *mem, void *ptr, size_t size)
{
    return mem->realloc_cb(ptr, size, mem->user_data);
}

static inline void hb_free(const hb_mem *mem, void *ptr)
{
    if (ptr)
        mem->free_cb(ptr, mem->user_data);
}

/* Hand the whole pages inside [@p ptr, @p ptr + @p len) back to the
 * kernel: for a fresh allocation whose contents nobody needs yet. They
 * read as zero afterwards and cost memory again only once written. */
void hb_mem_discard_pages(void *ptr, size_t len);

/* Copy @p len bytes into a new NUL-terminated allocation. */
char *hb_strndup(const hb_mem *mem, const char *s, size_t len);

#endif /* HB_COMMON_MEM_H */
