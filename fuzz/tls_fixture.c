/* SPDX-License-Identifier: MIT */
#include "tls_fixture.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hbone/error.h>
#include <hbone/identity.h>

#include "fuzz_common.h"

#ifndef FUZZ_DATA_DIR
#error "FUZZ_DATA_DIR must name fuzz/data (fuzz/meson.build passes it)"
#endif

/*
 * Everything one role sends in a handshake, with the certificates of
 * fuzz/data: a server's ServerHello flight is under 2 KiB and a client's
 * Certificate flight smaller; each flight goes out once, plus at most a
 * HelloRetryRequest or second ClientHello and an alert. Far more than that
 * for any input means something is being sent again and again.
 */
#define FX_OUTPUT_MAX (32 * 1024)

/* TLS 1.3 ciphertext records: 2^14 bytes of plaintext plus at most 256 of
 * expansion (RFC 8446 5.2). */
#define TLS_RECORD_MAX (16384 + 256)

/* --- credentials ------------------------------------------------------ */

typedef struct {
    char *text;
    size_t len;
} fx_file;

static fx_file ca_pem, leaf_pem[2], key_pem[2];

/* The data directory: FUZZ_DATA_DIR from the build, unless the environment
 * names another (a fuzzer binary copied away from its source tree). */
static const char *data_dir(void)
{
    const char *env = getenv("HBONE_FUZZ_DATA");
    return env && env[0] ? env : FUZZ_DATA_DIR;
}

static void read_file(fx_file *f, const char *name)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", data_dir(), name);
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        fprintf(stderr,
                "fuzz: cannot open %s: %s (regenerate with fuzz/data/gen.sh, or set "
                "HBONE_FUZZ_DATA to the directory)\n",
                path, strerror(errno));
        abort();
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    FUZZ_CHECK(buf != NULL);
    for (;;) {
        len += fread(buf + len, 1, cap - len, fp);
        if (len < cap)
            break;
        cap *= 2;
        buf = realloc(buf, cap);
        FUZZ_CHECK(buf != NULL);
    }
    FUZZ_CHECK(!ferror(fp));
    fclose(fp);
    f->text = buf;
    f->len = len;
}

/* Index 0 is the server leaf, 1 the client leaf. The files are read once
 * per process with the C library's allocator: they are not libhbone's and
 * must not count against any input. */
static int leaf_index(const char *leaf)
{
    if (!ca_pem.text) {
        read_file(&ca_pem, "ca.pem");
        read_file(&leaf_pem[0], "server.pem");
        read_file(&key_pem[0], "server.key");
        read_file(&leaf_pem[1], "client.pem");
        read_file(&key_pem[1], "client.key");
    }
    FUZZ_CHECK(strcmp(leaf, "server") == 0 || strcmp(leaf, "client") == 0);
    return strcmp(leaf, "server") == 0 ? 0 : 1;
}

/*
 * The configs' allocator. Building a config costs ten times a failed
 * handshake (PEM parsing and key checks in wolfSSL), so each config is built
 * once per process and outlives the inputs; fuzz_mem()'s balance, which must
 * be zero between inputs, cannot hold them. This allocator counts blocks
 * the same way, and an input must leave the count where it found it, which
 * is what "the session freed everything it allocated" means here.
 */
static size_t fx_live;

static void *fx_malloc(size_t size, void *user_data)
{
    (void)user_data;
    void *p = malloc(size);
    fx_live += p != NULL;
    return p;
}

static void *fx_calloc(size_t nmemb, size_t size, void *user_data)
{
    (void)user_data;
    void *p = calloc(nmemb, size);
    fx_live += p != NULL;
    return p;
}

static void *fx_realloc(void *ptr, size_t size, void *user_data)
{
    if (!ptr)
        return fx_malloc(size, user_data);
    if (size == 0) {
        /* As fuzz_common.c: make the count independent of what the C
         * library does with realloc(p, 0). */
        FUZZ_CHECK(fx_live > 0);
        fx_live--;
        free(ptr);
        return NULL;
    }
    return realloc(ptr, size);
}

