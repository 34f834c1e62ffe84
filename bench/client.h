/* SPDX-License-Identifier: MIT */
/* The client side of the workloads (client.c). */
#ifndef HBONE_BENCH_CLIENT_H
#define HBONE_BENCH_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "bench.h"

typedef struct bench_target {
    transport_kind kind;
    const char *address; /* where its server listens */
} bench_target;

/* Move @p bytes_per_channel on each of @p channels (over @p conns
 * connections) at once, up (client -> sink) or down (server -> client).
 * Returns bytes per second of payload, from the first byte to the last
 * acknowledged. */
double run_bulk(const bench_target *t, int upload, size_t conns, size_t channels,
                uint64_t bytes_per_channel);

/* @p count echo round trips of @p message bytes on one warm channel; each
 * round trip's time in microseconds goes to @p rtt_us. */
void run_echo(const bench_target *t, size_t message, size_t count, double *rtt_us);

#endif
