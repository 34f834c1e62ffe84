/* SPDX-License-Identifier: MIT */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>

#define LOG_LINE_MAX 512

const char *hbone_log_level_name(int level)
{
    switch (level) {
    case HBONE_LOG_ERROR:
        return "error";
    case HBONE_LOG_WARN:
        return "warn";
    case HBONE_LOG_INFO:
        return "info";
    case HBONE_LOG_DEBUG:
        return "debug";
    default:
        return "?";
    }
}

void hb_log(const hb_logger *log, int level, const char *fmt, ...)
{
    if (!hb_log_enabled(log, level))
        return;
    char line[LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
    log->cb(level, line, len, log->user_data);
}

int hb_detail_set(hb_detail *detail, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (vsnprintf(detail->text, sizeof(detail->text), fmt, ap) < 0)
        detail->text[0] = '\0';
    va_end(ap);
    return code;
}
