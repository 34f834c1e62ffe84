/* SPDX-License-Identifier: MIT */
/*
 * libhbone logging: a callback per config, filtered by level before any
 * message is formatted. Key material is never logged.
 */
#ifndef HBONE_LOG_H
#define HBONE_LOG_H

#include <stddef.h>

#include <hbone/export.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HBONE_LOG_NONE 0
#define HBONE_LOG_ERROR 1
#define HBONE_LOG_WARN 2
#define HBONE_LOG_INFO 3
#define HBONE_LOG_DEBUG 4

/**
 * Receives one log message. @p message is @p len bytes, NUL-terminated, and
 * valid only during the call. Called on the thread that drives the object
 * that logs; it must not call back into that object.
 */
typedef void (*hbone_log_cb)(int level, const char *message, size_t len, void *user_data);

/** Return the name of a log level ("error", "warn", "info", "debug"), or "?" */
HBONE_API const char *hbone_log_level_name(int level);

#ifdef __cplusplus
}
#endif

#endif /* HBONE_LOG_H */
