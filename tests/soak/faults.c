/* SPDX-License-Identifier: MIT */
/*
 * Faults on a schedule drawn from the seed: kill a server mid-transfer,
 * drain a client connection, drain a server, rotate the server certificate.
 * The first four faults are one of each (in a seeded order), so that even
 * a short run meets them all; the rest are drawn at random.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "soak.h"

enum { F_KILL, F_CLIENT_DRAIN, F_SERVER_DRAIN, F_ROTATE, F_KINDS };

static uint64_t rng;
static uint64_t next_at;
static int first[F_KINDS];
static unsigned count;
static int rotations_pending; /* servers yet to answer 'R' */
static int probes_pending;
static char reject_detail[256]; /* how a probe with the old root was refused */

const char *faults_reject_detail(void)
{
    return reject_detail;
}

static void schedule(uint64_t now)
{
    uint64_t iv = opt.fault_interval_ms;
    next_at = now + iv / 2 + rng_below(&rng, iv + 1);
}

void faults_init(uint64_t seed, uint64_t start)
{
    rng = seed ^ 0xfa17;
    for (int i = 0; i < F_KINDS; i++)
        first[i] = i;
    for (int i = F_KINDS - 1; i > 0; i--) {
        int j = (int)rng_below(&rng, (uint64_t)i + 1), x = first[i];
        first[i] = first[j];
        first[j] = x;
    }
    schedule(start);
}

int faults_busy(void)
{
    return rotations_pending > 0 || probes_pending > 0;
}

int faults_timeout(uint64_t now)
{
    if (stopping)
        return -1;
    return next_at > now ? (int)(next_at - now) : 0;
}

static server_proc *busiest_server(void)
{
    server_proc *best = NULL;
    for (server_proc *s = server_list; s; s = s->next) {
        if (s->alive && !s->killed && (!best || s->tunnels > best->tunnels))
            best = s;
    }
    return best;
}

static void kill_one(void)
{
    /* The busiest, so that it dies mid-transfer with many tunnels. */
    server_proc *s = busiest_server();
    if (!s)
        return;
    /* The replacement first: without descriptors for it, no kill. */
    if (!servers_spawn(generation)) {
        note("cannot start a server (%s): no kill this time", strerror(errno));
        return;
    }
    if (opt.verbose)
        note("killing server %d (pid %d) with %d tunnels", s->index, (int)s->pid, s->tunnels);
    servers_kill(s);
}

static void drain_client_conn(void)
{
    cconn *pick = NULL;
    unsigned seen = 0;
    /* Reservoir sampling over the connections that carry tunnels. */
    for (cconn *cc = conn_list; cc; cc = cc->next) {
        if (!cc->probe && cc->ready && cc->usable && cc->n_tunnels > 0 &&
            rng_below(&rng, ++seen) == 0)
            pick = cc;
    }
    if (!pick)
        return;
    if (opt.verbose)
        note("draining a connection to server %d with %d tunnels", pick->srv->index,
             pick->n_tunnels);
    conn_drain(pick);
    stats.client_drains++;
}

static void drain_server(void)
{
    server_proc *pick = NULL;
    unsigned seen = 0;
    for (server_proc *s = server_list; s; s = s->next) {
        if (s->alive && !s->killed && rng_below(&rng, ++seen) == 0)
            pick = s;
    }
    if (!pick)
        return;
    if (opt.verbose)
        note("draining server %d with %d tunnels", pick->index, pick->tunnels);
    pick->drain_pending = 1;
    for (cconn *cc = conn_list; cc; cc = cc->next) {
        if (cc->srv == pick && !cc->probe) {
            cc->server_draining = 1;
            cc->usable = 0; /* new tunnels go to new connections */
        }
    }
    servers_send(pick, 'd');
    stats.server_drains++;
}

static void rotate(void)
{
    generation++;
    if (opt.verbose)
        note("rotating the server certificate to generation %d (%s)", generation,
             generation % 2 ? "server-next, RSA root" : "server, EC root A");
    for (server_proc *s = server_list; s; s = s->next) {
        if (s->alive && !s->killed) {
            s->rotating = 1;
            rotations_pending++;
            servers_send(s, 'r');
        }
    }
    stats.rotations++;
}

void faults_run(uint64_t now)
{
    if (stopping || now < next_at)
        return;
    if (faults_busy()) {
        next_at = now + 100; /* one fault at a time: probes need a still world */
        return;
    }
    int kind = count < F_KINDS ? first[count] : (int)rng_below(&rng, F_KINDS);
    count++;
    switch (kind) {
    case F_KILL:
        kill_one();
        break;
    case F_CLIENT_DRAIN:
        drain_client_conn();
        break;
    case F_SERVER_DRAIN:
        drain_server();
        break;
    default:
        rotate();
        break;
    }
    schedule(now);
}

/* A server now gives new connections the new certificate. Two probes show
 * it: a client trusting only the new root must get in, one trusting only
 * the old root must be refused. */
void faults_on_rotated(server_proc *s)
{
    rotations_pending--;
    if (s->generation != generation)
        fail("server %d rotated to generation %d, expected %d", s->index, s->generation,
             generation);
    int g = s->generation;
    /* Without a descriptor (EMFILE) a probe is skipped, not failed: that
     * is this process's limit, not the server's doing. */
    if (conn_open(s, probe_cfg[g % 2], 1, 1))
        probes_pending++;
    else
        stats.probes_skipped++;
    if (conn_open(s, probe_cfg[(g + 1) % 2], 1, 0)) {
        probes_pending++;
        s->expect_handshake_failures++;
    } else {
        stats.probes_skipped++;
    }
}

void faults_on_probe_done(cconn *cc, int handshake_ok)
{
    if (cc->probe_reported)
        return;
    cc->probe_reported = 1;
    probes_pending--;
    if (handshake_ok != cc->probe_expect_ok) {
        fail("after rotation to generation %d, a probe trusting only the %s root %s", generation,
             cc->probe_expect_ok ? "new" : "old", handshake_ok ? "got in" : "was refused");
        return;
    }
    if (handshake_ok) {
        stats.probes_ok++;
    } else {
        stats.probes_rejected++;
        if (!reject_detail[0])
            snprintf(reject_detail, sizeof(reject_detail), "%s", hbone_conn_error_detail(cc->conn));
    }
}