static void fx_free(void *ptr, void *user_data)
{
    (void)user_data;
    if (!ptr)
        return;
    FUZZ_CHECK(fx_live > 0);
    fx_live--;
    free(ptr);
}

static size_t fx_baseline = (size_t)-1;

void fx_mem_begin(void)
{
    FUZZ_CHECK(fx_baseline == (size_t)-1);
    fx_baseline = fx_live;
}

void fx_mem_end(void)
{
    if (fx_live != fx_baseline) {
        fprintf(stderr, "fuzz: this input left %zu session allocation(s) behind\n",
                fx_live - fx_baseline);
        fuzz_fail(__FILE__, __LINE__, "session allocations and frees balance");
    }
    fx_baseline = (size_t)-1;
}

static hbone_config *build_config(int i)
{
    static hbone_mem *mem;
    if (!mem)
        FUZZ_CHECK(hbone_mem_new(&mem, fx_malloc, fx_free, fx_calloc, fx_realloc, NULL) == 0);
    hbone_config *cfg = NULL;
    FUZZ_CHECK(hbone_config_new(&cfg, mem) == 0);
    int r = hbone_config_set_certificate(cfg, leaf_pem[i].text, leaf_pem[i].len, key_pem[i].text,
                                         key_pem[i].len);
    if (r == 0)
        r = hbone_config_add_trust_bundle(cfg, "cluster.local", 13, ca_pem.text, ca_pem.len);
    if (r != 0) {
        /* Stale or damaged files make every input fail the same way: say so
         * once, loudly, rather than fuzz a handshake that cannot start. */
        fprintf(stderr, "fuzz: fuzz/data/%s is unusable: %s: %s\n", i ? "client" : "server",
                hbone_strerror(r), hbone_config_error_detail(cfg));
        abort();
    }
    return cfg;
}

hbone_config *fx_config(const char *leaf)
{
    static hbone_config *configs[2];
    int i = leaf_index(leaf);
    if (!configs[i])
        configs[i] = build_config(i);
    return configs[i];
}

/* --- checking what a session sends ------------------------------------ */

/*
 * A record-layer reader for the session's output, kept across drains (the
 * caller may take output at any byte): every record must have a known
 * content type, a legacy version of 3.x, and a length within the TLS 1.3
 * limit. An independent restatement of RFC 8446 5.1 and 5.2, except for
 * the version: RFC 8446 wants 0x0303 (0x0301 in a first ClientHello), but
 * wolfSSL answers a ClientHello whose legacy_version is 0x0300 with a
 * protocol_version alert in a 0x0300 record, as TLS 1.2 servers did
 * (corpus file handshake_server/client-hello-ssl3-version). That is
 * harmless, so only a version outside 3.x counts as garbage here.
 */
typedef struct {
    uint8_t header[5];
    size_t header_have;
    size_t body_left;
    size_t total;
} fx_records;

static void records_take(fx_records *rec, const uint8_t *p, size_t n)
{
    rec->total += n;
    FUZZ_CHECK(rec->total <= FX_OUTPUT_MAX);
    while (n > 0) {
        if (rec->body_left > 0) {
            size_t k = n < rec->body_left ? n : rec->body_left;
            rec->body_left -= k;
            p += k;
            n -= k;
            continue;
        }
        rec->header[rec->header_have++] = *p++;
        n--;
        if (rec->header_have < sizeof(rec->header))
            continue;
        uint8_t type = rec->header[0];
        unsigned version = (unsigned)rec->header[1] << 8 | rec->header[2];
        size_t len = (size_t)rec->header[3] << 8 | rec->header[4];
        /* change_cipher_spec, alert, handshake, application_data */
        FUZZ_CHECK(type >= 20 && type <= 23);
        FUZZ_CHECK(version >= 0x0300 && version <= 0x0304);
        FUZZ_CHECK(len > 0 && len <= TLS_RECORD_MAX);
        rec->header_have = 0;
        rec->body_left = len;
    }
}

