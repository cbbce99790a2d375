#!/usr/bin/env bash
# Usage: scripts/build.sh [dev|asan|tsan|release|fuzz]   (default: release)
# Configures (once) and builds into build/<preset>/; programs land in build/<preset>/bin/.
# Needs what scripts/bootstrap.sh installs; run that first on a new machine.
set -euo pipefail
cd "$(dirname "$0")/.."

preset=${1:-release}
case "$preset" in
    dev | asan | tsan | release | fuzz) ;;
    -h | --help)
        sed -n '2,4s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
    *)
        echo "build.sh: unknown preset '$preset' (dev, asan, tsan, release, fuzz)" >&2
        exit 2
        ;;
esac

if [ ! -f "build/$preset/CMakeCache.txt" ]; then
    cmake --preset "$preset" >&2
fi
cmake --build --preset "$preset" -j"$(nproc)" >&2
echo "build.sh: $preset build ready in build/$preset (programs in build/$preset/bin)" >&2
