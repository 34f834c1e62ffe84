/* SPDX-License-Identifier: MIT */
#include <hbone/error.h>

#include <stddef.h>

struct error_text {
    int code;
    const char *text;
};

static const struct error_text error_texts[] = {
    {HBONE_OK, "success"},
    {HBONE_ERR_INVALID_ARGUMENT, "invalid argument"},
    {HBONE_ERR_AGAIN, "operation would block"},
    {HBONE_ERR_BUFFER_TOO_SMALL, "buffer too small"},
    {HBONE_ERR_INVALID_STATE, "operation not allowed in this state"},
    {HBONE_ERR_CONFIG_FROZEN, "config is in use and cannot be changed"},
    {HBONE_ERR_NOT_FOUND, "not found"},
    {HBONE_ERR_LIMIT, "a configured limit is reached"},
    {HBONE_ERR_PROTOCOL, "protocol violation by the peer"},
    {HBONE_ERR_CLOSED, "connection closed"},
    {HBONE_ERR_AUTHORITY, "malformed CONNECT authority"},
    {HBONE_ERR_TLS_HANDSHAKE, "TLS handshake failed"},
    {HBONE_ERR_TLS_VERSION, "peer does not support TLS 1.3"},
    {HBONE_ERR_TLS_ALPN, "peer did not negotiate ALPN h2"},
    {HBONE_ERR_TLS_NO_PEER_CERT, "peer presented no certificate"},
    {HBONE_ERR_TLS_CERT_UNTRUSTED, "peer certificate does not chain to a trusted root"},
    {HBONE_ERR_TLS_CERT_EXPIRED, "peer certificate chain has expired"},
    {HBONE_ERR_TLS_CERT_NOT_YET_VALID, "peer certificate chain is not yet valid"},
    {HBONE_ERR_TLS_CERT_INVALID, "peer certificate is invalid"},
    {HBONE_ERR_TLS_ALERT, "peer sent a TLS alert"},
    {HBONE_ERR_TLS_RECORD, "malformed TLS record"},
    {HBONE_ERR_TLS_CHAIN_TOO_LONG, "peer certificate chain too long"},
    {HBONE_ERR_TLS_MESSAGE_TOO_LARGE, "peer sent a handshake message that is too large"},
    {HBONE_ERR_SPIFFE_SCHEME, "SPIFFE ID does not start with spiffe://"},
    {HBONE_ERR_SPIFFE_TRUST_DOMAIN_EMPTY, "SPIFFE ID has an empty trust domain"},
    {HBONE_ERR_SPIFFE_TRUST_DOMAIN_CHAR, "SPIFFE trust domain has a character outside [a-z0-9._-]"},
    {HBONE_ERR_SPIFFE_TRUST_DOMAIN_TOO_LONG, "SPIFFE trust domain longer than 255 bytes"},
    {HBONE_ERR_SPIFFE_PATH_CHAR, "SPIFFE ID path has a character outside [a-zA-Z0-9._-]"},
    {HBONE_ERR_SPIFFE_PATH_EMPTY_SEGMENT, "SPIFFE ID path has an empty segment"},
    {HBONE_ERR_SPIFFE_PATH_DOT_SEGMENT, "SPIFFE ID path has a . or .. segment"},
    {HBONE_ERR_SPIFFE_PATH_TRAILING_SLASH, "SPIFFE ID ends with a slash"},
    {HBONE_ERR_SPIFFE_TOO_LONG, "SPIFFE ID longer than 2048 bytes"},
    {HBONE_ERR_SPIFFE_NOT_ISTIO, "SPIFFE ID is not an Istio workload identity (/ns/<ns>/sa/<sa>)"},
    {HBONE_ERR_SVID_MALFORMED, "certificate cannot be parsed"},
    {HBONE_ERR_SVID_NO_URI_SAN, "certificate has no SPIFFE URI SAN"},
    {HBONE_ERR_SVID_MULTIPLE_URI_SANS, "certificate has more than one URI SAN"},
    {HBONE_ERR_SVID_URI_INVALID, "certificate URI SAN contains a NUL or non-printable byte"},
    {HBONE_ERR_SVID_CA, "leaf certificate is a CA (cA=true)"},
    {HBONE_ERR_SVID_KEY_USAGE,
     "leaf certificate key usage is not digitalSignature without CA bits"},
    {HBONE_ERR_SVID_EXT_KEY_USAGE,
     "leaf certificate extended key usage lacks serverAuth or clientAuth"},
    {HBONE_ERR_ID_MISMATCH, "peer SPIFFE ID is not an expected identity"},
    {HBONE_ERR_ID_TRUST_DOMAIN, "peer trust domain is not accepted"},
    {HBONE_ERR_ID_BUNDLE, "peer chain does not lead to the bundle of its trust domain"},
    {HBONE_ERR_PEM, "no valid PEM block"},
    {HBONE_ERR_KEY, "private key cannot be loaded or does not match the certificate"},
    {HBONE_ERR_NO_CERTIFICATE, "no certificate and key configured"},
    {HBONE_ERR_NO_TRUST_BUNDLE, "no trust bundle configured"},
    {HBONE_ERR_TIMEOUT, "timed out"},
    {HBONE_ERR_IO, "socket error"},
    {HBONE_ERR_NOMEM, "out of memory"},
    {HBONE_ERR_INTERNAL, "internal error"},
};

const char *hbone_strerror(int code)
{
    for (size_t i = 0; i < sizeof(error_texts) / sizeof(error_texts[0]); i++) {
        if (error_texts[i].code == code)
            return error_texts[i].text;
    }
    return "unknown error";
}

int hbone_err_is_fatal(int code)
{
    return code <= HBONE_ERR_FATAL;
}
