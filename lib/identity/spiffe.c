/* SPDX-License-Identifier: MIT */
/* SPIFFE IDs, strictly by the SPIFFE-ID specification (section 2). */
#include "identity/spiffe.h"

#include <string.h>

#include <hbone/error.h>

static int is_trust_domain_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

static int is_path_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_';
}

static int fail_at(size_t *bad_offset, size_t offset, int code)
{
    if (bad_offset)
        *bad_offset = offset;
    return code;
}

int hb_spiffe_validate_trust_domain(const char *td, size_t len, size_t *bad_offset)
{
    if (len == 0)
        return fail_at(bad_offset, 0, HBONE_ERR_SPIFFE_TRUST_DOMAIN_EMPTY);
    for (size_t i = 0; i < len; i++) {
        if (!is_trust_domain_char((unsigned char)td[i]))
            return fail_at(bad_offset, i, HBONE_ERR_SPIFFE_TRUST_DOMAIN_CHAR);
    }
    if (len > HBONE_SPIFFE_TRUST_DOMAIN_MAX)
        return fail_at(bad_offset, HBONE_SPIFFE_TRUST_DOMAIN_MAX,
                       HBONE_ERR_SPIFFE_TRUST_DOMAIN_TOO_LONG);
    return 0;
}

/* Validate the path after the trust domain; @p base is its offset in the ID. */
static int validate_path(const char *path, size_t len, size_t base, size_t *bad_offset)
{
    size_t i = 0;
    while (i < len) {
        /* path[i] is '/': the caller or the previous segment ensures it. */
        size_t start = i + 1, end = start;
        while (end < len && path[end] != '/') {
            if (!is_path_char((unsigned char)path[end]))
                return fail_at(bad_offset, base + end, HBONE_ERR_SPIFFE_PATH_CHAR);
            end++;
        }
        size_t seg = end - start;
        if (seg == 0) {
            return end == len ? fail_at(bad_offset, base + i, HBONE_ERR_SPIFFE_PATH_TRAILING_SLASH)
                              : fail_at(bad_offset, base + i, HBONE_ERR_SPIFFE_PATH_EMPTY_SEGMENT);
        }
        if ((seg == 1 && path[start] == '.') ||
            (seg == 2 && path[start] == '.' && path[start + 1] == '.'))
            return fail_at(bad_offset, base + start, HBONE_ERR_SPIFFE_PATH_DOT_SEGMENT);
        i = end;
    }
    return 0;
}

/* On success *td_len receives the trust domain's length. */
static int validate(const char *str, size_t len, size_t *bad_offset, size_t *td_len)
{
    if (!str)
        return HBONE_ERR_INVALID_ARGUMENT;
    /* The scheme is case-insensitive in URIs but SPIFFE IDs are compared as
     * strings, so only the canonical lowercase form is accepted. */
    if (len < HB_SPIFFE_SCHEME_LEN || memcmp(str, HB_SPIFFE_SCHEME, HB_SPIFFE_SCHEME_LEN) != 0)
        return fail_at(bad_offset, 0, HBONE_ERR_SPIFFE_SCHEME);
    const char *td = str + HB_SPIFFE_SCHEME_LEN;
    size_t rest = len - HB_SPIFFE_SCHEME_LEN;
    const char *slash = memchr(td, '/', rest);
    size_t tdl = slash ? (size_t)(slash - td) : rest;
    size_t td_bad = 0;
    int r = hb_spiffe_validate_trust_domain(td, tdl, &td_bad);
    if (r < 0)
        return fail_at(bad_offset, HB_SPIFFE_SCHEME_LEN + td_bad, r);
    r = validate_path(td + tdl, rest - tdl, HB_SPIFFE_SCHEME_LEN + tdl, bad_offset);
    if (r < 0)
        return r;
    /* Checked last so that a long ID with a bad character reports the character. */
    if (len > HBONE_SPIFFE_ID_MAX)
        return fail_at(bad_offset, HBONE_SPIFFE_ID_MAX, HBONE_ERR_SPIFFE_TOO_LONG);
    if (td_len)
        *td_len = tdl;
    return 0;
}

int hbone_spiffe_id_validate(const char *str, size_t len, size_t *bad_offset)
{
    return validate(str, len, bad_offset, NULL);
}

int hbone_spiffe_id_parse(hbone_spiffe_id **out, const char *str, size_t len, const hbone_mem *mem)
{
    if (!out)
        return HBONE_ERR_INVALID_ARGUMENT;
    *out = NULL;
    size_t td_len;
    int r = validate(str, len, NULL, &td_len);
    if (r < 0)
        return r;
    mem = hb_mem_or_default(mem);
    hbone_spiffe_id *id = hb_malloc(mem, sizeof(*id) + len + 1);
    if (!id)
        return HBONE_ERR_NOMEM;
    id->mem = *mem;
    id->len = len;
    id->trust_domain_len = td_len;
    memcpy(id->str, str, len);
    id->str[len] = '\0';
    *out = id;
    return 0;
}

