#!/usr/bin/env bash
# Usage: scripts/netlab.sh up [NODE...] | down | status | exec NODE COMMAND [ARG...]
#                          | impair NODE PEER LOSS% DELAY_MS | heal NODE PEER
#
# A lab network of hosts on this machine, like the seed's Docker network: one network namespace
# per node (default: sim A B C), each with its own address on one bridge.
#
#   up      makes namespace hx-NODE with eth0 = 10.77.0.N/24 (sim .10, A .11, B .12, C .13, then
#           .14 ...), a veth to bridge hxlab0 (10.77.0.1/24, so this host reaches every node);
#           loopback up in each. Replaces what an earlier run left behind.
#   down    removes every hx-* namespace and the bridge (also after a failed or interrupted run).
#   status  lists the namespaces and addresses.
#   exec    runs COMMAND inside NODE's namespace (same files, users and processes view).
#   impair  drops LOSS% of what NODE sends to PEER and delays the rest by DELAY_MS (user space,
#           scripts/netlab_impair.py: this kernel has no netem); run it both ways for a link.
#   heal    ends that impairment.
#
# Needs root (ip netns). Other faults: `ip link set hxv-A down` (host A off the network), or a
# blackhole route to one peer (`netlab.sh exec A ip route add blackhole 10.77.0.12/32`).
set -euo pipefail

BRIDGE=hxlab0
NET=10.77.0
RUN=/run/hykex-netlab

die() {
    echo "netlab.sh: $*" >&2
    exit 1
}

need_root() {
    [ "$(id -u)" -eq 0 ] || die "needs root (network namespaces)"
}

addr_of() { # node index -> host part
    case $1 in
        sim) echo 10 ;;
        *) echo $((11 + $2)) ;;
    esac
}

down() {
    local ns
    rm -rf "$RUN"
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^hx-' || true); do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    done
    for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' |
        grep -E "^(hxv-|$BRIDGE\$)" || true); do
        ip link del "$link" 2>/dev/null || true
    done
}

up() {
    local nodes=("$@") i=0 n host
    [ ${#nodes[@]} -gt 0 ] || nodes=(sim A B C)
    down
    ip link add "$BRIDGE" type bridge
    ip addr add "$NET.1/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    for n in "${nodes[@]}"; do
        [[ $n =~ ^[A-Za-z0-9]{1,8}$ ]] || die "bad node name '$n' (1-8 letters or digits)"
        host=$(addr_of "$n" "$i")
        [ "$n" = sim ] || i=$((i + 1))
        ip netns add "hx-$n"
        ip link add "hxv-$n" type veth peer name eth0 netns "hx-$n"
        ip link set "hxv-$n" master "$BRIDGE" up
        ip -n "hx-$n" addr add "$NET.$host/24" dev eth0
        ip -n "hx-$n" link set eth0 up
        ip -n "hx-$n" link set lo up
        echo "netlab.sh: $n = $NET.$host (namespace hx-$n)" >&2
    done
}

case ${1:-} in
    up)
        need_root
        shift
        trap 'echo "netlab.sh: up failed; removing what it made" >&2; down' ERR
        up "$@"
        ;;
    down)
        need_root
        down
        ;;
    status)
        for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^hx-' || true); do
            echo "$ns $(ip -n "$ns" -o -4 addr show dev eth0 2>/dev/null | awk '{print $4}')"
        done
        ;;
    exec)
        need_root
        [ $# -ge 3 ] || die "usage: netlab.sh exec NODE COMMAND [ARG...]"
        ns=hx-$2
        shift 2
        exec ip netns exec "$ns" "$@"
        ;;
    impair)
        need_root
        [ $# -eq 5 ] || die "usage: netlab.sh impair NODE PEER LOSS% DELAY_MS"
        peer_ip=$(ip -n "hx-$3" -o -4 addr show dev eth0 | awk '{print $4}' | cut -d/ -f1)
        [ -n "$peer_ip" ] || die "no lab node $3"
        mkdir -p "$RUN"
        ip netns exec "hx-$2" python3 "$(dirname "$0")/netlab_impair.py" "$peer_ip" "$4" "$5" \
            >"$RUN/impair-$2-$3.out" 2>&1 &
        echo $! >"$RUN/impair-$2-$3.pid"
        for _ in $(seq 50); do
            grep -q ready "$RUN/impair-$2-$3.out" 2>/dev/null && exit 0
            sleep 0.1
        done
        die "impair $2 -> $3 did not start: $(cat "$RUN/impair-$2-$3.out")"
        ;;
    heal)
        need_root
        [ $# -eq 3 ] || die "usage: netlab.sh heal NODE PEER"
        if [ -f "$RUN/impair-$2-$3.pid" ]; then
            kill "$(cat "$RUN/impair-$2-$3.pid")" 2>/dev/null || true
            rm -f "$RUN/impair-$2-$3.pid" "$RUN/impair-$2-$3.out"
        fi
        ;;
    -h | --help)
        sed -n '2,23s/^# \{0,1\}//p' "$0"
        ;;
    *)
        sed -n '2,23s/^# \{0,1\}//p' "$0" >&2
        exit 2
        ;;
esac
