/* SPDX-License-Identifier: MIT */
#include "common/server_load.h"

#include <stdatomic.h>

#include <hbone/error.h>

struct hb_server_load {
    atomic_uint refs;
    atomic_uint handshakes;
    atomic_uint connections;
    hb_mem mem; /* a copy: the config that created it may go first */
};

hb_server_load *hb_server_load_new(const hb_mem *mem)
{
    hb_server_load *load = hb_calloc(mem, 1, sizeof(*load));
    if (!load)
        return NULL;
    atomic_init(&load->refs, 1);
    atomic_init(&load->handshakes, 0);
    atomic_init(&load->connections, 0);
    load->mem = *mem;
    return load;
}

hb_server_load *hb_server_load_ref(hb_server_load *load)
{
    atomic_fetch_add_explicit(&load->refs, 1, memory_order_relaxed);
    return load;
}

void hb_server_load_del(hb_server_load *load)
{
    if (!load || atomic_fetch_sub_explicit(&load->refs, 1, memory_order_acq_rel) != 1)
        return;
    hb_mem mem = load->mem;
    hb_free(&mem, load);
}

/* Add one to @p count unless it is at @p max (0: no limit); 1 if it did. */
static int take_one(atomic_uint *count, uint32_t max)
{
    unsigned n = atomic_load(count);
    do {
        if (max && n >= max)
            return 0;
    } while (!atomic_compare_exchange_weak(count, &n, n + 1));
    return 1;
}

int hb_server_load_admit(hb_server_load *load, uint32_t max_handshakes, uint32_t max_connections)
{
    if (!take_one(&load->connections, max_connections))
        return HBONE_ERR_LIMIT;
    if (!take_one(&load->handshakes, max_handshakes)) {
        atomic_fetch_sub(&load->connections, 1);
        return HBONE_ERR_LIMIT;
    }
    return 0;
}

void hb_server_load_handshake_over(hb_server_load *load)
{
    atomic_fetch_sub(&load->handshakes, 1);
}

void hb_server_load_leave(hb_server_load *load)
{
    atomic_fetch_sub(&load->connections, 1);
}

void hb_server_load_leave_in_handshake(hb_server_load *load)
{
    hb_server_load_handshake_over(load);
    hb_server_load_leave(load);
}

void hb_server_load_read(const hb_server_load *load, uint32_t *handshakes, uint32_t *connections)
{
    if (handshakes)
        *handshakes = atomic_load(&load->handshakes);
    if (connections)
        *connections = atomic_load(&load->connections);
}
