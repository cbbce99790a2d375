#!/usr/bin/env bash
# Usage: deploy/docker/make-certs.sh [--dir DIR] [--owner UID] [--force]
# Makes the network CA in DIR/ca/ (its key stays there: never mounted into a container) and,
# for Alice, Bob and Charlie, DIR/nodes/<node>/certs/ with ca.crt, node.crt (ML-DSA, SAN
# urn:uuid of the node's config.json) and node.key (mode 0600, owned by UID: the image's hykex
# user, 10001, by default; chown needs root). DIR: this folder (deploy/docker) by default.
# An existing CA or node key is replaced only with --force.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=$root/deploy/docker
owner=10001
force=()
while [ $# -gt 0 ]; do
    case $1 in
        --dir) dir=$2; shift 2 ;;
        --owner) owner=$2; shift 2 ;;
        --force) force=(--force); shift ;;
        *)
            sed -n '2,7s/^# \{0,1\}//p' "$0" >&2
            exit 2
            ;;
    esac
done
"$root/certificates/create_ca.sh" --out "$dir/ca" "${force[@]}" >/dev/null
for node in Alice Bob Charlie; do
    uuid=$(sed -nE 's/.*"uuid": *"([^"]+)".*/\1/p' "$dir/nodes/$node/config.json")
    "$root/certificates/generate_cert.sh" --uuid "$uuid" --name "$node" --ca "$dir/ca" \
        --out "$dir/nodes/$node/certs" "${force[@]}" >/dev/null
    chown "$owner" "$dir/nodes/$node/certs/node.key"
    chmod 0600 "$dir/nodes/$node/certs/node.key"
done
echo "make-certs.sh: CA in $dir/ca (keep its key off the nodes); node certificates in $dir/nodes/*/certs"
