/* SPDX-License-Identifier: MIT */
/*
 * A raw HTTP/2 client over a libhbone TLS session, built directly on
 * nghttp2, to send requests libhbone's own client never would (a GET, a
 * CONNECT with :path, a malformed authority, oversized headers) to an
 * hbone_conn server.
 */
#ifndef HB_RAW_H2_H
#define HB_RAW_H2_H

#include <stddef.h>
#include <stdint.h>

#include <hbone/hbone.h>

#define RAW_H2_MAX_STREAMS 2048

typedef struct raw_h2_stream {
    int32_t id;
    int status; /* final :status, 0 if none */
    int ended;  /* END_STREAM received */
    int closed;
    uint32_t close_code; /* RST_STREAM code or 0 */
    uint64_t received;   /* DATA payload bytes */
    uint32_t checksum;   /* tl_checksum of them, in order */
} raw_h2_stream;

typedef struct raw_h2 raw_h2;

/* A client presenting "client" from the test PKI and expecting "server". */
raw_h2 *raw_h2_new(void);
/* The same client in raw mode: after the TLS handshake it sends only what
 * the test passes to raw_h2_send_raw (no preface, no SETTINGS), and reads
 * the server's frames itself: stream status (a 200), RST_STREAM codes,
 * DATA and GOAWAY are recorded as in normal mode. raw_h2_request is not for
 * this mode. */
raw_h2 *raw_h2_new_raw(void);
void raw_h2_del(raw_h2 *c);

/* Submit a request with these header fields (name, value pairs; pseudo
 * headers included as given, names not lowercased) and return its stream
 * id. The strings must stay valid until the next raw_h2_pump(). */
int32_t raw_h2_request(raw_h2 *c, const char *const *fields, size_t n_fields, int end_stream);

/* Move bytes between the raw client and @p server until both are quiet
 * (fails the test if the server's input fails). */
void raw_h2_pump(raw_h2 *c, hbone_conn *server);
/* The same, returning the first error of the server's input instead. */
int raw_h2_pump_status(raw_h2 *c, hbone_conn *server);

/* Send raw bytes (hand-made frames) after what the session has sent. */
void raw_h2_send_raw(raw_h2 *c, const uint8_t *frames, size_t len);

/* Write a frame header (24-bit length, type, flags, stream id) into @p out;
 * returns its size, 9. */
size_t raw_h2_frame_header(uint8_t *out, uint32_t len, uint8_t type, uint8_t flags, int32_t stream);

/* Send @p len bytes on @p stream as hand-made DATA frames (flow control is
 * the caller's business: the session does not know about them). */
void raw_h2_send_data(raw_h2 *c, int32_t stream, const uint8_t *data, size_t len);

/* 1 and the error code if the server sent GOAWAY, else 0. */
int raw_h2_goaway(const raw_h2 *c, uint32_t *code);

const raw_h2_stream *raw_h2_stream_of(const raw_h2 *c, int32_t id);

/* A SETTINGS value the server advertised (nghttp2's setting id). */
uint32_t raw_h2_server_setting(const raw_h2 *c, int id);

/* Advertise 16 MiB stream and connection windows, as HBONE peers do, so
 * that flow control does not shape what the server sends. Call before the
 * first pump. */
void raw_h2_large_windows(raw_h2 *c);

/* How the server's plaintext was cut into TLS records. */
typedef struct raw_h2_records {
    size_t records;           /* after the handshake */
    size_t data_records;      /* records carrying DATA payload */
    size_t full_data_records; /* ... of the largest size, 16 KiB */
    size_t data_frames;
    size_t split_data_frames; /* a DATA frame spread over two records */
    size_t data_bytes;
} raw_h2_records;

/* From now on read the server's output one TLS record at a time and keep
 * its plaintext, for raw_h2_record_stats(). */
void raw_h2_tap_records(raw_h2 *c);
void raw_h2_record_stats(const raw_h2 *c, raw_h2_records *st);

#endif /* HB_RAW_H2_H */
