#!/usr/bin/env bash
# Usage: scripts/netlab.sh up [--run RUN] [NODE...] | down [RUN] | status | addr NODE
#                          | exec NODE COMMAND [ARG...]
#                          | impair NODE PEER LOSS% DELAY_MS | heal NODE PEER
#
# A lab network of hosts on this machine, like the seed's Docker network: one network namespace
# per node (default: sim A B C), each with its own address on one bridge. Each lab is a run with
# its own id (hx + 4 hex digits): `up` prints it on stdout, and the other commands act on the run
# that HYKEX_LAB names (or the only run, when there is one):
#   export HYKEX_LAB=$(scripts/netlab.sh up); ...; scripts/netlab.sh down
#
#   up      makes namespace RUN-NODE with eth0 = 10.77.S.N/24 (sim .10, A .11, B .12, C .13, then
#           .14 ...), a veth RUN-NODE to bridge RUN-br (10.77.S.1/24, so this host reaches every
#           node), loopback up in each; S is the first subnet no interface here uses. Refuses
#           (and makes nothing) when a name it would use exists; records each object it makes
#           in /run/hykex-netlab/RUN/objects. On any error removes what it made. --run RUN
#           gives the id instead of a random one.
#   down    removes the run's recorded objects (stopping what runs in its namespaces) and
#           nothing else; RUN defaults to HYKEX_LAB.
#   status  lists the runs, their namespaces and addresses.
#   addr    prints NODE's address in the run.
#   exec    runs COMMAND inside NODE's namespace (same files, users and processes view).
#   impair  drops LOSS% of what NODE sends to PEER and delays the rest by DELAY_MS (user space,
#           scripts/netlab_impair.py: this kernel has no netem); run it both ways for a link.
#   heal    ends that impairment.
#
# Needs root (ip netns). Other faults: `ip link set RUN-A down` (host A off the network), or a
# blackhole route to one peer (`netlab.sh exec A ip route add blackhole ADDR/32`).
set -euo pipefail

NET=10.77
STATE=/run/hykex-netlab
USAGE_LINES=2,28

die() {
    echo "netlab.sh: $*" >&2
    exit 1
}

need_root() {
    [ "$(id -u)" -eq 0 ] || die "needs root (network namespaces)"
}

ns_exists() { ip netns list 2>/dev/null | awk '{print $1}' | grep -qx -- "$1"; }
link_exists() { ip link show dev "$1" >/dev/null 2>&1; }

# The run to act on: $1 if given, else HYKEX_LAB, else the only one recorded.
pick_run() {
    local runs
    if [ -n "${1:-}" ]; then
        echo "$1"
    elif [ -n "${HYKEX_LAB:-}" ]; then
        echo "$HYKEX_LAB"
    else
        runs=$(find "$STATE" -mindepth 1 -maxdepth 1 -type d -name 'hx????' -printf '%f\n' \
            2>/dev/null || true)
        case $(printf '%s' "$runs" | grep -c .) in
            0) die "no lab run (netlab.sh up makes one)" ;;
            1) echo "$runs" ;;
            *) die "several lab runs ($(tr '\n' ' ' <<<"$runs")): set HYKEX_LAB to one" ;;
        esac
    fi
}

check_run() {
    [[ $1 =~ ^hx[0-9a-f]{4}$ ]] || die "'$1' is not a lab run id (hx + 4 hex digits)"
    [ -d "$STATE/$1" ] || die "no lab run '$1' (netlab.sh status lists them)"
}

# Removes what run $1 recorded, newest first, and its impairments; nothing else.
down() {
    local run=$1 dir=$STATE/$1 kind name pidfile
    for pidfile in "$dir"/impair-*.pid; do
        if [ -f "$pidfile" ]; then kill "$(cat "$pidfile")" 2>/dev/null || true; fi
    done
    if [ -f "$dir/objects" ]; then
        tac "$dir/objects" | while read -r kind name; do
            case $kind in
                netns)
                    ip netns pids "$name" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
                    ip netns del "$name" 2>/dev/null || true
                    ;;
                link) ip link del "$name" 2>/dev/null || true ;;
            esac
        done
    fi
    rm -rf "$dir"
    echo "netlab.sh: run $run removed" >&2
}

# A subnet 10.77.S.0/24 no interface on this host and no other run uses.
free_subnet() {
    local s used
    used=$(
        ip -4 -o addr show 2>/dev/null | awk '{print $4}' | awk -F. -v p="$NET" '$1 "." $2 == p {print $3}'
        cat "$STATE"/hx*/subnet 2>/dev/null || true
    )
    for s in $(seq 0 254); do
        grep -qx "$s" <<<"$used" || { echo "$s"; return; }
    done
    die "no free subnet in $NET.0.0/16"
}

