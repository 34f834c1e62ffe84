/* SPDX-License-Identifier: MIT */
/*
 * libhbone: symbol export control shared by every public header.
 */
#ifndef HBONE_EXPORT_H
#define HBONE_EXPORT_H

/* The library is built with hidden visibility; only declarations marked
 * HBONE_API are exported (and listed in lib/libhbone.map). */
#if defined(HBONE_BUILDING_LIBRARY) && defined(__GNUC__)
#define HBONE_API __attribute__((visibility("default")))
#else
#define HBONE_API
#endif

#endif /* HBONE_EXPORT_H */
