#!/usr/bin/env bash
# Usage: scripts/package.sh [--out DIR] [--no-bootstrap]
#
# Builds the Debian packages of this machine's release (debhelper, debian/): hykex (hykexd,
# hykex, hykex-qkdsim, the systemd unit, man pages), libhykex0 and libhykex-dev, into
# DIR (default dist/<codename>/), then runs lintian on them (its report: DIR/lintian.txt).
#   - Debian 13: links the system's OpenSSL 3.5.
#   - Debian 12: links the OpenSSL 3.5 that scripts/bootstrap.sh builds into ~/.cache/hykex and
#     puts its libcrypto/libssl into libhykex0 under /usr/lib/<triplet>/hykex/ (docs/install.md).
# The source is copied to a scratch folder first, so the work tree stays clean. Installs what it
# needs (scripts/bootstrap.sh, then debhelper, lintian, scdoc, patchelf) unless --no-bootstrap.
# The version is the project's plus +deb<release> (0.1.0+deb12), so both releases' packages can
# sit in one folder.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
say() { echo "package.sh: $*" >&2; }

out="" bootstrap=1
while [ $# -gt 0 ]; do
    case $1 in
        --out) out=$2; shift 2 ;;
        --no-bootstrap) bootstrap=0; shift ;;
        -h | --help) sed -n '2,15s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "package.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done

PACKAGE_TOOLS=(debhelper lintian scdoc patchelf fakeroot)
if [ "$bootstrap" = 1 ]; then
    scripts/bootstrap.sh >&2
    missing=()
    for p in "${PACKAGE_TOOLS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing ${missing[*]}"
        sudo_=(); [ "$(id -u)" -eq 0 ] || sudo_=(sudo)
        "${sudo_[@]}" apt-get update -q >&2
        "${sudo_[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
            --no-install-recommends "${missing[@]}" >&2
    fi
fi

. /etc/os-release
release=${VERSION_ID%%.*}
codename=${VERSION_CODENAME:-debian$release}
out=${out:-$root/dist/$codename}
mkdir -p "$out"
out=$(cd "$out" && pwd)

# OpenSSL: the system's when >= 3.5, else the bootstrap copy (debian/rules decides the same way).
if ! pkg-config --atleast-version=3.5 openssl 2>/dev/null; then
    . scripts/lib.sh
    ossl=$(hx_openssl)
    export HYKEX_OPENSSL_ROOT=${ossl%/bin/openssl}
    say "OpenSSL 3.5 from $HYKEX_OPENSSL_ROOT, carried privately by libhykex0"
fi

# libmceliece, libntruprime: Debian 13's -dev packages, else the copy scripts/bootstrap.sh
# unpacked (its headers and static archives; the build profile drops the two Build-Depends).
if [ ! -f /usr/include/mceliece.h ] || [ ! -f /usr/include/ntruprime.h ]; then
    pqc=$(for d in "${HYKEX_DEPS:-$HOME/.cache/hykex}"/pqc-*/.hykex-complete; do
              [ -f "$d" ] && dirname "$d"; done | sort -V | tail -n1)
    [ -n "$pqc" ] || { say "no libmceliece/libntruprime: run scripts/bootstrap.sh"; exit 1; }
    export HYKEX_PQC_ROOT=$pqc
    export DEB_BUILD_PROFILES="pkg.hykex.cached-pqc${DEB_BUILD_PROFILES:+ $DEB_BUILD_PROFILES}"
    say "libmceliece, libntruprime from $HYKEX_PQC_ROOT (linked statically)"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/hykex-package.XXXXXX")
trap 'rm -rf "$work"' EXIT
src=$work/hykex
mkdir -p "$src"
tar -C "$root" --exclude=./build --exclude=./dist --exclude=./.git --exclude='./obj-*' \
    --exclude=./bench/results -cf - . | tar -C "$src" -xf -
version=$(dpkg-parsechangelog -l "$src/debian/changelog" -S Version)
sed -i "1s/($version)/($version+deb$release)/" "$src/debian/changelog"

say "building $version+deb$release for $PRETTY_NAME with $(nproc) jobs"
t0=$(date +%s)
(cd "$src" && DEB_BUILD_OPTIONS="parallel=$(nproc) ${DEB_BUILD_OPTIONS:-}" \
    dpkg-buildpackage -b -uc -us) >"$work/build.log" 2>&1 || {
    tail -n 40 "$work/build.log" >&2
    say "dpkg-buildpackage failed"
    exit 1
}
rm -f "$out"/*.deb "$out"/*.ddeb
mv "$work"/*.deb "$out"/
cp "$work/build.log" "$out/build.log"
say "built in $(($(date +%s) - t0)) s:"
ls -1 "$out"/*.deb >&2

if command -v lintian >/dev/null; then
    # --suppress-tags nothing: every tag is shown; debian/*.lintian-overrides explain the accepted ones.
    lintian --info --display-info --pedantic "$out"/*.deb >"$out/lintian.txt" 2>&1 || true
    say "lintian: $(grep -c '^E:' "$out/lintian.txt" || true) errors, $(grep -c '^W:' "$out/lintian.txt" || true) warnings, $(grep -c '^[IP]:' "$out/lintian.txt" || true) info/pedantic ($out/lintian.txt)"
fi
