/* SPDX-License-Identifier: MIT */
/* Internal logging and error-detail helpers. */
#ifndef HB_COMMON_LOG_H
#define HB_COMMON_LOG_H

#include <stddef.h>

#include <hbone/log.h>

typedef struct hb_logger {
    hbone_log_cb cb;
    int max_level;
    void *user_data;
} hb_logger;

#if defined(__GNUC__)
#define HB_PRINTF(fmt_idx, arg_idx) __attribute__((format(printf, fmt_idx, arg_idx)))
#else
#define HB_PRINTF(fmt_idx, arg_idx)
#endif

/* True when a message at @p level would be delivered: check before doing any
 * work to build its arguments. */
static inline int hb_log_enabled(const hb_logger *log, int level)
{
    return log && log->cb && level <= log->max_level;
}

/* Format and deliver a message if its level passes the filter. Messages longer
 * than the internal buffer are truncated, never split. */
void hb_log(const hb_logger *log, int level, const char *fmt, ...) HB_PRINTF(3, 4);

/* A fixed-size, always NUL-terminated description of the last error. */
#define HB_DETAIL_MAX 320
typedef struct hb_detail {
    char text[HB_DETAIL_MAX];
} hb_detail;

/* Set the detail text (truncating) and return @p code, so that error paths
 * read "return hb_detail_set(&d, HBONE_ERR_X, "...", ...);". */
int hb_detail_set(hb_detail *detail, int code, const char *fmt, ...) HB_PRINTF(3, 4);

static inline void hb_detail_clear(hb_detail *detail)
{
    detail->text[0] = '\0';
}

#endif /* HB_COMMON_LOG_H */
