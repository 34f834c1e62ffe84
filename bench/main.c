/* SPDX-License-Identifier: MIT */
/*
 * hbone-bench: every case over HBONE and its baselines in one run, servers
 * in child processes, a table on stdout and the same figures as JSON.
 *
 *   hbone-bench [--quick] [--runs N] [--json FILE] [--pki DIR] [--case NAME]...
 */
#include <errno.h>
#include <malloc.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <poll.h>
#include <unistd.h>

#include <hbone/hbone.h>

#include "bench.h"
#include "bench_version.h"
#include "client.h"

#define MAX_RUNS 15
#define MAX_CASES 16
#define KiB 1024u
#define MiB (1024u * 1024u)

/* --- transports by kind ---------------------------------------------------- */

static const char *const kind_names[] = {"tcp", "tls", "hbone", "nghttpx"};
#define N_KINDS 4

const char *transport_name(transport_kind kind)
{
    return kind_names[kind];
}

static int is_stream(transport_kind kind)
{
    return kind == TRANSPORT_TCP || kind == TRANSPORT_TLS;
}

int transport_init(transport_kind kind, const bench_pki *pki)
{
    return is_stream(kind) ? stream_transport_init(kind, pki) : hbone_transport_init(pki);
}

void transport_serve(transport_kind kind, int listen_fd)
{
    if (is_stream(kind))
        stream_transport_serve(listen_fd);
    else
        hbone_transport_serve(listen_fd);
}

int transport_open(transport_kind kind, const char *address, size_t conns, size_t n,
                   void (*attach)(channel *ch, size_t index, void *arg), void *arg)
{
    if (is_stream(kind))
        return stream_transport_open(address, n, attach, arg);
    return hbone_transport_open(address, conns, n, attach, arg);
}

void transport_close_all(void)
{
    stream_transport_close_all();
    hbone_transport_close_all();
}

/* --- small helpers ------------------------------------------------------------ */

