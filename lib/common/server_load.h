/* SPDX-License-Identifier: MIT */
/*
 * The load that server connections put on a process: how many are in their
 * TLS handshake and how many are open. A config counts its connections in
 * one; configs that share it (hbone_config_share_server_limits) count
 * together, so a certificate rotation does not reset the count. Counting is
 * atomic: connections on any thread may come and go.
 */
#ifndef HB_COMMON_SERVER_LOAD_H
#define HB_COMMON_SERVER_LOAD_H

#include <stdint.h>

#include "common/mem.h"

typedef struct hb_server_load hb_server_load;

/* A new count at zero with one reference, allocated from @p mem. */
hb_server_load *hb_server_load_new(const hb_mem *mem);
hb_server_load *hb_server_load_ref(hb_server_load *load);
void hb_server_load_del(hb_server_load *load);

/* Count one more connection in its handshake, unless that would take the
 * handshakes past @p max_handshakes or the connections past
 * @p max_connections (0: no limit). Returns 0 or HBONE_ERR_LIMIT. */
int hb_server_load_admit(hb_server_load *load, uint32_t max_handshakes, uint32_t max_connections);
/* An admitted connection's handshake is over (done or abandoned). */
void hb_server_load_handshake_over(hb_server_load *load);
/* An admitted connection is gone (its handshake over first). */
void hb_server_load_leave(hb_server_load *load);
/* Both at once: an admitted connection failed to be set up. */
void hb_server_load_leave_in_handshake(hb_server_load *load);
void hb_server_load_read(const hb_server_load *load, uint32_t *handshakes, uint32_t *connections);

#endif /* HB_COMMON_SERVER_LOAD_H */
