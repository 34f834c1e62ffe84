/* SPDX-License-Identifier: MIT */
/* An epoll loop: level-triggered, with a flush pass after each round so
 * that transports batch what the workloads wrote into one send. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define MAX_EVENTS 256

static int epfd = -1;
static loop_source *dirty;
/* Sources with a timer (few: HBONE connections, not tunnels). */
static loop_source **timed;
static size_t n_timed, cap_timed;
/* Memory released at the end of the round (events may still name it). */
static void **graveyard;
static size_t n_graves, cap_graves;
static size_t n_sources;
/* The time of this round: read once when epoll_wait returns, as event
 * loops do, rather than by every handler. */
static uint64_t round_time_us;
static int running; /* inside loop_run_until */

void (*loop_round_hook)(void);

uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "hbone-bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

static void *grow(void *array, size_t *cap, size_t elem)
{
    *cap = *cap ? 2 * *cap : 64;
    void *p = realloc(array, *cap * elem);
    if (!p)
        die("out of memory");
    return p;
}

int loop_init(void)
{
    if (epfd >= 0)
        close(epfd);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    dirty = NULL;
    n_timed = 0;
    n_sources = 0;
    return epfd < 0 ? -1 : 0;
}

int loop_add(loop_source *s, uint32_t events, int is_timed)
{
    struct epoll_event ev = {.events = events, .data.ptr = s};
    s->events = events;
    s->flush_pending = s->removed = 0;
    s->timed = is_timed;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, s->fd, &ev) < 0)
        return -1;
    n_sources++;
    if (is_timed) {
        if (n_timed == cap_timed)
            timed = grow(timed, &cap_timed, sizeof(*timed));
        timed[n_timed++] = s;
    }
    return 0;
}

void loop_update(loop_source *s, uint32_t events)
{
    if (s->events == events || s->removed)
        return;
    struct epoll_event ev = {.events = events, .data.ptr = s};
    s->events = events;
    epoll_ctl(epfd, EPOLL_CTL_MOD, s->fd, &ev);
}

void loop_remove(loop_source *s)
{
    if (s->removed)
        return;
    s->removed = 1;
    n_sources--;
    epoll_ctl(epfd, EPOLL_CTL_DEL, s->fd, NULL);
    for (size_t i = 0; s->timed && i < n_timed; i++) {
        if (timed[i] == s) {
            timed[i] = timed[--n_timed];
            break;
        }
    }
}

void loop_free_later(void *p)
{
    if (n_graves == cap_graves)
        graveyard = grow(graveyard, &cap_graves, sizeof(*graveyard));
    graveyard[n_graves++] = p;
}

void loop_mark_dirty(loop_source *s)
{
    if (s->flush_pending || s->removed)
        return;
    s->flush_pending = 1;
    s->next_dirty = dirty;
    dirty = s;
}

static void end_round(void)
{
    while (dirty) {
        loop_source *s = dirty;
        dirty = s->next_dirty;
        s->flush_pending = 0;
        if (s->flush && !s->removed)
            s->flush(s);
    }
    for (size_t i = 0; i < n_graves; i++)
        free(graveyard[i]);
    n_graves = 0;
    if (loop_round_hook)
        loop_round_hook();
}

uint64_t loop_now_us(void)
{
    return running ? round_time_us : now_us();
}

size_t loop_source_count(void)
{
    return n_sources;
}

/* Milliseconds to the earliest timer (-1: none), running those due. */
static int run_timers(void)
{
    uint64_t now = round_time_us, first = 0;
    for (size_t i = 0; i < n_timed; i++) {
        loop_source *s = timed[i];
        if (s->deadline_us && s->deadline_us <= now)
            s->handle(s, 0);
        if (s->deadline_us && (!first || s->deadline_us < first))
            first = s->deadline_us;
    }
    if (!first)
        return -1;
    return first <= now ? 0 : (int)((first - now + 999) / 1000);
}

int loop_run_until(const int *done, uint64_t deadline_us)
{
    struct epoll_event events[MAX_EVENTS];
    round_time_us = now_us();
    running = 1;
    end_round();
    while (!*done) {
        int timeout = run_timers();
        end_round();
        if (*done)
            break;
        if (deadline_us) {
            if (round_time_us >= deadline_us) {
                running = 0;
                return -1;
            }
            int left = (int)((deadline_us - round_time_us) / 1000) + 1;
            if (timeout < 0 || left < timeout)
                timeout = left;
        }
        int n = epoll_wait(epfd, events, MAX_EVENTS, timeout);
        if (n < 0 && errno != EINTR)
            die("epoll_wait: %s", strerror(errno));
        round_time_us = now_us();
        for (int i = 0; i < n; i++) {
            loop_source *s = events[i].data.ptr;
            if (!s->removed)
                s->handle(s, events[i].events);
        }
        end_round();
    }
    running = 0;
    return 0;
}

void loop_serve(int listen_fd, void (*on_ready)(loop_source *s, uint32_t ready))
{
    static loop_source listener;
    listener.fd = listen_fd;
    listener.handle = on_ready;
    if (loop_add(&listener, EPOLLIN, 0) < 0)
        die("epoll: %s", strerror(errno));
    static const int forever = 0;
    loop_run_until(&forever, 0);
    exit(0); /* not reached */
}

void channel_write_all(channel *ch, const void *data, size_t len)
{
    size_t accepted = 0;
    if (ch->ops->write(ch, data, len, &accepted) < 0 || accepted != len)
        die("could not send a %zu-byte request", len);
}
