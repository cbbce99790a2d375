#!/usr/bin/env bash
# Usage: scripts/package-test.sh [--release bookworm|trixie|all] [--no-keep-base] [--no-k8s]
#
# The Debian packages tested as an operator would use them, in podman containers:
#   1. packages: this machine's release with scripts/package.sh; Debian 13 (trixie) inside a
#      trixie container, by the build stage of deploy/docker/Dockerfile (the same recipe);
#   2. per release, clean containers from a debootstrap base with systemd as PID 1: the packages
#      installed with apt, two nodes (Alice, Bob) and the simulator; hykexd started by systemd from
#      the installed unit as user hykex; `systemd-analyze verify` on the installed unit; one
#      libcrypto per process (ldd and /proc/PID/maps; on Debian 12 the package's private one);
#      `man` opens the pages; both nodes get the same keys with the installed `hykex run`;
#      `apt-get remove hykex` stops the service and keeps /var/lib/hykex;
#   3. the Docker image from the packages: its HEALTHCHECK (`hykex status`) turns healthy;
#   4. deploy/k8s/ with `podman kube play`: three nodes and the simulator, keys agreeing.
# Base images come from debootstrap with this machine's Debian mirror and are cached as
# localhost/hykex-pkgtest-base:<release> (--no-keep-base removes them). Everything else is named
# hykex-pkgtest-<pid>-... and removed at the end; builds use --layers=false so that no unnamed
# intermediate images are left (other builds' are never pruned). Needs root; installs what it
# needs through scripts/bootstrap.sh --containers and scripts/package.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

releases=(bookworm trixie) keep_base=1 k8s=1
while [ $# -gt 0 ]; do
    case $1 in
        --release)
            case $2 in all) releases=(bookworm trixie) ;; *) releases=("$2") ;; esac
            shift 2
            ;;
        --no-keep-base) keep_base=0; shift ;;
        --no-k8s) k8s=0; shift ;;
        -h | --help) sed -n '2,20s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "package-test.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" -eq 0 ] || {
    echo "package-test.sh: needs root (podman networks, debootstrap, systemd containers)" >&2
    exit 2
}
say() { echo "package-test.sh: $*" >&2; }
fail() {
    say "FAIL: $*"
    exit 1
}
t0=$(date +%s)
. /etc/os-release
host_release=$VERSION_CODENAME

