/* SPDX-License-Identifier: MIT */
/*
 * hbone-soak: the run. Set up, keep the tunnels busy until the duration is
 * over while faults happen, let everything finish, tear down, check that
 * descriptors and memory are back where they started, print a summary.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "soak.h"

#ifndef SOAK_PKI_DIR
#define SOAK_PKI_DIR "tests/pki"
#endif

/* The RSS check is meaningless where the allocator keeps freed memory on
 * purpose (ASan's quarantine). */
#if defined(__SANITIZE_ADDRESS__)
#define RSS_CHECKABLE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RSS_CHECKABLE 0
#endif
#endif
#ifndef RSS_CHECKABLE
#define RSS_CHECKABLE 1
#endif

soak_options opt = {
    .tunnels = 200,
    .connections = 20,
    .servers = 2,
    .duration_s = 600,
    .seed = 1,
    .fault_interval_ms = 3000,
    .rss_slack_mib = 32,
    .max_size = 4u << 20,
    .pki_dir = SOAK_PKI_DIR,
};
soak_stats stats;
char self_path[4096];
static int serve_generation = -1; /* --serve: be a server child */
int generation;
hbone_config *client_cfg, *probe_cfg[2];
unsigned active_tunnels;
int stopping;

void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (stats.failures < 50) {
        fprintf(stderr, "hbone-soak: FAIL: ");
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
    } else if (stats.failures == 50) {
        fprintf(stderr, "hbone-soak: (further failures counted, not printed)\n");
    }
    va_end(ap);
    stats.failures++;
}

void note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "hbone-soak: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: hbone-soak [options]\n"
               "  --duration SECONDS     how long to keep tunnels busy (600)\n"
               "  --tunnels N            tunnels open at any time (200)\n"
               "  --connections N        client connections kept open (20)\n"
               "  --servers N            server processes (2)\n"
               "  --seed N               seed for sizes, scripts and faults (1)\n"
               "  --fault-interval MS    mean time between faults (3000)\n"
               "  --max-size BYTES       largest tunnel stream (4194304)\n"
               "  --rss-slack-mib N      allowed RSS growth after warm-up, 0: no check (32)\n"
               "  --pki DIR              test PKI from tests/support/gen-pki.sh\n"
               "  --verbose              say what each fault does\n");
}

static unsigned long long number(const char *s, const char *what)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 0);
    if (!*s || *end || s[0] == '-')
        die("%s: not a number: %s", what, s);
    return v;
}

