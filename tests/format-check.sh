#!/bin/bash
# The C sources follow .clang-format: print the places that do not.
#   usage: format-check.sh SOURCE_ROOT
set -euo pipefail
cd "$1"
shopt -s nullglob
files=(include/hbone/*.h lib/*/*.[ch] tests/*/*.[ch] examples/*.c examples/*/*.[ch] bench/*.[ch]
       fuzz/*.[ch])
clang-format --dry-run -Werror "${files[@]}"
echo "ok: ${#files[@]} files formatted as .clang-format says"
