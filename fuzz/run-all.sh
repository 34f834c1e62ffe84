#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# run-all.sh [SECONDS] [BUILD_DIR] [TARGET...] -- run every libFuzzer target
# (or only the TARGETs named, e.g. conn_client) for SECONDS each (default
# 600), from BUILD_DIR (default build-fuzz, configured with
# -Dfuzzing=libfuzzer; see docs/fuzzing.md).
#
# Targets are found from the sources, fuzz/fuzz_*.c files that define
# LLVMFuzzerTestOneInput, so a new target is run as soon as it exists; one
# that was not built is an error rather than silently skipped. Each target
# reads its committed corpus fuzz/corpus/<name>/ and writes what it finds
# into a scratch corpus, so the tree is never touched. Per target it prints
# the executions (stat::number_of_executed_units), libFuzzer's final
# coverage (cov: of the last status line) and the size of the corpus it
# ended with (corp:).
#
# Findings (crash-, leak-, timeout-, oom- files) are kept in
# $FUZZ_ARTIFACTS (default BUILD_DIR/fuzz-artifacts), each target's log next
# to them; the script carries on with the other targets and exits 1 at the
# end if any target found something or could not run.
#
# Environment: FUZZ_ARTIFACTS as above; FUZZ_KEEP_CORPUS=DIR keeps each
# target's scratch corpus in DIR/<name> (to merge from, see
# docs/fuzzing.md) instead of deleting it.
set -uo pipefail

seconds=${1:-600}
build=${2:-build-fuzz}
shift $(($# < 2 ? $# : 2))
chosen=("$@")
here=$(cd "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
artifacts=${FUZZ_ARTIFACTS:-$build/fuzz-artifacts}

die() {
    printf 'run-all.sh: %s\n' "$*" >&2
    exit 2
}

[[ $seconds =~ ^[0-9]+$ && $seconds -gt 0 ]] || die "SECONDS must be a positive integer, not '$seconds'"
[[ -d $build/fuzz ]] || die "$build/fuzz does not exist: build the libFuzzer build first (docs/fuzzing.md)"
mkdir -p -- "$artifacts" || die "cannot create $artifacts"
artifacts=$(cd -- "$artifacts" && pwd)

# Every fuzz_*.c with the entry point: shared files (fuzz_common.c) have none.
targets=()
for src in "$here"/fuzz_*.c; do
    if grep -q '^int LLVMFuzzerTestOneInput(' "$src"; then
        name=${src##*/fuzz_}
        targets+=("${name%.c}")
    fi
done
[[ ${#targets[@]} -gt 0 ]] || die "no targets found in $here"
if [[ ${#chosen[@]} -gt 0 ]]; then
    for name in "${chosen[@]}"; do
        [[ " ${targets[*]} " == *" $name "* ]] || die "no target '$name' (there are: ${targets[*]})"
    done
    targets=("${chosen[@]}")
fi

scratch_root=$(mktemp -d)
trap 'rm -rf -- "$scratch_root"' EXIT

failed=()
summary=()
for name in "${targets[@]}"; do
    bin=$build/fuzz/fuzz_$name
    if [[ ! -x $bin ]]; then
        printf 'fuzz_%s: not built (%s missing: is it in fuzz_targets in fuzz/meson.build, and is %s a -Dfuzzing=libfuzzer build?)\n' \
            "$name" "$bin" "$build"
        failed+=("$name (not built)")
        summary+=("$(printf '%-20s %12s %8s %8s  %s' "$name" - - - 'NOT BUILT')")
        continue
    fi
    scratch=$scratch_root/$name
    mkdir -p -- "$scratch"
    corpus=()
    [[ -d $here/corpus/$name ]] && corpus=("$here/corpus/$name")
    log=$artifacts/$name.log
    # No -max_len: libFuzzer then allows inputs as large as the largest
    # corpus file, at least 4096 bytes, which suits every target's seeds.
    # -timeout: one input of these targets takes milliseconds; a minute is
    # a hang, not a slow machine.
    before=$(find "$artifacts" -maxdepth 1 -type f -name "$name-*" ! -name '*.log' | wc -l)
    status=0
    "$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=60 -print_final_stats=1 \
        -artifact_prefix="$artifacts/$name-" "$scratch" "${corpus[@]}" >"$log" 2>&1 || status=$?

    execs=$(awk '/^stat::number_of_executed_units:/ {print $2}' "$log" | tail -n 1)
    # libFuzzer's last status line: "#N  DONE  cov: C ft: F corp: K/SIZE ..."
    last=$(grep -E '^#[0-9]+.* cov: ' "$log" | tail -n 1)
    cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
    files=$(sed -nE 's/.* corp: ([0-9]+)\/.*/\1/p' <<<"$last")
    after=$(find "$artifacts" -maxdepth 1 -type f -name "$name-*" ! -name '*.log' | wc -l)
    found=$((after - before))
    verdict=ok
    if [[ $status -ne 0 || $found -gt 0 ]]; then
        verdict="FINDING (status $status)"
        failed+=("$name")
        tail -n 40 "$log"
    fi
    printf 'fuzz_%s: %s executions, cov %s, corpus %s inputs: %s\n' \
        "$name" "${execs:-?}" "${cov:-?}" "${files:-?}" "$verdict"
    summary+=("$(printf '%-20s %12s %8s %8s  %s' "$name" "${execs:-?}" "${cov:-?}" "${files:-?}" "$verdict")")
    if [[ -n ${FUZZ_KEEP_CORPUS:-} ]]; then
        mkdir -p -- "$FUZZ_KEEP_CORPUS/$name" && cp -- "$scratch"/* "$FUZZ_KEEP_CORPUS/$name/" 2>/dev/null
    fi
    rm -rf -- "$scratch"
    # A clean run's log holds nothing worth keeping.
    [[ $verdict == ok ]] && rm -f -- "$log"
done

printf '\n%-20s %12s %8s %8s  %s\n' target executions cov corpus result
printf '%s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
    printf '\nfindings or errors in: %s\nartifacts and logs: %s\n' "${failed[*]}" "$artifacts"
    printf 'reproduce with: %s/fuzz/fuzz_<name> %s/<name>-crash-...\n' "$build" "$artifacts"
    exit 1
fi
printf '\nno findings (%d targets, %s s each)\n' "${#targets[@]}" "$seconds"