up() {
    local nodes=() i=0 n host dir subnet bridge
    run=""
    if [ "${1:-}" = --run ]; then
        [ $# -ge 2 ] || die "--run needs a run id"
        run=$2
        shift 2
        [[ $run =~ ^hx[0-9a-f]{4}$ ]] || die "'$run' is not a lab run id (hx + 4 hex digits)"
    fi
    nodes=("$@")
    [ ${#nodes[@]} -gt 0 ] || nodes=(sim A B C)
    for n in "${nodes[@]}"; do
        if ! [[ $n =~ ^[A-Za-z0-9]{1,8}$ ]] || [ "$n" = br ]; then
            die "bad node name '$n' (1-8 letters or digits, not 'br')"
        fi
    done
    mkdir -p "$STATE"
    exec 9>"$STATE/lock"
    flock 9 # one up at a time: the subnet and the id are chosen and recorded under it
    if [ -z "$run" ]; then
        for _ in $(seq 20); do
            run=hx$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')
            [ -e "$STATE/$run" ] || break
        done
    fi
    [ ! -e "$STATE/$run" ] || die "lab run $run exists already"
    bridge=$run-br
    # Refuse before making anything when a name exists that this run did not make.
    for n in "${nodes[@]}"; do
        ! ns_exists "$run-$n" || die "namespace $run-$n exists and is not this run's: left alone"
        ! link_exists "$run-$n" || die "interface $run-$n exists and is not this run's: left alone"
    done
    ! link_exists "$bridge" || die "interface $bridge exists and is not this run's: left alone"
    subnet=$(free_subnet)
    dir=$STATE/$run
    mkdir -p "$dir"
    echo "$subnet" >"$dir/subnet"
    : >"$dir/objects"
    : >"$dir/nodes"
    exec 9>&-
    made=0
    trap '[ "$made" = 1 ] || { echo "netlab.sh: up failed; removing what it made" >&2; down "$run"; }' EXIT
    ip link add "$bridge" type bridge
    echo "link $bridge" >>"$dir/objects"
    ip addr add "$NET.$subnet.1/24" dev "$bridge"
    ip link set "$bridge" up
    for n in "${nodes[@]}"; do
        if [ "$n" = sim ]; then host=10; else host=$((11 + i)); i=$((i + 1)); fi
        ip netns add "$run-$n"
        echo "netns $run-$n" >>"$dir/objects"
        ip link add "$run-$n" type veth peer name eth0 netns "$run-$n"
        echo "link $run-$n" >>"$dir/objects"
        ip link set "$run-$n" master "$bridge" up
        ip -n "$run-$n" addr add "$NET.$subnet.$host/24" dev eth0
        ip -n "$run-$n" link set eth0 up
        ip -n "$run-$n" link set lo up
        echo "$n $NET.$subnet.$host" >>"$dir/nodes"
        echo "netlab.sh: $n = $NET.$subnet.$host (namespace $run-$n)" >&2
    done
    made=1
    trap - EXIT
    echo "$run"
}

# NODE's namespace in run $1 (it must be one of the run's nodes).
node_ns() {
    grep -q "^$2 " "$STATE/$1/nodes" 2>/dev/null || die "no node '$2' in lab run $1"
    echo "$1-$2"
}

case ${1:-} in
    up)
        need_root
        shift
        up "$@"
        ;;
    down)
        need_root
        run=$(pick_run "${2:-}")
        check_run "$run"
        down "$run"
        ;;
    status)
        for d in "$STATE"/hx????; do
            [ -d "$d" ] || continue
            echo "run ${d##*/} (subnet $NET.$(cat "$d/subnet").0/24)"
            while read -r n a; do echo "  $n $a (namespace ${d##*/}-$n)"; done <"$d/nodes"
        done
        ;;
    addr)
        [ $# -eq 2 ] || die "usage: netlab.sh addr NODE"
        run=$(pick_run)
        check_run "$run"
        node_ns "$run" "$2" >/dev/null
        awk -v n="$2" '$1 == n {print $2}' "$STATE/$run/nodes"
        ;;
    exec)
        need_root
        [ $# -ge 3 ] || die "usage: netlab.sh exec NODE COMMAND [ARG...]"
        run=$(pick_run)
        check_run "$run"
        ns=$(node_ns "$run" "$2")
        shift 2
        exec ip netns exec "$ns" "$@"
        ;;
    impair)
        need_root
        [ $# -eq 5 ] || die "usage: netlab.sh impair NODE PEER LOSS% DELAY_MS"
        run=$(pick_run)
        check_run "$run"
        ns=$(node_ns "$run" "$2")
        node_ns "$run" "$3" >/dev/null
        peer_ip=$(awk -v n="$3" '$1 == n {print $2}' "$STATE/$run/nodes")
        out=$STATE/$run/impair-$2-$3
        ip netns exec "$ns" python3 "$(dirname "$0")/netlab_impair.py" "$peer_ip" "$4" "$5" \
            >"$out.out" 2>&1 &
        echo $! >"$out.pid"
        for _ in $(seq 50); do
            grep -q ready "$out.out" 2>/dev/null && exit 0
            sleep 0.1
        done
        die "impair $2 -> $3 did not start: $(cat "$out.out")"
        ;;
    heal)
        need_root
        [ $# -eq 3 ] || die "usage: netlab.sh heal NODE PEER"
        run=$(pick_run)
        check_run "$run"
        out=$STATE/$run/impair-$2-$3
        if [ -f "$out.pid" ]; then
            kill "$(cat "$out.pid")" 2>/dev/null || true
            rm -f "$out.pid" "$out.out"
        fi
        ;;
    -h | --help)
        sed -n "${USAGE_LINES}s/^# \{0,1\}//p" "$0"
        ;;
    *)
        sed -n "${USAGE_LINES}s/^# \{0,1\}//p" "$0" >&2
        exit 2
        ;;
esac
