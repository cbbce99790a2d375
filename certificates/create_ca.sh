#!/usr/bin/env bash
# Creates the network's root CA: ca/ca.key (0600) and ca/ca.crt.
#
# Usage: certificates/create_ca.sh [--out DIR] [--alg ML-DSA-44|ML-DSA-65|ML-DSA-87|ED25519]
#                                  [--days N] [--name CN] [--force]
# Defaults: --out ca (in the current folder), --alg ML-DSA-65, --days 1825, --name "hykex root CA".
#
# The CA key signs node certificates (certificates/generate_cert.sh) and nothing else: keep it
# off the nodes. Unlike the original system, nodes never receive it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../scripts/lib.sh"

out=ca alg=ML-DSA-65 days=1825 name="hykex root CA" force=0
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=$2; shift 2 ;;
        --alg) alg=$2; shift 2 ;;
        --classic) alg=EC-P256; shift ;;
        --days) days=$2; shift 2 ;;
        --name) name=$2; shift 2 ;;
        --force) force=1; shift ;;
        -h | --help) sed -n '2,10s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "create_ca.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case "$alg" in ML-DSA-44 | ML-DSA-65 | ML-DSA-87 | ED25519 | EC-P256) ;;
    *) echo "create_ca.sh: --alg must be ML-DSA-44, ML-DSA-65, ML-DSA-87, ED25519 or EC-P256" >&2; exit 2 ;;
esac
[[ $days =~ ^[0-9]+$ ]] && [ "$days" -ge 1 ] && [ "$days" -le 3650 ] \
    || { echo "create_ca.sh: --days must be 1..3650" >&2; exit 2; }
if [ -e "$out/ca.key" ] && [ "$force" != 1 ]; then
    echo "create_ca.sh: $out/ca.key exists; use --force to replace the CA" >&2
    exit 1
fi

openssl=$(hx_openssl)
# genkey OPENSSL ALG FILE: a private key (EC-P256 = ECDSA on P-256, for --classic).
genkey() {
    if [ "$2" = EC-P256 ]; then
        "$1" genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$3"
    else
        "$1" genpkey -algorithm "$2" -out "$3"
    fi
}
umask 077
mkdir -p "$out"
tmp=$(mktemp "$out/.ca.key.XXXXXX")
trap 'rm -f "$tmp"' EXIT
genkey "$openssl" "$alg" "$tmp"
mv -f "$tmp" "$out/ca.key"
umask 022
"$openssl" req -new -x509 -key "$out/ca.key" -out "$out/ca.crt" -days "$days" \
    -subj "/CN=$name" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash"
chmod 0600 "$out/ca.key"
chmod 0644 "$out/ca.crt"
echo "create_ca.sh: $alg CA in $out/ca.crt (key $out/ca.key, mode 0600), valid $days days"
