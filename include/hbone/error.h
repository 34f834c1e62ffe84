/* SPDX-License-Identifier: MIT */
/*
 * libhbone error codes.
 *
 * Every function that can fail returns 0 on success or a negative
 * HBONE_ERR_* code. Codes are append-only and grouped by hundreds:
 *
 *   -1xx  usage and flow (not fatal: the object is still usable)
 *   -2xx  HTTP/2 and HBONE protocol
 *   -3xx  TLS
 *   -4xx  identity (SPIFFE IDs, X.509-SVIDs, trust domains)
 *   -5xx  I/O and configuration data
 *   -9xx  resources and internal errors
 *
 * A code at or below HBONE_ERR_FATAL returned by a connection or session
 * means that object can only be destroyed; it keeps returning the same code.
 * Stateless functions (parsers, checks) return the same codes to name a cause.
 */
#ifndef HBONE_ERROR_H
#define HBONE_ERROR_H

#include <hbone/export.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HBONE_OK 0

/* usage and flow */
#define HBONE_ERR_INVALID_ARGUMENT -101 /* a NULL or out-of-range argument */
#define HBONE_ERR_AGAIN -102            /* would block: retry after more input or output */
#define HBONE_ERR_BUFFER_TOO_SMALL -103 /* the caller's buffer cannot hold the result */
#define HBONE_ERR_INVALID_STATE -104    /* the call is not allowed in the object's state */
#define HBONE_ERR_CONFIG_FROZEN -105    /* the config is in use and can no longer change */
#define HBONE_ERR_NOT_FOUND -106        /* the requested item does not exist */
#define HBONE_ERR_LIMIT -107            /* a configured limit is reached */

/* Codes at or below this value are fatal for the object that returned them. */
#define HBONE_ERR_FATAL -200

/* protocol */
#define HBONE_ERR_PROTOCOL -201  /* the peer violated HTTP/2 or HBONE */
#define HBONE_ERR_CLOSED -202    /* the connection was closed */
#define HBONE_ERR_AUTHORITY -203 /* a malformed CONNECT authority (host:port) */

/* TLS */
#define HBONE_ERR_TLS_HANDSHAKE -301          /* the handshake failed (detail says why) */
#define HBONE_ERR_TLS_VERSION -302            /* the peer does not speak TLS 1.3 */
#define HBONE_ERR_TLS_ALPN -303               /* the peer did not agree on ALPN "h2" */
#define HBONE_ERR_TLS_NO_PEER_CERT -304       /* the peer presented no certificate */
#define HBONE_ERR_TLS_CERT_UNTRUSTED -305     /* the chain does not lead to a trusted root */
#define HBONE_ERR_TLS_CERT_EXPIRED -306       /* a certificate of the chain has expired */
#define HBONE_ERR_TLS_CERT_NOT_YET_VALID -307 /* a certificate of the chain is not valid yet */
#define HBONE_ERR_TLS_CERT_INVALID -308       /* a certificate could not be parsed or verified */
#define HBONE_ERR_TLS_ALERT -309              /* the peer aborted the handshake with an alert */
#define HBONE_ERR_TLS_RECORD -310             /* malformed or undecryptable TLS record */
#define HBONE_ERR_TLS_CHAIN_TOO_LONG -311     /* the chain exceeds the depth limit */
#define HBONE_ERR_TLS_MESSAGE_TOO_LARGE -312  /* a handshake message over the size limit */

/* identity: SPIFFE ID syntax */
#define HBONE_ERR_SPIFFE_SCHEME -401 /* does not start with "spiffe://" */
#define HBONE_ERR_SPIFFE_TRUST_DOMAIN_EMPTY -402
/* a trust domain byte outside [a-z0-9._-]: uppercase, a port, userinfo, % */
#define HBONE_ERR_SPIFFE_TRUST_DOMAIN_CHAR -403
#define HBONE_ERR_SPIFFE_TRUST_DOMAIN_TOO_LONG -404 /* over 255 bytes */
#define HBONE_ERR_SPIFFE_PATH_CHAR -405             /* not [a-zA-Z0-9._-] (query, fragment, %) */
#define HBONE_ERR_SPIFFE_PATH_EMPTY_SEGMENT -406    /* "//" */
#define HBONE_ERR_SPIFFE_PATH_DOT_SEGMENT -407      /* "/." or "/.." */
#define HBONE_ERR_SPIFFE_PATH_TRAILING_SLASH -408
#define HBONE_ERR_SPIFFE_TOO_LONG -409  /* over 2048 bytes */
#define HBONE_ERR_SPIFFE_NOT_ISTIO -410 /* path is not /ns/<namespace>/sa/<account> */
/* identity: X.509-SVID and trust */
#define HBONE_ERR_SVID_MALFORMED -420         /* not a parsable DER/PEM certificate */
#define HBONE_ERR_SVID_NO_URI_SAN -421        /* no (valid) SPIFFE URI SAN */
#define HBONE_ERR_SVID_MULTIPLE_URI_SANS -422 /* more than one URI SAN (strict mode) */
#define HBONE_ERR_SVID_URI_INVALID -423       /* URI SAN with a NUL or non-printable byte */
#define HBONE_ERR_SVID_CA -424                /* leaf has basicConstraints cA=true */
#define HBONE_ERR_SVID_KEY_USAGE -425     /* keyUsage missing, no digitalSignature, or a CA bit */
#define HBONE_ERR_SVID_EXT_KEY_USAGE -426 /* EKU present without serverAuth and clientAuth */
#define HBONE_ERR_ID_MISMATCH -430        /* the peer's SPIFFE ID is not one the caller expects */
#define HBONE_ERR_ID_TRUST_DOMAIN -431    /* the peer's trust domain is not accepted */
#define HBONE_ERR_ID_BUNDLE -432          /* the chain does not lead to its trust domain's bundle */

/* I/O and configuration data */
#define HBONE_ERR_PEM -501             /* no PEM block, or bad base64 */
#define HBONE_ERR_KEY -502             /* the private key cannot be loaded or does not match */
#define HBONE_ERR_NO_CERTIFICATE -503  /* the config has no certificate and key */
#define HBONE_ERR_NO_TRUST_BUNDLE -504 /* the config has no trust bundle */
#define HBONE_ERR_TIMEOUT -505         /* a handshake, keepalive or drain timer expired */
#define HBONE_ERR_IO -506              /* a socket call failed (errno says why) */

/* resources and internal */
#define HBONE_ERR_NOMEM -901    /* an allocation failed */
#define HBONE_ERR_INTERNAL -902 /* a dependency failed unexpectedly (a bug) */

/**
 * Return a static, human-readable description of an error code (never NULL;
 * unknown codes give "unknown error").
 */
HBONE_API const char *hbone_strerror(int code);

/**
 * Return 1 if @p code is fatal for the object that returned it, 0 otherwise.
 */
HBONE_API int hbone_err_is_fatal(int code);

#ifdef __cplusplus
}
#endif

#endif /* HBONE_ERROR_H */
