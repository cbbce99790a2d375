#!/usr/bin/env bash
# Installs everything hykex needs on Debian 12 or 13, idempotently:
#   - Debian packages (compiler, cmake, libraries, test and fuzz tools, prometheus/promtool);
#   - OpenSSL >= 3.5: the system one if pkg-config finds it, otherwise Debian 13's
#     source package built once into ${HYKEX_DEPS:-$HOME/.cache/hykex}/openssl-<version>;
#   - libmceliece and libntruprime (Classic McEliece, sntrup): the system's (Debian 13:
#     libmceliece-dev, libntruprime-dev) if present, otherwise Debian 13's -dev packages unpacked
#     once into ${HYKEX_DEPS}/pqc-<versions> (only their headers and static archives are used).
# A second run installs nothing and prints where OpenSSL is.
# --containers: also what scripts/container-test.sh needs (podman, podman-compose, runc, CNI
# plugins with container DNS, debootstrap).
# Environment: HYKEX_DEPS (cache folder), HYKEX_SKIP_APT=1 (do not touch apt).
set -euo pipefail

say() { printf '[bootstrap] %s\n' "$*" >&2; }
die() { printf '[bootstrap] error: %s\n' "$*" >&2; exit 1; }

DEPS=${HYKEX_DEPS:-$HOME/.cache/hykex}
OPENSSL_MIN=3.5

PACKAGES=(
    build-essential dpkg-dev cmake ninja-build pkg-config git ca-certificates
    perl xz-utils
    libjson-c-dev libyajl-dev libsqlite3-dev libcurl4-gnutls-dev libmicrohttpd-dev
    libcmocka-dev libgnutls28-dev libevent-dev
    clang libclang-rt-dev clang-format clang-tidy cppcheck
    iproute2 curl python3 gnuplot-nox scdoc
)
# The metrics test (tests/integration/metrics_test.py): promtool checks hykexd's exposition and
# docs/metrics.md's alert rules, a real prometheus scrapes a two-node network on its own port.
# Always installed, so CI (scripts/test.sh) runs it. On a machine booted with systemd, Debian's
# package also enables its own prometheus.service (port 9090); `systemctl disable --now
# prometheus` if that is unwanted: the test does not use it.
MONITORING_PACKAGES=(prometheus)
PACKAGES+=("${MONITORING_PACKAGES[@]}")
CONTAINER_PACKAGES=(
    podman podman-compose runc containernetworking-plugins
    golang-github-containernetworking-plugin-dnsname debootstrap uidmap
)
if [ "${1:-}" = --containers ]; then
    PACKAGES+=("${CONTAINER_PACKAGES[@]}")
fi

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
            missing+=("$p")
        fi
    done
    if [ ${#missing[@]} -eq 0 ]; then
        say "Debian packages: all ${#PACKAGES[@]} present"
        return
    fi
    [ "${HYKEX_SKIP_APT:-0}" = 1 ] && die "missing packages and HYKEX_SKIP_APT=1: ${missing[*]}"
    say "installing ${#missing[@]} Debian packages: ${missing[*]}"
    as_root apt-get update -q >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}" >&2
}

# version_ge A B: A >= B for dotted versions.
version_ge() {
    [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]
}

# The newest completed prefix under $DEPS (highest version), if any.
find_cached_openssl() {
    local d
    for d in "$DEPS"/openssl-*/.hykex-complete; do
        if [ -f "$d" ]; then printf '%s\n' "${d%/.hykex-complete}"; fi
    done | sort -V | tail -n1
}

# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