char *bench_read_file(const char *dir, const char *name, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        die("cannot read %s: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0)
            buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    if (!buf)
        die("out of memory");
    buf[n] = '\0';
    *len = n;
    return buf;
}

const uint8_t *bench_pattern(void)
{
    static uint8_t *pattern;
    if (!pattern) {
        pattern = malloc(BENCH_PATTERN);
        if (!pattern)
            die("out of memory");
        uint32_t x = 2463534242u;
        for (size_t i = 0; i < BENCH_PATTERN; i++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            pattern[i] = (uint8_t)x;
        }
    }
    return pattern;
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

void bench_creds_load(bench_creds *c, const bench_pki *pki, const char *leaf)
{
    char chain[64], key[64];
    snprintf(chain, sizeof(chain), "%s.chain.pem", leaf);
    snprintf(key, sizeof(key), "%s.key", leaf);
    c->chain = bench_read_file(pki->dir, chain, &c->chain_len);
    c->key = bench_read_file(pki->dir, key, &c->key_len);
    c->bundle = bench_read_file(pki->dir, "bundle-cluster.local.pem", &c->bundle_len);
}

void bench_creds_free(bench_creds *c)
{
    free(c->chain);
    free(c->key);
    free(c->bundle);
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The value below which @p q of the samples fall (nearest rank). */
static double quantile(double *v, size_t n, double q)
{
    qsort(v, n, sizeof(*v), compare_doubles);
    size_t i = (size_t)(q * (double)n);
    return v[i < n ? i : n - 1];
}

/* --- servers ------------------------------------------------------------------ */

typedef struct server {
    pid_t pid, nghttpx;
    int control; /* our end of the control socket of the child at pid */
    char address[64];
} server;

static const bench_pki *the_pki;

static int listen_any(uint16_t *port)
{
    int fd;
    static const char any[] = "127.0.0.1:0";
    if (hbone_io_listen(any, sizeof(any) - 1, 4096, &fd, port) < 0)
        die("cannot listen on loopback: %s", strerror(errno));
    return fd;
}

/* The server's end of its control socket. The bench asks, one byte each:
 * 'T': return free heap pages to the system (malloc_trim), so resident
 * memory counts what live objects hold, not the high-water mark of the
 * handshakes that were in flight;
 * 'Z': answer once every connection is closed and its memory released.
 * Each is answered with the same byte once done. */
static loop_source control_source;
static int answer_when_no_connections;

static void control_answer(uint8_t byte)
{
    if (write(control_source.fd, &byte, 1) != 1)
        _exit(0); /* the bench is gone */
}

/* After each round: the listener and the control socket are all that is left. */
static void control_round(void)
{
    if (answer_when_no_connections && loop_source_count() <= 2) {
        answer_when_no_connections = 0;
        control_answer('Z');
    }
}

static void control_ready(loop_source *s, uint32_t ready)
{
    (void)ready;
    uint8_t byte;
    if (read(s->fd, &byte, 1) != 1)
        _exit(0);
    if (byte == 'T') {
        malloc_trim(0);
        control_answer(byte);
    } else if (byte == 'Z') {
        answer_when_no_connections = 1; /* at the end of this round */
    }
}

/* A child serving @p kind on a socket listening before the fork, so the
 * client can connect at once; *@p control receives the bench's end of the
 * child's control socket. */
static pid_t spawn_child(transport_kind kind, int preamble, uint16_t *port, int *control)
{
    int fd = listen_any(port);
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
        die("socketpair: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive the bench */
        signal(SIGPIPE, SIG_IGN);
        close(pair[0]);
        loop_init();
        control_source.fd = pair[1];
        control_source.handle = control_ready;
        if (loop_add(&control_source, EPOLLIN, 0) < 0)
            die("epoll: %s", strerror(errno));
        loop_round_hook = control_round;
        transport_init(kind, the_pki);
        server_http1_preamble = preamble;
        transport_serve(kind, fd);
        _exit(0);
    }
    close(pair[1]);
    close(fd);
    *control = pair[0];
    return pid;
}

static void server_ask(const bench_target *t, uint8_t byte)
{
    uint8_t answer;
    if (write(t->server_control, &byte, 1) != 1 || read(t->server_control, &answer, 1) != 1 ||
        answer != byte)
        die("the server does not answer on its control socket");
}

void server_trim(const bench_target *t)
{
    server_ask(t, 'T');
}

void server_wait_no_connections(const bench_target *t)
{
    server_ask(t, 'Z');
}

/* nghttpx tells systemd when it listens; we play systemd. */
static pid_t spawn_nghttpx(uint16_t backend_port, uint16_t *port)
{
    int probe = listen_any(port); /* reserve a free port number */
    close(probe);
    char notify_path[108];
    snprintf(notify_path, sizeof(notify_path), "/tmp/hbone-bench-notify-%d", (int)getpid());
    unlink(notify_path);
    int notify = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", notify_path);
    if (notify < 0 || bind(notify, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        die("notify socket: %s", strerror(errno));
    char frontend[64], backend[64], cacert[600], key[600], chain[600];
    snprintf(frontend, sizeof(frontend), "--frontend=127.0.0.1,%u", (unsigned)*port);
    snprintf(backend, sizeof(backend), "--backend=127.0.0.1,%u", (unsigned)backend_port);
    snprintf(cacert, sizeof(cacert), "--verify-client-cacert=%s/bundle-cluster.local.pem",
             the_pki->dir);
    snprintf(key, sizeof(key), "%s/server.key", the_pki->dir);
    snprintf(chain, sizeof(chain), "%s/server.chain.pem", the_pki->dir);
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        setenv("NOTIFY_SOCKET", notify_path, 1);
        int devnull = open("/dev/null", 0);
        dup2(devnull, 1);
        dup2(devnull, 2);
        /* --conf: Debian's default config would also open port 3000. */
        execlp("nghttpx", "nghttpx", "--conf=/dev/null", "--http2-proxy", frontend, backend,
               "--verify-client", cacert, "--tls-min-proto-version=TLSv1.3",
               "--frontend-http2-window-size=4194304",
               "--frontend-http2-connection-window-size=16777216", "--workers=1",
               "--backend-connections-per-host=1024", "--accesslog-file=/dev/null",
               "--errorlog-file=/tmp/nghttpx-bench.log", key, chain, (char *)NULL);
        _exit(127);
    }
    char msg[256];
    struct pollfd pfd = {notify, POLLIN, 0};
    int ready = 0;
    while (!ready && poll(&pfd, 1, 10000) == 1) {
        ssize_t n = recv(notify, msg, sizeof(msg) - 1, 0);
        if (n <= 0)
            break;
        msg[n] = '\0';
        ready = strstr(msg, "READY=1") != NULL;
    }
    close(notify);
    unlink(notify_path);
    if (!ready)
        die("nghttpx did not report ready (is nghttp2-proxy installed?)");
    return pid;
}

static int nghttpx_available(void)
{
    return system("command -v nghttpx >/dev/null 2>&1") == 0;
}

static void server_start(server *s, transport_kind kind)
{
    memset(s, 0, sizeof(*s));
    uint16_t port;
    if (kind == TRANSPORT_NGHTTPX) {
        s->pid = spawn_child(TRANSPORT_TCP, 1, &port, &s->control);
        s->nghttpx = spawn_nghttpx(port, &port);
    } else {
        s->pid = spawn_child(kind, 0, &port, &s->control);
    }
    snprintf(s->address, sizeof(s->address), "127.0.0.1:%u", (unsigned)port);
}

static void server_stop(server *s)
{
    pid_t pids[2] = {s->nghttpx, s->pid};
    for (int i = 0; i < 2; i++) {
        if (pids[i] > 0) {
            kill(pids[i], SIGTERM);
            waitpid(pids[i], NULL, 0);
        }
    }
    close(s->control);
}

/* --- cases ------------------------------------------------------------------ */

typedef struct figure {
    double value[N_KINDS];
    int have[N_KINDS];
} figure;

#define ALL_KINDS 0xf
#define KIND(k) (1u << (k))
/* nghttpx does not pass a tunnel's half-close on to its backend, so a
 * tunnel through it never ends by itself: no setup or connection rates. */
#define NO_NGHTTPX (ALL_KINDS & ~KIND(TRANSPORT_NGHTTPX))

typedef struct bench_case {
    const char *name;
    const char *label;
    int n_figures;
    const char *figure[2]; /* figure names ("p50"), NULL when only one */
    const char *unit[2];
    int higher_better;
    const char *goal; /* as printed: ">=0.90" (x tls) or "<=1 KiB" */
    unsigned kinds;   /* transports this case runs on */
    int single_run;   /* memory and scale: one run (slow, and steady) */
    /* Run once against @p t; @p out receives one value per figure. */
    void (*run)(const struct bench_case *c, const bench_target *t, double *out);
    size_t conns, channels; /* bulk */
    int upload;
    size_t message; /* echo */
} bench_case;

static int quick;

/* Throughput, and the CPU time client and server spent per GiB moved: on a
 * shared machine the cost is steadier than the speed. */
static void run_bulk_case(const bench_case *c, const bench_target *t, double *out)
{
    uint64_t total = quick ? 256ull * MiB : 1024ull * MiB;
    double cpu0 = cpu_seconds(t);
    out[0] = run_bulk(t, c->upload, c->conns, c->channels, total / c->channels) / 1e6;
    out[1] = (cpu_seconds(t) - cpu0) * 1000.0 / ((double)total / (1024.0 * MiB));
}

static void run_echo_case(const bench_case *c, const bench_target *t, double *out)
{
    size_t count = quick ? 2000 : 10000;
    double *rtt = malloc(count * sizeof(*rtt));
    if (!rtt)
        die("out of memory");
    run_echo(t, c->message, count, rtt);
    out[0] = quantile(rtt, count, 0.50);
    out[1] = quantile(rtt, count, 0.99);
    free(rtt);
}

/* HBONE sets up tunnels on a warm connection; the baselines' unit is the
 * 1-byte round trip on a warm channel. 16 in flight either way. */
static void run_setup_case(const bench_case *c, const bench_target *t, double *out)
{
    (void)c;
    rate_kind kind = t->kind == TRANSPORT_HBONE ? RATE_TUNNEL : RATE_ROUND_TRIP;
    out[0] = run_rate(t, kind, 16, quick ? 3000 : 20000);
}

static void run_connect_case(const bench_case *c, const bench_target *t, double *out)
{
    (void)c;
    out[0] = run_rate(t, RATE_CONNECTION, 8, quick ? 400 : 3000);
}

static void run_idle_tunnel_case(const bench_case *c, const bench_target *t, double *out)
{
    (void)c;
    run_idle_memory(t, 100, quick ? 2000 : 10000, &out[0], &out[1]);
}

static void run_idle_conn_case(const bench_case *c, const bench_target *t, double *out)
{
    (void)c;
    run_idle_memory(t, quick ? 200 : 1000, 0, &out[0], &out[1]);
}

static void run_scale_case(const bench_case *c, const bench_target *t, double *out)
{
    (void)c;
    out[0] = run_scale(t, 100, quick ? 2000 : 10000, quick ? 16 * KiB : 64 * KiB, &out[1]);
}

static const bench_case cases[] = {
    {.name = "bulk-up",
     .label = "bulk upload, 1 tunnel",
     .n_figures = 2,
     .figure = {"", "CPU"},
     .unit = {"MB/s", "ms/GiB"},
     .higher_better = 1,
     .goal = ">=0.90",
     .kinds = ALL_KINDS,
     .run = run_bulk_case,
     .conns = 1,
     .channels = 1,
     .upload = 1},
    {.name = "bulk-down",
     .label = "bulk download, 1 tunnel",
     .n_figures = 2,
     .figure = {"", "CPU"},
     .unit = {"MB/s", "ms/GiB"},
     .higher_better = 1,
     .goal = ">=0.90",
     .kinds = ALL_KINDS,
     .run = run_bulk_case,
     .conns = 1,
     .channels = 1},
    {.name = "bulk-16",
     .label = "16 tunnels, 1 connection",
     .n_figures = 2,
     .figure = {"", "CPU"},
     .unit = {"MB/s", "ms/GiB"},
     .higher_better = 1,
     .goal = ">=0.90",
     .kinds = ALL_KINDS,
     .run = run_bulk_case,
     .conns = 1,
     .channels = 16,
     .upload = 1},
    {.name = "bulk-4x4",
     .label = "4 connections x 4 tunnels",
     .n_figures = 2,
     .figure = {"", "CPU"},
     .unit = {"MB/s", "ms/GiB"},
     .higher_better = 1,
     .kinds = ALL_KINDS,
     .run = run_bulk_case,
     .conns = 4,
     .channels = 16,
     .upload = 1},
    {.name = "echo-1",
     .label = "echo 1 B round trip",
     .n_figures = 2,
     .figure = {"p50", "p99"},
     .unit = {"us", "us"},
     .goal = "<=1.10",
     .kinds = ALL_KINDS,
     .run = run_echo_case,
     .message = 1},
    {.name = "echo-1k",
     .label = "echo 1 KiB round trip",
     .n_figures = 2,
     .figure = {"p50", "p99"},
     .unit = {"us", "us"},
     .goal = "<=1.10",
     .kinds = ALL_KINDS,
     .run = run_echo_case,
     .message = 1024},
    {.name = "setup",
     .label = "tunnel setup, warm conn",
     .n_figures = 1,
     .unit = {"/s"},
     .higher_better = 1,
     .goal = ">=0.80",
     .kinds = NO_NGHTTPX,
     .run = run_setup_case},
    {.name = "connect",
     .label = "connection + 1st tunnel",
     .n_figures = 1,
     .unit = {"/s"},
     .higher_better = 1,
     .goal = ">=0.85",
     .kinds = NO_NGHTTPX,
     .run = run_connect_case},
    {.name = "idle-tunnel",
     .label = "memory per idle tunnel",
     .n_figures = 2,
     .figure = {"server", "client"},
     .unit = {"KiB", "KiB"},
     .goal = "<=1 KiB",
     .kinds = KIND(TRANSPORT_HBONE),
     .single_run = 1,
     .run = run_idle_tunnel_case},
    {.name = "idle-conn",
     .label = "memory per idle conn",
     .n_figures = 2,
     .figure = {"server", "client"},
     .unit = {"KiB", "KiB"},
     .goal = "<=16 KiB",
     .kinds = NO_NGHTTPX,
     .single_run = 1,
     .run = run_idle_conn_case},
    {.name = "scale",
     .label = "10k tunnels echoing",
     .n_figures = 2,
     .figure = {"", "server peak"},
     .unit = {"MB/s", "MiB"},
     .higher_better = 1,
     .goal = "no errors",
     .kinds = KIND(TRANSPORT_HBONE),
     .single_run = 1,
     .run = run_scale_case},
};
#define N_CASES (sizeof(cases) / sizeof(cases[0]))

/* --- output ------------------------------------------------------------------ */

typedef struct result {
    const bench_case *c;
    figure fig[2]; /* median over runs, per figure */
} result;

static void print_header(FILE *f, const char *commit, const char *cpu)
{
    fprintf(f, "hbone-bench %s, commit %s\n", hbone_version_string(), commit);
    fprintf(f, "CPU: %s; TLS: %s, AES-GCM hardware: %s\n", cpu, hbone_tls_library(),
            hbone_tls_aes_hw_accelerated() ? "yes" : "no");
}

static int has_ratio(const figure *f)
{
    return f->have[TRANSPORT_HBONE] && f->have[TRANSPORT_TLS] && f->value[TRANSPORT_TLS] > 0;
}

static void print_table(const result *r, size_t n)
{
    printf("\n%-40s %9s %9s %9s %9s %10s  %s\n", "case", "tcp", "tls", "hbone", "nghttpx",
           "hbone/tls", "goal");
    for (size_t i = 0; i < n; i++) {
        const bench_case *c = r[i].c;
        for (int k = 0; k < c->n_figures; k++) {
            char label[80];
            const char *fig = c->figure[k] && c->figure[k][0] ? c->figure[k] : NULL;
            snprintf(label, sizeof(label), "%s%s%s (%s)", c->label, fig ? " " : "", fig ? fig : "",
                     c->unit[k]);
            printf("%-40s", label);
            const figure *f = &r[i].fig[k];
            for (int kind = 0; kind < N_KINDS; kind++) {
                if (f->have[kind])
                    printf(" %9.1f", f->value[kind]);
                else
                    printf(" %9s", "-");
            }
            if (has_ratio(f))
                printf(" %10.2f", f->value[TRANSPORT_HBONE] / f->value[TRANSPORT_TLS]);
            else
                printf(" %10s", "-");
            printf("  %s\n", k == 0 && c->goal ? c->goal : "");
        }
    }
}

static void write_json(const char *path, const result *r, size_t n, const char *commit,
                       const char *cpu, int runs)
{
    FILE *f = fopen(path, "w");
    if (!f)
        die("cannot write %s: %s", path, strerror(errno));
    fprintf(f, "{\n  \"version\": \"%s\",\n  \"commit\": \"%s\",\n  \"cpu\": \"%s\",\n",
            hbone_version_string(), commit, cpu);
    fprintf(f, "  \"tls_library\": \"%s\",\n  \"aes_hw\": %s,\n  \"quick\": %s,\n  \"runs\": %d,\n",
            hbone_tls_library(), hbone_tls_aes_hw_accelerated() ? "true" : "false",
            quick ? "true" : "false", runs);
    fprintf(f, "  \"cases\": [\n");
    int first = 1;
    for (size_t i = 0; i < n; i++) {
        const bench_case *c = r[i].c;
        for (int k = 0; k < c->n_figures; k++) {
            const figure *fig = &r[i].fig[k];
            const char *name = c->figure[k] && c->figure[k][0] ? c->figure[k] : NULL;
            fprintf(f, "%s    {\"name\": \"%s%s%s\", \"unit\": \"%s\", \"results\": {",
                    first ? "" : ",\n", c->name, name ? "-" : "", name ? name : "", c->unit[k]);
            first = 0;
            int comma = 0;
            for (int kind = 0; kind < N_KINDS; kind++) {
                if (!fig->have[kind])
                    continue;
                fprintf(f, "%s\"%s\": %.3f", comma ? ", " : "", kind_names[kind], fig->value[kind]);
                comma = 1;
            }
            fprintf(f, "}");
            if (has_ratio(fig))
                fprintf(f, ", \"hbone_vs_tls\": %.4f",
                        fig->value[TRANSPORT_HBONE] / fig->value[TRANSPORT_TLS]);
            if (c->goal && k == 0)
                fprintf(f, ", \"goal\": \"%s\"", c->goal);
            fprintf(f, "}");
        }
    }
    fprintf(f, "\n  ]\n}\n");
    fclose(f);
}

static void cpu_model(char *out, size_t len)
{
    snprintf(out, len, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[256];
    int cpus = 0;
    char model[200] = "unknown";
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "processor", 9) == 0)
            cpus++;
        char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) == 0 && colon) {
            snprintf(model, sizeof(model), "%s", colon + 2);
            model[strcspn(model, "\n")] = '\0';
        }
    }
    fclose(f);
    snprintf(out, len, "%s x %d", model, cpus);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: hbone-bench [--quick] [--runs N] [--json FILE] [--pki DIR] [--transport T]...\n"
            "                   [--case NAME]...\n"
            "  --quick      small sizes and 3 runs (well under a minute)\n"
            "  --runs N     runs per figure, the median is reported (default 5)\n"
            "  --json FILE  also write the figures as JSON (default hbone-bench.json)\n"
            "  --pki DIR    certificates (default: generated test PKI of the build)\n"
            "  --transport T  only this transport (repeatable): tcp tls hbone nghttpx\n"
            "  --case NAME  run only this case (repeatable):");
    for (size_t i = 0; i < N_CASES; i++)
        fprintf(f, " %s", cases[i].name);
    fprintf(f, "\n");
}