/* Take the session's pending output into @p rec, and drain it if @p drain. */
static void collect_output(hb_tls *tls, fx_records *rec, size_t *seen, int drain)
{
    size_t len = 0;
    const uint8_t *out = hb_tls_output(tls, &len);
    FUZZ_CHECK((out == NULL) == (len == 0));
    /* Undrained output only ever grows at the end. */
    FUZZ_CHECK(len >= *seen);
    if (len > *seen)
        records_take(rec, out + *seen, len - *seen);
    if (drain) {
        hb_tls_output_consume(tls, len);
        *seen = 0;
        FUZZ_CHECK(hb_tls_output(tls, &len) == NULL && len == 0);
    } else {
        *seen = len;
    }
}

/* --- chunking --------------------------------------------------------- */

/*
 * The first input byte is a plan for the rest:
 *   bits 0-5  chunk size; 0 with bit 7 clear means "all at once"
 *   bit 6     leave output in the session until the end instead of
 *             draining it after every call (grows the output buffer)
 *   bit 7     vary chunk sizes pseudo-randomly, from 1 to 4 x the size
 *             (1 to 256 with size 0), so that records split at many offsets
 * One byte keeps the plan easy for the fuzzer to flip, and the recorded
 * seeds start with 0x00 (whole) or a small size.
 */
typedef struct {
    int whole, drain, vary;
    size_t size;
    uint32_t state;
} fx_plan;

static fx_plan plan_read(uint8_t b)
{
    fx_plan p;
    p.size = b & 0x3f;
    p.drain = !(b & 0x40);
    p.vary = (b & 0x80) != 0;
    p.whole = p.size == 0 && !p.vary;
    p.state = 0x9e3779b9u ^ b;
    return p;
}

static size_t plan_next(fx_plan *p, size_t left)
{
    size_t n = left;
    if (p->vary) {
        /* xorshift32: any cheap deterministic sequence will do. */
        p->state ^= p->state << 13;
        p->state ^= p->state >> 17;
        p->state ^= p->state << 5;
        size_t span = p->size ? 4 * p->size : 256;
        n = 1 + p->state % span;
    } else if (!p->whole) {
        n = p->size;
    }
    return n < left ? n : left;
}

/* --- driving ---------------------------------------------------------- */

/* HBONE_FUZZ_VERBOSE=1 prints how each input ended, to see what a corpus
 * file reaches without a debugger. */
static int verbose(void)
{
    static int v = -1;
    if (v < 0) {
        const char *env = getenv("HBONE_FUZZ_VERBOSE");
        v = env && env[0] && strcmp(env, "0") != 0;
    }
    return v;
}

static const char *peer_id_str(hb_tls *tls)
{
    const hbone_spiffe_id *id = hb_tls_peer_id(tls);
    return id ? hbone_spiffe_id_str(id, NULL) : NULL;
}

/* A session that has failed with @p err must stay failed, whatever it is
 * asked next, and must say why. */
static void check_failed(hb_tls *tls, int err, const uint8_t *data, size_t size)
{
    FUZZ_CHECK(hbone_err_is_fatal(err));
    FUZZ_CHECK(strcmp(hbone_strerror(err), "unknown error") != 0);
    const char *detail = hb_tls_error_detail(tls);
    FUZZ_CHECK(detail != NULL && detail[0] != '\0');
    FUZZ_CHECK(!hb_tls_handshake_done(tls) && hb_tls_peer_id(tls) == NULL);
    /* A copy: the detail lives in the session and later calls could
     * overwrite it. */
    char saved[512];
    snprintf(saved, sizeof(saved), "%s", detail);

    size_t before = 0;
    (void)hb_tls_output(tls, &before);
    size_t consumed = 1;
    FUZZ_CHECK(hb_tls_handshake(tls, data, size, &consumed) == err && consumed == 0);
    FUZZ_CHECK(hb_tls_handshake(tls, NULL, 0, &consumed) == err && consumed == 0);
    uint8_t buf[64];
    size_t nread = 1;
    FUZZ_CHECK(hb_tls_read(tls, data, size, &consumed, buf, sizeof(buf), &nread) == err);
    FUZZ_CHECK(consumed == 0 && nread == 0);
    FUZZ_CHECK(hb_tls_write(tls, (const uint8_t *)"x", 1) == err);
    FUZZ_CHECK(hb_tls_close_notify(tls) == err);
    /* Nothing more goes out once failed (an alert went out, if any, before
     * the error was returned). */
    size_t after = 0;
    (void)hb_tls_output(tls, &after);
    FUZZ_CHECK(after == before);
    /* The reason stays the first one. */
    FUZZ_CHECK(strncmp(hb_tls_error_detail(tls), saved, sizeof(saved) - 1) == 0);
}

