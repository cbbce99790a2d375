#!/usr/bin/env bash
# Usage: scripts/tsan.sh [ctest arguments...]   (default: -L 'unit|integration')
# Builds the tsan preset (clang, ThreadSanitizer) and runs the unit and integration tests under
# it. Clean means: every test passes and no program wrote a TSan report. halt_on_error=1 makes
# the first report end the program (exit 66), which fails the test that checks its exit; every
# report also goes to build/tsan/tsan-reports/ (log_path), so a report from a program whose exit
# no test checks (a simulator, a daemon killed later) still fails this script, printed in full.
# tests/tsan.supp holds the only suppressions: third-party libraries that are not instrumented.
set -euo pipefail
cd "$(dirname "$0")/.."

start=$(date +%s)
scripts/build.sh tsan
reports=$PWD/build/tsan/tsan-reports
rm -rf "$reports"
mkdir -p "$reports"
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 log_path=$reports/tsan \
suppressions=$PWD/tests/tsan.supp ${TSAN_OPTIONS:-}"
status=0
if [ $# -eq 0 ]; then
    set -- -L 'unit|integration'
fi
ctest --preset tsan -j"$(nproc)" "$@" || status=$?
if compgen -G "$reports/tsan.*" >/dev/null; then
    echo "tsan.sh: ThreadSanitizer reports (one file per program that reported):" >&2
    for f in "$reports"/tsan.*; do
        echo "---- $f" >&2
        cat "$f" >&2
    done
    status=1
fi
echo "tsan.sh: finished in $(($(date +%s) - start)) s with status $status"
exit $status
