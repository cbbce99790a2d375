#!/usr/bin/env bash
# The deployment files stay usable: the systemd unit verifies (systemd-analyze, with ExecStart
# pointed at the built hykexd), the Dockerfile never runs hykexd as root and never copies a key,
# the compose file names every node folder and the configs in them parse as hykexd configs.
# (scripts/container-test.sh builds and runs the containers for real; CI runs it as root.)
# Usage: deploy_files.sh REPO_ROOT BIN_DIR
set -euo pipefail
root=$1 bin=$2
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if command -v systemd-analyze >/dev/null; then
    sed "s|/usr/local/bin/hykexd|$bin/hykexd|" "$root/deploy/systemd/hykexd.service" >"$tmp/hykexd.service"
    systemd-analyze verify "$tmp/hykexd.service" || fail "systemd-analyze verify hykexd.service"
    echo "ok   systemd unit verifies"
else
    echo "skip systemd unit: no systemd-analyze"
fi
for want in NoNewPrivileges=yes ProtectSystem=strict StateDirectory=hykex UMask=0077 LimitCORE=0; do
    grep -qx "$want" "$root/deploy/systemd/hykexd.service" || fail "unit lacks $want"
done
echo "ok   unit hardening settings present"

df=$root/deploy/docker/Dockerfile
grep -q '^FROM ${BASE}$' "$df" && grep -q '^ARG BASE=debian:trixie-slim$' "$df" || fail "Dockerfile base"
[ "$(grep -c '^FROM ' "$df")" -ge 2 ] || fail "Dockerfile is not multi-stage"
last_user=$(grep '^USER ' "$df" | tail -n1 | awk '{print $2}')
[ -n "$last_user" ] && [ "$last_user" != root ] || fail "final stage runs as root"
if grep -E '^(COPY|ADD) ' "$df" | grep -qiE 'ca\.key|\.key'; then fail "Dockerfile copies a key"; fi
grep -qF '**/*.key' "$root/.dockerignore" || fail ".dockerignore must exclude keys"
echo "ok   Dockerfile: multi-stage, trixie base, user $last_user, no key copied"

# --check-config also checks the certificates: each node gets the ones the deployment docs
# make (a CA, a certificate naming the node's UUID) in a copy of its folder.
(cd "$tmp" && "$root/certificates/create_ca.sh" --out ca >/dev/null 2>&1) || fail "create_ca.sh"
for node in Alice Bob Charlie; do
    grep -q "./nodes/$node:/etc/hykex:ro" "$root/deploy/docker/compose.yml" || fail "compose: $node"
    cp -r "$root/deploy/docker/nodes/$node" "$tmp/$node"
    uuid=$(sed -n 's/^ *"uuid": *"\([0-9a-f-]*\)".*/\1/p' "$tmp/$node/config.json" | head -n1)
    (cd "$tmp" && "$root/certificates/generate_cert.sh" --uuid "$uuid" --ca ca \
        --out "$node/certs" >/dev/null 2>&1) || fail "generate_cert.sh for $node"
    (cd "$tmp/$node" &&
        "$bin/hykexd" --check-config -c config.json -p trusted_peers_info.json >/dev/null) ||
        fail "deploy/docker/nodes/$node: config or certificates refused"
done
echo "ok   compose nodes Alice, Bob, Charlie; their configs and certificates pass hykexd --check-config"