static void parse_options(int argc, char **argv)
{
    static const struct option longs[] = {
        {"duration", required_argument, NULL, 'd'},
        {"tunnels", required_argument, NULL, 't'},
        {"connections", required_argument, NULL, 'c'},
        {"servers", required_argument, NULL, 'S'},
        {"seed", required_argument, NULL, 's'},
        {"fault-interval", required_argument, NULL, 'f'},
        {"max-size", required_argument, NULL, 'm'},
        {"rss-slack-mib", required_argument, NULL, 'r'},
        {"pki", required_argument, NULL, 'p'},
        {"verbose", no_argument, NULL, 'v'},
        {"serve", required_argument, NULL, 'X'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 'd':
            opt.duration_s = (unsigned)number(optarg, "--duration");
            break;
        case 't':
            opt.tunnels = (unsigned)number(optarg, "--tunnels");
            break;
        case 'c':
            opt.connections = (unsigned)number(optarg, "--connections");
            break;
        case 'S':
            opt.servers = (unsigned)number(optarg, "--servers");
            break;
        case 's':
            opt.seed = number(optarg, "--seed");
            break;
        case 'f':
            opt.fault_interval_ms = (unsigned)number(optarg, "--fault-interval");
            break;
        case 'm':
            opt.max_size = number(optarg, "--max-size");
            break;
        case 'r':
            opt.rss_slack_mib = (unsigned)number(optarg, "--rss-slack-mib");
            break;
        case 'p':
            opt.pki_dir = optarg;
            break;
        case 'v':
            opt.verbose = 1;
            break;
        case 'X':
            serve_generation = (int)number(optarg, "--serve");
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (optind != argc || !opt.tunnels || !opt.connections || !opt.servers ||
        !opt.fault_interval_ms || !opt.max_size || opt.max_size > (1ull << 40)) {
        usage(stderr);
        exit(2);
    }
}

static int min_timeout(int a, int b)
{
    return a < 0 ? b : b < 0 ? a : a < b ? a : b;
}

/* One turn of the loop: keep things busy, send, wait, run timers. Sending
 * may be what finishes the phase (a drained connection with nothing left
 * is done once its GOAWAY is out): then there is nothing to wait for. */
static void turn(uint64_t *plan_rng, uint64_t wake_at, int (*done)(void))
{
    if (!stopping) {
        conns_maintain();
        conns_fill(plan_rng);
    }
    conns_flush();
    if (done && done())
        return;
    uint64_t now = now_ms();
    int t = min_timeout(conns_timeout(now), faults_timeout(now));
    t = min_timeout(t, wake_at > now ? (int)(wake_at - now) : 0);
    loop_round(t);
    now = now_ms();
    conns_run_timers(now);
    faults_run(now);
}

typedef struct measure {
    int fds;
    uint64_t live_allocs, rss_warm, rss_loaded, rss_end;
} measure;

static mem_counter client_mem;

static int tunnels_done(void)
{
    return !active_tunnels && !faults_busy();
}

static int conns_done(void)
{
    return conn_list == NULL;
}

static int servers_done(void)
{
    for (server_proc *s = server_list; s; s = s->next) {
        if (s->alive)
            return 0;
    }
    return 1;
}

static void run(measure *before, measure *after)
{
    uint64_t plan_rng = opt.seed;
    uint64_t start = now_ms();
    uint64_t end = start + (uint64_t)opt.duration_s * 1000;
    /* Warm-up: every code path and buffer size has been met by then, so
     * RSS afterwards should only wobble. */
    uint64_t warm_at = start + (uint64_t)opt.duration_s * 1000 / 4;
    if (warm_at > start + 60000)
        warm_at = start + 60000;
    uint64_t next_tick = start + 1000, next_report = start + 60000;
    for (unsigned i = 0; i < opt.servers; i++) {
        if (!servers_spawn(generation))
            die("cannot start a server: %s", strerror(errno));
    }
    faults_init(opt.seed, start + 1000);
    while (now_ms() < end) {
        uint64_t wake = next_tick < end ? next_tick : end;
        turn(&plan_rng, wake, NULL);
        uint64_t now = now_ms();
        if (now >= next_tick) {
            tunnels_watchdog(now);
            next_tick = now + 1000;
            /* The highest RSS of the warm-up: the load's buffers come and
             * go, and glibc keeps what it once had, so a plateau is the
             * baseline and growth past it is what accumulates. */
            uint64_t rss = rss_bytes();
            if (now <= warm_at && rss > before->rss_warm)
                before->rss_warm = rss;
        }
        if (now >= next_report) {
            next_report = now + 60000;
            note("%llus: %llu tunnels, %llu MiB verified, %llu failures",
                 (unsigned long long)(now - start) / 1000, (unsigned long long)stats.started,
                 (unsigned long long)(stats.bytes_verified >> 20),
                 (unsigned long long)stats.failures);
        }
    }
    after->rss_loaded = rss_bytes();

    /* Let every tunnel finish its script and every probe report. */
    stopping = 1;
    uint64_t deadline = now_ms() + 120000;
    while ((active_tunnels || faults_busy()) && now_ms() < deadline) {
        turn(&plan_rng, now_ms() + 1000, tunnels_done);
        tunnels_watchdog(now_ms());
    }
    if (active_tunnels || faults_busy())
        fail("%u tunnels still open 120 s after the end", active_tunnels);

    if (opt.verbose)
        note("all tunnels done; draining the connections");
    /* Close the connections gracefully: GOAWAY, and the servers follow. */
    for (cconn *cc = conn_list; cc; cc = cc->next)
        conn_drain(cc);
    deadline = now_ms() + 30000;
    while (conn_list && now_ms() < deadline)
        turn(&plan_rng, deadline, conns_done);
    if (conn_list)
        fail("client connections still open 30 s after their drain");

    if (opt.verbose)
        note("connections closed; stopping the servers");
    /* Servers report their counters and exit. */
    for (server_proc *s = server_list; s; s = s->next) {
        if (s->alive)
            servers_send(s, 'q');
    }
    deadline = now_ms() + 30000;
    while (!servers_done() && now_ms() < deadline)
        turn(&plan_rng, deadline, servers_done);
    for (server_proc *s = server_list; s; s = s->next) {
        if (s->alive) {
            fail("server %d did not exit", s->index);
            servers_kill(s);
        }
    }
}

static void check_servers(void)
{
    for (server_proc *s = server_list; s; s = s->next) {
        if (s->killed)
            continue;
        if (!s->have_stats) {
            fail("server %d sent no report", s->index);
            continue;
        }
        const server_stats *st = &s->stats;
        if (st->cancels != s->expect_cancels || st->connect_errors != s->expect_connect_errors)
            fail("server %d saw %llu CANCEL and %llu CONNECT_ERROR resets; the client sent %llu "
                 "and %llu",
                 s->index, (unsigned long long)st->cancels, (unsigned long long)st->connect_errors,
                 (unsigned long long)s->expect_cancels,
                 (unsigned long long)s->expect_connect_errors);
        if (st->handshake_failures < s->expect_handshake_failures ||
            st->handshake_failures > s->expect_handshake_failures + s->aborted_connects)
            fail("server %d saw %llu failed handshakes, expected %llu (the refused probes) and up "
                 "to %llu more (connections we gave up)",
                 s->index, (unsigned long long)st->handshake_failures,
                 (unsigned long long)s->expect_handshake_failures,
                 (unsigned long long)s->aborted_connects);
        if (st->lost || st->failures || st->live_allocs || st->fds_leaked)
            fail("server %d: %llu tunnels lost, %llu failures, %llu allocations not freed, %d "
                 "descriptors leaked",
                 s->index, (unsigned long long)st->lost, (unsigned long long)st->failures,
                 (unsigned long long)st->live_allocs, st->fds_leaked);
    }
}

static double mib(uint64_t bytes)
{
    return (double)bytes / (1024.0 * 1024.0);
}

static void summary(const measure *before, const measure *after, uint64_t allocs, uint64_t frees)
{
    uint64_t finished = 0, reports = 0, served = 0;
    for (int k = 0; k < S_KINDS; k++)
        finished += stats.finished[k];
    for (server_proc *s = server_list; s; s = s->next) {
        reports += s->have_stats;
        served += s->stats.tunnels;
    }
    printf("hbone-soak summary (seed %llu, %u s, %u tunnels over %u connections, %u servers)\n",
           (unsigned long long)opt.seed, opt.duration_s, opt.tunnels, opt.connections, opt.servers);
    printf("  tunnels run        %llu: %llu as scripted (echo %llu, sink %llu, client reset "
           "%llu, server reset %llu, refused %llu), %llu lost with a killed server, %llu "
           "refused by a draining server and replaced\n",
           (unsigned long long)stats.started, (unsigned long long)finished,
           (unsigned long long)stats.finished[S_ECHO], (unsigned long long)stats.finished[S_SINK],
           (unsigned long long)stats.finished[S_RESET_CLIENT],
           (unsigned long long)stats.finished[S_RESET_SERVER],
           (unsigned long long)stats.finished[S_REJECT], (unsigned long long)stats.lost,
           (unsigned long long)stats.retried);
    printf("  bytes              %.1f MiB written, %.1f MiB verified end to end\n",
           mib(stats.bytes_sent), mib(stats.bytes_verified));
    printf("  resets             %llu expected, %llu seen as expected, %llu lost with a killed "
           "server before they were sent\n",
           (unsigned long long)stats.resets_expected, (unsigned long long)stats.resets_seen,
           (unsigned long long)stats.resets_lost);
    printf("  faults             %llu servers killed (%llu started in all), %llu client drains, "
           "%llu server drains, %llu rotations\n",
           (unsigned long long)stats.kills, (unsigned long long)stats.spawns,
           (unsigned long long)stats.client_drains, (unsigned long long)stats.server_drains,
           (unsigned long long)stats.rotations);
    printf("  rotation probes    %llu accepted with the new root only, %llu refused with the old "
           "root only, %llu skipped (no descriptor)%s%s\n",
           (unsigned long long)stats.probes_ok, (unsigned long long)stats.probes_rejected,
           (unsigned long long)stats.probes_skipped, faults_reject_detail()[0] ? ": " : "",
           faults_reject_detail());
    printf("  connections        %llu opened, %llu connect retries\n",
           (unsigned long long)stats.conns_opened, (unsigned long long)stats.connect_retries);
    printf("  servers            %llu reports, %llu tunnels served by the survivors\n",
           (unsigned long long)reports, (unsigned long long)served);
    printf("  descriptors        %d before, %d after\n", before->fds, after->fds);
    printf("  libhbone memory    %llu allocations, %llu frees (%llu live before teardown, "
           "%llu at the start)\n",
           (unsigned long long)allocs, (unsigned long long)frees,
           (unsigned long long)after->live_allocs, (unsigned long long)before->live_allocs);
    printf(
        "  RSS                %.1f MiB peak in the warm-up, %.1f MiB at the end of the load, %.1f "
        "MiB after teardown%s\n",
        mib(before->rss_warm), mib(after->rss_loaded), mib(after->rss_end),
        RSS_CHECKABLE ? "" : " (not checked under ASan)");
    printf("  failures           %llu\n", (unsigned long long)stats.failures);
    printf("%s\n", stats.failures ? "FAIL" : "PASS");
}

int main(int argc, char **argv)
{
    parse_options(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    if (serve_generation >= 0)
        server_main(3, 4, opt.pki_dir, serve_generation); /* from servers_spawn() */
    ssize_t n = readlink("/proc/self/exe", self_path, sizeof(self_path) - 1);
    if (n <= 0 || (size_t)n >= sizeof(self_path) - 1)
        die("cannot find this program in /proc/self/exe");
    self_path[n] = '\0';
    loop_init();
    client_cfg = config_client(opt.pki_dir, &client_mem);
    probe_cfg[0] = config_probe(opt.pki_dir, 0, &client_mem);
    probe_cfg[1] = config_probe(opt.pki_dir, 1, &client_mem);
    client_callbacks();

    measure before = {0}, after = {0};
    before.fds = count_open_fds();
    before.live_allocs = client_mem.allocs - client_mem.frees;
    run(&before, &after);

    after.fds = count_open_fds();
    after.live_allocs = client_mem.allocs - client_mem.frees;
    check_servers();
    if (stats.resets_seen + stats.resets_lost != stats.resets_expected)
        fail("%llu resets expected, %llu seen and %llu lost",
             (unsigned long long)stats.resets_expected, (unsigned long long)stats.resets_seen,
             (unsigned long long)stats.resets_lost);
    if (after.fds != before.fds)
        fail("%d descriptors open at the start, %d at the end", before.fds, after.fds);
    if (after.live_allocs != before.live_allocs)
        fail("%llu libhbone allocations live at the start, %llu at the end",
             (unsigned long long)before.live_allocs, (unsigned long long)after.live_allocs);
    if (RSS_CHECKABLE && opt.rss_slack_mib && before.rss_warm &&
        after.rss_loaded > before.rss_warm + ((uint64_t)opt.rss_slack_mib << 20))
        fail("RSS grew from a warm-up peak of %.1f MiB to %.1f MiB (more than %u MiB)",
             mib(before.rss_warm), mib(after.rss_loaded), opt.rss_slack_mib);

    /* Teardown: after it, every allocation libhbone made has been freed. */
    hbone_config_del(client_cfg);
    hbone_config_del(probe_cfg[0]);
    hbone_config_del(probe_cfg[1]);
    client_callbacks_free();
    loop_fini();
    after.rss_end = rss_bytes();
    if (client_mem.allocs != client_mem.frees)
        fail("%llu allocations but %llu frees", (unsigned long long)client_mem.allocs,
             (unsigned long long)client_mem.frees);
    summary(&before, &after, client_mem.allocs, client_mem.frees);
    while (server_list) {
        server_proc *s = server_list;
        server_list = s->next;
        free(s);
    }
    return stats.failures ? 1 : 0;
}
