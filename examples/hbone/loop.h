/* SPDX-License-Identifier: MIT */
/* A small poll() loop: each watcher names its fd, what it waits for, and
 * what to do when that happens. */
#ifndef HBONE_TOOL_LOOP_H
#define HBONE_TOOL_LOOP_H

#include <stdint.h>

typedef struct watcher watcher;
struct watcher {
    int fd;
    /* Interest bits (POLLIN/POLLOUT) and, via *timeout_ms, a deadline in ms
     * from now (-1: none). */
    short (*events)(watcher *w, uint64_t now, int *timeout_ms);
    /* Ready bits (0 on timeout). Return -1 to be removed (and freed by
     * the watcher itself, in @p release). */
    int (*handle)(watcher *w, short revents, uint64_t now);
    void (*release)(watcher *w);
    void *ctx;
};

int loop_add(watcher *w);
/* Take @p w out of the loop and release it, also from another watcher's
 * handler (its own handler returns -1 instead). */
void loop_remove(watcher *w);
/* Run until loop_stop() or no watchers remain. */
void loop_run(void);
void loop_stop(int status);
int loop_status(void);
/* Release every watcher still in the loop (at exit, so nothing leaks). */
void loop_release_all(void);

#endif
