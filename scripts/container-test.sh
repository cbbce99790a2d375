#!/usr/bin/env bash
# Usage: scripts/container-test.sh [--keep-base]
#
# Runs the seed's Docker workflow for real, with Debian's podman (no Docker engine here):
#   1. a Debian 13 base image made with debootstrap from this machine's own Debian mirror,
#      under a name of ours (localhost/hykex-base:trixie), never the official image's name, so
#      it shadows nothing: nothing is pulled;
#   2. the hykex image from deploy/docker/Dockerfile (apt-get inside the build), given that
#      base with --build-arg BASE (the Dockerfile's default stays the official debian:trixie-slim);
#   3. the compose topology of deploy/docker/compose.yml (simulator, Alice, Bob, Charlie) with
#      podman-compose, certificates from deploy/docker/make-certs.sh in a scratch copy;
#   4. the driver inside two node containers at once, as the seed's README does (exec into the
#      node, run the request): both must print the same keys;
#   5. removes what it made: containers, network, volumes, the hykex image and the scratch copy
#      (by their names; it never prunes, so other builds' images stay).
#      The base image stays as a cache (like OpenSSL in ~/.cache/hykex) unless --no-keep-base;
#      it is rebuilt when missing.
#
# Podman is configured through a CONTAINERS_CONF file this script writes (runc, cgroupfs,
# ulimits at the current ones), never by editing /etc. Needs root. Installs its packages through
# scripts/bootstrap.sh --containers.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

keep_base=1
case ${1:-} in
    --no-keep-base) keep_base=0 ;;
    "" | --keep-base) ;;
    -h | --help)
        sed -n '2,21s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
    *)
        echo "container-test.sh: unknown argument '$1'" >&2
        exit 2
        ;;
esac
[ "$(id -u)" -eq 0 ] || {
    echo "container-test.sh: needs root (podman networks, debootstrap)" >&2
    exit 2
}
say() { echo "container-test.sh: $*" >&2; }
t0=$(date +%s)

scripts/bootstrap.sh --containers >&2

work=$(mktemp -d /tmp/hykex-containers.XXXXXX)
project=hykextest$$
base=localhost/hykex-base:trixie
image=localhost/hykex:test$$
compose=(podman-compose -p "$project" -f "$work/docker/compose.yml")

# Ulimits no higher than this process's own (runc cannot raise them here): 1024, or less.
lim_nofile=$(ulimit -Sn)
lim_nproc=$(ulimit -Su)
[ "$lim_nofile" = unlimited ] || [ "$lim_nofile" -gt 1024 ] && lim_nofile=1024
[ "$lim_nproc" = unlimited ] || [ "$lim_nproc" -gt 1024 ] && lim_nproc=1024
conf="$work/containers.conf"
cat >"$conf" <<EOF
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"

[containers]
default_ulimits = ["nofile=$lim_nofile:$lim_nofile", "nproc=$lim_nproc:$lim_nproc"]
EOF
export CONTAINERS_CONF=$conf

cleanup() {
    set +e
    say "removing what the test made"
    # -v: also the anonymous volume of the image's VOLUME in the simulator's container
    podman ps -a --filter "name=${project}_" -q | xargs -r podman rm -f -v >/dev/null 2>&1
    [ -f "$work/docker/compose.yml" ] && "${compose[@]}" down -v >/dev/null 2>&1
    podman volume ls -q | grep "^${project}_" | xargs -r podman volume rm -f >/dev/null 2>&1
    podman network ls -q | grep "^${project}_" | xargs -r podman network rm -f >/dev/null 2>&1
    podman rmi -f "$image" >/dev/null 2>&1
    [ "$keep_base" = 1 ] || podman rmi -f "$base" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT

# 1. base image
if podman image exists "$base"; then
    say "base image $base: cached"
else
    # shellcheck source=scripts/lib.sh
    . scripts/lib.sh
    mirror=$(debian_mirror)
    say "base image: debootstrap trixie from the machine's Debian mirror"
    debootstrap --variant=minbase trixie "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
        {
            tail -n 20 "$work/debootstrap.log" >&2
            exit 1
        }
    rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb
    tar -C "$work/rootfs" -c . | podman import - "$base" >/dev/null
    rm -rf "$work/rootfs"
fi

# 2. the hykex image
say "building the hykex image"
# --layers=false: no unnamed intermediate images are left, so nothing needs pruning (a prune
# would also remove other builds' dangling images).
podman build --pull=never --layers=false --format docker --build-arg BASE="$base" -f deploy/docker/Dockerfile \
    -t "$image" . >"$work/build.log" 2>&1 || {
    tail -n 30 "$work/build.log" >&2
    exit 1
}

# 3. the topology, in a scratch copy with fresh certificates
cp -r deploy/docker "$work/docker"
deploy/docker/make-certs.sh --dir "$work/docker" >&2
sed -i "s|image: hykex\$|image: $image|" "$work/docker/compose.yml"
say "starting the compose topology (simulator, Alice, Bob, Charlie)"
"${compose[@]}" up -d >"$work/up.log" 2>&1 || {
    tail -n 30 "$work/up.log" >&2
    exit 1
}
for node in alice bob charlie; do
    ok=0
    for _ in $(seq 100); do
        if podman logs "${project}_${node}_1" 2>&1 | grep -q "peer link up"; then
            ok=1
            break
        fi
        sleep 0.1
    done
    [ "$ok" = 1 ] || {
        podman logs "${project}_${node}_1" >&2
        say "$node has no peer link"
        exit 1
    }
done

# 4. the driver in Alice and Bob at once
say "running the request in alice and bob"
run_driver() {
    podman exec "${project}_$1_1" hykex run /usr/share/hykex/examples/open_connect_request.json \
        --keys 3 -c /etc/hykex/config.json >"$work/$1.out" 2>"$work/$1.err"
}
run_driver alice &
pa=$!
run_driver bob &
pb=$!
wait "$pa" || {
    cat "$work/alice.out" "$work/alice.err" >&2
    exit 1
}
wait "$pb" || {
    cat "$work/bob.out" "$work/bob.err" >&2
    exit 1
}
keys_a=$(grep -o '"key_buffer": \[[^]]*\]' "$work/alice.out" || true)
keys_b=$(grep -o '"key_buffer": \[[^]]*\]' "$work/bob.out" || true)
n=$(printf '%s\n' "$keys_a" | grep -c key_buffer || true)
if [ "$n" -ne 3 ] || [ "$keys_a" != "$keys_b" ]; then
    say "keys differ or missing"
    cat "$work/alice.out" "$work/bob.out" >&2
    exit 1
fi
say "alice and bob got the same 3 keys:"
printf '%s\n' "$keys_a" | sha256sum | cut -c1-16 | sed 's/^/  fingerprint of all three: /' >&2
podman exec "${project}_alice_1" hykex status -c /etc/hykex/config.json >&2
say "passed in $(($(date +%s) - t0)) s"
