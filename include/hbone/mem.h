/* SPDX-License-Identifier: MIT */
/*
 * libhbone allocator hook.
 *
 * Every allocation libhbone makes for an object created with an hbone_mem
 * goes through these functions, and connections forward them to nghttp2.
 * wolfSSL's allocator is process-global and is not affected.
 */
#ifndef HBONE_MEM_H
#define HBONE_MEM_H

#include <stddef.h>

#include <hbone/export.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef void *(*hbone_malloc_cb)(size_t size, void *user_data);
typedef void (*hbone_free_cb)(void *ptr, void *user_data);
typedef void *(*hbone_calloc_cb)(size_t nmemb, size_t size, void *user_data);
typedef void *(*hbone_realloc_cb)(void *ptr, size_t size, void *user_data);

/** A set of allocation functions; opaque. */
typedef struct hbone_mem hbone_mem;

/**
 * Create an allocator description. All four functions are required and must
 * behave like their C library namesakes (calloc must zero; realloc(NULL, n)
 * must allocate). Objects created with it copy it, so it may be deleted right
 * after use; @p user_data must stay valid as long as those objects live.
 *
 * Returns 0, HBONE_ERR_INVALID_ARGUMENT or HBONE_ERR_NOMEM.
 */
HBONE_API int hbone_mem_new(hbone_mem **out, hbone_malloc_cb malloc_cb, hbone_free_cb free_cb,
                            hbone_calloc_cb calloc_cb, hbone_realloc_cb realloc_cb,
                            void *user_data);

/** Free an allocator description (NULL is a no-op). */
HBONE_API void hbone_mem_del(hbone_mem *mem);

#ifdef __cplusplus
}
#endif

#endif /* HBONE_MEM_H */
