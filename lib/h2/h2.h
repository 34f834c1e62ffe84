/* SPDX-License-Identifier: MIT */
/*
 * The HTTP/2 layer: an nghttp2 session configured for HBONE, seen through a
 * narrow interface so that nothing else includes nghttp2. Plaintext in,
 * plaintext out; events go up to the connection through hb_h2_events.
 */
#ifndef HB_H2_H2_H
#define HB_H2_H2_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/mem.h"

/* HTTP/2 error codes (RFC 9113 section 7) libhbone uses by name. */
#define HB_H2_NO_ERROR 0x0
#define HB_H2_PROTOCOL_ERROR 0x1
#define HB_H2_INTERNAL_ERROR 0x2
#define HB_H2_REFUSED_STREAM 0x7
#define HB_H2_CANCEL 0x8
#define HB_H2_CONNECT_ERROR 0xa
#define HB_H2_ENHANCE_YOUR_CALM 0xb

typedef struct hb_h2 hb_h2;

/* The settings libhbone advertises; defaults follow ztunnel
 * (docs: hbone-protocol.md section 4). */
typedef struct hb_h2_settings {
    uint32_t stream_window;     /* INITIAL_WINDOW_SIZE */
    uint32_t connection_window; /* raised by WINDOW_UPDATE on stream 0 */
    uint32_t max_frame_size;
    uint32_t max_header_list_size;
    uint32_t max_concurrent_streams; /* server only; 0: not sent */
} hb_h2_settings;

void hb_h2_default_settings(hb_h2_settings *s, int server);

/* Calls up into the connection. Each returns 0, or a negative value to
 * reset the stream concerned (or, from on_send, to fail the connection). */
typedef struct hb_h2_events {
    /* Server: the peer starts a request on a new stream. */
    int (*on_begin_request)(void *ctx, int32_t stream);
    /* A header field that HTTP/2 forbids (uppercase name, connection-specific,
     * bad characters): the stream is already being reset (PROTOCOL_ERROR). */
    void (*on_invalid_header)(void *ctx, int32_t stream);
    /* One header field of a request or response, pseudo-headers included. */
    int (*on_header)(void *ctx, int32_t stream, const uint8_t *name, size_t name_len,
                     const uint8_t *value, size_t value_len);
    /* A header block is complete (request, or final response); @p end_stream
     * tells whether it also ended the stream. */
    int (*on_headers_done)(void *ctx, int32_t stream, int end_stream);
    int (*on_data)(void *ctx, int32_t stream, const uint8_t *data, size_t len);
    /* The peer ended its side (END_STREAM on DATA or trailers). */
    int (*on_end)(void *ctx, int32_t stream);
    void (*on_close)(void *ctx, int32_t stream, uint32_t error_code);
    /* Size the stream's next DATA frame: up to @p len of its outgoing bytes
     * (nothing is copied yet; send_data takes them). Set *eof when that is
     * the last of it. Return the count, or HB_H2_DEFERRED when nothing is
     * available yet. */
    ssize_t (*read_data)(void *ctx, int32_t stream, size_t len, int *eof);
    /* The largest DATA payload to frame next (flow control may cut it). */
    size_t (*next_data_length)(void *ctx);
    /* Emit a DATA frame: @p header (9 bytes), then @p payload_len bytes
     * taken from the stream's outgoing data. Return 0 for more, 1 to pause
     * until the next hb_h2_send(), or a negative error. */
    int (*send_data)(void *ctx, int32_t stream, const uint8_t *header, size_t payload_len);
    /* The peer sent something that costs us work without moving a stream
     * forward (empty DATA, PRIORITY, an invalid frame, one that made us reset
     * a stream). Return a negative value to end the connection. */
    int (*on_glitch)(void *ctx);
    /* The peer reset a stream. Return a negative value to end the
     * connection (Rapid Reset): nghttp2's own limit ends it too, but only
     * after the rest of the input it was given. */
    int (*on_peer_reset)(void *ctx);
    /* We sent GOAWAY with an error code: nghttp2 ended the connection
     * because of the peer, or we asked it to. @p why is nghttp2's reason
     * (the GOAWAY's debug data), not terminated. */
    void (*on_goaway_sent)(void *ctx, uint32_t error_code, const char *why, size_t why_len);
    /* The peer ended the connection with an error (its GOAWAY's code and
     * debug data, not terminated). */
    void (*on_goaway_received)(void *ctx, uint32_t error_code, const char *why, size_t why_len);
    /* The peer acknowledged our PING with this opaque payload. */
    void (*on_ping_ack)(void *ctx, const uint8_t opaque[8]);
    /* Serialized frames for the peer. Return 0 for more, 1 to pause until
     * the next hb_h2_send(), or a negative error. */
    int (*on_send)(void *ctx, const uint8_t *data, size_t len);
} hb_h2_events;

