/* SPDX-License-Identifier: MIT */
/* nghttp2, configured for HBONE. The only file that includes nghttp2. */
#include "h2/h2.h"

#include <string.h>

#include <nghttp2/nghttp2.h>

#include <hbone/error.h>

#define KiB 1024u
#define MiB (1024u * 1024u)

/* Limits nghttp2 1.52 enforces for us when asked (docs: hardening.md). */
#define MAX_SETTINGS_ENTRIES 32     /* per SETTINGS frame */
#define MAX_OUTBOUND_ACKS 100       /* queued PING/SETTINGS ACKs */
#define MAX_CONTINUATIONS 8         /* CONTINUATION frames per header block */
#define MAX_DEFLATE_TABLE 4096      /* our HPACK encoder's dynamic table */
#define MAX_SEND_HEADER_BLOCK 65536 /* largest header block we serialize */

struct hb_h2 {
    nghttp2_session *session;
    hb_mem user_mem; /* the connection's allocator */
    nghttp2_mem mem; /* nghttp2's view of it, through h2_malloc and friends */
    const hb_h2_events *events;
    void *ctx;
    int server;
    hb_h2_settings settings;
    int send_error; /* send_data's failure, which nghttp2 reports as its own */
    /* Something may have been queued since nghttp2 last said it had nothing
     * to send. Every function below that can queue a frame sets it, so
     * asking again costs nothing while nothing happened. */
    int may_write;
    int recv_error; /* nghttp2's reason for refusing input, or 0 */
};

/* --- nghttp2's allocations ---------------------------------------------- */

/* nghttp2 1.52 allocates a 16 KiB frame buffer per session up front. Only
 * small frames are ever built in it (DATA leaves without a copy, see
 * send_data), so most of its pages are never written; yet from memory the
 * process used before, they would all stay resident. Handing those pages
 * back when the buffer is allocated saves about 12 KiB per connection. A
 * new buffer this large that does get written (a huge header block) takes
 * its pages back as it is written. */
#define LARGE_ALLOCATION (16 * KiB)

static void *h2_malloc(size_t size, void *user)
{
    return hb_malloc(user, size);
}

static void h2_free(void *ptr, void *user)
{
    hb_free(user, ptr);
}

static void *h2_calloc(size_t nmemb, size_t size, void *user)
{
    return hb_calloc(user, nmemb, size);
}

static void *h2_realloc(void *ptr, size_t size, void *user)
{
    void *p = hb_realloc(user, ptr, size);
    if (p && !ptr && size >= LARGE_ALLOCATION) /* how nghttp2 makes new buffers */
        hb_mem_discard_pages(p, size);
    return p;
}

void hb_h2_default_settings(hb_h2_settings *s, int server)
{
    s->stream_window = 4 * MiB;
    s->connection_window = 16 * MiB;
    s->max_frame_size = 1 * MiB;
    s->max_header_list_size = server ? 64 * KiB : 16 * KiB;
    s->max_concurrent_streams = server ? 200 : 0;
}

const char *hb_h2_error_name(uint32_t error_code)
{
    return nghttp2_http2_strerror(error_code);
}

const char *hb_h2_strerror(int nghttp2_error)
{
    return nghttp2_strerror(nghttp2_error);
}

/* --- nghttp2 callbacks ------------------------------------------------- */

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    (void)session;
    hb_h2 *h2 = user;
    if (h2->server && frame->hd.type == NGHTTP2_HEADERS &&
        frame->headers.cat == NGHTTP2_HCAT_REQUEST &&
        h2->events->on_begin_request(h2->ctx, frame->hd.stream_id) < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t name_len, const uint8_t *value, size_t value_len, uint8_t flags,
                     void *user)
{
    (void)flags;
    hb_h2 *h2 = user;
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    int r = h2->events->on_header(h2->ctx, frame->hd.stream_id, name, name_len, value, value_len);
    /* A field that makes the message malformed (RFC 9113 section 8.1.1) is
     * the peer's error: PROTOCOL_ERROR, where nghttp2 would answer a failed
     * callback with INTERNAL_ERROR. The stream is then closing, so nghttp2
     * sends no second RST_STREAM of its own. */
    if (r == HBONE_ERR_PROTOCOL &&
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                  NGHTTP2_PROTOCOL_ERROR) != 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    return r < 0 ? NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE : 0;
}

