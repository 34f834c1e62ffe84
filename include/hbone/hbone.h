/* SPDX-License-Identifier: MIT */
/*
 * libhbone: Istio's HBONE tunnel protocol (HTTP/2 CONNECT over mutual
 * TLS 1.3 with SPIFFE identities) as a sans-IO C library.
 *
 * This umbrella header includes every public header.
 */
#ifndef HBONE_HBONE_H
#define HBONE_HBONE_H

#include <hbone/config.h>
#include <hbone/conn.h>
#include <hbone/connect.h>
#include <hbone/error.h>
#include <hbone/export.h>
#include <hbone/identity.h>
#include <hbone/io.h>
#include <hbone/log.h>
#include <hbone/mem.h>
#include <hbone/pool.h>
#include <hbone/version.h>

#endif /* HBONE_HBONE_H */
