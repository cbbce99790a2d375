#!/usr/bin/env bash
# scripts/netlab.sh keeps to its own run: two labs side by side get their own names and subnets,
# `down` of one leaves the other (and everything else) alone, and `up` refuses a name that exists
# and is not its run's, making nothing. Root only (network namespaces); skipped otherwise.
# Usage: netlab_test.sh REPO_ROOT
set -euo pipefail
root=$1
nl=$root/scripts/netlab.sh
fail() { echo "FAIL: $*"; exit 1; }
if [ "$(id -u)" -ne 0 ]; then
    echo "netlab_test.sh: skipped: network namespaces need root"
    echo "0 passed, 0 failed, 1 skipped"
    exit 0
fi
unset HYKEX_LAB
runs=()
mine=""
cleanup() {
    for r in "${runs[@]}"; do "$nl" down "$r" 2>/dev/null || true; done
    [ -z "$mine" ] || ip netns del "$mine" 2>/dev/null || true
}
trap cleanup EXIT
passed=0

# Two labs at once: their own names (within 15 characters) and subnets.
r1=$("$nl" up sim A 2>/dev/null); runs+=("$r1")
r2=$("$nl" up sim A 2>/dev/null); runs+=("$r2")
[[ $r1 =~ ^hx[0-9a-f]{4}$ && $r2 =~ ^hx[0-9a-f]{4}$ && $r1 != "$r2" ]] || fail "run ids '$r1' '$r2'"
a1=$(HYKEX_LAB=$r1 "$nl" addr A)
a2=$(HYKEX_LAB=$r2 "$nl" addr A)
[ "${a1%.*}" != "${a2%.*}" ] || fail "both labs on subnet ${a1%.*}"
ip netns list | grep -q "^$r1-A" || fail "no namespace $r1-A"
ip link show dev "$r2-br" >/dev/null || fail "no bridge $r2-br"
HYKEX_LAB=$r2 "$nl" exec A ip -4 -o addr show dev eth0 | grep -q "$a2/24" || fail "exec in $r2-A"
# With two runs and no HYKEX_LAB, a command refuses to guess.
if "$nl" addr A 2>err.$$; then fail "addr guessed among two runs"; fi
grep -q "several lab runs" err.$$ || fail "no 'several lab runs': $(cat err.$$)"
rm -f err.$$
passed=$((passed + 1))

# down removes its run only.
"$nl" down "$r1" 2>/dev/null
runs=("$r2")
! ip netns list | grep -q "^$r1-" || fail "$r1 namespaces left after its down"
! ip link show dev "$r1-br" >/dev/null 2>&1 || fail "$r1 bridge left after its down"
ip netns list | grep -q "^$r2-A" || fail "down $r1 removed $r2-A"
ip link show dev "$r2-br" >/dev/null || fail "down $r1 removed $r2-br"
"$nl" down "$r2" 2>/dev/null
runs=()
passed=$((passed + 1))

# A name that exists and is not the run's: refused, left alone, nothing made.
r3=hx$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')
mine=$r3-B
ip netns add "$mine"
if "$nl" up --run "$r3" sim A B 2>err.$$; then runs+=("$r3"); fail "up used $mine"; fi
grep -q "namespace $mine exists and is not this run's" err.$$ || fail "refusal: $(cat err.$$)"
rm -f err.$$
ip netns list | grep -q "^$mine" || fail "$mine removed"
! ip netns list | grep -q "^$r3-A" || fail "up made $r3-A before refusing"
! ip link show dev "$r3-br" >/dev/null 2>&1 || fail "up made $r3-br before refusing"
[ ! -e "/run/hykex-netlab/$r3" ] || fail "refused run left a state folder"
ip netns del "$mine"
mine=""
passed=$((passed + 1))
echo "$passed passed, 0 failed"