/* nghttp2 would silently drop such a field; RFC 9113 section 8.2.1 calls the
 * message malformed, so the stream is reset instead. */
static int on_invalid_header(nghttp2_session *session, const nghttp2_frame *frame,
                             const uint8_t *name, size_t name_len, const uint8_t *value,
                             size_t value_len, uint8_t flags, void *user)
{
    (void)name;
    (void)name_len;
    (void)value;
    (void)value_len;
    (void)flags;
    hb_h2 *h2 = user;
    if (nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                  NGHTTP2_PROTOCOL_ERROR) != 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    h2->events->on_invalid_header(h2->ctx, frame->hd.stream_id);
    return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    (void)session;
    hb_h2 *h2 = user;
    int32_t stream = frame->hd.stream_id;
    int end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    int r = 0;
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        r = h2->events->on_headers_done(h2->ctx, stream, end_stream);
        break;
    case NGHTTP2_DATA:
        if (end_stream)
            r = h2->events->on_end(h2->ctx, stream);
        else if (frame->hd.length == 0)
            r = h2->events->on_glitch(h2->ctx); /* an empty DATA frame moves nothing */
        break;
    case NGHTTP2_PRIORITY:
        r = h2->events->on_glitch(h2->ctx); /* HBONE has no use for priorities */
        break;
    case NGHTTP2_RST_STREAM:
        r = h2->events->on_peer_reset(h2->ctx);
        break;
    case NGHTTP2_PING:
        if (frame->hd.flags & NGHTTP2_FLAG_ACK)
            h2->events->on_ping_ack(h2->ctx, frame->ping.opaque_data);
        break;
    case NGHTTP2_GOAWAY:
        if (frame->goaway.error_code != NGHTTP2_NO_ERROR)
            h2->events->on_goaway_received(h2->ctx, frame->goaway.error_code,
                                           (const char *)frame->goaway.opaque_data,
                                           frame->goaway.opaque_data_len);
        break;
    default:
        break;
    }
    /* A glitch limit reached ends the whole connection, not one stream. */
    if (r < 0 && (frame->hd.type == NGHTTP2_PRIORITY || frame->hd.type == NGHTTP2_RST_STREAM))
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    if (r < 0 && frame->hd.type == NGHTTP2_DATA && !end_stream)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    return r < 0 ? NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE : 0;
}

/* A client that has not yet seen its SETTINGS_ENABLE_PUSH 0 acknowledged
 * must take a PUSH_PROMISE as allowed, and nghttp2 answers each with
 * RST_STREAM(CANCEL) without telling us: count the promise here, as it
 * arrives, as a frame that does no work. (From a client it is a connection
 * error anyway.) */
