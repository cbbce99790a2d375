#!/usr/bin/env bash
# The installed programs are hardened: reads their ELF headers (readelf) and checks, for each
# of hykexd, hykex and hykex-qkdsim: position-independent executable (ELF type DYN with an
# interpreter), full RELRO (a GNU_RELRO segment and BIND_NOW), a non-executable stack
# (GNU_STACK without E), the stack protector (__stack_chk_fail imported) and FORTIFY (some
# __*_chk function imported).
# Usage: hardening.sh BUILD_DIR   (a build with HYKEX_HARDEN=ON: the release preset)
set -euo pipefail
build=$1
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
fails=0
for prog in hykexd hykex hykex-qkdsim; do
    f=$prefix/bin/$prog
    h=$(readelf -h "$f")
    l=$(readelf -lW "$f")
    dyn=$(readelf -dW "$f")
    syms=$(readelf --dyn-syms -W "$f")
    check() { # name, condition result
        if [ "$2" = 1 ]; then
            echo "ok   $prog: $1"
        else
            echo "FAIL $prog: $1"
            fails=$((fails + 1))
        fi
    }
    check "PIE" "$(grep -q 'Type:.*DYN' <<<"$h" && grep -q INTERP <<<"$l" && echo 1 || echo 0)"
    check "full RELRO" "$(grep -q GNU_RELRO <<<"$l" && grep -qE 'BIND_NOW|FLAGS_1.*NOW' <<<"$dyn" && echo 1 || echo 0)"
    check "non-executable stack" "$(grep GNU_STACK <<<"$l" | grep -qv 'RWE' && echo 1 || echo 0)"
    check "stack protector" "$(grep -q '__stack_chk_fail' <<<"$syms" && echo 1 || echo 0)"
    check "FORTIFY" "$(grep -qE '__[a-z_]+_chk' <<<"$syms" && echo 1 || echo 0)"
done
[ "$fails" -eq 0 ] || {
    echo "$fails hardening checks failed"
    exit 1
}
echo "all programs hardened"
