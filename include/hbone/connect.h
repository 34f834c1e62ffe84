/* SPDX-License-Identifier: MIT */
/*
 * libhbone CONNECT requests: the :authority of a tunnel and the headers
 * ztunnel sends with it (forwarded, traceparent).
 *
 * An HBONE server reads :authority strictly: dotted-decimal IPv4
 * ("10.0.0.2:8080"), bracketed IPv6 without a zone ("[fd00::2]:8080"), or,
 * only where the application enables it, a DNS hostname ("svc.ns:80"); the
 * port is decimal, 1-65535, without leading zeros. Anything else is answered
 * with 400 before the application sees it.
 */
#ifndef HBONE_CONNECT_H
#define HBONE_CONNECT_H

#include <stddef.h>
#include <stdint.h>

#include <hbone/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What an authority names. */
#define HBONE_AUTHORITY_IPV4 4
#define HBONE_AUTHORITY_IPV6 6
#define HBONE_AUTHORITY_HOSTNAME 1

/* hbone_authority_parse() flags */
#define HBONE_AUTHORITY_ALLOW_HOSTNAME 0x1

/* Longest authority libhbone formats: "[" IPv6 "]:" port, or a 253-byte
 * hostname with ":65535", plus the NUL. */
#define HBONE_AUTHORITY_MAX 261

/**
 * Parse a CONNECT :authority. On success *host (without brackets; points
 * into @p authority, not NUL-terminated) and *host_len name the host, *port
 * the port and *kind one of HBONE_AUTHORITY_*; any output may be NULL.
 * Hostnames (RFC 1123 labels of [a-zA-Z0-9-], 253 bytes at most, no
 * trailing dot) are accepted only with HBONE_AUTHORITY_ALLOW_HOSTNAME.
 *
 * Returns 0, HBONE_ERR_AUTHORITY (with *bad_offset, if not NULL, at the
 * first offending byte) or HBONE_ERR_INVALID_ARGUMENT.
 */
HBONE_API int hbone_authority_parse(const char *authority, size_t len, int flags, const char **host,
                                    size_t *host_len, uint16_t *port, int *kind,
                                    size_t *bad_offset);

/**
 * Format "<host>:<port>" into @p out (NUL-terminated; *out_len, if not
 * NULL, receives the length without the NUL). An IPv6 address is written in
 * brackets; an IPv4 address or hostname as is. @p host must itself be a
 * valid IPv4 or IPv6 address or hostname, and @p port 1-65535.
 *
 * Returns 0, HBONE_ERR_AUTHORITY, HBONE_ERR_BUFFER_TOO_SMALL or
 * HBONE_ERR_INVALID_ARGUMENT.
 */
HBONE_API int hbone_authority_format(const char *host, size_t host_len, uint16_t port, char *out,
                                     size_t cap, size_t *out_len);

/**
 * Format the value of the forwarded header as ztunnel sends it:
 * for="<ip>:<port>" (IPv6 in brackets inside the quotes), followed by
 * ;host=<hostname> when @p service_host is not NULL. @p ip is the textual
 * source address of the application's connection.
 *
 * Returns 0, HBONE_ERR_AUTHORITY (bad ip, port or hostname),
 * HBONE_ERR_BUFFER_TOO_SMALL or HBONE_ERR_INVALID_ARGUMENT.
 */
HBONE_API int hbone_forwarded_format(const char *ip, size_t ip_len, uint16_t port,
                                     const char *service_host, size_t service_host_len, char *out,
                                     size_t cap, size_t *out_len);

/** Length of a traceparent value: "00-" 32 hex "-" 16 hex "-00". */
#define HBONE_TRACEPARENT_LEN 55

/**
 * Format a W3C traceparent value "00-<trace id>-<parent id>-00" from a
 * 16-byte trace id and an 8-byte parent id (lowercase hex) into @p out,
 * which needs HBONE_TRACEPARENT_LEN + 1 bytes. With @p trace_id and
 * @p parent_id NULL, fresh random ids are used (as ztunnel does per
 * connection). All-zero ids are invalid in W3C trace context and refused.
 *
 * Returns 0, HBONE_ERR_INVALID_ARGUMENT, HBONE_ERR_BUFFER_TOO_SMALL or
 * HBONE_ERR_INTERNAL (no randomness available).
 */
HBONE_API int hbone_traceparent_format(const uint8_t *trace_id, const uint8_t *parent_id, char *out,
                                       size_t cap);

/* Baggage keys ztunnel writes, in the order it writes them. The workload's
 * key names its kind: k8s.deployment.name, k8s.cronjob.name, k8s.pod.name or
 * k8s.job.name. */
#define HBONE_BAGGAGE_CLUSTER "k8s.cluster.name"
#define HBONE_BAGGAGE_NAMESPACE "k8s.namespace.name"
#define HBONE_BAGGAGE_DEPLOYMENT "k8s.deployment.name"
#define HBONE_BAGGAGE_SERVICE "service.name"
#define HBONE_BAGGAGE_VERSION "service.version"
#define HBONE_BAGGAGE_REGION "cloud.region"
#define HBONE_BAGGAGE_ZONE "cloud.availability_zone"

/**
 * Format a baggage value "k1=v1,k2=v2" from @p n key/value pairs, in order,
 * as ztunnel does: pairs with an empty value are left out, nothing is
 * percent-encoded. Keys must be HTTP tokens and values W3C baggage octets
 * (printable ASCII without space, '"', ',', ';' or '\'), so that nothing
 * can inject a pair. The result may be empty (ztunnel still sends the
 * header). Returns 0, HBONE_ERR_INVALID_ARGUMENT (a bad key or value) or
 * HBONE_ERR_BUFFER_TOO_SMALL.
 */
HBONE_API int hbone_baggage_format(const char *const *keys, const size_t *key_lens,
                                   const char *const *values, const size_t *value_lens, size_t n,
                                   char *out, size_t cap, size_t *out_len);

/**
 * Find @p key in a baggage value (as ztunnel reads one: pairs split on ','
 * then on '='; an empty value counts as absent). *@p value points into
 * @p baggage. Returns 0, HBONE_ERR_NOT_FOUND or HBONE_ERR_INVALID_ARGUMENT.
 */
HBONE_API int hbone_baggage_get(const char *baggage, size_t len, const char *key, size_t key_len,
                                const char **value, size_t *value_len);

#ifdef __cplusplus
}
#endif

#endif /* HBONE_CONNECT_H */
