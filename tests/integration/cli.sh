#!/usr/bin/env bash
# Usage: cli.sh HYKEX OPENSSL_LIBDIR — the hykex command line: exit codes and outputs.
set -euo pipefail
hykex=$1
libdir=$(readlink -f "$2")
fail() { echo "FAIL: $*"; exit 1; }

# Runs without LD_LIBRARY_PATH, and the process really uses our libcrypto (dladdr).
out=$(env -u LD_LIBRARY_PATH "$hykex" version)
echo "$out"
grep -q '^openssl    OpenSSL 3\.[5-9]' <<<"$out" || fail "version does not report OpenSSL >= 3.5"
crypto=$(sed -nE 's/^libcrypto  //p' <<<"$out")
[ "$(dirname "$(readlink -f "$crypto")")" = "$libdir" ] || fail "libcrypto loaded from $crypto"
grep -q '^libcurl    libcurl/' <<<"$out" || fail "no libcurl line"

u1=$("$hykex" uuid); u2=$("$hykex" uuid)
[[ $u1 =~ ^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$ ]] \
    || fail "uuid output '$u1'"
[ "$u1" != "$u2" ] || fail "two uuids are equal"

set +e
"$hykex" >/dev/null 2>&1; [ $? -eq 2 ] || fail "no arguments must exit 2"
"$hykex" frobnicate 2>/tmp/hykex-cli-err.$$; rc=$?
set -e
[ $rc -eq 2 ] || fail "unknown command must exit 2, got $rc"
grep -q "unknown command 'frobnicate'" /tmp/hykex-cli-err.$$ || fail "unknown command message"
rm -f /tmp/hykex-cli-err.$$
"$hykex" --help | grep -q '^usage: hykex' || fail "--help"
echo "cli: all checks passed"
