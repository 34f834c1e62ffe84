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
    int server_pid;      /* for its memory and CPU figures */
    int server_pid2;     /* nghttpx in front of that server, or 0 */
    int server_control;  /* the control socket of the server at server_pid */
} bench_target;

/* Have the server at t->server_pid return its free heap pages to the
 * system, and wait until it has. */
void server_trim(const bench_target *t);
/* Wait until the server has closed every connection and freed its memory. */
void server_wait_no_connections(const bench_target *t);

/* CPU time (user + system) of this process and of the target's server
 * processes so far, in seconds. */
double cpu_seconds(const bench_target *t);

/* Move @p bytes_per_channel on each of @p channels (over @p conns
 * connections) at once, up (client -> sink) or down (server -> client).
 * Returns bytes per second of payload, from the first byte to the last
 * acknowledged. */
double run_bulk(const bench_target *t, int upload, size_t conns, size_t channels,
                uint64_t bytes_per_channel);

/* @p count echo round trips of @p message bytes on one warm channel; each
 * round trip's time in microseconds goes to @p rtt_us. */
void run_echo(const bench_target *t, size_t message, size_t count, double *rtt_us);

typedef enum rate_kind {
    RATE_ROUND_TRIP, /* 1-byte echoes on warm channels */
    RATE_TUNNEL,     /* HBONE: tunnel + 1-byte echo on a warm connection */
    RATE_CONNECTION  /* new connection + first channel + 1-byte echo */
} rate_kind;

/* Operations per second with @p in_flight at a time, @p operations in all. */
double run_rate(const bench_target *t, rate_kind kind, size_t in_flight, size_t operations);

/* Resident memory per idle connection (@p tunnels 0: @p conns connections,
 * each after one echo) or per idle tunnel (@p tunnels more on those
 * connections), in KiB, for the server process and this client. */
void run_idle_memory(const bench_target *t, size_t conns, size_t tunnels, double *server_kib,
                     double *client_kib);

/* @p tunnels at once over @p conns connections, each echoing @p bytes,
 * checked byte for byte. Returns MB/s both ways; the server's peak resident
 * memory goes to @p server_peak_mib. */
double run_scale(const bench_target *t, size_t conns, size_t tunnels, uint64_t bytes,
                 double *server_peak_mib);

#endif