/* The handshake completed: only a peer holding one of the fuzz/data leaves
 * can have done that (a client also insists on the server's identity). */
static void check_done(hb_tls *tls, int role)
{
    FUZZ_CHECK(hb_tls_handshake_done(tls));
    const char *peer = peer_id_str(tls);
    FUZZ_CHECK(peer != NULL);
    if (role == HB_TLS_CLIENT)
        FUZZ_CHECK(strcmp(peer, FX_SERVER_ID) == 0);
    else
        FUZZ_CHECK(strcmp(peer, FX_CLIENT_ID) == 0 || strcmp(peer, FX_SERVER_ID) == 0);
    FUZZ_CHECK(strcmp(hb_tls_cipher(tls), "none") != 0);
}

void fx_drive(hb_tls *tls, int role, const uint8_t *data, size_t size)
{
    fx_plan plan = plan_read(size ? data[0] : 0);
    const uint8_t *in = size ? data + 1 : NULL;
    size_t in_len = size ? size - 1 : 0, fed = 0;

    /* What the session has been given and not yet consumed, as a transport
     * would keep it: the next call sees it again, with the next chunk. */
    uint8_t *pending = in_len ? malloc(in_len) : NULL;
    FUZZ_CHECK(in_len == 0 || pending != NULL);
    size_t pending_len = 0;

    fx_records rec = {{0}, 0, 0, 0};
    size_t seen = 0;
    collect_output(tls, &rec, &seen, plan.drain);

    int r = HBONE_ERR_AGAIN;
    for (;;) {
        size_t n = plan_next(&plan, in_len - fed);
        if (n) {
            memcpy(pending + pending_len, in + fed, n);
            pending_len += n;
            fed += n;
        }
        size_t consumed = (size_t)-1;
        r = hb_tls_handshake(tls, pending_len ? pending : NULL, pending_len, &consumed);
        FUZZ_CHECK(consumed <= pending_len);
        if (consumed) {
            memmove(pending, pending + consumed, pending_len - consumed);
            pending_len -= consumed;
        }
        collect_output(tls, &rec, &seen, plan.drain);
        if (r != HBONE_ERR_AGAIN)
            break;
        FUZZ_CHECK(!hb_tls_handshake_done(tls) && hb_tls_peer_id(tls) == NULL);
        /* Input used up: one more call cannot help unless the last one
         * left bytes it may take now. */
        if (fed == in_len && (consumed == 0 || pending_len == 0))
            break;
    }

    if (verbose())
        fprintf(stderr, "  %s: %s%s%s; sent %zu bytes\n",
                role == HB_TLS_SERVER ? "server" : "client",
                r == HBONE_ERR_AGAIN ? "waiting for more input" : hbone_strerror(r),
                r < 0 && r != HBONE_ERR_AGAIN ? ": " : "",
                r < 0 && r != HBONE_ERR_AGAIN ? hb_tls_error_detail(tls) : "", rec.total);
    if (r == 0)
        check_done(tls, role);
    else if (r != HBONE_ERR_AGAIN)
        check_failed(tls, r, data, size);
    collect_output(tls, &rec, &seen, 1);
    /* Whatever went out ends on a record boundary: a peer is never left
     * waiting for the rest of a record. */
    FUZZ_CHECK(rec.header_have == 0 && rec.body_left == 0);
    free(pending);
}

/* --- recording seeds -------------------------------------------------- */

typedef struct {
    uint8_t *buf;
    size_t len;
} fx_bytes;

static void bytes_add(fx_bytes *b, const uint8_t *p, size_t n)
{
    if (n == 0)
        return;
    b->buf = realloc(b->buf, b->len + n);
    FUZZ_CHECK(b->buf != NULL);
    memcpy(b->buf + b->len, p, n);
    b->len += n;
}

