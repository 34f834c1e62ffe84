/* SPDX-License-Identifier: MIT */
/*
 * Memory and scale: resident memory per idle tunnel and per idle
 * connection (the server process's and this client's growth, divided), and
 * many tunnels at once with data checked byte for byte.
 */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench.h"
#include "client.h"

#define TIMEOUT_US (300u * 1000000u)

typedef struct flow {
    channel *ch;
    uint64_t sent, received;
    int done;
} flow;

static flow *flows;
static size_t n_flows, n_open, n_done, n_closed;
static uint64_t flow_bytes; /* per flow, echoed back */
static int all_done, all_closed;

/* VmRSS or VmHWM of @p pid (0: this process), in KiB. */
static long proc_kib(int pid, const char *field)
{
    char path[64], line[256];
    if (pid)
        snprintf(path, sizeof(path), "/proc/%d/status", pid);
    else
        snprintf(path, sizeof(path), "/proc/self/status");
    FILE *f = fopen(path, "r");
    if (!f)
        die("cannot read %s", path);
    long kib = -1;
    size_t flen = strlen(field);
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, field, flen) == 0 && line[flen] == ':')
            kib = strtol(line + flen + 1, NULL, 10);
    }
    fclose(f);
    if (kib < 0)
        die("no %s in %s", field, path);
    return kib;
}