static int on_begin_frame(nghttp2_session *session, const nghttp2_frame_hd *hd, void *user)
{
    (void)session;
    hb_h2 *h2 = user;
    if (hd->type == NGHTTP2_PUSH_PROMISE && h2->events->on_glitch(h2->ctx) < 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    return 0;
}

/* We reset a stream because of the peer's frames: count it. A frame
 * nghttp2 rejects leads to exactly such a reset (or to GOAWAY), so the
 * reset is where it is counted, once (MadeYouReset). Codes
 * an application uses for its own resets (CONNECT_ERROR, CANCEL, NO_ERROR)
 * are not the peer's doing and do not count. A GOAWAY with an error code
 * ends the connection: say why. */
static int on_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    (void)session;
    hb_h2 *h2 = user;
    if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR)
        h2->events->on_goaway_sent(h2->ctx, frame->goaway.error_code,
                                   (const char *)frame->goaway.opaque_data,
                                   frame->goaway.opaque_data_len);
    if (frame->hd.type != NGHTTP2_RST_STREAM)
        return 0;
    switch (frame->rst_stream.error_code) {
    case NGHTTP2_PROTOCOL_ERROR:
    case NGHTTP2_INTERNAL_ERROR:
    case NGHTTP2_FLOW_CONTROL_ERROR:
    case NGHTTP2_STREAM_CLOSED:
    case NGHTTP2_FRAME_SIZE_ERROR:
    case NGHTTP2_REFUSED_STREAM: {
        /* Over budget, the connection ends with ENHANCE_YOUR_CALM: say so
         * rather than let nghttp2 report a failed callback. */
        int r = h2->events->on_glitch(h2->ctx);
        if (r < 0)
            h2->send_error = r;
        return r < 0 ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
    }
    default:
        return 0;
    }
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream,
                         const uint8_t *data, size_t len, void *user)
{
    (void)session;
    (void)flags;
    hb_h2 *h2 = user;
    if (h2->events->on_data(h2->ctx, stream, data, len) < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream, uint32_t error_code,
                           void *user)
{
    (void)session;
    hb_h2 *h2 = user;
    h2->events->on_close(h2->ctx, stream, error_code);
    return 0;
}

/* DATA is never copied into nghttp2's frame buffer (NO_COPY): send_data
 * moves the bytes from the tunnel straight into the TLS record. */
static ssize_t read_data(nghttp2_session *session, int32_t stream, uint8_t *buf, size_t len,
                         uint32_t *data_flags, nghttp2_data_source *source, void *user)
{
    (void)session;
    (void)buf;
    (void)source;
    hb_h2 *h2 = user;
    int eof = 0;
    ssize_t n = h2->events->read_data(h2->ctx, stream, len, &eof);
    if (n == HB_H2_DEFERRED)
        return NGHTTP2_ERR_DEFERRED;
    if (n < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    *data_flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if (eof)
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return n;
}

static ssize_t data_length(nghttp2_session *session, uint8_t frame_type, int32_t stream,
                           int32_t connection_window, int32_t stream_window,
                           uint32_t max_frame_size, void *user)
{
    (void)session;
    (void)frame_type;
    (void)stream;
    (void)connection_window;
    (void)stream_window;
    (void)max_frame_size; /* nghttp2 applies the windows and the frame limit */
    hb_h2 *h2 = user;
    return (ssize_t)h2->events->next_data_length(h2->ctx);
}

/* No padding callback is set, so frame->data.padlen is always 0: the
 * payload follows the 9-byte header directly. */
static int send_data(nghttp2_session *session, nghttp2_frame *frame, const uint8_t *framehd,
                     size_t length, nghttp2_data_source *source, void *user)
{
    (void)session;
    (void)source;
    hb_h2 *h2 = user;
    int r = h2->events->send_data(h2->ctx, frame->hd.stream_id, framehd, length);
    if (r < 0) {
        h2->send_error = r;
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return r > 0 ? NGHTTP2_ERR_PAUSE : 0;
}

/* --- session ----------------------------------------------------------- */

static int configure(hb_h2 *h2, nghttp2_session_callbacks *cbs, nghttp2_option *opt)
{
    nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, on_begin_frame);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_invalid_header_callback(cbs, on_invalid_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_session_callbacks_set_data_source_read_length_callback(cbs, data_length);
    nghttp2_session_callbacks_set_send_data_callback(cbs, send_data);
    /* Windows are credited when the application has consumed the bytes. */
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_max_settings(opt, MAX_SETTINGS_ENTRIES);
    nghttp2_option_set_max_outbound_ack(opt, MAX_OUTBOUND_ACKS);
    nghttp2_option_set_max_continuations(opt, MAX_CONTINUATIONS);
    nghttp2_option_set_stream_reset_rate_limit(opt, HB_H2_RESET_BURST, HB_H2_RESET_PER_SECOND);
    nghttp2_option_set_max_deflate_dynamic_table_size(opt, MAX_DEFLATE_TABLE);
    nghttp2_option_set_max_send_header_block_length(opt, MAX_SEND_HEADER_BLOCK);
    /* Closed streams are not kept for priority: HBONE does not use it. */
    nghttp2_option_set_no_closed_streams(opt, 1);
    int r = h2->server ? nghttp2_session_server_new3(&h2->session, cbs, h2, opt, &h2->mem)
                       : nghttp2_session_client_new3(&h2->session, cbs, h2, opt, &h2->mem);
    if (r != 0)
        return r == NGHTTP2_ERR_NOMEM ? HBONE_ERR_NOMEM : HBONE_ERR_INTERNAL;
    nghttp2_settings_entry iv[5];
    size_t n = 0;
    iv[n++] =
        (nghttp2_settings_entry){NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, h2->settings.stream_window};
    iv[n++] =
        (nghttp2_settings_entry){NGHTTP2_SETTINGS_MAX_FRAME_SIZE, h2->settings.max_frame_size};
    iv[n++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
                                       h2->settings.max_header_list_size};
    if (h2->server) {
        /* Without an explicit limit nghttp2 lets a client open any number. */
        iv[n++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
                                           h2->settings.max_concurrent_streams};
    } else {
        iv[n++] = (nghttp2_settings_entry){NGHTTP2_SETTINGS_ENABLE_PUSH, 0};
    }
    r = nghttp2_submit_settings(h2->session, NGHTTP2_FLAG_NONE, iv, n);
    if (r == 0)
        r = nghttp2_session_set_local_window_size(h2->session, NGHTTP2_FLAG_NONE, 0,
                                                  (int32_t)h2->settings.connection_window);
    if (r != 0)
        return r == NGHTTP2_ERR_NOMEM ? HBONE_ERR_NOMEM : HBONE_ERR_INTERNAL;
    return 0;
}

int hb_h2_new(hb_h2 **out, int server, const hb_h2_settings *settings, const hb_mem *mem,
              const hb_h2_events *events, void *ctx)
{
    *out = NULL;
    hb_h2 *h2 = hb_calloc(mem, 1, sizeof(*h2));
    if (!h2)
        return HBONE_ERR_NOMEM;
    h2->user_mem = *mem;
    h2->mem = (nghttp2_mem){&h2->user_mem, h2_malloc, h2_free, h2_calloc, h2_realloc};
    h2->events = events;
    h2->ctx = ctx;
    h2->server = server;
    h2->settings = *settings;
    h2->may_write = 1; /* our SETTINGS */
    nghttp2_session_callbacks *cbs = NULL;
    nghttp2_option *opt = NULL;
    int r = HBONE_ERR_NOMEM;
    if (nghttp2_session_callbacks_new(&cbs) == 0 && nghttp2_option_new(&opt) == 0)
        r = configure(h2, cbs, opt);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_option_del(opt);
    if (r < 0) {
        hb_h2_del(h2);
        return r;
    }
    *out = h2;
    return 0;
}

void hb_h2_del(hb_h2 *h2)
{
    if (!h2)
        return;
    nghttp2_session_del(h2->session);
    hb_mem mem = h2->user_mem;
    hb_free(&mem, h2);
}

int hb_h2_recv(hb_h2 *h2, const uint8_t *data, size_t len)
{
    h2->may_write = 1;
    ssize_t r = nghttp2_session_mem_recv(h2->session, data, len);
    if (r < 0) {
        h2->recv_error = (int)r;
        return (int)r == NGHTTP2_ERR_NOMEM ? HBONE_ERR_NOMEM : HBONE_ERR_PROTOCOL;
    }
    return 0;
}

const char *hb_h2_recv_error(const hb_h2 *h2)
{
    return h2->recv_error ? nghttp2_strerror(h2->recv_error) : "";
}

int hb_h2_send(hb_h2 *h2)
{
    for (;;) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(h2->session, &data);
        if (n < 0 && h2->send_error)
            return h2->send_error;
        if (n < 0)
            return (int)n == NGHTTP2_ERR_NOMEM ? HBONE_ERR_NOMEM : HBONE_ERR_INTERNAL;
        if (n == 0)
            return 0;
        int r = h2->events->on_send(h2->ctx, data, (size_t)n);
        if (r != 0) /* an error, or > 0: enough for now */
            return r < 0 ? r : 0;
    }
}

int hb_h2_want_write(hb_h2 *h2)
{
    if (h2->may_write)
        h2->may_write = nghttp2_session_want_write(h2->session);
    return h2->may_write;
}

int hb_h2_alive(const hb_h2 *h2)
{
    return nghttp2_session_want_read(h2->session) || nghttp2_session_want_write(h2->session);
}

static nghttp2_nv make_nv(const char *name, size_t name_len, const char *value, size_t value_len)
{
    /* nghttp2 copies name and value when the frame is submitted. */
    nghttp2_nv nv = {(uint8_t *)(uintptr_t)name, (uint8_t *)(uintptr_t)value, name_len, value_len,
                     NGHTTP2_NV_FLAG_NONE};
    return nv;
}

/* Build the header array: @p fixed pseudo-headers, then the caller's. */
static nghttp2_nv *header_array(const hb_h2 *h2, const nghttp2_nv *fixed, size_t n_fixed,
                                const char *const *names, const size_t *name_lens,
                                const char *const *values, const size_t *value_lens, size_t n)
{
    nghttp2_nv *nva = hb_malloc(&h2->user_mem, (n_fixed + n) * sizeof(*nva));
    if (!nva)
        return NULL;
    memcpy(nva, fixed, n_fixed * sizeof(*nva));
    for (size_t i = 0; i < n; i++)
        nva[n_fixed + i] = make_nv(names[i], name_lens[i], values[i], value_lens[i]);
    return nva;
}

static int submit_error(int r)
{
    if (r == NGHTTP2_ERR_NOMEM)
        return HBONE_ERR_NOMEM;
    if (r == NGHTTP2_ERR_INVALID_ARGUMENT || r == NGHTTP2_ERR_INVALID_STATE)
        return HBONE_ERR_INVALID_STATE;
    if (r == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE || r == NGHTTP2_ERR_STREAM_CLOSED ||
        r == NGHTTP2_ERR_STREAM_CLOSING || r == NGHTTP2_ERR_START_STREAM_NOT_ALLOWED)
        return HBONE_ERR_INVALID_STATE;
    return HBONE_ERR_INTERNAL;
}

int hb_h2_submit_connect(hb_h2 *h2, const char *authority, size_t authority_len,
                         const char *const *names, const size_t *name_lens,
                         const char *const *values, const size_t *value_lens, size_t n,
                         int32_t *stream_out)
{
    h2->may_write = 1;
    /* Classic CONNECT: :method and :authority only (RFC 9113 section 8.5). */
    const nghttp2_nv fixed[] = {make_nv(":method", 7, "CONNECT", 7),
                                make_nv(":authority", 10, authority, authority_len)};
    nghttp2_nv *nva = header_array(h2, fixed, 2, names, name_lens, values, value_lens, n);
    if (!nva)
        return HBONE_ERR_NOMEM;
    nghttp2_data_provider provider = {.source = {.ptr = NULL}, .read_callback = read_data};
    int32_t id = nghttp2_submit_request(h2->session, NULL, nva, 2 + n, &provider, NULL);
    hb_free(&h2->user_mem, nva);
    if (id < 0)
        return submit_error(id);
    *stream_out = id;
    return 0;
}

int hb_h2_submit_response(hb_h2 *h2, int32_t stream, int status, const char *const *names,
                          const size_t *name_lens, const char *const *values,
                          const size_t *value_lens, size_t n, int with_body)
{
    h2->may_write = 1;
    char code[4] = {(char)('0' + status / 100 % 10), (char)('0' + status / 10 % 10),
                    (char)('0' + status % 10), '\0'};
    const nghttp2_nv fixed[] = {make_nv(":status", 7, code, 3)};
    nghttp2_nv *nva = header_array(h2, fixed, 1, names, name_lens, values, value_lens, n);
    if (!nva)
        return HBONE_ERR_NOMEM;
    nghttp2_data_provider provider = {.source = {.ptr = NULL}, .read_callback = read_data};
    int r = nghttp2_submit_response(h2->session, stream, nva, 1 + n, with_body ? &provider : NULL);
    hb_free(&h2->user_mem, nva);
    return r == 0 ? 0 : submit_error(r);
}

int hb_h2_resume(hb_h2 *h2, int32_t stream)
{
    h2->may_write = 1;
    int r = nghttp2_session_resume_data(h2->session, stream);
    /* Not deferred (nghttp2 will ask again anyway) is not an error. */
    return r == 0 || r == NGHTTP2_ERR_INVALID_ARGUMENT ? 0 : submit_error(r);
}

int hb_h2_consume(hb_h2 *h2, int32_t stream, size_t n)
{
    h2->may_write = 1;
    int r = nghttp2_session_consume(h2->session, stream, n);
    /* A stream closed meanwhile still credits the connection window. */
    if (r == NGHTTP2_ERR_INVALID_ARGUMENT)
        r = nghttp2_session_consume_connection(h2->session, n);
    return r == 0 ? 0 : submit_error(r);
}

int hb_h2_reset(hb_h2 *h2, int32_t stream, uint32_t error_code)
{
    h2->may_write = 1;
    int r = nghttp2_submit_rst_stream(h2->session, NGHTTP2_FLAG_NONE, stream, error_code);
    return r == 0 ? 0 : submit_error(r);
}

int hb_h2_ping(hb_h2 *h2, const uint8_t opaque[8])
{
    h2->may_write = 1;
    int r = nghttp2_submit_ping(h2->session, NGHTTP2_FLAG_NONE, opaque);
    return r == 0 ? 0 : submit_error(r);
}

int hb_h2_shutdown_notice(hb_h2 *h2)
{
    h2->may_write = 1;
    int r = nghttp2_submit_shutdown_notice(h2->session);
    return r == 0 ? 0 : submit_error(r);
}

int hb_h2_goaway(hb_h2 *h2)
{
    h2->may_write = 1;
    int32_t last = nghttp2_session_get_last_proc_stream_id(h2->session);
    int r = nghttp2_submit_goaway(h2->session, NGHTTP2_FLAG_NONE, last, NGHTTP2_NO_ERROR, NULL, 0);
    return r == 0 ? 0 : submit_error(r);
}

size_t hb_h2_queued_frames(hb_h2 *h2)
{
    return nghttp2_session_get_outbound_queue_size(h2->session);
}

int hb_h2_request_allowed(hb_h2 *h2)
{
    return nghttp2_session_check_request_allowed(h2->session);
}

uint32_t hb_h2_peer_max_streams(const hb_h2 *h2)
{
    return nghttp2_session_get_remote_settings(h2->session,
                                               NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
}

#ifdef HB_TESTING
int hb_h2_set_next_stream_id(hb_h2 *h2, int32_t id)
{
    return nghttp2_session_set_next_stream_id(h2->session, id) == 0 ? 0
                                                                    : HBONE_ERR_INVALID_ARGUMENT;
}
#endif

int hb_h2_terminate(hb_h2 *h2)
{
    h2->may_write = 1;
    int r = nghttp2_session_terminate_session(h2->session, NGHTTP2_NO_ERROR);
    return r == 0 ? 0 : submit_error(r);
}

int hb_h2_calm_down(hb_h2 *h2)
{
    h2->may_write = 1;
    int r = nghttp2_session_terminate_session(h2->session, NGHTTP2_ENHANCE_YOUR_CALM);
    return r == 0 ? 0 : submit_error(r);
}
