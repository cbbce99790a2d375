#!/usr/bin/env bash
# Usage: scripts/test.sh [ctest arguments...]
# The one command for the tests on a fresh Debian machine: installs what is missing
# (scripts/bootstrap.sh), builds the asan preset (ASan + UBSan) and runs every ctest test
# (labels unit, integration, fuzz); then builds the release preset and checks that its installed
# programs are hardened (PIE, full RELRO, NX stack, stack protector, FORTIFY). Exits non-zero on
# any failure. With ctest arguments only the asan tests run, with those arguments.
# Example: scripts/test.sh -L unit
set -euo pipefail
cd "$(dirname "$0")/.."

start=$(date +%s)
scripts/bootstrap.sh
scripts/build.sh asan
# detect_leaks: LeakSanitizer on; abort_on_error: a finding is a failure, never a warning.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
ctest --preset asan -j"$(nproc)" "$@" || status=$?
if [ $# -eq 0 ]; then
    scripts/build.sh release
    ctest --preset release -R integration.hardening || status=$?
fi
echo "test.sh: finished in $(($(date +%s) - start)) s with status $status"
exit $status
