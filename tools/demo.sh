#!/bin/bash
# Run the demo with a freshly generated SPIFFE PKI.
#   usage: demo.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}

pki=$(mktemp -d)
trap 'rm -rf "$pki"' EXIT
echo "generating a fresh test PKI (root, intermediate, SPIFFE leaves) in $pki"
bash tests/support/gen-pki.sh "$pki/pki"
echo
"$build/examples/hbone-demo" "$pki/pki"