int hbone_spiffe_id_new_istio(hbone_spiffe_id **out, const char *trust_domain,
                              size_t trust_domain_len, const char *ns, size_t ns_len,
                              const char *sa, size_t sa_len, const hbone_mem *mem)
{
    if (!out)
        return HBONE_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!trust_domain || !ns || !sa)
        return HBONE_ERR_INVALID_ARGUMENT;
    /* A '/' inside a part would smuggle in extra segments: reject it here,
     * where the parts are still separate. */
    if (memchr(trust_domain, '/', trust_domain_len))
        return HBONE_ERR_SPIFFE_TRUST_DOMAIN_CHAR;
    if (memchr(ns, '/', ns_len) || memchr(sa, '/', sa_len))
        return HBONE_ERR_SPIFFE_PATH_CHAR;
    if (trust_domain_len > HBONE_SPIFFE_ID_MAX || ns_len > HBONE_SPIFFE_ID_MAX ||
        sa_len > HBONE_SPIFFE_ID_MAX)
        return HBONE_ERR_SPIFFE_TOO_LONG;
    static const char ns_part[] = "/ns/", sa_part[] = "/sa/";
    size_t len = HB_SPIFFE_SCHEME_LEN + trust_domain_len + 4 + ns_len + 4 + sa_len;
    const hb_mem *m = hb_mem_or_default(mem);
    char *buf = hb_malloc(m, len);
    if (!buf)
        return HBONE_ERR_NOMEM;
    size_t off = 0;
    memcpy(buf + off, HB_SPIFFE_SCHEME, HB_SPIFFE_SCHEME_LEN);
    off += HB_SPIFFE_SCHEME_LEN;
    memcpy(buf + off, trust_domain, trust_domain_len);
    off += trust_domain_len;
    memcpy(buf + off, ns_part, 4);
    off += 4;
    memcpy(buf + off, ns, ns_len);
    off += ns_len;
    memcpy(buf + off, sa_part, 4);
    off += 4;
    memcpy(buf + off, sa, sa_len);
    int r = hbone_spiffe_id_parse(out, buf, len, mem);
    hb_free(m, buf);
    return r;
}

int hbone_spiffe_id_dup(hbone_spiffe_id **out, const hbone_spiffe_id *id)
{
    if (!out || !id)
        return HBONE_ERR_INVALID_ARGUMENT;
    return hbone_spiffe_id_parse(out, id->str, id->len, &id->mem);
}

void hbone_spiffe_id_del(hbone_spiffe_id *id)
{
    if (id) {
        hb_mem mem = id->mem;
        hb_free(&mem, id);
    }
}

const char *hbone_spiffe_id_str(const hbone_spiffe_id *id, size_t *len)
{
    if (!id)
        return NULL;
    if (len)
        *len = id->len;
    return id->str;
}

const char *hbone_spiffe_id_trust_domain(const hbone_spiffe_id *id, size_t *len)
{
    if (!id)
        return NULL;
    if (len)
        *len = id->trust_domain_len;
    return id->str + HB_SPIFFE_SCHEME_LEN;
}

const char *hbone_spiffe_id_path(const hbone_spiffe_id *id, size_t *len)
{
    if (!id)
        return NULL;
    size_t start = HB_SPIFFE_SCHEME_LEN + id->trust_domain_len;
    if (len)
        *len = id->len - start;
    return id->str + start;
}

/* Take the next "/<segment>" off @p path. */
static int next_segment(const char **path, size_t *len, const char **seg, size_t *seg_len)
{
    if (*len < 2 || (*path)[0] != '/')
        return -1;
    const char *start = *path + 1;
    const char *end = memchr(start, '/', *len - 1);
    size_t n = end ? (size_t)(end - start) : *len - 1;
    *seg = start;
    *seg_len = n;
    *path += n + 1;
    *len -= n + 1;
    return 0;
}

int hbone_spiffe_id_istio(const hbone_spiffe_id *id, const char **ns, size_t *ns_len,
                          const char **sa, size_t *sa_len)
{
    if (!id)
        return HBONE_ERR_INVALID_ARGUMENT;
    size_t len;
    const char *path = hbone_spiffe_id_path(id, &len);
    const char *seg[4];
    size_t seg_len[4];
    for (int i = 0; i < 4; i++) {
        if (next_segment(&path, &len, &seg[i], &seg_len[i]) < 0)
            return HBONE_ERR_SPIFFE_NOT_ISTIO;
    }
    if (len != 0 || seg_len[0] != 2 || memcmp(seg[0], "ns", 2) != 0 || seg_len[2] != 2 ||
        memcmp(seg[2], "sa", 2) != 0)
        return HBONE_ERR_SPIFFE_NOT_ISTIO;
    if (ns)
        *ns = seg[1];
    if (ns_len)
        *ns_len = seg_len[1];
    if (sa)
        *sa = seg[3];
    if (sa_len)
        *sa_len = seg_len[3];
    return 0;
}

int hbone_spiffe_id_equal(const hbone_spiffe_id *a, const hbone_spiffe_id *b)
{
    return a && b && a->len == b->len && memcmp(a->str, b->str, a->len) == 0;
}

int hb_spiffe_id_in_trust_domain(const hbone_spiffe_id *id, const char *td, size_t len)
{
    return id && id->trust_domain_len == len &&
           memcmp(id->str + HB_SPIFFE_SCHEME_LEN, td, len) == 0;
}
