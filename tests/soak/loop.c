/* SPDX-License-Identifier: MIT */
/* A level-triggered epoll loop. Timers are the callers' business: they pass
 * the time to their next deadline as the wait's timeout. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "soak.h"

#define MAX_EVENTS 128

static int epfd = -1;
/* A handler may free a source whose event is later in the same batch:
 * freeing waits for the end of the batch. */
static void **graves;
static size_t n_graves, cap_graves;

void loop_init(void)
{
    /* In a forked child the parent's epoll fd was already closed with the
     * rest; its graveyard belongs to the parent's heap and stays there. */
    graves = NULL;
    n_graves = cap_graves = 0;
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        die("epoll_create1: %s", strerror(errno));
}

void loop_fini(void)
{
    if (epfd >= 0)
        close(epfd);
    epfd = -1;
    free(graves);
    graves = NULL;
    n_graves = cap_graves = 0;
}

void loop_add(source *s, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = s};
    s->events = events;
    s->removed = 0;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, s->fd, &ev) < 0)
        die("epoll_ctl add: %s", strerror(errno));
}

void loop_update(source *s, uint32_t events)
{
    if (s->removed || s->events == events)
        return;
    struct epoll_event ev = {.events = events, .data.ptr = s};
    s->events = events;
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, s->fd, &ev) < 0)
        die("epoll_ctl mod: %s", strerror(errno));
}

void loop_remove(source *s)
{
    if (s->removed)
        return;
    s->removed = 1;
    epoll_ctl(epfd, EPOLL_CTL_DEL, s->fd, NULL);
}

void loop_free_later(void *p)
{
    if (n_graves == cap_graves) {
        cap_graves = cap_graves ? 2 * cap_graves : 32;
        graves = realloc(graves, cap_graves * sizeof(*graves));
        if (!graves)
            die("out of memory");
    }
    graves[n_graves++] = p;
}

void loop_round(int timeout_ms)
{
    struct epoll_event events[MAX_EVENTS];
    int n = epoll_wait(epfd, events, MAX_EVENTS, timeout_ms);
    if (n < 0 && errno != EINTR)
        die("epoll_wait: %s", strerror(errno));
    for (int i = 0; i < n; i++) {
        source *s = events[i].data.ptr;
        if (!s->removed)
            s->handle(s, events[i].events);
    }
    for (size_t i = 0; i < n_graves; i++)
        free(graves[i]);
    n_graves = 0;
}

uint64_t now_ms(void)
{
    return hbone_io_now_ms();
}

int io_bits(uint32_t ev)
{
    return (ev & (EPOLLIN | EPOLLHUP | EPOLLERR) ? HBONE_IO_READ : 0) |
           (ev & EPOLLOUT ? HBONE_IO_WRITE : 0);
}

uint32_t epoll_bits(int io)
{
    return (io & HBONE_IO_READ ? EPOLLIN : 0) | (io & HBONE_IO_WRITE ? EPOLLOUT : 0);
}
