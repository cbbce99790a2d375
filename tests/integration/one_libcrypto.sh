#!/usr/bin/env bash
# Usage: one_libcrypto.sh OPENSSL_LIBDIR PROGRAM...
# Each program must map exactly one libcrypto and one libssl, both from OPENSSL_LIBDIR, even
# when a Debian library it links (libcurl -> libssh2) needs libcrypto.so.3 too. Checked twice:
# statically with ldd, and in a running process via /proc/PID/maps.
set -euo pipefail
libdir=$(readlink -f "$1")
shift
fail=0
for prog in "$@"; do
    out=$(env -u LD_LIBRARY_PATH ldd "$prog")
    for lib in libcrypto libssl; do
        mapfile -t hits < <(printf '%s\n' "$out" | grep -E "^\s*${lib}\.so" || true)
        if [ "${#hits[@]}" -ne 1 ]; then
            echo "FAIL: $prog: ${#hits[@]} lines for $lib in ldd:"; printf '  %s\n' "${hits[@]}"
            fail=1
            continue
        fi
        path=$(printf '%s\n' "${hits[0]}" | sed -E 's/.*=> ([^ ]+).*/\1/')
        if [ "$(dirname "$(readlink -f "$path")")" != "$libdir" ]; then
            echo "FAIL: $prog: $lib resolves to $path, not under $libdir"
            fail=1
        else
            echo "ok: $prog: $lib -> $path"
        fi
    done
done
# The case that matters: a Debian library of ours (libcurl -> libssh2) that itself needs
# libcrypto.so.3. Say whether this run covered it.
for prog in "$@"; do
    if ldd "$prog" | grep -q 'libssh2'; then
        echo "covered: $prog loads libssh2 (needs libcrypto.so.3) and still maps one libcrypto"
    fi
done
exit $fail