/* Move @p from's output to @p to_in (what the other side will read) and
 * to @p log (everything the other side was ever sent). */
static int move_output(hb_tls *from, fx_bytes *to_in, fx_bytes *log)
{
    size_t len = 0;
    const uint8_t *out = hb_tls_output(from, &len);
    bytes_add(to_in, out, len);
    bytes_add(log, out, len);
    hb_tls_output_consume(from, len);
    return len > 0;
}

static int step(hb_tls *tls, fx_bytes *in)
{
    size_t consumed = 0;
    int r = hb_tls_handshake(tls, in->len ? in->buf : NULL, in->len, &consumed);
    if (consumed) {
        memmove(in->buf, in->buf + consumed, in->len - consumed);
        in->len -= consumed;
    }
    return r;
}

static void write_seed(const char *dir, const char *name, uint8_t plan, const fx_bytes *b)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(&plan, 1, 1, f) != 1 || fwrite(b->buf, 1, b->len, f) != b->len ||
        fclose(f) != 0) {
        fprintf(stderr, "fuzz: cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
    printf("wrote %s (%zu bytes)\n", path, b->len + 1);
}

void fx_record_if_asked(int role)
{
    const char *dir = getenv("FUZZ_RECORD");
    if (!dir || !dir[0])
        return;
    hb_tls *client = NULL, *server = NULL;
    FUZZ_CHECK(hb_tls_new(&client, fx_config("client"), HB_TLS_CLIENT) == 0);
    FUZZ_CHECK(hb_tls_new(&server, fx_config("server"), HB_TLS_SERVER) == 0);
    hbone_spiffe_id *want = NULL;
    FUZZ_CHECK(hbone_spiffe_id_parse(&want, FX_SERVER_ID, strlen(FX_SERVER_ID), NULL) == 0);
    FUZZ_CHECK(hb_tls_expect_peer(client, want) == 0);
    hbone_spiffe_id_del(want);

    /* to_client/to_server: unread input; sent_*: all of it, in order. The
     * first flight of each side is kept apart too. */
    fx_bytes to_client = {0}, to_server = {0}, sent_client = {0}, sent_server = {0};
    fx_bytes client_hello = {0};
    int rc = HBONE_ERR_AGAIN, rs = HBONE_ERR_AGAIN;
    for (int rounds = 0; rounds < 100; rounds++) {
        if (rc == HBONE_ERR_AGAIN)
            rc = step(client, &to_client);
        int moved = move_output(client, &to_server, &sent_server);
        if (rounds == 0)
            bytes_add(&client_hello, sent_server.buf, sent_server.len);
        if (rs == HBONE_ERR_AGAIN)
            rs = step(server, &to_server);
        moved |= move_output(server, &to_client, &sent_client);
        if (!moved && rc != HBONE_ERR_AGAIN && rs != HBONE_ERR_AGAIN)
            break;
    }
    if (rc != 0 || rs != 0) {
        fprintf(stderr, "fuzz: recording handshake failed: client %s (%s), server %s (%s)\n",
                hbone_strerror(rc), hb_tls_error_detail(client), hbone_strerror(rs),
                hb_tls_error_detail(server));
        exit(1);
    }
    if (role == HB_TLS_SERVER) {
        write_seed(dir, "recorded-client-flights", 0x00, &sent_server);
        write_seed(dir, "recorded-client-flights-chunk5", 0x05, &sent_server);
        write_seed(dir, "recorded-client-hello", 0x00, &client_hello);
        write_seed(dir, "recorded-client-hello-vary", 0x80, &client_hello);
    } else {
        write_seed(dir, "recorded-server-flight", 0x00, &sent_client);
        write_seed(dir, "recorded-server-flight-chunk1", 0x01, &sent_client);
        write_seed(dir, "recorded-server-flight-vary-keep", 0xc8, &sent_client);
    }
    free(to_client.buf);
    free(to_server.buf);
    free(sent_client.buf);
    free(sent_server.buf);
    free(client_hello.buf);
    hb_tls_del(client);
    hb_tls_del(server);
    exit(0);
}
