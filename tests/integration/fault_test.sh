#!/usr/bin/env bash
# Runs fault_test.py on loopback, and again in the namespace lab when root can build one.
# Usage: fault_test.sh BIN_DIR REPO_ROOT
set -euo pipefail
bin=$1 root=$2
python3 "$root/tests/integration/fault_test.py" "$bin" "$root"
if [ "$(id -u)" -ne 0 ]; then
    echo "fault_test.sh: lab run skipped: building network namespaces needs root"
    exit 0
fi
# A lab of our own (its run id in HYKEX_LAB for every netlab.sh call), removed on exit.
HYKEX_LAB=$("$root/scripts/netlab.sh" up)
export HYKEX_LAB
trap '"$root/scripts/netlab.sh" down "$HYKEX_LAB"' EXIT
python3 "$root/tests/integration/fault_test.py" "$bin" "$root" --lab
