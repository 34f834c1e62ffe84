/* SPDX-License-Identifier: MIT */
#include "testlib.h"

#include <check.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "identity/pem.h"
#include "tls/wolfssl.h"

#include <wolfssl/wolfcrypt/memory.h>

#ifndef TL_GEN_PKI
#error "TL_GEN_PKI must name tests/support/gen-pki.sh"
#endif
#ifndef TL_PKI_DIR
#error "TL_PKI_DIR must name the directory the test PKI goes to"
#endif

static pthread_once_t pki_once = PTHREAD_ONCE_INIT;
static int pki_status = -1;

static void generate_pki(void)
{
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "bash '%s' '%s' >/dev/null", TL_GEN_PKI, TL_PKI_DIR);
    pki_status = system(cmd);
}

const char *tl_pki_dir(void)
{
    pthread_once(&pki_once, generate_pki);
    ck_assert_msg(pki_status == 0, "gen-pki.sh failed (status %d)", pki_status);
    return TL_PKI_DIR;
}

char *tl_pki_read(const char *name, size_t *len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", tl_pki_dir(), name);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    long size = ftell(f);
    ck_assert_int_ge(size, 0);
    rewind(f);
    char *buf = malloc((size_t)size + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    buf[size] = '\0';
    if (len)
        *len = (size_t)size;
    return buf;
}

uint8_t *tl_pki_der(const char *name, size_t *len)
{
    size_t pem_len, pos = 0;
    char *pem = tl_pki_read(name, &pem_len);
    uint8_t *der = NULL;
    int r = hb_pem_next(hb_mem_default(), pem, pem_len, &pos, "CERTIFICATE", &der, len);
    free(pem);
    ck_assert_msg(r == 0, "%s: no certificate (%s)", name, hbone_strerror(r));
    return der;
}

static void add_bundle(hbone_config *cfg, const char *td, const char *file)
{
    size_t len;
    char *pem = tl_pki_read(file, &len);
    int r = hbone_config_add_trust_bundle(cfg, td, strlen(td), pem, len);
    ck_assert_msg(r == 0, "bundle %s: %s: %s", file, hbone_strerror(r),
                  hbone_config_error_detail(cfg));
    free(pem);
}

hbone_config *tl_config(const char *leaf, const char *const *extra_bundles)
{
    return tl_config_mem(leaf, extra_bundles, NULL);
}

hbone_config *tl_config_mem(const char *leaf, const char *const *extra_bundles,
                            const hbone_mem *mem)
{
    hbone_config *cfg = tl_config_trusting(leaf, "bundle-cluster.local.pem", mem);
    for (size_t i = 0; extra_bundles && extra_bundles[i]; i++) {
        char td[256];
        const char *eq = strchr(extra_bundles[i], '=');
        ck_assert_ptr_nonnull(eq);
        snprintf(td, sizeof(td), "%.*s", (int)(eq - extra_bundles[i]), extra_bundles[i]);
        add_bundle(cfg, td, eq + 1);
    }
    return cfg;
}

hbone_config *tl_config_trusting(const char *leaf, const char *bundle, const hbone_mem *mem)
{
    hbone_config *cfg = NULL;
    ck_assert_int_eq(hbone_config_new(&cfg, mem), 0);
    char name[256];
    size_t chain_len, key_len;
    snprintf(name, sizeof(name), "%s.chain.pem", leaf);
    char *chain = tl_pki_read(name, &chain_len);
    snprintf(name, sizeof(name), "%s.key", leaf);
    char *key = tl_pki_read(name, &key_len);
    int r = hbone_config_set_certificate(cfg, chain, chain_len, key, key_len);
    ck_assert_msg(r == 0, "certificate %s: %s: %s", leaf, hbone_strerror(r),
                  hbone_config_error_detail(cfg));
    free(chain);
    free(key);
    add_bundle(cfg, "cluster.local", bundle);
    return cfg;
}

hbone_spiffe_id *tl_id(const char *str)
{
    hbone_spiffe_id *id = NULL;
    int r = hbone_spiffe_id_parse(&id, str, strlen(str), NULL);
    ck_assert_msg(r == 0, "%s: %s", str, hbone_strerror(r));
    return id;
}

static int count_allowed(tl_counting *c)
{
    c->attempts++;
    if (c->budget == 0)
        return 0;
    if (c->budget > 0)
        c->budget--;
    return 1;
}

static void *count_result(tl_counting *c, void *p)
{
    if (p) {
        c->allocs++;
        c->live_bytes += malloc_usable_size(p);
    }
    return p;
}

/* Sizes of 0 are bumped to 1 so that every success is a real pointer. */
static void *count_malloc(size_t size, void *user_data)
{
    tl_counting *c = user_data;
    return count_allowed(c) ? count_result(c, malloc(size ? size : 1)) : NULL;
}

static void *count_calloc(size_t nmemb, size_t size, void *user_data)
{
    tl_counting *c = user_data;
    return count_allowed(c) ? count_result(c, calloc(nmemb ? nmemb : 1, size ? size : 1)) : NULL;
}

static void *count_realloc(void *ptr, size_t size, void *user_data)
{
    tl_counting *c = user_data;
    if (!count_allowed(c))
        return NULL;
    if (!ptr)
        return count_result(c, realloc(NULL, size ? size : 1));
    size_t before = malloc_usable_size(ptr);
    void *p = realloc(ptr, size ? size : 1);
    if (p)
        c->live_bytes += malloc_usable_size(p) - before;
    return p;
}

static void count_free(void *ptr, void *user_data)
{
    tl_counting *c = user_data;
    TL_REQUIRE(ptr, "free(NULL) through the hbone_mem hook");
    c->frees++;
    c->live_bytes -= malloc_usable_size(ptr);
    free(ptr);
}

hbone_mem *tl_counting_mem(tl_counting *c, long budget)
{
    memset(c, 0, sizeof(*c));
    c->budget = budget;
    hbone_mem *mem = NULL;
    ck_assert_int_eq(hbone_mem_new(&mem, count_malloc, count_free, count_calloc, count_realloc, c),
                     0);
    return mem;
}

/* wolfSSL's blocks allocated while counting, by address. Only these count
 * when freed, so blocks from before counting began leave the balance alone,
 * and those left at the end are leaks, with their sizes. Searched from the
 * newest: most blocks go soon after they came. */
enum { WOLFSSL_MAX_LIVE = 16384 };
static struct wolfssl_block {
    void *ptr;
    size_t size;
} wolfssl_live[WOLFSSL_MAX_LIVE];
static size_t wolfssl_n_live;
static tl_counting *wolfssl_counter;
static wolfSSL_Malloc_cb saved_malloc;
static wolfSSL_Free_cb saved_free;
static wolfSSL_Realloc_cb saved_realloc;

static struct wolfssl_block *wolfssl_block_of(const void *ptr)
{
    for (size_t i = wolfssl_n_live; ptr && i-- > 0;) {
        if (wolfssl_live[i].ptr == ptr)
            return &wolfssl_live[i];
    }
    return NULL;
}

static void wolfssl_track(void *ptr, size_t size)
{
    TL_REQUIRE(wolfssl_n_live < WOLFSSL_MAX_LIVE, "more than %d live wolfSSL blocks",
               WOLFSSL_MAX_LIVE);
    wolfssl_live[wolfssl_n_live++] = (struct wolfssl_block){ptr, size};
    wolfssl_counter->allocs++;
}

static void wolfssl_untrack(struct wolfssl_block *b)
{
    *b = wolfssl_live[--wolfssl_n_live];
    wolfssl_counter->frees++;
}

static void *wolfssl_malloc(size_t size)
{
    if (!count_allowed(wolfssl_counter))
        return NULL;
    void *p = malloc(size ? size : 1);
    if (p)
        wolfssl_track(p, size);
    return p;
}

static void wolfssl_free(void *ptr)
{
    struct wolfssl_block *b = wolfssl_block_of(ptr);
    if (b)
        wolfssl_untrack(b);
    free(ptr);
}

static void *wolfssl_realloc(void *ptr, size_t size)
{
    if (!count_allowed(wolfssl_counter))
        return NULL;
    struct wolfssl_block *b = wolfssl_block_of(ptr);
    void *p = realloc(ptr, size ? size : 1);
    if (p && b)
        *b = (struct wolfssl_block){p, size};
    else if (p && !ptr)
        wolfssl_track(p, size);
    return p;
}

void tl_count_wolfssl(tl_counting *c, long budget)
{
    memset(c, 0, sizeof(*c));
    c->budget = budget;
    ck_assert_ptr_null(wolfssl_counter);
    wolfssl_counter = c;
    wolfssl_n_live = 0;
    ck_assert_int_eq(wolfSSL_GetAllocators(&saved_malloc, &saved_free, &saved_realloc), 0);
    ck_assert_int_eq(wolfSSL_SetAllocators(wolfssl_malloc, wolfssl_free, wolfssl_realloc), 0);
}

size_t tl_count_wolfssl_end(size_t *leaked_sizes, size_t max)
{
    ck_assert_int_eq(wolfSSL_SetAllocators(saved_malloc, saved_free, saved_realloc), 0);
    wolfssl_counter = NULL;
    for (size_t i = 0; i < wolfssl_n_live; i++) {
        if (i < max)
            leaked_sizes[i] = wolfssl_live[i].size;
        free(wolfssl_live[i].ptr); /* the caller judges the leak: the leak checkers need not */
    }
    return wolfssl_n_live;
}

long tl_scale(long full, long reduced)
{
    return getenv("HBONE_TEST_REDUCED") ? reduced : full;
}

int tl_run_suite(Suite *suite)
{
    SRunner *sr = srunner_create(suite);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

uint32_t tl_checksum(uint32_t sum, const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len; i++)
        sum = (sum ^ data[i]) * 16777619u;
    return sum;
}
