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
trap '"$root/scripts/netlab.sh" down' EXIT
"$root/scripts/netlab.sh" up
python3 "$root/tests/integration/fault_test.py" "$bin" "$root" --lab