int main(int argc, char **argv)
{
    int runs = 0;
    const char *json = "hbone-bench.json";
    const char *selected[MAX_CASES];
    size_t n_selected = 0;
    unsigned only_kinds = 0; /* bit per transport kind; 0: all */
    static bench_pki pki = {BENCH_DEFAULT_PKI};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--quick") == 0) {
            quick = 1;
        } else if (strcmp(a, "--runs") == 0 && v) {
            runs = atoi(v);
            i++;
            if (runs < 1 || runs > MAX_RUNS)
                die("--runs takes 1 to %d", MAX_RUNS);
        } else if (strcmp(a, "--json") == 0 && v) {
            json = v;
            i++;
        } else if (strcmp(a, "--pki") == 0 && v) {
            pki.dir = v;
            i++;
        } else if (strcmp(a, "--transport") == 0 && v) {
            int found = 0;
            for (int k = 0; k < N_KINDS; k++) {
                if (strcmp(v, kind_names[k]) == 0) {
                    only_kinds |= 1u << k;
                    found = 1;
                }
            }
            if (!found)
                die("--transport %s: one of tcp, tls, hbone, nghttpx", v);
            i++;
        } else if (strcmp(a, "--case") == 0 && v && n_selected < MAX_CASES) {
            selected[n_selected++] = v;
            i++;
        } else if (strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (!runs)
        runs = quick ? 3 : 5;
    the_pki = &pki;
    signal(SIGPIPE, SIG_IGN);
    /* Thousands of sockets in the memory and scale cases (children inherit). */
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }
    if (strcmp(pki.dir, BENCH_DEFAULT_PKI) == 0) {
        char cmd[1024];
        snprintf(cmd, sizeof(cmd), "bash '%s' '%s' >/dev/null", BENCH_GEN_PKI, pki.dir);
        if (system(cmd) != 0)
            die("could not generate the test PKI in %s", pki.dir);
    }
    char cpu[256];
    cpu_model(cpu, sizeof(cpu));
    print_header(stdout, BENCH_COMMIT, cpu);
    int have_nghttpx = nghttpx_available();
    if (!have_nghttpx)
        printf("nghttpx not found: its column stays empty (Debian: nghttp2-proxy)\n");
    fflush(stdout);

    result results[N_CASES];
    size_t n_results = 0;
    for (size_t ci = 0; ci < N_CASES; ci++) {
        const bench_case *c = &cases[ci];
        int wanted = n_selected == 0;
        for (size_t s = 0; s < n_selected; s++)
            wanted |= strcmp(selected[s], c->name) == 0;
        if (!wanted)
            continue;
        result *r = &results[n_results++];
        memset(r, 0, sizeof(*r));
        r->c = c;
        /* Every transport's server at once, and the runs interleaved, so
         * that a slow moment of this shared machine hits all of them. */
        server srv[N_KINDS];
        int active[N_KINDS] = {0};
        for (int kind = 0; kind < N_KINDS; kind++) {
            active[kind] = (c->kinds & KIND(kind)) &&
                           !(kind == TRANSPORT_NGHTTPX && !have_nghttpx) &&
                           (!only_kinds || (only_kinds & KIND(kind)));
            if (active[kind])
                server_start(&srv[kind], (transport_kind)kind);
        }
        static double samples[N_KINDS][2][MAX_RUNS];
        int case_runs = c->single_run ? 1 : runs;
        for (int run = 0; run < case_runs; run++) {
            for (int kind = 0; kind < N_KINDS; kind++) {
                if (!active[kind])
                    continue;
                /* nghttpx is reached by libhbone's client. */
                transport_kind client = kind == TRANSPORT_NGHTTPX ? TRANSPORT_HBONE : kind;
                loop_init();
                transport_init(client, &pki);
                bench_target t = {client, srv[kind].address, (int)srv[kind].pid,
                                  (int)srv[kind].nghttpx, srv[kind].control};
                double out[2];
                c->run(c, &t, out);
                for (int k = 0; k < c->n_figures; k++)
                    samples[kind][k][run] = out[k];
            }
        }
        for (int kind = 0; kind < N_KINDS; kind++) {
            if (!active[kind])
                continue;
            server_stop(&srv[kind]);
            for (int k = 0; k < c->n_figures; k++) {
                r->fig[k].value[kind] = quantile(samples[kind][k], (size_t)case_runs, 0.5);
                r->fig[k].have[kind] = 1;
            }
        }
        fprintf(stderr, "  %s done\n", c->name);
    }
    print_table(results, n_results);
    write_json(json, results, n_results, BENCH_COMMIT, cpu, runs);
    printf("\nJSON: %s\n", json);
    return 0;
}