scripts/bootstrap.sh --containers >&2
extra=()
for p in systemd-container catatonit; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || extra+=("$p")
done
if [ ${#extra[@]} -gt 0 ]; then
    say "installing ${extra[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${extra[@]}" >&2
fi
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

tag=hykex-pkgtest-$$
work=$(mktemp -d "/tmp/$tag.XXXXXX")

# Podman settings as scripts/container-test.sh: runc, cgroupfs, ulimits no higher than ours.
lim_nofile=$(ulimit -Sn)
lim_nproc=$(ulimit -Su)
[ "$lim_nofile" = unlimited ] || [ "$lim_nofile" -gt 1024 ] && lim_nofile=1024
[ "$lim_nproc" = unlimited ] || [ "$lim_nproc" -gt 1024 ] && lim_nproc=1024
cat >"$work/containers.conf" <<EOF
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"

[containers]
default_ulimits = ["nofile=$lim_nofile:$lim_nofile", "nproc=$lim_nproc:$lim_nproc"]
EOF
export CONTAINERS_CONF=$work/containers.conf

cleanup() {
    set +e
    say "removing what the test made ($tag-*)"
    podman pod ls -q --filter "name=^$tag" | xargs -r podman pod rm -f >/dev/null 2>&1
    podman ps -a -q --filter "name=^$tag" | xargs -r podman rm -f -v >/dev/null 2>&1
    podman network ls -q | grep "^$tag" | xargs -r podman network rm -f >/dev/null 2>&1
    podman volume ls -q | grep "^$tag" | xargs -r podman volume rm -f >/dev/null 2>&1
    podman images --format '{{.Repository}}:{{.Tag}}' | grep "^localhost/$tag" |
        xargs -r podman rmi -f >/dev/null 2>&1
    if [ "$keep_base" = 0 ]; then
        for r in bookworm trixie; do podman rmi -f "localhost/hykex-pkgtest-base:$r" >/dev/null 2>&1; done
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# --- base images: debootstrap minbase + systemd, cached -----------------------------------
base_image() { # release
    local img=localhost/hykex-pkgtest-base:$1 mirror
    if podman image exists "$img"; then
        return
    fi
    mirror=$(debian_mirror)
    say "base image $1: debootstrap from the machine's Debian mirror (a few minutes)"
    debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,ca-certificates \
        "$1" "$work/rootfs-$1" "$mirror" >"$work/debootstrap-$1.log" 2>&1 || {
        tail -n 20 "$work/debootstrap-$1.log" >&2
        fail "debootstrap $1"
    }
    rm -rf "$work/rootfs-$1/var/cache/apt/archives/"*.deb
    tar -C "$work/rootfs-$1" -c . | podman import - "$img" >/dev/null
    rm -rf "$work/rootfs-$1"
}

# --- 1. the packages ------------------------------------------------------------------------
build_debs() { # release -> $work/debs/<release>
    local r=$1 t
    t=$(date +%s)
    mkdir -p "$work/debs/$r"
    if [ "$r" = "$host_release" ]; then
        scripts/package.sh --out "$work/debs/$r" >&2
    elif [ "$r" = trixie ]; then
        base_image trixie
        say "building the trixie packages in a trixie container (Dockerfile build stage)"
        podman build --pull=never --layers=false --target build --build-arg BASE=localhost/hykex-pkgtest-base:trixie \
            --build-arg LINTIAN=yes -f deploy/docker/Dockerfile -t "localhost/$tag-build:trixie" . \
            >"$work/build-trixie.log" 2>&1 || {
            tail -n 40 "$work/build-trixie.log" >&2
            fail "trixie package build"
        }
        podman create --name "$tag-debs" "localhost/$tag-build:trixie" true >/dev/null
        podman cp "$tag-debs:/debs/." "$work/debs/$r/"
        podman rm "$tag-debs" >/dev/null
    else
        fail "packages for $r can only be built on a $r machine (this is $host_release)"
    fi
    say "$r packages in $(($(date +%s) - t)) s; lintian: $(grep -cE '^[EW]:' "$work/debs/$r/lintian.txt" || true) errors+warnings"
    grep -E '^[EWIP]:' "$work/debs/$r/lintian.txt" | sed 's/^/  /' >&2 || true
}

# --- 2. systemd containers ------------------------------------------------------------------
wait_for() { # tries command...
    local n=$1
    shift
    for _ in $(seq "$n"); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    return 1
}

test_release() { # release
    local r=$1 img=localhost/$tag-node:$1 net=$tag-$1 n pid lib keys_a keys_b
    base_image "$r"
    build_debs "$r"
    if [ "$r" = "$host_release" ]; then
        # libhykex-dev: a program built with `pkg-config hykex` against the unpacked packages.
        local sys=$work/sysroot-$r
        for d in "$work/debs/$r"/libhykex0_*.deb "$work/debs/$r"/libhykex-dev_*.deb; do dpkg-deb -x "$d" "$sys"; done
        printf '%s\n' '#include <hykex/hykex.h>' '#include <stdio.h>' \
            'int main(void) { struct hykex *h; int r = hykex_connect("127.0.0.1:1", &h);' \
            '  printf("%d %s\n", r, hykex_status_string(HYKEX_STATUS_SUCCESS)); return r == HYKEX_E_CONNECT ? 0 : 1; }' \
            >"$work/dev.c"
        export PKG_CONFIG_SYSROOT_DIR=$sys PKG_CONFIG_LIBDIR
        PKG_CONFIG_LIBDIR=$(echo "$sys"/usr/lib/*/pkgconfig)
        # shellcheck disable=SC2046
        cc -o "$work/dev" "$work/dev.c" $(pkg-config --cflags --libs hykex) ||
            fail "$r: a program does not build with pkg-config hykex"
        unset PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_LIBDIR
        LD_LIBRARY_PATH=$(echo "$sys"/usr/lib/*-linux-gnu) "$work/dev" >/dev/null ||
            fail "$r: the libhykex-dev test program failed"
        say "$r: libhykex-dev: a program builds with pkg-config hykex and runs"
    fi
    mkdir -p "$work/ctx-$r/debs"
    cp "$work/debs/$r"/hykex_*.deb "$work/debs/$r"/libhykex0_*.deb "$work/ctx-$r/debs/"
    cat >"$work/ctx-$r/Containerfile" <<EOF
FROM localhost/hykex-pkgtest-base:$r
COPY debs/ /tmp/debs/
RUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
      --no-install-recommends man-db /tmp/debs/*.deb && rm -rf /var/lib/apt/lists/* /tmp/debs
EOF
    say "$r: installing the packages into a clean $r image"
    podman build --pull=never --layers=false -t "$img" "$work/ctx-$r" >"$work/image-$r.log" 2>&1 || {
        tail -n 30 "$work/image-$r.log" >&2
        fail "$r: apt-get install of the packages"
    }

    podman network create "$net" >/dev/null
    podman run -d --name "$tag-sim-$r" --network "$net" --network-alias qkdsim \
        -v "$work/docker/qkdsim.json:/etc/qkdsim.json:ro" --entrypoint hykex-qkdsim "$img" \
        -c /etc/qkdsim.json >/dev/null
    for node in Alice Bob; do
        n=${node,,}
        # systemd as PID 1; CAP_SYS_ADMIN lets it build the unit's sandbox (mount namespaces).
        podman run -d --name "$tag-$n-$r" --hostname "$n" --network "$net" --network-alias "$n" \
            --systemd=always --cap-add SYS_ADMIN "$img" /sbin/init >/dev/null
    done
    for node in Alice Bob; do
        n=${node,,}
        c=$tag-$n-$r
        wait_for 120 podman exec "$c" systemctl is-system-running --quiet ||
            podman exec "$c" systemctl is-system-running >&2 || true
        # The operator's steps (docs/install.md): config, peers and certificates into /etc/hykex.
        podman exec "$c" test -d /etc/hykex/certs || fail "$r: tmpfiles did not make /etc/hykex/certs"
        podman exec "$c" systemctl is-active --quiet hykexd &&
            fail "$r: hykexd runs without a config"
        podman cp "$work/docker/nodes/$node/config.json" "$c:/etc/hykex/config.json"
        podman cp "$work/docker/nodes/$node/trusted_peers_info.json" "$c:/etc/hykex/"
        podman cp "$work/docker/nodes/$node/certs/." "$c:/etc/hykex/certs/"
        podman exec "$c" sh -c 'chown hykex:hykex /etc/hykex/certs/node.key &&
            chmod 0600 /etc/hykex/certs/node.key && systemctl start hykexd' ||
            fail "$r: systemctl start hykexd"
    done
    for n in alice bob; do
        c=$tag-$n-$r
        if ! wait_for 60 sh -c "podman exec $c journalctl -u hykexd --no-pager | grep -q 'peer link up'"; then
            podman exec "$c" journalctl -u hykexd --no-pager | tail -n 30 >&2
            fail "$r: $n has no peer link"
        fi
        pid=$(podman exec "$c" systemctl show -p MainPID --value hykexd)
        [ "$(podman exec "$c" stat -c %U "/proc/$pid")" = hykex ] || fail "$r: hykexd is not user hykex"
        podman exec "$c" sh -c 'systemd-analyze verify "$(systemctl show -p FragmentPath --value hykexd)"' ||
            fail "$r: systemd-analyze verify"
        lib=$(podman exec "$c" awk '/libcrypto/{print $6}' "/proc/$pid/maps" | sort -u)
        [ "$(printf '%s\n' "$lib" | wc -l)" = 1 ] || fail "$r: hykexd maps several libcrypto: $lib"
        for b in /usr/bin/hykexd /usr/bin/hykex /usr/bin/hykex-qkdsim /usr/lib/*/libhykex.so.0; do
            podman exec "$c" sh -c "ldd $b | grep -E 'lib(crypto|ssl)\.so'" >"$work/ldd" ||
                fail "$r: ldd $b"
            [ "$(awk '/libcrypto/{print $3}' "$work/ldd" | sort -u | wc -l)" = 1 ] ||
                fail "$r: $b loads more than one libcrypto"
            if [ "$r" = bookworm ]; then
                grep -q 'libcrypto.so.3 => [^ ]*/hykex/libcrypto.so.3' "$work/ldd" ||
                    fail "$r: $b does not load the private libcrypto: $(cat "$work/ldd")"
            fi
        done
    done
    say "$r: hykexd runs under systemd as user hykex in alice and bob; unit verifies; one libcrypto ($lib)"
    podman exec "$tag-alice-$r" sh -c 'man -w hykexd hykex hykex-qkdsim hykexd.json &&
        MANPAGER=cat man hykexd.json | grep -q state_dir' >/dev/null || fail "$r: man pages"

    for n in alice bob; do
        podman exec "$tag-$n-$r" hykex run /usr/share/hykex/examples/open_connect_request.json \
            --keys 3 -c /etc/hykex/config.json >"$work/$n-$r.out" 2>"$work/$n-$r.err" &
        eval "pid_$n=\$!"
    done
    # shellcheck disable=SC2154
    wait "$pid_alice" || { cat "$work/alice-$r."* >&2; fail "$r: hykex run in alice"; }
    # shellcheck disable=SC2154
    wait "$pid_bob" || { cat "$work/bob-$r."* >&2; fail "$r: hykex run in bob"; }
    keys_a=$(grep -o '"key_buffer": \[[^]]*\]' "$work/alice-$r.out" || true)
    keys_b=$(grep -o '"key_buffer": \[[^]]*\]' "$work/bob-$r.out" || true)
    [ "$(printf '%s\n' "$keys_a" | grep -c key_buffer)" = 3 ] && [ "$keys_a" = "$keys_b" ] ||
        { cat "$work/alice-$r.out" "$work/bob-$r.out" >&2; fail "$r: keys differ or missing"; }
    say "$r: alice and bob got the same 3 keys with the installed hykex ($(printf '%s' "$keys_a" | sha256sum | cut -c1-16))"

    c=$tag-alice-$r
    podman exec "$c" sh -c 'DEBIAN_FRONTEND=noninteractive apt-get remove -y -q hykex' >"$work/remove-$r.log" 2>&1 ||
        { cat "$work/remove-$r.log" >&2; fail "$r: apt-get remove hykex"; }
    podman exec "$c" systemctl is-active --quiet hykexd && fail "$r: hykexd still active after remove"
    podman exec "$c" sh -c 'for p in /proc/[0-9]*; do [ "$(cat $p/comm 2>/dev/null)" = hykexd ] && exit 1; done; exit 0' ||
        fail "$r: a hykexd process is left after remove"
    podman exec "$c" test -d /var/lib/hykex/state || fail "$r: /var/lib/hykex/state removed"
    say "$r: apt-get remove hykex stopped hykexd and kept /var/lib/hykex"
    podman rm -f "$tag-alice-$r" "$tag-bob-$r" "$tag-sim-$r" >/dev/null
    podman network rm -f "$net" >/dev/null
}

# Certificates for the three nodes, in a scratch copy of deploy/docker (the CA stays there).
cp -r deploy/docker "$work/docker"
rm -rf "$work/docker/nodes/"*/certs "$work/docker/ca"
deploy/docker/make-certs.sh --dir "$work/docker" >&2

for r in "${releases[@]}"; do
    test_release "$r"
done

# --- 3. the Docker image from the packages: its health check --------------------------------
if printf '%s\n' "${releases[@]}" | grep -qx trixie; then
    say "docker image (deploy/docker/Dockerfile) from the trixie packages"
    # --format docker: the OCI format has no HEALTHCHECK.
    podman build --pull=never --layers=false --format docker --build-arg BASE=localhost/hykex-pkgtest-base:trixie \
        --build-arg LINTIAN=yes -f deploy/docker/Dockerfile -t "localhost/$tag-image:trixie" . \
        >"$work/image-docker.log" 2>&1 || { tail -n 30 "$work/image-docker.log" >&2; fail "docker image"; }
    podman image inspect --format 'health check {{.HealthCheck.Test}}, ports {{.Config.ExposedPorts}}, user {{.Config.User}}' \
        "localhost/$tag-image:trixie" >&2
    podman network create "$tag-docker" >/dev/null
    podman run -d --name "$tag-dsim" --network "$tag-docker" --network-alias qkdsim \
        -v "$work/docker/qkdsim.json:/etc/hykex/qkdsim.json:ro" --entrypoint hykex-qkdsim \
        "localhost/$tag-image:trixie" -c /etc/hykex/qkdsim.json >/dev/null
    podman run -d --name "$tag-dalice" --network "$tag-docker" --network-alias alice \
        -v "$work/docker/nodes/Alice:/etc/hykex:ro" "localhost/$tag-image:trixie" >/dev/null
    ok=0
    for _ in $(seq 30); do
        if podman healthcheck run "$tag-dalice" >/dev/null 2>&1; then
            ok=1
            break
        fi
        sleep 1
    done
    [ "$ok" = 1 ] || { podman logs "$tag-dalice" >&2; fail "docker image: health check never passed"; }
    say "docker image: HEALTHCHECK (hykex status) passes"
fi

# --- 4. Kubernetes manifests with podman kube play ------------------------------------------
if [ "$k8s" = 1 ] && printf '%s\n' "${releases[@]}" | grep -qx trixie; then
    scripts/k8s-test.sh --image "localhost/$tag-image:trixie" --name "$tag-k8s" --certs "$work/docker" >&2 ||
        fail "kubernetes manifests"
fi
say "passed in $(($(date +%s) - t0)) s"