/* utime + stime of @p pid from /proc (fields 14 and 15), in seconds. */
static double proc_cpu(int pid)
{
    char path[64], line[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f || !fgets(line, sizeof(line), f))
        die("cannot read %s", path);
    fclose(f);
    /* The name (field 2) may hold spaces: count fields after its ')'. */
    const char *p = strrchr(line, ')');
    unsigned long utime = 0, stime = 0;
    if (!p ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
        die("cannot parse %s", path);
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

double cpu_seconds(const bench_target *t)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double self = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                  (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    return self + proc_cpu(t->server_pid) + (t->server_pid2 ? proc_cpu(t->server_pid2) : 0);
}

static void pump(flow *f)
{
    const uint8_t *pattern = bench_pattern();
    while (f->sent < flow_bytes) {
        size_t accepted = 0;
        size_t n = (size_t)(flow_bytes - f->sent);
        if (f->ch->ops->write(f->ch, pattern + f->sent, n, &accepted) < 0 && accepted == 0)
            return;
        f->sent += accepted;
    }
}

static void on_open(channel *ch, int ok)
{
    flow *f = ch->app;
    if (!ok)
        die("a tunnel was refused");
    static const uint8_t echo = WORK_ECHO;
    channel_write_all(ch, &echo, 1);
    n_open++;
    pump(f);
}

static void on_data(channel *ch, const uint8_t *data, size_t len)
{
    flow *f = ch->app;
    ch->ops->consume(ch, len);
    if (f->received + len > flow_bytes || memcmp(data, bench_pattern() + f->received, len) != 0)
        die("echoed bytes differ from those sent (offset %llu)", (unsigned long long)f->received);
    f->received += len;
    if (f->received == flow_bytes && !f->done) {
        f->done = 1;
        all_done = ++n_done == n_flows;
    }
}

static void on_writable(channel *ch)
{
    pump(ch->app);
}

static void on_close(channel *ch)
{
    flow *f = ch->app;
    f->ch = NULL;
    if (!f->done)
        die("a tunnel closed before its echo came back");
    all_closed = ++n_closed == n_flows;
}

static void attach(channel *ch, size_t index, void *arg)
{
    size_t first = (size_t)(uintptr_t)arg; /* where this batch starts */
    flow *f = &flows[first + index];
    f->ch = ch;
    ch->app = f;
    ch->on_open = on_open;
    ch->on_data = on_data;
    ch->on_writable = on_writable;
    ch->on_end = NULL;
    ch->on_close = on_close;
}

static void prepare(size_t capacity, uint64_t bytes)
{
    free(flows);
    flows = calloc(capacity, sizeof(*flows));
    if (!flows)
        die("out of memory");
    n_flows = n_open = n_done = n_closed = 0;
    flow_bytes = bytes;
    if (bytes > BENCH_PATTERN)
        die("a flow echoes at most %d bytes", BENCH_PATTERN);
}

static void wait_all(void)
{
    all_done = n_done == n_flows;
    if (loop_run_until(&all_done, now_us() + TIMEOUT_US) < 0)
        die("%zu of %zu flows echoed in time (%zu open)", n_done, n_flows, n_open);
}

/* @p n flows over @p conns new connections; wait for every echo. The
 * channels stay open. */
static void open_flows(const bench_target *t, size_t conns, size_t n)
{
    size_t first = n_flows;
    n_flows += n;
    if (transport_open(t->kind, t->address, conns, n, attach, (void *)(uintptr_t)first) < 0)
        die("cannot connect to %s", t->address);
    wait_all();
}

/* Resident memory of the server and of this process once each has returned
 * its free heap pages to the system: what live objects hold. */
static void resident(const bench_target *t, long *server_kib, long *client_kib)
{
    static const int now = 1;
    loop_run_until(&now, 0); /* release what closed sources left */
    server_trim(t);
    malloc_trim(0);
    *server_kib = proc_kib(t->server_pid, "VmRSS");
    *client_kib = proc_kib(0, "VmRSS");
}

/* HBONE: end every tunnel (each echo ends when its client ends), leaving
 * the connections without any. */
static void end_tunnels(void)
{
    for (size_t i = 0; i < n_flows; i++)
        flows[i].ch->ops->shutdown(flows[i].ch);
    all_closed = n_closed == n_flows;
    if (loop_run_until(&all_closed, now_us() + TIMEOUT_US) < 0)
        die("%zu of %zu tunnels closed in time", n_closed, n_flows);
}

/* Idle connections: each proved with one echoed channel first. Over HBONE
 * that tunnel then ends, so the connection carries none (tunnels are
 * counted by the idle-tunnel case). */
static void open_idle_connections(const bench_target *t, size_t conns)
{
    prepare(conns, 1);
    open_flows(t, conns, conns);
    if (t->kind == TRANSPORT_HBONE)
        end_tunnels();
}

void run_idle_memory(const bench_target *t, size_t conns, size_t tunnels, double *server_kib,
                     double *client_kib)
{
    long server0, client0, server1, client1;
    resident(t, &server0, &client0);
    size_t counted = conns;
    if (tunnels) {
        /* Per tunnel: growth beyond the connections, on those connections. */
        prepare(conns + tunnels, 1);
        open_flows(t, conns, conns);
        resident(t, &server0, &client0);
        size_t first = n_flows;
        n_flows += tunnels;
        if (hbone_transport_open_more(tunnels, attach, (void *)(uintptr_t)first) < 0)
            die("cannot open tunnels");
        wait_all();
        counted = tunnels;
    } else {
        /* Open and close the same connections once first: the measured ones
         * then land in memory that was used before, as in a server that has
         * run for a while. In untouched pages, the parts of large buffers
         * nothing ever writes would not count, which flatters. */
        open_idle_connections(t, conns);
        transport_close_all();
        server_wait_no_connections(t);
        open_idle_connections(t, conns);
    }
    resident(t, &server1, &client1);
    *server_kib = (double)(server1 - server0) / (double)counted;
    *client_kib = (double)(client1 - client0) / (double)counted;
    transport_close_all();
}

double run_scale(const bench_target *t, size_t conns, size_t tunnels, uint64_t bytes,
                 double *server_peak_mib)
{
    prepare(tunnels, bytes);
    uint64_t t0 = now_us();
    open_flows(t, conns, tunnels);
    double seconds = (double)(now_us() - t0) / 1e6;
    *server_peak_mib = (double)proc_kib(t->server_pid, "VmHWM") / 1024.0;
    transport_close_all();
    return (double)tunnels * (double)bytes * 2 / seconds / 1e6;
}
