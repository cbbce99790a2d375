#!/usr/bin/env bash
# Format check (clang-format) and banned-function check (curl's list) over our C sources.
# Exit 0 when clean; prints every finding otherwise. --fix rewrites the formatting in place.
set -euo pipefail
cd "$(dirname "$0")/.."

fix=0
[ "${1:-}" = "--fix" ] && fix=1

mapfile -t files < <(git ls-files -co --exclude-standard -- '*.c' '*.h' | grep -v '^build/' \
                     | while read -r f; do [ -f "$f" ] && echo "$f"; done)
status=0

fmt=$(command -v clang-format || true)
if [ -z "$fmt" ]; then
    echo "lint: clang-format not found (scripts/bootstrap.sh installs it)" >&2
    exit 1
fi
if [ "$fix" = 1 ]; then
    "$fmt" -i "${files[@]}"
elif ! "$fmt" --dry-run --Werror "${files[@]}" 2>/tmp/hykex-lint.$$; then
    echo "lint: formatting differs from .clang-format (run scripts/lint.sh --fix):"
    grep -E '^[^ ].*: (error|warning):' /tmp/hykex-lint.$$ | head -n 40
    status=1
fi
rm -f /tmp/hykex-lint.$$

# Banned: unbounded or unchecked string and number functions.
banned='\b(atoi|atol|atoll|sprintf|vsprintf|strcpy|strcat|strncat|strtok|gets)[[:space:]]*\('
# Strip // comments and string literals crudely; look only at code lines.
if hits=$(grep -nE "$banned" "${files[@]}" | grep -vE '^[^:]+:[0-9]+:\s*(\*|/\*|//)'); then
    echo "lint: banned functions (use snprintf, strtol/strtoull with range checks, memcpy):"
    echo "$hits"
    status=1
fi

[ "$status" = 0 ] && echo "lint: ${#files[@]} files clean"
exit $status
