/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: PEM certificate files (lib/identity/pem.c, then svid.c), the
 * path a configuration file or a trust bundle takes.
 *
 * hb_pem_next() walks every CERTIFICATE block of the input; each decoded
 * block goes through the SVID check; then hbone_svid_check_pem() must agree
 * with what the walk saw for the first block. Invariants:
 *  - hb_pem_next moves forward only on success, never past the input, and
 *    stops with NOT_FOUND or PEM (nothing else: the allocator never fails);
 *  - a decoded block is no longer than its base64 text allows, and encoding
 *    it again (canonically, re-wrapped) decodes back to the same bytes;
 *  - hbone_svid_check_pem == hbone_svid_check_der on the first block, with
 *    the same ID, and HBONE_ERR_PEM when there is no usable first block;
 *  - all allocations are freed.
 */
#include <stdlib.h>
#include <string.h>

#include <hbone/error.h>
#include <hbone/identity.h>

#include "common/mem.h"
#include "fuzz_common.h"
#include "identity/pem.h"
#include "identity/spiffe.h" /* struct hbone_spiffe_id, for the poison value */

#define LABEL "CERTIFICATE"
static const char begin_line[] = "-----BEGIN " LABEL "-----";
static const char end_line[] = "-----END " LABEL "-----";

/* Stops a pathological input from turning one execution into a long loop;
 * each block costs at least sizeof(begin_line) + sizeof(end_line) bytes
 * anyway, so this is never reached below ~5 MB. */
#define MAX_BLOCKS 100000

static hbone_spiffe_id poison;

/* Canonical base64 of @p in, wrapped every 64 characters as RFC 7468 asks,
 * inside BEGIN/END lines. Returns a malloc'd text (not through fuzz_mem:
 * this is the harness's memory, not the library's). */
static char *encode_pem(const uint8_t *in, size_t len, size_t *out_len)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t chars = (len + 2) / 3 * 4;
    size_t cap = sizeof(begin_line) + sizeof(end_line) + chars + chars / 64 + 4;
    char *out = malloc(cap);
    FUZZ_CHECK(out != NULL);
    size_t n = 0, col = 0;
    memcpy(out, begin_line, sizeof(begin_line) - 1);
    n += sizeof(begin_line) - 1;
    out[n++] = '\n';
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        char quad[4] = {alphabet[(v >> 18) & 63], alphabet[(v >> 12) & 63],
                        i + 1 < len ? alphabet[(v >> 6) & 63] : '=',
                        i + 2 < len ? alphabet[v & 63] : '='};
        for (int k = 0; k < 4; k++) {
            out[n++] = quad[k];
            if (++col == 64) {
                out[n++] = '\n';
                col = 0;
            }
        }
    }
    if (col)
        out[n++] = '\n';
    memcpy(out + n, end_line, sizeof(end_line) - 1);
    n += sizeof(end_line) - 1;
    out[n++] = '\n';
    FUZZ_CHECK(n <= cap);
    *out_len = n;
    return out;
}

/* Decode-encode-decode: whatever hb_pem_next() produced must survive a
 * canonical round trip unchanged. */
static void check_round_trip(const uint8_t *der, size_t der_len)
{
    size_t text_len = 0;
    char *text = encode_pem(der, der_len, &text_len);
    size_t pos = 0;
    uint8_t *again = NULL;
    size_t again_len = 0;
    int r = hb_pem_next(fuzz_mem(), text, text_len, &pos, LABEL, &again, &again_len);
    FUZZ_CHECK(r == 0);
    FUZZ_CHECK(again_len == der_len && memcmp(again, der, der_len) == 0);
    FUZZ_CHECK(pos == text_len - 1); /* just past the END line, before its '\n' */
    hb_free(fuzz_mem(), again);
    free(text);
}

/* Number of base64 alphabet characters in @p p (padding and whitespace are
 * not counted): each carries six bits of the decoded block. */
static size_t base64_chars(const char *p, size_t n)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '+' || c == '/')
            count++;
    }
    return count;
}

/* The body of the block hb_pem_next() just returned: from the end of the
 * first BEGIN line at or after @p from to the start of the END line that
 * ends at @p to. */
