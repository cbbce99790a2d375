#!/usr/bin/env bash
# Usage: bench/run.sh [--quick]
# Builds the release preset and runs the benchmarks: bench/crypto (our crypto beside openssl
# speed), bench/network.py (hykexd from applications on loopback) and its production rows
# against L (--production-only: key-pair modes, 1 and 2 workers per pool, the store). Tables on
# stdout, JSON in bench/results/. --quick: fewer and shorter runs (a smoke test of a few
# minutes, not gated).
set -euo pipefail
cd "$(dirname "$0")/.."
quick=""
[ "${1:-}" = "--quick" ] && quick="--quick"
scripts/bootstrap.sh >/dev/null
scripts/build.sh release
bench/crypto $quick
python3 bench/network.py build/release/bin $quick
python3 bench/network.py build/release/bin $quick --production-only