build_openssl() {
    local mirror work lists ver v prefix srcdir keyring
    mirror=$(debian_mirror)
    work=$(mktemp -d "${TMPDIR:-/tmp}/hykex-openssl.XXXXXX")
    BOOTSTRAP_TMP=$work
    lists="$work/lists"
    mkdir -p "$lists/partial" "$work/cache/archives/partial" "$work/src"
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    printf 'deb-src [signed-by=%s] %s trixie main\n' "$keyring" "$mirror" >"$work/sources.list"
    local aptopts=(-o "Dir::Etc::SourceList=$work/sources.list"
                   -o "Dir::Etc::SourceParts=/dev/null"
                   -o "Dir::State::Lists=$lists"
                   -o "Dir::Cache=$work/cache"
                   -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache="
                   -o "APT::Sandbox::User=root")
    say "reading Debian 13 (trixie) source index from the machine's mirror"
    apt-get "${aptopts[@]}" update -q >&2 || die "apt-get update of the trixie source index failed"
    mapfile -t versions < <(apt-cache "${aptopts[@]}" showsrc openssl 2>/dev/null \
        | awk '/^Package: /{p=$2} /^Version: /{if (p=="openssl") print $2}' | sort -Vr -u)
    [ ${#versions[@]} -gt 0 ] || die "no openssl source package in trixie"
    ver=""
    for v in "${versions[@]}"; do
        version_ge "${v%%-*}" "$OPENSSL_MIN" || continue
        say "downloading openssl source $v"
        if (cd "$work/src" && apt-get "${aptopts[@]}" source --download-only "openssl=$v" >&2); then
            ver=$v
            break
        fi
        say "openssl $v is listed but not downloadable; trying the next"
        rm -f "$work/src"/*
    done
    [ -n "$ver" ] || die "no downloadable openssl >= $OPENSSL_MIN source in trixie"

    say "unpacking openssl $ver"
    (cd "$work/src" && dpkg-source --no-check -x ./*.dsc openssl-src >&2) \
        || die "dpkg-source could not unpack openssl $ver"
    srcdir="$work/src/openssl-src"
    v=$(sed -nE 's/^MAJOR=([0-9]+).*/\1/p; s/^MINOR=([0-9]+).*/\1/p; s/^PATCH=([0-9]+).*/\1/p' \
        "$srcdir/VERSION.dat" | paste -sd.)
    prefix="$DEPS/openssl-$v"
    rm -rf "$prefix"
    mkdir -p "$DEPS"
    say "building OpenSSL $v with $(nproc) jobs (a few minutes) into $prefix"
    (
        cd "$srcdir"
        ./Configure shared no-docs no-tests --prefix="$prefix" --libdir=lib \
            --openssldir="$prefix/ssl" "-Wl,-rpath,$prefix/lib" >"$work/configure.log" 2>&1 \
            || { tail -n 30 "$work/configure.log" >&2; exit 1; }
        make -j"$(nproc)" >"$work/make.log" 2>&1 || { tail -n 40 "$work/make.log" >&2; exit 1; }
        make install_sw install_ssldirs >"$work/install.log" 2>&1 \
            || { tail -n 30 "$work/install.log" >&2; exit 1; }
    ) || die "OpenSSL build failed"
    printf 'debian-source=%s\n' "$ver" >"$prefix/.hykex-complete"
    say "OpenSSL $v installed in $prefix"
    rm -rf "$work"
}

ensure_openssl() {
    local sysver prefix
    sysver=$(pkg-config --modversion openssl 2>/dev/null || true)
    if [ -n "$sysver" ] && version_ge "$sysver" "$OPENSSL_MIN"; then
        say "OpenSSL: system $sysver (pkg-config) is new enough"
        return
    fi
    prefix=$(find_cached_openssl)
    if [ -z "$prefix" ]; then
        say "OpenSSL: system has ${sysver:-none}, need >= $OPENSSL_MIN; building it once"
        build_openssl
        prefix=$(find_cached_openssl)
        [ -n "$prefix" ] || die "OpenSSL build finished but no prefix found in $DEPS"
    fi
    say "OpenSSL: $("$prefix/bin/openssl" version) in $prefix"
}

PQC_PACKAGES=(libmceliece-dev libntruprime-dev)

find_cached_pqc() {
    local d
    for d in "$DEPS"/pqc-*/.hykex-complete; do
        if [ -f "$d" ]; then printf '%s\n' "${d%/.hykex-complete}"; fi
    done | sort -V | tail -n1
}

# Debian 13's binary -dev packages of libmceliece and libntruprime, unpacked into the cache.
# (Their source packages would be built like OpenSSL's, but they need libcpucycles and
# librandombytes built first, and the mirror this machine reads serves the -dev packages but
# not every source file; the static archives in -dev are what hykex links, and hykex itself
# supplies the randombytes() they call, over OpenSSL's RAND_bytes.)
fetch_pqc() {
    local mirror work lists keyring prefix vers="" p v
    mirror=$(debian_mirror)
    work=$(mktemp -d "${TMPDIR:-/tmp}/hykex-pqc.XXXXXX")
    BOOTSTRAP_TMP=$work
    lists="$work/lists"
    mkdir -p "$lists/partial" "$work/cache/archives/partial" "$work/debs" "$work/root"
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    printf 'deb [signed-by=%s] %s trixie main\n' "$keyring" "$mirror" >"$work/sources.list"
    local aptopts=(-o "Dir::Etc::SourceList=$work/sources.list"
                   -o "Dir::Etc::SourceParts=/dev/null"
                   -o "Dir::State::Lists=$lists" -o "Dir::State::status=/dev/null"
                   -o "Dir::Cache=$work/cache"
                   -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache="
                   -o "APT::Sandbox::User=root")
    say "reading Debian 13 (trixie) package index from the machine's mirror"
    apt-get "${aptopts[@]}" update -q >&2 || die "apt-get update of the trixie index failed"
    for p in "${PQC_PACKAGES[@]}"; do
        v=$(apt-cache "${aptopts[@]}" show "$p" 2>/dev/null | awk '/^Version: /{print $2; exit}')
        [ -n "$v" ] || die "no $p in trixie"
        say "downloading $p $v"
        (cd "$work/debs" && apt-get "${aptopts[@]}" download "$p=$v" >&2) \
            || die "could not download $p $v"
        vers="$vers-${v#0~}"
    done
    for p in "$work"/debs/*.deb; do
        say "unpacking $(basename "$p")"
        dpkg-deb -x "$p" "$work/root" || die "dpkg-deb could not unpack $p"
    done
    prefix="$DEPS/pqc$vers"
    rm -rf "$prefix"
    mkdir -p "$prefix/include" "$prefix/lib"
    cp "$work"/root/usr/include/mceliece.h "$work"/root/usr/include/ntruprime.h "$prefix/include/"
    cp "$work"/root/usr/lib/*/libmceliece.a "$work"/root/usr/lib/*/libntruprime.a "$prefix/lib/"
    printf 'debian-packages=%s\n' "${PQC_PACKAGES[*]}" >"$prefix/.hykex-complete"
    say "libmceliece and libntruprime installed in $prefix"
    rm -rf "$work"
}

ensure_pqc() {
    local prefix
    if [ -f /usr/include/mceliece.h ] && [ -f /usr/include/ntruprime.h ]; then
        say "libmceliece, libntruprime: system packages"
        return
    fi
    if [ "${HYKEX_SKIP_APT:-0}" != 1 ] && apt-cache show "${PQC_PACKAGES[@]}" >/dev/null 2>&1; then
        say "installing Debian packages: ${PQC_PACKAGES[*]}"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
            "${PQC_PACKAGES[@]}" >&2
        return
    fi
    prefix=$(find_cached_pqc)
    if [ -z "$prefix" ]; then
        say "libmceliece, libntruprime: not packaged for this system; fetching Debian 13's once"
        fetch_pqc
        prefix=$(find_cached_pqc)
        [ -n "$prefix" ] || die "libmceliece/libntruprime fetch finished but no prefix in $DEPS"
    fi
    say "libmceliece, libntruprime: $prefix"
}

BOOTSTRAP_TMP=""
trap '[ -z "$BOOTSTRAP_TMP" ] || rm -rf "$BOOTSTRAP_TMP"' EXIT
install_packages
ensure_openssl
ensure_pqc
say "done"