static void block_body(const char *text, size_t from, size_t to, const char **body,
                       size_t *body_len)
{
    size_t begin_len = sizeof(begin_line) - 1, end_len = sizeof(end_line) - 1;
    size_t b = from;
    while (b + begin_len <= to && memcmp(text + b, begin_line, begin_len) != 0)
        b++;
    FUZZ_CHECK(b + begin_len + end_len <= to);
    *body = text + b + begin_len;
    *body_len = to - end_len - (b + begin_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t empty[1];
    if (!data)
        data = empty;
    const char *text = (const char *)data;
    fuzz_mem_begin();

    /* First block's outcome, to hold hbone_svid_check_pem() to. */
    int first_pem = 1; /* not yet seen */
    int first_check = 0;
    hbone_spiffe_id *first_id = NULL;

    size_t pos = 0;
    for (int blocks = 0; blocks < MAX_BLOCKS; blocks++) {
        size_t before = pos;
        uint8_t *der = NULL;
        size_t der_len = 0;
        int r = hb_pem_next(fuzz_mem(), text, size, &pos, LABEL, &der, &der_len);
        if (first_pem == 1)
            first_pem = r;
        if (r != 0) {
            FUZZ_CHECK(r == HBONE_ERR_NOT_FOUND || r == HBONE_ERR_PEM);
            FUZZ_CHECK(pos == before && der == NULL);
            break;
        }
        /* The block lies in [before, pos) and ends with the END line. */
        FUZZ_CHECK(pos > before && pos <= size);
        size_t end_len = sizeof(end_line) - 1;
        FUZZ_CHECK(pos - before >= sizeof(begin_line) - 1 + end_len);
        FUZZ_CHECK(memcmp(text + pos - end_len, end_line, end_len) == 0);
        FUZZ_CHECK(der != NULL && der_len > 0);
        const char *body;
        size_t body_len;
        block_body(text, before, pos, &body, &body_len);
        size_t chars = base64_chars(body, body_len);
        /* Every character is six bits, and the leftover bits of the last
         * one never make a byte. */
        FUZZ_CHECK(der_len == chars * 6 / 8);
        /* A single character past the last full group carries only six bits,
         * never a whole byte: valid base64 never ends that way, and
         * pem.h promises HBONE_ERR_PEM for a malformed block. */
        FUZZ_CHECK(chars % 4 != 1);

        check_round_trip(der, der_len);

        hbone_spiffe_id *id = NULL;
        int c = hbone_svid_check_der(der, der_len, HBONE_SVID_STRICT, &id, fuzz_mem());
        if (blocks == 0) {
            first_check = c;
            first_id = id;
        } else {
            hbone_spiffe_id_del(id);
        }
        hb_free(fuzz_mem(), der);
    }

    hbone_spiffe_id *id = &poison;
    int r = hbone_svid_check_pem(text, size, HBONE_SVID_STRICT, &id, fuzz_mem());
    if (first_pem == HBONE_ERR_NOT_FOUND || first_pem == HBONE_ERR_PEM) {
        FUZZ_CHECK(r == HBONE_ERR_PEM && id == NULL);
    } else {
        FUZZ_CHECK(first_pem == 0);
        FUZZ_CHECK(r == first_check);
        if (r == 0)
            FUZZ_CHECK(hbone_spiffe_id_equal(id, first_id));
        else
            FUZZ_CHECK(id == NULL);
    }
    hbone_spiffe_id_del(id);
    hbone_spiffe_id_del(first_id);

    /* Lenient accepts whatever strict accepts; a NULL ID output must not
     * change the verdict. */
    id = &poison;
    int lenient = hbone_svid_check_pem(text, size, HBONE_SVID_LENIENT, &id, fuzz_mem());
    FUZZ_CHECK(hbone_svid_check_pem(text, size, HBONE_SVID_LENIENT, NULL, fuzz_mem()) == lenient);
    FUZZ_CHECK(r != 0 || lenient == 0);
    FUZZ_CHECK((lenient == 0) == (id != NULL));
    hbone_spiffe_id_del(id);

    fuzz_mem_end();
    return 0;
}
