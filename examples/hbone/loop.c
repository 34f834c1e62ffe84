/* SPDX-License-Identifier: MIT */
#include "loop.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>

#include <hbone/io.h>

static watcher **watchers;
static size_t n_watchers, cap_watchers;
static int stopped, status;
static int dispatching; /* watchers[] is being walked: removals leave a NULL */

int loop_add(watcher *w)
{
    if (n_watchers == cap_watchers) {
        size_t cap = cap_watchers ? cap_watchers * 2 : 16;
        watcher **grown = realloc(watchers, cap * sizeof(*grown));
        if (!grown)
            return -1;
        watchers = grown;
        cap_watchers = cap;
    }
    watchers[n_watchers++] = w;
    return 0;
}

/* Compact away the removed ones, keeping the order. */
static void compact(void)
{
    size_t kept = 0;
    for (size_t i = 0; i < n_watchers; i++) {
        if (watchers[i])
            watchers[kept++] = watchers[i];
    }
    n_watchers = kept;
}

void loop_remove(watcher *w)
{
    for (size_t i = 0; i < n_watchers; i++) {
        if (watchers[i] == w) {
            watchers[i] = NULL;
            if (w->release)
                w->release(w);
            break;
        }
    }
    if (!dispatching)
        compact();
}

void loop_stop(int code)
{
    stopped = 1;
    status = code;
}

int loop_status(void)
{
    return status;
}

void loop_run(void)
{
    struct pollfd *fds = NULL;
    size_t fds_cap = 0;
    while (!stopped && n_watchers > 0) {
        if (fds_cap < n_watchers) {
            fds_cap = n_watchers * 2;
            fds = realloc(fds, fds_cap * sizeof(*fds));
            if (!fds) {
                perror("hbone: loop");
                exit(1);
            }
        }
        uint64_t now = hbone_io_now_ms();
        int timeout = -1;
        size_t n = n_watchers; /* watchers added while handling wait a round */
        for (size_t i = 0; i < n; i++) {
            int t = -1;
            fds[i] = (struct pollfd){watchers[i]->fd, watchers[i]->events(watchers[i], now, &t), 0};
            if (t >= 0 && (timeout < 0 || t < timeout))
                timeout = t;
        }
        if (poll(fds, n, timeout) < 0 && errno != EINTR) {
            perror("hbone: poll");
            exit(1);
        }
        now = hbone_io_now_ms();
        dispatching = 1;
        for (size_t i = 0; i < n && !stopped; i++) {
            watcher *w = watchers[i];
            if (!w)
                continue; /* removed by another watcher's handler */
            if (w->handle(w, fds[i].revents, now) < 0) {
                watchers[i] = NULL;
                if (w->release)
                    w->release(w);
            }
        }
        dispatching = 0;
        compact();
    }
    free(fds);
}

void loop_release_all(void)
{
    for (size_t i = 0; i < n_watchers; i++) {
        if (watchers[i] && watchers[i]->release)
            watchers[i]->release(watchers[i]);
    }
    n_watchers = 0;
    free(watchers);
    watchers = NULL;
    cap_watchers = 0;
}
