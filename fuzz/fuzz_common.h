/* SPDX-License-Identifier: MIT */
/*
 * Shared by every fuzz target: the libFuzzer entry point's prototype (so the
 * targets build with -Wmissing-prototypes and replay.c can call them), a
 * counting allocator, and the assertion macro.
 */
#ifndef HB_FUZZ_COMMON_H
#define HB_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include <hbone/mem.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * A fuzzer's assertion: report where and why, then abort() so that libFuzzer
 * and the replay driver both treat a broken invariant exactly like a crash
 * (assert() would vanish under -DNDEBUG builds).
 */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fuzz_fail(__FILE__, __LINE__, #cond);                                                  \
    } while (0)

#if defined(__GNUC__)
__attribute__((noreturn))
#endif
void fuzz_fail(const char *file, int line, const char *what);

/*
 * The counting allocator, as an hbone_mem for the APIs that take one. It
 * lives for the whole process; only the balance is per input.
 */
const hbone_mem *fuzz_mem(void);

/* Call at the start of an input: aborts if an earlier input leaked. */
void fuzz_mem_begin(void);

/* Make the @p n-th allocation through fuzz_mem() from now on fail (1: the
 * next one; malloc, calloc and growing realloc all count), once; 0 disarms.
 * fuzz_mem_begin() disarms too. This is how targets inject allocation
 * failures at a point the input chooses, in ngtcp2's style. */
void fuzz_mem_fail_nth(uint64_t n);

/* 1 if the failure armed by fuzz_mem_fail_nth() has happened since. */
int fuzz_mem_failed(void);

/* Call at the end of an input: aborts unless every allocation made through
 * fuzz_mem() since fuzz_mem_begin() was freed. This finds leaks in replay
 * builds without LeakSanitizer (gcc, valgrind-free CI). */
void fuzz_mem_end(void);

#endif /* HB_FUZZ_COMMON_H */
