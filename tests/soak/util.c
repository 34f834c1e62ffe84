/* SPDX-License-Identifier: MIT */
/* Random numbers, stream patterns, hashes and process measurements. */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "soak.h"

/* splitmix64: tiny, fast, and the same sequence everywhere for a seed. */
uint64_t rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t rng_below(uint64_t *state, uint64_t n)
{
    return rng_next(state) % n;
}

/* Each 8-byte block is a hash of (seed, block number): any offset can be
 * produced without the bytes before it. */
static uint64_t pattern_block(uint64_t seed, uint64_t block)
{
    uint64_t s = seed ^ (block * 0xd1b54a32d192ed03ull);
    return rng_next(&s);
}

void pattern_fill(uint64_t seed, uint64_t offset, uint8_t *buf, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint64_t at = offset + i;
        uint8_t block[8];
        put_u64(block, pattern_block(seed, at / 8));
        size_t from = (size_t)(at % 8), n = 8 - from;
        if (n > len - i)
            n = len - i;
        memcpy(buf + i, block + from, n);
        i += n;
    }
}

/* FNV-1a: byte-wise, so chunk boundaries on either side do not matter. */
uint64_t hash_update(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "hbone-soak[%d]: fatal: ", (int)getpid());
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (!p)
        die("out of memory");
    return p;
}

/* Entries of /proc/self/fd, less the one opendir() itself holds. */
int count_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.')
            n++;
    }
    closedir(d);
    return n - 1;
}

uint64_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%lu %lu", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* --- the counting allocator ------------------------------------------------ */

/* Each block carries its size in front, so that frees can be counted in
 * bytes too; 16 bytes keep the caller's pointer aligned for anything. */
#define HEADER 16

static void *counted(mem_counter *c, void *raw, size_t size)
{
    if (!raw)
        return NULL;
    memcpy(raw, &size, sizeof(size));
    c->allocs++;
    c->live_bytes += size;
    if (c->live_bytes > c->peak_bytes)
        c->peak_bytes = c->live_bytes;
    return (uint8_t *)raw + HEADER;
}

static void *count_malloc(size_t size, void *user)
{
    if (size > SIZE_MAX - HEADER)
        return NULL;
    return counted(user, malloc(size + HEADER), size);
}

static void count_free(void *ptr, void *user)
{
    mem_counter *c = user;
    if (!ptr)
        return;
    uint8_t *raw = (uint8_t *)ptr - HEADER;
    size_t size;
    memcpy(&size, raw, sizeof(size));
    c->frees++;
    c->live_bytes -= size;
    free(raw);
}

static void *count_calloc(size_t nmemb, size_t size, void *user)
{
    if (size && nmemb > (SIZE_MAX - HEADER) / size)
        return NULL;
    void *p = count_malloc(nmemb * size, user);
    if (p)
        memset(p, 0, nmemb * size);
    return p;
}

static void *count_realloc(void *ptr, size_t size, void *user)
{
    if (!ptr)
        return count_malloc(size, user);
    void *fresh = count_malloc(size, user);
    if (!fresh)
        return NULL;
    size_t old;
    memcpy(&old, (uint8_t *)ptr - HEADER, sizeof(old));
    memcpy(fresh, ptr, old < size ? old : size);
    count_free(ptr, user);
    return fresh;
}

hbone_mem *mem_counter_hook(mem_counter *counter)
{
    hbone_mem *mem;
    if (hbone_mem_new(&mem, count_malloc, count_free, count_calloc, count_realloc, counter) < 0)
        die("hbone_mem_new failed");
    return mem;
}
