/* SPDX-License-Identifier: MIT */
/*
 * The shape of what a server sends on a busy tunnel, seen record by record
 * by a raw HTTP/2 client: full 16 KiB TLS records, each DATA frame whole in
 * one record (the receiver decrypts whole frames), every byte delivered.
 */
#include <check.h>
#include <string.h>

#include <hbone/hbone.h>

#include "raw_h2.h"
#include "testlib.h"

#define TOTAL (1024 * 1024)
#define RECORD 16384

/* A server application that sends TOTAL bytes on its one tunnel, writing
 * until AGAIN and again on every writable event, then ends its side. */
struct sender {
    int32_t tunnel;
    size_t sent;
    uint8_t chunk[100000]; /* not a multiple of anything the data path uses */
};

static void send_more(hbone_conn *conn, struct sender *s)
{
    while (s->sent < TOTAL) {
        size_t n = TOTAL - s->sent < sizeof(s->chunk) ? TOTAL - s->sent : sizeof(s->chunk);
        size_t accepted = 0;
        int r = hbone_conn_tunnel_write(conn, s->tunnel, s->chunk, n, &accepted);
        if (r == HBONE_ERR_AGAIN)
            return;
        ck_assert_int_eq(r, 0);
        s->sent += accepted;
    }
    ck_assert_int_eq(hbone_conn_tunnel_shutdown(conn, s->tunnel), 0);
}

static void on_request(hbone_conn *conn, int32_t tunnel, const char *host, size_t host_len,
                       uint16_t port, int kind, void *user)
{
    (void)host;
    (void)host_len;
    (void)port;
    (void)kind;
    struct sender *s = user;
    s->tunnel = tunnel;
    ck_assert_int_eq(hbone_conn_tunnel_accept(conn, tunnel, NULL, NULL, NULL, NULL, 0), 0);
    send_more(conn, s);
}

static void on_writable(hbone_conn *conn, int32_t tunnel, void *user)
{
    (void)tunnel;
    send_more(conn, user);
}

START_TEST(bulk_data_goes_in_full_records_of_whole_frames)
{
    static struct sender s;
    memset(&s, 0, sizeof(s));
    hbone_config *cfg = tl_config("server", NULL);
    hbone_callbacks *cbs;
    ck_assert_int_eq(hbone_callbacks_new(&cbs), 0);
    hbone_callbacks_set_tunnel_request(cbs, on_request);
    hbone_callbacks_set_tunnel_writable(cbs, on_writable);
    hbone_conn *server;
    ck_assert_int_eq(hbone_conn_server_new(&server, cfg, cbs, &s, 0), 0);
    hbone_callbacks_del(cbs);
    hbone_config_del(cfg);

    raw_h2 *client = raw_h2_new();
    raw_h2_large_windows(client);
    raw_h2_tap_records(client);
    static const char *const connect[] = {":method", "CONNECT", ":authority", "10.0.0.1:80"};
    int32_t id = raw_h2_request(client, connect, 2, 0);
    raw_h2_pump(client, server);
    ck_assert_int_eq(raw_h2_stream_of(client, id)->status, 200);
    ck_assert_int_eq(raw_h2_stream_of(client, id)->ended, 1);

    raw_h2_records st;
    raw_h2_record_stats(client, &st);
    ck_assert_uint_eq(st.data_bytes, TOTAL);
    ck_assert_msg(st.split_data_frames == 0, "%zu of %zu DATA frames span two records",
                  st.split_data_frames, st.data_frames);
    /* Every record carrying data is full but the last. */
    ck_assert_uint_ge(st.data_records, TOTAL / RECORD);
    ck_assert_msg(st.full_data_records + 1 >= st.data_records,
                  "%zu of %zu records with data are full", st.full_data_records, st.data_records);
    raw_h2_del(client);
    hbone_conn_del(server);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("data-path");
    TCase *tc = tcase_create("records");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, bulk_data_goes_in_full_records_of_whole_frames);
    suite_add_tcase(s, tc);
    return tl_run_suite(s);
}