#define HB_H2_DEFERRED (-1)

/* RST_STREAM frames a peer may send (nghttp2's limit, and ours): a burst,
 * then this many per second. */
#define HB_H2_RESET_BURST 1000
#define HB_H2_RESET_PER_SECOND 33

/* RFC 9113's name of an HTTP/2 error code ("PROTOCOL_ERROR"). */
const char *hb_h2_error_name(uint32_t error_code);

int hb_h2_new(hb_h2 **out, int server, const hb_h2_settings *settings, const hb_mem *mem,
              const hb_h2_events *events, void *ctx);
void hb_h2_del(hb_h2 *h2);

/* Feed received plaintext. Returns 0 or HBONE_ERR_PROTOCOL (the session is
 * then terminating; hb_h2_send() flushes its GOAWAY). */
int hb_h2_recv(hb_h2 *h2, const uint8_t *data, size_t len);
/* Why nghttp2 refused the input hb_h2_recv() failed on ("" if it did not):
 * e.g. "Received bad client magic byte string". */
const char *hb_h2_recv_error(const hb_h2 *h2);
/* Serialize everything pending through events->on_send. */
int hb_h2_send(hb_h2 *h2);
/* True while the session has work or may receive more. */
int hb_h2_alive(const hb_h2 *h2);
/* Whether hb_h2_send() has anything to send (cheap: no frame is built). */
int hb_h2_want_write(hb_h2 *h2);

/* Client: submit a CONNECT for @p authority with extra @p n headers. */
int hb_h2_submit_connect(hb_h2 *h2, const char *authority, size_t authority_len,
                         const char *const *names, const size_t *name_lens,
                         const char *const *values, const size_t *value_lens, size_t n,
                         int32_t *stream_out);
/* Server: answer a request. With @p with_body the stream stays open for
 * data (a 200); without, the response ends the stream. */
int hb_h2_submit_response(hb_h2 *h2, int32_t stream, int status, const char *const *names,
                          const size_t *name_lens, const char *const *values,
                          const size_t *value_lens, size_t n, int with_body);
/* Outgoing data became available (after HB_H2_DEFERRED). */
int hb_h2_resume(hb_h2 *h2, int32_t stream);
/* The application consumed @p n received bytes: credit the windows. */
int hb_h2_consume(hb_h2 *h2, int32_t stream, size_t n);
int hb_h2_reset(hb_h2 *h2, int32_t stream, uint32_t error_code);
/* End the connection with GOAWAY(ENHANCE_YOUR_CALM). */
int hb_h2_calm_down(hb_h2 *h2);
/* Send a PING carrying @p opaque. */
int hb_h2_ping(hb_h2 *h2, const uint8_t opaque[8]);
/* Server, first step of a drain: GOAWAY announcing no new streams soon. */
int hb_h2_shutdown_notice(hb_h2 *h2);
/* GOAWAY(NO_ERROR) with the last stream we processed: no new streams, the
 * open ones may finish. */
int hb_h2_goaway(hb_h2 *h2);
/* Frames nghttp2 has queued to send, DATA not included. */
size_t hb_h2_queued_frames(hb_h2 *h2);
/* Client: whether another request may start: not once a GOAWAY was sent
 * or received, nor once the stream ids are used up (2^31 - 1 is the last:
 * RFC 9113 section 5.1.1). */
int hb_h2_request_allowed(hb_h2 *h2);
/* The peer's SETTINGS_MAX_CONCURRENT_STREAMS (nghttp2's assumption until
 * its SETTINGS arrive). */
uint32_t hb_h2_peer_max_streams(const hb_h2 *h2);
#ifdef HB_TESTING
/* The id the next request gets (tests reach the end of the id space). */
int hb_h2_set_next_stream_id(hb_h2 *h2, int32_t id);
#endif
/* GOAWAY and close now, whatever is open. */
int hb_h2_terminate(hb_h2 *h2);

const char *hb_h2_strerror(int nghttp2_error);

#endif /* HB_H2_H2_H */
