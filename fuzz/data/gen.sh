#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# gen.sh [OUTDIR] -- regenerate the fixed PKI of the TLS fuzz targets.
#
# The fuzz build has no test PKI at run time (tests/support/gen-pki.sh runs
# only for the test suite), and a fuzzer's corpus must keep meaning the same
# thing from run to run, so these few files are committed. Rerun this only to
# replace them (OUTDIR defaults to the directory of this script); the
# recorded handshake corpora then need recording again (docs/fuzzing.md).
#
#   ca.pem                  self-signed root, EC P-256 (the trust bundle)
#   server.pem, server.key  leaf for spiffe://cluster.local/ns/default/sa/server
#   client.pem, client.key  leaf for spiffe://cluster.local/ns/default/sa/client
#
# The leaves are shaped like Istio's (empty subject, one critical URI SAN,
# serverAuth and clientAuth) so that libhbone's strict X.509-SVID checks
# accept them. The validity runs from 2025 to 2126 with fixed dates: a
# fuzzer must not start failing its handshakes because a year has passed.
# Keys are PKCS#8 PEM. Every key here is a throw-away fuzzing key.
set -Eeuo pipefail

outdir=${1:-$(dirname -- "${BASH_SOURCE[0]}")}
command -v openssl >/dev/null 2>&1 || { echo "gen.sh: openssl not found" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT

# A private configuration for req and ca, so the system openssl.cnf cannot
# change what ends up in the certificates.
mkdir "$work/new"
: >"$work/index.txt"
cat >"$work/openssl.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
[ca]
default_ca = fuzz_ca
[fuzz_ca]
database = $work/index.txt
new_certs_dir = $work/new
serial = $work/serial
default_md = sha256
policy = any
preserve = yes
unique_subject = no
email_in_dn = no
copy_extensions = none
[any]
commonName = optional
EOF
export OPENSSL_CONF=$work/openssl.cnf

readonly from=20250101000000Z to=21260101000000Z

# quiet CMD...: run openssl, showing its output only if it fails.
quiet() {
    if ! openssl "$@" >"$work/log" 2>&1; then
        echo "gen.sh: openssl $1 failed:" >&2
        cat "$work/log" >&2
        exit 1
    fi
}

# key_and_csr NAME SUBJECT: P-256 key in PKCS#8 and a CSR for it.
key_and_csr() {
    quiet req -new -newkey EC -pkeyopt ec_paramgen_curve:P-256 -noenc \
        -keyout "$work/$1.key" -subj "$2" -out "$work/$1.csr"
}

key_and_csr ca "/CN=libhbone fuzz CA"
cat >"$work/ca.ext" <<'EOF'
[ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
EOF
quiet ca -batch -notext -rand_serial -selfsign -keyfile "$work/ca.key" \
    -in "$work/ca.csr" -out "$work/ca.pem" -startdate "$from" -enddate "$to" \
    -extfile "$work/ca.ext" -extensions ext

for name in server client; do
    key_and_csr "$name" "/"
    cat >"$work/$name.ext" <<EOF
[ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = critical,URI:spiffe://cluster.local/ns/default/sa/$name
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF
    quiet ca -batch -notext -rand_serial -cert "$work/ca.pem" -keyfile "$work/ca.key" \
        -in "$work/$name.csr" -out "$work/$name.pem" -startdate "$from" -enddate "$to" \
        -extfile "$work/$name.ext" -extensions ext
done

mkdir -p -- "$outdir"
# The CA key is not kept: nothing is issued after generation.
for f in ca.pem server.pem server.key client.pem client.key; do
    cp -- "$work/$f" "$outdir/$f"
done
# Readable by whoever runs the fuzzers (mktemp and openssl made them private).
chmod 644 "${outdir}"/*.pem "${outdir}"/*.key
echo "gen.sh: wrote ca.pem, server.pem, server.key, client.pem, client.key to $outdir"
