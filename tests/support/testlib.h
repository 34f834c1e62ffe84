/* SPDX-License-Identifier: MIT */
/* Shared helpers for libhbone's Check tests. */
#ifndef HB_TESTLIB_H
#define HB_TESTLIB_H

#include <stddef.h>
#include <stdint.h>

#include <check.h>

#include <hbone/hbone.h>

/* Directory of the generated test PKI (tests/support/gen-pki.sh runs on
 * first use; it is idempotent and safe to run concurrently). Aborts the
 * test if the PKI cannot be generated. */
const char *tl_pki_dir(void);

/* Read a PKI file (e.g. "server.chain.pem") into a new NUL-terminated
 * buffer; *len gets its length. Aborts the test on failure. */
char *tl_pki_read(const char *name, size_t *len);

/* Decode the first PEM certificate of a PKI file into DER (malloc'd). */
uint8_t *tl_pki_der(const char *name, size_t *len);

/* A config with PKI files "<leaf>.chain.pem" and "<leaf>.key" and the bundle
 * of cluster.local; extra bundles: "td=file" strings, NULL-terminated. */
hbone_config *tl_config(const char *leaf, const char *const *extra_bundles);
/* The same, allocating through @p mem. */
hbone_config *tl_config_mem(const char *leaf, const char *const *extra_bundles,
                            const hbone_mem *mem);

/* A config with "<leaf>.chain.pem" and "<leaf>.key" whose cluster.local
 * bundle is the PKI file @p bundle only (e.g. "root-a.pem"). */
hbone_config *tl_config_trusting(const char *leaf, const char *bundle, const hbone_mem *mem);

/* Parse a SPIFFE ID or abort the test. */
hbone_spiffe_id *tl_id(const char *str);

/* An allocator that counts, and fails once @p budget allocations were made
 * (budget < 0: never fails). Every test that takes an hbone_mem uses it to
 * prove allocations balance and that each failure is handled. */
typedef struct tl_counting {
    long budget;   /* allocations still allowed; < 0 means unlimited */
    long attempts; /* allocation calls, failed ones included */
    long allocs;   /* successful allocations (realloc of NULL included) */
    long frees;
    size_t live_bytes; /* allocated and not freed (malloc_usable_size) */
} tl_counting;

/* Reset @p c and return an allocator over it (free with hbone_mem_del). */
hbone_mem *tl_counting_mem(tl_counting *c, long budget);

/* The same counting, and failing, for wolfSSL's own allocations, which do
 * not go through hbone_mem: wolfSSL's allocator is process-wide, so one
 * counter at a time. Reset @p c and count into it (blocks allocated while
 * counting only; live_bytes is not kept) until tl_count_wolfssl_end(),
 * which returns how many of those blocks are still allocated, puts the
 * sizes of the first @p max in @p leaked_sizes, and frees them all. */
void tl_count_wolfssl(tl_counting *c, long budget);
size_t tl_count_wolfssl_end(size_t *leaked_sizes, size_t max);

/* ck_assert_msg for hot paths. Check records the place of every assertion
 * that passes, a write() each time; this costs nothing until it fails. */
#define TL_REQUIRE(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg(__VA_ARGS__);                                                             \
    } while (0)

/* A running checksum of bytes in order (FNV-1a): start from
 * TL_CHECKSUM_INIT. */
#define TL_CHECKSUM_INIT 2166136261u
uint32_t tl_checksum(uint32_t sum, const uint8_t *data, size_t len);

/* @p full, or @p reduced where HBONE_TEST_REDUCED is set in the
 * environment (the valgrind test setup sets it): for tests whose point is
 * scale, run at full scale where it is cheap. */
long tl_scale(long full, long reduced);

/* Run @p suite and return the process exit status. */
int tl_run_suite(Suite *suite);

#endif /* HB_TESTLIB_H */
