/* SPDX-License-Identifier: MIT */
/* Starting, commanding, killing and collecting the server children. */
#define _GNU_SOURCE /* close_range */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "soak.h"

server_proc *server_list;
static int next_index;

static void parse_stats(server_proc *s)
{
    server_stats *st = &s->stats;
    unsigned long long v[7];
    int fds;
    if (sscanf(s->line,
               "tunnels=%llu cancels=%llu connect_errors=%llu lost=%llu "
               "handshake_failures=%llu failures=%llu live_allocs=%llu fds_leaked=%d",
               &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &fds) != 8) {
        fail("server %d sent an unreadable report: %s", s->index, s->line);
        return;
    }
    st->tunnels = v[0];
    st->cancels = v[1];
    st->connect_errors = v[2];
    st->lost = v[3];
    st->handshake_failures = v[4];
    st->failures = v[5];
    st->live_allocs = v[6];
    st->fds_leaked = fds;
    s->have_stats = 1;
}

static void reap(server_proc *s)
{
    int status;
    pid_t r;
    /* It has closed its control socket or was sent SIGKILL: this returns
     * as soon as the kernel has taken it down. */
    while ((r = waitpid(s->pid, &status, 0)) < 0 && errno == EINTR)
        ;
    s->exited = 1;
    s->alive = 0;
    if (r < 0)
        fail("server %d: waitpid: %s", s->index, strerror(errno));
    else if (!s->killed && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
        fail("server %d ended badly (status 0x%x): %s", s->index, status,
             s->have_stats ? s->line : "no report");
}

static void ctl_ready(source *src, uint32_t ready)
{
    (void)ready;
    server_proc *s = (server_proc *)src;
    char buf[256];
    ssize_t n = read(src->fd, buf, sizeof(buf));
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    for (ssize_t i = 0; i < n; i++) {
        if (!s->quitting && buf[i] == 'R') {
            s->rotating = 0;
            s->generation++;
            faults_on_rotated(s);
        } else if (!s->quitting && buf[i] == 'D') {
            s->drain_pending = 0;
        } else if (s->quitting) {
            if (buf[i] == '\n') {
                s->line[s->line_len] = '\0';
                parse_stats(s);
            } else if (s->line_len + 1 < sizeof(s->line)) {
                s->line[s->line_len++] = buf[i];
            }
        }
    }
    if (n <= 0) {
        loop_remove(src);
        close(src->fd);
        src->fd = -1;
        if (!s->killed && !s->quitting)
            fail("server %d closed its control socket unasked", s->index);
        reap(s);
    }
}

server_proc *servers_spawn(int gen)
{
    int listen_fd, pair[2];
    uint16_t port;
    /* Listening before the fork: the port is known here, and connections
     * made right away queue in the backlog until the child accepts. */
    /* Failures here (EMFILE...) are the caller's to retry: NULL. */
    if (hbone_io_listen("127.0.0.1:0", 11, 512, &listen_fd, &port) < 0)
        return NULL;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0) {
        close(listen_fd);
        return NULL;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(listen_fd);
        close(pair[0]);
        close(pair[1]);
        return NULL;
    }
    if (pid == 0) {
        /* Never outlive the client, even if it is killed itself. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(3);
        signal(SIGPIPE, SIG_IGN);
        /* Keep only what this server needs: a copy of a client socket or of
         * another server's listener here would keep those connections open
         * after their owners closed them. */
        int l = fcntl(listen_fd, F_DUPFD, 5), c = fcntl(pair[1], F_DUPFD, 5);
        if (l < 0 || c < 0 || dup2(l, 3) < 0 || dup2(c, 4) < 0)
            _exit(3);
        if (close_range(5, ~0u, 0) < 0)
            _exit(3);
        /* A fresh image: the server starts with a heap of its own, so its
         * leak check (and valgrind's) sees only what it allocated. */
        char gen_text[16];
        snprintf(gen_text, sizeof(gen_text), "%d", gen);
        execl(self_path, self_path, "--serve", gen_text, "--pki", opt.pki_dir, (char *)NULL);
        _exit(127);
    }
    close(listen_fd);
    close(pair[1]);
    server_proc *s = xcalloc(1, sizeof(*s));
    s->pid = pid;
    s->port = port;
    s->index = next_index++;
    s->generation = gen;
    s->alive = 1;
    snprintf(s->address, sizeof(s->address), "127.0.0.1:%u", (unsigned)port);
    s->ctl.fd = pair[0];
    s->ctl.handle = ctl_ready;
    loop_add(&s->ctl, EPOLLIN);
    s->next = server_list;
    server_list = s;
    stats.spawns++;
    return s;
}

void servers_kill(server_proc *s)
{
    s->killed = 1;
    kill(s->pid, SIGKILL);
    loop_remove(&s->ctl);
    close(s->ctl.fd);
    s->ctl.fd = -1;
    reap(s);
    stats.kills++;
}

void servers_send(server_proc *s, char command)
{
    if (command == 'q')
        s->quitting = 1;
    if (write(s->ctl.fd, &command, 1) != 1)
        fail("server %d: control write: %s", s->index, strerror(errno));
}
